"""Throughput of N-subjettiness and soft-drop mass on synthetic jets (prints jets/s).

.venv/bin/python benchmarks/bench_observables.py [--jets 5000] [--min 30] [--max 100]
"""

from __future__ import annotations

import argparse
import time

import awkward as ak
import numpy as np

from jetfm.data import JetBatch
from jetfm.physics.observables import nsubjettiness, softdrop_mass


def synthetic_jets(n_jets: int, n_min: int, n_max: int, seed: int = 0) -> JetBatch:
    """Jets of pT 300-1000 GeV, |eta| < 2, constituents spread by 0.15 around the axis."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_min, n_max + 1, n_jets)
    jet = np.repeat(np.arange(n_jets), counts)
    z = rng.exponential(1.0, counts.sum())
    pt = rng.uniform(300, 1000, n_jets)[jet] * z / np.bincount(jet, weights=z)[jet]
    eta = rng.uniform(-2, 2, n_jets)[jet] + rng.normal(0, 0.15, len(z))
    phi = rng.uniform(-np.pi, np.pi, n_jets)[jet] + rng.normal(0, 0.15, len(z))
    return JetBatch.from_ptetaphi(*(ak.unflatten(x, counts) for x in (pt, eta, phi)), 0.13957)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=5000)
    parser.add_argument("--min", type=int, default=30, help="fewest constituents per jet")
    parser.add_argument("--max", type=int, default=100, help="most constituents per jet")
    args = parser.parse_args()
    batch = synthetic_jets(args.jets, args.min, args.max)
    print(f"{len(batch)} jets, {batch.n_particles.mean():.1f} constituents on average")
    for name, compute in (
        ("nsubjettiness (tau1..4)", nsubjettiness),
        ("softdrop_mass", softdrop_mass),
    ):
        start = time.perf_counter()
        compute(batch)
        seconds = time.perf_counter() - start
        print(f"{name:24s} {len(batch) / seconds:10.0f} jets/s  ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
