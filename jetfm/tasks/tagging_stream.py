"""Train a jet tagger on files streamed chunk by chunk (datasets larger than memory).

    config = TaggingConfig(backbone="part", classes=["QCD", "Tbqq"], training={"max_epochs": 5})
    tagger = train_tagger_stream(train_files, val_files, config, "runs/part",
                                 buffer_size=20_000, chunk_size=10_000)

The same task, optimiser, checkpoints and resume rule as
:func:`jetfm.tasks.tagging.train_tagger`, with the jets read by
:class:`jetfm.data.streaming.JetStream` s (training: a new chunk order and shuffle-buffer
draw each epoch; validation: file order) through :class:`jetfm.data.streaming.TaggerInputs`,
the preprocessing of the in-memory path. Runs on one device or with DDP (``devices``,
``strategy`` of the training block); the streams shard over processes and DataLoader workers
(``num_workers``) themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jetfm.data._files import Paths
from jetfm.data.streaming import JetStream, TaggerInputs
from jetfm.models.tagger import Tagger
from jetfm.tasks.tagging import TaggingConfig, fit_tagger
from jetfm.tasks.training import seed_all


def tagger_streams(tagger: Tagger, train_files: Paths, val_files: Paths, seed: int,
                   batch_size: int, **stream: Any) -> tuple[JetStream, JetStream]:
    """(training, validation) streams of ``tagger``'s inputs: the training one shuffled
    (chunk order and buffer drawn from ``seed`` and the epoch), the validation one in file
    order; ``stream``: further :class:`JetStream` settings (``chunk_size``, ``buffer_size``,
    ``skip_invalid``, ``uneven``, ...). Raises :class:`~jetfm.data.JetDataError` naming a
    missing or malformed file."""
    transform = TaggerInputs(tagger)
    train = JetStream(train_files, transform, batch_size=batch_size, seed=seed, **stream)
    val = JetStream(val_files, transform, batch_size=batch_size, seed=seed,
                    **{**stream, "shuffle": False})
    return train, val


def train_tagger_stream(train_files: Paths, val_files: Paths, config: TaggingConfig,
                        out_dir: str | Path, seed: int = 1, **stream: Any) -> Tagger:
    """Train the tagger of ``config`` on jets streamed from ``train_files`` (early stopping
    and the best epoch on ``val_files``); writes ``<out_dir>/tagger.safetensors`` and returns
    the tagger (eval mode, CPU).

    ``stream``: :class:`JetStream` settings (``chunk_size``, ``buffer_size``, ``uneven``,
    ``skip_invalid``, ``with_ids`` is not allowed: the task takes the inputs only). Resumes
    from ``<out_dir>/checkpoints/last.ckpt`` when that run was started with the same
    configuration, init file and files (paths and sizes; :func:`~jetfm.tasks.tagging.
    resumable`). Jets of a class outside ``config.classes`` or unlabelled raise
    :class:`~jetfm.data.JetDataError` naming the file when their chunk is read.
    """
    if stream.get("with_ids"):
        raise ValueError("with_ids: the tagging task takes the tagger inputs and labels only")
    out_dir = Path(out_dir)
    train_config = config.train_config(seed)
    seed_all(seed)  # before building the weights
    tagger = config.build()
    train, val = tagger_streams(tagger, train_files, val_files, seed, train_config.batch_size,
                                **stream)  # fit gives them the training block's num_workers
    jets = {"training": train.describe(), "validation": val.describe(),
            "stream": json.loads(json.dumps(stream, default=str))}
    return fit_tagger(tagger, train, val, config, out_dir, seed, jets)
