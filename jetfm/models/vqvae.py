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

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from jetfm.checks import (
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    Rule,
    check_divisible,
    check_fields,
)
from jetfm.models.quantizers import FSQQuantizer, ResidualQuantizer, codes_per_stage
from jetfm.models.vq import VectorQuantizer
from jetfm.nn.transformer import Block

QUANTIZERS = ("vq", "fsq", "rvq")


@dataclass
class VQVAEConfig:
    """Tokenizer size and quantiser. OmniJet-alpha: dim 128, 4 blocks, 8 heads, latent 4,
    8192 codes, plain VQ.

    ``codebook_size`` is always the number of distinct tokens. ``quantizer``: ``vq``
    (:class:`~jetfm.models.vq.VectorQuantizer`, OmniJet-alpha's), ``fsq`` (finite scalar
    quantisation with ``fsq_levels``; ``codebook_size`` must be their product) or ``rvq``
    (residual VQ with ``rvq_stages`` codebooks; ``codebook_size`` must be K^rvq_stages), see
    :mod:`jetfm.models.quantizers`. ``pt_weight`` (a in [0, 1]) weights each particle's
    reconstruction error by (1 - a) + a n z, with z its pT fraction of the jet's and n the
    jet's particle count (mean weight 1 per jet): a = 0 is OmniJet-alpha's unweighted loss,
    a = 1 weights by pT, so that the hard particles, which set mass and substructure, are
    reconstructed best.
    """

    n_features: int = 3
    dim: int = 128
    n_blocks: int = 4
    n_heads: int = 8
    latent_dim: int = 4
    codebook_size: int = 8192
    beta: float = 0.25
    replace_every: int = 10
    vq_weight: float = 1.0
    quantizer: str = "vq"
    fsq_levels: list[int] | None = None
    rvq_stages: int = 2
    pt_weight: float = 0.0

    def __post_init__(self) -> None:
        """Sizes >= 1 (``dim`` a multiple of ``n_heads``), ``beta``, ``vq_weight`` >= 0,
        ``replace_every`` >= 0 (0: no dead-code replacement), ``pt_weight`` in [0, 1], a known
        ``quantizer`` whose sizes agree with ``codebook_size``; ``ValueError`` naming the key.
        """
        check_fields(self, {**dict.fromkeys(("n_features", "dim", "n_blocks", "n_heads",
                                             "latent_dim", "codebook_size", "rvq_stages"),
                                            POSITIVE_INT),
                            "beta": NON_NEGATIVE, "vq_weight": NON_NEGATIVE,
                            "replace_every": NON_NEGATIVE_INT,
                            "pt_weight": Rule(float, low=0, high=1)})
        check_divisible(self)
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"quantizer: {self.quantizer!r} is not one of {list(QUANTIZERS)}")
        if self.quantizer == "fsq":
            levels = self.fsq_levels
            if not isinstance(levels, list | tuple) or not levels or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 3 for v in levels):
                raise ValueError(f"fsq_levels: {levels!r}; quantizer fsq needs a list of "
                                 "integers >= 3 (vector-quantize-pytorch's FSQ needs its "
                                 "symmetric mode for 2 levels), e.g. [8, 5, 5, 5] (1000 codes)")
            self.fsq_levels = list(levels)
            if math.prod(levels) != self.codebook_size:
                raise ValueError(f"codebook_size {self.codebook_size} != the product of "
                                 f"fsq_levels {levels} ({math.prod(levels)}); set "
                                 f"codebook_size: {math.prod(levels)}")
        elif self.fsq_levels is not None:
            raise ValueError(f"fsq_levels apply to quantizer fsq, not {self.quantizer}")
        if self.quantizer == "rvq":
            codes_per_stage(self.codebook_size, self.rvq_stages)

    def to_dict(self) -> dict:
        """The fields as plain data; the quantiser options (``quantizer``, ``fsq_levels``,
        ``rvq_stages``, ``pt_weight``) only where they differ from their defaults, so that
        the metadata, and with it the fingerprint, of a plain-VQ tokenizer is what it was
        before these options existed (its token files stay valid)."""
        data = asdict(self)
        for key in OPTIONAL_KEYS:
            if data[key] == VQVAE_DEFAULTS[key]:
                del data[key]
        return data


OPTIONAL_KEYS = ("quantizer", "fsq_levels", "rvq_stages", "pt_weight")
VQVAE_DEFAULTS = {f.name: f.default for f in fields(VQVAEConfig)}


def build_quantizer(config: VQVAEConfig) -> nn.Module:
    """The quantiser ``config.quantizer`` names, sized by ``config``."""
    if config.quantizer == "fsq":
        return FSQQuantizer(config.fsq_levels, config.latent_dim)
    if config.quantizer == "rvq":
        return ResidualQuantizer(config.codebook_size, config.rvq_stages, config.latent_dim,
                                 beta=config.beta, replace_every=config.replace_every)
    return VectorQuantizer(config.codebook_size, config.latent_dim, beta=config.beta,
                           replace_every=config.replace_every)


def pt_weights(pt: torch.Tensor, mask: torch.Tensor, a: float) -> torch.Tensor:
    """Per-particle loss weights (1 - a) + a n z (see :class:`VQVAEConfig`): ``pt``
    (batch, n_max) in any unit, ``mask`` (batch, n_max) bool; 0 at padded slots."""
    pt = torch.where(mask, pt, torch.zeros_like(pt))
    n = mask.sum(dim=1, keepdim=True).clamp(min=1)
    z = pt / pt.sum(dim=1, keepdim=True).clamp(min=torch.finfo(pt.dtype).tiny)
    return torch.where(mask, (1 - a) + a * n * z, torch.zeros_like(pt))


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
        self.quantizer = build_quantizer(c)
        self.decoder = SetTransformer(c.latent_dim, c.n_features, c.dim, c.n_blocks, c.n_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pt: torch.Tensor | None = None
                ) -> VQVAEOutput:
        """Reconstruction, codes and losses; ``pt`` (batch, n_max), the particles' pT, is
        needed when ``pt_weight`` > 0 (the weighted reconstruction loss)."""
        z = self.encoder(x, mask)
        q = self.quantizer(z[mask])
        z_q = torch.zeros_like(z)
        z_q[mask] = q.z_q.to(z.dtype)
        reconstruction = self.decoder(z_q, mask)
        if self.config.pt_weight > 0:
            if pt is None:
                raise ValueError(f"pt_weight {self.config.pt_weight}: the VQ-VAE needs the "
                                 "particles' pT (forward(x, mask, pt))")
            error = ((reconstruction - x) ** 2).mean(dim=-1)[mask]
            weights = pt_weights(pt, mask, self.config.pt_weight)[mask]
            reconstruction_loss = (weights * error).sum() / weights.sum()
        else:  # this expression (its summation order) keeps earlier trainings bit-identical
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
