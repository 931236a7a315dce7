"""Lightning training of the jet-evolution generator (:mod:`jetfm.models.jet_evolution`).

:func:`fit_evolution` encodes training and validation trees, trains through
:func:`jetfm.tasks.training.fit` (seeds, Lightning checkpoints, resume, early stopping) and
writes the model file ``evolution.safetensors`` (weights + JSON config) in ``out_dir``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from jetfm.models.jet_evolution import EvolutionConfig, JetEvolution, JetEvolutionModel, encode
from jetfm.physics.trees import JetTrees
from jetfm.tasks.training import (
    LossTask,
    TrainConfig,
    check_keys,
    config_keys,
    fit,
    seed_all,
    tensor_dataset,
)

MODEL_FILE = "evolution.safetensors"


class EvolutionTask(LossTask):
    """Batches ``(features, depth, soft, split, u, mask)`` of :class:`Encoded` trees."""

    def __init__(self, model: dict[str, Any], lr: float = 1e-3, weight_decay: float = 1e-4
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = JetEvolution(EvolutionConfig(**model))

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        out = self.net.loss(*batch)
        n_nodes = int(batch[-1].sum())
        return self.log_losses(out, stage, n_nodes)


def fit_evolution(
    train: JetTrees,
    val: JetTrees,
    model: dict[str, Any],
    training: dict[str, Any],
    out_dir: str | Path,
    seed: int = 1,
    resume: str | Path | None = None,
) -> JetEvolutionModel:
    """Train on ``train`` trees (early stopping on ``val``); returns the best model and writes
    ``out_dir/evolution.safetensors``. ``training`` overrides :class:`TrainConfig` fields."""
    out_dir = Path(out_dir)
    check_keys(model, config_keys(EvolutionConfig), "jet-evolution model")
    config = TrainConfig.from_overrides(training, seed, "jet-evolution training")
    seed_all(seed)
    task = EvolutionTask(asdict(EvolutionConfig(**model)), **config.optimiser())
    trainer = fit(task, tensor_dataset(*encode(train).arrays()),
                  tensor_dataset(*encode(val).arrays()), config, out_dir, resume=resume)
    result = JetEvolutionModel(task.net.cpu(), train.algorithm)
    if trainer.global_rank == 0:
        result.save(out_dir / MODEL_FILE, {"n_train_jets": len(train), "seed": seed})
    return result
