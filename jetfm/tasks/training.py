"""One Lightning training loop for every jetfm task: seeds, checkpoints, early stopping, resume.

The same code runs on one CPU, one GPU or several devices with DDP (``devices``/``strategy``
of :class:`TrainConfig`; on CPU, DDP uses the gloo backend). Checkpoints are Lightning's
(atomic writes; full state for resuming) under ``<out_dir>/checkpoints``; they hold only
tensors and plain data and are loaded with ``weights_only=True``. Metrics are logged to CSV
(``<out_dir>/logs``) and, when the ``tensorboard`` package is installed, to TensorBoard.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class TrainConfig:
    """How to train (not what): epochs, batch size, optimiser, devices, seeds."""

    max_epochs: int = 20
    max_steps: int = -1
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 1
    patience: int = 5
    accelerator: str = "auto"
    devices: int | str = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_workers: int = 0
    progress: bool = True
    log_every_n_steps: int = 10

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any], seed: int) -> TrainConfig:
        """Defaults, then ``seed``, then the plain-data ``overrides`` (e.g. a YAML block)."""
        return cls(**{"seed": seed, **overrides})


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
    train: TensorDataset,
    val: TensorDataset,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: str | Path | None = None,
    monitor: str = "val/loss",
) -> L.Trainer:
    """Train ``module``; afterwards it holds the weights of the best validation epoch."""
    out_dir = Path(out_dir)
    # Lightning's device banner and tips at INFO level drown the progress output.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    seed_all(config.seed)
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", monitor=monitor, save_last=True, filename="best"
    )
    loggers: list[Any] = [CSVLogger(out_dir, name="logs", version="")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(out_dir, name="tensorboard", version=""))
    callbacks: list[Any] = [checkpoint, EarlyStopping(monitor=monitor, patience=config.patience)]
    if config.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        max_steps=config.max_steps,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        precision=config.precision,
        callbacks=callbacks,
        logger=loggers,
        log_every_n_steps=config.log_every_n_steps,
        enable_progress_bar=config.progress,
        enable_model_summary=False,
        deterministic="warn",
        default_root_dir=out_dir,
    )
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        train,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=config.num_workers,
    )
    val_loader = DataLoader(val, batch_size=config.batch_size, num_workers=config.num_workers)
    trainer.fit(
        module, train_loader, val_loader, ckpt_path=str(resume) if resume else None,
        weights_only=True,
    )
    best = checkpoint.best_model_path
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    return trainer


def adamw_with_cosine(
    module: L.LightningModule, groups: list[dict[str, Any]], lr: float, weight_decay: float
) -> dict[str, Any]:
    """AdamW over parameter ``groups`` (each may set its own lr) with cosine decay per step."""
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.0)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LossTask(L.LightningModule):
    """The loop every jetfm task shares: a subclass defines ``_step(batch, stage) -> loss`` (and
    logs), its hyperparameters ``lr`` and ``weight_decay``; AdamW with cosine decay."""

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define _step")

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_with_cosine(self, [{"params": self.parameters()}], hp.lr, hp.weight_decay)
