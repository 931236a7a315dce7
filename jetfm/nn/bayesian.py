"""Bayesian (variational) linear layer: the "Bayesian last layer" of JetGPT.

A Bayesian neural network (BNN) replaces each weight by a learnable distribution. Here, as in
the reference, the weights are independent Gaussians with a Gaussian prior::

    q(w_ij) = N(mu_ij, sigma_ij^2),   sigma_ij^2 = exp(log_sigma2_ij),   p(w_ij) = N(0, s_p^2)

and the BNN loss is the sampled negative log-likelihood plus the KL divergence of q from the
prior (Spinner thesis, Sec. 5.1 "Bayesian network", Eq. (5.23))::

    L_BNN = - < log p(x) >_{x ~ data, w ~ q} + KL[q(w) || p(w)] / N_train

The KL term of Eq. (5.23) is for the whole training set; per event (the loss is a mean over a
batch) it is divided by the training-set size ``N_train``: add ``kl_divergence(model) / N_train``
to the batch-mean loss, as the reference ``JetGPT.batch_loss`` does (``KL() / traindata_size``).

Closed form of the KL divergence of two Gaussians, summed over the weights::

    KL = 1/2 sum_ij [ (mu_ij^2 + sigma_ij^2) / s_p^2 - 1 - log(sigma_ij^2 / s_p^2) ]

Reference implementation: heidelberg-hepml/jetgpt-splittings, ``src/networks/vblinear.py``
(``VBLinear``, file version 04971df; the JetGPT of the thesis, ``bayesian: true`` puts it as the
last layer of the transformer in ``src/networks/transformer.py``). Facts taken from it:

* parametrisation ``(mu_w, logsig2_w)``; ``mu_w ~ N(0, 1/sqrt(in_features))`` and
  ``logsig2_w ~ N(-9, 0.001)`` at initialisation (``std_init = -9``);
* prior precision ``prior_prec = 1`` (prior width ``s_p = 1``);
* ``logsig2_w`` is clamped to ``[-11, 11]`` wherever it is used (KL and forward);
* the **bias is deterministic** (a plain parameter initialised to zero, not in the KL);
* training uses the local reparametrisation trick (Kingma et al., arXiv:1506.02557): the
  pre-activation is sampled, ``mu_out + sqrt(x^2 . sigma^2 + 1e-8) * eps``;
* evaluation holds one weight draw (``self.random``) until ``reset_BNN()`` clears it, so a whole
  sample is generated with one network drawn from the posterior; ``_map`` returns the mean.

Here those three behaviours are the explicit ``mode`` values ``"sample"``, ``"fixed"`` and
``"mean"`` (``model.train()``/``model.eval()`` do not change the mode; use
:func:`set_bayesian_mode`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Modes of :class:`BayesianLinear`.
BAYESIAN_MODES = ("sample", "mean", "fixed")
#: Clamp of log sigma^2 (reference ``VBLinear``: ``logsig2_w.clamp(-11, 11)``).
LOG_SIGMA2_MIN = -11.0
LOG_SIGMA2_MAX = 11.0
#: Added to the sampled pre-activation variance before the square root in "sample" mode, so the
#: gradient stays finite for an all-zero input row (reference ``VBLinear``: ``+ 1e-8``).
VARIANCE_EPS = 1e-8


def _check_mode(mode: str) -> str:
    if mode not in BAYESIAN_MODES:
        raise ValueError(f"unknown Bayesian mode {mode!r}; expected one of {BAYESIAN_MODES}")
    return mode


class BayesianLinear(nn.Module):
    """Linear layer with independent Gaussian weights q(w) = N(mu, sigma^2) and a Gaussian prior
    N(0, prior_sigma^2).

    Parameters ``weight_mu`` (out, in), ``weight_log_sigma2`` (out, in) and, if ``bias``, a
    deterministic ``bias`` (out,) (as in the reference ``VBLinear``: the bias is a point estimate
    with no prior, initialised to zero, and does not enter :meth:`kl`).

    Args:
        in_features: input size (> 0).
        out_features: output size (> 0).
        prior_sigma: width of the Gaussian prior on each weight (> 0); reference: prior precision
            1, i.e. ``prior_sigma = 1``.
        init_log_sigma2: mean of the initial log sigma^2 (reference ``std_init = -9``; the initial
            values are drawn from N(init_log_sigma2, 0.001) as there).
        bias: whether to add a (deterministic) bias.

    Attributes:
        mode: ``"sample"`` (default): a fresh draw per forward call, through the local
            reparametrisation trick (the pre-activation ``x W^T`` is drawn from its exact
            Gaussian ``N(x mu^T, x^2 sigma^2^T)``, independently for every input row; this has
            the same distribution per row as drawing a weight matrix and gives lower-variance
            gradients; gradients reach ``weight_mu`` and ``weight_log_sigma2``).
            ``"mean"``: deterministic, weights = mu (equals ``nn.Linear`` with weight = mu).
            ``"fixed"``: one weight draw ``mu + sigma * eps`` held (``eps`` kept, so it follows
            updates of mu and sigma) until :meth:`resample`; drawn on first use if none is held.

    Raises:
        ValueError: non-positive sizes or ``prior_sigma``, non-finite ``init_log_sigma2``,
            unknown mode, input whose last dimension is not ``in_features``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        prior_sigma: float = 1.0,
        init_log_sigma2: float = -9.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if int(in_features) <= 0 or int(out_features) <= 0:
            raise ValueError(
                f"BayesianLinear: in_features and out_features must be > 0, "
                f"got {in_features}, {out_features}"
            )
        if not (math.isfinite(float(prior_sigma)) and float(prior_sigma) > 0.0):
            raise ValueError(
                f"BayesianLinear: prior_sigma must be finite and > 0, got {prior_sigma}"
            )
        if not math.isfinite(float(init_log_sigma2)):
            raise ValueError(
                f"BayesianLinear: init_log_sigma2 must be finite, got {init_log_sigma2}"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.prior_sigma = float(prior_sigma)
        self.init_log_sigma2 = float(init_log_sigma2)
        self.weight_mu = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.weight_log_sigma2 = nn.Parameter(torch.empty(self.out_features, self.in_features))
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features))
        else:
            self.register_parameter("bias", None)
        # the held standard-normal draw of "fixed" mode; not saved in the state dict
        self.register_buffer("_eps", None, persistent=False)
        self._mode = "sample"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reference initialisation: mu ~ N(0, 1/sqrt(in)), log sigma^2 ~ N(init, 0.001), bias 0."""
        with torch.no_grad():
            self.weight_mu.normal_(0.0, 1.0 / math.sqrt(self.in_features))
            self.weight_log_sigma2.normal_(self.init_log_sigma2, 0.001)
            if self.bias is not None:
                self.bias.zero_()
        self._eps = None

    # ------------------------------------------------------------------ mode
    @property
    def mode(self) -> str:
        """``"sample"``, ``"mean"`` or ``"fixed"`` (see the class docstring)."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self._mode = _check_mode(mode)

    def set_mode(self, mode: str) -> None:
        """Set :attr:`mode`; raises ValueError for an unknown mode. Keeps a held draw."""
        self.mode = mode

    def resample(self, generator: torch.Generator | None = None) -> None:
        """Draw and hold a new weight sample for ``"fixed"`` mode.

        Args:
            generator: optional ``torch.Generator`` (any device; the draw is moved to the
                parameters' device) for a reproducible draw; the global RNG otherwise.
        """
        ref = self.weight_mu
        if generator is None:
            eps = torch.randn(ref.shape, device=ref.device, dtype=ref.dtype)
        else:
            eps = torch.randn(
                ref.shape, generator=generator, device=generator.device, dtype=ref.dtype
            ).to(ref.device)
        self._eps = eps

    # ------------------------------------------------------------ quantities
    @property
    def weight_log_sigma2_clamped(self) -> Tensor:
        """log sigma^2 clamped to [-11, 11] (reference ``VBLinear``), shape (out, in)."""
        return self.weight_log_sigma2.clamp(LOG_SIGMA2_MIN, LOG_SIGMA2_MAX)

    @property
    def weight_sigma(self) -> Tensor:
        """Posterior width sigma = exp(log sigma^2 / 2) of each weight, shape (out, in)."""
        return torch.exp(0.5 * self.weight_log_sigma2_clamped)

    def kl(self) -> Tensor:
        """KL(q || prior) in closed form, summed over all weights (the bias is deterministic).

        ``1/2 sum [(mu^2 + sigma^2) / s_p^2 - 1 - log sigma^2 + log s_p^2]`` (reference
        ``VBLinear.KL`` with ``prior_prec = 1 / s_p^2``). Returns a 0-d tensor.
        """
        log_s2 = self.weight_log_sigma2_clamped
        prior_var = self.prior_sigma**2
        return (
            0.5
            * (
                (self.weight_mu.pow(2) + log_s2.exp()) / prior_var
                - 1.0
                - log_s2
                + math.log(prior_var)
            ).sum()
        )

    # --------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) -> (..., out_features) in the current :attr:`mode`."""
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"BayesianLinear: input last dimension must be in_features={self.in_features}, "
                f"got shape {tuple(x.shape)}"
            )
        if self._mode == "mean":
            return F.linear(x, self.weight_mu, self.bias)
        if self._mode == "fixed":
            if self._eps is None:
                self.resample()
            weight = self.weight_mu + self.weight_sigma * self._eps
            return F.linear(x, weight, self.bias)
        # "sample": local reparametrisation
        mean = F.linear(x, self.weight_mu, self.bias)
        var = F.linear(x.pow(2), self.weight_log_sigma2_clamped.exp()) + VARIANCE_EPS
        return mean + var.sqrt() * torch.randn_like(mean)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, prior_sigma={self.prior_sigma}, mode={self._mode!r}"
        )


def _bayesian_layers(module: nn.Module) -> list[BayesianLinear]:
    return [m for m in module.modules() if isinstance(m, BayesianLinear)]


def kl_divergence(module: nn.Module) -> Tensor:
    """Sum of :meth:`BayesianLinear.kl` over all BayesianLinear submodules (the module itself
    included); a 0-d zero tensor (on the module's parameter device/dtype) if there are none.

    The training loss adds ``kl_divergence(model) / N_train`` to the batch-mean negative
    log-likelihood, ``N_train`` = training-set size (thesis Eq. (5.23); reference
    ``JetGPT.batch_loss``: ``loss += self.KL() / self.traindata_size``).
    """
    layers = _bayesian_layers(module)
    if not layers:
        p = next(module.parameters(), None)
        if p is None:
            return torch.zeros(())
        return torch.zeros((), device=p.device, dtype=p.dtype)
    total = layers[0].kl()
    for layer in layers[1:]:
        total = total + layer.kl()
    return total


def set_bayesian_mode(module: nn.Module, mode: str) -> None:
    """Set ``mode`` on every BayesianLinear submodule; on ``"fixed"`` each draws a new weight
    sample (:meth:`BayesianLinear.resample`), i.e. a new network from the posterior.

    Raises:
        ValueError: unknown mode (checked even if there are no Bayesian layers).
    """
    _check_mode(mode)
    for layer in _bayesian_layers(module):
        layer.mode = mode
        if mode == "fixed":
            layer.resample()


def resample_bayesian(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Call :meth:`BayesianLinear.resample` on every BayesianLinear submodule, in
    ``module.modules()`` order, with the same ``generator`` (so one seeded generator fixes the
    whole network draw)."""
    for layer in _bayesian_layers(module):
        layer.resample(generator)
