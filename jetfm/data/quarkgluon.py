"""Pythia quark/gluon jets of energyflow (Komiske, Metodiev, Thaler), ``QG_jets*.npz``.

Each file holds ``X``: (N, M, 4) = pt [GeV], rapidity y, phi [rad], PDG id per particle,
zero-padded (a padding row is all zeros), and ``y``: 1 = quark (``QCD_quark``), 0 = gluon
(``QCD_gluon``). The second column is the rapidity, not the pseudorapidity: the particle mass
m is taken from its PDG id (``particle`` package; massless when unknown), and
E = mT cosh y, pz = mT sinh y with mT = sqrt(pt^2 + m^2). ``pid``, ``charge`` and the JetClass
particle-type flags are kept as particle fields.

Only ``X`` is required: without ``y`` the jets are unlabelled (-1, logged once). Padding is the
all-zero rows after the last particle; an all-zero row before it is a null particle (PDG id 0:
charge 0, massless) and is kept.
"""

from __future__ import annotations

import os
import zipfile
from functools import lru_cache

import awkward as ak
import numpy as np
from particle import Particle
from particle.pdgid import PDGID

from jetfm.data._files import as_paths, log, padding_mask, validated
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index
from jetfm.data.pid import charge_from_pid, particle_type_flags


@lru_cache(maxsize=1024)
def _mass(pid: int) -> float:
    if not PDGID(pid).is_valid:
        return 0.0
    try:
        mass = Particle.from_pdgid(pid).mass
    except Exception:  # particle raises ParticleNotFound for ids not in its table
        return 0.0
    return 0.0 if mass is None else mass / 1000.0  # MeV -> GeV


def mass_from_pid(pid: np.ndarray) -> np.ndarray:
    """Rest mass [GeV] for an integer array of PDG ids; 0 for unknown ids."""
    pid = np.asarray(pid, dtype=np.int64)
    unique, inverse = np.unique(pid, return_inverse=True)
    return np.array([_mass(int(p)) for p in unique])[inverse].reshape(pid.shape)


def read_quarkgluon(
    path: str | os.PathLike[str],
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    skip_invalid: bool = False,
) -> JetBatch:
    """Read one ``QG_jets*.npz`` file (jets ``entry_start:entry_stop``).

    A file or range with no jets gives an empty batch; invalid jets raise
    :class:`JetDataError` (or are dropped and counted with ``skip_invalid``).
    """
    (path,) = as_paths(path)
    try:
        loaded = np.load(path)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy (or pickle) renamed
            raise JetDataError(f"{path}: a single {type(loaded).__name__}, not an .npz archive "
                               "of arrays 'X' and 'y'")
        with loaded as npz:
            names = list(npz.files)
            arrays = {key: npz[key] for key in names if key in ("X", "y")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise JetDataError(f"{path}: not a readable .npz file ({err})") from err
    if "X" not in arrays:
        raise JetDataError(f"{path}: no array 'X' (arrays {sorted(names)})")
    x, y = arrays["X"], arrays.get("y")
    if x.ndim != 3 or x.shape[-1] != 4 or not np.issubdtype(x.dtype, np.number):
        raise JetDataError(f"{path}: array 'X' has shape {x.shape} ({x.dtype}), not (N, M, 4)")
    if y is None:
        log.info("%s: no array 'y'; its jets are unlabelled", path)
    elif y.shape != (len(x),) or not np.all(np.isin(y, (0, 1))):
        raise JetDataError(f"{path}: array 'y' must hold {len(x)} labels 0 or 1 (got {y.shape})")
    rows = range(len(x))[slice(entry_start, entry_stop)]
    x = x[rows.start : rows.stop].astype(np.float64)
    mask = padding_mask(x)  # NaN rows count as particles and fail validation
    counts = mask.sum(axis=1)
    pt, rap, phi, pid_f = (x[..., k][mask] for k in range(4))
    pid = np.nan_to_num(pid_f).astype(np.int64)
    charge = np.zeros(len(pid))
    try:
        charge[pid != 0] = charge_from_pid(pid[pid != 0])
    except ValueError as err:
        raise JetDataError(f"{path}: array 'X' column 3 (PDG id): {err}") from err
    mt = np.hypot(pt, mass_from_pid(pid))
    columns = {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": mt * np.sinh(rap),
        "energy": mt * np.cosh(rap),
        "pid": pid,
        "charge": charge,
        **particle_type_flags(pid, charge),
    }
    batch = JetBatch(
        ak.zip({name: ak.unflatten(v, counts) for name, v in columns.items()}),
        label=None if y is None else np.where(
            y[rows.start : rows.stop] == 1, class_index("QCD_quark"), class_index("QCD_gluon")
        ),
        source_files=(path,),
        entry=np.arange(rows.start, rows.stop),
    )
    return validated(batch, path, skip_invalid)


GLUON_PDG = 21


def label_by_parton(batch: JetBatch, origin: str = "jets") -> JetBatch:
    """QCD jets relabelled ``QCD_quark`` / ``QCD_gluon`` by the PDG id of the hard parton they
    are matched to (the ``genpart_pid`` extra of the built-in source,
    :mod:`jetfm.data.pythia`; ``aux_genpart_pid`` in JetClass files): 21 -> gluon, a quark id
    1-5 (d, u, s, c, b; anti-quarks too) -> quark. The built-in source has no c or b QCD jets
    (it drops them, counted), so its quarks are light. Raises :class:`JetDataError` naming
    ``origin`` when the batch has no ``genpart_pid`` (or not one whole number per jet), holds
    jets not labelled ``QCD``, or a parton id that is neither."""
    if "genpart_pid" not in batch.extra:
        raise JetDataError(f"{origin}: no genpart_pid extra (the matched parton's PDG id): "
                           "quark/gluon labels need truth-matched QCD jets")
    not_qcd = int(np.count_nonzero(batch.label != class_index("QCD")))
    if not_qcd:
        raise JetDataError(f"{origin}: {not_qcd} jets are not labelled QCD")
    raw = batch.extra["genpart_pid"]
    values = np.asarray(raw, dtype=np.float64) if isinstance(raw, np.ndarray) else None
    if values is None or values.ndim != 1 or not np.all(np.isfinite(values)) \
            or not np.all(values == np.round(values)):
        raise JetDataError(f"{origin}: genpart_pid must be one whole-number PDG id per jet")
    pid = np.abs(values.astype(np.int64))
    gluon = pid == GLUON_PDG
    quark = (pid >= 1) & (pid <= 5)
    bad = ~(gluon | quark)
    if bad.any():
        raise JetDataError(f"{origin}: {int(bad.sum())} jet(s) matched to parton ids "
                           f"{sorted(set(pid[bad].tolist()))[:5]}, neither a quark (d, u, s, c, "
                           "b) nor a gluon")
    out = batch[:]
    out.label = np.where(gluon, class_index("QCD_gluon"), class_index("QCD_quark"))
    return out
