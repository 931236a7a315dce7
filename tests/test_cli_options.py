"""Bad options and config values: one line on stderr naming the option (or the file, block and
key), exit 2, before any work is done; never an "unexpected" exit 1 from deep in torch."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import yaml
from cli_models import CONFIG_YAML, tiny_config, tiny_tokenizer, token_file

from jetfm import cli
from jetfm.checks import POSITIVE, Rule, number
from jetfm.cli import main
from jetfm.data.transforms import Preprocessing, omnijet_preprocessing
from jetfm.models.gpt import GPTConfig
from jetfm.models.vqvae import VQVAEConfig
from jetfm.studies import read_config
from jetfm.studies.omnijet import OmniJetConfig
from jetfm.tasks.training import TrainConfig

SAMPLE = ["sample", "--model", "m.safetensors", "--tokenizer", "t.safetensors",
          "--out", "x.parquet"]


def one_line_error(capsys, command: str) -> str:
    """The single stderr line of a failed command (nothing on stdout)."""
    out, err = capsys.readouterr()
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"jetfm {command}: error: ")
    return err.strip()


@pytest.mark.parametrize(("argv", "option", "problem"), [
    ([*SAMPLE, "--temperature", "nan"], "--temperature", "is not finite"),
    ([*SAMPLE, "--temperature", "inf"], "--temperature", "is not finite"),
    ([*SAMPLE, "--temperature", "0"], "--temperature", "must be > 0"),
    ([*SAMPLE, "--temperature", "-1"], "--temperature", "must be > 0"),
    ([*SAMPLE, "--top-k", "0"], "--top-k", "must be >= 1"),
    ([*SAMPLE, "--top-k", "-3"], "--top-k", "must be >= 1"),
    ([*SAMPLE, "--top-k", "2.5"], "--top-k", "is not an integer"),
    ([*SAMPLE, "--batch-size", "0"], "--batch-size", "must be >= 1"),
    ([*SAMPLE, "--n-jets", "-5"], "--n-jets", "must be >= 1"),
    ([*SAMPLE, "--device", "foo"], "--device", "is not a device"),
    (["evaluate", "r.root", "--generated", "g.root", "--n-bootstrap", "1"], "--n-bootstrap",
     "must be >= 2"),
    (["evaluate", "r.root", "--generated", "g.root", "--n-bootstrap", "-3"], "--n-bootstrap",
     "must be >= 2"),
    (["trees", "j.root", "--r", "0"], "--r", "must be > 0"),
    (["trees", "j.root", "--r", "-1"], "--r", "must be > 0"),
    (["trees", "j.root", "--out", "t.root"], "--out", "ending in .parquet"),
    (["tokenize", "j.root", "--tokenizer", "t", "--out", "t.root"], "--out",
     "ending in .parquet"),
    (["pretrain", "x.parquet", "--tokenizer", "t", "--lr", "-1"], "--lr", "must be > 0"),
    (["pretrain", "x.parquet", "--tokenizer", "t", "--max-epochs", "0"], "--max-epochs",
     "must be >= 1"),
    (["finetune", "j.root", "--test-fraction", "1"], "--test-fraction", "must be < 1"),
    (["generate", "--n-jets", "0"], "--n-jets", "must be >= 1"),
    (["finetune", "j.root", "--seed", "-5"], "--seed", "must be >= 0"),
    (["generate", "--seed", "1.5"], "--seed", "is not an integer"),
    (["finetune", "j.root", "--out-dir", "a_file"], "--out-dir", "a_file is a file"),
    (["benchmark", "tagging", "--out", "a_file"], "--out", "a_file is a file"),
    (["demo", "--out", "a_file"], "--out", "a_file is a file"),
    (["study", "amplitudes", "--out", ""], "--out", "an empty path"),
    (["finetune", "j.root", "--out-dir", " "], "--out-dir", "an empty path"),
])
def test_bad_option_is_a_one_line_usage_error(tmp_path, monkeypatch, capsys, argv, option,
                                              problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    assert main(argv) == 2
    command = " ".join(argv[:2]) if argv[0] in ("benchmark", "study") else argv[0]
    line = one_line_error(capsys, command)
    assert f"argument {option}: " in line and problem in line
    assert [p.name for p in tmp_path.iterdir()] == ["a_file"]  # refused before any work


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_device_without_cuda_is_a_clear_error(monkeypatch, capsys, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([*SAMPLE, "--device", device]) == 2
    assert f"argument --device: {device}: CUDA is not available" in one_line_error(capsys,
                                                                                   "sample")


def test_cuda_index_beyond_the_devices_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert cli.device_option("cuda:1") == "cuda:1"
    assert main([*SAMPLE, "--device", "cuda:2"]) == 2
    assert "2 CUDA device(s), cuda:0 to cuda:1" in one_line_error(capsys, "sample")


def test_good_options_are_converted():
    args = cli.build_parser().parse_args([*SAMPLE, "--temperature", "0.5", "--top-k", "7",
                                          "--device", "cpu"])
    assert (args.temperature, args.top_k, args.device) == (0.5, 7, "cpu")
    with pytest.raises(argparse.ArgumentTypeError, match="'-2' must be > 0"):
        cli.option(POSITIVE)("-2")


# ---------------------------------------------------------------------------- config values
def _config(tmp_path, **changes) -> str:
    """The tiny CLI config with top-level keys or blocks replaced."""
    data = yaml.safe_load(CONFIG_YAML)
    for key, value in changes.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


TOKENIZER_CASES = [
    ({"vqvae": {"dim": "sixteen"}}, "vqvae: dim: 'sixteen' is not an integer"),
    ({"vqvae": {"codebook_size": -32}}, "vqvae: codebook_size: -32 must be >= 1"),
    ({"vqvae": {"dim": 16, "n_heads": 3}}, "vqvae: dim: 16 must be a multiple of n_heads (3)"),
    ({"vqvae": {"beta": "nan"}}, "vqvae: beta: 'nan' is not finite"),
    ({"n_max": -4}, "n_max: -4 must be >= 1"),
    ({"pt_min": "abc"}, "pt_min: 'abc' is not a number"),
    ({"pt_min": 0}, "pt_min: 0 must be > 0"),
    ({"tokenizer_training": {"batch_size": 0}}, "tokenizer_training: batch_size: 0 must be >= 1"),
    ({"tokenizer_training": {"lr": -1}}, "tokenizer_training: lr: -1 must be > 0"),
    ({"tokenizer_training": {"max_steps": 0}},
     "tokenizer_training: max_steps: 0 must be >= 1 or -1"),
    ({"tokenizer_training": {"progress": "no"}},
     "tokenizer_training: progress: 'no' is not true or false"),
]


@pytest.mark.parametrize(("changes", "message"), TOKENIZER_CASES)
def test_bad_config_value_names_file_block_and_key(tmp_path, capsys, changes, message):
    """Checked before the jets are read (the jet file here does not even exist)."""
    config = _config(tmp_path, **changes)
    assert main(["tokenizer", str(tmp_path / "jets.root"), "--config", config,
                 "--out-dir", str(tmp_path / "out")]) == 2
    assert one_line_error(capsys, "tokenizer") == f"jetfm tokenizer: error: {config}: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("command", "changes", "message"), [
    ("pretrain", {"gpt": {"n_blocks": 0}}, "gpt: n_blocks: 0 must be >= 1"),
    ("pretrain", {"gpt": {"dropout": 1.5}}, "gpt: dropout: 1.5 must be < 1"),
    ("pretrain", {"pretraining": {"weight_decay": -0.1}},
     "pretraining: weight_decay: -0.1 must be >= 0"),
    ("omnijet", {"pretraining": {"batch_size": 0}}, "pretraining: batch_size: 0 must be >= 1"),
    ("omnijet", {"vqvae": {"n_heads": 0}}, "vqvae: n_heads: 0 must be >= 1"),
    ("demo", {"tagging_training": {"lr": "fast"}}, "tagging_training: lr: 'fast' is not a number"),
    ("omnijet", {"temperature": 0}, "temperature: 0 must be > 0"),
    ("omnijet", {"n_bootstrap": 1}, "n_bootstrap: 1 must be >= 2"),
])
def test_bad_block_of_every_omnijet_config_command(tmp_path, capsys, command, changes, message):
    """Checked when the config is read, before any jets are made or read."""
    config = _config(tmp_path, **changes)
    argv = {"pretrain": ["pretrain", "x.parquet", "--tokenizer", "t"],
            "omnijet": ["omnijet", "--out", str(tmp_path / "run")],
            "demo": ["demo", "--out", str(tmp_path / "run")]}[command]
    assert main([*argv, "--config", config]) == 2
    assert one_line_error(capsys, command) == f"jetfm {command}: error: {config}: {message}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("text", "where"), [
    ("seed: [1, 2\n", "line 2, column 1: malformed YAML: while parsing a flow sequence "
                      "started at line 1, column 7: expected ',' or ']'"),
    ("seed: 1\n  gpt: 2\n", "line 2, column 6: malformed YAML: mapping values are not "
                            "allowed here"),
    # PyYAML alone would keep the last value silently
    ("seed: 1\ngpt: {dim: 8, dim: 16}\n", "line 2, column 15: malformed YAML: key 'dim' is "
                                           "given twice in one mapping"),
    ("seed: 1\nseed: 2\n", "line 2, column 1: malformed YAML: key 'seed' is given twice"),
])
def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys, text, where):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{path}: {where}"):
        read_config(path, OmniJetConfig)
    assert main(["pretrain", "x.parquet", "--tokenizer", "t", "--config", str(path)]) == 2
    assert f"{path}: {where.split(':')[0]}" in one_line_error(capsys, "pretrain")


def test_config_dataclasses_reject_bad_values_naming_the_key():
    with pytest.raises(ValueError, match=r"^dim: 'sixteen' is not an integer$"):
        VQVAEConfig(dim="sixteen")
    with pytest.raises(ValueError, match=r"^codebook_size: -32 must be >= 1$"):
        VQVAEConfig(codebook_size=-32)
    with pytest.raises(ValueError, match=r"^vocab_size: 2 must be >= 3$"):
        GPTConfig(vocab_size=2)
    with pytest.raises(ValueError, match=r"^positional: 'yes' is not true or false$"):
        GPTConfig(positional="yes")
    with pytest.raises(ValueError, match=r"^n_max: -4 must be >= 1$"):
        Preprocessing(n_max=-4)
    with pytest.raises(ValueError, match=r"^pt_min: -0.1 must be > 0$"):
        omnijet_preprocessing(32, -0.1)
    with pytest.raises(ValueError, match=r"^pretraining: batch_size: 0 must be >= 1$"):
        TrainConfig.from_overrides({"batch_size": 0}, 1, "pretraining")
    # YAML's strings holding numbers are numbers; integral floats are integers
    assert VQVAEConfig(codebook_size="64", beta="1e-1").codebook_size == 64
    assert GPTConfig(dim=32.0, n_heads=4).dim == 32
    assert TrainConfig(max_steps=-1).max_steps == -1


@pytest.mark.parametrize(("value", "rule", "message"), [
    (True, Rule(int), "is not an integer"),
    (None, POSITIVE, "is not a number"),
    ("-inf", Rule(float), "is not finite"),
    (0.5, Rule(float, high=0.5, high_open=True), "must be < 0.5"),
])
def test_number_rejects(value, rule, message):
    with pytest.raises(ValueError, match=rf"^key: .*{message}"):
        number("key", value, rule)


def test_finetune_with_one_file_twice_is_refused(tmp_path, capsys):
    jets = tmp_path / "top.parquet"
    jets.write_bytes(b"")
    (tmp_path / "link.parquet").symlink_to(jets)
    assert main(["finetune", str(jets), str(tmp_path / "link.parquet")]) == 2
    line = one_line_error(capsys, "finetune")
    assert "are the same file" in line and str(jets) in line


@pytest.mark.parametrize(("changes", "message"), [
    ({"backbone_config": {"num_heads": "big"}}, "num_heads: 'big'"),
    ({"backbone_config": {"depth": 3}}, "(backbone 'part'): unknown keys ['depth']"),
    ({"training": {"patience": -1}}, "training: patience: -1 must be >= 0"),
    ({"head": "mlp"}, "head: unknown head 'mlp'"),
    ({"features": {"particle": ["log_pt", {"name": "eta_rel", "clip": [1, -1]}]}},
     "eta_rel: clip must be [low, high] with low < high"),
    ({"backbone": "transformer"}, "unknown backbone 'transformer'"),
])
def test_bad_tagging_config_is_refused_before_reading_jets(tmp_path, capsys, changes, message):
    """``jetfm finetune --config``: checked before the jets are read (the file here does not
    exist), one line naming the config file and the key."""
    config = tmp_path / "tagging.yaml"
    config.write_text(yaml.safe_dump({"seed": 1, **changes}))
    assert main(["finetune", "missing.root", "--config", str(config), "--out-dir",
                 str(tmp_path / "run")]) == 2
    line = one_line_error(capsys, "finetune")
    assert line.startswith(f"jetfm finetune: error: {config}: ") and message in line
    assert not (tmp_path / "run").exists()


def test_resume_from_a_finished_run_says_nothing_was_trained(tmp_path, capsys):
    tokenizer = tiny_tokenizer(tmp_path / "tok.safetensors")
    tokens = token_file(tmp_path / "t.parquet", tokenizer, 30, 1, seed=1)
    base = ["pretrain", str(tokens), "--tokenizer", str(tmp_path / "tok.safetensors"),
            "--config", str(tiny_config(tmp_path / "c.yaml"))]  # max_epochs 1
    assert main([*base, "--out-dir", str(tmp_path / "a")]) == 0
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert "nothing was trained" not in capsys.readouterr().out
    assert main([*base, "--out-dir", str(tmp_path / "b"), "--resume", str(last)]) == 0
    out = capsys.readouterr().out
    assert f"{last} has already run 1 epoch(s) and max_epochs is 1: nothing was trained" in out
    assert main([*base, "--out-dir", str(tmp_path / "c"), "--resume", str(last),
                 "--max-epochs", "2"]) == 0
    assert "nothing was trained" not in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((cli.DEMO_CONFIG.parent).glob("omnijet*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_omnijet_configs_pass_the_value_checks(path):
    assert cli._omnijet_config(path).seed is not None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_finetune_on_a_gpu_that_is_not_there_stops_before_reading_jets(tmp_path, capsys):
    assert main(["finetune", "missing.root", "--accelerator", "gpu", "--out-dir",
                 str(tmp_path / "run")]) == 2
    line = one_line_error(capsys, "finetune")
    assert "accelerator gpu: no CUDA device on this machine" in line
    assert not (tmp_path / "run").exists()


def test_tagging_split_balances_n_train_across_classes():
    from jetfm.cli import _tagging_split

    labels = np.repeat([0, 1, 2], [100, 40, 30])
    train, val, test = _tagging_split(labels, ["QCD", "Tbqq", "Wqq"], 0.2, 6, seed=1)
    assert np.bincount(labels[train], minlength=3).tolist() == [2, 2, 2]
    assert not set(train) & set(val) and not set(train) & set(test)
    with pytest.raises(ValueError, match="raise --n-train or give more jets"):
        _tagging_split(labels, ["QCD", "Tbqq", "Wqq"], 0.2, 2, seed=1)


def test_a_run_refused_on_bad_input_keeps_the_folders_config(tmp_path, monkeypatch, capsys):
    """The resolved config is written before a study runs (a crash can resume from it); a run
    that then stops on bad input puts the previous file back (or removes its own), so the
    folder's config.resolved.yaml still describes the results beside it."""
    from jetfm.studies import amplitudes

    out = tmp_path / "run"
    resolved = out / "config.resolved.yaml"

    def refuse(config, out_dir):
        raise ValueError("1 jets: 4,973 events, the split needs 5,900")

    monkeypatch.setattr(amplitudes, "run", refuse)
    argv = ["study", "amplitudes", "--config", "amplitudes_tiny", "--out", str(out)]
    assert main([*argv, "n_test=40"]) == 2
    assert "the split needs 5,900" in one_line_error(capsys, "study amplitudes")
    assert not resolved.exists()  # a fresh folder keeps nothing of the refused run
    out.mkdir(exist_ok=True)
    resolved.write_text("# the finished run's config\nn_test: 300\n")
    assert main([*argv, "n_test=40"]) == 2
    capsys.readouterr()
    assert resolved.read_text() == "# the finished run's config\nn_test: 300\n"
    # an unexpected failure (a crash) keeps the new config: rerunning it resumes
    monkeypatch.setattr(amplitudes, "run", lambda config, out_dir: 1 / 0)
    monkeypatch.setattr(cli, "_write_log", lambda command, argv: tmp_path / "log")
    assert main([*argv, "n_test=40"]) == 1
    capsys.readouterr()
    assert "n_test: 40" in resolved.read_text()
