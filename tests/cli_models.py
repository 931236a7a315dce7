"""Tiny tokenizer, GPT backbone, token files and config for CLI tests (not a test module).

The models are untrained (seeded random weights) and small enough that a command using them
runs in about a second; they exercise the command line, not the physics.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from io_jets import random_jets

from jetfm.checkpoint import save_model
from jetfm.data.tokens import TokenDataset, write_tokens
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.gpt import GPT, GPTConfig, NextTokenHead
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
    """A random GPT backbone + head for ``tokenizer``'s tokens, saved to ``path``.

    ``stop_bias``: added to the stop token's logit (large: every sequence stops at once).
    """
    torch.manual_seed(1)
    config = GPTConfig(**GPT_SIZE, vocab_size=tokenizer.vocab_size,
                       max_length=tokenizer.n_max + 2)
    backbone, head = GPT(config), NextTokenHead(config.dim, config.vocab_size)
    tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    head_state = head.state_dict()
    bias = next(k for k in head_state if k.endswith("bias"))
    head_state[bias][tokenizer.stop_token] += stop_bias
    tensors.update({f"head.{k}": v for k, v in head_state.items()})
    return save_model(path, tensors, {"kind": "gpt", "gpt": asdict(config),
                                      "tokenizer_fingerprint": tokenizer.fingerprint})


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
