"""Read throughput of the jetfm readers on ~20k synthetic jets (30-100 constituents).

Writes a JetClass ROOT file, a jetfm Parquet file and an AspenOpenJets HDF5 file of the same
jets into a temporary directory, then prints jets/s for ``read_jetclass``, ``iter_jetclass``,
``read_parquet`` and ``read_aspen``. Prints figures only; asserts nothing about timing.

    .venv/bin/python benchmarks/bench_read.py [--jets 20000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np

from jetfm.data import JetBatch
from jetfm.data.aspen import read_aspen, write_aspen
from jetfm.data.jetclass import JET_BRANCHES, iter_jetclass, read_jetclass, write_jetclass
from jetfm.data.parquet import read_parquet, write_parquet


def synthetic_jets(n_jets: int, seed: int = 0) -> JetBatch:
    """Massless constituents of ~500 GeV jets, |eta| < 2, spread ~0.2 rad around the axis."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(30, 101, n_jets)
    jet = np.repeat(np.arange(n_jets), counts)
    z = rng.exponential(1.0, len(jet))
    pt = rng.uniform(300, 700, n_jets)[jet] * z / np.bincount(jet, weights=z)[jet]
    eta = rng.uniform(-2, 2, n_jets)[jet] + rng.normal(0, 0.2, len(jet))
    phi = rng.uniform(-np.pi, np.pi, n_jets)[jet] + rng.normal(0, 0.2, len(jet))
    batch = JetBatch.from_ptetaphi(
        *(ak.unflatten(x, counts) for x in (pt, eta, phi)),
        label=rng.integers(0, 10, n_jets),
    )
    # Jet-level columns given, so the writer does not spend the benchmark on substructure.
    batch.extra = {key: np.zeros(n_jets, np.float32) for key in JET_BRANCHES.values()}
    return batch


def rate(name: str, n_jets: int, read: Callable[[], int], repeats: int = 3) -> None:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        assert read() == n_jets
        best = min(best, time.perf_counter() - start)
    print(f"{name:<28s} {n_jets / best:12,.0f} jets/s   ({best:.3f} s, best of {repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=20_000)
    n = parser.parse_args().jets
    batch = synthetic_jets(n)
    with tempfile.TemporaryDirectory() as tmp:
        root, parquet, h5 = (str(Path(tmp) / f"jets.{s}") for s in ("root", "parquet", "h5"))
        write_jetclass(batch, root)
        write_parquet(batch, parquet)
        write_aspen(batch, h5, n_max=100)
        print(f"{n} jets, {int(batch.n_particles.sum())} particles")
        rate("read_jetclass", n, lambda: len(read_jetclass(root)))

        def iterate() -> int:
            return sum(len(chunk) for chunk in iter_jetclass(root, step_size=5000))

        rate("iter_jetclass (5k steps)", n, iterate)
        rate("read_parquet", n, lambda: len(read_parquet(parquet)))
        rate("read_aspen", n, lambda: len(read_aspen(h5)))


if __name__ == "__main__":
    main()
