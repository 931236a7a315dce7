"""Stream jets from files too large for memory (JetClass: 100M jets, AspenOpenJets: 180M).

    stream = JetStream(files, TaggerInputs(tagger), batch_size=256, seed=1)
    for batch in stream.loader(num_workers=4):   # dicts of (256, ...) tensors
        ...
    fit(task, stream, val_stream, config, out_dir)  # jetfm.tasks.training.fit takes streams

A :class:`JetStream` is a :class:`torch.utils.data.IterableDataset` over any number of files
of the formats in :data:`STREAM_FORMATS` (the suffix, for ``.parquet`` the file's metadata,
tells which; ``fmt`` forces one). Each file is cut into *chunks*: ``chunk_size`` entries of a
JetClass ROOT tree (read with uproot as :func:`jetfm.data.jetclass.read_jetclass` does) or of
an AspenOpenJets ``PFCands`` dataset (h5py slices, :func:`jetfm.data.aspen.read_aspen`), or
one row group of a jetfm Parquet jet file or token file (pyarrow). Every file is opened when
the stream is built, so a missing file, an unknown format or a missing tree, dataset, branch
or column raises :class:`~jetfm.data.JetDataError` then, naming the file and the key.

One epoch, for every process and DataLoader worker (a *shard*; rank r, worker w of W is
shard ``r * W + w`` of ``S = world_size * W``):

1. the chunks are put in an order drawn from ``(seed, epoch)`` (file order without
   ``shuffle``), which numbers the jets of the epoch 0 .. N-1;
2. shard s takes the jets ``[s N // S, (s + 1) N // S)`` of that numbering: the shards
   partition the epoch, every jet is read by exactly one of them, and the jets of a shard are
   a few consecutive chunks (the chunks at its ends are read in part);
3. each chunk is read, given to ``transform`` (the model's preprocessing, applied jet by jet:
   see :class:`TaggerInputs`, :class:`TokenSequences`) and its rows pass through a shuffle
   buffer of ``buffer_size`` jets (each incoming jet takes the slot of a random buffered jet,
   which goes out; what is left is shuffled at the end: a permutation, so the multiset of jets
   is unchanged), then go out in batches of ``batch_size`` jets (the last one of a shard may
   be smaller).

Uneven splits. DDP needs every process to take the same number of optimiser steps; with
``world_size > 1`` and N not a multiple of S the shards are made equal by ``uneven``:
``"pad"`` (default, as torch's ``DistributedSampler``) tops each short shard up with one
repeat of the jet at its start, so ``S * ceil(N / S) - N`` (< S) jets are seen twice in the
epoch; ``"drop"`` gives each shard ``N // S`` jets, leaving out the last ``N mod S`` of the
epoch's numbering (other jets each epoch, since the chunk order changes). Either is logged
(WARNING, once per epoch, with the count). With one process the shards may differ by one jet
and every jet is seen exactly once. Jets left out by ``skip_invalid`` (the readers log each
count) are made up, with ``world_size > 1``, by repeats of the shard's first jet, counted in
a WARNING line.

Sharding comes from ``rank``/``world_size`` (default: ``torch.distributed`` when it is
initialised, else 0 / 1) and the DataLoader's worker info; Lightning does not put a
``DistributedSampler`` on an iterable dataset. The stream batches itself: use it through
:meth:`JetStream.loader` (a DataLoader with ``batch_size=None`` and ``num_workers`` equal to
the stream's, which ``len`` relies on: a worker count other than the stream's raises
``ValueError``). ``len(stream)`` is this process's number of batches per epoch. The epoch is
set by :meth:`JetStream.set_epoch`, which Lightning calls at each epoch start through the
loader's sampler (the hook it uses for ``DistributedSampler``); a run resumed with workers
sets it from the checkpoint first (:func:`resume_epoch`).
"""

from __future__ import annotations

import copy
import gc
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from jetfm.data import aspen, jetclass
from jetfm.data._files import (
    TOKENS_META_KEY,
    Paths,
    as_paths,
    open_hdf5,
    parquet_kind,
    require_keys,
    validated,
)
from jetfm.data.batch import (
    MOMENTUM_FIELDS,
    OPTIONAL_PARTICLE_FIELDS,
    JetBatch,
    JetDataError,
    SelectionReport,
)
from jetfm.data.classes import CLASSES
from jetfm.data.io import detect_format
from jetfm.data.tokens import TokenDataset, tokens_from_table

log = logging.getLogger("jetfm.data.streaming")

STREAM_FORMATS: tuple[str, ...] = ("jetclass", "aspen", "parquet", "tokens")
"""Formats a :class:`JetStream` reads: JetClass ROOT, AspenOpenJets HDF5, jetfm Parquet jet
files (:mod:`jetfm.data.parquet`) and token files (:mod:`jetfm.data.tokens`)."""
UNEVEN_POLICIES: tuple[str, ...] = ("pad", "drop")
ID_KEYS: tuple[str, str] = ("file", "entry")
Columns = dict[str, np.ndarray] | tuple[np.ndarray, ...]


@dataclass
class Transformed:
    """What a transform may return: the per-jet ``columns`` (a dict or tuple of arrays, jets
    first) and the reports of what its cuts removed (summed over a shard and logged)."""

    columns: Columns
    reports: list[SelectionReport] = field(default_factory=list)


Transform = Callable[[Any], "Columns | Transformed"]


@dataclass(frozen=True)
class Chunk:
    """Entries ``[start, stop)`` of file ``file`` (an index into :attr:`JetStream.files`);
    ``row_group``: the Parquet row group they are (None for ROOT and HDF5 files)."""

    file: int
    start: int
    stop: int
    row_group: int | None = None

    def __len__(self) -> int:
        return self.stop - self.start


def stream_format(path: str, fmt: str | None = None) -> str:
    """The :data:`STREAM_FORMATS` name of ``path`` (from its suffix; a ``.parquet`` file that
    holds tokens is ``"tokens"``); :class:`JetDataError` naming the file otherwise."""
    name = fmt or detect_format(path)
    if name == "parquet" and fmt is None and parquet_kind(path) == "tokens":
        name = "tokens"
    if name not in STREAM_FORMATS:
        raise JetDataError(f"{path}: format {name!r} cannot be streamed (streamable: "
                           f"{list(STREAM_FORMATS)}); read it with read_jets")
    return name


def _row_groups(path: str) -> tuple[pq.ParquetFile, list[int]]:
    try:
        file = pq.ParquetFile(path)
    except Exception as err:  # pyarrow: ArrowInvalid, OSError
        raise JetDataError(f"{path}: not a readable Parquet file ({err})") from err
    meta = file.metadata
    return file, [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def _inspect_parquet(path: str) -> list[int]:
    """Row-group sizes of a jetfm Parquet jet file; the checks of ``read_parquet`` made on
    the schema alone (jetfm metadata, class list, ``particles`` with the four-momenta)."""
    file, sizes = _row_groups(path)
    schema = file.schema_arrow
    attrs = json.loads((schema.metadata or {}).get(b"AWKWARD_ATTRS", b"{}"))
    meta = attrs.get("jetfm")
    if meta is None:
        raise JetDataError(f"{path}: no 'jetfm' key in the Parquet metadata (not a jetfm file)")
    if list(meta.get("classes", [])) != list(CLASSES):
        raise JetDataError(f"{path}: written with the class list {meta.get('classes')} (jetfm "
                           f"{meta.get('version')}), this jetfm uses {list(CLASSES)}")
    require_keys(path, schema.names, ("particles",), "columns")
    item = schema.field("particles").type
    while hasattr(item, "value_type"):  # list<struct<...>>
        item = item.value_type
    names = [item.field(i).name for i in range(item.num_fields)] if hasattr(
        item, "num_fields") else []
    require_keys(path, names, MOMENTUM_FIELDS, "particle fields")
    return sizes


def _inspect_tokens(path: str, fingerprint: str | None) -> list[int]:
    """Row-group sizes of a token file, its metadata and columns checked."""
    file, sizes = _row_groups(path)
    meta = file.schema_arrow.metadata or {}
    if TOKENS_META_KEY not in meta:
        raise JetDataError(f"{path}: no '{TOKENS_META_KEY.decode()}' metadata; not a jetfm "
                           "token file")
    record = json.loads(meta[TOKENS_META_KEY])
    if fingerprint is not None and record.get("fingerprint") != fingerprint:
        raise JetDataError(f"{path}: made by tokenizer {record.get('fingerprint')}, not "
                           f"{fingerprint}")
    require_keys(path, file.schema_arrow.names, ("tokens", "label"), "columns")
    return sizes


def _read_root_range(path: str, start: int, stop: int, skip_invalid: bool) -> JetBatch:
    """Entries ``[start, stop)`` of a JetClass file, as
    :func:`jetfm.data.jetclass.read_jetclass` reads them (its helpers), with uproot's array
    cache off and the file closed afterwards. ``read_jetclass`` leaves the file to the
    garbage collector, and its 100 MB array cache, in reference cycles, lives until a full
    collection: streaming grew by ~100 MB per 1e5 jets that way (RssAnon, measured)."""
    tree = jetclass._open_tree(path)
    file = tree.tree.file
    file.array_cache = None
    try:
        with jetclass._readable(path):
            arrays = tree.read(start, stop)
        entry = np.arange(start, stop, dtype=np.int64)
        batch = jetclass._to_batch(tree, arrays, entry, 0, (path,))
    finally:
        file.close()
    return validated(batch, path, skip_invalid)


def _read_parquet_rows(path: str, row_group: int, offset: int) -> JetBatch:
    """One row group of a jetfm Parquet jet file as :func:`jetfm.data.parquet.read_parquet`
    reads the file, not yet validated (``offset``: the file row of its first jet;
    ``read_parquet`` reads whole files, so its conversion is repeated here for one row
    group)."""
    try:
        table = ak.from_parquet(path, row_groups=[row_group])
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise JetDataError(f"{path}: row group {row_group} not readable ({err})") from err
    meta, n = table.attrs.get("jetfm") or {}, len(table)
    particles = table["particles"]
    known = [f for f in particles.fields if f in MOMENTUM_FIELDS + OPTIONAL_PARTICLE_FIELDS]
    if len(known) < len(particles.fields):
        particles = particles[known]  # read_parquet logs the unknown ones; so does this once
        log.warning("%s: skipping particle fields unknown to this jetfm", path)
    source_files = tuple(meta.get("source_files", ()))

    def integers(name: str) -> np.ndarray:
        if name not in table.fields:
            return np.full(n, -1, dtype=np.int64)
        return ak.to_numpy(table[name]).astype(np.int64)

    label, source, entry = integers("label"), integers("source"), integers("entry")
    unknown = source < 0  # jets made in memory: this file is their source
    if unknown.any():
        source_files += (path,)
        source[unknown] = len(source_files) - 1
        entry[unknown] = np.arange(offset, offset + n)[unknown]
    extra = {}
    if "extra" in table.fields:
        for key in table["extra"].fields:
            column = table["extra"][key]
            regular = column.ndim == 1 or column.layout.purelist_isregular
            extra[key] = ak.to_numpy(column) if regular else column
    return JetBatch(particles, label=label, extra=extra, source_files=source_files,
                    source=source, entry=entry)


def _read_token_rows(path: str, row_group: int, n_max: int) -> TokenDataset:
    """One row group of a token file, codes padded to ``n_max`` (as ``read_tokens``)."""
    try:
        table = pq.ParquetFile(path).read_row_group(row_group)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for damaged files
        raise JetDataError(f"{path}: row group {row_group} not readable ({err})") from err
    record = json.loads(table.schema.metadata[TOKENS_META_KEY])
    return tokens_from_table(table, path, n_max, record)


class _Collector:
    """Full garbage collections between chunk reads, taking at most ~5 % of the time.

    Each ROOT read leaves ~2,400 uproot objects (the file's TTree and TBranch models, which
    point at each other) that only a full collection frees; CPython runs one when the
    objects promoted since the last reach a quarter of all long-lived ones (~500k with torch
    and Lightning loaded), so without this the resident memory grew by ~0.3 MB per chunk
    (+40 % over 1e6 jets in ``benchmarks/bench_streaming.py``). A collection costs
    0.1-0.5 s there; it runs when 20 times its last cost (at first 0.05 s: after 1 s of
    streaming) has passed since the last one ended.
    """

    def __init__(self) -> None:
        self.end, self.cost = time.perf_counter(), 0.05

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self.end >= 20 * self.cost:
            gc.collect()
            self.end = time.perf_counter()
            self.cost = self.end - now


def _merge(reports: dict[str, SelectionReport], new: Sequence[SelectionReport]) -> None:
    """Add ``new`` into ``reports`` (by name: jets or particles before/after, reasons)."""
    for report in new:
        old = reports.get(report.name)
        if old is None:
            reports[report.name] = SelectionReport(report.name, report.n_before,
                                                   report.n_after, dict(report.removed))
            continue
        old.n_before += report.n_before
        old.n_after += report.n_after
        for key, value in report.removed.items():
            old.removed[key] = old.removed.get(key, 0) + value


class _ShuffleBuffer:
    """A shuffle buffer of ``capacity`` rows held in preallocated arrays (one per column).

    Filling: rows go in until full. Then each group of m incoming rows takes m distinct
    random slots, whose rows go out. :meth:`flush` returns what is left in random order.
    ``capacity`` 0: rows pass through in order.
    """

    def __init__(self, capacity: int, rng: np.random.Generator, step: int) -> None:
        self.capacity, self.rng, self.step = capacity, rng, max(1, min(step, capacity or 1))
        self.arrays: list[np.ndarray] | None = None
        self.fill = 0

    def _allocate(self, columns: list[np.ndarray]) -> None:
        if self.arrays is None:
            self.arrays = [np.empty((self.capacity, *c.shape[1:]), c.dtype) for c in columns]
            return
        for i, (have, new) in enumerate(zip(self.arrays, columns, strict=True)):
            if have.shape[1:] != new.shape[1:] or have.dtype != new.dtype:
                raise ValueError(f"transform output {i}: shape {new.shape[1:]} {new.dtype} per "
                                 f"jet, earlier chunks gave {have.shape[1:]} {have.dtype}")

    def push(self, columns: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
        n = len(columns[0])
        if self.capacity == 0:
            if n:
                yield columns
            return
        self._allocate(columns)
        assert self.arrays is not None
        i = 0
        while i < n:
            if self.fill < self.capacity:
                m = min(self.capacity - self.fill, n - i)
                for buf, col in zip(self.arrays, columns, strict=True):
                    buf[self.fill : self.fill + m] = col[i : i + m]
                self.fill += m
            else:
                m = min(self.step, n - i)
                slots = self.rng.choice(self.capacity, m, replace=False)
                out = [buf[slots] for buf in self.arrays]
                for buf, col in zip(self.arrays, columns, strict=True):
                    buf[slots] = col[i : i + m]
                yield out
            i += m

    def flush(self) -> Iterator[list[np.ndarray]]:
        if self.arrays is None or self.fill == 0:
            return
        order = self.rng.permutation(self.fill)
        for start in range(0, self.fill, 4096):
            yield [buf[order[start : start + 4096]] for buf in self.arrays]
        self.fill = 0


class _Batcher:
    """Rows (lists of column blocks) -> batches of exactly ``size`` rows, then the rest."""

    def __init__(self, size: int) -> None:
        self.size, self.blocks, self.n = size, [], 0

    def add(self, block: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
        self.blocks.append(block)
        self.n += len(block[0])
        if self.n < self.size:
            return
        columns = [np.concatenate(parts) for parts in zip(*self.blocks, strict=True)]
        n_full = (self.n // self.size) * self.size
        for start in range(0, n_full, self.size):
            yield [c[start : start + self.size] for c in columns]
        self.blocks = [[c[n_full:] for c in columns]] if n_full < self.n else []
        self.n -= n_full

    def rest(self) -> Iterator[list[np.ndarray]]:
        if self.n:
            yield [np.concatenate(parts) for parts in zip(*self.blocks, strict=True)]
        self.blocks, self.n = [], 0


def _tensor(array: np.ndarray) -> torch.Tensor:
    """float -> float32 (as ``tensor_dataset`` and ``InputsDataset``), others kept."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.float() if tensor.is_floating_point() else tensor


class JetStream(IterableDataset):
    """Batches of preprocessed jets read chunk by chunk from ``files`` (see the module
    docstring for the epoch, the sharding and the uneven-split policy).

    ``transform``: called on each chunk (a :class:`~jetfm.data.JetBatch`; a
    :class:`~jetfm.data.tokens.TokenDataset` for token files), returns a dict or tuple of
    arrays with one row per jet (or a :class:`Transformed`); row i must depend on jet i only
    (every transform of the in-memory path does), so chunking changes nothing. Floating
    arrays come out as float32 tensors. ``with_ids``: add int64 columns ``file`` (index into
    :attr:`files`) and ``entry`` (entry or row in that file) to dicts (at the end of tuples).
    ``batch_size`` >= 1 jets per batch (default 128, :class:`~jetfm.tasks.training.
    TrainConfig`'s; :func:`~jetfm.tasks.training.fit` sets it from the training block);
    ``chunk_size`` >= 1 entries read at a time from ROOT and HDF5 files (default 10,000, the
    slice of :func:`~jetfm.data.aspen.read_aspen`; Parquet files are read a row group at a
    time: write big ones with several row groups); ``buffer_size`` >= 0 jets in the shuffle
    buffer (default 10,000, torchdata's ``Shuffler`` default; 58 MB of ParT inputs of 128
    particles). Memory: per process (and worker) one chunk, read and transformed, plus the
    buffer, whatever the number of jets; ``shuffle``: a new chunk order per epoch and the
    buffer (False: file order, no buffer, e.g. for validation); ``uneven``: ``"pad"`` or
    ``"drop"``; ``num_workers``: DataLoader workers per process (:meth:`loader` sets it);
    ``n_max``, ``fingerprint``: token files only (codes padded to ``n_max``; the tokenizer
    fingerprint the files must carry). ``fmt``: one of :data:`STREAM_FORMATS` for every file.

    Raises :class:`~jetfm.data.JetDataError` naming the file (and the tree, dataset, branch or
    column) for a missing, unreadable or wrong-format file, jet and token files mixed, or no
    jets at all; ``ValueError`` for a bad setting.
    """

    def __init__(
        self,
        files: Paths,
        transform: Transform,
        *,
        batch_size: int = 128,
        chunk_size: int = 10_000,
        buffer_size: int = 10_000,
        shuffle: bool = True,
        seed: int = 1,
        uneven: str = "pad",
        rank: int | None = None,
        world_size: int | None = None,
        num_workers: int = 0,
        skip_invalid: bool = False,
        with_ids: bool = False,
        n_max: int | None = None,
        fingerprint: str | None = None,
        fmt: str | None = None,
    ) -> None:
        for name, value, low in (("batch_size", batch_size, 1), ("chunk_size", chunk_size, 1),
                                 ("buffer_size", buffer_size, 0), ("num_workers", num_workers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if uneven not in UNEVEN_POLICIES:
            raise ValueError(f"uneven: {uneven!r} is not one of {list(UNEVEN_POLICIES)}")
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither (from torch.distributed)")
        if world_size is not None and not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size = {world_size})")
        if not callable(transform):
            raise ValueError(f"transform must be callable, got {transform!r}")
        self.files = as_paths(files)
        self.transform = transform
        self.batch_size, self.chunk_size, self.buffer_size = batch_size, chunk_size, buffer_size
        self.shuffle, self.seed, self.uneven = bool(shuffle), int(seed), uneven
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.skip_invalid, self.with_ids = bool(skip_invalid), bool(with_ids)
        self.n_max, self.fingerprint = n_max, fingerprint
        self.epoch = 0
        self.formats = [stream_format(p, fmt) for p in self.files]
        kinds = {"tokens" if f == "tokens" else "jets" for f in self.formats}
        if len(kinds) > 1:
            tokens = [p for p, f in zip(self.files, self.formats, strict=True) if f == "tokens"]
            raise JetDataError(f"{tokens[0]} is a token file but other files hold jets: stream "
                               "token files and jet files separately")
        if "tokens" in kinds and (not isinstance(n_max, int) or n_max < 1):
            raise ValueError(f"{self.files[0]}: token files need n_max (the tokenizer's), got "
                             f"{n_max!r}")
        self.chunks: list[Chunk] = []
        for i, (path, name) in enumerate(zip(self.files, self.formats, strict=True)):
            self.chunks += self._file_chunks(i, path, name)
        self.sizes = np.array([len(c) for c in self.chunks], dtype=np.int64)
        self.n_jets = int(self.sizes.sum())
        if self.n_jets == 0:
            raise JetDataError(f"{', '.join(self.files[:3])}: no jets in the "
                               f"{len(self.files)} file(s)")

    def _file_chunks(self, index: int, path: str, name: str) -> list[Chunk]:
        """The chunks of one file; opening it checks its layout (errors name file and key)."""
        if name in ("parquet", "tokens"):
            sizes = (_inspect_parquet(path) if name == "parquet"
                     else _inspect_tokens(path, self.fingerprint))
            starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
            if max(sizes, default=0) > 10 * self.chunk_size:
                log.warning("%s: row groups of up to %d jets are read whole (chunk_size %d): "
                            "write the file with smaller row groups to stream it in less "
                            "memory", path, max(sizes), self.chunk_size)
            return [Chunk(index, int(starts[g]), int(starts[g + 1]), g)
                    for g in range(len(sizes)) if sizes[g]]
        if name == "jetclass":
            tree = jetclass._open_tree(path).tree
            n = tree.num_entries
            tree.file.close()
        else:
            with open_hdf5(path) as file:
                n = len(aspen._datasets(path, file)[0])
        return [Chunk(index, s, min(s + self.chunk_size, n)) for s in range(0, n, self.chunk_size)]

    # ------------------------------------------------------------------ epoch and sharding
    def set_epoch(self, epoch: int) -> None:
        """Use the chunk order and buffer draws of ``epoch`` (Lightning calls it each epoch
        through :meth:`loader`'s sampler)."""
        self.epoch = int(epoch)

    def ranks(self) -> tuple[int, int]:
        """(rank, world size): as given, else from ``torch.distributed`` when initialised,
        else (0, 1)."""
        if self.world_size is not None:
            return int(self.rank), int(self.world_size)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def chunk_order(self, epoch: int) -> np.ndarray:
        """Chunk indices in the order of ``epoch``: a permutation drawn from (seed, epoch) with
        ``shuffle``, else file order."""
        if not self.shuffle:
            return np.arange(len(self.chunks))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.chunks))

    def shard_range(self, shard: int, n_shards: int, world_size: int) -> tuple[int, int, int]:
        """``(start, stop, n_pad)`` of ``shard``: its jets in the epoch numbering and the
        repeats that top it up (see the module docstring)."""
        n = self.n_jets
        if world_size > 1 and self.uneven == "drop":
            m = n // n_shards
            if m == 0:
                raise ValueError(f"{n} jets for {n_shards} shards (processes x workers): "
                                 "uneven='drop' leaves none; use 'pad' or fewer workers")
            return shard * m, (shard + 1) * m, 0
        start, stop = shard * n // n_shards, (shard + 1) * n // n_shards
        pad = -(-n // n_shards) - (stop - start) if world_size > 1 else 0
        return start, stop, pad

    def shard_sizes(self) -> list[int]:
        """Jets each worker of this process yields per epoch (repeats included)."""
        rank, world = self.ranks()
        n_shards = world * max(self.num_workers, 1)
        sizes = []
        for worker in range(max(self.num_workers, 1)):
            start, stop, pad = self.shard_range(rank * max(self.num_workers, 1) + worker,
                                                n_shards, world)
            sizes.append(stop - start + pad)
        return sizes

    def __len__(self) -> int:
        """Batches this process yields per epoch (over its ``num_workers`` workers)."""
        return sum(math.ceil(n / self.batch_size) for n in self.shard_sizes())

    def pieces(self, epoch: int, start: int, stop: int, n_pad: int = 0
               ) -> list[tuple[int, int, int]]:
        """``(chunk, entry_start, entry_stop)`` reads covering jets ``[start, stop)`` of
        ``epoch``'s numbering, then ``n_pad`` single-jet reads of the jet at ``start``."""
        order = self.chunk_order(epoch)
        ends = np.cumsum(self.sizes[order])
        begins = ends - self.sizes[order]
        out = []
        for k in range(int(np.searchsorted(ends, start, side="right")), len(order)):
            if begins[k] >= stop:
                break
            chunk = self.chunks[order[k]]
            lo, hi = max(start, begins[k]) - begins[k], min(stop, ends[k]) - begins[k]
            out.append((int(order[k]), chunk.start + int(lo), chunk.start + int(hi)))
        for _ in range(n_pad):
            position = start % self.n_jets
            k = int(np.searchsorted(ends, position, side="right"))
            chunk = self.chunks[order[k]]
            first = chunk.start + int(position - begins[k])
            out.append((int(order[k]), first, first + 1))
        return out

    # ------------------------------------------------------------------ reading
    def read(self, chunk_index: int, start: int, stop: int) -> tuple[Any, np.ndarray]:
        """Entries ``[start, stop)`` of the chunk's file: a JetBatch (a TokenDataset for
        token files) validated by the format's reader (invalid jets raise
        :class:`~jetfm.data.JetDataError` naming the file and entry, or with ``skip_invalid``
        are left out and counted in a WARNING line), and each jet's entry (row) in the file."""
        chunk = self.chunks[chunk_index]
        path, name = self.files[chunk.file], self.formats[chunk.file]
        if name == "jetclass":  # the batch's entry is the entry in the file
            batch = _read_root_range(path, start, stop, self.skip_invalid)
            return batch, batch.entry
        if name == "aspen":
            batch = aspen.read_aspen(path, entry_start=start, entry_stop=stop,
                                     skip_invalid=self.skip_invalid)
            return batch, batch.entry
        lo, hi = start - chunk.start, stop - chunk.start
        rows = np.arange(start, stop, dtype=np.int64)
        if name == "tokens":
            tokens = _read_token_rows(path, chunk.row_group, self.n_max)
            return TokenDataset(tokens.codes[lo:hi], tokens.mask[lo:hi], tokens.label[lo:hi],
                                tokens.tokenizer), rows
        batch = _read_parquet_rows(path, chunk.row_group, chunk.start)[lo:hi]
        origin = f"{path}[rows {start}:{stop}]"
        if not self.skip_invalid:
            return batch.check(origin), rows
        kept, report = batch.drop_invalid(origin)
        if report.n_removed:
            log.warning("%s", report)
            bad = np.zeros(len(batch), dtype=bool)
            for flags in batch.problems().values():
                bad |= flags
            rows = rows[~bad]
        return kept, rows

    def _columns(self, chunk_index: int, start: int, stop: int, reports: dict
                 ) -> tuple[list[np.ndarray], list[str] | None]:
        """The transformed rows of one read, with the ids when asked for."""
        data, entry = self.read(chunk_index, start, stop)
        try:
            out = self.transform(data)
        except JetDataError as err:  # name the file streamed (jets keep their first source)
            path = self.files[self.chunks[chunk_index].file]
            raise JetDataError(f"{path}[rows {start}:{stop}]: {err}") from None
        if isinstance(out, Transformed):
            _merge(reports, out.reports)
            out = out.columns
        keys = list(out) if isinstance(out, Mapping) else None
        columns = [np.asarray(out[k]) for k in keys] if keys else [np.asarray(c) for c in out]
        n = len(data)
        bad = [i for i, c in enumerate(columns) if c.ndim == 0 or len(c) != n]
        if bad:
            raise ValueError(f"transform {self.transform!r} gave output "
                             f"{keys[bad[0]] if keys else bad[0]} of shape "
                             f"{columns[bad[0]].shape} for {n} jets; one row per jet is needed")
        if self.with_ids:
            if keys and set(ID_KEYS) & set(keys):
                raise ValueError(f"with_ids: the transform already gives {ID_KEYS}")
            columns += [np.full(n, self.chunks[chunk_index].file, np.int64),
                        np.asarray(entry, np.int64)]
            keys = keys + list(ID_KEYS) if keys else None
        return columns, keys

    def __iter__(self) -> Iterator[dict[str, torch.Tensor] | tuple[torch.Tensor, ...]]:
        rank, world = self.ranks()
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if n_workers != max(self.num_workers, 1):
            raise ValueError(f"this stream was set up for {self.num_workers} DataLoader workers "
                             f"but runs in {n_workers}: build the loader with "
                             "stream.loader(batch_size, num_workers)")
        epoch, n_shards = self.epoch, world * n_workers
        shard = rank * n_workers + worker
        start, stop, n_pad = self.shard_range(shard, n_shards, world)
        if shard == 0 and world > 1 and self.n_jets % n_shards:
            what = ("repeated (uneven='pad')" if self.uneven == "pad"
                    else "left out (uneven='drop')")
            extra = (n_shards * -(-self.n_jets // n_shards) - self.n_jets
                     if self.uneven == "pad" else self.n_jets % n_shards)
            log.warning("epoch %d: %d jets for %d shards (%d processes x %d workers): %d jets "
                        "%s so that every process takes the same number of steps", epoch,
                        self.n_jets, n_shards, world, n_workers, extra, what)
        rng = np.random.default_rng([self.seed, epoch, shard, 1])
        collect = _Collector()
        buffer = _ShuffleBuffer(self.buffer_size if self.shuffle else 0, rng, self.batch_size)
        batcher = _Batcher(self.batch_size)
        keys: list[str] | None = None
        reports: dict[str, SelectionReport] = {}
        target, n_rows, first = stop - start + n_pad, 0, None
        for piece in self.pieces(epoch, start, stop, n_pad):
            columns, keys = self._columns(*piece, reports)
            collect()
            if first is None and len(columns[0]):
                first = [c[:1].copy() for c in columns]
            n_rows += len(columns[0])
            for block in buffer.push(columns):
                yield from (self._emit(b, keys) for b in batcher.add(block))
        if world > 1 and n_rows < target:  # jets skipped as invalid: equal counts for DDP
            if first is None:
                raise JetDataError(f"epoch {epoch}, shard {shard}: no valid jet in its "
                                   f"{target} jets of {', '.join(self.files[:3])}")
            log.warning("epoch %d, shard %d: %d invalid jets skipped, replaced by repeats of "
                        "its first jet (equal steps for every process)", epoch, shard,
                        target - n_rows)
            for block in buffer.push([np.repeat(c, target - n_rows, axis=0) for c in first]):
                yield from (self._emit(b, keys) for b in batcher.add(block))
        for block in buffer.flush():
            yield from (self._emit(b, keys) for b in batcher.add(block))
        yield from (self._emit(b, keys) for b in batcher.rest())
        if reports:
            log.info("epoch %d, rank %d, worker %d: %s", epoch, rank, worker,
                     "; ".join(str(r) for r in reports.values()))

    @staticmethod
    def _emit(columns: list[np.ndarray], keys: list[str] | None
              ) -> dict[str, torch.Tensor] | tuple[torch.Tensor, ...]:
        tensors = [_tensor(c) for c in columns]
        return dict(zip(keys, tensors, strict=True)) if keys else tuple(tensors)

    # ------------------------------------------------------------------ loading
    def loader(self, batch_size: int | None = None, num_workers: int | None = None,
               **kwargs: Any) -> DataLoader:
        """A DataLoader over a copy of this stream with ``batch_size`` / ``num_workers``
        (None: the stream's); ``kwargs`` go to the DataLoader (not ``batch_size``,
        ``shuffle``, ``sampler``, ``persistent_workers``: the stream does those, and workers
        must restart each epoch to see its new order). The loader's sampler carries
        :meth:`set_epoch` for Lightning; ``loader.dataset`` is the copy."""
        refused = {"batch_size", "shuffle", "sampler", "batch_sampler", "persistent_workers"}
        if refused & set(kwargs):
            raise ValueError(f"loader: {sorted(refused & set(kwargs))} are set by the stream")
        stream = copy.copy(self)
        if batch_size is not None:
            stream.batch_size = batch_size
        if num_workers is not None:
            stream.num_workers = num_workers
        out = DataLoader(stream, batch_size=None, num_workers=stream.num_workers, **kwargs)
        out.sampler.set_epoch = stream.set_epoch  # Lightning's per-epoch hook for samplers
        return out

    def describe(self) -> dict[str, Any]:
        """What the stream reads, for a run record: the files (path, size in bytes), the
        number of jets and chunks, the seed."""
        return {"files": [[str(Path(p).resolve()), os.path.getsize(p)] for p in self.files],
                "n_jets": self.n_jets, "n_chunks": len(self.chunks), "seed": self.seed}


def resume_epoch(checkpoint: str | os.PathLike[str]) -> int:
    """The epoch a run resumed from Lightning ``checkpoint`` starts with: the fit loop's
    processed epochs (Lightning 2.x ``loops.fit_loop.epoch_progress.current.processed``,
    which it gives samplers' ``set_epoch``); 0 when the checkpoint has no loop state."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    try:
        return int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return 0


# ---------------------------------------------------------------------- transforms
class TaggerInputs:
    """Chunk -> a tagger's inputs and class positions: ``tagger.prepare`` (the backbone's
    feature spec, :meth:`jetfm.models.features.FeatureSpec.apply`, or tokenizer) and
    ``tagger.labels_of``, the rows :class:`jetfm.tasks.tagging.InputsDataset` gives
    (``mask, features, p4, [jet], [tokens], label``); its particle-cut reports are summed
    per shard and logged."""

    def __init__(self, tagger: Any) -> None:
        self.tagger = tagger

    def __call__(self, jets: JetBatch) -> Transformed:
        inputs, reports = self.tagger.prepare(jets)
        columns = {**inputs.items(), "label": self.tagger.labels_of(jets)}
        return Transformed(columns, reports)

    def __repr__(self) -> str:
        return f"TaggerInputs({type(self.tagger.backbone).__name__})"


class TokenSequences:
    """Token chunk -> ``(tokens, mask)``: the ``[start, codes + 1, stop]`` sequences
    (:meth:`jetfm.models.tokenizer.Tokenizer.to_sequences`) that
    :class:`jetfm.tasks.omnijet.GenerativeTask` trains on (as ``fit_generative``). Use with
    ``JetStream(files, TokenSequences(tokenizer), n_max=tokenizer.n_max,
    fingerprint=tokenizer.fingerprint)``."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, tokens: TokenDataset) -> tuple[np.ndarray, np.ndarray]:
        return self.tokenizer.to_sequences(tokens.codes, tokens.mask)

    def __repr__(self) -> str:
        return f"TokenSequences({self.tokenizer.fingerprint})"


class PreprocessedParticles:
    """Chunk -> ``(values, mask)`` of a :class:`~jetfm.data.transforms.Preprocessing`
    (fitted beforehand: its shift and scale are fixed numbers), the VQ-VAE tokenizer's
    inputs; cut reports summed per shard and logged."""

    def __init__(self, preprocessing: Any) -> None:
        self.preprocessing = preprocessing

    def __call__(self, jets: JetBatch) -> Transformed:
        values, mask, reports = self.preprocessing.apply(jets)
        return Transformed((values, mask), reports)
