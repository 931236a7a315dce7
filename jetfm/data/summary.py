"""Summaries of jet files: jets per class, feature ranges, what cuts removed (`jetfm info`).

A generated file ``X.root`` may have a sidecar ``X.cuts.json`` written by ``jetfm generate``
with the generator configuration and the :class:`~jetfm.data.SelectionReport` of every cut;
``jetfm info`` prints it next to the file's own content.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jetfm.atomic import write_text_atomic
from jetfm.data.batch import JetBatch, SelectionReport

# (name, unit) of the per-particle and per-jet features summarised by `jetfm info`.
PARTICLE_FEATURES: tuple[tuple[str, str], ...] = (
    ("pt", "GeV"),
    ("eta_rel", ""),
    ("phi_rel", "rad"),
    ("energy", "GeV"),
)
JET_FEATURES: tuple[tuple[str, str], ...] = (
    ("jet_pt", "GeV"),
    ("jet_eta", ""),
    ("jet_mass", "GeV"),
    ("n_particles", ""),
)


def sidecar_path(path: str | Path) -> Path:
    """``X.root`` -> ``X.cuts.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".cuts.json")


def write_sidecar(
    path: str | Path, reports: list[SelectionReport], config: dict[str, Any]
) -> Path:
    """Store the generator configuration and cut reports next to a jet file."""
    out = sidecar_path(path)
    write_text_atomic(
        out, json.dumps({"config": config, "cuts": [asdict(r) for r in reports]}, indent=2) + "\n"
    )
    return out


def read_sidecar(path: str | Path) -> tuple[list[SelectionReport], dict[str, Any]] | None:
    """Cut reports and configuration stored by :func:`write_sidecar`, or None if absent."""
    side = sidecar_path(path)
    if not side.exists():
        return None
    data = json.loads(side.read_text())
    return [SelectionReport(**r) for r in data["cuts"]], data["config"]


def zero_pt_particles(batch: JetBatch) -> tuple[ak.Array, int]:
    """(keep, n): a jets x particles mask of the particles with pT > 0, and the number of
    particles with pT = 0 it leaves out. A pT = 0 particle carries zero weight and has no
    direction: its eta_rel / phi_rel are at FastJet's rapidity cap (+-1e5), which would be the
    min / max of every range and dominate every particle-level distance."""
    keep = batch.particle_feature("pt") > 0
    return keep, int(ak.count(keep) - ak.sum(keep))


def feature_ranges(batch: JetBatch) -> list[tuple[str, str, float, float, float]]:
    """(name, unit, min, median, max) for the summarised particle and jet features.

    Particle features are taken over the particles with pT > 0 (:func:`zero_pt_particles`);
    when some have pT = 0, the first particle feature's name says how many were left out
    ("pt (1 particle with pT = 0 left out)"), the others say "(pT > 0)". Values are the finite
    ones, so that one
    undefined value does not blank a row; NaN only when a feature has no finite value (e.g. a
    batch of 0 jets).
    """
    keep, n_zero = zero_pt_particles(batch)
    rows = []
    for i, (name, unit) in enumerate(PARTICLE_FEATURES):
        values = ak.to_numpy(ak.flatten(batch.particle_feature(name)[keep])).astype(np.float64)
        if n_zero:
            name += (f" ({n_zero} particle{'s' if n_zero != 1 else ''} with pT = 0 left out)"
                     if i == 0 else " (pT > 0)")
        rows.append((name, unit, *_min_median_max(values)))
    for name, unit in JET_FEATURES:
        rows.append((name, unit, *_min_median_max(getattr(batch, name).astype(np.float64))))
    return rows


def _min_median_max(values: np.ndarray) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (np.nan, np.nan, np.nan)
    return float(values.min()), float(np.median(values)), float(values.max())
