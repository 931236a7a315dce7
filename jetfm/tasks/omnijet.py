"""OmniJet-alpha training: the tokenizer (VQ-VAE) and generative pre-training of the GPT.

Both Lightning modules take plain-data hyperparameters (dicts of numbers and strings), so their
checkpoints load with ``weights_only=True`` and carry their configuration.

* :class:`TokenizerTask`: VQ-VAE on standardised particle features ``(x, mask)``;
  :func:`fit_tokenizer` trains one on jets and writes ``tokenizer.safetensors``.
* :class:`GenerativeTask`: OmniJet backbone (tokenizer + GPT) + next-token head on token
  sequences ``(tokens, mask)``; :func:`fit_generative` writes the generative model file
  (:func:`jetfm.models.omnijet.save_generative`), which is also a backbone file for
  tagging (:mod:`jetfm.tasks.tagging`, ``backbone: omnijet``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from textwrap import indent
from typing import Any

import numpy as np
import torch

from jetfm.console import Console
from jetfm.data.batch import JetBatch
from jetfm.data.tokens import TokenDataset
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.backbone import backbone_from_meta
from jetfm.models.codebook import CodebookConfig, FeatureCodebook
from jetfm.models.gpt import GPTConfig, NextTokenHead, next_token_loss
from jetfm.models.omnijet import load_generative, omnijet_backbone, save_generative
from jetfm.models.tokenizer import (
    TOKEN_MODELS,
    Tokenizer,
    check_fingerprint,
    format_resolution,
    resolution_warnings,
)
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.report import write_json
from jetfm.tasks.training import (
    LossTask,
    TrainConfig,
    adamw_with_cosine,
    check_keys,
    config_keys,
    fit,
    seed_all,
    split_indices,
    tensor_dataset,
)

console = Console(soft_wrap=True, emoji=False)
log = logging.getLogger("jetfm.omnijet")
# Keys of the ``vqvae`` and ``gpt`` config blocks: the fields the code does not set itself
# (the preprocessing sets the VQ-VAE's n_features, the tokenizer the GPT's vocabulary and
# length).
VQVAE_KEYS = frozenset(config_keys(VQVAEConfig, ("n_features",)))
CODEBOOK_KEYS = frozenset(config_keys(CodebookConfig, ("n_features",)))
GPT_KEYS = frozenset(config_keys(GPTConfig, ("vocab_size", "max_length", "code_dim")))


class TokenizerTask(LossTask):
    def __init__(self, vqvae: dict[str, Any], lr: float = 1e-3, weight_decay: float = 0.0
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = VQVAE(VQVAEConfig(**vqvae))

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        x, mask = batch[:2]
        out = self.model(x, mask, batch[2] if len(batch) > 2 else None)  # pT: pt_weight
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
    """OmniJet backbone (rebuilt from its plain-data metadata ``backbone``,
    :meth:`~jetfm.models.backbone.Backbone.meta`) + next-token head; loss: next-token cross
    entropy over real tokens."""

    def __init__(self, backbone: dict[str, Any], lr: float = 1e-3, weight_decay: float = 1e-4
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.backbone = backbone_from_meta(backbone, "generative task")
        self.head = NextTokenHead.for_backbone(self.backbone.gpt)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        tokens, mask = batch[:2]
        hidden, _ = self.backbone.gpt(tokens, mask,
                                      coordinates=self.backbone.token_coordinates(tokens))
        loss = next_token_loss(self.head(hidden, self.backbone.gpt.code_table()), tokens, mask)
        n_tokens = mask[:, 1:].sum()
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=int(n_tokens), sync_dist=stage == "val")
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]  # not the tokenizer
        return adamw_with_cosine(self, [{"params": params}], hp.lr, hp.weight_decay)


def fit_tokenizer(
    batch: JetBatch, vqvae: dict[str, Any], training: dict[str, Any], n_max: int,
    out_dir: Path, seed: int = 1, pt_min: float | None = None, subjet_order: int = 0,
    subjet_frame: bool = False,
) -> Tokenizer:
    """Train a VQ-VAE on ``batch`` (OmniJet-alpha preprocessing, 10 % validation jets);
    writes ``tokenizer.safetensors`` and ``resolution.json`` (on the validation jets), prints
    the resolution summary and logs a warning per figure beyond
    :data:`jetfm.models.tokenizer.RESOLUTION_LIMITS` (a poorly trained tokenizer).

    ``vqvae``: :class:`VQVAEConfig` fields but ``n_features`` (set by the preprocessing);
    ``training``: :class:`TrainConfig` fields. Unknown keys raise ``ValueError``.
    """
    check_keys(vqvae, VQVAE_KEYS, "vqvae")
    if subjet_frame:
        raise ValueError("subjet_frame needs the codebook tokenizer: a VQ-VAE encodes the "
                         "particles of a jet together, the frame is per particle")
    train_config = TrainConfig.from_overrides(training, seed, "tokenizer_training")
    preprocessing = omnijet_preprocessing(n_max, pt_min, subjet_order, subjet_frame)
    values, mask, reports = preprocessing.apply(batch)
    for report in reports:
        console.print(f"  {report}")
    train_idx, val_idx = split_indices(len(values), 0.1, seed)
    seed_all(seed)
    vq_config = VQVAEConfig(**{**vqvae, "n_features": len(preprocessing.features)})
    task = TokenizerTask(asdict(vq_config), **train_config.optimiser())
    columns = [values, mask]
    if vq_config.pt_weight > 0:  # the weighted loss needs each particle's pT
        columns.append(preprocessing.pt(values, mask).astype(np.float32))
    trainer = fit(task, tensor_dataset(*(c[train_idx] for c in columns)),
                  tensor_dataset(*(c[val_idx] for c in columns)), train_config, out_dir)
    tokenizer = Tokenizer(task.model.cpu(), preprocessing)
    if trainer.global_rank == 0:
        finish_tokenizer(tokenizer, batch[val_idx], out_dir)
    return tokenizer


def fit_codebook(
    batch: JetBatch, codebook: dict[str, Any], n_max: int, out_dir: Path, seed: int = 1,
    pt_min: float | None = None, subjet_order: int = 0, subjet_frame: bool = False,
) -> Tokenizer:
    """Fit a feature-space codebook tokenizer (:class:`~jetfm.models.codebook.FeatureCodebook`,
    weighted mini-batch k-means) on ``batch`` with OmniJet-alpha's preprocessing, 10 % of the
    jets held out for the resolution; writes ``tokenizer.safetensors`` and ``resolution.json``
    as :func:`fit_tokenizer` does. ``codebook``: :class:`CodebookConfig` fields but
    ``n_features``; unknown keys raise ``ValueError``, as does a subjet-frame codebook with a
    label that got no code (:meth:`Tokenizer.token_grammar`)."""
    check_keys(codebook, CODEBOOK_KEYS, "codebook")
    preprocessing = omnijet_preprocessing(n_max, pt_min, subjet_order, subjet_frame)
    values, mask, reports = preprocessing.apply(batch)
    for report in reports:
        console.print(f"  {report}")
    train_idx, val_idx = split_indices(len(values), 0.1, seed)
    config = CodebookConfig(**{**codebook, "n_features": len(preprocessing.features)})
    pt = preprocessing.pt(values, mask)
    train_mask = mask[train_idx]
    console.print(f"  codebook: k-means of {config.codebook_size} codes on "
                  f"{int(train_mask.sum())} particles of {len(train_idx)} jets")
    model = FeatureCodebook(config).fit(values[train_idx][train_mask],
                                        pt[train_idx][train_mask], seed)
    tokenizer = Tokenizer(model, preprocessing)
    tokenizer.token_grammar()  # subjet frame: ValueError unless every label has a code
    finish_tokenizer(tokenizer, batch[val_idx], out_dir)
    return tokenizer


def check_token_model_blocks(tokenizer_model: str, blocks: dict[str, Any]) -> None:
    """``ValueError`` unless ``tokenizer_model`` is a known kind and ``blocks`` (config block
    name -> value: ``vqvae``, ``codebook``, ``tokenizer_training``) gives only the blocks it
    uses (a codebook has no ``vqvae`` nor ``tokenizer_training``, a VQ-VAE no ``codebook``)."""
    if tokenizer_model not in TOKEN_MODELS:
        raise ValueError(f"tokenizer_model: {tokenizer_model!r} is not one of "
                         f"{list(TOKEN_MODELS)}")
    unused = ("vqvae", "tokenizer_training") if tokenizer_model == "codebook" else ("codebook",)
    extra = [key for key in unused if blocks.get(key)]
    if extra:
        raise ValueError(f"tokenizer_model is {tokenizer_model}, so {extra} would not be used: "
                         "remove them")


def fit_token_model(
    batch: JetBatch, tokenizer_model: str, settings: dict[str, Any],
    training: dict[str, Any] | None, n_max: int, out_dir: Path, seed: int = 1,
    pt_min: float | None = None, subjet_order: int = 0, subjet_frame: bool = False,
) -> Tokenizer:
    """The tokenizer of kind ``tokenizer_model`` fitted on ``batch``: ``"vqvae"``
    (:func:`fit_tokenizer`, ``settings`` = the vqvae block, ``training`` its training block)
    or ``"codebook"`` (:func:`fit_codebook`, ``settings`` = the codebook block; no training
    block); ``n_max``, ``pt_min``, ``subjet_order``, ``subjet_frame``: its preprocessing
    (:func:`jetfm.data.transforms.omnijet_preprocessing`). ``ValueError`` for another kind."""
    if tokenizer_model == "codebook":
        return fit_codebook(batch, settings, n_max, out_dir, seed, pt_min, subjet_order,
                            subjet_frame)
    if tokenizer_model == "vqvae":
        return fit_tokenizer(batch, settings, training or {}, n_max, out_dir, seed, pt_min,
                             subjet_order, subjet_frame)
    raise ValueError(f"tokenizer_model: {tokenizer_model!r} is not one of "
                     f"{list(TOKEN_MODELS)}")


def finish_tokenizer(tokenizer: Tokenizer, validation: JetBatch, out_dir: Path) -> None:
    """Write ``out_dir/tokenizer.safetensors`` and ``resolution.json`` (on the ``validation``
    jets), print the resolution and log a warning per figure beyond the limits."""
    tokenizer.save(out_dir / "tokenizer.safetensors")
    resolution = tokenizer.resolution(validation)
    write_json(out_dir / "resolution.json", resolution)
    console.print(f"tokenizer resolution on {len(validation)} validation jets:")
    console.print(indent(format_resolution(resolution), "  "))
    for message in resolution_warnings(resolution):
        log.warning("%s: %s", out_dir / "tokenizer.safetensors", message)


def fit_generative(
    tokens: TokenDataset, tokenizer: Tokenizer, gpt: dict[str, Any], training: dict[str, Any],
    out_dir: Path, seed: int = 1, resume: str | Path | None = None,
    init: str | Path | None = None,
) -> Path:
    """Generative training on token sequences; writes ``backbone.safetensors`` (a generative
    OmniJet model file with its tokenizer, :func:`jetfm.models.omnijet.save_generative`).

    ``gpt``: :class:`GPTConfig` fields but the vocabulary and length (the tokenizer's).
    ``init``: a generative model file to start from (generative fine-tuning); its GPT size
    replaces ``gpt``. ``resume``: a Lightning checkpoint of this training. Both, and
    ``tokens``, must come from ``tokenizer`` (fingerprints checked; ValueError naming both
    otherwise); checkpoints record the fingerprint in their hyperparameters.
    """
    check_keys(gpt, GPT_KEYS, "gpt")
    what = f"token set ({tokens.tokenizer.get('tokenizer', 'no path recorded')})"
    check_fingerprint(tokenizer.fingerprint, tokens.tokenizer.get("fingerprint"), what)
    if resume is not None:
        hparams = torch.load(resume, map_location="cpu", weights_only=True).get(
            "hyper_parameters", {})
        check_fingerprint(tokenizer.fingerprint, hparams.get("tokenizer_fingerprint"),
                          f"checkpoint {resume}")
    seq, seq_mask = tokenizer.to_sequences(tokens.codes, tokens.mask)
    train_idx, val_idx = split_indices(len(seq), 0.1, seed)
    start = load_generative(init, tokenizer) if init is not None else None
    seed_all(seed)
    backbone = start[0] if start else omnijet_backbone(tokenizer, gpt)
    task = GenerativeTask(backbone.meta(), lr=training.get("lr", 1e-3))
    task.hparams["tokenizer_fingerprint"] = tokenizer.fingerprint  # saved in checkpoints
    task.backbone.load_state_dict(backbone.state_dict())
    if start:
        task.head.load_state_dict(start[1].state_dict())
    trainer = fit(task, tensor_dataset(seq[train_idx], seq_mask[train_idx]),
                  tensor_dataset(seq[val_idx], seq_mask[val_idx]),
                  TrainConfig.from_overrides(training, seed), out_dir, resume=resume)
    path = out_dir / "backbone.safetensors"
    if trainer.global_rank == 0:
        save_generative(path, task.backbone, task.head)
    return path
