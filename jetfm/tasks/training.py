"""One Lightning training loop for every jetfm task: seeds, checkpoints, early stopping, resume.

The same code runs on one CPU, one GPU or several devices with DDP (``devices``/``strategy``
of :class:`TrainConfig`; on CPU, DDP uses the gloo backend). Checkpoints are Lightning's
(atomic writes; full state for resuming) under ``<out_dir>/checkpoints``; they hold only
tensors and plain data and are loaded with ``weights_only=True``. Metrics are logged to CSV
(``<out_dir>/logs``) and, when the ``tensorboard`` package is installed (``pip install
'jetfm[tensorboard]'``), also to TensorBoard (``<out_dir>/tensorboard``: ``tensorboard --logdir
<out_dir>``); without it, CSV only, silently.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader, Sampler, TensorDataset

from jetfm._warnings import intended_eval_modes, silence_benign_warnings
from jetfm.atomic import atomic_path
from jetfm.checks import (
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    Rule,
    check_fields,
    check_flag,
    number,
)
from jetfm.data.streaming import JetStream, resume_epoch


def check_keys(block: Mapping[str, Any], valid: Iterable[str], where: str) -> None:
    """Raise ``ValueError`` naming ``where`` (file and block), the keys of ``block`` that are
    not in ``valid``, and the valid keys: a config key is either used or rejected."""
    if not isinstance(block, Mapping):
        raise ValueError(f"{where}: expected a mapping of keys, got {type(block).__name__}")
    valid = set(valid)
    unknown = set(block) - valid
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: {sorted(valid)}")


def config_keys(cls: type, exclude: Iterable[str] = ()) -> set[str]:
    """Field names of dataclass ``cls`` less ``exclude`` (fields the code sets itself)."""
    return {f.name for f in fields(cls)} - set(exclude)


def check_blocks(data: Mapping[str, Any], blocks: Mapping[str, Iterable[str]], where: str
                 ) -> None:
    """:func:`check_keys` on each block of ``data`` named in ``blocks`` (block -> valid keys);
    absent or null blocks are skipped. Errors name ``where`` and the block."""
    for block, valid in blocks.items():
        if data.get(block) is not None:
            check_keys(data[block], valid, f"{where}: {block}")


@dataclass
class TrainConfig:
    """How to train (not what): epochs, batch size, optimiser, devices, seeds.

    ``lr`` and ``weight_decay`` are the AdamW settings :func:`fit` gives the task;
    ``weight_decay=None`` keeps the task's own default (0 for the VQ-VAE tokenizers, 1e-4 for
    the GPTs, classifiers and the jet-evolution model).
    """

    max_epochs: int = 20
    max_steps: int = -1
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float | None = None
    seed: int = 1
    patience: int = 5
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    progress: bool = True
    log_every_n_steps: int = 10

    def __post_init__(self) -> None:
        """Numbers as numbers in range, ``ValueError`` naming the key otherwise (YAML reads
        ``1e-3``, no dot, as a string, which is converted): ``lr`` > 0, ``weight_decay`` >= 0
        or None, ``max_epochs``, ``batch_size``, ``log_every_n_steps`` >= 1, ``max_steps`` >= 1
        or -1 (no limit), ``patience``, ``num_workers`` >= 0, ``devices`` >= 1
        (or a string or list, checked by Lightning), ``num_nodes`` >= 1 (machines, each
        running ``devices`` processes: multi-node DDP, e.g. under SLURM's ``srun``),
        ``progress`` a bool."""
        check_fields(self, {
            "lr": POSITIVE, "weight_decay": Rule(float, low=0, optional=True),
            **dict.fromkeys(("max_epochs", "batch_size", "log_every_n_steps", "num_nodes"),
                            POSITIVE_INT),
            "max_steps": Rule(int, low=1, special=(-1,)), "seed": Rule(int),
            **dict.fromkeys(("patience", "num_workers"), NON_NEGATIVE_INT)})
        if not isinstance(self.devices, str | list):  # "auto", [0, 1]: Lightning checks them
            self.devices = number("devices", self.devices, POSITIVE_INT)
        for name in ("accelerator", "strategy"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not a string")
        check_flag("progress", self.progress)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any], seed: int,
                       where: str = "training block") -> TrainConfig:
        """Defaults, then ``seed``, then the plain-data ``overrides`` (e.g. a YAML block).

        Raises ``ValueError`` naming ``where``, the unknown keys and the valid ones.
        """
        check_keys(overrides, config_keys(cls), where)
        try:
            return cls(**{"seed": seed, **overrides})
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def optimiser(self) -> dict[str, float]:
        """The AdamW settings (``lr`` and, unless None, ``weight_decay``) for a task's
        hyperparameters."""
        out = {"lr": self.lr}
        if self.weight_decay is not None:
            out["weight_decay"] = self.weight_decay
        return out


TRAIN_KEYS = frozenset(config_keys(TrainConfig))
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def check_accelerator(name: str) -> str:
    """``name`` if Lightning can train on it here; ``ValueError`` naming it otherwise
    (``gpu`` without a CUDA device, ``mps`` without MPS, a name jetfm does not run on), so a
    command stops before any work instead of deep inside Lightning."""
    if name not in ACCELERATORS:
        raise ValueError(f"accelerator {name!r}: use one of {list(ACCELERATORS)}")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"accelerator {name}: no CUDA device on this machine (use cpu or auto)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("accelerator mps: MPS is not available on this machine")
    return name


def tensor_dataset(*arrays: np.ndarray) -> TensorDataset:
    """TensorDataset of numpy arrays (float -> float32, int -> int64, bool -> bool)."""
    tensors = []
    for a in arrays:
        t = torch.as_tensor(np.asarray(a))
        if t.is_floating_point():
            t = t.float()
        tensors.append(t)
    return TensorDataset(*tensors)


def seed_all(seed: int) -> None:
    """Seed Python, numpy and torch (and dataloader workers): call before building a model so
    that its initial weights, not only the training, follow the seed."""
    L.seed_everything(seed, workers=True, verbose=False)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split of ``n`` items (validation at least 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    return order[n_val:], order[:n_val]


def fit(
    module: L.LightningModule,
    train: TensorDataset | JetStream,
    val: TensorDataset | JetStream,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: str | Path | None = None,
    monitor: str = "val/loss",
    callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """Train ``module``; afterwards it holds the weights of the best validation epoch.

    ``config``'s optimiser settings (:meth:`TrainConfig.optimiser`) replace the module's
    ``lr``/``weight_decay`` hyperparameters, so every key of a training block reaches the
    optimiser. Metrics go to ``<out_dir>/logs/metrics.csv`` (and, when the ``tensorboard``
    package can be imported, to TensorBoard event files in ``<out_dir>/tensorboard``: the same
    logged values); with ``resume``, the rows of the
    earlier run(s) (those of the checkpoint's run folder, or of ``out_dir``) come first in it
    (see :func:`_keep_history`). ``callbacks``: extra Lightning callbacks (e.g.
    ``EMAWeightAveraging``, whose averaged weights are what checkpoints and the returned module
    hold).

    On one device the training batches are drawn in an order that depends only on the seed and
    the epoch (:class:`EpochShuffle`), so a run resumed from a checkpoint sees the batches the
    uninterrupted run would have seen (with DDP, Lightning's ``DistributedSampler`` does the
    same). ``train`` and ``val`` may be :class:`~jetfm.data.streaming.JetStream` s (files
    streamed in chunks): they shard over processes and workers, order and batch themselves
    (``config.batch_size`` and ``num_workers`` are given to them).
    """
    out_dir = Path(out_dir)
    check_accelerator(config.accelerator)
    if isinstance(module, LossTask):
        module.hparams.update(config.optimiser())
    # Lightning's device banner and tips at INFO level drown the progress output.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    silence_benign_warnings()  # Lightning's known-benign ones only; see jetfm/_warnings.py
    seed_all(config.seed)
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", monitor=monitor, save_last=True, filename="best"
    )
    loggers: list[Any] = [CSVLogger(out_dir, name="logs", version="")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(out_dir, name="tensorboard", version=""))
    # checked when validation ends (Lightning checks at the end of each training epoch by
    # default, and raises there when max_steps ends the run before its first validation)
    stopping = EarlyStopping(monitor=monitor, patience=config.patience,
                             check_on_train_epoch_end=False)
    callbacks = [checkpoint, stopping, *callbacks]
    if config.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    if isinstance(train, JetStream):  # shards, orders and batches itself
        train_loader = train.loader(config.batch_size, config.num_workers)
        if resume:  # its workers start before Lightning's set_epoch: the resumed epoch's order
            train_loader.dataset.set_epoch(resume_epoch(resume))
    else:
        if config.devices == 1 and config.num_nodes == 1:
            order: dict[str, Any] = {"sampler": EpochShuffle(len(train), config.seed)}
        else:  # Lightning puts in a DistributedSampler (seeded, per epoch)
            order = {"shuffle": True, "generator": torch.Generator().manual_seed(config.seed)}
        train_loader = DataLoader(
            train,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            **order,
        )
    val_loader = (val.loader(config.batch_size, config.num_workers)
                  if isinstance(val, JetStream) else
                  DataLoader(val, batch_size=config.batch_size, num_workers=config.num_workers))
    val_check_interval, check_val_every_n_epoch = validation_schedule(
        config.max_steps, config.max_epochs, len(train_loader),
        config.devices if config.num_nodes == 1 else None)
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        max_steps=config.max_steps,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        callbacks=callbacks,
        logger=loggers,
        log_every_n_steps=config.log_every_n_steps,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        deterministic="warn",
        default_root_dir=out_dir,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=check_val_every_n_epoch,
    )
    metrics_csv = out_dir / "logs" / "metrics.csv"
    # Lightning's CSV logger deletes an existing metrics.csv when it starts: read it first.
    history = _read_metrics(_history_file(Path(resume), metrics_csv)) if resume else None
    try:
        with intended_eval_modes(module):  # e.g. a frozen tokenizer: no warning for it
            trainer.fit(
                module, train_loader, val_loader, ckpt_path=str(resume) if resume else None,
                weights_only=True,
            )
    finally:
        if history is not None and trainer.global_rank == 0:
            _keep_history(metrics_csv, history)
    best = checkpoint.best_model_path
    if best and not Path(best).exists():  # a resumed run whose folder has moved
        best = out_dir / "checkpoints" / Path(best).name
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    return trainer


class EpochShuffle(Sampler[int]):
    """A random order of ``n`` items that depends only on ``seed`` and the epoch (Lightning
    calls :meth:`set_epoch` before each), so a resumed run repeats the uninterrupted one."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


def validation_schedule(max_steps: int, max_epochs: int, n_batches: int, devices: Any
                        ) -> tuple[int | None, int | None]:
    """Lightning's ``(val_check_interval, check_val_every_n_epoch)`` for a run of at most
    ``max_steps`` steps and ``max_epochs`` epochs of ``n_batches`` batches.

    By default validation runs at the end of every epoch. When the step budget ends the run
    before ``max_epochs`` and not at an epoch's end (``max_steps`` not a multiple of
    ``n_batches``), the last steps would never be validated and the weights kept would be
    those of an earlier epoch; then validation runs every ``max_steps / m`` steps instead,
    counted across epochs, with m the smallest whole number of validations no sparser than
    one per epoch that divides ``max_steps`` (e.g. 1000 steps of 391-batch epochs: every 250
    steps), so the final step is validated. One device only (with DDP each device's share
    of the batches is not known here): ``(None, 1)`` otherwise, Lightning's default.
    """
    if (devices != 1 or max_steps <= 0 or n_batches <= 0 or max_steps % n_batches == 0
            or 0 < max_epochs and max_steps >= max_epochs * n_batches):
        return None, 1
    m = math.ceil(max_steps / n_batches)
    while max_steps % m:
        m += 1
    return max_steps // m, None


def _history_file(checkpoint: Path, metrics_csv: Path) -> Path:
    """The metrics of the run ``checkpoint`` belongs to (``<run>/checkpoints/x.ckpt`` ->
    ``<run>/logs/metrics.csv``) when there are any, else ``metrics_csv``."""
    own = checkpoint.parent.parent / "logs" / "metrics.csv"
    return own if checkpoint.parent.name == "checkpoints" and own.exists() else metrics_csv


def _read_metrics(path: Path) -> pd.DataFrame | None:
    """The rows of a Lightning ``metrics.csv`` (None when there is none)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    return pd.read_csv(path)


def _keep_history(path: Path, history: pd.DataFrame) -> None:
    """Put the rows of the earlier run(s) back in front of a resumed run's ``metrics.csv``.

    Earlier rows of the epochs the resumed run logged again (a run resumed from a checkpoint
    older than its last logged epoch) are replaced by the new ones; columns are the union.
    Written atomically (temp file + rename).
    """
    new = _read_metrics(path)
    if new is not None and len(new) and "epoch" in new and "epoch" in history:
        history = history[history["epoch"] < new["epoch"].min()]
    merged = history if new is None else pd.concat([history, new], ignore_index=True)
    merged = merged[sorted(merged.columns)]
    with atomic_path(path) as tmp:
        merged.to_csv(tmp, index=False)


OPTIMIZERS = ("adamw", "lion")


def adamw_with_cosine(
    module: L.LightningModule, groups: list[dict[str, Any]], lr: float, weight_decay: float,
    optimizer: str = "adamw", betas: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """AdamW (or Lion, ``optimizer="lion"``: Chen et al. 2023, arXiv:2302.06675, the
    ``lion-pytorch`` package; OmniLearned's optimiser, betas (0.95, 0.98)) over parameter
    ``groups`` (each may set its own lr) with cosine decay per step. ``betas``: None for the
    optimiser's default."""
    extra = {} if betas is None else {"betas": tuple(betas)}
    if optimizer == "lion":
        from lion_pytorch import Lion

        optimizer = Lion(groups, lr=lr, weight_decay=weight_decay, **extra)
    elif optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, **extra)
    else:
        raise ValueError(f"optimizer {optimizer!r}: use one of {list(OPTIMIZERS)}")
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.0)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LossTask(L.LightningModule):
    """The loop every jetfm task shares: a subclass defines ``_step(batch, stage) -> loss`` (and
    logs), its hyperparameters ``lr`` and ``weight_decay``; AdamW with cosine decay."""

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define _step")

    def log_losses(self, out: dict[str, torch.Tensor], stage: str, batch_size: int
                   ) -> torch.Tensor:
        """Log every entry of ``out`` as ``<stage>/<name>`` (epoch means weighted by
        ``batch_size``, synchronised over devices in validation); returns ``out["loss"]``."""
        self.log_dict({f"{stage}/{k}": v for k, v in out.items()}, prog_bar=stage == "val",
                      on_epoch=True, on_step=False, batch_size=batch_size,
                      sync_dist=stage == "val")
        return out["loss"]

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_with_cosine(self, [{"params": self.parameters()}], hp.lr, hp.weight_decay)
