"""Toy jets with 1, 2 or 3 prongs for the tagging tests (not a test module)."""

from __future__ import annotations

import awkward as ak
import numpy as np

from jetfm.data import JetBatch
from jetfm.data.classes import class_index


def prong_jets(n_jets: int, n_prongs: int, label: str, seed: int = 0,
               n_min: int = 8, n_max: int = 30) -> JetBatch:
    """Jets of pT ~ 400-600 GeV whose particles cluster around ``n_prongs`` axes 0.3 apart
    (one prong: a QCD-like jet of small mass; two or three: W- or top-like masses), labelled
    ``label`` (a jetfm class name)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_min, n_max + 1, size=n_jets)
    jet_idx = np.repeat(np.arange(n_jets), counts)
    total = int(counts.sum())
    jet_pt = rng.uniform(400, 600, n_jets)
    jet_eta = rng.uniform(-1.5, 1.5, n_jets)
    jet_phi = rng.uniform(-np.pi, np.pi, n_jets)
    prong = rng.integers(0, n_prongs, total)
    angle = rng.uniform(0, 2 * np.pi, n_jets)[jet_idx] + 2 * np.pi * prong / n_prongs
    offset = 0.0 if n_prongs == 1 else 0.3
    z = rng.exponential(1.0, total)
    z_sum = np.bincount(jet_idx, weights=z, minlength=n_jets)
    pt = jet_pt[jet_idx] * z / z_sum[jet_idx]
    eta = jet_eta[jet_idx] + offset * np.cos(angle) + rng.normal(0, 0.03, total)
    phi = jet_phi[jet_idx] + offset * np.sin(angle) + rng.normal(0, 0.03, total)

    def ragged(x: np.ndarray) -> ak.Array:
        return ak.unflatten(x, counts)

    return JetBatch.from_ptetaphi(ragged(pt), ragged(eta), ragged(phi), 0.0,
                                  label=np.full(n_jets, class_index(label)))


def two_class_jets(n_per_class: int, seed: int = 0) -> JetBatch:
    """QCD-like one-prong and top-like three-prong jets, shuffled."""
    batch = JetBatch.concatenate([prong_jets(n_per_class, 1, "QCD", seed),
                                  prong_jets(n_per_class, 3, "Tbqq", seed + 1)])
    return batch[np.random.default_rng(seed + 2).permutation(len(batch))]
