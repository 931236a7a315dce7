"""Generation throughput of the built-in Pythia 8 + FastJet generator, per class, MPI on/off.

For each process in :data:`jetfm.data.pythia.PROCESSES` and MPI off/on, generates ``--jets``
jets (one worker, JetClass cuts 500 < pT < 1000 GeV, |eta| < 2, truth matched) and prints
accepted jets/s (Pythia initialisation included) and the jet selection report (events used,
jets removed per cut). Prints figures only; asserts nothing about timing.

    .venv/bin/python benchmarks/bench_generate.py [--jets 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import time

from jetfm.data.pythia import PROCESSES, GeneratorConfig, generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=200, help="jets per class and MPI setting")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    print(f"{'process':8s} {'MPI':4s} {'jets/s':>8s}  selection")
    for process in PROCESSES:
        for mpi in (False, True):
            start = time.perf_counter()
            batch, (report, *_) = generate(
                GeneratorConfig(process, mpi=mpi),
                args.jets,
                seed=1,
                workers=args.workers,
                progress=False,
            )
            seconds = time.perf_counter() - start
            rate = len(batch) / seconds
            print(f"{process:8s} {'on' if mpi else 'off':4s} {rate:8.1f}  {report}", flush=True)


if __name__ == "__main__":
    main()
