"""DDP: `jetfm pretrain` trains in two CPU processes (gloo) and the result loads on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from io_jets import random_jets

import jetfm
from jetfm.data.tokens import TokenDataset, write_tokens
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.omnijet import load_generative
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAE, VQVAEConfig

CONFIG = """
n_max: 16
gpt: {dim: 32, n_blocks: 1, n_heads: 4}
pretraining: {max_epochs: 2, batch_size: 16, progress: false}
"""


def test_pretrain_with_ddp_on_two_cpu_processes(tmp_path: Path):
    torch.manual_seed(0)
    tokenizer = Tokenizer(VQVAE(VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=32)),
                          omnijet_preprocessing(n_max=16))
    tokenizer_path = tokenizer.save(tmp_path / "tok.safetensors")
    jets = random_jets(96, seed=5)
    codes, mask, _ = tokenizer.encode(jets)
    record = {"fingerprint": tokenizer.fingerprint, "codebook_size": tokenizer.codebook_size}
    tokens = write_tokens(tmp_path / "tokens.parquet", TokenDataset(codes, mask, jets.label,
                                                                    record))
    (tmp_path / "config.yaml").write_text(CONFIG)
    out = tmp_path / "pretrain"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "jetfm.cli", "pretrain", str(tokens), "--tokenizer",
               str(tokenizer_path), "--config", str(tmp_path / "config.yaml"), "--out-dir",
               str(out), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "gloo" in result.stderr + result.stdout or "GLOBAL_RANK: 1" in result.stderr
    assert result.stdout.count("backbone -> ") == 1  # rank 0 reports, the other is silent
    assert result.stdout.count("model bundle -> ") == 1  # and writes the bundle, once
    assert jetfm.load(out / "model").tokenizer.fingerprint == tokenizer.fingerprint
    backbone, _ = load_generative(out / "backbone.safetensors", tokenizer)  # checks it
    assert backbone.tokenizer.fingerprint == tokenizer.fingerprint
    metrics = (out / "logs" / "metrics.csv").read_text()
    assert "val/loss" in metrics
    # two processes, each saw half of the training batches: 86 training jets -> 3 steps each
    # per epoch with batch 16 (a single process would take 6)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2 * int(np.ceil(np.ceil(86 / 2) / 16))
