"""Tests of jetfm.nn.bayesian (Bayesian last layer of JetGPT, thesis Eq. (5.23))."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from jetfm.nn.bayesian import (
    BayesianLinear,
    kl_divergence,
    resample_bayesian,
    set_bayesian_mode,
)


def _layer(seed: int = 0, **kw) -> BayesianLinear:
    torch.manual_seed(seed)
    return BayesianLinear(5, 3, **kw).double()


def test_mean_mode_equals_deterministic_linear():
    layer = _layer()
    with torch.no_grad():
        layer.bias.normal_()  # a non-trivial bias
        layer.weight_log_sigma2.fill_(0.0)  # wide posterior: only the mean may enter
    lin = nn.Linear(5, 3).double()
    with torch.no_grad():
        lin.weight.copy_(layer.weight_mu)
        lin.bias.copy_(layer.bias)
    layer.set_mode("mean")
    x = torch.randn(4, 7, 5, dtype=torch.float64)
    assert torch.equal(layer(x), lin(x))
    assert layer(x).shape == (4, 7, 3)
    # no bias
    nb = _layer(bias=False)
    nb.mode = "mean"
    assert torch.equal(nb(x), x @ nb.weight_mu.T)


def test_reference_initialisation():
    torch.manual_seed(1)
    layer = BayesianLinear(400, 50)
    assert layer.mode == "sample"
    assert torch.all(layer.bias == 0)
    ls2 = layer.weight_log_sigma2.detach()
    assert abs(ls2.mean().item() + 9.0) < 1e-3 and ls2.std().item() < 2e-3
    assert abs(layer.weight_mu.detach().std().item() - 1 / math.sqrt(400)) < 0.003


@pytest.mark.parametrize("prior_sigma", [1.0, 0.3, 2.5])
def test_kl_matches_torch_distributions(prior_sigma):
    layer = _layer(2, prior_sigma=prior_sigma)
    with torch.no_grad():
        layer.weight_log_sigma2.uniform_(-6.0, 1.0)
    q = Normal(layer.weight_mu, layer.weight_log_sigma2.mul(0.5).exp())
    p = Normal(torch.zeros_like(layer.weight_mu), torch.full_like(layer.weight_mu, prior_sigma))
    expected = torch_kl(q, p).sum()
    assert torch.allclose(layer.kl(), expected, rtol=1e-12, atol=0)
    assert layer.kl().shape == ()
    # the default initialisation (sigma^2 = e^-9) is far from the prior: KL clearly positive
    assert _layer(3).kl().item() > 5 * 3 * 3.0


def test_kl_zero_when_posterior_equals_prior():
    layer = _layer(prior_sigma=0.7)
    with torch.no_grad():
        layer.weight_mu.zero_()
        layer.weight_log_sigma2.fill_(2 * math.log(0.7))
    assert abs(layer.kl().item()) < 1e-12


def test_kl_divergence_sums_over_submodules_and_zero_without():
    a, b = _layer(4), _layer(5, prior_sigma=2.0)
    model = nn.Sequential(a, nn.Tanh(), nn.Sequential(nn.Linear(3, 5).double(), b))
    assert torch.allclose(kl_divergence(model), a.kl() + b.kl(), rtol=1e-14)
    assert torch.equal(kl_divergence(a), a.kl())
    zero = kl_divergence(nn.Linear(2, 2))
    assert zero.shape == () and zero.item() == 0.0
    assert kl_divergence(nn.Tanh()).item() == 0.0


def test_fixed_mode_holds_draw_until_resample():
    layer = _layer()
    with torch.no_grad():
        layer.weight_log_sigma2.fill_(-2.0)
    set_bayesian_mode(layer, "fixed")
    assert layer.mode == "fixed"
    x = torch.randn(6, 5, dtype=torch.float64)
    y1, y2 = layer(x), layer(x)
    assert torch.equal(y1, y2)
    # a fixed draw is one network: rows are consistent with one weight matrix
    w = layer.weight_mu + layer.weight_sigma * layer._eps
    assert torch.allclose(y1, x @ w.T + layer.bias, rtol=1e-12)
    assert not torch.allclose(y1, x @ layer.weight_mu.T + layer.bias)  # not the mean network
    layer.resample()
    y3 = layer(x)
    assert not torch.allclose(y1, y3)
    assert torch.equal(y3, layer(x))
    # seeded generator: reproducible draws
    layer.resample(torch.Generator().manual_seed(7))
    y4 = layer(x)
    layer.resample()
    layer.resample(torch.Generator().manual_seed(7))
    assert torch.equal(layer(x), y4)
    # mode switch keeps the held draw; set_bayesian_mode("fixed") draws a new one
    layer.set_mode("sample")
    layer.set_mode("fixed")
    assert torch.equal(layer(x), y4)
    set_bayesian_mode(layer, "fixed")
    assert not torch.allclose(layer(x), y4)


def test_resample_bayesian_seeds_whole_network():
    torch.manual_seed(0)
    model = nn.Sequential(BayesianLinear(4, 6, init_log_sigma2=-1.0), BayesianLinear(6, 2))
    set_bayesian_mode(model, "fixed")
    x = torch.randn(3, 4)
    resample_bayesian(model, torch.Generator().manual_seed(3))
    y = model(x)
    resample_bayesian(model)
    assert not torch.allclose(model(x), y)
    resample_bayesian(model, torch.Generator().manual_seed(3))
    assert torch.equal(model(x), y)


def test_sample_mode_mean_and_variance():
    layer = _layer(6)
    sigma2 = torch.tensor([[0.5, 0.1, 0.02, 0.3, 0.05]], dtype=torch.float64).repeat(3, 1)
    sigma2 *= torch.tensor([[1.0], [2.0], [0.5]], dtype=torch.float64)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
        layer.weight_log_sigma2.copy_(sigma2.log())
    x = torch.tensor([0.3, -1.2, 2.0, 0.7, -0.4], dtype=torch.float64)
    n = 40000
    torch.manual_seed(11)
    with torch.no_grad():
        y = layer(x.expand(n, 5))  # one independent draw per row
    mean_expected = layer.weight_mu.detach() @ x + layer.bias.detach()
    var_expected = (x.pow(2) * sigma2).sum(-1) + 1e-8
    std_expected = var_expected.sqrt()
    # sample mean within 5 standard errors, sample variance within 5 of its standard errors
    assert torch.all((y.mean(0) - mean_expected).abs() < 5 * std_expected / math.sqrt(n))
    rel = y.var(0) / var_expected - 1
    assert torch.all(rel.abs() < 5 * math.sqrt(2 / (n - 1)))
    # a genuinely random layer: draws differ
    assert y.std(0).min() > 0.1


def test_gradients_reach_mu_and_log_sigma2():
    for mode in ("sample", "fixed"):
        layer = _layer(8)
        layer.mode = mode
        x = torch.randn(10, 5, dtype=torch.float64)
        (layer(x).pow(2).sum() + layer.kl()).backward()
        assert layer.weight_mu.grad is not None and layer.weight_mu.grad.abs().sum() > 0
        g = layer.weight_log_sigma2.grad
        assert g is not None and g.abs().sum() > 0 and torch.isfinite(g).all()
        assert layer.bias.grad.abs().sum() > 0
    # mean mode: the likelihood term does not depend on sigma; only the KL does
    layer = _layer(8)
    layer.mode = "mean"
    layer(torch.randn(10, 5, dtype=torch.float64)).sum().backward()
    assert layer.weight_log_sigma2.grad is None or torch.all(layer.weight_log_sigma2.grad == 0)
    # all-zero input rows (padding) keep finite gradients in sample mode
    layer = _layer(9)
    layer(torch.zeros(2, 5, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(layer.weight_log_sigma2.grad).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="prior_sigma"):
        BayesianLinear(3, 2, prior_sigma=0.0)
    with pytest.raises(ValueError, match="prior_sigma"):
        BayesianLinear(3, 2, prior_sigma=-1.0)
    with pytest.raises(ValueError, match="in_features"):
        BayesianLinear(0, 2)
    with pytest.raises(ValueError, match="init_log_sigma2"):
        BayesianLinear(3, 2, init_log_sigma2=float("nan"))
    layer = BayesianLinear(3, 2)
    with pytest.raises(ValueError, match="unknown Bayesian mode"):
        layer.mode = "map"
    with pytest.raises(ValueError, match="unknown Bayesian mode"):
        layer.set_mode("eval")
    with pytest.raises(ValueError, match="unknown Bayesian mode"):
        set_bayesian_mode(nn.Linear(2, 2), "nope")
    with pytest.raises(ValueError, match="in_features=3"):
        layer(torch.zeros(4, 5))
    assert layer.mode == "sample"


def test_state_dict_round_trip():
    a = _layer(10, prior_sigma=0.5)
    with torch.no_grad():
        a.weight_log_sigma2.uniform_(-5, -1)
        a.bias.normal_()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    sd = torch.load(buf, weights_only=True)
    assert set(sd) == {"weight_mu", "weight_log_sigma2", "bias"}
    b = _layer(99, prior_sigma=0.5)
    b.load_state_dict(sd)
    for name in sd:
        assert torch.equal(getattr(a, name), getattr(b, name))
    x = torch.randn(4, 5, dtype=torch.float64)
    a.mode = b.mode = "mean"
    assert torch.equal(a(x), b(x))
    assert torch.equal(a.kl(), b.kl())
    a.mode = b.mode = "fixed"
    g = torch.Generator().manual_seed(5)
    a.resample(g)
    b.resample(torch.Generator().manual_seed(5))
    assert torch.equal(a(x), b(x))
