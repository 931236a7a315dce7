"""JetGPT (jetfm.models.jetgpt): likelihood structure, extrapolation losses, sampling,
Bayesian layer, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jetfm.models.jetgpt import JetGPT, JetGPTConfig, load_jetgpt, save_jetgpt
from jetfm.nn.bayesian import set_bayesian_mode

EVENT = {"components": ("log_pt", "phi", "eta", "log_m"), "periodic": ("phi",), "n_types": 3,
         "fixed_types": (0, 1), "free_type": 2, "given": (("phi", "log_m"), ("log_m",), ())}


def _model(seed: int = 0, **kw: object) -> JetGPT:
    torch.manual_seed(seed)
    config = {**EVENT, "dim": 16, "n_blocks": 2, "n_heads": 2, "n_mixture": 3, **kw}
    return JetGPT(JetGPTConfig(**config)).eval()


def _batch(n_objects: list[int], t: int = 8, seed: int = 1
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(n_objects), t, 4, generator=g)
    mask = torch.arange(t)[None] < torch.tensor(n_objects)[:, None]
    return x, mask, torch.zeros(len(n_objects), dtype=torch.long)


def test_padding_values_change_nothing() -> None:
    model = _model()
    x, mask, c = _batch([2, 5, 8, 3])
    ref = model.log_likelihood(x, mask, c)
    x2 = torch.where(mask[..., None], x, torch.full_like(x, float("nan")))
    assert torch.equal(model.log_likelihood(x2, mask, c), ref)
    # extra padded slots change nothing either
    x3, mask3 = F.pad(x, (0, 0, 0, 3), value=7.0), F.pad(mask, (0, 3))
    torch.testing.assert_close(model.log_likelihood(x3, mask3, c), ref)


def test_given_components_do_not_enter() -> None:
    """The leading muon's phi and both muon masses are not generated: their values change
    neither the likelihood nor anything conditioned on them."""
    model = _model()
    x, mask, c = _batch([4, 6])
    ref = model.log_likelihood(x, mask, c)
    y = x.clone()
    y[:, 0, 1] += 1.3
    y[:, :2, 3] -= 4.0
    assert torch.equal(model.log_likelihood(y, mask, c), ref)
    z = x.clone()
    z[:, 2, 3] += 1.0  # a jet mass is generated
    assert not torch.allclose(model.log_likelihood(z, mask, c), ref)


def test_causality() -> None:
    """Changing object k changes no term of objects before k and no split before k."""
    model = _model()
    x, mask, c = _batch([7])
    a = model.log_likelihood_terms(x, mask, c)
    y = x.clone()
    y[0, 4] += 0.5
    b = model.log_likelihood_terms(y, mask, c)
    assert torch.equal(a["kin"][0, :4], b["kin"][0, :4])
    assert not torch.equal(a["kin"][0, 4], b["kin"][0, 4])
    assert torch.allclose(a["split_logits"][0, :5], b["split_logits"][0, :5])
    assert not torch.allclose(a["split_logits"][0, 5:7], b["split_logits"][0, 5:7])


def test_split_terms_structure() -> None:
    """Bernoulli terms for i = max(n_fixed, 1) .. n with label 1 - delta_(i n), Eq. (5.16)."""
    model = _model()
    x, mask, c = _batch([2, 5])
    t = model.log_likelihood_terms(x, mask, c)
    assert t["weights"][0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert t["labels"][0, 2] == 0
    assert t["weights"][1].tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert t["labels"][1, 2:6].tolist() == [1, 1, 1, 0]


def test_truncated_loss_differs_only_by_last_bernoulli_term() -> None:
    model = _model()
    n_max = 6
    x, mask, c = _batch([3, 6, 5, 6, 2], t=n_max)
    full = model.loss(x, mask, c)
    trunc = model.loss(x, mask, c, mode="truncated", n_max=n_max)
    t = model.log_likelihood_terms(x, mask, c)
    last = F.binary_cross_entropy_with_logits(t["split_logits"][:, n_max],
                                              t["labels"][:, n_max], reduction="none")
    expected = (last * (mask.sum(1) == n_max)).mean()  # only n = n_max events have the term
    torch.testing.assert_close(full["loss"] - trunc["loss"], expected)
    torch.testing.assert_close(full["kin"], trunc["kin"])
    assert expected > 0


def test_override_loss() -> None:
    """Label 0 with weight 1 is the full loss; a label y with weight lambda replaces the
    n_max term by lambda * BCE(rho, y), Eqs. (5.29)-(5.31)."""
    model = _model()
    n_max = 6
    x, mask, c = _batch([3, 6, 6, 2], t=n_max)
    full = model.loss(x, mask, c)
    zero = model.loss(x, mask, c, mode="override", n_max=n_max,
                      override_label=torch.zeros(4), override_weight=1.0)
    torch.testing.assert_close(zero["loss"], full["loss"])
    y = torch.tensor([0.9, 0.3, 0.6, 0.1])
    over = model.loss(x, mask, c, mode="override", n_max=n_max, override_label=y,
                      override_weight=0.2)
    trunc = model.loss(x, mask, c, mode="truncated", n_max=n_max)
    logits = model.log_likelihood_terms(x, mask, c)["split_logits"][:, n_max]
    term = 0.2 * F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    torch.testing.assert_close(over["loss"] - trunc["loss"],
                               (term * (mask.sum(1) == n_max)).mean())
    with pytest.raises(ValueError, match="override_label"):
        model.loss(x, mask, c, mode="override", n_max=n_max)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss(x, mask, c, mode="override", n_max=n_max, override_label=y + 1)
    with pytest.raises(ValueError, match="n_max"):
        model.loss(x, mask, c, mode="truncated")


def _train(model: JetGPT, x: torch.Tensor, mask: torch.Tensor, steps: int,
           lr: float = 3e-3) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    c = torch.zeros(len(x), dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(x), (256,), generator=g)
        loss = model.loss(x[idx], mask[idx], c[idx], n_train=len(x))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def test_fixed_multiplicity_is_reproduced_and_toy_kinematics_within_floor() -> None:
    """Trained on sequences that all have n = 5 objects, the split probability stops every
    generated sequence at 5; the generated first component follows the toy's N(0.5, 0.7)
    within the floor (W1 of a same-size truth sample)."""
    from scipy.stats import wasserstein_distance

    n, n_train = 5, 4000
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n_train, n, 4, generator=g) * 0.7 + 0.5
    x[..., 1] = torch.rand(n_train, n, generator=g) * 2 - 1  # phi in [-1, 1)
    mask = torch.ones(n_train, n, dtype=torch.bool)
    model = _model(seed=2, dim=32, n_mixture=4)
    _train(model, x, mask, steps=300)
    out = model.sample(2000, max_objects=8, seed=5)
    counts = np.bincount(out.n_objects.numpy(), minlength=9)
    assert counts[n] / 2000 > 0.97, counts
    jets = out.x[:, 2:n, 0][out.mask[:, 2:n]].numpy()
    truth = (torch.randn(len(jets), generator=g) * 0.7 + 0.5).numpy()
    other = (torch.randn(len(jets), generator=g) * 0.7 + 0.5).numpy()
    floor = wasserstein_distance(truth, other)
    assert wasserstein_distance(jets, truth) < 3 * floor + 0.02


def test_sampling_is_seeded_and_forces_fixed_objects() -> None:
    model = _model()
    a = model.sample(300, max_objects=6, seed=11)
    b = model.sample(300, max_objects=6, seed=11)
    assert torch.equal(a.x, b.x) and torch.equal(a.mask, b.mask)
    assert bool(a.mask[:, :2].all())  # the two muons are always there
    assert torch.all(a.x[:, 0, 1] == 0) and torch.all(a.x[:, :2, 3] == 0)  # given values
    # overflowing sequences are flagged and hold max_objects objects
    assert torch.all(a.n_objects[a.overflow] == 6)
    c = model.sample(300, max_objects=6, seed=12)
    assert not torch.equal(a.x, c.x)


def test_bayesian_mean_mode_equals_deterministic_model() -> None:
    """A Bayesian JetGPT with its last-layer weights at their means is the deterministic
    JetGPT with those weights; weight draws differ from it and from each other."""
    bayes = _model(seed=4, bayesian=True)
    det = _model(seed=5)
    state = bayes.state_dict()
    det_state = {k: v for k, v in state.items() if not k.startswith("out.")}
    det_state["out.weight"] = bayes.out.weight_mu.detach().clone()
    det_state["out.bias"] = bayes.out.bias.detach().clone()
    det.load_state_dict(det_state)
    x, mask, c = _batch([3, 7])
    set_bayesian_mode(bayes, "mean")
    torch.testing.assert_close(bayes.log_likelihood(x, mask, c), det.log_likelihood(x, mask, c))
    with torch.no_grad():
        bayes.out.weight_log_sigma2.fill_(-2.0)
    set_bayesian_mode(bayes, "fixed")
    first = bayes.log_likelihood(x, mask, c)
    assert torch.equal(first, bayes.log_likelihood(x, mask, c))
    set_bayesian_mode(bayes, "fixed")  # a new draw
    assert not torch.allclose(first, bayes.log_likelihood(x, mask, c))
    loss = bayes.loss(x, mask, c, n_train=1000)
    assert loss["kl"] > 0
    with pytest.raises(ValueError, match="n_train"):
        bayes.loss(x, mask, c)


def test_file_round_trip(tmp_path) -> None:
    model = _model(bayesian=True)
    set_bayesian_mode(model, "mean")
    path = save_jetgpt(tmp_path / "m.safetensors", model, {"preprocessing": {"a": 1}})
    loaded, meta = load_jetgpt(path)  # Bayesian layers load in "mean" mode
    x, mask, c = _batch([2, 4, 8])
    assert torch.equal(loaded.log_likelihood(x, mask, c), model.log_likelihood(x, mask, c))
    assert meta["preprocessing"] == {"a": 1}
    assert loaded.config == model.config


def test_bad_inputs() -> None:
    model = _model()
    x, mask, c = _batch([3, 4])
    with pytest.raises(ValueError, match="no holes"):
        model.log_likelihood(x, mask.flip(1), c)
    with pytest.raises(ValueError, match="fewer objects"):
        model.log_likelihood(x, torch.arange(8)[None].expand(2, 8) < 1, c)
    with pytest.raises(ValueError, match="condition"):
        model.log_likelihood(x, mask, c + 1)
    with pytest.raises(ValueError, match="components"):
        model.log_likelihood(x[..., :3], mask, c)
    with pytest.raises(ValueError, match="loss mode"):
        model.loss(x, mask, c, mode="bogus")
    with pytest.raises(ValueError, match="given"):
        JetGPTConfig(**{**EVENT, "given": (("bogus",), (), ())})
    with pytest.raises(ValueError, match="fixed_types"):
        JetGPTConfig(**{**EVENT, "fixed_types": (0, 5)})
    with pytest.raises(ValueError, match="max_positions"):
        _model(max_positions=4).log_likelihood(x, mask, c)
    with pytest.raises(ValueError, match="condition outside"):
        model.sample(3, condition=5)
