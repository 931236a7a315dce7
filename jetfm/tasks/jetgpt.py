"""Lightning training of JetGPT (:mod:`jetfm.models.jetgpt`), with the thesis' three ways to
extrapolate in multiplicity.

* ``loss: full | truncated | override`` (:meth:`jetfm.models.jetgpt.JetGPT.loss`; thesis
  Eqs. (5.21), (5.22), (5.29)); ``n_max`` is the largest training multiplicity *in objects*
  (for Z + jets: 2 muons + the largest jet count).
* ``bootstrap`` (thesis Sec. 5.2.2): after ``warmup_steps`` the model generates sequences
  every ``refresh_every`` steps (``generate`` at a time, one Bayesian weight draw per generated
  batch), keeps those with exactly ``n_max + 1`` objects in a FIFO buffer of ``buffer_size``
  and appends ``per_batch`` of them to every training batch. The thesis: 200k warm-up steps,
  then a buffer of 1k 7-jet events to start, one per batch of 1024, a batch of 32768 every
  50 steps, buffer up to 50k, another 200k steps. The buffer is not checkpointed: a resumed
  run refills it.

:func:`fit_jetgpt` trains through :func:`jetfm.tasks.training.fit` (seeds, checkpoints,
resume, early stopping, metrics.csv) and writes ``jetgpt.safetensors`` (weights, config and
the caller's ``meta``, e.g. the preprocessing) in ``out_dir``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jetfm.checks import POSITIVE_INT, Rule, check_fields, from_mapping
from jetfm.models.jetgpt import LOSS_MODES, JetGPT, JetGPTConfig, load_jetgpt, save_jetgpt
from jetfm.nn.bayesian import set_bayesian_mode
from jetfm.tasks.training import LossTask, TrainConfig, fit, seed_all, tensor_dataset

MODEL_FILE = "jetgpt.safetensors"


@dataclass
class BootstrapConfig:
    """Bootstrapping schedule (module docstring; thesis Sec. 5.2.2)."""

    warmup_steps: int = 1000
    refresh_every: int = 50
    generate: int = 2048
    buffer_size: int = 5000
    per_batch: int = 1

    def __post_init__(self) -> None:
        """All counts >= 1 (``warmup_steps`` >= 0); ``ValueError`` naming the key."""
        check_fields(self, {"warmup_steps": Rule(int, low=0),
                            **dict.fromkeys(("refresh_every", "generate", "buffer_size",
                                             "per_batch"), POSITIVE_INT)})


@dataclass
class SequenceData:
    """Training sequences: ``x`` (N, T, C) float32, ``mask`` (N, T) bool, ``condition`` (N,)
    int64 and ``override_label`` (N,) float32 (the override loss's label at ``n_max``; 0
    where unused)."""

    x: np.ndarray
    mask: np.ndarray
    condition: np.ndarray
    override_label: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, mask: np.ndarray, condition: np.ndarray | None = None,
           override_label: np.ndarray | None = None) -> SequenceData:
        n = len(x)
        return cls(np.asarray(x, np.float32), np.asarray(mask, bool),
                   np.zeros(n, np.int64) if condition is None else np.asarray(condition, np.int64),
                   np.zeros(n, np.float32) if override_label is None
                   else np.asarray(override_label, np.float32))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: Any) -> SequenceData:
        """The sequences at ``index`` (slice, integer array or bool mask)."""
        return SequenceData(self.x[index], self.mask[index], self.condition[index],
                            self.override_label[index])

    def dataset(self) -> Any:
        return tensor_dataset(self.x, self.mask, self.condition, self.override_label)


class JetGPTTask(LossTask):
    """Batches ``(x, mask, condition, override_label)`` of :class:`SequenceData`."""

    def __init__(self, model: dict[str, Any], loss: str = "full", n_max: int | None = None,
                 override_weight: float = 0.2, n_train: int = 1,
                 bootstrap: dict[str, Any] | None = None, lr: float = 3e-4,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        if loss not in LOSS_MODES:
            raise ValueError(f"loss {loss!r}: use one of {list(LOSS_MODES)}")
        if (loss != "full" or bootstrap is not None) and n_max is None:
            raise ValueError(f"loss {loss!r} / bootstrap need n_max (objects)")
        self.net = JetGPT(from_mapping(JetGPTConfig, model, "jetgpt model"))
        self.bootstrap = (None if bootstrap is None
                          else from_mapping(BootstrapConfig, bootstrap, "jetgpt bootstrap"))
        self.buffer: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.buffer_added = 0

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x, mask, condition, label = batch
        hp = self.hparams
        return self.net.loss(x, mask, condition, mode=hp.loss, n_max=hp.n_max,
                             override_label=label if hp.loss == "override" else None,
                             override_weight=hp.override_weight, n_train=hp.n_train)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        out = self._loss(batch)
        return self.log_losses(out, stage, len(batch[0]))

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        boot = self.bootstrap
        if boot is not None and self.global_step >= boot.warmup_steps:
            if (self.global_step - boot.warmup_steps) % boot.refresh_every == 0:
                self._refill()
            batch = self._with_buffer(batch)
            self.log("train/bootstrap_buffer", float(len(self.buffer)), on_step=True,
                     on_epoch=False, batch_size=1)
        return self._step(batch, "train")

    @torch.no_grad()
    def _refill(self) -> None:
        """Generate, keep the sequences with exactly ``n_max + 1`` objects (FIFO buffer)."""
        boot, n_max, net = self.bootstrap, self.hparams.n_max, self.net
        was_training = net.training
        net.eval()
        if net.config.bayesian:
            set_bayesian_mode(net, "fixed")  # one weight draw per generated batch
        condition = torch.randint(net.config.n_conditions, (boot.generate,),
                                  device=self.device)
        out = net.sample(boot.generate, condition, max_objects=n_max + 1)
        if net.config.bayesian:
            set_bayesian_mode(net, "sample")
        net.train(was_training)
        keep = (out.n_objects == n_max + 1) & ~out.overflow
        for i in torch.nonzero(keep).flatten().tolist():
            self.buffer.append((out.x[i], out.mask[i], condition[i].cpu()))
        self.buffer_added += int(keep.sum())
        del self.buffer[:max(len(self.buffer) - boot.buffer_size, 0)]

    def _with_buffer(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        if not self.buffer:
            return batch
        x, mask, condition, label = batch
        pick = torch.randint(len(self.buffer), (self.bootstrap.per_batch,))
        bx = torch.stack([self.buffer[i][0] for i in pick]).to(x)
        bmask = torch.stack([self.buffer[i][1] for i in pick]).to(mask.device)
        bcond = torch.stack([self.buffer[i][2] for i in pick]).to(condition.device)
        width = max(x.shape[1], bx.shape[1])
        x = torch.cat([F.pad(x, (0, 0, 0, width - x.shape[1])),
                       F.pad(bx, (0, 0, 0, width - bx.shape[1]))])
        mask = torch.cat([F.pad(mask, (0, width - mask.shape[1])),
                          F.pad(bmask, (0, width - bmask.shape[1]))])
        label = torch.cat([label, label.new_zeros(len(pick))])
        return x, mask, torch.cat([condition, bcond]), label


def fit_jetgpt(
    train: SequenceData,
    val: SequenceData,
    model: dict[str, Any],
    training: dict[str, Any],
    out_dir: str | Path,
    *,
    loss: str = "full",
    n_max: int | None = None,
    override_weight: float = 0.2,
    bootstrap: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    seed: int = 1,
    resume: str | Path | None = None,
    init: str | Path | None = None,
) -> JetGPT:
    """Train JetGPT on ``train`` (early stopping on ``val``); returns the best model (eval
    mode, CPU) and writes ``out_dir/jetgpt.safetensors`` with ``meta`` and the training
    settings. ``model``: :class:`JetGPTConfig` fields; ``training``: :class:`TrainConfig`
    overrides (thesis: Adam, lr 3e-4, batch 1024). ``init``: a JetGPT model file whose
    weights start the training (e.g. bootstrapping after a full-length warm-up, thesis
    Sec. 5.2.2); its configuration must equal ``model``. ``ValueError`` naming the bad key or
    the differing configuration."""
    out_dir = Path(out_dir)
    config = TrainConfig.from_overrides(training, seed, "jetgpt training")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"jetgpt: {len(train)} training and {len(val)} validation sequences")
    seed_all(seed)
    checked = asdict(from_mapping(JetGPTConfig, model, "jetgpt model"))
    task = JetGPTTask(checked, loss=loss, n_max=n_max, override_weight=override_weight,
                      n_train=len(train), bootstrap=bootstrap, **config.optimiser())
    if init is not None and resume is None:
        start, _ = load_jetgpt(init)
        if start.config != task.net.config:
            raise ValueError(f"{init}: its JetGPT configuration differs from the model's")
        task.net.load_state_dict(start.state_dict())
    trainer = fit(task, train.dataset(), val.dataset(), config, out_dir, resume=resume)
    net = task.net.cpu().eval()
    if trainer.global_rank == 0:
        save_jetgpt(out_dir / MODEL_FILE, net, {
            **(meta or {}), "training": {"loss": loss, "n_max": n_max,
                                         "override_weight": override_weight,
                                         "bootstrap": bootstrap, "n_train": len(train),
                                         "seed": seed, "init": None if init is None
                                         else str(init),
                                         "bootstrap_sequences_added": task.buffer_added}})
    return net
