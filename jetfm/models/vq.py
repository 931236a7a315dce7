"""Vector quantisation: the discrete bottleneck of the VQ-VAE tokenizer.

jetfm's own layer (vqtorch, used by OmniJet-alpha, is not an installable package):

* codebook of ``codebook_size`` vectors in ``dim`` dimensions, initialised from data by
  k-means (Lloyd iterations on the first batch the layer sees in training);
* nearest-code assignment (Euclidean), straight-through gradient to the encoder;
* loss = ||sg(z) - e||^2 (moves codes) + beta ||z - sg(e)||^2 (commitment; beta = 0.25 as in
  van den Oord et al.);
* dead-code replacement: every ``replace_every`` training steps, codes unused since the last
  check are moved onto randomly chosen encoder outputs of the current batch.

Shapes: ``z`` is (n, dim) (flatten sets of particles first), codes are (n,) int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerOutput:
    """Quantised vectors (straight-through), codes, VQ loss, perplexity, utilisation."""

    z_q: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    perplexity: torch.Tensor
    utilisation: torch.Tensor


def kmeans(x: torch.Tensor, k: int, n_iter: int = 20, generator: torch.Generator | None = None
           ) -> torch.Tensor:
    """Lloyd's k-means on (n, d) points; returns (k, d) centres (empty clusters re-seeded).

    Seeded by k-means++ (Arthur and Vassilvitskii, 2007: each next centre drawn with probability
    proportional to the squared distance to the nearest one chosen), which rarely leaves two
    centres in one cluster; with fewer points than centres, points drawn with replacement.
    """
    n = x.shape[0]
    if n < k:
        centres = x[torch.randint(n, (k,), generator=generator, device=x.device)].clone()
    else:
        centres = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
        centres[0] = x[torch.randint(n, (1,), generator=generator, device=x.device)]
        d2 = ((x - centres[0]) ** 2).sum(dim=1)
        for i in range(1, k):
            # inverse-CDF draw (torch.multinomial is ~15x slower at this size); all points
            # equal to chosen centres (cdf[-1] = 0): any point
            cdf = torch.cumsum(d2, dim=0)
            u = torch.rand(1, generator=generator, device=x.device, dtype=x.dtype) * cdf[-1]
            j = torch.searchsorted(cdf, u, right=True).clamp(max=n - 1)
            centres[i] = x[j]
            d2 = torch.minimum(d2, ((x - centres[i]) ** 2).sum(dim=1))
    for _ in range(n_iter):
        assign = torch.cdist(x, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
        n_empty = int((~filled).sum())
        if n_empty:
            refill = torch.randint(n, (n_empty,), generator=generator, device=x.device)
            centres[~filled] = x[refill]
    return centres


def code_statistics(codes: torch.Tensor, codebook_size: int, dtype: torch.dtype,
                    counts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Perplexity (exp of the entropy of the code frequencies) and utilisation (fraction of
    the ``codebook_size`` codes used) of ``codes`` (n,) int64; ``counts`` if already made."""
    if counts is None:
        counts = torch.bincount(codes, minlength=codebook_size).to(dtype)
    probs = counts / counts.sum().clamp(min=1)
    perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-12))).sum())
    return perplexity, (counts > 0).to(dtype).mean()


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with k-means init and dead-code replacement."""

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        beta: float = 0.25,
        replace_every: int = 10,
        kmeans_iters: int = 20,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.beta = beta
        self.replace_every = replace_every
        self.kmeans_iters = kmeans_iters
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("initialised", torch.tensor(False))
        self.register_buffer("usage", torch.zeros(codebook_size))
        self.register_buffer("steps", torch.tensor(0))

    def assign(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``z`` (n, dim) -> (n,)."""
        return torch.cdist(z.detach(), self.codebook.detach()).argmin(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors for integer codes of any shape -> (..., dim)."""
        return F.embedding(codes, self.codebook)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        if self.training and not bool(self.initialised):
            with torch.no_grad():
                self.codebook.copy_(kmeans(z.detach(), self.codebook_size, self.kmeans_iters))
                self.initialised.fill_(True)
                _broadcast_from_rank0(self.codebook.data)
        codes = self.assign(z)
        e = self.lookup(codes)
        loss = F.mse_loss(e, z.detach()) + self.beta * F.mse_loss(z, e.detach())
        z_q = z + (e - z).detach()
        counts = torch.bincount(codes, minlength=self.codebook_size).to(z.dtype)
        perplexity, utilisation = code_statistics(codes, self.codebook_size, z.dtype, counts)
        if self.training:
            self._replace_dead(z.detach(), counts)
        return QuantizerOutput(z_q, codes, loss, perplexity, utilisation)

    @torch.no_grad()
    def _replace_dead(self, z: torch.Tensor, counts: torch.Tensor) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        self.usage += counts
        self.steps += 1
        if self.replace_every <= 0 or int(self.steps) % self.replace_every:
            return
        dead = self.usage == 0
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(z.shape[0], (n_dead,), device=z.device)
            self.codebook[dead] = z[pick]
            _broadcast_from_rank0(self.codebook.data)
        self.usage.zero_()


def _broadcast_from_rank0(tensor: torch.Tensor) -> None:
    """Under DDP every rank must hold rank 0's codebook after a data-driven update."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast(tensor, src=0)
