"""ParT (jetfm.models.particle_transformer) against weaver-core's original 2022 ParticleTransformer.

The reference is vendored in tests/reference/weaver_particle_transformer.py (weaver-core commit
aff6531, identical to the file in the PyPI wheels 0.4.1-0.4.17, whose metadata pins
numpy < 2 and uproot < 5.2 and so cannot be a dependency of jetfm).
"""

from __future__ import annotations

import copy
import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from jetfm.models.particle_transformer import (
    ParticleTransformer,
    ParticleTransformerConfig,
    load_weaver_state_dict,
    pairwise_features,
)

REFERENCE = Path(__file__).parent / "reference" / "weaver_particle_transformer.py"
SMALL = dict(
    input_dim=7,
    num_classes=5,
    embed_dims=(16, 32, 16),
    pair_embed_dims=(8, 8),
    num_heads=4,
    num_layers=2,
    num_cls_layers=1,
)
reference_warnings = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


@pytest.fixture(scope="module")
def weaver():
    spec = importlib.util.spec_from_file_location("weaver_particle_transformer", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent torch
        spec.loader.exec_module(module)
    return module


def make_batch(n_particles, n_max, input_dim, seed=0):
    """Jets with particles in the first n slots (E, px, py, pz in GeV), zero padding after."""
    g = torch.Generator().manual_seed(seed)
    b = len(n_particles)
    mask = torch.arange(n_max)[None, :] < torch.tensor(n_particles)[:, None]
    eta = 1.5 * torch.randn(b, 1, generator=g) + 0.1 * torch.randn(b, n_max, generator=g)
    phi = (torch.rand(b, 1, generator=g) * 2 - 1) * math.pi
    phi = phi + 0.1 * torch.randn(b, n_max, generator=g)
    pt = torch.exp(2.0 + torch.randn(b, n_max, generator=g))
    mass = 0.2 * torch.rand(b, n_max, generator=g)
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    energy = torch.sqrt(pt**2 + pz**2 + mass**2)
    p4 = torch.stack((energy, px, py, pz), dim=-1) * mask[..., None]
    features = torch.randn(b, n_max, input_dim, generator=g) * mask[..., None]
    return features, p4, mask


def randomise(module, seed=1):
    """Move every float tensor (weights, BatchNorm statistics) away from its initial value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if not value.dtype.is_floating_point:
                continue
            noise = torch.randn(value.shape, generator=g)
            if name.endswith("running_var"):
                value.copy_(0.5 + noise.abs())
            elif name.endswith("running_mean"):
                value.copy_(noise)
            else:
                value.add_(0.05 * noise)


def reference_model(weaver, config):
    return weaver.ParticleTransformer(
        input_dim=config.input_dim,
        num_classes=config.num_classes,
        pair_input_dim=config.pair_input_dim,
        use_pre_activation_pair=config.use_pre_activation_pair,
        embed_dims=list(config.embed_dims),
        pair_embed_dims=list(config.pair_embed_dims),
        num_heads=config.num_heads,
        num_layers=config.num_layers,
        num_cls_layers=config.num_cls_layers,
        fc_params=[] if config.num_classes else None,
        trim=False,
    )


def run_reference(ref, features, p4, mask):
    """The reference takes channel-first inputs and four-momenta ordered (px, py, pz, E)."""
    with torch.no_grad():
        return ref(
            features.transpose(1, 2),
            p4[..., [1, 2, 3, 0]].transpose(1, 2),
            mask[:, None].float(),
        )


@reference_warnings
@pytest.mark.parametrize(
    "config",
    [
        ParticleTransformerConfig(),  # JetClass: 17 features, 10 classes
        ParticleTransformerConfig(
            **{**SMALL, "num_classes": None, "use_pre_activation_pair": True}
        ),
    ],
    ids=["jetclass", "small-embedding"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_weights_give_the_reference_outputs(weaver, config, dtype):
    """Eval mode, a batch with padding (24, 5, 13 and 1 particles in 24 slots), jets at
    positive and negative rapidity. float32: the issue's 1e-5 on the logits; float64: the
    same arithmetic up to rounding (1e-10)."""
    torch.manual_seed(0)
    ref = reference_model(weaver, config)
    randomise(ref)
    ours = ParticleTransformer(config)
    load_weaver_state_dict(ours, ref.state_dict())
    ours.eval().to(dtype)
    ref.eval().to(dtype)
    features, p4, mask = make_batch([24, 5, 13, 1], 24, config.input_dim)
    features, p4 = features.to(dtype), p4.to(dtype)
    expected = run_reference(ref, features, p4, mask)
    with torch.no_grad():
        got = ours(features, p4, mask)
    assert got.shape == expected.shape
    tolerance = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(got, expected, atol=tolerance, rtol=0)


@reference_warnings
def test_weaver_checkpoint_prefix_and_mismatch(weaver):
    config = ParticleTransformerConfig(**SMALL)
    ref = reference_model(weaver, config)
    ours = ParticleTransformer(config)
    load_weaver_state_dict(ours, {f"mod.{k}": v for k, v in ref.state_dict().items()}, "mod.")
    torch.testing.assert_close(ours.cls_token, ref.cls_token)
    other = ParticleTransformer(ParticleTransformerConfig(**{**SMALL, "num_classes": 3}))
    with pytest.raises(ValueError, match="fc.0.weight"):
        load_weaver_state_dict(other, ref.state_dict())
    fewer = ParticleTransformer(ParticleTransformerConfig(**{**SMALL, "num_layers": 1}))
    with pytest.raises(ValueError, match="unexpected.*blocks.1"):
        load_weaver_state_dict(fewer, ref.state_dict())


def test_jetclass_parameter_count():
    model = ParticleTransformer(ParticleTransformerConfig(input_dim=17, num_classes=10))
    assert sum(p.numel() for p in model.parameters()) == 2_143_486


def small_model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = ParticleTransformer(ParticleTransformerConfig(**{**SMALL, **overrides}))
    randomise(model, seed + 1)
    return model.eval()


def test_permutation_equivariance_and_invariance():
    model = small_model()
    features, p4, mask = make_batch([12, 7, 3], 12, 7, seed=3)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        emb, emb_mask = model.encode(features, p4, mask)
        emb_p, mask_p = model.encode(features[:, perm], p4[:, perm], mask[:, perm])
        logits = model(features, p4, mask)
        logits_p = model(features[:, perm], p4[:, perm], mask[:, perm])
    assert emb.shape == (3, 12, 16)
    assert torch.equal(mask_p, emb_mask[:, perm])
    torch.testing.assert_close(emb_p, emb[:, perm], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits_p, logits, atol=1e-5, rtol=0)
    assert not torch.allclose(logits[0], logits[1], atol=1e-3)  # the jets are told apart


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_padded_slots_change_nothing(train):
    """Extra padded slots, filled with junk, change no output; in training too (BatchNorm
    statistics over real particles and pairs only)."""
    model = small_model(dropout=0.0, attn_dropout=0.0, activation_dropout=0.0)
    features, p4, mask = make_batch([9, 4, 6], 9, 7, seed=5)
    extra = 5
    junk_features, junk_p4, _ = make_batch([14, 14, 14], 14, 7, seed=6)
    position = torch.tensor([0, 3, 5, 11, 13])  # padded slots between and after real ones
    keep = torch.tensor([i for i in range(9 + extra) if i not in position.tolist()])
    big_f = torch.zeros(3, 9 + extra, 7)
    big_p4 = torch.zeros(3, 9 + extra, 4)
    big_mask = torch.zeros(3, 9 + extra, dtype=torch.bool)
    big_f[:, keep], big_p4[:, keep], big_mask[:, keep] = features, p4, mask
    big_f[:, position], big_p4[:, position] = junk_features[:, :extra], junk_p4[:, :extra]
    other = copy.deepcopy(model)
    model.train(train)
    other.train(train)
    emb, _ = model.encode(features, p4, mask)
    emb_big, mask_big = other.encode(big_f, big_p4, big_mask)
    torch.testing.assert_close(emb_big[:, keep], emb, atol=1e-5, rtol=0)
    assert torch.equal(emb_big[~mask_big], torch.zeros_like(emb_big[~mask_big]))
    torch.testing.assert_close(other(big_f, big_p4, big_mask), model(features, p4, mask),
                               atol=1e-5, rtol=0)
    if train:  # the same BatchNorm running statistics were accumulated
        torch.testing.assert_close(
            other.pair_embed.input_norm.running_mean, model.pair_embed.input_norm.running_mean
        )


def lorentz(pt, eta, phi, m):
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.array([np.sqrt(px**2 + py**2 + pz**2 + m**2), px, py, pz])


def test_pair_features_match_numpy():
    # phi on both sides of +-pi (the wrapped delta phi is 0.1), negative pz for one particle
    a = lorentz(50.0, -1.2, math.pi - 0.04, 0.14)
    b = lorentz(20.0, -0.9, -math.pi + 0.06, 0.5)
    got = pairwise_features(torch.tensor(a), torch.tensor(b)).numpy()

    def y(p):
        return 0.5 * np.log((p[0] + p[3]) / (p[0] - p[3]))

    pt_a, pt_b = np.hypot(a[1], a[2]), np.hypot(b[1], b[2])
    delta = np.hypot(y(a) - y(b), 0.1)
    s = a + b
    expected = [
        np.log(min(pt_a, pt_b) * delta),
        np.log(min(pt_a, pt_b) / (pt_a + pt_b)),
        np.log(delta),
        np.log(s[0] ** 2 - s[1] ** 2 - s[2] ** 2 - s[3] ** 2),
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # symmetric in the pair, and a pair with a padded (zero) particle stays finite
    np.testing.assert_allclose(pairwise_features(torch.tensor(b), torch.tensor(a)).numpy(), got)
    zero = pairwise_features(torch.tensor(a), torch.zeros(4, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(zero[:2], [np.log(1e-8)] * 2)
    np.testing.assert_allclose(zero[3], np.log(0.14**2), rtol=1e-6)


def test_bad_inputs_are_named():
    model = small_model()
    features, p4, mask = make_batch([4, 0], 4, 7)
    with pytest.raises(ValueError, match="without real particles at batch positions \\[1\\]"):
        model(features, p4, mask)
    with pytest.raises(ValueError, match="features must be"):
        model(features[..., :5], p4, mask)
    with pytest.raises(ValueError, match="mask must be a bool"):
        model(features, p4, mask.float())
