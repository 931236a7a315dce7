"""Lightning training of the CFM event generator (:mod:`jetfm.models.cfm_generator`).

:func:`fit_cfm` trains through :func:`jetfm.tasks.training.fit` (seeds, checkpoints, resume,
early stopping on the validation loss, ``metrics.csv``) and writes ``cfm.safetensors``
(weights, :class:`~jetfm.models.cfm_generator.CFMConfig`,
:class:`~jetfm.models.cfm_generator.EventCoordinates` and the caller's ``meta``) in
``out_dir``.

The validation loss draws its base noise and times from a generator seeded by the batch index,
so it is the same function of the weights at every validation and the kept checkpoint is the
best weights, not the luckiest draw. Optimiser: jetfm's AdamW with cosine decay per step
(:class:`~jetfm.tasks.training.LossTask`), weight decay 0; the reference
(heidelberg-hepml/lorentz-gatr ``config_paper/ttbar.yaml``) uses Adam, lr 1e-3, batch 2048,
200k iterations and ReduceLROnPlateau (thesis Tab. A.5).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.checks import from_mapping
from jetfm.models.cfm_generator import CFMConfig, CFMGenerator, EventCoordinates, save_cfm
from jetfm.tasks.training import LossTask, TrainConfig, fit, seed_all, tensor_dataset

MODEL_FILE = "cfm.safetensors"
VAL_SEED = 12_345
"""Seed of the validation draws (plus the batch index)."""


class CFMTask(LossTask):
    """Batches ``(x0,)`` of standardised event coordinates (B, P, 4)."""

    def __init__(self, model: dict[str, Any], coordinates: dict[str, Any], lr: float = 1e-3,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = CFMGenerator(from_mapping(CFMConfig, model, "cfm model"),
                                  EventCoordinates(**coordinates))

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str,
              generator: torch.Generator | None = None) -> torch.Tensor:
        loss = self.model.loss(batch[0], generator).mean()
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", on_epoch=True,
                 on_step=False, batch_size=len(batch[0]), sync_dist=stage == "val")
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._step(batch, "val", torch.Generator().manual_seed(VAL_SEED + batch_idx))


def fit_cfm(
    train: np.ndarray,
    val: np.ndarray,
    model: dict[str, Any],
    coordinates: EventCoordinates,
    training: dict[str, Any],
    out_dir: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    seed: int = 1,
    resume: str | Path | None = None,
) -> CFMGenerator:
    """Train a CFM generator on standardised coordinates ``train`` / ``val`` (N, P, 4)
    (:meth:`EventCoordinates.encode` of the training and validation events); returns the best
    model (eval mode, CPU) and writes ``out_dir/cfm.safetensors`` with ``meta`` and the
    training settings. ``model``: :class:`CFMConfig` fields; ``training``:
    :class:`~jetfm.tasks.training.TrainConfig` overrides. ``ValueError`` naming the bad key, for
    empty sets or states of another shape than (N, 2 + n_jets, 4)."""
    out_dir = Path(out_dir)
    config = TrainConfig.from_overrides(training, seed, "cfm training")
    shape = (coordinates.n_objects, 4)
    for name, x in (("training", train), ("validation", val)):
        if len(x) == 0 or np.shape(x)[1:] != shape:
            raise ValueError(f"cfm: {name} states of shape {np.shape(x)}, expected (N >= 1, "
                             f"{shape[0]}, 4)")
    seed_all(seed)
    checked = asdict(from_mapping(CFMConfig, model, "cfm model"))
    task = CFMTask(checked, coordinates.to_dict(), **config.optimiser())
    trainer = fit(task, tensor_dataset(train), tensor_dataset(val), config, out_dir,
                  resume=resume)
    net = task.model.cpu().eval()
    if trainer.global_rank == 0:
        save_cfm(out_dir / MODEL_FILE, net, {**(meta or {}), "training": {
            "n_train": len(train), "n_val": len(val), "seed": seed,
            "steps": int(trainer.global_step)}})
    return net
