"""Model bundles (jetfm.bundle): exact save -> load round trips for every model kind, the
OmniJet pipeline's two files as one bundle, clear errors for bad bundles, atomic writes, and
loading without unpickling."""

from __future__ import annotations

import functools
import json
import pickle
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from cli_models import tiny_backbone, tiny_tokenizer
from io_jets import random_jets
from tagging_jets import prong_jets

import jetfm
import jetfm.models.lgatr  # noqa: F401  (the lgatr package torch.loads its own basis at import)
from jetfm import bundle
from jetfm.atomic import file_digest
from jetfm.data import JetBatch
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.codebook import CodebookConfig, FeatureCodebook
from jetfm.models.features import KIN_FEATURES
from jetfm.models.gpt import GPTConfig, NextTokenHead
from jetfm.models.jet_evolution import EvolutionConfig, JetEvolution, JetEvolutionModel
from jetfm.models.omnijet import load_generative, omnijet_backbone, sample_jets
from jetfm.models.pet_generator import PETGenerator, PETGeneratorConfig
from jetfm.models.tagger import Tagger, build_tagger
from jetfm.models.thesis_evolution import ThesisConfig, ThesisEvolutionModel, ThesisEvolutionNet
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.physics.trees import NODE_ARRAYS, JetTrees, build_trees

BACKBONES = {
    "part": {"embed_dims": [16, 16], "pair_embed_dims": [8], "num_heads": 2, "num_layers": 1},
    "pet": {"dim": 16, "num_layers": 1, "num_heads": 2, "k": 4, "num_tokens": 1},
    "lgatr": {"num_blocks": 1, "hidden_mv_channels": 4, "hidden_s_channels": 8,
              "num_heads": 2, "out_mv_channels": 2, "out_s_channels": 2},
    "jetgpt": {"dim": 16, "n_blocks": 1, "n_heads": 2},
}
HEADS = {"class_attention": {"n_heads": 2, "n_blocks": 1}, "pooled_mlp": {"hidden": 8},
         "summation": {"hidden": 8}, "global_token": {}}
GPT_SIZE = {"dim": 16, "n_blocks": 1, "n_heads": 2}
TAGGERS = [(b, h) for b in [*BACKBONES, "omnijet"] for h in HEADS
           if h != "global_token" or b in ("pet", "lgatr")]


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Every test runs with pickle and torch.load disabled: bundles load without them (the
    backbone modules, whose libraries read package data at import, are imported above)."""
    def refuse(*args, **kwargs):
        raise AssertionError("a bundle was unpickled")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)


@functools.cache
def jets() -> JetBatch:
    """Fixed jets (built once; read only)."""
    return JetBatch.concatenate([prong_jets(6, 1, "QCD", seed=1),
                                 prong_jets(6, 3, "Tbqq", seed=2)])


def vqvae_tokenizer(seed: int = 0) -> Tokenizer:
    torch.manual_seed(seed)
    config = VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=16)
    return Tokenizer(VQVAE(config), omnijet_preprocessing(n_max=12))


def codebook_tokenizer(seed: int = 0) -> Tokenizer:
    preprocessing = omnijet_preprocessing(n_max=12)
    book = FeatureCodebook(CodebookConfig(codebook_size=16,
                                          n_features=len(preprocessing.features)))
    book.codebook.copy_(torch.randn(book.codebook.shape, generator=torch.Generator()
                                    .manual_seed(seed)))
    return Tokenizer(book, preprocessing)


def omnijet(code_features: int = 0) -> bundle.OmniJetGenerator:
    """A random generative OmniJet model; with code features on a codebook tokenizer (the
    GPT's code-coordinate buffers are then part of the weights)."""
    tokenizer = codebook_tokenizer() if code_features else vqvae_tokenizer()
    torch.manual_seed(1)
    backbone = omnijet_backbone(tokenizer, {**GPT_SIZE, "code_features": code_features})
    return bundle.OmniJetGenerator(backbone, NextTokenHead.for_backbone(backbone.gpt)).eval()


def tagger(backbone: str, head: str) -> Tagger:
    torch.manual_seed(0)
    if backbone == "omnijet":
        body = omnijet().backbone
        return Tagger(body, ["QCD", "Tbqq"], head, HEADS[head]).eval()
    return build_tagger(backbone, ["QCD", "Tbqq"], BACKBONES[backbone],
                        features=list(KIN_FEATURES.particle), head=head,
                        head_config=HEADS[head]).eval()


def assert_same_jets(a: JetBatch, b: JetBatch) -> None:
    assert ak.to_list(a.particles) == ak.to_list(b.particles)
    assert np.array_equal(a.label, b.label)


def assert_same_trees(a: JetTrees, b: JetTrees) -> None:
    for key in NODE_ARRAYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def assert_eval(model) -> None:
    modules = [model] if isinstance(model, torch.nn.Module) else [
        m for m in vars(model).values() if isinstance(m, torch.nn.Module)]
    assert modules and all(not m.training for top in modules for m in top.modules())


@functools.cache
def roots(n: int = 6) -> np.ndarray:
    trees = build_trees(random_jets(n, seed=3, n_min=2, n_max=10))
    return trees.p4[trees.to_global(trees.root, np.arange(n))]


@torch.no_grad()
def outputs(model) -> list:
    """What the model computes on fixed inputs (seeded where it samples), on the model's
    device; tensors come back on the CPU."""
    if isinstance(model, Tagger):
        device = next(model.parameters()).device
        inputs = model.prepare(jets())[0].to_torch(device)
        return [model(inputs).cpu(), model.predict_proba(jets())]
    if isinstance(model, bundle.OmniJetGenerator):
        device = next(model.parameters()).device
        inputs = model.tokenize(jets())
        generated, _ = model.generate(5, seed=4, batch_size=3)
        return [inputs.tokens, model(inputs.to_torch(device)).cpu(), generated]
    if isinstance(model, Tokenizer):
        codes, mask, _ = model.encode(jets())
        return [codes, mask, model.decode(codes, mask), model.fingerprint]
    if isinstance(model, PETGenerator):
        return [model.generate(4, "Tbqq", steps=2, seed=3, batch_size=3)]
    if isinstance(model, JetEvolutionModel | ThesisEvolutionModel):
        return [model.generate(roots(), seed=5)]
    embeddings, mask = model(model.prepare(jets())[0].to_torch())
    return [embeddings, mask]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y)
        elif isinstance(x, np.ndarray):
            assert np.array_equal(x, y)
        elif isinstance(x, JetBatch):
            assert_same_jets(x, y)
        elif isinstance(x, JetTrees):
            assert_same_trees(x, y)
        else:
            assert x == y


def pet_generator() -> PETGenerator:
    torch.manual_seed(2)
    return PETGenerator.from_jets(jets(), ["QCD", "Tbqq"], PETGeneratorConfig(
        body={"dim": 16, "num_layers": 1, "num_heads": 2, "k": 4}, head_blocks=1, n_max=16,
        jet_hidden=16)).eval()


def jet_evolution() -> JetEvolutionModel:
    torch.manual_seed(3)
    return JetEvolutionModel(JetEvolution(EvolutionConfig(dim=16, n_blocks=1, n_heads=2,
                                                          n_components=2)))


def thesis_evolution() -> ThesisEvolutionModel:
    torch.manual_seed(4)
    config = ThesisConfig(vqvae={"dim": 16, "n_blocks": 1, "n_heads": 2, "codebook_size": 16},
                          gpt={"dim": 16, "n_blocks": 1, "n_heads": 2}, max_leaves=10,
                          max_depth=5)
    return ThesisEvolutionModel(VQVAE(VQVAEConfig(**config.vqvae)),
                                ThesisEvolutionNet(GPTConfig(**config.gpt)), config)


MODELS = {
    **{f"backbone_{name}": lambda name=name: tagger(name, "pooled_mlp").backbone
       for name in [*BACKBONES, "omnijet"]},
    "omnijet": omnijet, "omnijet_code_features": lambda: omnijet(code_features=4),
    "tokenizer_vqvae": vqvae_tokenizer, "tokenizer_codebook": codebook_tokenizer,
    "pet_generator": pet_generator, "jet_evolution": jet_evolution,
    "thesis_evolution": thesis_evolution,
}
"""One model of every kind jetfm bundles (taggers separately, per backbone and head)."""


def edit_config(path: Path, change) -> None:
    config = json.loads((path / "config.json").read_text())
    change(config)
    (path / "config.json").write_text(json.dumps(config))


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize(("backbone", "head"), TAGGERS)
def test_tagger_round_trip_is_exact(tmp_path, backbone, head):
    """Every backbone with every head it takes: the loaded tagger (eval mode) gives the same
    logits and probabilities, bit for bit; the tokenizer of an omnijet tagger comes back with
    it (its own files)."""
    model = tagger(backbone, head)
    path = jetfm.save(model, tmp_path / "tagger")
    files = {p.name for p in path.iterdir()}
    expected = {"config.json", "model.safetensors", "README.md"}
    expected |= ({"tokenizer.json", "tokenizer.safetensors"} if backbone == "omnijet"
                 else {"features.json"})
    assert files == expected
    loaded = jetfm.load(path)
    assert isinstance(loaded, Tagger) and loaded.classes == model.classes
    assert loaded.head_name == head and loaded.backbone.name == backbone
    assert_eval(loaded)
    assert_same(outputs(loaded), outputs(model))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_kind_round_trips_exactly(tmp_path, name):
    """Backbones alone, the OmniJet generator (with and without code coordinates), both
    tokenizer kinds, the PET generator and both jet-evolution models: same outputs after
    save -> load (sampling at the same seed gives the same jets and trees)."""
    model = MODELS[name]()
    path = jetfm.save(model, tmp_path / name)
    loaded = jetfm.load(path, device="cpu")
    assert type(loaded) is type(model)
    assert_eval(loaded)
    assert_same(outputs(loaded), outputs(model))
    # a second save of the loaded model writes the same weights
    again = jetfm.save(loaded, tmp_path / f"{name}_again")
    config = json.loads((path / "config.json").read_text())
    assert json.loads((again / "config.json").read_text()) == config
    assert config["jetfm_version"] == jetfm.__version__
    assert config["format_version"] == bundle.FORMAT_VERSION


def test_omnijet_pipeline_files_become_one_bundle(tmp_path):
    """The pipeline's tokenizer file + generative backbone file -> one bundle that tokenizes
    and generates exactly as the pair does; the pair is checked by fingerprint, and a
    backbone with another tokenizer is refused (from the files and inside a bundle)."""
    tokenizer = tiny_tokenizer(tmp_path / "tokenizer.safetensors")
    tiny_backbone(tmp_path / "backbone.safetensors", tokenizer)
    model = bundle.from_file(tmp_path / "backbone.safetensors",
                             tokenizer=tmp_path / "tokenizer.safetensors")
    assert isinstance(model, bundle.OmniJetGenerator)
    path = model.save(tmp_path / "omnijet")
    loaded = jetfm.load(path)
    assert loaded.tokenizer.fingerprint == tokenizer.fingerprint
    # tokenization: the original tokenizer's codes, as [start, codes + 1, stop] sequences
    codes, mask, _ = tokenizer.encode(jets())
    expected_tokens, _ = tokenizer.to_sequences(codes, mask)
    assert np.array_equal(loaded.tokenize(jets()).tokens, expected_tokens)
    # generation: what the original pair samples at the same seed
    backbone, head = load_generative(tmp_path / "backbone.safetensors", tokenizer)
    expected, _ = sample_jets(backbone, head, 6, seed=7, batch_size=4, device="cpu")
    generated, stats = loaded.generate(6, seed=7, batch_size=4)
    assert stats["device"] == "cpu"
    assert_same_jets(generated, expected)

    other = tiny_tokenizer(tmp_path / "other.safetensors", seed=9)
    assert other.fingerprint != tokenizer.fingerprint
    with pytest.raises(ValueError, match=f"made with tokenizer {tokenizer.fingerprint}, but "
                       f"the tokenizer in use is {other.fingerprint}"):
        bundle.from_file(tmp_path / "backbone.safetensors",
                         tokenizer=tmp_path / "other.safetensors")
    # the other tokenizer's files swapped into the bundle (digest updated): refused
    other_bundle = jetfm.save(other, tmp_path / "other_bundle")
    for name in ("tokenizer.json", "tokenizer.safetensors"):
        shutil.copy(other_bundle / name, path / name)
    edit_config(path, lambda c: c["files"].update(
        {"tokenizer.safetensors": file_digest(path / "tokenizer.safetensors")}))
    with pytest.raises(ValueError, match=rf"config\.json was made with tokenizer "
                       rf"{tokenizer.fingerprint}, but the tokenizer in use is "
                       rf"{other.fingerprint}.*tokenizer\.json"):
        jetfm.load(path)


def test_single_files_of_every_kind_convert(tmp_path):
    """from_file reads each single-file format the studies write; its bundle loads to the
    same model."""
    model = tagger("part", "class_attention")
    model.save(tmp_path / "tagger.safetensors")
    converted = bundle.from_file(tmp_path / "tagger.safetensors")
    assert_same(outputs(jetfm.load(jetfm.save(converted, tmp_path / "t"))), outputs(model))
    evolution = jet_evolution()
    evolution.save(tmp_path / "evolution.safetensors")
    converted = bundle.from_file(tmp_path / "evolution.safetensors")
    assert_same(outputs(converted), outputs(evolution))
    with pytest.raises(ValueError, match=r"is a file, not a model bundle"):
        jetfm.load(tmp_path / "tagger.safetensors")


def test_model_card_records_provenance_budget_and_evaluation(tmp_path):
    card = {"title": "Top tagger (test)",
            "data": {"generator": "pythia8", "settings": {"process": "ttbar", "pt_min": 500},
                     "files": [Path("/data/top.h5")]},
            "training": {"epochs": np.int64(3), "batch_size": 32, "seconds": 12.5},
            "evaluation": [{"metric": "AUC", "value": 0.9812}, {"metric": "rejection@30%",
                                                                 "value": float("nan")}]}
    path = jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "tagger", card=card)
    readme = (path / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: jetfm\n")
    for text in ("# Top tagger (test)", "**generator**: pythia8", "**pt_min**: 500",
                 "/data/top.h5", "**epochs**: 3", "| AUC | 0.9812 |", "| rejection@30% | — |",
                 "part backbone + pooled_mlp head", file_digest(path / "model.safetensors")):
        assert text in readme, text
    # NaN is written as null (standard JSON), never as NaN
    config = json.loads((path / "config.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} in config.json"))
    assert config["card"]["evaluation"][1]["value"] is None
    assert config["card"]["training"]["epochs"] == 3
    assert "Not recorded" in (jetfm.save(vqvae_tokenizer(), tmp_path / "t")
                              / "README.md").read_text()
    with pytest.raises(ValueError, match=r"card: unknown keys \['dataset'\]"):
        jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "x", card={"dataset": "top"})
    with pytest.raises(ValueError, match=r"card\.training\.optimiser: object"):
        jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "x",
                   card={"training": {"optimiser": object()}})
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------ bad bundles
@pytest.fixture()
def omnijet_tagger_bundle(tmp_path) -> Path:
    return jetfm.save(tagger("omnijet", "summation"), tmp_path / "omnijet_tagger")


@pytest.fixture()
def part_tagger_bundle(tmp_path) -> Path:
    return jetfm.save(tagger("part", "class_attention"), tmp_path / "part_tagger")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json",
                                  "tokenizer.safetensors"])
def test_missing_file_is_named(omnijet_tagger_bundle, name):
    (omnijet_tagger_bundle / name).unlink()
    with pytest.raises(FileNotFoundError, match=rf"the bundle has no {name}"):
        jetfm.load(omnijet_tagger_bundle)


def test_missing_bundle_and_features_are_named(part_tagger_bundle, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model bundle .*nowhere"):
        jetfm.load(tmp_path / "nowhere")
    (part_tagger_bundle / "README.md").unlink()  # documentation only: still loads
    jetfm.load(part_tagger_bundle)
    (part_tagger_bundle / "features.json").unlink()
    with pytest.raises(FileNotFoundError, match="the bundle has no features.json"):
        jetfm.load(part_tagger_bundle)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.safetensors"])
def test_corrupted_weights_are_named(omnijet_tagger_bundle, name):
    """One flipped byte: the recorded SHA-256 catches it, naming the file and the key."""
    path = omnijet_tagger_bundle / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{name}: SHA-256 .* recorded in .*config\.json: "
                       rf"files\.{name}: the file is corrupted"):
        jetfm.load(omnijet_tagger_bundle)


def test_truncated_weights_are_not_safetensors(part_tagger_bundle):
    """A truncated file whose digest was recorded anyway: safetensors' own check, named."""
    path = part_tagger_bundle / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    edit_config(part_tagger_bundle,
                lambda c: c["files"].update({"model.safetensors": file_digest(path)}))
    with pytest.raises(ValueError, match=r"model\.safetensors: not a jetfm model file"):
        jetfm.load(part_tagger_bundle)


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.update(jetfm_version="99.0.0"),
     r"config\.json: jetfm_version 99\.0\.0 is newer than this jetfm"),
    (lambda c: c.update(format_version=2), r"config\.json: format_version 2 is newer"),
    (lambda c: c.update(jetfm_version="new"), r"config\.json: jetfm_version: 'new' is not"),
    (lambda c: c.update(kind="transformer"),
     r"config\.json: kind: unknown model kind 'transformer'; valid: \["),
    (lambda c: c["model"].update(backbone="resnet"),
     r"config\.json: model\.backbone: unknown backbone 'resnet'"),
    (lambda c: c["model"].update(head="attention"),
     r"config\.json: model\.head: unknown head 'attention'"),
    (lambda c: c.update(comment="x"), r"config\.json: unknown keys \['comment'\]"),
    (lambda c: c.pop("files"), r"config\.json: missing keys \['files'\]"),
    (lambda c: c["model"].update(dropout=0.1), r"config\.json: model: unknown keys \['dropout'\]"),
    (lambda c: c["model"].pop("classes"), r"config\.json: model: missing keys \['classes'\]"),
    (lambda c: c["model"]["backbone_config"].update(width=3),
     r"config\.json: model\.backbone_config.*unknown keys \['width'\]"),
    (lambda c: c["model"]["head_config"].update(depth=3),
     r"config\.json: model\.head_config: unknown keys \['depth'\]; valid: \['ffn_ratio'"),
    (lambda c: c["model"]["backbone_config"].update(num_heads=3),
     r"config\.json: model\.backbone_config \(backbone 'part'\): .*not divisible by num_heads"),
    (lambda c: c["model"].update(classes=["QCD", "Top"]), r"unknown classes \['Top'\]"),
    (lambda c: c["files"].update({"extra.safetensors": "0"}),
     r"config\.json: files: unknown keys \['extra\.safetensors'\]"),
    (lambda c: c.update(card={"author": "me"}), r"card: unknown keys \['author'\]"),
])
def test_bad_config_is_named(part_tagger_bundle, change, message):
    edit_config(part_tagger_bundle, change)
    with pytest.raises(ValueError, match=message):
        jetfm.load(part_tagger_bundle)


@pytest.mark.parametrize(("name", "change", "message"), [
    ("features.json", lambda d: d.update(scale=2), r"features\.json: unknown keys \['scale'\]"),
    ("tokenizer.json", lambda d: d["preprocessing"].update(frame="jet"),
     r"tokenizer\.json: preprocessing: unknown keys \['frame'\]"),
    ("tokenizer.json", lambda d: d["vqvae"].update(layers=2),
     r"tokenizer\.json: vqvae: unknown keys \['layers'\]"),
    ("tokenizer.json", lambda d: d["preprocessing"]["features"][0].update(shift="a"),
     r"tokenizer\.json: preprocessing"),
])
def test_bad_side_files_are_named(part_tagger_bundle, omnijet_tagger_bundle, name, change,
                                  message):
    path = (part_tagger_bundle if name == "features.json" else omnijet_tagger_bundle)
    data = json.loads((path / name).read_text())
    change(data)
    (path / name).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        jetfm.load(path)
    (path / name).write_text("{not json")
    with pytest.raises(ValueError, match=rf"{name}: not valid JSON \(.*line 1"):
        jetfm.load(path)


def test_weights_that_do_not_fit_the_config_are_named(part_tagger_bundle, tmp_path):
    other = jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "other")
    shutil.copy(other / "model.safetensors", part_tagger_bundle / "model.safetensors")
    edit_config(part_tagger_bundle, lambda c: c["files"].update(
        {"model.safetensors": file_digest(part_tagger_bundle / "model.safetensors")}))
    with pytest.raises(ValueError, match=r"model\.safetensors: the weights do not fit the "
                       r"model configured in config\.json: .*Missing key"):
        jetfm.load(part_tagger_bundle)


def test_devices(tmp_path, part_tagger_bundle):
    """A CPU-only kind refuses a GPU; a device the machine lacks is named; with CUDA, a
    bundle written from the GPU loads on the CPU (and back) with the same outputs."""
    evolution = jetfm.save(jet_evolution(), tmp_path / "evolution")
    with pytest.raises(ValueError, match=r"jet_evolution models run on the CPU only"):
        jetfm.load(evolution, device="cuda")
    with pytest.raises(ValueError, match="is not a device"):
        jetfm.load(part_tagger_bundle, device="gpu")
    assert not jetfm.load(part_tagger_bundle, device="auto").training
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            jetfm.load(part_tagger_bundle, device="cuda")
        pytest.skip("no CUDA device: the GPU -> CPU round trip is not run here")
    for backbone, head in [("part", "class_attention"), ("omnijet", "summation"),
                           ("lgatr", "global_token"), ("pet", "global_token")]:
        model = tagger(backbone, head)
        expected = outputs(model)
        path = jetfm.save(model.to("cuda"), tmp_path / f"gpu_{backbone}")
        loaded = jetfm.load(path, device="cpu")
        assert next(loaded.parameters()).device.type == "cpu"
        assert_same(outputs(loaded), expected)
        # on the GPU: the same weights; kernels may differ in the last bits between runs
        on_gpu, original = outputs(jetfm.load(path, device="cuda")), outputs(model)
        torch.testing.assert_close(on_gpu[0], original[0])
        np.testing.assert_allclose(on_gpu[1], original[1], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ atomic saves
@pytest.mark.parametrize("failing", ["model_card", "save_model"])
def test_failed_save_leaves_no_partial_directory(tmp_path, monkeypatch, failing):
    """A failure midway (after the weights, while writing the card; or while writing the
    tokenizer's weights) leaves nothing new: no bundle, no temporary directory, and an
    existing bundle at the target stays complete and loadable."""
    model = tagger("omnijet", "class_attention")
    expected = outputs(model)
    original = getattr(bundle, failing)
    calls = []

    def fail_midway(*args, **kwargs):
        calls.append(1)
        if failing == "save_model" and len(calls) == 1:  # the model's weights go through
            return original(*args, **kwargs)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(bundle, failing, fail_midway)
    with pytest.raises(OSError, match="simulated"):
        jetfm.save(model, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(bundle, failing, original)
    previous = jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "kept")
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    monkeypatch.setattr(bundle, failing, fail_midway)
    calls.clear()
    with pytest.raises(OSError, match="simulated"):
        jetfm.save(model, previous)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    monkeypatch.setattr(bundle, failing, original)
    # a successful save replaces the old bundle completely
    jetfm.save(model, previous)
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert "features.json" not in {p.name for p in previous.iterdir()}
    assert_same(outputs(jetfm.load(previous)), expected)


def test_save_never_replaces_what_is_not_a_bundle(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.csv").write_text("a,b\n")
    with pytest.raises(FileExistsError, match="results exists and is not a jetfm bundle"):
        jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "results")
    assert (tmp_path / "results" / "table.csv").read_text() == "a,b\n"
    path = jetfm.save(tagger("part", "pooled_mlp"), tmp_path / "bundle")
    with pytest.raises(FileExistsError, match="bundle exists; not replaced"):
        jetfm.save(tagger("part", "pooled_mlp"), path, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "results"]
    with pytest.raises(TypeError, match="cannot bundle a Linear"):
        jetfm.save(torch.nn.Linear(2, 2), tmp_path / "linear")
