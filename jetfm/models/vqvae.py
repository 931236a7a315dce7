"""VQ-VAE tokenizer: particles of a jet -> integer tokens -> particles (OmniJet-alpha).

Encoder and decoder are NormFormer-style transformers over the jet's particles (permutation
equivariant, padding-masked), so a particle's token depends on its jet. The latent per particle
is ``latent_dim``-dimensional (4 in OmniJet-alpha) and quantised by
:class:`~jetfm.models.vq.VectorQuantizer`.

Shapes: ``x`` (batch, n_max, n_features) standardised features (see
:mod:`jetfm.data.transforms`), ``mask`` (batch, n_max) bool; codes (batch, n_max) int64 with
0 at padded positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jetfm.checks import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE_INT, check_divisible, check_fields
from jetfm.models.vq import VectorQuantizer
from jetfm.nn.transformer import Block


@dataclass
class VQVAEConfig:
    """Tokenizer size. OmniJet-alpha: dim 128, 4 blocks, 8 heads, latent 4, 8192 codes."""

    n_features: int = 3
    dim: int = 128
    n_blocks: int = 4
    n_heads: int = 8
    latent_dim: int = 4
    codebook_size: int = 8192
    beta: float = 0.25
    replace_every: int = 10
    vq_weight: float = 1.0

    def __post_init__(self) -> None:
        """Sizes >= 1 (``dim`` a multiple of ``n_heads``), ``beta``, ``vq_weight`` >= 0,
        ``replace_every`` >= 0 (0: no dead-code replacement); ``ValueError`` naming the key."""
        check_fields(self, {**dict.fromkeys(("n_features", "dim", "n_blocks", "n_heads",
                                             "latent_dim", "codebook_size"), POSITIVE_INT),
                            "beta": NON_NEGATIVE, "vq_weight": NON_NEGATIVE,
                            "replace_every": NON_NEGATIVE_INT})
        check_divisible(self)


@dataclass
class VQVAEOutput:
    reconstruction: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    vq_loss: torch.Tensor
    perplexity: torch.Tensor
    utilisation: torch.Tensor


class SetTransformer(nn.Module):
    """Linear in -> NormFormer blocks (no causal mask) -> LayerNorm -> Linear out."""

    def __init__(self, d_in: int, d_out: int, dim: int, n_blocks: int, n_heads: int) -> None:
        super().__init__()
        self.embed = nn.Linear(d_in, dim)
        self.blocks = nn.ModuleList(
            Block(dim, n_heads, normformer=True) for _ in range(n_blocks)
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, d_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h, _ = block(h, mask)
        return self.out(self.norm(h))


class VQVAE(nn.Module):
    """Transformer encoder -> vector quantiser -> transformer decoder."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = SetTransformer(c.n_features, c.latent_dim, c.dim, c.n_blocks, c.n_heads)
        self.quantizer = VectorQuantizer(
            c.codebook_size, c.latent_dim, beta=c.beta, replace_every=c.replace_every
        )
        self.decoder = SetTransformer(c.latent_dim, c.n_features, c.dim, c.n_blocks, c.n_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> VQVAEOutput:
        z = self.encoder(x, mask)
        q = self.quantizer(z[mask])
        z_q = torch.zeros_like(z)
        z_q[mask] = q.z_q
        reconstruction = self.decoder(z_q, mask)
        reconstruction_loss = ((reconstruction - x)[mask] ** 2).mean()
        codes = torch.zeros(mask.shape, dtype=torch.long, device=x.device)
        codes[mask] = q.codes
        loss = reconstruction_loss + self.config.vq_weight * q.loss
        return VQVAEOutput(
            reconstruction, codes, loss, reconstruction_loss, q.loss, q.perplexity, q.utilisation
        )

    @torch.no_grad()
    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Codes (batch, n_max) int64, 0 where masked."""
        z = self.encoder(x, mask)
        codes = torch.zeros(mask.shape, dtype=torch.long, device=x.device)
        codes[mask] = self.quantizer.assign(z[mask])
        return codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Standardised features (batch, n_max, n_features) from codes; 0 where masked."""
        z_q = self.quantizer.lookup(codes) * mask[..., None]
        return self.decoder(z_q, mask) * mask[..., None]
