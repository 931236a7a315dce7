"""Generated datasets on disk: one file per process plus a ``.cuts.json`` record.

:func:`generated_files` runs the Pythia8 source (:mod:`jetfm.data.pythia`) for each process
and writes ``<out_dir>/<process><suffix>``. A file whose record shows the same configuration,
seed, seeding scheme, worker count and number of jets is reused, so pipelines that call this
resume without regenerating. Files are written atomically (:mod:`jetfm.atomic`): a failed run
leaves no partial file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from jetfm.console import Console
from jetfm.data.io import write_jets
from jetfm.data.pythia import GeneratorConfig, check_request, generate
from jetfm.data.summary import read_sidecar, write_sidecar

SUFFIX = {"root": ".root", "aspen": ".h5", "parquet": ".parquet"}
CUT_KEYS = ("pt_min", "pt_max", "eta_max", "max_events_without_jet")
# Recorded with every file: files made with the earlier scheme (seed + 1000 * position in the
# process list) are regenerated rather than reused.
SEEDING = "SeedSequence([seed, blake2b(process), worker])"
console = Console(soft_wrap=True, emoji=False)


def generated_files(
    processes: Sequence[str],
    n_jets: int,
    out_dir: str | Path,
    *,
    fmt: str = "root",
    seed: int = 1,
    workers: int = 1,
    mpi: bool = False,
    aspen_like: bool = False,
    smear: bool = True,
    cuts: dict[str, float] | None = None,
) -> list[Path]:
    """Generate ``n_jets`` per process (or reuse matching files); returns the file paths.

    Each process's random streams derive from (``seed``, process name), not from its position
    in ``processes`` (:func:`jetfm.data.pythia.worker_seeds`): ``["top"]`` and
    ``["qcd", "top"]`` give the same top jets, different processes are independent. ``cuts``
    may set ``pt_min``, ``pt_max``, ``eta_max`` and ``max_events_without_jet`` of
    :class:`~jetfm.data.pythia.GeneratorConfig`; every configuration is validated after they
    are applied (``ValueError`` before anything is generated, e.g. ``pt_min >= pt_max``).
    Raises :class:`~jetfm.data.pythia.SelectionError` when no jet passes the cuts within
    ``max_events_without_jet`` events.
    """
    if fmt not in SUFFIX:
        raise ValueError(f"unknown format {fmt!r}; choose from {sorted(SUFFIX)}")
    check_request(n_jets, seed, workers)
    unknown = sorted(set(cuts or {}) - set(CUT_KEYS))
    if unknown:
        raise ValueError(f"unknown generator cut(s) {unknown}; known: {list(CUT_KEYS)}")
    if len(set(processes)) != len(processes):
        raise ValueError(f"process listed twice in {list(processes)}")
    configs = [_config(process, aspen_like, smear, mpi, cuts or {}) for process in processes]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for process, config in zip(processes, configs, strict=True):
        record: dict[str, Any] = {
            **asdict(config), "seed": seed, "seeding": SEEDING, "workers": workers,
            "n_jets": n_jets,
        }
        del record["max_events_without_jet"]  # a safety stop, not part of what the jets are
        name = f"aspen_{process}" if aspen_like else process
        path = out_dir / f"{name}{SUFFIX[fmt]}"
        if _matches(path, record):
            console.print(f"[bold]{process}[/]: reusing {path}")
            written.append(path)
            continue
        start = time.perf_counter()
        batch, reports = generate(config, n_jets, seed=seed, workers=workers, progress=True)
        elapsed = time.perf_counter() - start
        write_jets(batch, path)
        write_sidecar(path, reports, {**record, "seconds": round(elapsed, 2)})
        console.print(
            f"[bold]{process}[/]: {len(batch)} jets in {elapsed:.1f} s "
            f"({len(batch) / elapsed:.1f} jets/s) -> {path}"
        )
        for report in reports:
            console.print(f"  {report}")
        written.append(path)
    return written


def _config(process: str, aspen_like: bool, smear: bool, mpi: bool,
            cuts: dict[str, float]) -> GeneratorConfig:
    """The generator configuration of one process, validated with the cuts applied."""
    base = GeneratorConfig.aspen_like(smear=smear) if aspen_like else GeneratorConfig(process)
    # replace() runs __post_init__ again: the cuts are validated as set, not only the defaults
    return replace(base, process=process, mpi=mpi, **cuts)


def _matches(path: Path, record: dict[str, Any]) -> bool:
    side = read_sidecar(path) if path.exists() else None
    if side is None:
        return False
    stored = {k: v for k, v in side[1].items() if k != "seconds"}
    return stored == _jsonable(record)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(record))
