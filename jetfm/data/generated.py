"""Generated datasets on disk: one file per process plus a ``.cuts.json`` record.

:func:`generated_files` runs the Pythia8 source (:mod:`jetfm.data.pythia`) for each process
and writes ``<out_dir>/<process><suffix>``. A file whose record shows the same configuration,
seed, worker count and number of jets is reused, so pipelines that call this resume without
regenerating.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from jetfm.data.io import write_jets
from jetfm.data.pythia import GeneratorConfig, generate
from jetfm.data.summary import read_sidecar, write_sidecar

SUFFIX = {"root": ".root", "aspen": ".h5", "parquet": ".parquet"}
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

    Process ``i`` uses seed ``seed + 1000 i`` so samples are independent. ``cuts`` may set
    ``pt_min``, ``pt_max``, ``eta_max`` of :class:`~jetfm.data.pythia.GeneratorConfig`.
    """
    if fmt not in SUFFIX:
        raise ValueError(f"unknown format {fmt!r}; choose from {sorted(SUFFIX)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, process in enumerate(processes):
        config = GeneratorConfig.aspen_like(smear=smear) if aspen_like else None
        if config is None:
            config = GeneratorConfig(process=process)
        config.process = process
        config.mpi = mpi
        for key, value in (cuts or {}).items():
            setattr(config, key, value)
        process_seed = seed + 1000 * i
        record: dict[str, Any] = {
            **asdict(config), "seed": process_seed, "workers": workers, "n_jets": n_jets,
        }
        name = f"aspen_{process}" if aspen_like else process
        path = out_dir / f"{name}{SUFFIX[fmt]}"
        if _matches(path, record):
            console.print(f"[bold]{process}[/]: reusing {path}")
            written.append(path)
            continue
        start = time.perf_counter()
        batch, reports = generate(
            config, n_jets, seed=process_seed, workers=workers, progress=True
        )
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


def _matches(path: Path, record: dict[str, Any]) -> bool:
    side = read_sidecar(path) if path.exists() else None
    if side is None:
        return False
    stored = {k: v for k, v in side[1].items() if k != "seconds"}
    return stored == _jsonable(record)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(record))
