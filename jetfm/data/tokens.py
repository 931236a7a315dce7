"""Tokenized jet datasets in parquet, recording which tokenizer made them.

A file holds one row per jet: ``tokens`` (the ragged VQ codes of the jet's particles, pT
order, without start/stop), ``label`` (index into :data:`jetfm.data.CLASSES`), ``source`` and
``entry`` (provenance), and in the parquet key-value metadata the tokenizer's fingerprint,
its path and codebook size. Reading checks the fingerprint when a tokenizer is given, so a
dataset is never silently decoded with the wrong tokenizer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jetfm.atomic import atomic_path
from jetfm.data._files import TOKENS_META_KEY, require_parquet_kind
from jetfm.data.batch import JetDataError

META_KEY = TOKENS_META_KEY


@dataclass
class TokenDataset:
    """Codes (n_jets, n_max) int64 with mask, labels and provenance of tokenized jets."""

    codes: np.ndarray
    mask: np.ndarray
    label: np.ndarray
    tokenizer: dict[str, str | int]

    def __len__(self) -> int:
        return len(self.codes)


def write_tokens(path: str | Path, dataset: TokenDataset) -> Path:
    """Write a :class:`TokenDataset` (ragged codes) with the tokenizer record as metadata."""
    path = Path(path)
    counts = dataset.mask.sum(axis=1)
    ragged = ak.unflatten(dataset.codes[dataset.mask], counts)
    table = ak.to_arrow_table(ak.zip({"tokens": ragged, "label": dataset.label}, depth_limit=1))
    meta = {**(table.schema.metadata or {}), META_KEY: json.dumps(dataset.tokenizer).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    return path


def read_tokens(path: str | Path, n_max: int, fingerprint: str | None = None) -> TokenDataset:
    """Read a token file, padded to ``n_max``; with ``fingerprint``, check the tokenizer."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no token file {path}")
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if META_KEY not in meta:
        require_parquet_kind(path, "tokens")
        raise JetDataError(f"{path}: no '{META_KEY.decode()}' metadata; not a jetfm token file")
    record = json.loads(meta[META_KEY])
    if fingerprint is not None and record.get("fingerprint") != fingerprint:
        raise JetDataError(
            f"{path}: made by tokenizer {record.get('fingerprint')}, not {fingerprint}"
        )
    return tokens_from_table(table, path, n_max, record)


def tokens_from_table(table: pa.Table, path: str | Path, n_max: int,
                      record: dict[str, Any]) -> TokenDataset:
    """The rows of a token table (a whole file or one row group) as a :class:`TokenDataset`:
    codes (n, ``n_max``) padded with 0 and masked; ``JetDataError`` naming ``path`` when a jet
    has more than ``n_max`` tokens."""
    array = ak.from_arrow(table)
    counts = ak.to_numpy(ak.num(array["tokens"]))
    if counts.max(initial=0) > n_max:
        raise JetDataError(f"{path}: jets with {counts.max()} tokens exceed n_max = {n_max}")
    codes = ak.to_numpy(ak.fill_none(ak.pad_none(array["tokens"], n_max, clip=True), 0))
    mask = np.arange(n_max)[None, :] < counts[:, None]
    label = ak.to_numpy(array["label"]).astype(np.int64)
    return TokenDataset(codes.astype(np.int64).reshape(len(label), n_max), mask, label, record)
