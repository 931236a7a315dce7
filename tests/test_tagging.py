"""Backbone/task API: feature specs, taggers of any backbone, modes, files, bad input."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from cli_models import tiny_backbone, tiny_tokenizer
from sklearn.metrics import roc_auc_score
from tagging_jets import prong_jets, two_class_jets

from jetfm.data import JetBatch
from jetfm.data.batch import JetDataError
from jetfm.models.backbone import build_backbone, load_backbone, save_backbone
from jetfm.models.features import KIN_FEATURES, FeatureSpec, InputFeature
from jetfm.models.particle_transformer import ParticleTransformer, ParticleTransformerConfig
from jetfm.models.tagger import Tagger, build_tagger, load_tagger
from jetfm.tasks.tagging import TaggingConfig, train_tagger

PART_TINY = {"embed_dims": [16, 16], "pair_embed_dims": [8], "num_heads": 2, "num_layers": 1,
             "dropout": 0.0, "attn_dropout": 0.0, "activation_dropout": 0.0}
HEAD_TINY = {"n_heads": 2, "n_blocks": 1}
FAST = {"max_epochs": 6, "batch_size": 32, "lr": 3e-3, "progress": False, "patience": 10}


# ----------------------------------------------------------------------------- features
def test_feature_spec_transforms_clips_and_keeps_the_four_momenta():
    jets = JetBatch.from_ptetaphi(ak.Array([[10.0, 200.0, 0.0], [50.0]]),
                                  ak.Array([[0.1, 0.0, 0.2], [1.0]]),
                                  ak.Array([[0.0, 0.1, 0.3], [2.0]]), 0.0)
    spec = FeatureSpec((InputFeature("log_pt", 1.7, 0.7, (-5, 5)),
                        InputFeature("pt", 0.0, 1.0, (0.0, 100.0))), n_max=2)
    inputs, reports = spec.apply(jets)
    # pT-ordered, the pT = 0 particle dropped (no weight, no direction) and counted
    np.testing.assert_array_equal(inputs.mask, [[True, True], [True, False]])
    np.testing.assert_allclose(inputs.features[0, :, 0], (np.log([200.0, 10.0]) - 1.7) * 0.7,
                               rtol=1e-6)
    np.testing.assert_allclose(inputs.features[0, :, 1], [100.0, 10.0])  # clipped at 100
    assert inputs.features[1, 1].tolist() == [0.0, 0.0]
    assert reports[0].removed["outside pt window"] == 1
    order = np.argsort(-np.asarray(jets.pt[0]))[:2]
    expected = np.stack([np.asarray(jets.particles[0][f])[order]
                         for f in ("energy", "px", "py", "pz")], axis=-1)
    np.testing.assert_allclose(inputs.p4[0], expected, rtol=1e-6)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_feature_spec_names_missing_features_and_bad_keys():
    jets = prong_jets(4, 1, "QCD")
    spec = FeatureSpec((InputFeature("charge"), InputFeature("eta_rel")),
                       (InputFeature("sdmass"),))
    with pytest.raises(JetDataError, match=r"data\.root: .*\['charge', 'jet: sdmass'\]"):
        spec.apply(jets, origin="data.root")
    with pytest.raises(ValueError, match="unknown keys.*'shift'"):
        FeatureSpec.from_dict({"particle": [{"name": "log_pt", "shift": 1}]})
    with pytest.raises(ValueError, match="low < high"):
        InputFeature("log_pt", clip=(5, -5))
    with pytest.raises(ValueError, match="more than once"):
        FeatureSpec((InputFeature("log_pt"), InputFeature("log_pt")))


# ----------------------------------------------------------------------------- ParT + head
def test_part_backbone_with_class_attention_head_is_the_part_tagger():
    """jetfm's ParT tagger through the API (ParT backbone + class_attention head) gives the
    logits of the full ParticleTransformer (= weaver's, tests/test_particle_transformer.py)."""
    torch.manual_seed(0)
    full = ParticleTransformer(ParticleTransformerConfig(
        input_dim=7, num_classes=3, embed_dims=(16, 32, 16), pair_embed_dims=(8, 8),
        num_heads=4, num_layers=2, num_cls_layers=2)).eval()
    tagger = build_tagger("part", ["QCD", "Tbqq", "Wqq"],
                          {"embed_dims": [16, 32, 16], "pair_embed_dims": [8, 8],
                           "num_heads": 4, "num_layers": 2},
                          head_config={"n_heads": 4, "n_blocks": 2}).eval()
    own = full.state_dict()
    state = {f"backbone.model.{k}": v for k, v in own.items()
             if not k.startswith(("cls_blocks", "cls_token", "norm.", "head."))}
    state.update({f"head.{k.replace('cls_blocks', 'blocks')}": v for k, v in own.items()
                  if k.startswith("cls_blocks")})
    state.update({"head.cls": own["cls_token"], "head.norm.weight": own["norm.weight"],
                  "head.norm.bias": own["norm.bias"], "head.out.weight": own["head.weight"],
                  "head.out.bias": own["head.bias"]})
    tagger.load_state_dict(state)
    jets = prong_jets(6, 3, "Tbqq")
    inputs = tagger.prepare(jets)[0].to_torch()
    with torch.no_grad():
        expected = full(inputs.features, inputs.p4, inputs.mask)
        torch.testing.assert_close(tagger(inputs), expected, rtol=1e-5, atol=1e-5)


BACKBONES_TINY = {
    "part": PART_TINY,
    "pet": {"dim": 16, "num_layers": 1, "num_heads": 2, "k": 4, "num_tokens": 1,
            "layer_scale_init": 1.0},
    "lgatr": {"num_blocks": 1, "hidden_mv_channels": 4, "hidden_s_channels": 8,
              "num_heads": 2, "out_mv_channels": 2, "out_s_channels": 2},
    "jetgpt": {"dim": 16, "n_blocks": 1, "n_heads": 2},
}


@pytest.mark.parametrize("name", sorted(BACKBONES_TINY))
def test_tagger_ignores_padding_and_particle_order(name):
    """Garbage in padded slots, more padding, and any order of the slots (padding between real
    particles included) leave the logits of every backbone's tagger unchanged."""
    torch.manual_seed(0)
    tagger = build_tagger(name, ["QCD", "Tbqq"], BACKBONES_TINY[name],
                          features=list(KIN_FEATURES.particle), head_config=HEAD_TINY).eval()
    jets = prong_jets(5, 2, "Wqq", n_min=3, n_max=12)
    inputs = FeatureSpec.from_dict({**tagger.backbone.features.to_dict(), "n_max": 20}
                                   ).apply(jets)[0]
    with torch.no_grad():
        expected = tagger(inputs.to_torch())
        order = np.random.default_rng(1).permutation(20)
        shuffled = type(inputs)(
            **{k: v[:, order] for k, v in inputs.items().items()})
        pad = ~shuffled.mask
        rng = np.random.default_rng(2)
        shuffled.features[pad] = rng.normal(0, 5, (pad.sum(), shuffled.features.shape[-1]))
        shuffled.p4[pad] = np.abs(rng.normal(100, 50, (pad.sum(), 4)))
        torch.testing.assert_close(tagger(shuffled.to_torch()), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BACKBONES_TINY))
def test_particles_with_zero_momentum_are_dropped_by_every_backbone(name):
    """(0, 0, 0, 0) particles carry no weight and no direction: every backbone's spec drops
    them (also L-GATr's, whose four-momentum inputs have no log pT to fail on) and counts
    them; the tagger's output is that of the jets without them."""

    torch.manual_seed(0)
    tagger = build_tagger(name, ["QCD", "Tbqq"], BACKBONES_TINY[name],
                          features=list(KIN_FEATURES.particle), head_config=HEAD_TINY).eval()
    jets = prong_jets(6, 2, "Wqq", n_min=3, n_max=12)
    parts = jets.particles
    zeros = ak.zeros_like(parts.px[:, :3])
    padded = JetBatch.from_p4(*(ak.concatenate([getattr(parts, c), zeros], axis=1)
                                for c in ("px", "py", "pz", "energy")))
    _, reports = tagger.backbone.features.apply(padded)
    assert reports[0].removed["outside pt window"] == 3 * len(jets)
    np.testing.assert_allclose(tagger.predict_proba(padded), tagger.predict_proba(jets),
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("part")
    config = TaggingConfig(backbone="part", backbone_config=PART_TINY, head_config=HEAD_TINY,
                           classes=["QCD", "Tbqq"], training=FAST)
    tagger = train_tagger(two_class_jets(96, seed=1), two_class_jets(32, seed=2), config, out)
    return tagger, out


def test_tagger_separates_prongs_and_its_file_reproduces_it(trained):
    tagger, out = trained
    test = two_class_jets(64, seed=3)
    probs = tagger.predict_proba(test)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert roc_auc_score(tagger.labels_of(test), probs[:, 1]) > 0.95
    loaded = load_tagger(out / "tagger.safetensors")
    np.testing.assert_allclose(loaded.predict_proba(test), probs, rtol=1e-5, atol=1e-6)
    assert loaded.classes == ("QCD", "Tbqq")


def test_modes_start_from_the_saved_backbone(trained, tmp_path):
    tagger, out = trained
    init = save_backbone(tmp_path / "backbone.safetensors", tagger.backbone)
    start = {k: v.clone() for k, v in tagger.backbone.state_dict().items()}
    parameters = [k for k, _ in tagger.backbone.named_parameters()]
    jets, val = two_class_jets(32, seed=4), two_class_jets(16, seed=5)
    short = {**FAST, "max_epochs": 1}
    for mode in ("frozen", "finetune", "scratch"):
        config = TaggingConfig(backbone="part", mode=mode, init=str(init), head="pooled_mlp",
                               classes=["QCD", "Tbqq"], training=short)
        result = train_tagger(jets, val, config, tmp_path / mode).backbone.state_dict()
        same = [torch.equal(result[k], v) for k, v in start.items() if v.is_floating_point()]
        if mode == "frozen":
            assert all(same)  # weights and BatchNorm statistics untouched
        elif mode == "finetune":
            assert not all(same)
            # weights move by ~ steps x lr x backbone_lr_factor (AdamW): close to the start
            delta = max((result[k] - start[k]).abs().max() for k in parameters)
            assert delta < 0.01
        else:
            assert sum(same) < len(same) / 2
    # a tagger file starts a fine-tuning too
    config = TaggingConfig(backbone="part", mode="frozen", init=str(out / "tagger.safetensors"),
                           classes=["QCD", "Tbqq", "Wqq"], training=short)
    result = train_tagger(JetBatch.concatenate([jets, prong_jets(16, 2, "Wqq")]), val, config,
                          tmp_path / "three")
    assert result.classes == ("QCD", "Tbqq", "Wqq")


def test_bad_input_names_what_is_wrong(trained, tmp_path):
    tagger, out = trained
    init = str(out / "tagger.safetensors")
    with pytest.raises(ValueError, match="holds a 'part' backbone, but the config asks for "
                       "backbone 'pet'"):
        TaggingConfig(backbone="pet", mode="finetune", init=init).build()
    jets = prong_jets(8, 2, "Wqq")
    with pytest.raises(JetDataError, match=r"\{'Wqq': 8\} do not match the class list "
                       r"\['QCD', 'Tbqq'\]"):
        tagger.labels_of(jets)
    with pytest.raises(ValueError, match="unknown classes \\['top'\\]"):
        TaggingConfig(classes=["QCD", "top"])
    with pytest.raises(ValueError, match="give init"):
        TaggingConfig(mode="finetune")
    with pytest.raises(ValueError, match="unknown backbone 'transformer'"):
        TaggingConfig(backbone="transformer")
    with pytest.raises(ValueError, match="backbone 'part'\\): unknown keys \\['depth'\\]"):
        build_backbone("part", {"depth": 3})
    with pytest.raises(ValueError, match="not a tagger file"):
        load_tagger(save_backbone(tmp_path / "b.safetensors", tagger.backbone))
    with pytest.raises(FileNotFoundError):
        load_backbone(tmp_path / "missing.safetensors")


@pytest.mark.parametrize(("name", "cls"), [("part", "ParTBackbone"), ("pet", "PETBackbone"),
                                         ("lgatr", "LGATrBackbone"),
                                         ("omnijet", "OmniJetBackbone")])
def test_config_key_swaps_the_backbone(name, cls, tmp_path):
    """One key, ``backbone``, decides the backbone of the same task; the tagger then takes
    jets through that backbone's own inputs (features and four-momenta, or tokens)."""
    init = None
    if name == "omnijet":
        tokenizer = tiny_tokenizer(tmp_path / "tok.safetensors")
        init = str(tiny_backbone(tmp_path / "gpt.safetensors", tokenizer))
    config = TaggingConfig(backbone=name, classes=["QCD", "Hbb"], init=init,
                           mode="finetune" if init else "scratch",
                           backbone_config={} if init else BACKBONES_TINY[name],
                           head="class_attention", head_config=HEAD_TINY)
    tagger = config.build()
    assert type(tagger.backbone).__name__ == cls and tagger.backbone.name == name
    inputs = tagger.prepare(prong_jets(3, 2, "Hbb"))[0]
    assert (inputs.tokens is not None) == (name == "omnijet")
    probs = tagger.predict_proba(inputs)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1.0)


def test_token_backbone_tagger_ignores_padded_tokens(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok.safetensors")
    backbone = load_backbone(tiny_backbone(tmp_path / "gpt.safetensors", tokenizer))
    tagger = Tagger(backbone, ["QCD", "Tbqq"], "class_attention", HEAD_TINY).eval()
    inputs = tagger.prepare(prong_jets(4, 1, "QCD", n_min=2, n_max=5))[0]
    garbage = inputs.tokens.copy()
    garbage[~inputs.mask] = np.random.default_rng(0).integers(0, tokenizer.vocab_size,
                                                              (~inputs.mask).sum())
    with torch.no_grad():
        expected = tagger(inputs.to_torch())
        changed = tagger(type(inputs)(inputs.mask, tokens=garbage).to_torch())
    torch.testing.assert_close(changed, expected, rtol=1e-5, atol=1e-6)


def test_global_token_head_needs_a_global_token():
    with pytest.raises(ValueError, match="backbone 'part' has no global token"):
        build_tagger("part", ["QCD", "Tbqq"], PART_TINY, head="global_token")


# ----------------------------------------------------------------------------- faults found
def test_a_rerun_into_the_same_folder_resumes_only_the_same_run(tmp_path, capsys):
    """A rerun with the same configuration and jets resumes; another class order (or any other
    change) starts afresh, saying why, instead of relabelling the old run's outputs."""
    jets, val = two_class_jets(32, seed=6), two_class_jets(16, seed=7)
    short = {**FAST, "max_epochs": 1}
    first = TaggingConfig(backbone="part", backbone_config=PART_TINY, head_config=HEAD_TINY,
                          classes=["QCD", "Tbqq"], training=short)
    a = train_tagger(jets, val, first, tmp_path)
    capsys.readouterr()
    train_tagger(jets, val, first, tmp_path)
    assert "resuming from" in capsys.readouterr().out
    swapped = TaggingConfig(backbone="part", backbone_config=PART_TINY, head_config=HEAD_TINY,
                            classes=["Tbqq", "QCD"], training=short)
    b = train_tagger(jets, val, swapped, tmp_path)
    assert "holds an earlier tagger run (these differ: config, tagger, jets); starting afresh" in \
        capsys.readouterr().out
    assert load_tagger(tmp_path / "tagger.safetensors").classes == ("Tbqq", "QCD")
    # the new tagger was trained for its own class order: P(top) is column 0 now
    test = two_class_jets(32, seed=8)
    is_top = a.labels_of(test) == 1
    assert roc_auc_score(is_top, b.predict_proba(test)[:, 0]) > 0.5
    assert roc_auc_score(is_top, a.predict_proba(test)[:, 1]) > 0.5
    train_tagger(two_class_jets(32, seed=9), val, swapped, tmp_path)  # other jets
    assert "(these differ: jets); starting afresh" in capsys.readouterr().out


def test_bad_inputs_of_the_api_are_named(trained, tmp_path):
    tagger, _ = trained
    jets = prong_jets(4, 3, "Tbqq")
    px = ak.to_numpy(ak.flatten(jets.particles.px)).copy()
    px[1] = np.nan
    broken = JetBatch.from_p4(ak.unflatten(px, jets.n_particles), jets.particles.py,
                              jets.particles.pz, jets.particles.energy, label=jets.label)
    with pytest.raises(JetDataError, match=r"<memory>: 1 jet\(s\) with non-finite px "
                                           r"\(first: jet 0"):
        tagger.predict_proba(broken)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        tagger.predict_proba(jets, batch_size=0)
    config = TaggingConfig(backbone="part", backbone_config=PART_TINY, head_config=HEAD_TINY)
    with pytest.raises(ValueError, match="no validation jets"):
        train_tagger(jets, jets[:0], config, tmp_path / "x")
    with pytest.raises(ValueError, match=r"classes \['QCD'\] appear more than once"):
        TaggingConfig(classes=["QCD", "QCD", "Tbqq"])
    with pytest.raises(ValueError, match=r"particle features \['charg'\] are unknown"):
        FeatureSpec((InputFeature("charg"),))
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    with pytest.raises(ValueError, match=f"{text}: not a jetfm model file"):
        load_tagger(text)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda: CUDA is not available"):
            load_tagger(trained[1] / "tagger.safetensors", device="cuda")


def test_lgatr_takes_its_global_token_head_by_default():
    config = TaggingConfig(backbone="lgatr", backbone_config=BACKBONES_TINY["lgatr"])
    assert config.head == "global_token" and config.build().head_name == "global_token"
    with pytest.raises(ValueError, match="2 channel.*for 3 classes"):
        TaggingConfig(backbone="lgatr", classes=["QCD", "Tbqq", "Wqq"],
                      backbone_config={**BACKBONES_TINY["lgatr"], "out_s_channels": 0})


def test_token_backbone_refuses_jets_without_particles_in_its_cuts(tmp_path):
    tokenizer = tiny_tokenizer(tmp_path / "tok.safetensors")
    backbone = load_backbone(tiny_backbone(tmp_path / "gpt.safetensors", tokenizer))
    far = JetBatch.from_ptetaphi(ak.Array([[300.0, 300.0], [100.0, 50.0]]),
                                 ak.Array([[1.0, -1.0], [0.0, 0.01]]),
                                 ak.Array([[0.0, 0.0], [0.0, 0.01]]), 0.0)
    with pytest.raises(JetDataError, match=r"1 jet\(s\) keep no particle after the "
                                           r"tokenizer's cuts \(first: jet 0\)"):
        backbone.prepare(far)
