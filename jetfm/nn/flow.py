"""Rectified flow (conditional flow matching with straight paths): interpolation, target,
masked loss, classifier-free guidance and the midpoint ODE sampler.

Conventions follow OmniLearned 0.2.0 (``omnilearned/diffusion.py``, ``utils.get_loss``), the
PyTorch successor of OmniLearn (Mikuni & Nachman 2024): data ``x`` at ``t = 0``, noise
``eps ~ N(0, 1)`` at ``t = 1``,

    z_t = (1 - t) x + t eps,        v = dz/dt = eps - x,

the network predicts ``v`` from ``(z_t, t)`` (Liu et al. 2022, arXiv:2209.03003; Lipman et al.
2022, arXiv:2210.02747, with sigma_min = 0), and samples are drawn by integrating
``dz/dt = v(z, t)`` from ``t = 1`` to ``t = 0`` with the explicit midpoint rule on a uniform
grid (OmniLearned: ``torchdiffeq.odeint(method="midpoint")`` on ``linspace(1, 0, 128)``). The
noise is standard normal here because jetfm standardises the features it generates (OmniLearned
draws it from hard-coded per-feature means and widths instead, which amounts to the same for
its one preprocessing).

The OmniLearn-TF alternative (cosine log-SNR schedule, v-prediction, DDIM-like sampler) is not
implemented: one flow convention serves PET, the jet-level model and later generators.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def interpolate(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``z_t = (1 - t) x + t eps``; ``t`` (B,) broadcast over the trailing dimensions of
    ``x`` (B, ...)."""
    t = t.reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - t) * x + t * noise


def velocity_target(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The velocity of the straight path, ``v = eps - x`` (independent of t)."""
    return noise - x


def flow_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Per-jet flow-matching loss (B,): squared error summed over features and real
    particles, divided by the number of real particles (OmniLearned ``get_loss``).

    ``pred``, ``target`` (B, P, F) with ``mask`` (B, P) bool, or (B, F) without mask (one
    object per row: the sum over features). Padded particles contribute nothing, so the loss
    does not depend on the padding length.
    """
    error = (pred - target).square().sum(dim=-1)
    if mask is None:
        return error
    error = error * mask
    return error.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def guided(v_conditional: torch.Tensor, v_unconditional: torch.Tensor, weight: float
           ) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598, eq. 6 in velocity
    form): ``(1 + w) v_cond - w v_uncond``; ``w = 0`` is the conditional field exactly."""
    if weight == 0:
        return v_conditional
    return (1 + weight) * v_conditional - weight * v_unconditional


def time_grid(steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``steps + 1`` times from 1 to 0 (``steps`` midpoint steps; OmniLearned's
    ``linspace(1, 0, 128)`` is ``steps = 127``). ``ValueError`` for ``steps`` < 1."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"sampler steps must be a whole number >= 1, got {steps!r}")
    return torch.linspace(1.0, 0.0, steps + 1, device=device)


def sample_midpoint(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    noise: torch.Tensor, steps: int,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """Integrate ``dz/dt = velocity(z, t)`` from ``t = 1`` (``z = noise``) to ``t = 0`` with
    ``steps`` explicit midpoint steps (2 evaluations each); padded rows (``mask`` False) are
    kept at 0. ``velocity`` takes ``(z, t)`` with ``t`` (B,). Returns the samples, shaped like
    ``noise``."""
    grid = time_grid(steps, noise.device)
    z = noise if mask is None else noise * mask[..., None]
    b = noise.shape[0]
    for t0, t1 in zip(grid[:-1], grid[1:], strict=True):
        dt = t1 - t0  # negative
        half = z + 0.5 * dt * velocity(z, t0.expand(b))
        if mask is not None:
            half = half * mask[..., None]
        z = z + dt * velocity(half, (t0 + 0.5 * dt).expand(b))
        if mask is not None:
            z = z * mask[..., None]
    return z


class FourierTime(nn.Module):
    """Time embedding: fixed random Fourier features ``sqrt(2) cos(2 pi (f t + phase))``
    (OmniLearned ``MPFourier``, after Karras et al. 2024's magnitude-preserving Fourier
    features), then Linear -> SiLU -> Linear. (B,) -> (B, dim). The frequencies (N(0, 1)) and
    phases (U(0, 1)) are buffers, so they travel with the weights."""

    def __init__(self, dim: int, n_features: int = 64) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(n_features))
        self.register_buffer("phases", torch.rand(n_features))
        self.mlp = nn.Sequential(nn.Linear(n_features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * (t[:, None].float() * self.freqs + self.phases)
        return self.mlp(math.sqrt(2) * torch.cos(angle))
