"""Throughput of declustering-tree building, Lund coordinates and tree soft drop (jets/s).

.venv/bin/python benchmarks/bench_trees.py [--jets 20000] [--min 30] [--max 70]

Jets are generated-like (``bench_observables.synthetic_jets``, ~50 constituents by default).
``fastjet alone`` is the reclustering plus the two history/jets calls the trees are built
from, i.e. the floor under ``build_trees``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from bench_observables import synthetic_jets

from jetfm.data import JetBatch
from jetfm.physics.clustering import cluster
from jetfm.physics.lund import lund_splittings, primary_lund, softdrop_mass
from jetfm.physics.trees import build_trees


def fastjet_alone(batch: JetBatch, algorithm: str, recombination: str) -> None:
    sequence = cluster(batch, algorithm, recombination=recombination)
    sequence.unique_history_order()
    sequence.jets()


def timed(name: str, n_jets: int, work: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    print(f"{name:34s} {n_jets / seconds:10.0f} jets/s  ({seconds:.2f} s)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=20000)
    parser.add_argument("--min", type=int, default=30, help="fewest constituents per jet")
    parser.add_argument("--max", type=int, default=70, help="most constituents per jet")
    args = parser.parse_args()
    batch = synthetic_jets(args.jets, args.min, args.max)
    n = len(batch)
    print(f"{n} jets, {batch.n_particles.mean():.1f} constituents on average")
    for algorithm, recombination in (("kt", "E"), ("cambridge", "WTA_pt"), ("cambridge", "E")):
        tag = f"{algorithm} + {recombination}"
        timed(f"fastjet alone ({tag})", n, partial(fastjet_alone, batch, algorithm, recombination))
        build = partial(build_trees, batch, algorithm, recombination)
        trees = timed(f"build_trees ({tag})", n, build)
    timed("primary_lund (C/A + E)", n, partial(primary_lund, trees))
    timed("lund_splittings (C/A + E)", n, partial(lund_splittings, trees))
    timed("softdrop_mass on the C/A trees", n, partial(softdrop_mass, trees))


if __name__ == "__main__":
    main()
