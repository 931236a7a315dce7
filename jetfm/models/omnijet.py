"""OmniJet-alpha (Birk, Hallin, Kasieczka 2024) as a jetfm backbone: tokenizer + GPT.

:class:`OmniJetBackbone` (``backbone: omnijet``) holds its VQ-VAE tokenizer (fixed, never
trained here) and the GPT. :meth:`OmniJetBackbone.prepare` tokenizes jets (the tokenizer's
preprocessing, then the VQ-VAE codes as [start, codes + 1, stop] sequences); ``forward`` gives
the GPT's hidden states (B, n_max + 2, dim) with the sequence mask, which any head of
:mod:`jetfm.models.heads` pools, as the OmniJet-alpha tagger does. A backbone file therefore
carries the tokenizer: it loads with one call (:func:`jetfm.models.backbone.load_backbone`).

Generative models (the pre-trained OmniJet-alpha) are backbone files with a next-token head
besides (``generative_head.*``): :func:`save_generative`, :func:`load_generative`,
:func:`sample_jets`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.data.transforms import SUBJET_LABEL, Preprocessing
from jetfm.models.backbone import Backbone, backbone_from_meta, register_backbone
from jetfm.models.features import FeatureSpec, InputFeature, ParticleInputs
from jetfm.models.gpt import GPT, GPTConfig, NextTokenHead, sample
from jetfm.models.tokenizer import (
    TOKEN_MODELS,
    Tokenizer,
    build_token_model,
    check_fingerprint,
    token_model_config,
)


@dataclass
class OmniJetBackboneConfig:
    """``gpt``: :class:`~jetfm.models.gpt.GPTConfig` fields (vocabulary size and length are
    set by the tokenizer); ``tokenizer``: the tokenizer's metadata (:meth:`Tokenizer.meta`:
    VQ-VAE or feature-codebook configuration and preprocessing). ``ValueError`` naming the key
    for a bad value or a missing tokenizer."""

    gpt: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tokenizer:
            raise ValueError("an omnijet backbone needs its tokenizer: start from a backbone "
                             "file (init: pretrain/backbone.safetensors) or build it with "
                             "jetfm.models.omnijet.omnijet_backbone(tokenizer, gpt)")
        keys = set(self.tokenizer)
        if not any(keys == {"kind", model, "preprocessing"} for model in TOKEN_MODELS):
            raise ValueError(f"tokenizer: expected the keys kind, preprocessing and one of "
                             f"{list(TOKEN_MODELS)} (a tokenizer's metadata), got {sorted(keys)}")
        kind, model = token_model_config(self.tokenizer)
        n_max = int(self.tokenizer["preprocessing"]["n_max"])
        code_dim = 0
        if self.gpt.get("code_features"):
            if kind != "codebook":
                raise ValueError(f"gpt.code_features: the codes of a {kind} tokenizer have no "
                                 "coordinates of their own; use tokenizer_model: codebook or "
                                 "code_features: 0")
            code_dim = model.n_features
        self.gpt = asdict(GPTConfig(**{**self.gpt, "vocab_size": model.codebook_size + 2,
                                       "max_length": n_max + 2, "code_dim": code_dim}))


def tokenizer_features(preprocessing: Preprocessing) -> FeatureSpec:
    """The tokenizer's inputs as a feature spec (standardisation as subtract/multiply); the
    record of what an OmniJet backbone sees (its cut windows, subjet order and frame live in
    the preprocessing; the subjet label is derived there, not a particle feature)."""
    return FeatureSpec(tuple(InputFeature(f.name, f.shift, 1.0 / f.scale)
                             for f in preprocessing.features if f.name != SUBJET_LABEL),
                       n_max=preprocessing.n_max)


@register_backbone
class OmniJetBackbone(Backbone):
    """Tokenizer (fixed) + GPT over token sequences; embeddings = the GPT's hidden states."""

    name = "omnijet"
    config_class = OmniJetBackboneConfig

    def __init__(self, config: OmniJetBackboneConfig, features: FeatureSpec) -> None:
        super().__init__(config, features)
        # the tokenizer's model (VQ-VAE or feature codebook); the attribute keeps its name, and
        # with it the "vqvae." keys of backbone files
        self.vqvae = build_token_model(config.tokenizer).requires_grad_(False)
        self.preprocessing = Preprocessing.from_dict(config.tokenizer["preprocessing"])
        self.gpt = GPT(GPTConfig(**config.gpt))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, features: FeatureSpec,
                    where: str = "backbone_config") -> OmniJetBackbone:
        """As :meth:`Backbone.from_config`; the features always follow the tokenizer."""
        backbone = super().from_config(config, features, where)
        backbone.features = tokenizer_features(backbone.preprocessing)
        return backbone

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer (sharing this backbone's tokenizer-model weights)."""
        return Tokenizer(self.vqvae, self.preprocessing)

    @property
    def dim(self) -> int:
        return self.gpt.config.dim

    def train(self, mode: bool = True) -> OmniJetBackbone:
        """As ``nn.Module.train``; the tokenizer stays in eval mode (it is never trained)."""
        super().train(mode)
        self.vqvae.eval()
        return self

    def scratch(self) -> OmniJetBackbone:
        """A new random GPT with the same tokenizer."""
        fresh = super().scratch()
        fresh.vqvae.load_state_dict(self.vqvae.state_dict())
        fresh.set_code_coordinates()
        return fresh

    def set_code_coordinates(self) -> None:
        """Give the GPT the coordinates of the tokenizer's codes when it uses them
        (``gpt.code_features`` > 0; :class:`jetfm.models.gpt.CodeCoordinates`): the feature
        codebook's code vectors times its feature weights, the space its distance lives in."""
        if self.gpt.codes is not None:
            model = self.vqvae
            self.gpt.codes.set_coordinates(model.codebook * model.weights)

    def token_coordinates(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """With ``gpt.absolute_coordinates``: each token's particle in the jet frame
        (:meth:`Tokenizer.token_coordinates`) times the codebook's feature weights, the units
        of the code coordinates, (B, L, code_dim) on ``tokens``' device; else None."""
        if not self.gpt.config.absolute_coordinates:
            return None
        coordinates = self.tokenizer.token_coordinates(tokens.detach().cpu().numpy())
        weights = self.vqvae.weights.detach().cpu().numpy()
        return torch.as_tensor(coordinates * weights, device=tokens.device)

    def prepare(self, batch: JetBatch, origin: str | None = None
                ) -> tuple[ParticleInputs, list[SelectionReport]]:
        """Token sequences (B, n_max + 2) and their mask; the reports of the tokenizer's
        particle cuts and truncation."""
        tokenizer = self.tokenizer
        codes, mask, reports = tokenizer.encode(batch)
        empty = ~mask.any(axis=1)
        if empty.any():
            origin = origin or ", ".join(batch.source_files) or "<memory>"
            first = int(np.flatnonzero(empty)[0])
            cuts = "; ".join(str(r) for r in reports)
            raise JetDataError(f"{origin}: {int(empty.sum())} jet(s) keep no particle after the "
                               f"tokenizer's cuts (first: jet {first}); a token sequence "
                               f"without particles says nothing about a jet ({cuts})")
        tokens, seq_mask = tokenizer.to_sequences(codes, mask)
        return ParticleInputs(mask=seq_mask, tokens=tokens), reports

    def forward(self, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """GPT hidden states (B, L, dim) of ``inputs.tokens`` and the sequence mask."""
        if inputs.tokens is None:
            raise ValueError("the omnijet backbone takes token sequences: prepare the jets "
                             "with its prepare() (inputs.tokens is None)")
        hidden, _ = self.gpt(inputs.tokens, inputs.mask,
                             coordinates=self.token_coordinates(inputs.tokens))
        return hidden.masked_fill(~inputs.mask[..., None], 0.0), inputs.mask

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "tokenizer_fingerprint": self.tokenizer.fingerprint}


def omnijet_backbone(tokenizer: Tokenizer, gpt: Mapping[str, Any] | None = None
                     ) -> OmniJetBackbone:
    """A new OmniJet backbone: a random GPT of size ``gpt`` (GPTConfig fields) on the tokens
    of ``tokenizer`` (its weights copied in)."""
    config = OmniJetBackboneConfig(dict(gpt or {}), tokenizer.meta())
    backbone = OmniJetBackbone(config, tokenizer_features(tokenizer.preprocessing))
    backbone.vqvae.load_state_dict(tokenizer.model.state_dict())
    backbone.set_code_coordinates()
    return backbone


def save_generative(path: str | Path, backbone: OmniJetBackbone, head: NextTokenHead) -> Path:
    """A generative OmniJet model file: the backbone file (tokenizer included) plus the
    next-token head under ``generative_head.`` (safetensors, atomically)."""
    tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    tensors.update({f"generative_head.{k}": v for k, v in head.state_dict().items()})
    return save_model(path, tensors, {"kind": "backbone", "generative": True, **backbone.meta()})


def load_generative(path: str | Path, tokenizer: Tokenizer | None = None,
                    device: str | torch.device = "cpu"
                    ) -> tuple[OmniJetBackbone, NextTokenHead]:
    """Backbone and next-token head of a generative model file, in eval mode on ``device``.

    With ``tokenizer``: ``ValueError`` naming both fingerprints unless the file's tokenizer is
    that one. ``ValueError`` naming the file when it holds no generative OmniJet model.
    """
    tensors, meta = load_model(path, device)
    if meta.get("kind") == "gpt":
        raise ValueError(f"{path} was written by jetfm < 0.2 (kind 'gpt', without its "
                         "tokenizer): pre-train it again")
    if meta.get("backbone") != "omnijet" or not meta.get("generative"):
        raise ValueError(f"{path}: not a generative OmniJet model (backbone="
                         f"{meta.get('backbone')!r}, generative={meta.get('generative')!r})")
    backbone = backbone_from_meta(meta, str(path))
    backbone.load_state_dict(prefixed(tensors, "backbone"))
    if tokenizer is not None:
        check_fingerprint(tokenizer.fingerprint, backbone.tokenizer.fingerprint,
                          f"backbone {path}")
    head = NextTokenHead.for_backbone(backbone.gpt)
    head.load_state_dict(prefixed(tensors, "generative_head"))
    return backbone.to(device).eval(), head.to(device).eval()


def sample_jets(
    backbone: OmniJetBackbone, head: NextTokenHead, n_jets: int, *,
    temperature: float = 1.0, top_k: int | None = None, batch_size: int = 256, seed: int = 1,
    use_cache: bool = True, label: int | None = None, device: str = "auto",
) -> tuple[JetBatch, dict[str, Any]]:
    """Sample ``n_jets`` token sequences and decode them with the backbone's tokenizer;
    returns the jets and sampling figures (``n_requested``, ``n_empty``, ``jets_per_second``,
    ``seconds``, ``device``).

    ``device``: where the GPT runs ("auto": CUDA when available, else the CPU); the models are
    moved there. The random stream is seeded on that device, so a seed reproduces a sample on
    the same kind of device. Sequences that stop before their first particle cannot be decoded
    into a jet: they are left out of the returned batch and counted in ``n_empty``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone, head = backbone.to(device).eval(), head.to(device).eval()
    tokenizer = backbone.tokenizer
    generator = torch.Generator(device=device).manual_seed(seed)
    codes, masks = [], []
    grammar = tokenizer.token_grammar()
    start = time.perf_counter()
    for first in range(0, n_jets, batch_size):
        n = min(batch_size, n_jets - first)
        c, m = sample(backbone.gpt, head, n, tokenizer.n_max, temperature=temperature,
                      top_k=top_k, generator=generator, use_cache=use_cache, grammar=grammar,
                      coordinates_fn=backbone.token_coordinates
                      if backbone.gpt.config.absolute_coordinates else None)
        codes.append(c.cpu().numpy())
        masks.append(m.cpu().numpy())
    elapsed = time.perf_counter() - start
    codes_np, mask_np = np.concatenate(codes), np.concatenate(masks)
    empty = mask_np.sum(axis=1) == 0
    labels = None if label is None else np.full(int((~empty).sum()), label)
    jets = tokenizer.decode(codes_np[~empty], mask_np[~empty], label=labels)
    stats = {"n_requested": n_jets, "n_empty": int(empty.sum()),
             "jets_per_second": n_jets / elapsed, "seconds": elapsed, "device": str(device),
             "grammar": grammar is not None}
    return jets, stats
