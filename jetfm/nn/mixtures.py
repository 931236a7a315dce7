"""Per-component conditional mixture likelihoods for JetGPT-style autoregressive generation.

JetGPT (Spinner thesis "Symmetry-Aware Networks for the LHC", ch. 4 and 5; Butter et al.,
arXiv:2305.10475) generates an event particle by particle and each particle component by
component. Every one-dimensional conditional is a mixture with continuous density:

* Gaussian mixture for non-periodic components (log pT, eta, log m), thesis Eq. (4.4)::

      p(x | omega) = sum_k w_k N(x; mu_k, sigma_k)

* von Mises mixture for the azimuth phi, thesis Sec. 5.1.3 below Eq. (5.17)::

      p(phi | omega) = sum_k w_k exp(kappa_k cos(phi - mu_k)) / (2 pi I_0(kappa_k))

  which is 2 pi periodic in phi, so phi needs no wrapping in the loss.

The kinematic likelihood of particle i+1 factorises over its components in a fixed order,
thesis Eq. (5.17) (order pT, phi, eta, m)::

      p_kin(x_{i+1} | x_{1:i}) = p_GM(pT | v_i) p_vMM(phi | v_i, pT) p_GM(eta | v_i, pT, phi)
                                 * p_GM(m | v_i, pT, phi, eta)

with ``v_i`` the transformer state of Eq. (5.18)/(5.20). :class:`ComponentwiseLikelihood`
implements this product with one mixture head per component whose input is
``[state, x_<j]``.

Reference implementation: heidelberg-hepml/jetgpt-splittings (commit 84f6ffc,
``src/eventgen/mixturemodel.py``): ``torch.distributions.MixtureSameFamily`` over
``Categorical(softmax)`` and ``Normal`` / ``VonMises``, n_gauss = 42 (also thesis Table A.2,
"# Mixture model elements 42"), width and concentration ``exp(clamp(s, -5, 5))``. Deviations,
chosen for smooth gradients: the Gaussian width is ``softplus(s) + sigma_min`` (floor
``sigma_min = exp(-5)``, the reference's lower clamp, no upper clamp), and the von Mises
concentration is ``exp(log kappa_min + (log kappa_max - log kappa_min) sigmoid(s))``, i.e. the
reference range ``[exp(-5), exp(5)] = [0.0067, 148.4]`` reached smoothly instead of by a clamp.
In the reference a separate component transformer ("cformer") produces the mixture
parameters; here each component has its own (MLP) head, as the brief of jetfm issue 16 asks.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

#: Number of mixture elements of the public JetGPT (thesis Table A.2; jetgpt-splittings
#: ``n_gauss = hidden / 3 = 42``).
N_MIXTURE_DEFAULT = 42
#: Lower bound of the Gaussian width: the reference's ``exp(clamp(s, min=-5))``.
SIGMA_MIN_DEFAULT = math.exp(-5.0)
#: Bounds of the von Mises concentration: the reference's ``exp(clamp(s, -5, 5))``.
KAPPA_MIN_DEFAULT = math.exp(-5.0)
KAPPA_MAX_DEFAULT = math.exp(5.0)


def _mlp(d_in: int, d_out: int, hidden: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = d_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.GELU()]
        width = h
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


class _MixtureHead(nn.Module, abc.ABC):
    """Shared part of the mixture heads: an MLP ``(..., d_in) -> (..., 3 K)`` split into
    mixture logits, locations and an unconstrained width/concentration argument."""

    def __init__(self, d_in: int, n_mixture: int = N_MIXTURE_DEFAULT,
                 hidden: Sequence[int] = ()) -> None:
        super().__init__()
        if d_in < 1:
            raise ValueError(f"mixture head: d_in must be >= 1, got {d_in}")
        if n_mixture < 1:
            raise ValueError(f"mixture head: n_mixture must be >= 1, got {n_mixture}")
        if any(h < 1 for h in hidden):
            raise ValueError(f"mixture head: hidden widths must be >= 1, got {tuple(hidden)}")
        self.d_in = d_in
        self.n_mixture = n_mixture
        self.net = _mlp(d_in, 3 * n_mixture, hidden)

    def parameters_of(self, h: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw ``(logits, loc, scale_arg)``, each (..., K), from ``h`` (..., d_in)."""
        if h.shape[-1] != self.d_in:
            raise ValueError(f"{type(self).__name__}: input has last dimension "
                             f"{h.shape[-1]}, expected d_in={self.d_in}")
        out = self.net(h)
        logits, loc, arg = out.unflatten(-1, (3, self.n_mixture)).unbind(-2)
        return logits, loc, arg

    @abc.abstractmethod
    def forward(self, h: torch.Tensor) -> D.MixtureSameFamily:
        """The mixture distribution for hidden states ``h`` (..., d_in)."""

    @torch.no_grad()
    def sample(self, h: torch.Tensor) -> torch.Tensor:
        """One draw per hidden state (...): the component from the mixture weights first,
        then only that component is sampled (``MixtureSameFamily.sample`` draws all K and
        keeps one, K times the work; a von Mises draw is a rejection loop). Same
        distribution, global torch RNG."""
        mixture = self(h)
        k = mixture.mixture_distribution.sample()[..., None]
        parts = mixture.component_distribution
        if isinstance(parts, D.VonMises):
            return D.VonMises(parts.loc.gather(-1, k)[..., 0],
                              parts.concentration.gather(-1, k)[..., 0],
                              validate_args=False).sample()
        return D.Normal(parts.loc.gather(-1, k)[..., 0], parts.scale.gather(-1, k)[..., 0],
                        validate_args=False).sample()


class GaussianMixture(_MixtureHead):
    """Head mapping a hidden state (..., d_in) to a K-component Gaussian mixture, thesis
    Eq. (4.4); ``forward`` returns a ``torch.distributions.MixtureSameFamily`` with batch
    shape (...) and scalar events (``log_prob(x)`` takes x of shape (...)).

    Parametrisation: weights ``softmax(logits)``, means ``mu`` unconstrained (linear output),
    widths ``sigma = softplus(s) + sigma_min``. ``n_mixture = 42`` and ``sigma_min = exp(-5)``
    follow jetgpt-splittings ``mixturemodel.py`` (which uses ``exp(clamp(s, -5, 5))``; see the
    module docstring for the deviation). ``hidden`` gives optional GELU hidden layers
    (default none: a single linear layer, as the reference's output layer).

    Raises ValueError for ``d_in < 1``, ``n_mixture < 1``, ``sigma_min <= 0``, or an input
    whose last dimension is not ``d_in``.
    """

    def __init__(self, d_in: int, n_mixture: int = N_MIXTURE_DEFAULT,
                 hidden: Sequence[int] = (), sigma_min: float = SIGMA_MIN_DEFAULT) -> None:
        super().__init__(d_in, n_mixture, hidden)
        if not sigma_min > 0:
            raise ValueError(f"GaussianMixture: sigma_min must be > 0, got {sigma_min}")
        self.sigma_min = sigma_min

    def forward(self, h: torch.Tensor) -> D.MixtureSameFamily:
        logits, loc, arg = self.parameters_of(h)
        scale = F.softplus(arg) + self.sigma_min
        return D.MixtureSameFamily(D.Categorical(logits=logits, validate_args=False),
                                   D.Normal(loc, scale, validate_args=False),
                                   validate_args=False)


class VonMisesMixture(_MixtureHead):
    """Head mapping a hidden state (..., d_in) to a K-component von Mises mixture for an angle
    phi in radians (thesis Sec. 5.1.3, Eq. (5.17), ``p_vMM``); returns a
    ``torch.distributions.MixtureSameFamily`` whose ``log_prob`` is 2 pi periodic in phi and
    whose ``sample`` lies in [-pi, pi).

    Parametrisation: weights ``softmax(logits)``, locations ``mu`` unconstrained (angles
    modulo 2 pi), concentrations
    ``kappa = exp(log kappa_min + (log kappa_max - log kappa_min) sigmoid(s))`` in
    ``[kappa_min, kappa_max] = [exp(-5), exp(5)]``, the range of jetgpt-splittings'
    ``exp(clamp(s, -5, 5))``. The upper bound keeps the density's width above
    ``1/sqrt(kappa_max) ~ 0.08 rad``; the lower bound avoids the near-uniform regime where
    the rejection sampler is slow. ``n_mixture = 42`` as the reference.

    Raises ValueError for ``d_in < 1``, ``n_mixture < 1``, ``0 < kappa_min < kappa_max``
    violated, or an input whose last dimension is not ``d_in``.
    """

    def __init__(self, d_in: int, n_mixture: int = N_MIXTURE_DEFAULT,
                 hidden: Sequence[int] = (), kappa_min: float = KAPPA_MIN_DEFAULT,
                 kappa_max: float = KAPPA_MAX_DEFAULT) -> None:
        super().__init__(d_in, n_mixture, hidden)
        if not 0 < kappa_min < kappa_max < math.inf:
            raise ValueError("VonMisesMixture: need 0 < kappa_min < kappa_max < inf, got "
                             f"kappa_min={kappa_min}, kappa_max={kappa_max}")
        self.kappa_min = kappa_min
        self.kappa_max = kappa_max

    def forward(self, h: torch.Tensor) -> D.MixtureSameFamily:
        logits, loc, arg = self.parameters_of(h)
        log_lo, log_hi = math.log(self.kappa_min), math.log(self.kappa_max)
        concentration = torch.exp(log_lo + (log_hi - log_lo) * torch.sigmoid(arg))
        return D.MixtureSameFamily(D.Categorical(logits=logits, validate_args=False),
                                   D.VonMises(loc, concentration, validate_args=False),
                                   validate_args=False)


class ComponentwiseLikelihood(nn.Module):
    """Autoregressive likelihood of a particle over its components, thesis Eq. (5.17):
    ``log p(x | state) = sum_j log p_j(x_j | state, x_<j)``, where the head for component j
    receives ``cat([state, x_0, ..., x_{j-1}])`` of width ``d_state + j``.

    ``heads[j]`` is the head of component j (a :class:`GaussianMixture` or
    :class:`VonMisesMixture` with ``d_in = d_state + j``); the order of ``heads`` is the
    generation order and the order of the last axis of ``x``. ``names`` labels the components
    (default ``("c0", "c1", ...)``). Use :meth:`jetgpt` for the thesis order
    (log pT, phi, eta, log m) with von Mises for phi only.

    Shapes: ``state`` (B, T, d_state) float, the transformer output that conditions particle
    t (in JetGPT, the state after particles ``1..t-1``, Eq. (5.20)); ``x`` (B, T, C) with
    C = number of components, in the preprocessed units the heads model (phi in radians);
    ``mask`` (B, T) bool, True for real particles. Padded steps contribute exactly 0 to the
    log-likelihood and receive zero gradient: their ``state`` and ``x`` are replaced by 0
    before the heads are evaluated, so NaN or huge padding values change nothing.

    Raises ValueError if a head's ``d_in`` is not ``d_state + j``, if ``heads`` is empty or
    ``names`` has the wrong length, or if the inputs have inconsistent shapes / a non-bool
    mask.
    """

    def __init__(self, d_state: int, heads: Sequence[_MixtureHead],
                 names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(heads) == 0:
            raise ValueError("ComponentwiseLikelihood: need at least one head")
        for j, head in enumerate(heads):
            if not isinstance(head, _MixtureHead):
                raise ValueError(f"ComponentwiseLikelihood: heads[{j}] is "
                                 f"{type(head).__name__}, not a mixture head")
            if head.d_in != d_state + j:
                raise ValueError(f"ComponentwiseLikelihood: heads[{j}] has d_in={head.d_in}, "
                                 f"expected d_state + {j} = {d_state + j}")
        if names is None:
            names = [f"c{j}" for j in range(len(heads))]
        if len(names) != len(heads):
            raise ValueError(f"ComponentwiseLikelihood: {len(names)} names for "
                             f"{len(heads)} heads")
        self.d_state = d_state
        self.heads = nn.ModuleList(heads)
        self.names = tuple(names)

    @classmethod
    def jetgpt(cls, d_state: int, n_mixture: int = N_MIXTURE_DEFAULT,
               hidden: Sequence[int] = ()) -> ComponentwiseLikelihood:
        """Components ``(log_pt, phi, eta, log_m)`` in the order of thesis Eq. (5.17), von
        Mises for phi (jetgpt-splittings: "von Mises for phi, component 1") and Gaussian
        mixtures otherwise, ``n_mixture = 42`` (thesis Table A.2)."""
        kinds = (GaussianMixture, VonMisesMixture, GaussianMixture, GaussianMixture)
        heads = [kind(d_state + j, n_mixture, hidden) for j, kind in enumerate(kinds)]
        return cls(d_state, heads, names=("log_pt", "phi", "eta", "log_m"))

    @property
    def n_components(self) -> int:
        return len(self.heads)

    def _check(self, state: torch.Tensor, x: torch.Tensor | None,
               mask: torch.Tensor | None) -> None:
        if state.ndim < 1 or state.shape[-1] != self.d_state:
            raise ValueError(f"ComponentwiseLikelihood: state has shape {tuple(state.shape)}, "
                             f"expected (..., d_state={self.d_state})")
        lead = state.shape[:-1]
        if x is not None and (x.shape[:-1] != lead or x.shape[-1] != self.n_components):
            raise ValueError(f"ComponentwiseLikelihood: x has shape {tuple(x.shape)}, "
                             f"expected {(*lead, self.n_components)} "
                             f"(components {self.names})")
        if mask is not None:
            if mask.dtype != torch.bool:
                raise ValueError(f"ComponentwiseLikelihood: mask must be bool, got {mask.dtype}")
            if mask.shape != lead:
                raise ValueError(f"ComponentwiseLikelihood: mask has shape {tuple(mask.shape)}, "
                                 f"expected {tuple(lead)}")

    def component_log_prob(self, state: torch.Tensor, x: torch.Tensor,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-component conditional log-densities (B, T, C), 0 at padded steps."""
        self._check(state, x, mask)
        if mask is not None:
            state = torch.where(mask[..., None], state, torch.zeros_like(state))
            x = torch.where(mask[..., None], x, torch.zeros_like(x))
        terms = []
        for j, head in enumerate(self.heads):
            h = torch.cat([state, x[..., :j]], dim=-1)
            terms.append(head(h).log_prob(x[..., j]))
        out = torch.stack(terms, dim=-1)
        if mask is not None:
            out = out * mask[..., None].to(out.dtype)
        return out

    def log_prob(self, state: torch.Tensor, x: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """Particle log-likelihood ``sum_j log p_j(x_j | state, x_<j)`` (B, T), Eq. (5.17);
        0 at padded steps. The training loss is ``-(log_prob).sum() / mask.sum()``."""
        return self.component_log_prob(state, x, mask).sum(dim=-1)

    @torch.no_grad()
    def sample(self, state: torch.Tensor, given: torch.Tensor | None = None,
               values: torch.Tensor | None = None) -> torch.Tensor:
        """Draw one particle per state, component by component in the order of ``heads``:
        ``x_j ~ p_j(. | state, x_<j)`` with the already sampled ``x_<j``. ``state``
        (..., d_state) -> (..., C). Uses the global torch RNG (seed with
        ``torch.manual_seed`` for reproducible draws); von Mises draws lie in [-pi, pi).

        ``given`` (..., C) bool and ``values`` (..., C): components that are not generated
        (a muon's fixed mass, an angle measured from the object itself) take ``values`` where
        ``given`` is True, and the later components are conditioned on that value, as in
        training. ``ValueError`` for shapes that do not match."""
        self._check(state, None, None)
        shape = (*state.shape[:-1], self.n_components)
        if (given is None) != (values is None):
            raise ValueError("ComponentwiseLikelihood.sample: pass given and values together")
        if given is not None and (given.shape != shape or values.shape != shape):
            raise ValueError(f"ComponentwiseLikelihood.sample: given {tuple(given.shape)} and "
                             f"values {tuple(values.shape)}, expected {shape}")
        x = state.new_zeros((*state.shape[:-1], 0))
        for j, head in enumerate(self.heads):
            xj = head.sample(torch.cat([state, x], dim=-1)).to(x.dtype)
            if given is not None:
                xj = torch.where(given[..., j], values[..., j].to(x.dtype), xj)
            x = torch.cat([x, xj[..., None]], dim=-1)
        return x
