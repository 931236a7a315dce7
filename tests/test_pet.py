"""PET backbone (jetfm.models.pet): equivariance, padding invariance, kNN against scipy,
feature drop, backbone files, errors, parameter count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from jetfm.data.batch import JetBatch
from jetfm.models.backbone import build_backbone, load_backbone, save_backbone
from jetfm.models.features import KIN_FEATURES, FeatureSpec, InputFeature, ParticleInputs
from jetfm.models.pet import DEFAULT_PARAMETERS, PETBackbone, knn_indices

# LayerScale 1 (not 1e-5) so the attention blocks change the outputs visibly.
SMALL = {"dim": 16, "num_layers": 2, "num_heads": 4, "k": 4, "num_tokens": 2,
         "layer_scale_init": 1.0}
NINE = FeatureSpec(KIN_FEATURES.particle + (InputFeature("charge"), InputFeature("is_photon")))


def small(features: FeatureSpec | None = None, seed: int = 0, **config) -> PETBackbone:
    torch.manual_seed(seed)
    return build_backbone("pet", {**SMALL, **config}, features).eval()


def make_inputs(n_particles: list[int], n_slots: int, n_features: int = 7, seed: int = 0,
                phi_jet: float = 1.0) -> ParticleInputs:
    """Jets with real particles in the first n slots, zero padding after; four-momenta of
    massless particles spread by 0.3 in (eta, phi) around (0.5, phi_jet)."""
    g = torch.Generator().manual_seed(seed)
    b = len(n_particles)
    mask = torch.arange(n_slots)[None, :] < torch.tensor(n_particles)[:, None]
    eta = 0.5 + 0.3 * torch.randn(b, n_slots, generator=g)
    phi = phi_jet + 0.3 * torch.randn(b, n_slots, generator=g)
    pt = torch.exp(2.0 + torch.randn(b, n_slots, generator=g))
    p4 = torch.stack((pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                      pt * torch.sinh(eta)), dim=-1) * mask[..., None]
    features = torch.randn(b, n_slots, n_features, generator=g) * mask[..., None]
    return ParticleInputs(mask, features, p4)


def run(model: PETBackbone, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(inputs)


# ---------------------------------------------------------------------------- (1) symmetry
def test_permuting_particles_permutes_the_outputs():
    """Any permutation of the slots (padding interleaved with real particles) permutes the
    particle outputs and leaves the class tokens unchanged."""
    model = small()
    inputs = make_inputs([12, 5, 1], 12)
    out, mask = run(model, inputs)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    shuffled = ParticleInputs(inputs.mask[:, perm], inputs.features[:, perm], inputs.p4[:, perm])
    out_p, mask_p = run(model, shuffled)
    t = model.config.num_tokens
    assert out.shape == (3, t + 12, 16)
    torch.testing.assert_close(out_p[:, t:], out[:, t:][:, perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_p[:, :t], out[:, :t], atol=1e-5, rtol=1e-5)
    assert torch.equal(mask_p[:, t:], mask[:, t:][:, perm])
    assert mask[:, :t].all()
    assert (out[~mask] == 0).all() and (out[mask].abs().sum(-1) > 0).all()


# ---------------------------------------------------------------------------- (2) padding
def with_garbage_padding(inputs: ParticleInputs, extra: int) -> ParticleInputs:
    """``extra`` more padded slots, put first (so no trimming of trailing slots removes
    them), holding garbage: huge and non-finite features, and four-momenta on top of each
    jet's first particle (the nearest possible neighbours); garbage in the old padded slots."""
    b, n, f = inputs.features.shape
    g = torch.Generator().manual_seed(7)
    features = 1e3 * torch.randn(b, extra, f, generator=g)
    features[:, 0, 0] = float("nan")
    features[:, 1, 1] = float("inf")
    p4 = inputs.p4[:, :1].repeat(1, extra, 1) * (1 + 1e-3 * torch.rand(b, extra, 1, generator=g))
    p4[:, 2, 3] = float("nan")
    old = torch.where(inputs.mask[..., None], inputs.features, -7.0)
    mask = torch.cat([torch.zeros(b, extra, dtype=torch.bool), inputs.mask], dim=1)
    return ParticleInputs(mask, torch.cat([features, old], 1), torch.cat([p4, inputs.p4], 1))


def test_padded_slots_change_no_output():
    """Each jet alone without padding gives the outputs it gets in a padded batch; garbage in
    padded slots and more of them change no real output; with the keys left unmasked
    (OmniLearn-TF's attention) the extra slots do change the outputs."""
    model = small()
    inputs = make_inputs([10, 3, 1], 10)
    out, mask = run(model, inputs)
    t = model.config.num_tokens
    for jet, n in enumerate([10, 3, 1]):
        alone, _ = run(model, ParticleInputs(
            inputs.mask[jet:jet + 1, :n], inputs.features[jet:jet + 1, :n],
            inputs.p4[jet:jet + 1, :n]))
        torch.testing.assert_close(out[jet, :t + n], alone[0], atol=1e-5, rtol=1e-5)
    padded = with_garbage_padding(inputs, 6)
    out_g, mask_g = run(model, padded)
    torch.testing.assert_close(out_g[:, :t], out[:, :t], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_g[:, t + 6:], out[:, t:], atol=1e-5, rtol=1e-5)
    assert (out_g[:, t:t + 6] == 0).all() and not mask_g[:, t:t + 6].any()
    model._mask_padded_keys = False  # the OmniLearn-TF defect
    out_u, _ = run(model, padded)
    difference = (out_u[:, t + 6:] - out[:, t:]).abs().max()
    assert difference > 1e-2


# ---------------------------------------------------------------------------- (3) kNN
def test_knn_of_a_hand_built_jet():
    """Four particles on a line in eta: 0, 0.1, 0.3, 0.7 (phi = 0), k = 2."""
    eta = torch.tensor([[0.0, 0.1, 0.3, 0.7]])
    pt = torch.full_like(eta, 10.0)
    p4 = torch.stack((pt * torch.cosh(eta), pt, 0 * pt, pt * torch.sinh(eta)), -1)
    index, valid = knn_indices(p4, torch.ones(1, 4, dtype=torch.bool), 2)
    assert index.tolist() == [[[1, 2], [0, 2], [1, 0], [2, 1]]]
    assert valid.all()


def test_knn_agrees_with_scipy_on_the_feature_columns():
    """Jets at phi ~ pi (Delta phi wraps): the neighbours from the four-momenta are those of
    scipy's cKDTree on the spec's (eta_rel, phi_rel) columns (JetClass ``part_deta``,
    ``part_dphi``), self excluded; padded slots are never neighbours."""
    rng = np.random.default_rng(1)
    counts = [30, 17, 25]
    pt = [np.exp(rng.normal(2, 1, n)) for n in counts]
    eta = [rng.normal(0.3, 0.25, n) for n in counts]
    phi = [(math.pi + rng.normal(0, 0.25, n) + math.pi) % (2 * math.pi) - math.pi
           for n in counts]
    batch = JetBatch.from_ptetaphi(pt, eta, phi, 0.0)
    model = build_backbone("pet", {**SMALL, "k": 10})
    inputs, _ = model.prepare(batch)
    names = model.features.names
    inputs = inputs.to_torch()
    index, valid = knn_indices(inputs.p4, inputs.mask, 10)
    assert not bool(valid[~inputs.mask].any())
    for jet, n in enumerate(counts):
        coords = inputs.features[jet, :n][:, [names.index("eta_rel"), names.index("phi_rel")]]
        _, expected = cKDTree(coords.double().numpy()).query(coords.double().numpy(), k=11)
        assert (expected[:, 0] == np.arange(n)).all()
        assert index[jet, :n].numpy().tolist() == expected[:, 1:].tolist()
        assert valid[jet, :n].all()


def test_jets_with_fewer_than_k_plus_one_particles():
    """k = 10 with jets of 4, 2 and 1 particles in 6 slots: n - 1 valid neighbours, all real;
    the local block is the mean of the edge MLP over exactly those (0 without any); the
    backbone's outputs are finite and padding-invariant."""
    inputs = make_inputs([4, 2, 1], 6)
    index, valid = knn_indices(inputs.p4, inputs.mask, 10)
    assert index.shape == (3, 6, 10)
    assert valid.sum(-1).tolist() == [[3, 3, 3, 3, 0, 0], [1, 1, 0, 0, 0, 0], [0] * 6]
    for jet, n in enumerate([4, 2, 1]):
        for i in range(n):
            assert sorted(index[jet, i][valid[jet, i]].tolist()) == sorted(set(range(n)) - {i})
    model = small(k=10)
    with torch.no_grad():
        local = model.local(inputs.features, knn_indices(inputs.p4, inputs.mask, 10))
        x = inputs.features[0]
        edges = [model.local.mlp(torch.cat([x[j] - x[0], x[0]])) for j in (1, 2, 3)]
        torch.testing.assert_close(local[0, 0], torch.stack(edges).mean(0))
        assert (local[2] == 0).all() and (local[1, 2:] == 0).all()
    one_slot = make_inputs([1, 1], 1)  # fewer slots than k + 1
    assert knn_indices(one_slot.p4, one_slot.mask, 10)[1].sum() == 0
    out, _ = run(model, inputs)
    assert torch.isfinite(out).all()
    out_g, _ = run(model, with_garbage_padding(inputs, 5))
    t = model.config.num_tokens
    torch.testing.assert_close(out_g[:, :t], out[:, :t], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_g[:, t + 5:], out[:, t:], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------- (4) feature drop
def test_feature_drop():
    """Eval: the option changes nothing. Training with p = 1: the features beyond num_keep
    (here charge, is_photon) do not change the outputs; with p = 0 they do."""
    inputs = make_inputs([8, 5], 8, n_features=9)
    changed = ParticleInputs(inputs.mask, inputs.features.clone(), inputs.p4)
    changed.features[..., 7:] += 3.0 * inputs.mask[..., None]
    plain = small(NINE)
    dropping = small(NINE, feature_drop=0.5)
    dropping.load_state_dict(plain.state_dict())
    torch.testing.assert_close(run(dropping, inputs)[0], run(plain, inputs)[0])
    always = small(NINE, feature_drop=1.0).train()
    torch.testing.assert_close(run(always, changed)[0], run(always, inputs)[0])
    plain.train()
    assert (run(plain, changed)[0] - run(plain, inputs)[0]).abs().max() > 1e-3


# ---------------------------------------------------------------------------- (5) files
def test_save_load_round_trip(tmp_path):
    model = small(NINE, num_tokens=3, feature_drop=0.2, num_keep=5)
    inputs = make_inputs([8, 3], 8, n_features=9)
    path = save_backbone(tmp_path / "pet.safetensors", model)
    loaded = load_backbone(path, expect="pet")
    assert isinstance(loaded, PETBackbone) and loaded.config == model.config
    assert loaded.features == model.features
    out, mask = run(model, inputs)
    out_l, mask_l = run(loaded, inputs)
    assert torch.equal(out_l, out) and torch.equal(mask_l, mask)
    with pytest.raises(ValueError, match="holds a 'pet' backbone.*'part'"):
        load_backbone(path, expect="part")


def test_prepare_and_forward_on_a_jet_batch():
    """A JetBatch through the default features (weaver's kin set) and the CPU preset."""
    from jetfm.models.pet import CPU_CONFIG

    rng = np.random.default_rng(0)
    counts = [20, 3, 1]
    batch = JetBatch.from_ptetaphi([np.exp(rng.normal(2, 1, n)) for n in counts],
                                   [rng.normal(0, 0.2, n) for n in counts],
                                   [rng.normal(0, 0.2, n) for n in counts], 0.0)
    torch.manual_seed(0)
    model = build_backbone("pet", CPU_CONFIG).eval()
    inputs, _ = model.prepare(batch)
    out, mask = run(model, inputs.to_torch())
    assert out.shape == (3, 4 + 20, model.dim) and mask.sum(1).tolist() == [24, 7, 5]
    assert torch.isfinite(out).all() and (out[~mask] == 0).all()


# ---------------------------------------------------------------------------- (6) errors
@pytest.mark.parametrize("config, message", [
    ({"heads": 4}, r"unknown keys \['heads'\]"),
    ({"input_dim": 3}, r"unknown keys \['input_dim'\]"),
    ({"dim": 100, "num_heads": 8}, "dim 100 is not divisible by num_heads 8"),
    ({"k": 0}, "k: 0 must be >= 1"),
    ({"num_layers": "eight"}, "num_layers: 'eight' is not an integer"),
    ({"feature_drop": 1.5}, "feature_drop: 1.5 must be <= 1"),
    ({"feature_drop": 0.1}, "feature_drop 0.1 would drop nothing: num_keep 7 >= the 7"),
    ({"layer_scale_init": -1}, "layer_scale_init: -1 must be > 0"),
    ({"mlp_drop": 1.0}, "mlp_drop: 1.0 must be < 1"),
])
def test_bad_config_keys(config, message):
    with pytest.raises(ValueError, match=message):
        build_backbone("pet", config)


def test_bad_inputs():
    model = small()
    good = make_inputs([4, 2], 4)
    cases = [
        (ParticleInputs(good.mask, good.features[..., :5], good.p4), r"features must be .*7"),
        (ParticleInputs(good.mask, good.features, good.p4[..., :3]), "p4 must be"),
        (ParticleInputs(good.mask.float(), good.features, good.p4), "mask must be .* bool"),
        (ParticleInputs(good.mask.numpy(), good.features.numpy(), good.p4.numpy()),
         "must be a torch tensor"),
    ]
    empty = good.mask.clone()
    empty[1] = False
    cases.append((ParticleInputs(empty, good.features, good.p4),
                  r"jets without real particles at batch positions \[1\]"))
    nan = good.features.clone()
    nan[1, 0, 2] = float("nan")
    cases.append((ParticleInputs(good.mask, nan, good.p4),
                  r"non-finite features of real particles .* \[1\]"))
    for inputs, message in cases:
        with pytest.raises(ValueError, match=message):
            model(inputs)


# ---------------------------------------------------------------------------- (7) size
def test_default_parameter_count():
    """OmniLearned "small" body (8 blocks, 8 heads, base_dim 128, mlp_ratio 2, 4 tokens) with
    7 features: embedding 34,944 + local block 36,736 + tokens 512 + 8 blocks x 132,736 +
    final norm 256."""
    model = build_backbone("pet")
    assert sum(p.numel() for p in model.parameters()) == DEFAULT_PARAMETERS == 1_134_336
    assert model.dim == 128 and len(model.blocks) == 8


# ---------------------------------------------------------------------------- (7) jet features
JET4 = FeatureSpec(KIN_FEATURES.particle, (InputFeature("jet_pt", multiply=0.01),
                                           InputFeature("jet_eta"),
                                           InputFeature("jet_mass", multiply=0.01),
                                           InputFeature("n_particles", multiply=0.01)))


def with_jet(inputs: ParticleInputs, seed: int = 5) -> ParticleInputs:
    g = torch.Generator().manual_seed(seed)
    return ParticleInputs(inputs.mask, inputs.features, inputs.p4,
                          torch.randn(len(inputs.mask), 4, generator=g))


def test_jet_features_enter_as_one_condition_token():
    """OmniLearn's jet-level inputs: one condition token after the class tokens; the outputs
    depend on the jet features, padded slots still change nothing, a permutation of the
    particles leaves the tokens unchanged; without jet features there is no such token."""
    model = small(JET4)
    assert model.config.jet_dim == 4 and model.n_tokens == SMALL["num_tokens"] + 1
    inputs = with_jet(make_inputs([9, 4], 9))
    out, mask = run(model, inputs)
    assert out.shape[1] == model.n_tokens + 9 and mask[:, :model.n_tokens].all()
    other = ParticleInputs(inputs.mask, inputs.features, inputs.p4, inputs.jet + 1.0)
    assert (run(model, other)[0][:, :model.n_tokens] - out[:, :model.n_tokens]).abs().max() \
        > 1e-3
    padded = make_inputs([9, 4], 12)
    padded = ParticleInputs(padded.mask, torch.cat([inputs.features, torch.full((2, 3, 7), 9.0)],
                                                   1),
                            torch.cat([inputs.p4, torch.full((2, 3, 4), 50.0)], 1), inputs.jet)
    out_p, _ = run(model, padded)
    torch.testing.assert_close(out_p[:, :out.shape[1]], out)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    shuffled = ParticleInputs(inputs.mask[:, perm], inputs.features[:, perm],
                              inputs.p4[:, perm], inputs.jet)
    out_s, _ = run(model, shuffled)
    torch.testing.assert_close(out_s[:, :model.n_tokens], out[:, :model.n_tokens])
    assert small().n_tokens == SMALL["num_tokens"]
    with pytest.raises(ValueError, match=r"inputs.jet must be a \(batch, 4\) tensor"):
        run(model, make_inputs([9, 4], 9))


def test_jet_features_from_a_jet_batch_and_files(tmp_path):
    """The spec computes the jet features from a JetBatch; the backbone file keeps them."""
    rng = np.random.default_rng(1)
    counts = [15, 6]
    batch = JetBatch.from_ptetaphi([np.exp(rng.normal(2, 1, n)) for n in counts],
                                   [rng.normal(0, 0.2, n) for n in counts],
                                   [rng.normal(0, 0.2, n) for n in counts], 0.0)
    model = small(JET4)
    inputs, _ = model.prepare(batch)
    np.testing.assert_allclose(inputs.jet[:, 3], [0.15, 0.06], rtol=1e-6)
    loaded = load_backbone(save_backbone(tmp_path / "pet.safetensors", model), expect="pet")
    assert loaded.features == JET4 and loaded.config.jet_dim == 4
    torch.testing.assert_close(run(loaded, inputs.to_torch())[0], run(model,
                                                                      inputs.to_torch())[0])


@pytest.mark.parametrize("name", ["part", "lgatr"])
def test_backbones_without_a_jet_input_refuse_jet_features(name):
    with pytest.raises(ValueError, match=rf"{name} backbone: jet features \['jet_pt', "
                                         r"'jet_eta', 'jet_mass', 'n_particles'\] are not used"):
        build_backbone(name, None, JET4 if name == "part" else FeatureSpec(
            (), JET4.jet))
