"""`Tokenizer`: jets <-> token sequences, i.e. a trained VQ-VAE plus its preprocessing.

Token conventions (OmniJet-alpha): a jet of n particles (pT-ordered) becomes the sequence
``[0, c_1 + 1, ..., c_n + 1, K + 1]`` with K the codebook size: 0 = start, K + 1 = stop,
padded with zeros to ``n_max + 2`` under a mask. Decoded jets are massless particles around a
jet axis at eta = phi = 0 (see :mod:`jetfm.data.transforms`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.data.batch import JetBatch, SelectionReport
from jetfm.data.transforms import Preprocessing
from jetfm.models.vqvae import VQVAE, VQVAEConfig


class Tokenizer:
    """A VQ-VAE with the preprocessing it was trained on."""

    def __init__(self, vqvae: VQVAE, preprocessing: Preprocessing) -> None:
        self.vqvae = vqvae.eval()
        self.preprocessing = preprocessing

    @property
    def codebook_size(self) -> int:
        return self.vqvae.config.codebook_size

    @property
    def vocab_size(self) -> int:
        """Codes + start + stop."""
        return self.codebook_size + 2

    @property
    def stop_token(self) -> int:
        return self.codebook_size + 1

    @property
    def n_max(self) -> int:
        return self.preprocessing.n_max

    @property
    def fingerprint(self) -> str:
        """Short hash of weights and configuration: tokenized datasets record it."""
        h = hashlib.sha256(json.dumps(self.meta(), sort_keys=True).encode())
        for key, value in sorted(self.vqvae.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def _device(self) -> torch.device:
        return next(self.vqvae.parameters()).device

    def encode(
        self, batch: JetBatch, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray, list[SelectionReport]]:
        """Codes (n_jets, n_max) int64 and mask; reports of the preprocessing cuts."""
        values, mask, reports = self.preprocessing.apply(batch)
        codes = np.zeros(mask.shape, dtype=np.int64)
        device = self._device()
        for start in range(0, len(values), batch_size):
            x = torch.as_tensor(values[start : start + batch_size], device=device)
            m = torch.as_tensor(mask[start : start + batch_size], device=device)
            codes[start : start + batch_size] = self.vqvae.encode(x, m).cpu().numpy()
        return codes, mask, reports

    def decode(
        self, codes: np.ndarray, mask: np.ndarray, batch_size: int = 1024, **batch_kwargs: Any
    ) -> JetBatch:
        """Jets from codes (n_jets, n_max) and mask."""
        values = np.zeros((*codes.shape, len(self.preprocessing.features)), dtype=np.float32)
        device = self._device()
        for start in range(0, len(codes), batch_size):
            c = torch.as_tensor(codes[start : start + batch_size], device=device)
            m = torch.as_tensor(mask[start : start + batch_size], device=device)
            values[start : start + batch_size] = self.vqvae.decode(c, m).cpu().numpy()
        return self.preprocessing.invert(values, mask, **batch_kwargs)

    def to_sequences(self, codes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[start, codes + 1, stop] sequences (n_jets, n_max + 2) and their mask."""
        n = len(codes)
        counts = mask.sum(axis=1)
        tokens = np.zeros((n, codes.shape[1] + 2), dtype=np.int64)
        tokens[:, 1:-1] = np.where(mask, codes + 1, 0)
        tokens[np.arange(n), counts + 1] = self.stop_token
        seq_mask = np.arange(tokens.shape[1])[None, :] < (counts + 2)[:, None]
        return tokens, seq_mask

    def meta(self) -> dict[str, Any]:
        return {
            "kind": "tokenizer",
            "vqvae": asdict(self.vqvae.config),
            "preprocessing": self.preprocessing.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """safetensors file with the VQ-VAE weights and its configuration + preprocessing."""
        tensors = {f"vqvae.{k}": v for k, v in self.vqvae.state_dict().items()}
        return save_model(path, tensors, self.meta())

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Tokenizer:
        tensors, meta = load_model(path, device)
        if meta.get("kind") != "tokenizer":
            raise ValueError(f"{path}: not a tokenizer file (kind={meta.get('kind')!r})")
        return cls.from_state(prefixed(tensors, "vqvae"), meta)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Tokenizer:
        vqvae = VQVAE(VQVAEConfig(**meta["vqvae"]))
        vqvae.load_state_dict(state)
        return cls(vqvae, Preprocessing.from_dict(meta["preprocessing"]))
