"""Classification heads on any backbone's embeddings (batch, tokens, dim) with mask (batch, tokens).

* :class:`ClassAttentionHead` (``class_attention``): ParT's class attention (Qu et al. 2022,
  after CaiT, arXiv:2103.17239): a learned class token (truncated normal, std 0.02) attends
  over [class token; tokens] through ``n_blocks`` NormFormer blocks without dropout
  (:class:`jetfm.nn.normformer.ParTBlock`), then LayerNorm and Linear -> logits. On the ParT
  backbone it is the reference tagger's own pooling; OmniJet-alpha's "class attention" head
  and PET's class token follow the same design.
* :class:`PooledMLPHead` (``pooled_mlp``): mean over real tokens -> Linear -> GELU -> Linear.
* :class:`SummationHead` (``summation``, OmniJet-alpha's): as ``pooled_mlp`` with a sum.
* :class:`GlobalTokenHead` (``global_token``): Linear on the first token's embedding, for
  backbones with a global token (L-GATr: its invariant outputs at the global token give the
  logits, Spinner et al. 2024).

All but ``global_token`` are invariant under permutations of the real tokens and blind to
padded ones. Every head takes ``(dim, n_classes, **options)``; :func:`build_head` checks the
options.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from jetfm.nn.normformer import ParTBlock


class ClassAttentionHead(nn.Module):
    """Class token + ``n_blocks`` class-attention blocks -> LayerNorm -> Linear -> logits."""

    def __init__(self, dim: int, n_classes: int, n_heads: int = 8, n_blocks: int = 2,
                 ffn_ratio: int = 4) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"class_attention: embedding size {dim} is not divisible by "
                             f"n_heads {n_heads}")
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls, std=0.02, a=-2.0, b=2.0)
        self.blocks = nn.ModuleList(ParTBlock(dim, n_heads, ffn_ratio, 0.0, 0.0, 0.0)
                                    for _ in range(n_blocks))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, n_classes)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` (B, T, dim), ``mask`` (B, T) bool -> logits (B, n_classes)."""
        cls = self.cls.expand(hidden.shape[0], -1, -1)
        for block in self.blocks:
            cls = block(hidden, mask, cls=cls)
        return self.out(self.norm(cls[:, 0]))


class PooledMLPHead(nn.Module):
    """Masked mean (``pool="mean"``) or sum over tokens -> Linear -> GELU -> Linear."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128, pool: str = "mean") -> None:
        super().__init__()
        if pool not in ("mean", "sum"):
            raise ValueError(f"pool must be 'mean' or 'sum', got {pool!r}")
        self.pool = pool
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, n_classes))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (hidden * mask[..., None]).sum(dim=1)
        if self.pool == "mean":
            pooled = pooled / mask.sum(dim=1, keepdim=True).clamp(min=1)
        return self.mlp(pooled)


class SummationHead(PooledMLPHead):
    """OmniJet-alpha's summation head: sum_i h_i over real tokens -> MLP -> logits."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__(dim, n_classes, hidden, pool="sum")


class GlobalTokenHead(nn.Module):
    """Linear(dim -> n_classes) on the embedding of token 0 (a backbone's global token)."""

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        self.out = nn.Linear(dim, n_classes)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(hidden[:, 0])


HEADS: dict[str, type[nn.Module]] = {
    "class_attention": ClassAttentionHead,
    "pooled_mlp": PooledMLPHead,
    "summation": SummationHead,
    "global_token": GlobalTokenHead,
}


def build_head(name: str, dim: int, n_classes: int, options: Mapping[str, Any] | None = None,
               where: str = "head") -> nn.Module:
    """Head ``name`` for embeddings of width ``dim``; ``ValueError`` naming ``where`` and an
    unknown head, an unknown option or a bad value."""
    if name not in HEADS:
        raise ValueError(f"{where}: unknown head {name!r}; valid: {sorted(HEADS)}")
    options = dict(options or {})
    valid = set(inspect.signature(HEADS[name]).parameters) - {"dim", "n_classes"}
    unknown = set(options) - valid
    if unknown:
        raise ValueError(f"{where}: unknown options {sorted(unknown)} for head {name!r}; "
                         f"valid: {sorted(valid)}")
    try:
        return HEADS[name](dim, n_classes, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
