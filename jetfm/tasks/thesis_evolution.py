"""Training of the thesis' jet-evolution model: VQ-VAE on node sets, then the dual-head GPT.

Both stages go through :func:`jetfm.tasks.training.fit` (Lightning: seeds, checkpoints, early
stopping). ``config`` of :func:`fit_thesis_model` is plain data:

* ``vqvae``, ``gpt``, ``max_leaves``, ``pt_floor``, ``max_depth``: the model
  (:class:`jetfm.models.thesis_evolution.ThesisConfig`);
* ``tokenizer_training``, ``training``: :class:`jetfm.tasks.training.TrainConfig` fields of the
  two stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.console import Console
from jetfm.data.batch import JetDataError
from jetfm.models.gpt import GPTConfig
from jetfm.models.thesis_evolution import (
    ThesisConfig,
    ThesisEvolutionModel,
    ThesisEvolutionNet,
    node_features,
    select_jets,
    sequence_targets,
    triplet_nll,
)
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.physics.trees import JetTrees
from jetfm.tasks.omnijet import TokenizerTask
from jetfm.tasks.training import (
    LossTask,
    TrainConfig,
    check_keys,
    config_keys,
    fit,
    seed_all,
    tensor_dataset,
)

console = Console(soft_wrap=True, emoji=False)
MODEL_FILE = "thesis_model.safetensors"
TRAINING_BLOCKS = ("tokenizer_training", "training")
# set by ThesisConfig from the codebook and max_leaves, so not configurable
SET_VQVAE_KEYS, SET_GPT_KEYS = ("n_features",), ("vocab_size", "max_length", "positional")


def check_thesis_config(config: dict[str, Any], where: str = "thesis") -> None:
    """Every key of the thesis-model ``config`` and of its blocks is known, else
    ``ValueError`` naming ``where`` (file and block), the key and the valid keys."""
    check_keys(config, config_keys(ThesisConfig) | set(TRAINING_BLOCKS), where)
    check_keys(config.get("vqvae", {}), config_keys(VQVAEConfig, SET_VQVAE_KEYS),
               f"{where}.vqvae")
    check_keys(config.get("gpt", {}), config_keys(GPTConfig, SET_GPT_KEYS), f"{where}.gpt")
    for block in TRAINING_BLOCKS:
        check_keys(config.get(block, {}), config_keys(TrainConfig), f"{where}.{block}")


class ThesisEvolutionTask(LossTask):
    """Dual-head GPT on triplet sequences ``(tokens, mask)``; loss = mean min-over-assignment
    NLL per triplet [nats]."""

    def __init__(self, gpt: dict[str, Any], lr: float = 1e-3, weight_decay: float = 1e-4
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = ThesisEvolutionNet(GPTConfig(**gpt))

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        tokens, mask = batch
        width = int(mask.sum(1).max())  # drop the padding every sequence of the batch has
        tokens, mask = tokens[:, :width], mask[:, :width]
        left_logits, right_logits = self.net(tokens, mask)
        left, right, real = sequence_targets(tokens, mask)
        nll = triplet_nll(left_logits, right_logits, left, right)[real]
        loss = nll.mean()
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=int(real.sum()), sync_dist=stage == "val")
        return loss



def fit_thesis_model(train: JetTrees, val: JetTrees, config: dict[str, Any], out_dir: Path,
                     seed: int = 1) -> ThesisEvolutionModel:
    """Train the VQ-VAE (``out_dir/vqvae``) and the network (``out_dir/gpt``) on ``train`` with
    ``val`` for early stopping; writes ``out_dir/thesis_model.safetensors``.

    Jets without constituents or with more than ``max_leaves`` are left out and counted.
    """
    out_dir = Path(out_dir)
    check_thesis_config(config)
    model_keys = config_keys(ThesisConfig)
    model_config = ThesisConfig(**{k: v for k, v in config.items() if k in model_keys})
    sets = {}
    for name, trees in (("train", train), ("val", val)):
        trees, report = select_jets(trees, model_config.max_leaves, name)
        console.print(f"  {report}")
        if len(trees) == 0:
            raise JetDataError(f"{name}: no jets left for the thesis model ({report})")
        _, clipped = node_features(trees, model_config.pt_floor)
        console.print(f"  {name}: {clipped} of {len(trees.px)} nodes with pT below "
                      f"pt_floor = {model_config.pt_floor} GeV (log pT clipped)")
        sets[name] = trees
    model = ThesisEvolutionModel(
        VQVAE(VQVAEConfig(**model_config.vqvae)),
        ThesisEvolutionNet(GPTConfig(**model_config.gpt)),
        model_config,
    )

    console.rule("thesis model: VQ-VAE on constituents and pseudojets")
    data = {k: model.standardised_sets(t, np.arange(len(t))) for k, t in sets.items()}
    training = TrainConfig.from_overrides(config.get("tokenizer_training", {}), seed,
                                          "thesis.tokenizer_training")
    seed_all(seed)
    task = TokenizerTask(model_config.vqvae, **training.optimiser())
    fit(task, tensor_dataset(*data["train"]), tensor_dataset(*data["val"]), training,
        out_dir / "vqvae")
    model.vqvae = task.model.cpu().eval()

    console.rule("thesis model: dual-head GPT on declustering triplets")
    seqs = {k: model.sequences(t) for k, t in sets.items()}
    training = TrainConfig.from_overrides(config.get("training", {}), seed, "thesis.training")
    seed_all(seed)
    task = ThesisEvolutionTask(model_config.gpt, **training.optimiser())
    fit(task, tensor_dataset(*seqs["train"]), tensor_dataset(*seqs["val"]), training,
        out_dir / "gpt")
    model.net = task.net.cpu().eval()
    model.save(out_dir / MODEL_FILE)
    return model
