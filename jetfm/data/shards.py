"""Shards: data preparation split into N deterministic parts, for batch arrays and Dask.

``jetfm generate``, ``jetfm tokenize`` and ``jetfm cluster`` take ``--n-shards N``: the work
of one command is cut into N parts, shard ``i`` (0 ... N-1) is a plain function of (job,
``i``) (:func:`run_shard`), and the N shard outputs concatenated in index order are exactly
the output of one unsharded run. The same shards run

* one per batch-system array element: ``--shard I`` (``I`` = ``$SLURM_ARRAY_TASK_ID``);
* as Dask tasks: ``--dask`` (a ``distributed.LocalCluster`` on this machine, one worker
  process per core) or ``--dask-scheduler ADDRESS`` (any running scheduler; its workers must
  see the output folder); Dask only maps :func:`run_shard` over the indices;
* one after another in this process (``--n-shards N`` alone).

Index arithmetic (:func:`shard_range`): shard ``i`` of ``N`` over ``n`` items takes items
``i * n // N`` ... ``(i + 1) * n // N`` (contiguous, sizes differ by at most one), the rule
:func:`jetfm.data.pythia.generate` uses to split jets between its workers.

* ``generate``: items are jets. The random streams are those of
  :func:`jetfm.data.pythia.worker_seeds` (``SeedSequence([seed, blake2b(process), worker])``):
  with ``w`` workers per shard (``--workers``, at most ``n // N``) shard ``i`` runs workers
  ``i * w`` ... ``(i + 1) * w - 1`` of a run with ``N * w`` workers, so the shards together
  are exactly ``jetfm generate --workers N*w`` (one process, same seed and total), and every
  shard has its own seeds (derived from the worker indices, never reused).
* ``tokenize`` and ``cluster``: items are the input files, in the order given (each shard
  needs at least one file); the jets of a shard are those of its files in order, so the
  shard files concatenated are the jets of one run over all files.

Outputs: shard ``i`` of ``top.root`` is ``top.shard-003-of-016.root`` (:func:`shard_path`,
at least three digits) with its own cuts report ``top.shard-003-of-016.cuts.json``
(:mod:`jetfm.data.summary`), whose record names the shard and what it covers. ``--merge``
(after all shards finished) checks every shard's record against the command's options and
writes the file and cuts report an unsharded run writes (:func:`merge_reports`: counts added;
the jets are read into memory once). A finished ``generate`` shard whose record matches is
reused, as :func:`jetfm.data.generated.generated_files` reuses files; tokenize and cluster
shards are always rerun (their record names input files, not their contents). All files are
written atomically (:mod:`jetfm.atomic`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jetfm.data.batch import SelectionReport
from jetfm.data.summary import read_sidecar, sidecar_path, write_sidecar

if TYPE_CHECKING:  # the heavy modules load only when a shard runs
    from jetfm.data.hepmc import ClusterConfig
    from jetfm.data.pythia import GeneratorConfig

SHARD_KEY = "shard"  # the record key that describes a shard (absent in an unsharded record)
_EVENTS = re.compile(r"from (\d+) events")  # the one count inside a report name


# ---------------------------------------------------------------------- index arithmetic
def check_shard(index: int, n_shards: int) -> None:
    """``ValueError`` unless ``n_shards`` >= 1 and 0 <= ``index`` < ``n_shards``."""
    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or n_shards < 1:
        raise ValueError(f"n_shards must be an integer >= 1, got {n_shards!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n_shards:
        raise ValueError(f"shard index {index!r} is outside 0 ... {n_shards - 1} "
                         f"(n_shards = {n_shards}; shards are numbered from 0)")


def shard_range(n_items: int, index: int, n_shards: int, what: str = "items"
                ) -> tuple[int, int]:
    """Items ``[lo, hi)`` of shard ``index`` of ``n_shards``: ``lo = index * n // N``.

    The split of :func:`jetfm.data.pythia.generate` between workers; ``ValueError`` for a bad
    shard (:func:`check_shard`) or ``n_items`` < ``n_shards`` (a shard would be empty; the
    message calls the items ``what``).
    """
    check_shard(index, n_shards)
    if n_items < n_shards:
        raise ValueError(f"{n_items} {what} cannot make {n_shards} shards: every shard needs at "
                         f"least one (use --n-shards <= {n_items})")
    return index * n_items // n_shards, (index + 1) * n_items // n_shards


def shard_tag(index: int, n_shards: int) -> str:
    """``shard-003-of-016``: zero-padded to at least three digits, both numbers alike."""
    check_shard(index, n_shards)
    width = max(3, len(str(n_shards)))
    return f"shard-{index:0{width}d}-of-{n_shards:0{width}d}"


def shard_path(path: str | Path, index: int, n_shards: int) -> Path:
    """``data/top.root`` -> ``data/top.shard-003-of-016.root`` (suffix kept)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{shard_tag(index, n_shards)}{path.suffix}")


# ---------------------------------------------------------------------- reports
def _report_key(name: str) -> str:
    return _EVENTS.sub("from # events", name)


def merge_reports(per_shard: Sequence[Sequence[SelectionReport]], add: bool = True
                  ) -> list[SelectionReport]:
    """The reports of one run from those of its shards (in shard order).

    ``add``: the shards made the same selections (generate, tokenize): reports of the same
    selection (the same name up to the event count of "from N events") are added: before,
    after and every removal count; the event count is added too. Reports of different
    selections are kept in the order they appear, a report that only some shards have (e.g.
    "jets with a particle") placed after the one it follows there. ``ValueError`` when the
    removal reasons of one selection differ. ``add=False``: every shard reports on its own
    inputs (cluster: per file): the lists are joined in shard order.
    """
    if not add:
        return [report for reports in per_shard for report in reports]
    merged: dict[str, list[SelectionReport]] = {}
    order: list[str] = []
    for reports in per_shard:
        keys = [_report_key(r.name) for r in reports]
        for j, (key, report) in enumerate(zip(keys, reports, strict=True)):
            if key not in merged:
                merged[key] = []
                if j > 0:  # right after the report it follows in this shard
                    order.insert(order.index(keys[j - 1]) + 1, key)
                else:  # before the first known one that follows it here, else at the end
                    known = [order.index(k) for k in keys if k in merged and k != key]
                    order.insert(known[0] if known else len(order), key)
            merged[key].append(report)
    out = []
    for key in order:
        group = merged[key]
        reasons = list(group[0].removed)
        if any(list(r.removed) != reasons for r in group):
            raise ValueError(f"cannot merge reports {group[0].name!r}: the shards removed jets "
                             f"for different reasons ({[list(r.removed) for r in group]})")
        name = group[0].name
        events = [_EVENTS.search(r.name) for r in group]
        if all(events):
            total = sum(int(m.group(1)) for m in events if m)
            name = _EVENTS.sub(f"from {total} events", name)
        out.append(SelectionReport(
            name, sum(r.n_before for r in group), sum(r.n_after for r in group),
            {k: sum(r.removed[k] for r in group) for k in reasons}))
    return out


# ---------------------------------------------------------------------- jobs
@dataclass
class ShardResult:
    """What a shard (or a merge) wrote: the file, its jets, reports, seconds, reused or not."""

    path: Path
    n_jets: int
    reports: list[SelectionReport]
    seconds: float
    reused: bool = False


class ShardJob(Protocol):
    """One command's work split into shards (:class:`GenerateJob`, :class:`TokenizeJob`,
    :class:`ClusterJob`)."""

    n_shards: int
    out: Path  # the file of the unsharded run

    @property
    def name(self) -> str: ...  # shown in messages, unique among a command's jobs

    def output(self, index: int) -> Path: ...

    def record(self, index: int | None) -> dict[str, Any]: ...

    def run(self, index: int, progress: bool = False) -> ShardResult: ...

    def merge(self) -> ShardResult: ...


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    """The record as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(record))


def _stored_record(path: Path) -> dict[str, Any] | None:
    side = read_sidecar(path) if path.exists() else None
    return None if side is None else {k: v for k, v in side[1].items() if k != "seconds"}


def _shard_record(index: int, n_shards: int, **covers: Any) -> dict[str, Any]:
    return {SHARD_KEY: {"index": index, "n_shards": n_shards, **covers}}


def _finished_shards(job: ShardJob) -> list[tuple[Path, list[SelectionReport], float]]:
    """(path, reports, seconds) of every shard, checked against the job's records;
    ``FileNotFoundError`` naming missing shards, ``ValueError`` naming a mismatching one."""
    missing = [job.output(i) for i in range(job.n_shards)
               if not (job.output(i).exists() and sidecar_path(job.output(i)).exists())]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise FileNotFoundError(f"{job.name}: {len(missing)} of {job.n_shards} shards are not "
                                f"finished ({shown}); run them (--shard I) before --merge")
    out = []
    for i in range(job.n_shards):
        path = job.output(i)
        side = read_sidecar(path)
        assert side is not None
        stored = {k: v for k, v in side[1].items() if k != "seconds"}
        expected = _jsonable(job.record(i))
        if stored != expected:
            keys = sorted(k for k in set(stored) | set(expected)
                          if stored.get(k) != expected.get(k))
            # the shard entry (its index and worker range) follows from the other options:
            # name it only when nothing else differs
            keys = [k for k in keys if k != "shard"] or keys
            raise ValueError(f"{sidecar_path(path)}: made with other options than this command "
                             f"(differs in {keys}); rerun the shard or give its options")
        out.append((path, side[0], float(side[1].get("seconds", 0.0))))
    return out


def _merge_jet_files(job: ShardJob, add_reports: bool = True) -> ShardResult:
    """Merge jet shard files into ``job.out``, the unsharded run's file (+ its cuts report;
    ``add_reports``: see :func:`merge_reports`)."""
    from jetfm.data.io import read_jets, write_jets

    shards = _finished_shards(job)
    batch = read_jets([str(p) for p, _, _ in shards])
    reports = merge_reports([r for _, r, _ in shards], add_reports)
    seconds = round(sum(s for _, _, s in shards), 2)
    path = Path(job.out)
    write_jets(batch, path)
    write_sidecar(path, reports, {**job.record(None), "seconds": seconds})
    return ShardResult(path, len(batch), reports, seconds)


@dataclass(frozen=True)
class GenerateJob:
    """``jetfm generate`` of one process, ``n_jets`` in all, split into ``n_shards``.

    ``out``: the file of the unsharded run (``data/top.root``); ``workers``: processes per
    shard (at most ``n_jets // n_shards`` are used). ``ValueError`` for a bad request or
    ``n_jets`` < ``n_shards``.
    """

    config: GeneratorConfig
    n_jets: int
    out: Path
    n_shards: int = 1
    seed: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        from jetfm.data.pythia import check_request

        check_request(self.n_jets, self.seed, self.workers)
        shard_range(self.n_jets, 0, self.n_shards, "jets")  # n_shards >= 1, n_jets >= it

    @classmethod
    def for_process(cls, process: str, n_jets: int, out_dir: str | Path, *, fmt: str = "root",
                    seed: int = 1, workers: int = 1, n_shards: int = 1, mpi: bool = False,
                    aspen_like: bool = False, smear: bool = True,
                    cuts: dict[str, float] | None = None) -> GenerateJob:
        """The job of ``jetfm generate`` options: configuration and file name as
        :func:`jetfm.data.generated.generated_files` makes them (``<out_dir>/top.root``,
        ``aspen_qcd.h5``); ``ValueError`` for an unknown format or bad cuts."""
        from jetfm.data.generated import CUT_KEYS, SUFFIX, _config

        if fmt not in SUFFIX:
            raise ValueError(f"unknown format {fmt!r}; choose from {sorted(SUFFIX)}")
        unknown = sorted(set(cuts or {}) - set(CUT_KEYS))
        if unknown:
            raise ValueError(f"unknown generator cut(s) {unknown}; known: {list(CUT_KEYS)}")
        config = _config(process, aspen_like, smear, mpi, cuts or {})
        name = f"aspen_{process}" if aspen_like else process
        return cls(config, n_jets, Path(out_dir) / f"{name}{SUFFIX[fmt]}", n_shards, seed,
                   workers)

    @property
    def name(self) -> str:
        return self.config.process

    @property
    def workers_per_shard(self) -> int:
        """Worker streams per shard: ``workers``, at most ``n_jets // n_shards``."""
        return max(1, min(self.workers, self.n_jets // self.n_shards))

    @property
    def total_workers(self) -> int:
        """``--workers`` of the one-process run these shards reproduce."""
        return self.n_shards * self.workers_per_shard

    def streams(self, index: int) -> range:
        """Worker indices (seeds, :func:`jetfm.data.pythia.worker_seeds`) of shard ``index``."""
        check_shard(index, self.n_shards)
        w = self.workers_per_shard
        return range(index * w, (index + 1) * w)

    def output(self, index: int) -> Path:
        return shard_path(self.out, index, self.n_shards)

    def record(self, index: int | None) -> dict[str, Any]:
        """The cuts-report record of shard ``index`` (``None``: of the unsharded run, as
        :func:`jetfm.data.generated.generated_files` writes it for ``total_workers``)."""
        from jetfm.data.generated import SEEDING

        record: dict[str, Any] = {**asdict(self.config), "seed": self.seed, "seeding": SEEDING,
                                  "workers": self.total_workers, "n_jets": self.n_jets}
        del record["max_events_without_jet"]  # a safety stop, not part of what the jets are
        if index is None:
            return record
        streams = self.streams(index)
        return {**record, **_shard_record(index, self.n_shards,
                                          jets=list(shard_range(self.n_jets, index,
                                                                self.n_shards)),
                                          workers=[streams[0], streams[-1] + 1])}

    def run(self, index: int, progress: bool = False) -> ShardResult:
        """Generate and write shard ``index`` (or reuse it when its record matches)."""
        from jetfm.data.io import write_jets
        from jetfm.data.pythia import generate

        path, record = self.output(index), self.record(index)
        if _stored_record(path) == _jsonable(record):
            side = read_sidecar(path)
            assert side is not None
            lo, hi = shard_range(self.n_jets, index, self.n_shards)
            return ShardResult(path, hi - lo, side[0], side[1].get("seconds", 0.0), reused=True)
        start = time.perf_counter()
        batch, reports = generate(self.config, self.n_jets, seed=self.seed,
                                  workers=self.total_workers, progress=progress,
                                  streams=self.streams(index))
        seconds = round(time.perf_counter() - start, 2)
        write_jets(batch, path)
        write_sidecar(path, reports, {**record, "seconds": seconds})
        return ShardResult(path, len(batch), reports, seconds)

    def merge(self) -> ShardResult:
        return _merge_jet_files(self)


class _FileShards:
    """Shards over input files (tokenize, cluster): shard i takes a contiguous block of
    ``files`` (:func:`shard_range`) and writes ``shard_path(out, i, n_shards)``."""

    files: tuple[str, ...]
    out: Path
    n_shards: int

    def __post_init__(self) -> None:
        shard_range(len(self.files), 0, self.n_shards, "input files")

    @property
    def name(self) -> str:
        return Path(self.out).name

    def files_of(self, index: int) -> tuple[str, ...]:
        lo, hi = shard_range(len(self.files), index, self.n_shards)
        return self.files[lo:hi]

    def output(self, index: int) -> Path:
        return shard_path(self.out, index, self.n_shards)

    def with_shard(self, record: dict[str, Any], index: int | None) -> dict[str, Any]:
        """``record`` plus, for shard ``index`` (None: the whole job), its index and its block
        of files."""
        if index is None:
            return record
        lo, hi = shard_range(len(self.files), index, self.n_shards)
        return {**record, **_shard_record(index, self.n_shards, files=[lo, hi])}


@dataclass(frozen=True)
class TokenizeJob(_FileShards):
    """``jetfm tokenize`` of ``files`` (in order) with ``tokenizer`` into ``out``
    (``.parquet``), split into ``n_shards`` blocks of files."""

    files: tuple[str, ...]
    tokenizer: str
    out: Path
    n_shards: int = 1
    skip_invalid: bool = False

    @cached_property
    def fingerprint(self) -> str:
        """The tokenizer's fingerprint (loaded once)."""
        from jetfm.models.tokenizer import Tokenizer

        return Tokenizer.load(self.tokenizer).fingerprint

    def record(self, index: int | None, fingerprint: str | None = None) -> dict[str, Any]:
        """Cuts-report record: tokenizer (path, fingerprint), input files, skip_invalid."""
        record: dict[str, Any] = {
            "tokenizer": str(self.tokenizer),
            "fingerprint": fingerprint or self.fingerprint,
            "files": list(self.files if index is None else self.files_of(index)),
            "skip_invalid": self.skip_invalid,
        }
        return self.with_shard(record, index)

    def run(self, index: int, progress: bool = False) -> ShardResult:
        """Tokenize the files of shard ``index``; ``ValueError`` when they hold no jet."""
        from jetfm.data.io import read_jets
        from jetfm.data.tokens import TokenDataset, write_tokens
        from jetfm.models.tokenizer import Tokenizer

        start = time.perf_counter()
        tokenizer = Tokenizer.load(self.tokenizer)
        files = self.files_of(index)
        jets = read_jets(list(files), skip_invalid=self.skip_invalid)
        if len(jets) == 0:
            raise ValueError(f"{', '.join(files)}: 0 jets; nothing to tokenize "
                             f"({shard_tag(index, self.n_shards)})")
        codes, mask, reports = tokenizer.encode(jets)
        meta = {"fingerprint": tokenizer.fingerprint, "tokenizer": str(self.tokenizer),
                "codebook_size": tokenizer.codebook_size}
        path = self.output(index)
        write_tokens(path, TokenDataset(codes, mask, jets.label, meta))
        seconds = round(time.perf_counter() - start, 2)
        write_sidecar(path, reports, {**self.record(index, tokenizer.fingerprint),
                                      "seconds": seconds})
        return ShardResult(path, len(jets), reports, seconds)

    def merge(self) -> ShardResult:
        """Concatenate the shard token files (same tokenizer metadata) into ``out``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from jetfm.atomic import atomic_path
        from jetfm.data.tokens import META_KEY

        shards = _finished_shards(self)
        tables = [pq.read_table(p) for p, _, _ in shards]
        metas = [(t.schema.metadata or {}).get(META_KEY) for t in tables]
        for (path, _, _), meta in zip(shards, metas, strict=True):
            if meta != metas[0]:
                raise ValueError(f"{path}: tokenizer metadata {meta!r} differs from "
                                 f"{shards[0][0]}'s {metas[0]!r}")
        table = pa.concat_tables(tables)
        path = Path(self.out)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        reports = merge_reports([r for _, r, _ in shards])
        seconds = round(sum(s for _, _, s in shards), 2)
        write_sidecar(path, reports, {**self.record(None), "seconds": seconds})
        return ShardResult(path, table.num_rows, reports, seconds)


def cluster_files(files: Sequence[str | Path], config: ClusterConfig, *, progress: bool = False
                  ) -> tuple[Any, list[SelectionReport]]:
    """Jets of several HepMC files (:func:`jetfm.data.hepmc.cluster_file` of each, in
    order, ``config.n_jets`` per file) in one batch, and every file's reports in order."""
    from jetfm.data.batch import JetBatch
    from jetfm.data.hepmc import cluster_file

    results = [cluster_file(f, config, progress=progress) for f in files]
    reports = [r for _, file_reports in results for r in file_reports]
    return JetBatch.concatenate([b for b, _ in results]), reports


@dataclass(frozen=True)
class ClusterJob(_FileShards):
    """``jetfm cluster`` of HepMC ``files`` (in order) into the jet file ``out``, split into
    ``n_shards`` blocks of files."""

    files: tuple[str, ...]
    config: ClusterConfig
    out: Path
    n_shards: int = 1

    def record(self, index: int | None) -> dict[str, Any]:
        """Cuts-report record: the sources, their formats and the cluster configuration."""
        from jetfm.data.hepmc import detect_format

        files = self.files if index is None else self.files_of(index)
        record = {"source": list(files), "source_format": [detect_format(f)[0] for f in files],
                  **asdict(self.config)}
        return self.with_shard(record, index)

    def run(self, index: int, progress: bool = False) -> ShardResult:
        """Cluster the files of shard ``index`` and write its jets and cuts report."""
        from jetfm.data.io import write_jets

        start = time.perf_counter()
        record = self.record(index)
        batch, reports = cluster_files(self.files_of(index), self.config, progress=progress)
        path = self.output(index)
        write_jets(batch, path)
        seconds = round(time.perf_counter() - start, 2)
        write_sidecar(path, reports, {**record, "seconds": seconds})
        return ShardResult(path, len(batch), reports, seconds)

    def merge(self) -> ShardResult:
        return _merge_jet_files(self, add_reports=False)  # reports are per file


# ---------------------------------------------------------------------- running shards
def run_shard(job: ShardJob, index: int, progress: bool = False) -> ShardResult:
    """Shard ``index`` of ``job``: the plain function every backend maps."""
    return job.run(index, progress)


@contextmanager
def dask_client(scheduler: str, n_tasks: int) -> Iterator[Any]:
    """A ``distributed.Client``: ``scheduler`` ``"local"`` starts a ``LocalCluster`` with one
    single-threaded worker process per core (at most ``n_tasks``); else the address of a
    running scheduler. ``ValueError`` when Dask is missing or the scheduler cannot be
    reached."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ValueError(f"--dask needs dask.distributed ({err}); install it with "
                         "pip install 'jetfm[dask]'") from None
    if scheduler == "local":
        n_workers = max(1, min(n_tasks, os.cpu_count() or 1))
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {err}") from None
    with client:
        yield client


def run_shards(jobs: Sequence[ShardJob], indices: Sequence[int], scheduler: str | None = None,
               on_done: Callable[[ShardJob, int, ShardResult], None] | None = None
               ) -> list[ShardResult]:
    """Run shards ``indices`` of every job: here one after another (``scheduler`` None), or
    as Dask tasks (``"local"`` or a scheduler address, :func:`dask_client`). Results in
    (job, index) order; ``on_done`` is called as each finishes. The first failing shard's
    error is raised (the other tasks are cancelled)."""
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"the same output twice in {names}: give each process or file once")
    for job in jobs:
        for index in indices:
            check_shard(index, job.n_shards)
        if scheduler is not None and getattr(job, "workers_per_shard", 1) > 1:
            raise ValueError("--workers starts processes inside one shard, which Dask's "
                             "(daemonic) workers cannot do: with --dask the shards are the "
                             "parallel unit; raise --n-shards instead (--workers 1)")
    tasks = [(job, index) for job in jobs for index in indices]
    if scheduler is None:
        results = []
        for job, index in tasks:
            results.append(run_shard(job, index, True))
            if on_done is not None:
                on_done(job, index, results[-1])
        return results
    from distributed import as_completed

    with dask_client(scheduler, len(tasks)) as client:
        keys = [f"jetfm-{job.name}-{shard_tag(i, job.n_shards)}-{os.getpid()}-{time.time_ns()}"
                for job, i in tasks]
        futures = client.map(run_shard, [j for j, _ in tasks], [i for _, i in tasks],
                             key=keys, pure=False)
        where = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        try:
            for future in as_completed(futures):
                result = future.result()  # raises the shard's own error
                if on_done is not None:
                    on_done(*where[future.key], result)
            return [f.result() for f in futures]
        finally:
            client.cancel(futures)


# ---------------------------------------------------------------------- command options
@dataclass(frozen=True)
class ShardOptions:
    """The shard options of a command: ``n_shards``, ``shard`` (run only it), ``scheduler``
    (``"local"`` for ``--dask``, an address for ``--dask-scheduler``), ``merge``.
    ``ValueError`` for contradictory options."""

    n_shards: int = 1
    shard: int | None = None
    scheduler: str | None = None
    merge: bool = False

    def __post_init__(self) -> None:
        check_shard(0, self.n_shards)
        if self.shard is not None:
            if self.n_shards == 1:
                raise ValueError("--shard I needs --n-shards N > 1 (how many shards the work "
                                 "is split into)")
            check_shard(self.shard, self.n_shards)
            if self.scheduler is not None:
                raise ValueError("--shard runs one shard here, --dask / --dask-scheduler run "
                                 "all of them: give one of the two")
        if self.merge:
            if self.shard is not None or self.scheduler is not None:
                raise ValueError("--merge only merges finished shards: give it without "
                                 "--shard / --dask (after the shards ran)")
            if self.n_shards == 1:
                raise ValueError("--merge needs --n-shards N > 1 (the shards to merge)")

    @classmethod
    def from_args(cls, args: Any) -> ShardOptions:
        """From an argparse namespace with ``n_shards``, ``shard``, ``dask``,
        ``dask_scheduler`` and ``merge``."""
        scheduler = "local" if getattr(args, "dask", False) else getattr(args, "dask_scheduler",
                                                                          None)
        return cls(getattr(args, "n_shards", 1), getattr(args, "shard", None), scheduler,
                   getattr(args, "merge", False))

    @property
    def active(self) -> bool:
        """True when the command runs in shard mode (else it runs as without shards)."""
        return (self.n_shards > 1 or self.shard is not None or self.scheduler is not None
                or self.merge)


def run_command(jobs: Sequence[ShardJob], options: ShardOptions) -> list[ShardResult]:
    """What a command does in shard mode: merge, run one shard, or run all (here or on
    Dask), printing one line per shard and its reports."""
    from jetfm.console import Console

    console = Console(soft_wrap=True, emoji=False)

    def show(job: ShardJob, what: str, result: ShardResult) -> None:
        if result.reused:
            verb = "reusing"
        elif options.merge:  # the time is the shards' (added), not the merge's
            verb = f"{result.n_jets} jets ({result.seconds:.1f} s of shard time) ->"
        else:
            verb = f"{result.n_jets} jets in {result.seconds:.1f} s ->"
        console.print(f"[bold]{job.name}[/] {what}: {verb} {result.path}")
        for report in result.reports:
            console.print(f"  {report}")

    if options.merge:
        results = []
        for job in jobs:
            results.append(job.merge())
            show(job, f"{job.n_shards} shards merged", results[-1])
        return results
    indices = [options.shard] if options.shard is not None else list(range(options.n_shards))

    def done(job: ShardJob, index: int, result: ShardResult) -> None:
        show(job, shard_tag(index, job.n_shards), result)

    return run_shards(jobs, indices, options.scheduler, done)
