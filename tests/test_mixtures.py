"""Mixture likelihood heads (Gaussian / von Mises) and the componentwise JetGPT likelihood."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from jetfm.nn.mixtures import ComponentwiseLikelihood, GaussianMixture, VonMisesMixture

K = 5


def fixed_head(cls, seed: int = 0, **kwargs):
    """A head with random (seeded) weights in float64 and a fixed input, so that the
    mixture parameters are fixed and spread out."""
    torch.manual_seed(seed)
    head = cls(3, n_mixture=K, **kwargs).double()
    with torch.no_grad():
        for p in head.parameters():
            p.mul_(3.0)
    h = torch.tensor([0.7, -1.1, 0.4], dtype=torch.float64)
    return head.requires_grad_(False), h


def test_default_mixture_size_is_jetgpt():
    assert GaussianMixture(4).n_mixture == 42
    assert VonMisesMixture(4).n_mixture == 42


def test_gaussian_mixture_integrates_to_one():
    head, h = fixed_head(GaussianMixture)
    dist = head(h)
    mu, sd = dist.component_distribution.loc, dist.component_distribution.scale
    grid = torch.linspace(float((mu - 12 * sd).min()), float((mu + 12 * sd).max()), 400_001,
                          dtype=torch.float64)
    density = dist.log_prob(grid).exp()
    assert torch.trapezoid(density, grid).item() == pytest.approx(1.0, abs=1e-6)


def test_von_mises_mixture_integrates_to_one_over_a_period_and_is_periodic():
    head, h = fixed_head(VonMisesMixture)
    dist = head(h)
    n = 100_000
    grid = -math.pi + 2 * math.pi * torch.arange(n, dtype=torch.float64) / n  # [-pi, pi)
    density = dist.log_prob(grid).exp()
    # rectangle rule on a full period is spectrally accurate for a smooth periodic function;
    # the tolerance is set by torch's polynomial approximation of log I_0 (~1e-7 relative)
    assert (density.sum() * 2 * math.pi / n).item() == pytest.approx(1.0, abs=1e-6)
    for shift in (2 * math.pi, -2 * math.pi, 6 * math.pi):
        torch.testing.assert_close(dist.log_prob(grid + shift), dist.log_prob(grid),
                                   rtol=0, atol=1e-9)
    # not periodic with a wrong period: the density is not uniform
    assert (dist.log_prob(grid + 1.0) - dist.log_prob(grid)).abs().max() > 1e-2


def test_gaussian_mixture_samples_match_moments_and_cdf():
    head, h = fixed_head(GaussianMixture, seed=1)
    dist = head(h)
    w = dist.mixture_distribution.probs
    mu, sd = dist.component_distribution.loc, dist.component_distribution.scale
    torch.manual_seed(123)
    n = 50_000
    x = dist.sample((n,))
    mean = (w * mu).sum()
    var = (w * (sd**2 + mu**2)).sum() - mean**2
    assert abs(x.mean() - mean) < 5 * var.sqrt() / math.sqrt(n)
    # var of the sample variance ~ (mu4 - var^2)/n; bound loosely by 5 sigma with mu4 <= 10 var^2
    assert abs(x.var() - var) < 5 * math.sqrt(10 / n) * var
    # KS test against the exact mixture CDF from scipy (independent reference)
    w_, mu_, sd_ = (t.numpy() for t in (w, mu, sd))
    res = stats.kstest(x.numpy(), lambda v: (w_ * stats.norm.cdf(v[:, None], mu_, sd_)).sum(1))
    assert res.pvalue > 1e-3


def test_von_mises_mixture_samples_match_circular_moments_and_cdf():
    head, h = fixed_head(VonMisesMixture, seed=2)
    dist = head(h)
    w = dist.mixture_distribution.probs
    mu, kappa = dist.component_distribution.loc, dist.component_distribution.concentration
    torch.manual_seed(321)
    n = 50_000
    phi = dist.sample((n,))
    assert phi.min() >= -math.pi and phi.max() < math.pi
    # first trigonometric moment E[e^{i phi}] = sum_k w_k A(kappa_k) e^{i mu_k}, A = I1/I0
    a = torch.special.i1e(kappa) / torch.special.i0e(kappa)
    for f, g in ((torch.cos, torch.cos), (torch.sin, torch.sin)):
        expected = (w * a * g(mu)).sum()
        assert abs(f(phi).mean() - expected) < 5 / math.sqrt(n)
    # KS test against scipy's von Mises CDF on [-pi, pi) (independent reference)
    w_, mu_, k_ = (t.numpy() for t in (w, mu, kappa))

    def cdf(v):
        # scipy's von Mises CDF winds (F(x + 2 pi) = F(x) + 1), so F(v) - F(-pi) is the
        # probability of [-pi, v) for any location
        c = stats.vonmises.cdf(v[:, None], k_, loc=mu_)
        c0 = stats.vonmises.cdf(-math.pi, k_, loc=mu_)
        return (w_ * (c - c0)).sum(1)

    res = stats.kstest(phi.numpy(), cdf)
    assert res.pvalue > 1e-3


def fit(head, data: torch.Tensor, steps: int, lr: float = 3e-2) -> None:
    h = torch.ones(1, head.d_in)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = -head(h).log_prob(data).mean()
        loss.backward()
        opt.step()


def fitted_w1(head, train: torch.Tensor, truth) -> tuple[float, float]:
    """(W1 of the head fitted by maximum likelihood to ``train`` vs new truth, W1 floor: two
    independent truth samples of the same size); ``truth(n)`` draws n truth values."""
    torch.manual_seed(0)
    fit(head, train, steps=400)
    n = len(train)
    with torch.no_grad():
        model = head(torch.ones(2)).sample((n,)).numpy()
    floor = stats.wasserstein_distance(truth(n), truth(n))
    return stats.wasserstein_distance(model, truth(n)), floor


def test_gaussian_head_fits_bimodal_toy_within_its_floor():
    rng = np.random.default_rng(0)

    def truth(n):
        comp = rng.random(n) < 0.35
        return np.where(comp, rng.normal(-2.0, 0.5, n), rng.normal(1.5, 0.3, n))

    n = 4000
    train = torch.tensor(truth(n), dtype=torch.float32)
    w1, floor = fitted_w1(GaussianMixture(2, n_mixture=8), train, truth)
    assert w1 < 2 * floor, (w1, floor)
    # a unimodal fit of the same toy is far outside the floor: the test can fail
    unimodal = rng.normal(train.mean().item(), train.std().item(), n)
    assert stats.wasserstein_distance(unimodal, truth(n)) > 5 * floor


def test_von_mises_head_fits_toy_across_the_branch_cut():
    rng = np.random.default_rng(1)

    def truth(n):
        comp = rng.random(n) < 0.5
        # one mode straddles phi = +-pi
        return np.angle(np.exp(1j * np.where(comp, rng.vonmises(3.0, 6.0, n),
                                             rng.vonmises(-0.8, 2.0, n))))

    n = 4000
    w1, floor = fitted_w1(VonMisesMixture(2, n_mixture=8),
                          torch.tensor(truth(n), dtype=torch.float32), truth)
    assert w1 < 2 * floor, (w1, floor)
    assert stats.wasserstein_distance(rng.uniform(-math.pi, math.pi, n), truth(n)) > 5 * floor


def make_likelihood(d_state: int = 6, seed: int = 0) -> ComponentwiseLikelihood:
    torch.manual_seed(seed)
    return ComponentwiseLikelihood.jetgpt(d_state, n_mixture=4, hidden=(16,))


def test_jetgpt_order_and_kinds():
    lik = make_likelihood()
    assert lik.names == ("log_pt", "phi", "eta", "log_m")
    assert [type(h).__name__ for h in lik.heads] == [
        "GaussianMixture", "VonMisesMixture", "GaussianMixture", "GaussianMixture"]
    assert [h.d_in for h in lik.heads] == [6, 7, 8, 9]


def test_padded_steps_change_nothing():
    lik = make_likelihood()
    state = torch.randn(3, 5, 6)
    x = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    lp = lik.log_prob(state, x, mask)
    assert lp.shape == (3, 5)
    assert (lp[~mask] == 0).all() and torch.isfinite(lp).all()
    # garbage (huge, NaN) at padded steps gives the same values and parameter gradients
    state2, x2 = state.clone(), x.clone()
    state2[~mask] = 1e30
    x2[~mask] = float("nan")
    grads = []
    for s, xx in ((state, x), (state2, x2)):
        lik.zero_grad()
        out = lik.log_prob(s, xx, mask)
        out.sum().backward()
        grads.append([p.grad.clone() for p in lik.parameters()])
        torch.testing.assert_close(out, lp, rtol=0, atol=0)
    for g1, g2 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g2, rtol=0, atol=0)
    # the real steps agree with evaluating the unpadded sequences one at a time
    for b in range(3):
        n = int(mask[b].sum())
        torch.testing.assert_close(lik.log_prob(state[b:b + 1, :n], x[b:b + 1, :n])[0],
                                   lp[b, :n])


def test_component_j_is_conditioned_on_earlier_components_only():
    lik = make_likelihood()
    state = torch.randn(2, 3, 6)
    x = torch.randn(2, 3, 4, requires_grad=True)
    per = lik.component_log_prob(state, x)
    for j in range(4):
        (g,) = torch.autograd.grad(per[..., j].sum(), x, retain_graph=True)
        assert (g[..., j + 1:] == 0).all()
        assert (g[..., :j + 1].abs().sum(dim=(0, 1)) > 0).all()


def test_sampling_is_reproducible_and_autoregressive():
    lik = make_likelihood()
    state = torch.randn(4, 7, 6)
    torch.manual_seed(5)
    a = lik.sample(state)
    torch.manual_seed(5)
    b = lik.sample(state)
    torch.manual_seed(6)
    c = lik.sample(state)
    assert a.shape == (4, 7, 4)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert (a[..., 1].abs() <= math.pi).all()
    # make component 2 (eta) copy component 0 (log pT): loc_k = x_0 for all k, tiny width
    head = lik.heads[2]
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        last = head.net[-1]
        last.bias[2 * 4:].fill_(-30.0)  # scale argument -> softplus ~ 0, width = sigma_min
        first = head.net[0]
        first.weight[0, 6] = 1.0  # hidden unit 0 = gelu(x_0)...
        first.weight[1, 6] = -1.0  # ...and unit 1 = gelu(-x_0): gelu(z) - gelu(-z) = z
        last.weight[4:8, 0] = 1.0
        last.weight[4:8, 1] = -1.0
    torch.manual_seed(7)
    s = lik.sample(state)
    torch.testing.assert_close(s[..., 2], s[..., 0], rtol=0, atol=0.05)


def test_gradients_finite_at_extreme_inputs():
    lik = make_likelihood()
    x = torch.randn(2, 3, 4)
    for scale in (1e6, 1e-30, 0.0):
        state = (torch.randn(2, 3, 6) * scale).requires_grad_(True)
        lik.zero_grad()
        lp = lik.log_prob(state, x)
        assert torch.isfinite(lp).all()
        lp.sum().backward()
        assert torch.isfinite(state.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in lik.parameters())
    # bounded concentration / floored width at saturated parameter arguments
    for cls, attr, lo, hi in ((VonMisesMixture, "concentration", math.exp(-5), math.exp(5)),
                              (GaussianMixture, "scale", math.exp(-5), math.inf)):
        head = cls(1, n_mixture=2)
        with torch.no_grad():
            head.net[-1].weight.fill_(1.0)
            head.net[-1].bias.zero_()
        h = torch.tensor([[1e6], [-1e6]], requires_grad=True)
        dist = head(h)
        v = getattr(dist.component_distribution, attr)
        assert (v >= lo * (1 - 1e-5)).all() and (v <= hi * (1 + 1e-5)).all()
        dist.log_prob(torch.tensor([0.3, -2.0])).sum().backward()
        assert torch.isfinite(h.grad).all()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="d_in"):
        ComponentwiseLikelihood(4, [GaussianMixture(4), GaussianMixture(4)])
    with pytest.raises(ValueError, match="kappa"):
        VonMisesMixture(3, kappa_min=2.0, kappa_max=1.0)
    with pytest.raises(ValueError, match="sigma_min"):
        GaussianMixture(3, sigma_min=0.0)
    lik = make_likelihood()
    with pytest.raises(ValueError, match="x has shape"):
        lik.log_prob(torch.randn(2, 3, 6), torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="mask must be bool"):
        lik.log_prob(torch.randn(2, 3, 6), torch.randn(2, 3, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match="d_in=3"):
        GaussianMixture(3)(torch.randn(2, 4))
