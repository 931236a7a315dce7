"""Resumable stages (issue 11, items 17, 8, 14): a stage is reused only when it was made from
the same configuration and inputs, else redone with a line naming the key; a backbone is
never used with another tokenizer's tokens; a tagger sees exactly D labelled jets."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from io_jets import random_jets

from jetfm.checkpoint import load_model
from jetfm.configs import presets_dir
from jetfm.data.classes import class_index
from jetfm.data.io import read_jets, write_jets
from jetfm.data.tokens import TokenDataset, read_tokens
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.data.trees_io import read_trees, write_trees
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.physics.trees import build_trees
from jetfm.studies import Stage, evolution, omnijet, transfer
from jetfm.studies.omnijet import OmniJetConfig, Splits

VQVAE_TINY = {"dim": 16, "n_blocks": 1, "n_heads": 2, "latent_dim": 2, "codebook_size": 16}
GPT_TINY = {"dim": 16, "n_blocks": 1, "n_heads": 2, "positional": True}
FAST = {"max_epochs": 1, "batch_size": 16, "progress": False, "accelerator": "cpu"}


# ----------------------------------------------------------------------------- the mechanism
def test_stage_reuses_only_what_was_made_from_the_same_config_and_inputs(tmp_path, capsys):
    out = tmp_path / "run"
    output = out / "thing" / "a.txt"

    def stage(config, inputs):
        return Stage(out, "thing", config, inputs, [output], output.parent)

    first = stage({"vqvae": {"codebook_size": 16}, "seed": 1}, {"data": "aaa"})
    assert not first.prepare()
    output.parent.mkdir(parents=True)
    output.write_text("made with 16 codes")
    first.finish()
    assert stage({"vqvae": {"codebook_size": 16}, "seed": 1}, {"data": "aaa"}).prepare()
    assert capsys.readouterr().out == ""

    changed = stage({"vqvae": {"codebook_size": 32}, "seed": 1}, {"data": "aaa"})
    assert changed.stale() == ["config vqvae.codebook_size: 16 -> 32"]
    assert not changed.prepare()
    assert "stage thing: redone (config vqvae.codebook_size: 16 -> 32)" in capsys.readouterr().out
    assert not output.exists()  # the stale output can no longer be read back

    output.parent.mkdir(parents=True)
    output.write_text("made with 16 codes")
    first.finish()
    assert stage({"vqvae": {"codebook_size": 16}, "seed": 1}, {"data": "bbb"}).stale() == [
        "input data: 'aaa' -> 'bbb'"]
    output.write_text("replaced by hand")
    assert first.stale() == ["output thing/a.txt changed since it was made"]
    first.record_path.unlink()  # outputs without a record: nothing says what made them
    assert first.stale() == ["no record of what it was made from"]

    user_file = tmp_path / "input.root"  # never deleted, even when listed as an output
    user_file.write_text("user data")
    assert not Stage(out, "given", {}, {}, [user_file]).prepare()
    assert user_file.exists()


# ----------------------------------------------------------------------------- OmniJet chain
def write_inputs(folder, n_top, n_qcd=60):
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("top", n_top, 1), ("qcd", n_qcd, 2)):
        write_jets(random_jets(n, seed=seed, n_min=3, n_max=20), folder / f"{name}.root")
    return {"top": str(folder / "top.root"), "qcd": str(folder / "qcd.root")}


def tiny_config(files, **changes):
    config = {
        "files": files, "seed": 3, "n_max": 16, "tokenizer_jets": 40,
        "pretrain_fraction": 0.5, "eval_fraction": 0.2, "vqvae": dict(VQVAE_TINY),
        "tokenizer_training": FAST, "gpt": GPT_TINY, "pretraining": FAST,
        "n_generate": 8, "sample_batch": 8, "tagging_sizes": [20],
        "tagging_training": {**FAST, "batch_size": 8}, "n_bootstrap": 2,
    }
    return OmniJetConfig(**{**config, **changes})


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One tiny OmniJet run on stored jet files; the taggers' training sets are recorded."""
    folder = tmp_path_factory.mktemp("omnijet")
    files = write_inputs(folder / "in", 90)
    calls = []
    original = omnijet.train_tagger

    def recording(train, val, config, *args, **kwargs):
        calls.append({"mode": config.mode, "train": train, "val": val})
        return original(train, val, config, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(omnijet, "train_tagger", recording)
        summary = omnijet.run(tiny_config(files), folder / "run")
    return folder, files, summary, calls


def test_taggers_see_exactly_d_labelled_jets(chain):
    _, _, summary, calls = chain
    assert {(r["D"], r["mode"]) for r in summary["tagging"]} == {(20, "finetune"),
                                                                 (20, "scratch")}
    for row in summary["tagging"]:
        assert row["n_train"] + row["n_val"] == row["D"]
    assert len(calls) == 2
    top = class_index("Tbqq")
    for call in calls:
        n_train, n_val = len(call["train"]), len(call["val"])
        assert n_train + n_val == 20  # validation jets are counted in D
        assert n_val == 4  # 20 % of the 10 jets per class, per class
        assert (call["train"].label == top).sum() == n_train // 2
        assert (call["val"].label == top).sum() == n_val // 2
    # the fine-tuned and the from-scratch tagger see the same labelled jets
    for part in ("train", "val"):
        a, b = calls[0][part], calls[1][part]
        for field in ("label", "source", "entry"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    # the test jets are not among them
    assert summary["tagging"][0]["n_test"] == summary["tagging"][1]["n_test"] > 0


def test_tagging_sizes_must_split_into_train_and_validation():
    with pytest.raises(ValueError, match="D = 21 must be even"):
        OmniJetConfig(tagging_sizes=[21])
    with pytest.raises(ValueError, match="D = 2 must be even"):
        OmniJetConfig(tagging_sizes=[2])


def fingerprint_of(path):
    return load_model(path)[1]["tokenizer_fingerprint"]


def test_changed_config_or_jets_redo_the_stages_downstream(chain, tmp_path, capsys):
    folder, files, summary, _ = chain
    out = tmp_path / "run"
    shutil.copytree(folder / "run", out)
    backbone = out / "pretrain" / "backbone.safetensors"
    old_fingerprint = fingerprint_of(backbone)
    capsys.readouterr()

    # unchanged: everything reused, nothing said
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    again = omnijet.run(tiny_config(files), out)
    assert "redone" not in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    assert again["tagging"] == summary["tagging"]

    # another codebook size: the tokenizer and everything after it is redone
    vqvae = {**VQVAE_TINY, "codebook_size": 8}
    changed = omnijet.run(tiny_config(files, vqvae=vqvae), out)
    printed = capsys.readouterr().out
    assert "stage tokenizer: redone (config vqvae.codebook_size: 16 -> 8)" in printed
    for stage in ("tokens", "pretrain", "generated", "tagging/D20_finetune",
                  "tagging/D20_scratch"):
        assert f"stage {stage}: redone" in printed
    assert changed["tokenizer_resolution"]["codebook_size"] == 8
    tokenizer = Tokenizer.load(out / "tokenizer" / "tokenizer.safetensors")
    assert tokenizer.codebook_size == 8 and tokenizer.fingerprint != old_fingerprint
    assert fingerprint_of(backbone) == tokenizer.fingerprint
    read_tokens(out / "tokens" / "top.parquet", 16, tokenizer.fingerprint)  # checks it

    # fewer top jets in the input file: no IndexError, every stage on them redone
    write_inputs(tmp_path / "in", 70)
    smaller = {**files, "top": str(tmp_path / "in" / "top.root")}
    fewer = omnijet.run(tiny_config(smaller, vqvae=vqvae), out)
    printed = capsys.readouterr().out
    assert re.search(r"stage tokenizer: redone \(input data/top: '\w+' -> '\w+'\)", printed)
    assert "stage pretrain: redone" in printed
    top_tokens = read_tokens(out / "tokens" / "top.parquet", 16)
    assert len(top_tokens) == 70
    rows = {(r["metric"], r["observable"]): r for r in fewer["generation"]}
    generated = read_jets([str(out / "generated" / "generated.parquet")])
    assert rows[("W1", "mass")]["n_generated"] == len(generated)


def test_scan_uses_a_finished_runs_tokenizer_and_backbone(chain, tmp_path):
    """The preset omnijet_tagging_scan's workflow: new jets, the tokenizer and backbone of
    another run given by path (nothing copied, nothing retrained)."""
    folder = chain[0] / "run"
    config = OmniJetConfig(
        files=write_inputs(tmp_path / "in", 80, 80), seed=7, pretrain_fraction=0.0,
        eval_fraction=0.1, tokenizer=str(folder / "tokenizer" / "tokenizer.safetensors"),
        backbone=str(folder / "pretrain" / "backbone.safetensors"), n_generate=8,
        sample_batch=8, tagging_sizes=[20], tagging_training={**FAST, "batch_size": 8},
        n_bootstrap=2)
    summary = omnijet.run(config, tmp_path / "scan")
    assert not (tmp_path / "scan" / "tokenizer").exists()
    assert not (tmp_path / "scan" / "pretrain").exists()
    assert summary["tokenizer_resolution"] == json.loads(
        (folder / "tokenizer" / "resolution.json").read_text())
    assert [r["n_train"] + r["n_val"] for r in summary["tagging"]] == [20, 20]


# ----------------------------------------------------------------------------- fingerprints
def two_tokenizers():
    tokenizers = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        tokenizers.append(Tokenizer(VQVAE(VQVAEConfig(**VQVAE_TINY)),
                                    omnijet_preprocessing(16, 0.1)))
    assert tokenizers[0].fingerprint != tokenizers[1].fingerprint
    return tokenizers


def tokens_of(tokenizer, jets):
    codes, mask, _ = tokenizer.encode(jets)
    return TokenDataset(codes, mask, np.zeros(len(codes), dtype=np.int64),
                        {"fingerprint": tokenizer.fingerprint, "tokenizer": "test"})


def test_a_backbone_never_meets_another_tokenizers_tokens(tmp_path):
    tok_a, tok_b = two_tokenizers()
    jets = random_jets(40, seed=5, n_min=3, n_max=12)
    tokens_a, tokens_b = tokens_of(tok_a, jets), tokens_of(tok_b, jets)
    backbone = omnijet.fit_generative(tokens_a, tok_a, GPT_TINY, FAST, tmp_path / "a")
    both = rf"{tok_a.fingerprint}.*{tok_b.fingerprint}"

    def fails(call, *args, **kwargs):
        with pytest.raises(ValueError, match=both):
            call(*args, **kwargs)

    # generative fine-tuning, pre-training resume, tokens of another tokenizer
    fails(omnijet.fit_generative, tokens_b, tok_b, GPT_TINY, FAST, tmp_path / "b",
          init=backbone)
    fails(omnijet.fit_generative, tokens_b, tok_b, GPT_TINY, FAST, tmp_path / "b",
          resume=tmp_path / "a" / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError, match=rf"{tok_a.fingerprint}.*"):
        omnijet.fit_generative(tokens_a, tok_b, GPT_TINY, FAST, tmp_path / "b")
    # the OmniJet pipeline: a given backbone, and the tagger stage
    config = OmniJetConfig(tokenizer=str(tok_b.save(tmp_path / "tok_b.safetensors")),
                           backbone=str(backbone), seed=3, tagging_sizes=[20],
                           tagging_training={**FAST, "batch_size": 8})
    fails(omnijet.pretrain, tokens_b, np.arange(40), tok_b, config, tmp_path / "b")
    splits = Splits({}, np.array([], dtype=np.int64), {"top": np.arange(40),
                                                       "qcd": np.arange(40)})
    fails(omnijet.train_taggers, {"top": jets, "qcd": jets}, splits, tok_b, config,
          tmp_path / "b", backbone)
    # (a tagger, e.g. the transfer study's tagging cell, takes the tokenizer the backbone file
    # carries: there is no other tokenizer to mix up)
    assert not list((tmp_path / "b").rglob("*.safetensors"))  # nothing was trained


# ----------------------------------------------------------------------------- transfer cells
def test_transfer_cells_redo_what_an_overriding_config_changes(tmp_path, capsys):
    out = tmp_path / "run"
    config = transfer.load_config("tiny")
    cells = transfer.generation_cells(config)[:4]
    (out / "source" / "pretrain").mkdir(parents=True)
    (out / "source" / "pretrain" / "timing.json").write_text('{"seconds": 8, "steps": 8}')
    inputs = {"tokens/qcd": "t1"}

    def work(cell, cell_dir):
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "generated.parquet").write_text(str(cell))
        return {"done": True}

    def stages(config, inputs):
        return lambda cell: transfer.cell_stage(cell, config, out, inputs)

    assert transfer.print_estimate(config, cells, out, stages(config, inputs)) > 0
    assert transfer.run_cells(cells, work, out, "t", stages(config, inputs))["run"] == 4
    assert transfer.print_estimate(config, cells, out, stages(config, inputs)) == 0
    assert transfer.run_cells(cells, work, out, "t", stages(config, inputs))["skipped"] == 4

    override = tmp_path / "override.yaml"
    override.write_text("finetuning: {lr: 0.01}\n")
    changed = transfer.load_config("tiny", override)
    assert transfer.print_estimate(changed, cells, out, stages(changed, inputs)) > 0
    capsys.readouterr()
    counts = transfer.run_cells(cells, work, out, "t", stages(changed, inputs))
    n_finetune = sum(c.mode == "finetune" for c in cells)
    assert counts == {"run": n_finetune, "skipped": 4 - n_finetune, "failed": 0}
    assert "config finetuning.lr: 0.001 -> 0.01" in capsys.readouterr().out
    counts = transfer.run_cells(cells, work, out, "t", stages(changed, {"tokens/qcd": "t2"}))
    assert counts["run"] == 4  # new tokens: every cell redone


# ----------------------------------------------------------------------------- evolution
def test_evolution_redoes_generation_when_its_config_changes(tmp_path, capsys):
    for name, seed in (("top", 1), ("qcd", 2)):
        path = tmp_path / "trees" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_trees(build_trees(random_jets(30, seed=seed, n_min=3, n_max=10)), path)
    (tmp_path / "trees" / "notes.json").write_text('["stored test trees"]')
    settings = dict(model=dict(dim=16, n_blocks=1, n_heads=2, n_components=2),
                    training=dict(max_epochs=1, batch_size=8, progress=False),
                    nll_jets=3, nll_samples=10, n_generate=3, n_bootstrap=2,
                    evaluation_plots=False, example_trees=[0])
    config = evolution.EvolutionStudyConfig(**settings)
    evolution.trees_stage(config, tmp_path).finish()
    first = evolution.run(config, tmp_path)
    model_file = tmp_path / "evolution" / "evolution.safetensors"
    stamp = model_file.stat().st_mtime_ns
    capsys.readouterr()

    second = evolution.run(evolution.EvolutionStudyConfig(**{**settings, "n_generate": 2}),
                           tmp_path)
    printed = capsys.readouterr().out
    assert "stage generated/evolution_top: redone (config n_generate: 3 -> 2)" in printed
    assert "stage evolution: redone" not in printed
    assert model_file.stat().st_mtime_ns == stamp
    assert len(read_trees([str(tmp_path / "generated" / "evolution_top.parquet")])) == 2
    assert second["nll"] == first["nll"]
    assert second["generation"]["evolution_top"]["table"][0]["n_generated"] == 2
    assert json.loads((tmp_path / "generation.json").read_text()).keys() == {
        "evolution_top", "evolution_qcd"}


def test_omnijet_configs_count_validation_jets_in_d(tmp_path):
    configs = sorted(presets_dir().glob("omnijet_*.yaml"))
    assert len(configs) == 4
    for path in configs:
        config = OmniJetConfig.from_yaml(path)
        assert config.tagging_val_fraction == 0.2
        for size in config.tagging_sizes:
            n_train, n_val = omnijet.tagging_split(size, config.tagging_val_fraction)
            assert 2 * (n_train + n_val) == size and n_val == round(0.1 * size)
    scan = OmniJetConfig.from_yaml(configs[-1])
    assert scan.tokenizer is not None and scan.backbone is not None
    with pytest.raises(ValueError, match=r"so \['gpt'\] would not be used"):
        OmniJetConfig(tokenizer="t.safetensors", backbone="b.safetensors", gpt={"dim": 8})
    with pytest.raises(ValueError, match="give the tokenizer it was trained with"):
        OmniJetConfig(backbone="b.safetensors")
