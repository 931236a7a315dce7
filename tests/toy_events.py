"""Toy Z -> mu mu + jets events with a staircase multiplicity, for JetGPT tests."""

from __future__ import annotations

import numpy as np

from jetfm.data.events import MUON_MASS, Events


def toy_events(n: int, seed: int = 0, ratio: float = 0.3, max_jets: int = 8) -> Events:
    """``n`` events: n_jets geometric with P(n+1)/P(n) = ``ratio`` (at most ``max_jets``),
    jets pT = 20 GeV + exponential(25 GeV), pT-ordered, masses 5-15 % of pT, uniform
    azimuths; the muon pair balances the jets up to a 10 GeV Gaussian per axis."""
    rng = np.random.default_rng(seed)
    n_jets = np.minimum(rng.geometric(1 - ratio, n) - 1, max_jets)
    muons = np.zeros((n, 2, 4))
    muons[..., 1] = rng.normal(0, 1.2, (n, 2))
    muons[..., 3] = MUON_MASS
    jets = np.zeros((n, max_jets, 4))
    pt = -np.sort(-(20 + rng.exponential(25, (n, max_jets)) + 1e-3), axis=1)
    jets[..., 0] = pt
    jets[..., 1] = rng.normal(0, 2, (n, max_jets))
    jets[..., 2] = rng.uniform(-np.pi, np.pi, (n, max_jets))
    jets[..., 3] = pt * rng.uniform(0.05, 0.15, (n, max_jets))
    jets[np.arange(max_jets)[None] >= n_jets[:, None]] = 0.0
    # the muon pair recoils against the jets, up to a Gaussian imbalance of 10 GeV per axis
    # (so the pT-balance widths grow with missing jets, as in Z + jets)
    jpx = (jets[..., 0] * np.cos(jets[..., 2])).sum(1)
    jpy = (jets[..., 0] * np.sin(jets[..., 2])).sum(1)
    zx, zy = -jpx + rng.normal(0, 10, n), -jpy + rng.normal(0, 10, n)
    angle = rng.uniform(-np.pi, np.pi, n)
    d = rng.normal(40, 5, n).clip(10)
    px = np.stack([zx / 2 + d * np.cos(angle), zx / 2 - d * np.cos(angle)], 1)
    py = np.stack([zy / 2 + d * np.sin(angle), zy / 2 - d * np.sin(angle)], 1)
    pt, phi = np.hypot(px, py), np.arctan2(py, px)
    order = np.argsort(-pt, axis=1)
    muons[..., 0] = np.take_along_axis(pt, order, 1)
    muons[..., 2] = np.take_along_axis(phi, order, 1)
    return Events(muons, jets, n_jets, {"toy": True, "seed": seed})
