"""The command line: generate -> info -> plot -> evaluate on tiny generated samples; seeds,
cut validation, the OmniJet commands on tiny random models, exit codes and error logs."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import torch
import uproot
from cli_models import tiny_backbone, tiny_config, tiny_tokenizer, token_file
from io_jets import random_jets
from tagging_jets import two_class_jets

import jetfm
import jetfm.cli as cli
import jetfm.tasks.tagging as tagging
from jetfm.atomic import file_digest
from jetfm.bundle import from_file
from jetfm.cli import LOG_DIR_ENV, main
from jetfm.data.classes import class_index
from jetfm.data.generated import SEEDING
from jetfm.data.io import read_jets, write_jets
from jetfm.models.tagger import load_tagger
from jetfm.models.tokenizer import Tokenizer


def test_generate_info_plot(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["generate", "--process", "top", "qcd", "--n-jets", "25", "--out-dir",
                 str(out), "--seed", "3"]) == 0
    top, qcd = out / "top.root", out / "qcd.root"
    assert top.exists() and qcd.exists()
    record = json.loads((out / "top.cuts.json").read_text())
    assert record["config"]["process"] == "top" and record["config"]["n_jets"] == 25
    assert record["cuts"][0]["n_after"] == 25
    capsys.readouterr()

    assert main(["info", str(top)]) == 0
    printed = capsys.readouterr().out
    assert "Tbqq" in printed and "25" in printed and "jet_mass" in printed
    assert "truth match" in printed  # the generator's cut record is shown

    plots = tmp_path / "plots"
    assert main(["plot", str(top), str(qcd), "--out-dir", str(plots)]) == 0
    assert {p.name for p in plots.glob("*.png")} >= {"mass.png", "tau32.png", "tau21.png"}

    # evaluate: QCD against top is far from top; the table has floors and a report is written
    evaluation = tmp_path / "eval"
    assert main(["evaluate", str(top), "--generated", str(qcd), "--out-dir", str(evaluation),
                 "--n-bootstrap", "5"]) == 0
    table = capsys.readouterr().out
    assert "W1" in table and "mass" in table and "Floor" in table
    assert (evaluation / "report.md").exists() and (evaluation / "hist_mass.png").exists()
    rows = json.loads((evaluation / "metrics.table.json").read_text())
    w1_mass = next(r for r in rows["rows"] if r["metric"] == "W1" and r["observable"] == "mass")
    assert w1_mass["value"] > 40  # top (~174 GeV) vs QCD (~80 GeV) jet masses

    # a second generate with the same settings reuses the files
    before = top.stat().st_mtime_ns
    assert main(["generate", "--process", "top", "--n-jets", "25", "--out-dir", str(out),
                 "--seed", "3"]) == 0
    assert top.stat().st_mtime_ns == before


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.root")]) == 2
    assert "missing.root" in capsys.readouterr().err


# ---------------------------------------------------------------------------- generate
def test_generate_validates_cuts_after_overrides(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["generate", "--process", "top", "--pt-min", "1200", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("jetfm generate: error: pt_max (1000.0) must exceed pt_min (1200.0); raise "
                   "pt_max (--pt-max) together with pt_min")
    assert not out.exists()  # refused before anything was made
    assert main(["generate", "--process", "top", "--pt-min", "1200", "--pt-max", "2000",
                 "--n-jets", "3", "--out-dir", str(out)]) == 0
    jets = read_jets([str(out / "top.root")])
    assert len(jets) == 3 and np.all((jets.jet_pt > 1200) & (jets.jet_pt < 2000))


def test_process_seed_does_not_depend_on_its_position(tmp_path):
    def top_jets(name, *argv):
        out = tmp_path / name
        assert main(["generate", "--n-jets", "4", "--out-dir", str(out), *argv]) == 0
        return read_jets([str(out / "top.root")])

    alone = top_jets("alone", "--process", "top")
    second = top_jets("second", "--process", "qcd", "top")
    other_seed = top_jets("seed2", "--process", "top", "--seed", "2")
    assert ak.array_equal(alone.particles, second.particles)  # was seed 1 vs seed 1001
    assert not np.array_equal(alone.jet_pt, other_seed.jet_pt)
    record = json.loads((tmp_path / "second" / "top.cuts.json").read_text())["config"]
    assert record["seed"] == 1 and record["seeding"] == SEEDING


# ---------------------------------------------------------------------------- OmniJet commands
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny random tokenizers A and B, a backbone trained (nominally) on A's tokens, token
    files of A (signal, background) and a tiny config."""
    d = tmp_path_factory.mktemp("models")
    tok_a = tiny_tokenizer(d / "a.safetensors", seed=0)
    tiny_tokenizer(d / "b.safetensors", seed=1)
    paths = {
        "tok_a": d / "a.safetensors", "tok_b": d / "b.safetensors",
        "backbone": tiny_backbone(d / "gpt.safetensors", tok_a),
        "signal": token_file(d / "sig.parquet", tok_a, 30, 1, seed=1),
        "background": token_file(d / "bkg.parquet", tok_a, 30, 0, seed=2),
        "config": tiny_config(d / "config.yaml"),
        "jets": d / "jets.parquet",
        "tagging_config": d / "tagging.yaml",
    }
    paths["tagging_config"].write_text(TAGGING_TINY)
    write_jets(two_class_jets(30), paths["jets"])
    return {k: str(v) for k, v in paths.items()}


TAGGING_TINY = """\
head_config: {n_heads: 2, n_blocks: 1}
training: {max_epochs: 1, batch_size: 16, progress: false}
seed: 5
"""


def _finetune(models, out, *extra):
    return ["finetune", models["jets"], "--config", models["tagging_config"],
            "--out-dir", str(out), *extra]


def test_finetune_without_seed_uses_the_config_seed_and_reports(models, tmp_path, capsys,
                                                                 monkeypatch):
    seeds = []
    real = tagging.train_tagger

    def recording(*args, **kwargs):
        seeds.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tagging, "train_tagger", recording)
    out = tmp_path / "ft"
    argv = _finetune(models, out, "--init", models["backbone"], "--n-train", "1000")
    assert main(argv) == 0  # was RuntimeError from manual_seed(None)
    assert seeds == [5]  # the config's seed
    printed = capsys.readouterr().out
    # 60 jets: 18 test, 42 left of which 8 validate -> 34 available for training
    assert "--n-train 1000: only 34 training jets available" in printed
    assert "using 34" in printed
    assert "backbone omnijet (finetune, from" in printed
    assert "tested on 18 jets" in printed and f"results in {out}/result.json" in printed
    assert (out / "tagging.table.json").exists() and (out / "roc.png").exists()
    result = json.loads((out / "result.json").read_text())
    assert result["classes"] == ["QCD", "Tbqq"] and result["n_test"] == 18
    tagger = load_tagger(out / "tagger.safetensors")
    assert tagger.backbone.name == "omnijet" and tagger.classes == ("QCD", "Tbqq")
    # the bundle: the same tagger (exactly its predictions), its card names the data
    assert f"model bundle -> {out / 'tagger'}" in printed
    bundled = jetfm.load(out / "tagger")
    jets = read_jets([models["jets"]])
    assert np.array_equal(bundled.predict_proba(jets), tagger.predict_proba(jets))
    card = (out / "tagger" / "README.md").read_text()
    assert f"**{models['jets']}**: {file_digest(models['jets'])}" in card
    recorded = json.loads((out / "tagger" / "config.json").read_text())["card"]
    evaluation = {row["metric"]: row["value"] for row in recorded["evaluation"]}
    assert len(evaluation) == len(recorded["evaluation"])  # each metric once
    assert evaluation["accuracy"] == result["accuracy"] and evaluation["auc"] == result["auc"]
    assert recorded["data"]["jets"] == {"training": 34, "validation": 8, "test": 18}
    assert recorded["training"]["seed"] == 5 and recorded["training"]["init"] == \
        models["backbone"]


def test_pretrain_writes_the_omnijet_bundle(models, tmp_path, capsys):
    """pretrain -> OUT/model: tokenizer + GPT + head of the run's files in one bundle, with
    the same tokens and exactly the same next-token logits; its card names the inputs."""
    out = tmp_path / "pre"
    assert main(["pretrain", models["signal"], "--tokenizer", models["tok_a"], "--config",
                 models["config"], "--out-dir", str(out)]) == 0
    assert f"model bundle -> {out / 'model'}" in capsys.readouterr().out
    loaded = jetfm.load(out / "model")
    reference = from_file(out / "backbone.safetensors", tokenizer=models["tok_a"])
    jets = random_jets(8, seed=3, n_max=15)
    inputs = loaded.tokenize(jets)
    assert np.array_equal(inputs.tokens, reference.tokenize(jets).tokens)
    with torch.no_grad():
        assert torch.equal(loaded(inputs.to_torch("cpu")), reference(inputs.to_torch("cpu")))
    card = (out / "model" / "README.md").read_text()
    assert f"**{models['signal']}**: {file_digest(models['signal'])}" in card
    assert models["tok_a"] in card and loaded.tokenizer.fingerprint in card
    # a folder in the bundle's place that is not a bundle: refused before any training
    blocked = tmp_path / "blocked"
    (blocked / "model").mkdir(parents=True)
    (blocked / "model" / "notes.txt").write_text("mine")
    assert main(["pretrain", models["signal"], "--tokenizer", models["tok_a"], "--config",
                 models["config"], "--out-dir", str(blocked)]) == 2
    assert "model exists and is not a jetfm model bundle" in capsys.readouterr().err
    assert not (blocked / "backbone.safetensors").exists()


def test_finetune_mode_needs_a_backbone(models, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(_finetune(models, out, "--mode", "frozen")) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("jetfm finetune: error: --mode frozen starts from a saved backbone: pass "
                   "--init FILE (a backbone, tagger or pre-trained OmniJet file), or use "
                   "--mode scratch")
    assert not out.exists()


def test_finetune_classes_must_match_the_labels(models, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = _finetune(models, out, "--backbone", "part", "--classes", "QCD", "Wqq")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"jetfm finetune: error: {models['jets']}: jets of classes ")
    assert "{'QCD': 30, 'Tbqq': 30} do not match the class list ['QCD', 'Wqq']" in err
    assert not out.exists()


def test_backbone_of_another_tokenizer_is_refused(models, tmp_path, capsys):
    tok_b = Tokenizer.load(models["tok_b"])
    tok_a = Tokenizer.load(models["tok_a"])
    argv = ["sample", "--model", models["backbone"], "--tokenizer", models["tok_b"],
            "--n-jets", "4", "--out", str(tmp_path / "gen.parquet")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jetfm sample: error: ") and "\n" not in err
    assert str(models["backbone"]) in err
    assert tok_a.fingerprint in err and tok_b.fingerprint in err  # the one shared check
    assert not list(tmp_path.iterdir())


def test_sample_to_root_needs_and_keeps_a_label(models, tmp_path, capsys):
    out = tmp_path / "gen.root"
    base = ["sample", "--model", models["backbone"], "--tokenizer", models["tok_a"],
            "--n-jets", "12", "--out", str(out)]
    assert main(base) == 2
    assert "JetClass ROOT files need a class for every jet; pass --label CLASS" in \
        capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # was a 1.6 kB partial file
    assert main([*base, "--label", "Wqq"]) == 0
    jets = read_jets([str(out)])
    assert len(jets) > 0 and np.all(jets.label == class_index("Wqq"))


def test_a_failed_write_leaves_no_file_and_logs_the_traceback(models, tmp_path, capsys,
                                                              monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(uproot.writing.writable.WritableDirectory, "mktree", broken)
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    out = tmp_path / "out" / "gen.root"
    assert main(["sample", "--model", models["backbone"], "--tokenizer", models["tok_a"],
                 "--n-jets", "4", "--out", str(out), "--label", "Tbqq"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("jetfm sample: unexpected RuntimeError: disk on fire (traceback in ")
    (log,) = (tmp_path / "logs").iterdir()
    assert err.endswith(f"{log})") and "\n" not in err
    text = log.read_text()
    assert "Traceback" in text and "disk on fire" in text and "mktree" in text
    assert not list(out.parent.iterdir())  # neither the file nor its temporary copy


def test_unexpected_errors_exit_1_with_a_log_and_bad_input_exits_2(tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))

    def crash(paths, skip_invalid):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "print_info", crash)
    assert main(["info", "x.root"]) == 1
    err = capsys.readouterr().err.strip()
    (log,) = (tmp_path / "logs").iterdir()
    assert err == f"jetfm info: unexpected ZeroDivisionError: division by zero (traceback in {log})"
    assert log.name.startswith("jetfm-info-") and "crash" in log.read_text()
    monkeypatch.undo()
    assert main(["info", str(tmp_path / "x.root")]) == 2  # expected: one line, no log
    missing = tmp_path / "x.root"
    assert capsys.readouterr().err.strip() == f"jetfm info: error: {missing}: no such file"
    assert main(["sample", "--model", "m", "--tokenizer", "t", "--out", "x.root",
                 "--n-jets", "0"]) == 2
    assert capsys.readouterr().err == ("jetfm sample: error: argument --n-jets: '0' must be >= 1 "
                                       "(see jetfm sample --help)\n")
