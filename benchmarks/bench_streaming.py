"""Streaming memory and throughput: one epoch of 1e4, 1e5 and 1e6 jets through a JetStream.

For each size N, writes N random jets in the JetClass ROOT layout (files of at most 100,000
jets, as JetClass' own; 10-70 constituents, mean 40, with the JetClass particle branches:
four-momenta, charge, particle-type flags, impact parameters; ten classes; the ``jet_*``
branches given so that the writer computes no substructure; baskets of 1,000 jets), then,
in a fresh Python process per N (so that no peak carries over), streams one epoch through
:class:`jetfm.data.streaming.JetStream` and a DataLoader with the inputs of a ParT tagger
over the ten JetClass classes (weaver's 7 kin features of up to 128 particles, four-momenta,
mask and label: 5.8 kB per jet) and prints jets/s and the peak resident set size
(``getrusage`` ``ru_maxrss`` of the streaming process, and of its DataLoader workers with
``--workers``). The target: peak RSS within 20 % across the sizes (the stream holds a chunk
and the shuffle buffer, not the dataset). Prints figures only; asserts nothing.

    nice .venv/bin/python benchmarks/bench_streaming.py [--sizes 1e4 1e5 1e6] [--dir DIR]
        [--workers 0] [--chunk-size 2500] [--buffer-size 10000] [--batch-size 256]

The default chunk (2,500 jets) fits in the smallest files (1e4 jets in 4 files), so every
size streams chunks of one size and only N changes; a bigger chunk raises the peak by the
memory of its preprocessing (1e4 jets in 4 files then stream smaller chunks than the rest).
``--dir``: where the files go (kept and reused by later runs; default: a temporary folder,
removed at the end). 1e6 jets are about 2 GB on disk and take a few minutes to write.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np

from jetfm.data import JetBatch
from jetfm.data.classes import JETCLASS_CLASSES
from jetfm.data.pid import charge_from_pid, particle_type_flags

FILE_JETS = 100_000
BASKET_JETS = 1_000  # jets per ROOT basket (ROOT's 32 kB default holds a few hundred)
PIDS = np.array([211, -211, 321, -321, 22, 130, 2112, 11, -13])
MASSES = np.array([0.13957, 0.13957, 0.49368, 0.49368, 0.0, 0.49761, 0.93957, 0.000511, 0.10566])


def random_jets(n_jets: int, seed: int) -> JetBatch:
    """Jets of pT 300-1000 GeV, |eta| < 2, constituents ~0.15 rad around the axis, with the
    JetClass particle fields; the ``jet_*`` extras set (mass for the soft-drop mass, 0 for
    the N-subjettiness) so that writing computes no substructure."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(10, 71, n_jets)
    jet = np.repeat(np.arange(n_jets), counts)
    z = rng.exponential(1.0, len(jet))
    pt = rng.uniform(300, 1000, n_jets)[jet] * z / np.bincount(jet, weights=z)[jet]
    eta = rng.uniform(-2, 2, n_jets)[jet] + rng.normal(0, 0.15, len(jet))
    phi = rng.uniform(-np.pi, np.pi, n_jets)[jet] + rng.normal(0, 0.15, len(jet))
    kind = rng.integers(0, len(PIDS), len(jet))
    pid = PIDS[kind]
    charge = charge_from_pid(pid)
    fields = {"charge": charge, **particle_type_flags(pid, charge)}
    for name, width in (("d0val", 0.05), ("dzval", 0.05)):
        fields[name] = rng.normal(0, width, len(jet)) * (charge != 0)
    for name in ("d0err", "dzerr"):
        fields[name] = rng.uniform(0.01, 0.02, len(jet)) * (charge != 0)

    def ragged(x: np.ndarray) -> ak.Array:
        return ak.unflatten(x, counts)

    batch = JetBatch.from_ptetaphi(ragged(pt), ragged(eta), ragged(phi), ragged(MASSES[kind]),
                                   fields={k: ragged(v) for k, v in fields.items()},
                                   label=rng.integers(0, len(JETCLASS_CLASSES), n_jets))
    batch.extra = {"jet_pt": batch.jet_pt, "jet_eta": batch.jet_eta, "jet_phi": batch.jet_phi,
                   "jet_energy": batch.jet_energy, "jet_nparticles": batch.n_particles,
                   "jet_sdmass": batch.jet_mass,
                   **{f"jet_tau{i}": np.zeros(n_jets, np.float32) for i in range(1, 5)}}
    return batch


def write_root(batch: JetBatch, path: Path) -> None:
    """``batch`` as :func:`jetfm.data.jetclass.write_jetclass` writes it (the same branches,
    :func:`jetfm.data.jetclass.jetclass_branches`) but in baskets of :data:`BASKET_JETS` jets,
    as ROOT files have: ``write_jetclass`` writes each branch as one basket, so that reading
    any entry range decompresses the whole file."""
    import uproot

    from jetfm.atomic import atomic_path
    from jetfm.data.jetclass import TREE, jetclass_branches

    branches = jetclass_branches(batch)
    with atomic_path(path) as tmp, uproot.recreate(tmp) as file:
        for start in range(0, len(batch), BASKET_JETS):
            piece = {k: v[start : start + BASKET_JETS] for k, v in branches.items()}
            if start == 0:
                file.mktree(TREE, piece)
            else:
                file[TREE].extend(piece)


def write_dataset(folder: Path, n_jets: int) -> list[Path]:
    """``n_jets`` jets in ROOT files of at most :data:`FILE_JETS` (at least 4 files); reused
    when a complete earlier copy is there (``done`` marker)."""
    marker = folder / "done"
    written = {"n_jets": n_jets, "basket_jets": BASKET_JETS}
    if marker.exists() and json.loads(marker.read_text()) == written:
        return sorted(folder.glob("*.root"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n_files = max(4, -(-n_jets // FILE_JETS))
    bounds = np.linspace(0, n_jets, n_files + 1).astype(int)
    start = time.perf_counter()
    for i in range(n_files):
        write_root(random_jets(int(bounds[i + 1] - bounds[i]), seed=i),
                   folder / f"jets_{i:03d}.root")
    size = sum(p.stat().st_size for p in folder.glob("*.root"))
    print(f"  wrote {n_jets:,} jets in {n_files} files ({size / 1e9:.2f} GB) in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    marker.write_text(json.dumps(written))
    return sorted(folder.glob("*.root"))


def stream_epoch(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """One epoch through JetStream + DataLoader (run in its own process): jets, seconds,
    peak RSS [MB] of this process and of its workers."""
    from jetfm.data.streaming import JetStream, TaggerInputs
    from jetfm.tasks.tagging import TaggingConfig

    tagger = TaggingConfig(backbone="part", classes=list(JETCLASS_CLASSES)).build()
    start = time.perf_counter()
    stream = JetStream(sorted(folder.glob("*.root")), TaggerInputs(tagger),
                       batch_size=args.batch_size, chunk_size=args.chunk_size,
                       buffer_size=args.buffer_size, seed=1)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    n_jets = n_batches = 0
    for batch in stream.loader(num_workers=args.workers):
        n_jets += len(batch["label"])
        n_batches += 1
    seconds = time.perf_counter() - start
    if n_jets != stream.n_jets or n_batches != len(stream.loader(num_workers=args.workers)):
        raise RuntimeError(f"streamed {n_jets} jets in {n_batches} batches, expected "
                           f"{stream.n_jets}")
    kb = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: kB on Linux, bytes on macOS
    return {"n_jets": n_jets, "seconds": seconds, "open_seconds": opened,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kb / 2**20,
            "workers_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kb
            / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--dir", type=Path, help="data folder (kept); default: temporary")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--chunk-size", type=int, default=2_500)
    parser.add_argument("--buffer-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(stream_epoch(args.child, args)))
        return
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_streaming_"))
    rows = []
    try:
        for size in args.sizes:
            n = int(size)
            folder = root / f"n{n}"
            write_dataset(folder, n)
            command = [sys.executable, __file__, "--child", str(folder),
                       "--workers", str(args.workers), "--chunk-size", str(args.chunk_size),
                       "--buffer-size", str(args.buffer_size),
                       "--batch-size", str(args.batch_size)]
            out = subprocess.run(command, capture_output=True, text=True, check=False)
            if out.returncode:
                raise RuntimeError(f"streaming {n} jets failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  {n:>9,} jets: {row['n_jets'] / row['seconds']:8,.0f} jets/s "
                  f"({row['seconds']:.1f} s; files opened in {row['open_seconds']:.1f} s), "
                  f"peak RSS {row['rss_mb']:7.0f} MB"
                  + (f", workers {row['workers_rss_mb']:.0f} MB" if args.workers else ""),
                  flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\nchunk {args.chunk_size}, buffer {args.buffer_size}, batch {args.batch_size}, "
          f"workers {args.workers}")
    print(f"{'jets':>10} {'jets/s':>10} {'peak RSS [MB]':>14}")
    for row in rows:
        rss = row["rss_mb"] + (row["workers_rss_mb"] if args.workers else 0)
        print(f"{row['n_jets']:>10,} {row['n_jets'] / row['seconds']:>10,.0f} {rss:>14.0f}")
    peaks = [r["rss_mb"] + (r["workers_rss_mb"] if args.workers else 0) for r in rows]
    print(f"largest / smallest peak RSS: {max(peaks) / min(peaks):.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
