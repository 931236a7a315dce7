"""Transformer building blocks shared by every jetfm backbone.

Shapes: ``x`` is (batch, sequence, dim); ``padding_mask`` is (batch, sequence) bool with True
for real entries. Attention goes through ``torch.nn.functional.scaled_dot_product_attention``.

* :class:`SelfAttention`: multi-head attention with optional causal masking, padding masks and
  a key/value cache for incremental decoding.
* :class:`MLP`: the two-layer feed-forward network (GELU).
* :class:`Block`: a pre-norm transformer block. With ``normformer=True`` it adds the extra
  layer norms of NormFormer (Shleifer et al., arXiv:2110.09456) after attention and inside the
  MLP, as OmniJet-alpha's VQ-VAE encoder/decoder do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class KVCache:
    """Keys and values of the positions seen so far: (batch, heads, length, head_dim) each."""

    keys: torch.Tensor
    values: torch.Tensor

    @property
    def length(self) -> int:
        return self.keys.shape[2]


def attention_mask(
    padding_mask: torch.Tensor | None, causal: bool, n_query: int, n_key: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean (batch or 1, 1, n_query, n_key) mask, True where attention is allowed.

    Causal masking aligns the last query with the last key (queries are the newest positions,
    as in incremental decoding with a cache). A query whose keys are all masked (a padded
    query) is allowed to attend to itself/the first key so the softmax stays finite; padded
    outputs are never used.
    """
    mask = None
    if causal:
        offset = n_key - n_query
        q = torch.arange(n_query, device=device)[:, None] + offset
        k = torch.arange(n_key, device=device)[None, :]
        mask = (k <= q)[None, None]
    if padding_mask is not None:
        keys = padding_mask[:, None, None, -n_key:] if padding_mask.shape[1] >= n_key else None
        if keys is None:
            raise ValueError(f"padding mask of length {padding_mask.shape[1]} for {n_key} keys")
        mask = keys if mask is None else mask & keys
    if mask is not None:
        empty = ~mask.any(dim=-1, keepdim=True)
        if empty.any():
            first = torch.zeros_like(mask)
            first[..., 0] = True
            mask = mask | (empty & first)
    return mask


def _check_heads(dim: int, n_heads: int) -> int:
    if dim % n_heads:
        raise ValueError(f"dim {dim} is not divisible by n_heads {n_heads}")
    return n_heads


class SelfAttention(nn.Module):
    """Multi-head self-attention (``dim`` split over ``n_heads``)."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.n_heads = _check_heads(dim, n_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Attend over ``x`` (and the cached positions). Returns output and updated cache.

        With a cache, ``padding_mask`` covers cached + new positions.
        """
        b, n, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k = torch.cat([cache.keys, k], dim=2)
            v = torch.cat([cache.values, v], dim=2)
        mask = attention_mask(padding_mask, causal, n, k.shape[2], x.device)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(b, n, d)
        return self.proj(y), KVCache(k, v)


class MLP(nn.Module):
    """Linear -> GELU -> (LayerNorm) -> Linear, hidden width ``expansion * dim``."""

    def __init__(
        self, dim: int, expansion: int = 4, dropout: float = 0.0, inner_norm: bool = False
    ) -> None:
        super().__init__()
        hidden = expansion * dim
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.LayerNorm(hidden) if inner_norm else nn.Identity(),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        dim: int,
        n_heads: int,
        expansion: int = 4,
        dropout: float = 0.0,
        normformer: bool = False,
    ) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, n_heads, dropout)
        self.norm_attn_out = nn.LayerNorm(dim) if normformer else nn.Identity()
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, expansion, dropout, inner_norm=normformer)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        causal: bool = False,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        h, cache = self.attn(self.norm_attn(x), padding_mask, causal, cache)
        x = x + self.norm_attn_out(h)
        x = x + self.mlp(self.norm_mlp(x))
        return x, cache


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` (b, n, dim) to ``context`` (b, m, dim)."""

    def __init__(self, dim: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = _check_heads(dim, n_heads)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        """``causal``: query i sees context entries up to i + m - n (aligned at the end)."""
        b, n, d = x.shape
        m = context.shape[1]
        h = self.n_heads
        q = self.q(x).view(b, n, h, d // h).transpose(1, 2)
        k, v = (
            t.view(b, m, h, d // h).transpose(1, 2) for t in self.kv(context).split(d, dim=2)
        )
        mask = attention_mask(context_mask, causal, n, m, x.device)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class ClassAttentionBlock(nn.Module):
    """CaiT / ParT class-attention block: a class token attends to [class token, particles]."""

    def __init__(self, dim: int, n_heads: int, expansion: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, n_heads, dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, expansion, dropout)

    def forward(
        self, cls: torch.Tensor, x: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``cls`` (b, 1, dim), ``x`` (b, n, dim) -> updated class token (b, 1, dim)."""
        context = torch.cat([cls, x], dim=1)
        if padding_mask is not None:
            ones = torch.ones_like(padding_mask[:, :1])
            padding_mask = torch.cat([ones, padding_mask], dim=1)
        cls = cls + self.attn(self.norm(cls), self.norm(context), padding_mask)
        return cls + self.mlp(self.norm_mlp(cls))
