"""L-GATr backbone (jetfm.models.lgatr): Lorentz invariance of its outputs, the symmetry
breaking by the reference tokens, padding and permutation behaviour, files, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from io_jets import random_jets

from jetfm.models.backbone import build_backbone, load_backbone, save_backbone
from jetfm.models.features import ParticleInputs
from jetfm.models.heads import build_head
from jetfm.models.lgatr import LGATrBackbone, LGATrConfig
from jetfm.models.tagger import build_tagger, load_tagger

SMALL = {"num_blocks": 2, "hidden_mv_channels": 8, "hidden_s_channels": 16, "num_heads": 4,
         "out_mv_channels": 3, "out_s_channels": 2}
NO_REFERENCES = {**SMALL, "beam_reference": None, "add_time_reference": False}
TWO_FEATURES = ["log_pt", "delta_r"]


def backbone(config: dict, features=(), seed: int = 0) -> LGATrBackbone:
    """A small randomly initialised L-GATr in eval mode (``features``: names; () = none)."""
    torch.manual_seed(seed)
    return build_backbone("lgatr", config, list(features)).eval()


def jets(n_jets: int = 3, n_max: int = 6, n_features: int = 0, seed: int = 0) -> ParticleInputs:
    """Massive particles of jets with pT ~ 20-200 GeV (GeV), first jet with 4 real particles."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n_jets, n_max, dtype=torch.bool)
    mask[0, 4:] = False
    pt = 20 * torch.exp(torch.rand(n_jets, n_max, generator=g) * 2.3)
    eta = 0.5 * torch.randn(n_jets, 1, generator=g) + 0.2 * torch.randn(n_jets, n_max, generator=g)
    phi = 2 * math.pi * torch.rand(n_jets, 1, generator=g) + 0.2 * torch.randn(
        n_jets, n_max, generator=g)
    mass = 5 * torch.rand(n_jets, n_max, generator=g)
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    energy = torch.sqrt(px**2 + py**2 + pz**2 + mass**2)
    p4 = torch.stack((energy, px, py, pz), dim=-1) * mask[..., None]
    features = torch.randn(n_jets, n_max, n_features, generator=g) * mask[..., None]
    return ParticleInputs(mask, features, p4)


def transformed(inputs: ParticleInputs, matrix: torch.Tensor) -> ParticleInputs:
    """``inputs`` with every four-momentum p -> matrix @ p (float64 product, then the dtype of
    ``inputs.p4``)."""
    p4 = (inputs.p4.double() @ matrix.T.double()).to(inputs.p4.dtype)
    return ParticleInputs(inputs.mask, inputs.features, p4)


def as_double(model: LGATrBackbone, inputs: ParticleInputs
              ) -> tuple[LGATrBackbone, ParticleInputs]:
    """Model and inputs in float64 (for effects far below float32 precision)."""
    return model.double(), ParticleInputs(inputs.mask, inputs.features.double(),
                                          inputs.p4.double())


def rotation(axis: torch.Tensor, angle: float) -> torch.Tensor:
    """4x4 Lorentz matrix of a spatial rotation by ``angle`` about the unit 3-vector ``axis``."""
    k = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]],
                      [-axis[1], axis[0], 0.0]], dtype=torch.float64)
    r = torch.eye(3, dtype=torch.float64) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k
    out = torch.eye(4, dtype=torch.float64)
    out[1:, 1:] = r
    return out


def boost(direction: torch.Tensor, rapidity: float) -> torch.Tensor:
    """4x4 Lorentz matrix of a boost with ``rapidity`` along the unit 3-vector ``direction``."""
    n = direction.double()
    out = torch.eye(4, dtype=torch.float64)
    out[0, 0] = math.cosh(rapidity)
    out[0, 1:] = out[1:, 0] = math.sinh(rapidity) * n
    out[1:, 1:] += (math.cosh(rapidity) - 1) * torch.outer(n, n)
    return out


def unit(seed: int) -> torch.Tensor:
    v = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return v / v.norm()


METRIC = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64))
LORENTZ = boost(unit(1), 0.8) @ rotation(unit(2), 2.1)
Z_AXIS = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
X_AXIS = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)


def outputs(model: LGATrBackbone, inputs: ParticleInputs) -> torch.Tensor:
    with torch.no_grad():
        return model(inputs)[0]


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the largest output."""
    return float((a - b).abs().max() / a.abs().max())


def assert_unchanged(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to the precision of the dtype (float32: 2e-4 of the output scale, float64: 1e-10;
    the float32 differences seen are <= 5e-5, the float64 ones ~1e-14)."""
    assert relative_change(a, b) < (2e-4 if a.dtype == torch.float32 else 1e-10), \
        relative_change(a, b)


def assert_changed(a: torch.Tensor, b: torch.Tensor, at_least: float = 1e-2) -> None:
    """Different by more than ``at_least`` of the output scale."""
    assert relative_change(a, b) > at_least, relative_change(a, b)


def test_lorentz_matrices_are_proper_lorentz_transformations():
    for m in (LORENTZ, rotation(Z_AXIS, 1.0), boost(X_AXIS, 0.5)):
        assert torch.allclose(m.T @ METRIC @ m, METRIC, atol=1e-12)
        assert math.isclose(float(torch.linalg.det(m)), 1.0, abs_tol=1e-12) and m[0, 0] >= 1


def test_invariant_under_lorentz_transformations_without_references():
    model = backbone(NO_REFERENCES)
    inputs = jets()
    before = outputs(model, inputs)
    assert_unchanged(before, outputs(model, transformed(inputs, LORENTZ)))
    # the check can fail: a scaling of px only is no Lorentz transformation
    scale_px = torch.diag(torch.tensor([1.0, 1.5, 1.0, 1.0], dtype=torch.float64))
    assert_changed(before, outputs(model, transformed(inputs, scale_px)))
    assert_changed(before, outputs(model, transformed(jets(seed=5), LORENTZ)))


def test_references_break_the_symmetry_to_rotations_about_the_beam():
    """In float64: a randomly initialised network depends only weakly (~1e-3) on the beam
    plane under rotations about x, too close to float32 rounding for a clean test."""
    model, inputs = as_double(backbone(SMALL), jets())
    before = outputs(model, inputs)
    assert_unchanged(before, outputs(model, transformed(inputs, rotation(Z_AXIS, 2.3))))
    assert_changed(before, outputs(model, transformed(inputs, rotation(X_AXIS, 0.7))), 1e-4)
    assert_changed(before, outputs(model, transformed(inputs, boost(X_AXIS, 0.6))), 1e-3)
    # the beam alone (no time token) still allows boosts along z; the time token breaks them
    beam_only = as_double(backbone({**SMALL, "add_time_reference": False}), inputs)[0]
    z_boost = boost(Z_AXIS, 0.9)
    assert_unchanged(outputs(beam_only, inputs), outputs(beam_only, transformed(inputs, z_boost)))
    assert_changed(before, outputs(model, transformed(inputs, z_boost)), 1e-3)


def test_token_layout_and_mask():
    model = backbone(SMALL, TWO_FEATURES)
    inputs = jets(n_features=2)
    mv, scalars, mask = model.embed(inputs)
    assert mv.shape == (3, 3 + 6, 1, 16) and scalars.shape == (3, 9, 2 + 1)
    assert torch.equal(mv[:, 0], torch.zeros(3, 1, 16))  # global token: zero multivector
    assert torch.equal(scalars[:, 0], torch.tensor([[0.0, 0.0, 1.0]] * 3))  # one-hot channel
    assert float(mv[0, 1, 0, 8]) == 1.0 and float(mv[0, 1, 0].abs().sum()) == 1.0  # xy plane
    assert torch.equal(mv[0, 2, 0, 1:5], torch.tensor([1.0, 0.0, 0.0, 0.0]))  # time direction
    assert torch.allclose(mv[0, 3, 0, 1:5], inputs.p4[0, 0] / 20.0)  # units of 20 GeV
    assert mask[0].tolist() == [True] * 7 + [False] * 2
    embeddings, out_mask = model(inputs)
    assert embeddings.shape == (3, 9, model.dim) and model.dim == 5
    assert torch.equal(out_mask, mask)
    assert bool((embeddings[0, 7:] == 0).all()) and bool((embeddings[0, :7] != 0).any())


def test_padding_is_inert_and_particles_permute():
    model = backbone(SMALL, TWO_FEATURES)
    inputs = jets(n_features=2)
    before = outputs(model, inputs)
    # three more padded slots holding garbage (huge, negative, NaN) momenta and features
    g = torch.Generator().manual_seed(3)
    garbage_p4 = 1e4 * torch.randn(3, 3, 4, generator=g)
    garbage_p4[1, 0] = float("nan")
    garbage_features = 1e3 * torch.randn(3, 3, 2, generator=g)
    padded = ParticleInputs(
        torch.cat((inputs.mask, torch.zeros(3, 3, dtype=torch.bool)), dim=1),
        torch.cat((inputs.features, garbage_features), dim=1),
        torch.cat((inputs.p4, garbage_p4), dim=1))
    after = outputs(model, padded)
    assert after.shape == before.shape  # trailing slots no jet fills are dropped
    assert torch.allclose(after, before, atol=1e-5)
    # one real particle in the last slot keeps every slot; the others' padding stays inert
    padded.mask[2, -1] = True
    padded.p4[2, -1] = inputs.p4[2, 0]
    after = outputs(model, padded)
    assert after.shape == (3, 3 + 9, model.dim)
    assert torch.allclose(after[:2, :9], before[:2], atol=1e-5)
    assert bool((after[:2, 9:] == 0).all()) and bool((after[2, 9:-1] == 0).all())
    # garbage also in the padded slots of jet 0 (slots 4, 5)
    p4 = inputs.p4.clone()
    p4[0, 4:] = 777.0
    assert torch.allclose(outputs(model, ParticleInputs(inputs.mask, inputs.features, p4)),
                          before, atol=1e-5)
    # permuting the real particles of every jet permutes their outputs; global token unchanged
    order = torch.tensor([2, 0, 3, 1, 4, 5])
    permuted = ParticleInputs(inputs.mask[:, order], inputs.features[:, order],
                              inputs.p4[:, order])
    shuffled = outputs(model, permuted)
    assert torch.allclose(shuffled[:, 3:], before[:, 3:][:, order], atol=1e-5)
    assert torch.allclose(shuffled[:, :3], before[:, :3], atol=1e-5)
    assert_changed(before[:, 3:], shuffled[:, 3:])  # the particles' outputs differ


def test_backbone_file_round_trip(tmp_path):
    model = backbone({**SMALL, "units": 10.0}, TWO_FEATURES, seed=4)
    path = save_backbone(tmp_path / "lgatr.safetensors", model)
    loaded = load_backbone(path, expect="lgatr")
    assert isinstance(loaded, LGATrBackbone) and loaded.config == model.config
    assert loaded.features.names == tuple(TWO_FEATURES)
    inputs = jets(n_features=2)
    assert torch.equal(outputs(model, inputs), outputs(loaded, inputs))
    with pytest.raises(ValueError, match="'lgatr' backbone.*'part'"):
        load_backbone(path, expect="part")


def test_global_token_tagger_file_and_padding_between_particles(tmp_path):
    """The tagger API (lgatr backbone + global_token head): padding anywhere among the real
    particles, with garbage in it, and any slot order leave the logits unchanged; the tagger
    file reproduces them."""
    torch.manual_seed(0)
    tagger = build_tagger("lgatr", ["QCD", "Tbqq"], SMALL, TWO_FEATURES, head="global_token")
    tagger.eval()
    inputs = jets(n_features=2)
    with torch.no_grad():
        expected = tagger(inputs)
        order = torch.tensor([4, 1, 0, 5, 3, 2])  # jet 0: padded slots 4, 5 now at 0 and 3
        p4, features = inputs.p4[:, order].clone(), inputs.features[:, order].clone()
        mask = inputs.mask[:, order]
        p4[~mask], features[~mask] = -3e3, 7.0
        assert torch.allclose(tagger(ParticleInputs(mask, features, p4)), expected, atol=1e-5)
    loaded = load_tagger(tagger.save(tmp_path / "tagger.safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded(inputs), expected)


def test_prepare_real_jets_and_default_features():
    model = backbone(SMALL)  # default features: four-momenta only
    assert model.features.names == () and model.features.n_max == 128
    batch = random_jets(4, seed=2, n_max=20)
    inputs, _ = model.prepare(batch)
    embeddings, mask = model(inputs.to_torch())
    counts = [len(p) for p in batch.particles.px]
    assert embeddings.shape == (4, 3 + max(counts), 5)  # slots beyond the longest jet dropped
    assert mask[:, 3:].sum(dim=1).tolist() == counts
    assert bool(torch.isfinite(embeddings).all())


def test_bad_inputs_raise_clear_errors():
    model = backbone(SMALL)
    inputs = jets()
    with pytest.raises(ValueError, match="p4 must be"):
        model(ParticleInputs(inputs.mask, inputs.features, inputs.p4[..., :3]))
    empty = inputs.mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match=r"without real particles at batch positions \[1\]"):
        model(ParticleInputs(empty, inputs.features, inputs.p4))
    nan = inputs.p4.clone()
    nan[2, 0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite four-momenta .* jets \[2\]"):
        model(ParticleInputs(inputs.mask, inputs.features, nan))
    with pytest.raises(ValueError, match="features must be"):
        backbone(SMALL, TWO_FEATURES)(inputs)  # the spec has 2 features, the inputs 0
    with pytest.raises(ValueError, match=r"jet features \['jet_mass'\]"):
        build_backbone("lgatr", SMALL, {"particle": [], "jet": ["jet_mass"]})


def test_bad_config_raises_naming_the_key():
    with pytest.raises(ValueError, match="hidden_channels"):
        build_backbone("lgatr", {"hidden_channels": 8})
    with pytest.raises(ValueError, match="beam_reference"):
        build_backbone("lgatr", {"beam_reference": "zaxis"})
    with pytest.raises(ValueError, match="units"):
        build_backbone("lgatr", {"units": 0})
    with pytest.raises(ValueError, match="global_token"):
        build_backbone("lgatr", {"global_token": "yes"})


def test_default_parameter_count():
    config = LGATrConfig()
    assert (config.num_blocks, config.hidden_mv_channels, config.hidden_s_channels,
            config.num_heads, config.attn_ratio, config.mlp_ratio, config.head_scale,
            config.units) == (12, 16, 32, 8, 2, 2, True, 20.0)
    model = build_backbone("lgatr")
    assert sum(p.numel() for p in model.parameters()) == 1_077_026
    assert model.dim == 1


def test_global_token_head_separates_invariant_masses():
    """Two-particle "jets" of invariant mass 80 GeV vs 20 GeV, boosted and rotated at random:
    a small L-GATr + global_token head learns to tell them apart."""
    rng = np.random.default_rng(0)
    n = 96
    label = np.arange(n) % 2
    mass = np.where(label == 1, 80.0, 20.0)
    # back-to-back massless daughters in the rest frame, then a random boost along z
    # (rapidity) and in the transverse plane (pT ~ 100-300 GeV)
    cos_t, phi = rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    half = mass / 2
    k = np.stack((half, half * sin_t * np.cos(phi), half * sin_t * np.sin(phi), half * cos_t), -1)
    daughters = np.stack((k, k * np.array([1, -1, -1, -1])), axis=1)  # (n, 2, 4)
    pt, y, az = rng.uniform(100, 300, n), rng.uniform(-1, 1, n), rng.uniform(0, 2 * np.pi, n)
    mt = np.sqrt(pt**2 + mass**2)
    p_jet = np.stack((mt * np.cosh(y), pt * np.cos(az), pt * np.sin(az), mt * np.sinh(y)), -1)
    beta = p_jet[:, 1:] / p_jet[:, :1]
    gamma = p_jet[:, 0] / mass
    bp = np.einsum("nj,npj->np", beta, daughters[..., 1:])
    b2 = (beta**2).sum(-1)
    energy = gamma[:, None] * (daughters[..., 0] + bp)
    space = daughters[..., 1:] + ((gamma - 1) / b2)[:, None, None] * bp[..., None] * \
        beta[:, None] + (gamma[:, None, None] * beta[:, None] * daughters[..., :1])
    p4 = np.concatenate((energy[..., None], space), axis=-1)
    m2 = (p4.sum(1)[:, 0] ** 2 - (p4.sum(1)[:, 1:] ** 2).sum(-1))
    assert np.allclose(np.sqrt(m2), mass, rtol=1e-6)
    inputs = ParticleInputs(torch.ones(n, 2, dtype=torch.bool), torch.zeros(n, 2, 0),
                            torch.tensor(p4, dtype=torch.float32))
    target = torch.tensor(label)
    torch.manual_seed(0)
    model = build_backbone("lgatr", {"num_blocks": 1, "hidden_mv_channels": 4,
                                     "hidden_s_channels": 8, "num_heads": 2})
    head = build_head("global_token", model.dim, 2)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(head(*model(inputs)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = float((head(*model(inputs)).argmax(-1) == target).float().mean())
    assert losses[0] > 0.6 and losses[-1] < 0.7 * losses[0], losses
    assert accuracy > 0.95, accuracy
