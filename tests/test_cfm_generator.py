"""CFM event generator (jetfm.models.cfm_generator): the flow-matching loss and likelihood on
Gaussian toys with known answers, a trained toy flow against its known density, the event
coordinates, the L-GATr velocity's symmetry (rotations about the beam kept, z boosts broken by
the references), permutation behaviour, files and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance
from toy_events import toy_events

from jetfm.data.events import MUON_MASS
from jetfm.models.cfm_generator import (
    CFMConfig,
    CFMGenerator,
    EventCoordinates,
    cfm_loss,
    finite_events,
    load_cfm,
    ode_log_prob,
    odeint_fixed,
    periodic_path,
    save_cfm,
)
from jetfm.tasks.cfm import fit_cfm

NOT_PERIODIC = torch.zeros(2, dtype=torch.bool)
SMALL_LGATR = {"velocity": "lgatr", "num_blocks": 1, "num_heads": 2, "hidden_mv_channels": 4,
               "hidden_s_channels": 8}
SMALL_TRANSFORMER = {"velocity": "transformer", "num_blocks": 1, "num_heads": 2, "dim": 16}


def events_with(n_jets: int, n: int = 200, seed: int = 0):
    """``n`` toy events with exactly ``n_jets`` jets (at most 4 jet slots)."""
    events = toy_events(40 * n, seed=seed, ratio=0.9, max_jets=4)
    events = events[events.n_jets == n_jets][:n]
    assert len(events) == n
    return events


def generator(config: dict, n_jets: int = 2, seed: int = 0, dtype=torch.float64
              ) -> tuple[CFMGenerator, EventCoordinates]:
    coords = EventCoordinates.fit(events_with(n_jets), n_jets)
    torch.manual_seed(seed)
    return CFMGenerator(CFMConfig(**config), coords).to(dtype).eval(), coords


# ----------------------------------------------------------------------------- the loss
def test_exact_field_of_a_shift_coupling_has_zero_loss():
    """Deterministic coupling x1 = x0 + mu: every conditional path has velocity mu, so the
    conditional and the marginal field coincide (v = mu everywhere) and the flow-matching loss
    of the exact field is exactly 0; any other field has a positive loss."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(10_000, 2, generator=g, dtype=torch.float64)
    mu = torch.tensor([1.5, -0.7], dtype=torch.float64)
    t = torch.rand(10_000, generator=g, dtype=torch.float64)
    exact = cfm_loss(lambda x, t: mu.expand_as(x), x0, x0 + mu, t, NOT_PERIODIC)
    assert exact.max() < 1e-28
    wrong = cfm_loss(lambda x, t: 0.9 * mu.expand_as(x), x0, x0 + mu, t, NOT_PERIODIC)
    assert wrong.mean() == pytest.approx(0.01 * float(mu @ mu), rel=1e-9)


def test_marginal_field_of_independent_gaussians_reaches_the_irreducible_loss():
    """Independent coupling N(m0, s0^2) -> N(m1, s1^2): the marginal field is
    u_t(x) = m1 - m0 + C_t / S_t (x - mu_t), C_t = t s1^2 - (1 - t) s0^2,
    S_t = (1 - t)^2 s0^2 + t^2 s1^2, and its loss is the irreducible
    E_t[s0^2 + s1^2 - C_t^2 / S_t] (the conditional variance of x1 - x0 given x_t), not 0;
    a perturbed field does worse."""
    m0, s0, m1, s1 = 2.0, 0.5, -1.0, 1.5
    g = torch.Generator().manual_seed(1)
    n = 400_000
    x0 = m0 + s0 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    x1 = m1 + s1 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)

    def field(x, t, bias=0.0):
        t = t[:, None]
        c = t * s1**2 - (1 - t) * s0**2
        s = (1 - t) ** 2 * s0**2 + t**2 * s1**2
        return m1 - m0 + c / s * (x - ((1 - t) * m0 + t * m1)) + bias

    loss = cfm_loss(field, x0, x1, t, torch.zeros(1, dtype=torch.bool)).mean()
    grid = np.linspace(0, 1, 200_001)
    c, s = grid * s1**2 - (1 - grid) * s0**2, (1 - grid) ** 2 * s0**2 + grid**2 * s1**2
    irreducible = np.trapezoid(s0**2 + s1**2 - c**2 / s, grid)
    assert float(loss) == pytest.approx(irreducible, rel=0.01)
    assert irreducible > 0.5
    worse = cfm_loss(lambda x, t: field(x, t, 0.3), x0, x1, t,
                     torch.zeros(1, dtype=torch.bool)).mean()
    assert float(worse - loss) == pytest.approx(0.09, rel=0.05)


def test_periodic_path_takes_the_short_way_round():
    x0 = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    x1 = torch.tensor([[-3.0, 2.0]], dtype=torch.float64)
    periodic = torch.tensor([True, False])
    for t in np.linspace(0, 1, 11):
        xt, v = periodic_path(x0, x1, torch.tensor([t], dtype=torch.float64), periodic)
        assert float(v[0, 0]) == pytest.approx(2 * math.pi - 6.0)  # across +-pi, not -6
        assert float(v[0, 1]) == pytest.approx(1.0)
        assert -math.pi <= float(xt[0, 0]) < math.pi
        assert float(xt[0, 1]) == pytest.approx(1.0 + t)
    assert float(xt[0, 0]) == pytest.approx(-3.0)  # t = 1: the base point


# ----------------------------------------------------------------------------- likelihood
def _gaussian_flow(m0: torch.Tensor, cov0: torch.Tensor):
    """The exact marginal field from data N(m0, cov0) (t = 0) to the base N(0, 1) (t = 1):
    u_t(x) = -m0 + (t I - (1 - t) cov0) S_t^-1 (x - (1 - t) m0), S_t = (1-t)^2 cov0 + t^2 I."""
    eye = torch.eye(len(m0), dtype=torch.float64)

    def field(x, t):
        t = t[:, None, None]
        s = (1 - t) ** 2 * cov0 + t**2 * eye
        a = (t * eye - (1 - t) * cov0) @ torch.linalg.inv(s)
        centred = x - (1 - t[:, :, 0]) * m0
        return -m0 + (a @ centred[..., None])[..., 0]

    return field


def _normal_log_prob(x):
    return -0.5 * (x**2).sum(dim=1) - 0.5 * x.shape[1] * math.log(2 * math.pi)


def test_ode_log_prob_of_the_exact_field_is_the_data_density():
    """The instantaneous change of variables with the exact divergence reproduces the known
    Gaussian log density; Hutchinson's estimate (correlated data: a non-diagonal Jacobian, so
    the probes are noisy per point) agrees on average."""
    m0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    cov0 = torch.tensor([[0.5, 0.3], [0.3, 0.4]], dtype=torch.float64)
    field = _gaussian_flow(m0, cov0)
    truth = torch.distributions.MultivariateNormal(m0, cov0)
    x0 = truth.sample((2000,))
    free = torch.ones(2, dtype=torch.bool)
    exact = ode_log_prob(field, x0, _normal_log_prob, free, 40, "rk4", "exact")
    assert torch.allclose(exact, truth.log_prob(x0), atol=2e-5)
    hutch = ode_log_prob(field, x0, _normal_log_prob, free, 40, "rk4", "hutchinson", seed=3)
    diff = hutch - truth.log_prob(x0)
    assert diff.abs().max() > 1e-3  # per point the probe is noisy ...
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(len(diff))  # unbiased


def test_trained_flow_matches_a_known_density_within_its_floor():
    """A small MLP velocity trained with the CFM loss on a correlated 2-D Gaussian, sampled
    with RK4: W1 of each marginal and of the sum/difference projections within a few times the
    floor (two truth samples of the same size), and its mean NLL near the true entropy."""
    torch.manual_seed(0)
    m0 = torch.tensor([3.0, -2.0])
    cov0 = torch.tensor([[0.25, 0.3], [0.3, 1.0]])
    truth = torch.distributions.MultivariateNormal(m0, cov0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 64),
                              torch.nn.SiLU(), torch.nn.Linear(64, 2))

    def velocity(x, t):
        return net(torch.cat([x, t.expand(len(x))[:, None].to(x)], dim=1))

    optim = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, 1500)
    for _ in range(1500):
        x0 = truth.sample((256,))
        loss = cfm_loss(velocity, x0, torch.randn(256, 2), torch.rand(256), NOT_PERIODIC)
        optim.zero_grad()
        loss.mean().backward()
        optim.step()
        sched.step()
    n = 3000
    with torch.no_grad():
        (generated,) = odeint_fixed(lambda s, t: (velocity(s[0], t),), (torch.randn(n, 2),),
                                    1.0, 0.0, 20, "rk4")
    a, b = truth.sample((n,)), truth.sample((n,))
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    for d in directions:
        w1 = wasserstein_distance(generated @ d, a @ d)
        floor = wasserstein_distance(b @ d, a @ d)
        assert w1 < 4 * floor, (d, w1, floor)
    # mean log-likelihood ratio on truth points: an estimate of KL(truth || model) >= 0
    log_q = ode_log_prob(velocity, a[:500], _normal_log_prob, torch.ones(2, dtype=torch.bool),
                         20, "rk4", "exact").detach()
    kl = float((truth.log_prob(a[:500]) - log_q).mean())
    assert -0.02 < kl < 0.15


# ----------------------------------------------------------------------------- coordinates
def test_coordinates_round_trip_and_fixed_muon_masses():
    events = events_with(2)
    coords = EventCoordinates.fit(events, 2)
    x, floored = coords.encode(events)
    assert x.shape == (len(events), 4, 4) and floored == 0
    assert np.all(x[:, :2, 3] == 0)  # muon masses: fixed, not generated
    assert abs(x[:, :, [0, 2, 3]].mean()) < 1e-5  # standardised per position
    back, moved = coords.decode(x)
    assert moved == 0
    np.testing.assert_allclose(back.jets[:, :2], events.jets[:, :2], rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(back.muons[..., :3], events.muons[..., :3], rtol=2e-5,
                               atol=2e-5)
    assert np.all(back.muons[..., 3] == MUON_MASS)
    # objects out of pT order are re-ordered and counted
    raw, _ = coords.raw(events)
    raw[:3, [2, 3]] = raw[:3, [3, 2]]  # the two jets swapped in the first three events
    swapped = (raw - np.asarray(coords.mean)) / np.asarray(coords.std)
    again, moved = coords.decode(swapped)
    assert moved == 3
    np.testing.assert_allclose(again.jets[:, :2], events.jets[:, :2], rtol=1e-9)


def test_log_jacobian_matches_autograd():
    """log |det dx/dy| of (pT, eta, phi, m) -> standardised coordinates, against autograd of
    an independent torch implementation of the map."""
    events = events_with(2, n=20)
    coords = EventCoordinates.fit(events_with(2), 2)
    mean = torch.tensor(coords.mean, dtype=torch.float64)
    std = torch.tensor(coords.std, dtype=torch.float64)
    pt_min = torch.tensor(coords.pt_min)

    def to_x(y):  # y: (P, 4) physical
        x = torch.stack([torch.log(y[:, 0] - pt_min), y[:, 2], y[:, 1], torch.log(y[:, 3])],
                        dim=-1)
        return ((x - mean) / std)[torch.from_numpy(coords.free)]

    objects, _ = events.objects()
    for i in range(len(events)):
        y = torch.tensor(objects[i, :4], dtype=torch.float64)
        free_y = torch.ones(4, 4, dtype=torch.bool)
        free_y[:2, 3] = False  # muon masses are not coordinates

        def f(values, y=y, free_y=free_y):
            full = y.clone()
            full[free_y] = values
            return to_x(full)

        jac = torch.autograd.functional.jacobian(f, y[free_y])
        expected = torch.linalg.slogdet(jac)[1]
        assert coords.log_jacobian(events[i:i + 1])[0] == pytest.approx(float(expected),
                                                                        abs=1e-9)


def test_coordinate_errors():
    events = events_with(2)
    with pytest.raises(ValueError, match="do not have exactly 3 jets"):
        EventCoordinates.fit(events, 3)
    coords = EventCoordinates.fit(events, 2)
    with pytest.raises(ValueError, match="non-finite"):
        coords.decode(np.full((1, 4, 4), np.nan))
    with pytest.raises(ValueError, match="shape"):
        coords.decode(np.zeros((1, 3, 4)))
    assert finite_events(np.array([np.zeros((4, 4)), np.full((4, 4), 1e308)]), coords).tolist() \
        == [True, False]
    with pytest.raises(ValueError, match="velocity"):
        CFMConfig(velocity="mlp")
    with pytest.raises(ValueError, match="dim"):
        CFMConfig(velocity="transformer", dim=10, num_heads=4)
    with pytest.raises(ValueError, match="steps"):
        odeint_fixed(lambda s, t: s, (torch.zeros(1),), 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="solver"):
        odeint_fixed(lambda s, t: s, (torch.zeros(1),), 0.0, 1.0, 1, "euler")


# ----------------------------------------------------------------------------- L-GATr velocity
def _states(coords: EventCoordinates, n: int = 32) -> torch.Tensor:
    x, _ = coords.encode(events_with(coords.n_jets, n=n, seed=5))
    return torch.from_numpy(x).double()


def _p_to_x(model: CFMGenerator, p: torch.Tensor) -> torch.Tensor:
    """Independent map of four-momenta (E, px, py, pz) [GeV] to the standardised coordinates
    (muon masses: the fixed 0)."""
    e, px, py, pz = p.unbind(-1)
    pt = torch.hypot(px, py)
    raw = torch.stack([torch.log(pt - model.pt_min), torch.atan2(py, px), torch.asinh(pz / pt),
                       0.5 * torch.log(e**2 - px**2 - py**2 - pz**2)], dim=-1)
    return (raw - model.mean) / model.std * model.free


def _z_boost(rapidity: float) -> torch.Tensor:
    boost = torch.eye(4, dtype=torch.float64)
    boost[0, 0] = boost[3, 3] = math.cosh(rapidity)
    boost[0, 3] = boost[3, 0] = math.sinh(rapidity)
    return boost


def _rotated(x: torch.Tensor, angle: float) -> torch.Tensor:
    out = x.clone()
    out[..., 1] = torch.remainder(x[..., 1] + angle + math.pi, 2 * math.pi) - math.pi
    return out


def test_jacobian_velocity_matches_autograd():
    """(d x / d p) v_p of the L-GATr read-out against the forward-mode derivative of an
    independent p -> x map."""
    model, coords = generator({**SMALL_LGATR, "scalar_velocity": False})
    x = _states(coords, 8)
    p = model.to_fourmomenta(x) / model.config.units
    v_p = torch.randn_like(p)

    _, expected = torch.func.jvp(lambda p: _p_to_x(model, p * model.config.units), (p,),
                                 (v_p,))
    got = model.velocity_to_coordinates(v_p, p) * model.free  # muon masses are not coordinates
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-9)
    assert expected.abs().max() > 0.1


@pytest.mark.parametrize("extra", [{}, {"coordinate_scalars": True}])
def test_lgatr_velocity_is_invariant_under_rotations_about_the_beam(extra):
    """Rotations about the beam are pure azimuth shifts of every object: the velocity (with
    or without the log pT, eta, log m scalars) is unchanged."""
    model, coords = generator({**SMALL_LGATR, **extra})
    x, t = _states(coords), torch.full((32,), 0.3, dtype=torch.float64)
    with torch.no_grad():
        v = model.velocity(x, t)
        for angle in (0.4, -2.5, math.pi / 2):
            torch.testing.assert_close(model.velocity(_rotated(x, angle), t), v, rtol=1e-9,
                                       atol=1e-9)
    assert v.abs().mean() > 1e-3


def test_z_boosts_are_broken_by_the_references_and_the_scalar_readout():
    """A boost along the beam maps a state x to phi(x) = x(Lambda p(x)) (pT, phi, m kept; the
    pseudorapidity of a massive object does not just shift). Without reference multivectors
    and with the whole velocity read from the equivariant vector output, the field is
    equivariant, v(phi(x)) = (d phi / d x) v(x), for the jets; the muons' fixed mass (its
    velocity set to 0 in the coordinates, as the reference's on-shell particles) lets the
    energy part of their Minkowski velocity leak into eta after a boost. The beam and time
    references break it, as the generator needs (no normalisable density is invariant under a
    non-compact group, thesis Sec. 6.4); so does the read-out of the log pT and log m
    velocities from scalar outputs alone ("an additional redundant source of symmetry
    breaking", thesis Sec. 6.4)."""
    boost = _z_boost(0.8)
    t = torch.full((32,), 0.6, dtype=torch.float64)
    no_refs = {"beam_reference": None, "add_time_reference": False}
    changes = {}
    for name, settings in (("equivariant", {**no_refs, "scalar_velocity": False}),
                           ("references", {"scalar_velocity": False}),
                           ("scalar read-out", no_refs)):
        model, coords = generator({**SMALL_LGATR, **settings})
        x = _states(coords)

        def phi(x, model=model):
            return _p_to_x(model, model.to_fourmomenta(x) @ boost.T)

        assert torch.allclose(phi(x)[..., 1], x[..., 1])  # azimuths kept
        v = model.velocity(x, t).detach()
        with torch.no_grad():
            v_boosted = model.velocity(phi(x), t)
        _, transported = torch.func.jvp(phi, (x,), (v,))
        jets = slice(2, None)
        changes[name] = float((v_boosted - transported)[:, jets].abs().max()
                              / v[:, jets].abs().max())
    assert changes["equivariant"] < 1e-10
    assert changes["references"] > 1e-3
    assert changes["scalar read-out"] > 1e-3


@pytest.mark.parametrize("config", [SMALL_LGATR, SMALL_TRANSFORMER])
def test_networks_have_no_hidden_object_order(config):
    """Permuting the objects together with their position one-hot permutes the network
    output: the objects are told apart by the one-hot only (no position embedding)."""
    model, coords = generator(config)
    x = _states(coords, 8)
    scalars = model.scalars(torch.tensor(0.4, dtype=torch.float64), len(x))
    inputs = model.to_fourmomenta(x) / 100 if config["velocity"] == "lgatr" else x
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = model.net(inputs, scalars)
        out_perm = model.net(inputs[:, perm], scalars[:, perm])
    out = out if isinstance(out, torch.Tensor) else torch.cat(out, dim=-1)
    out_perm = out_perm if isinstance(out_perm, torch.Tensor) else torch.cat(out_perm, dim=-1)
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-9, atol=1e-9)
    # ... and the one-hot matters: the same objects in another order give another velocity
    v = model.velocity(x, torch.full((8,), 0.4, dtype=torch.float64))
    v_swapped = model.velocity(x[:, [1, 0, 2, 3]], torch.full((8,), 0.4, dtype=torch.float64))
    assert not torch.allclose(v_swapped[:, [1, 0, 2, 3]], v, atol=1e-6)


@pytest.mark.parametrize("config", [SMALL_LGATR, SMALL_TRANSFORMER])
def test_fixed_components_stay_fixed(config):
    model, coords = generator(config, dtype=torch.float32)
    x = model.sample(16, steps=2, solver="midpoint", seed=1)
    assert torch.all(x[:, :2, 3] == 0) and torch.all(x[..., 1].abs() <= math.pi)
    assert torch.all(model.velocity(x, torch.tensor(0.5))[:, :2, 3] == 0)
    base = model.sample_base(1000, torch.Generator().manual_seed(0))
    shifted = base.clone()
    shifted[:, :2, 3] = 7.0  # a fixed component does not enter the density
    assert torch.equal(model.base_log_prob(base), model.base_log_prob(shifted))
    # same seed, same sample; another seed, another
    assert torch.equal(model.sample(16, 2, "midpoint", seed=1), x)
    assert not torch.equal(model.sample(16, 2, "midpoint", seed=2), x)


def test_training_saves_a_model_that_loads_back(tmp_path):
    events = events_with(1, n=120)
    coords = EventCoordinates.fit(events, 1)
    x, _ = coords.encode(events)
    training = {"max_steps": 3, "batch_size": 32, "progress": False, "accelerator": "cpu"}
    model = fit_cfm(x[:100], x[100:], SMALL_TRANSFORMER, coords, training, tmp_path, seed=2,
                    meta={"note": "test"})
    loaded, meta = load_cfm(tmp_path / "cfm.safetensors")
    assert meta["note"] == "test" and meta["training"]["n_train"] == 100
    assert loaded.coords == coords
    state = torch.from_numpy(x[:5])
    t = torch.full((5,), 0.5)
    torch.testing.assert_close(loaded.velocity(state, t), model.velocity(state, t))
    with pytest.raises(ValueError, match="expected"):
        fit_cfm(x[:, :2], x, SMALL_TRANSFORMER, coords, training, tmp_path / "bad")
    other = tmp_path / "other.safetensors"
    from jetfm.checkpoint import save_model

    save_model(other, {"w": torch.zeros(1)}, {"kind": "something"})
    with pytest.raises(ValueError, match="not a CFM generator"):
        load_cfm(other)
    assert save_cfm(tmp_path / "again.safetensors", loaded).exists()


def test_paper_sizes_match_the_thesis_parameter_counts():
    """The default L-GATr velocity network has the size of thesis Tab. A.5 (5.4 x 10^5
    parameters); the default transformer is within 20 % of the thesis' 5.7 x 10^5."""
    from jetfm.models.cfm_generator import parameter_count

    lgatr = parameter_count(CFMGenerator(CFMConfig(), EventCoordinates(1)))
    transformer = parameter_count(CFMGenerator(CFMConfig(velocity="transformer"),
                                               EventCoordinates(1)))
    assert lgatr == pytest.approx(5.4e5, rel=0.01)
    assert transformer == pytest.approx(5.7e5, rel=0.2)
