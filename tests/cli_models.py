"""Tiny tokenizer, GPT backbone, token files and config for CLI tests (not a test module).

The models are untrained (seeded random weights) and small enough that a command using them
runs in about a second; they exercise the command line, not the physics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from io_jets import random_jets

from jetfm.data.tokens import TokenDataset, write_tokens
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.gpt import NextTokenHead
from jetfm.models.omnijet import omnijet_backbone, save_generative
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAE, VQVAEConfig

GPT_SIZE = {"dim": 16, "n_blocks": 1, "n_heads": 2}
CONFIG_YAML = f"""\
seed: 5
gpt: {GPT_SIZE}
tokenizer_training: {{max_epochs: 1, batch_size: 16}}
pretraining: {{max_epochs: 1, batch_size: 16}}
tagging_training: {{max_epochs: 1, batch_size: 16}}
"""


def tiny_tokenizer(path: Path, seed: int = 0) -> Tokenizer:
    """A random 16-code tokenizer of up to 12 particles, saved to ``path``."""
    torch.manual_seed(seed)
    config = VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=16)
    tokenizer = Tokenizer(VQVAE(config), omnijet_preprocessing(n_max=12))
    tokenizer.save(path)
    return tokenizer


def tiny_backbone(path: Path, tokenizer: Tokenizer, *, stop_bias: float = 0.0) -> Path:
    """A random generative OmniJet model (GPT + head) for ``tokenizer``, saved to ``path``.

    ``stop_bias``: added to the stop token's logit (large: every sequence stops at once).
    """
    torch.manual_seed(1)
    backbone = omnijet_backbone(tokenizer, GPT_SIZE)
    head = NextTokenHead(backbone.dim, tokenizer.vocab_size)
    with torch.no_grad():
        head.linear.bias[tokenizer.stop_token] += stop_bias
    return save_generative(path, backbone, head)


def omnijet_meta(gpt: dict, seed: int = 0) -> dict:
    """Plain-data metadata of a random OmniJet backbone whose tokenizer matches the GPT
    config ``gpt`` (codebook = vocab_size - 2 codes, n_max = max_length - 2 particles): what
    :class:`jetfm.tasks.omnijet.GenerativeTask` and tagger metadata take."""
    torch.manual_seed(seed)
    config = VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=gpt["vocab_size"] - 2)
    tokenizer = Tokenizer(VQVAE(config), omnijet_preprocessing(n_max=gpt["max_length"] - 2))
    size = {k: v for k, v in gpt.items() if k not in ("vocab_size", "max_length")}
    return omnijet_backbone(tokenizer, size).meta()


def token_file(path: Path, tokenizer: Tokenizer, n_jets: int, label: int, seed: int) -> Path:
    """``n_jets`` random jets of class ``label`` tokenized by ``tokenizer`` (0 jets allowed)."""
    if n_jets:
        jets = random_jets(n_jets, seed=seed, n_max=15)
        codes, mask, _ = tokenizer.encode(jets)
    else:
        codes = np.zeros((0, tokenizer.n_max), dtype=np.int64)
        mask = np.zeros((0, tokenizer.n_max), dtype=bool)
    record = {"fingerprint": tokenizer.fingerprint, "codebook_size": tokenizer.codebook_size}
    return write_tokens(path, TokenDataset(codes, mask, np.full(n_jets, label), record))


def tiny_config(path: Path) -> Path:
    """An OmniJet YAML config with the tiny GPT and one-epoch training blocks (seed 5)."""
    path.write_text(CONFIG_YAML)
    return path
