"""Lightning modules of OmniJet-alpha: tokenizer training, generative pre-training, tagging.

All three take plain-data hyperparameters (dicts of numbers and strings), so their Lightning
checkpoints load with ``weights_only=True`` and carry their configuration.

* :class:`TokenizerTask`: VQ-VAE on standardised particle features ``(x, mask)``.
* :class:`GenerativeTask`: GPT backbone + next-token head on token sequences
  ``(tokens, mask)``.
* :class:`ClassifierTask`: GPT backbone + classification head on ``(tokens, mask, label)``;
  ``mode`` = ``"finetune"`` (pre-trained backbone at ``backbone_lr_factor`` times the head's
  learning rate), ``"frozen"`` (backbone fixed) or ``"scratch"`` (same architecture, random
  initialisation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from jetfm.models.gpt import GPT, GPTConfig, NextTokenHead, next_token_loss
from jetfm.models.heads import HEADS
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.tasks.training import LossTask, adamw_with_cosine, config_keys

FINETUNE_MODES = ("finetune", "frozen", "scratch")
# Keys of the ``vqvae`` and ``gpt`` config blocks: the fields the code does not set itself
# (the preprocessing sets the VQ-VAE's n_features, the tokenizer the GPT's vocabulary and
# length).
VQVAE_KEYS = frozenset(config_keys(VQVAEConfig, ("n_features",)))
GPT_KEYS = frozenset(config_keys(GPTConfig, ("vocab_size", "max_length")))


class TokenizerTask(LossTask):
    def __init__(self, vqvae: dict[str, Any], lr: float = 1e-3, weight_decay: float = 0.0
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = VQVAE(VQVAEConfig(**vqvae))

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        x, mask = batch
        out = self.model(x, mask)
        self.log_dict(
            {
                f"{stage}/loss": out.loss,
                f"{stage}/reconstruction": out.reconstruction_loss,
                f"{stage}/vq": out.vq_loss,
                f"{stage}/perplexity": out.perplexity,
                f"{stage}/utilisation": out.utilisation,
            },
            prog_bar=stage == "val",
            on_epoch=True,
            on_step=False,
            batch_size=len(x),
            sync_dist=stage == "val",
        )
        return out.loss


class GenerativeTask(LossTask):
    def __init__(self, gpt: dict[str, Any], lr: float = 1e-3, weight_decay: float = 1e-4
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        config = GPTConfig(**gpt)
        self.backbone = GPT(config)
        self.head = NextTokenHead(config.dim, config.vocab_size)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        tokens, mask = batch[:2]
        hidden, _ = self.backbone(tokens, mask)
        loss = next_token_loss(self.head(hidden), tokens, mask)
        n_tokens = mask[:, 1:].sum()
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=int(n_tokens), sync_dist=stage == "val")
        return loss


class ClassifierTask(LossTask):
    def __init__(
        self,
        gpt: dict[str, Any],
        n_classes: int,
        head: str = "class_attention",
        mode: str = "finetune",
        lr: float = 1e-3,
        backbone_lr_factor: float = 0.1,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        if mode not in FINETUNE_MODES:
            raise ValueError(f"mode must be one of {FINETUNE_MODES}, got {mode!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {sorted(HEADS)}, got {head!r}")
        self.save_hyperparameters()
        config = GPTConfig(**gpt)
        self.backbone = GPT(config)
        self.head = HEADS[head](config.dim, n_classes)
        if mode == "frozen":
            self.backbone.requires_grad_(False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, n_classes)."""
        hidden, _ = self.backbone(tokens, mask)
        return self.head(hidden, mask)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        tokens, mask, label = batch
        logits = self(tokens, mask)
        loss = F.cross_entropy(logits, label)
        accuracy = (logits.argmax(dim=1) == label).float().mean()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/accuracy": accuracy}, prog_bar=True,
                      on_epoch=True, on_step=False, batch_size=len(label),
                      sync_dist=stage == "val")
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = [{"params": self.head.parameters(), "lr": hp.lr}]
        if hp.mode != "frozen":
            factor = hp.backbone_lr_factor if hp.mode == "finetune" else 1.0
            groups.append({"params": self.backbone.parameters(), "lr": hp.lr * factor})
        return adamw_with_cosine(self, groups, hp.lr, hp.weight_decay)
