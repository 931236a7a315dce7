"""JetNet HDF5 files (Kansal et al., arXiv:2106.11535), as distributed on Zenodo.

Layout (the files ``g.hdf5``, ``q.hdf5``, ``t.hdf5``, ``w.hdf5``, ``z.hdf5`` and their
``*150.hdf5`` versions read by the ``jetnet`` library):

* ``particle_features``: (N, M, 4) = etarel, phirel, ptrel, mask, with M = 30 or 150,
  pT-ordered, zero-padded (mask 1 for real particles);
* ``jet_features``: (N, 4) = jet pt [GeV], eta, mass [GeV], num_particles. The files carry no
  jet type: it is the file name's letter (or the ``jet_type`` argument). A (N, 5) table with a
  leading type index in the ``jetnet`` library order g, q, t, w, z (what
  ``JetNet.getData`` returns) is read as well.

Jet types map to ``QCD_gluon``, ``QCD_quark``, ``Tbqq``, ``Wqq``, ``Zqq``; a file whose name
gives no type (and no ``jet_type`` argument) holds unlabelled jets (-1, logged once). Both
datasets are required (particle momenta need the jet pt and eta); the mask column must hold
0 or 1 (anything else, NaN included, is an error naming the file and the first jet).
Particles are taken massless with pt = ptrel * jet_pt [GeV], eta = etarel + jet_eta and
phi = phirel [rad], i.e. every jet is placed at phi = 0 (JetNet stores no jet phi). The
file's jet values are kept in ``batch.extra`` as ``jet_pt, jet_eta, jet_mass, jet_nparticles``.
"""

from __future__ import annotations

import os
import re

import awkward as ak
import numpy as np

from jetfm.data._files import as_paths, log, open_hdf5, validated
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index

JET_TYPES: dict[str, str] = {
    "g": "QCD_gluon",
    "q": "QCD_quark",
    "t": "Tbqq",
    "w": "Wqq",
    "z": "Zqq",
}
JET_COLUMNS: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_mass", "jet_nparticles")


def _type_from_name(path: str) -> str | None:
    match = re.fullmatch(r"([gqtwz])(?:150)?", os.path.splitext(os.path.basename(path))[0])
    if match is None:
        log.info(
            "%s: the file name gives no JetNet jet type (g, q, t, w or z, optionally with "
            "'150'): jets are unlabelled; pass jet_type='g' etc. to label them", path
        )
        return None
    return match.group(1)


def read_jetnet(
    path: str | os.PathLike[str],
    *,
    jet_type: str | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    skip_invalid: bool = False,
) -> JetBatch:
    """Read one JetNet file; ``jet_type`` (g, q, t, w, z) overrides the file-name letter.

    A file or range with no jets gives an empty batch; invalid jets raise
    :class:`JetDataError` (or are dropped and counted with ``skip_invalid``).
    """
    (path,) = as_paths(path)
    with open_hdf5(path) as file:
        for key in ("particle_features", "jet_features"):
            if key not in file:
                raise JetDataError(f"{path}: no dataset {key!r} (keys {list(file.keys())})")
        pf, jf = file["particle_features"], file["jet_features"]
        if pf.ndim != 3 or pf.shape[-1] != 4:
            raise JetDataError(
                f"{path}: dataset 'particle_features' has shape {pf.shape}, not (N, M, 4)"
            )
        if jf.ndim != 2 or jf.shape[-1] not in (4, 5) or len(jf) != len(pf):
            raise JetDataError(
                f"{path}: dataset 'jet_features' has shape {jf.shape}, not ({len(pf)}, 4 or 5)"
            )
        rng = range(len(pf))[slice(entry_start, entry_stop)]
        parts = pf[rng.start : rng.stop].astype(np.float64)
        jets = jf[rng.start : rng.stop]
    entry = np.arange(rng.start, rng.stop)
    if jets.shape[1] == 5:
        codes = list(JET_TYPES)
        bad = ~np.isin(jets[:, 0], np.arange(len(codes)))
        if bad.any():
            raise JetDataError(
                f"{path}: dataset 'jet_features' column 0 (jet type) must be 0-4 ({codes}); "
                f"{int(bad.sum())} jet(s) differ (first: entry {entry[np.argmax(bad)]})"
            )
        label = np.array(
            [class_index(JET_TYPES[codes[int(t)]]) for t in jets[:, 0]], dtype=np.int64
        )
        jets = jets[:, 1:]
    else:
        code = jet_type or _type_from_name(path)
        if code is not None and code not in JET_TYPES:
            raise JetDataError(f"{path}: unknown JetNet jet type {code!r}; use {list(JET_TYPES)}")
        label = None if code is None else np.full(len(jets), class_index(JET_TYPES[code]))
    bad = ~np.isin(parts[..., 3], (0, 1)).all(axis=1)
    if bad.any():
        raise JetDataError(
            f"{path}: dataset 'particle_features' column 3 (mask) holds values other than 0 "
            f"and 1 for {int(bad.sum())} jet(s) (first: entry {entry[np.argmax(bad)]})"
        )
    mask = parts[..., 3] > 0
    counts = mask.sum(axis=1)

    def ragged(column: int) -> ak.Array:
        return ak.unflatten(parts[..., column][mask], counts)

    jet_pt, jet_eta = jets[:, 0].astype(np.float64), jets[:, 1].astype(np.float64)
    batch = JetBatch.from_ptetaphi(
        ragged(2) * jet_pt[:, None],
        ragged(0) + jet_eta[:, None],
        ragged(1),
        label=label,
        extra={name: jets[:, i] for i, name in enumerate(JET_COLUMNS)},
        source_files=(path,),
        entry=entry,
    )
    return validated(batch, path, skip_invalid)
