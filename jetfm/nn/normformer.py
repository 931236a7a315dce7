"""ParT's NormFormer-style attention block (Qu, Li, Qian, arXiv:2202.03772; ``Block`` of
weaver-core's ``ParticleTransformer.py`` at commit aff6531), shared by the ParT backbone and the
class-attention head every backbone can use (:class:`jetfm.models.heads.ClassAttentionHead`).

NormFormer: Shleifer, Weston, Ott, arXiv:2110.09456 (post-attention and inner-MLP LayerNorms,
per-head attention scales); class attention: CaiT, Touvron et al., arXiv:2103.17239.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ParTAttention(nn.Module):
    """Multi-head attention with an additive per-head bias, parametrised as
    ``nn.MultiheadAttention`` (packed q/k/v projection with Xavier init, zero biases)."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        key_mask: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``query`` (B, T, D) attends over ``context`` (B, S, D); ``key_mask`` (B, S) True for
        real keys; ``bias`` (B, H, T, S) is added to the logits. Returns (B, T, D)."""
        d = query.shape[-1]
        w, b = self.qkv.weight, self.qkv.bias
        q = F.linear(query, w[:d], b[:d])
        k, v = F.linear(context, w[d:], b[d:]).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        logits_mask = torch.zeros_like(key_mask, dtype=q.dtype).masked_fill(~key_mask, -math.inf)
        logits_mask = logits_mask[:, None, None, :]
        if bias is not None:
            logits_mask = logits_mask + bias
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=logits_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).flatten(2))


class ParTBlock(nn.Module):
    """ParT's NormFormer-style block (``Block`` of the reference).

    x + Dropout(LN(c_attn * Attn(LN(x)))), then
    w_resid * x + Dropout(fc2(LN(Dropout(GELU(fc1(LN(x))))))).
    ``c_attn`` (per head, init 1) scales the attention output split into heads; as in the
    reference, the scaled output is then flattened in (head_dim, head) order (its
    ``einsum('tbhd,h->tbdh')``), which permutes the channels fed to the post-attention norm.
    With ``cls`` given it is a class-attention block: the raw class token is the query and the
    normalised [cls; x] the keys and values.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_ratio: int,
        dropout: float,
        attn_dropout: float,
        activation_dropout: float,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = ParTAttention(dim, num_heads, attn_dropout)
        self.attn_out_norm = nn.LayerNorm(dim)
        self.mlp_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * ffn_ratio)
        self.mlp_inner_norm = nn.LayerNorm(dim * ffn_ratio)
        self.fc2 = nn.Linear(dim * ffn_ratio, dim)
        self.head_scale = nn.Parameter(torch.ones(num_heads))
        self.resid_scale = nn.Parameter(torch.ones(dim))
        self.dropout = nn.Dropout(dropout)
        self.act_dropout = nn.Dropout(activation_dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        bias: torch.Tensor | None = None,
        cls: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, P, D), mask (B, P) True = real, bias (B, H, P, P); cls (B, 1, D) or None.
        Returns the updated x, or the updated class token when ``cls`` is given."""
        if cls is None:
            residual, h = x, self.attn_norm(x)
            a = self.attn(h, h, mask, bias)
        else:
            residual = cls
            context = self.attn_norm(torch.cat((cls, x), dim=1))
            key_mask = torch.cat((mask.new_ones(mask.shape[0], 1), mask), dim=1)
            a = self.attn(cls, context, key_mask)
        b, t, d = a.shape
        a = (a.view(b, t, self.num_heads, -1) * self.head_scale[:, None]).transpose(2, 3)
        x = self.dropout(self.attn_out_norm(a.reshape(b, t, d))) + residual
        h = self.act_dropout(F.gelu(self.fc1(self.mlp_norm(x))))
        h = self.dropout(self.fc2(self.mlp_inner_norm(h)))
        return h + self.resid_scale * x
