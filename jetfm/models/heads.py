"""Classification heads on top of any backbone's hidden states (batch, length, dim).

* :class:`SummationHead` (OmniJet-alpha "summation"): masked sum over the sequence, then an
  MLP to class logits.
* :class:`ClassAttentionHead` (OmniJet-alpha "class attention", as in ParT/CaiT): a learned
  class token attends to the hidden states through class-attention blocks, then a linear layer.

Both are invariant under permutations of the unmasked sequence positions.
"""

from __future__ import annotations

import torch
from torch import nn

from jetfm.nn.transformer import ClassAttentionBlock


class SummationHead(nn.Module):
    """sum_i h_i over real positions -> Linear -> GELU -> Linear -> logits."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, n_classes))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = (hidden * mask[..., None]).sum(dim=1)
        return self.mlp(pooled)


class ClassAttentionHead(nn.Module):
    """Class token + ``n_blocks`` class-attention blocks -> LayerNorm -> Linear -> logits."""

    def __init__(self, dim: int, n_classes: int, n_heads: int = 8, n_blocks: int = 2) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.ModuleList(ClassAttentionBlock(dim, n_heads) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, n_classes)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        cls = self.cls.expand(hidden.shape[0], -1, -1)
        for block in self.blocks:
            cls = block(cls, hidden, mask)
        return self.out(self.norm(cls[:, 0]))


HEADS = {"summation": SummationHead, "class_attention": ClassAttentionHead}
