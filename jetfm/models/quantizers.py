"""Alternative quantisers of the VQ-VAE tokenizer, from ``vector-quantize-pytorch``.

Both expose the interface of :class:`jetfm.models.vq.VectorQuantizer` (``forward(z) ->
QuantizerOutput``, ``assign(z) -> codes``, ``lookup(codes) -> vectors``, ``codebook_size``),
with ONE integer token per particle, so the GPT, the token files and sampling do not change:

* :class:`FSQQuantizer`: finite scalar quantisation (Mentzer et al., "Finite Scalar
  Quantization: VQ-VAE Made Simple", arXiv:2309.15505): the latent is projected to
  ``len(levels)`` dimensions, each bounded and rounded to one of ``levels[i]`` values; the
  token is the mixed-radix index of the grid point, ``codebook_size = prod(levels)``. No
  codebook loss, no dead codes (every grid point is reachable). The paper's recommended levels
  (its table 1): 2^8 codes [8, 6, 5], 2^10 [8, 5, 5, 5], 2^12 [7, 5, 5, 5, 5],
  2^14 [8, 8, 8, 6, 5], 2^16 [8, 8, 8, 5, 5, 5].
* :class:`ResidualQuantizer`: residual VQ (Zeghidour et al., SoundStream, arXiv:2107.03312):
  ``stages`` codebooks of K codes each quantise the residual of the previous stage (EMA codebook
  updates, k-means initialisation and dead-code replacement as in the library); the token is
  ``sum_s c_s K^s``, so ``codebook_size = K^stages``.

Shapes: ``z`` (n, latent_dim) (the VQ-VAE flattens the real particles of a batch), codes (n,)
int64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from jetfm.models.vq import QuantizerOutput, code_statistics


def codes_per_stage(codebook_size: int, stages: int) -> int:
    """K with K^stages = ``codebook_size`` (residual VQ); ``ValueError`` when there is none."""
    per_stage = round(codebook_size ** (1 / stages))
    if per_stage ** stages != codebook_size:
        raise ValueError(f"codebook_size {codebook_size} is not K^{stages} (quantizer rvq "
                         f"with rvq_stages {stages}: K codes per stage), e.g. "
                         f"{per_stage ** stages}")
    return per_stage


class FSQQuantizer(nn.Module):
    """Finite scalar quantisation with ``levels`` per dimension of a projected latent."""

    def __init__(self, levels: list[int], dim: int) -> None:
        super().__init__()
        from vector_quantize_pytorch import FSQ

        self.levels = [int(v) for v in levels]
        self.codebook_size = math.prod(self.levels)
        self.fsq = FSQ(self.levels, dim=dim)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z_q, codes = self.fsq(z[None])
        codes = codes[0].long()
        perplexity, utilisation = code_statistics(codes, self.codebook_size, z.dtype)
        return QuantizerOutput(z_q[0], codes, z.new_zeros(()), perplexity, utilisation)

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Token of each row of ``z`` (n, dim) -> (n,) int64."""
        return self.fsq(z[None])[1][0].long()

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Latent vectors (..., dim) of tokens of any shape."""
        return self.fsq.indices_to_codes(codes)


class ResidualQuantizer(nn.Module):
    """Residual VQ with ``stages`` codebooks of ``codebook_size ** (1 / stages)`` codes.

    ``beta``: commitment weight (the codebooks move by EMA, so there is no codebook loss);
    ``replace_every`` > 0 turns on the library's dead-code replacement (codes whose EMA count
    falls below 1 are reset to batch vectors).
    """

    def __init__(self, codebook_size: int, stages: int, dim: int, beta: float = 0.25,
                 replace_every: int = 10) -> None:
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        per_stage = codes_per_stage(codebook_size, stages)
        self.codebook_size, self.per_stage, self.stages = codebook_size, per_stage, stages
        self.rvq = ResidualVQ(dim=dim, num_quantizers=stages, codebook_size=per_stage,
                              kmeans_init=True, kmeans_iters=10, commitment_weight=beta,
                              threshold_ema_dead_code=1 if replace_every > 0 else 0)
        self.register_buffer("radix", per_stage ** torch.arange(stages), persistent=False)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        z_q, stage_codes, losses = self.rvq(z[None])
        codes = (stage_codes[0].long() * self.radix).sum(-1)
        perplexity, utilisation = code_statistics(codes, self.codebook_size, z.dtype)
        return QuantizerOutput(z_q[0], codes, losses.sum(), perplexity, utilisation)

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        training = self.rvq.training
        self.rvq.eval()  # no EMA update while encoding
        try:
            stage_codes = self.rvq(z[None])[1][0].long()
        finally:
            self.rvq.train(training)
        return (stage_codes * self.radix).sum(-1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        stage_codes = (codes[..., None] // self.radix) % self.per_stage
        flat = stage_codes.reshape(1, -1, self.stages)
        return self.rvq.get_output_from_indices(flat).reshape(*codes.shape, -1)
