"""Shipped presets found from any folder, and ``KEY=VALUE`` overrides of any config key:
nested keys and lists set, unknown keys refused listing the valid ones, wrong types refused
naming the key, and the resolved config (written to the run folder) reloading to the same
config."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml
from cli_models import tiny_config, tiny_tokenizer, token_file

import jetfm
from jetfm.cli import main
from jetfm.configs import (
    RESOLVED_NAME,
    apply_overrides,
    locate,
    matches,
    names,
    preset,
    presets_dir,
    split_overrides,
    write_resolved,
)
from jetfm.studies import read_config
from jetfm.studies import transfer as transfer_study
from jetfm.studies.benchmark_generation import GenerationBenchmarkConfig
from jetfm.studies.benchmark_tagging import BenchmarkConfig
from jetfm.studies.benchmark_tagging import load_config as benchmark_config
from jetfm.studies.evolution import EvolutionStudyConfig
from jetfm.studies.gpt_curve import GPTCurveConfig
from jetfm.studies.gpt_curve import load_config as gpt_curve_config
from jetfm.studies.omnijet import OmniJetConfig
from jetfm.studies.omnilearn_transfer import OmniLearnTransferConfig
from jetfm.studies.tokenizer import TokenizerStudyConfig
from jetfm.studies.tokenizer import load_config as tokenizer_study_config

OMNILEARN = "omnilearn_transfer_tiny"


def one_line_error(capsys, command: str) -> str:
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"jetfm {command}: error: "), err
    return err.strip()


# ----------------------------------------------------------------------------- presets
def test_presets_are_found_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    package = Path(jetfm.__file__).parent / "configs"
    assert presets_dir() == package
    assert names() == sorted(p.stem for p in package.glob("*.yaml")) and len(names()) >= 20
    for name in ("omnijet_cpu", "transfer_tiny", "omnilearn_transfer_tiny", "tagging_cpu"):
        assert preset(name) == package / f"{name}.yaml" and preset(name).is_file()
        assert locate(name) == locate(f"{name}.yaml") == preset(name)
        assert locate(f"configs/{name}.yaml") == preset(name)  # the folder before the move
    assert OmniJetConfig.from_yaml(locate("omnijet_cpu")).tokenizer_model == "codebook"
    # a file of the user's wins over the preset of the same name
    (tmp_path / "omnijet_cpu.yaml").write_text("seed: 1\n")
    assert locate("omnijet_cpu.yaml") == Path("omnijet_cpu.yaml")
    with pytest.raises(FileNotFoundError, match=r"no preset 'omnijet_cpux'; presets: .*"
                                                r"omnijet_cpu, "):
        preset("omnijet_cpux")
    with pytest.raises(FileNotFoundError, match=r"no preset of that name; presets: .*tagging_cpu"):
        locate("omnijet_cpux")
    assert locate("my/own.yaml") == Path("my/own.yaml")  # the loader says "no config file"


def test_cli_defaults_and_preset_names_work_outside_the_checkout(tmp_path, monkeypatch, capsys):
    """`jetfm demo`, `jetfm study transfer`, `--config NAME`: each reads its preset (the
    override error names the preset's file in the package) from a folder that has none."""
    monkeypatch.chdir(tmp_path)
    for command, argv, name in (
            ("demo", ["demo", "seed=abc"], "omnijet_cpu"),
            ("study transfer", ["study", "transfer", "seed=abc"], "transfer_cpu"),
            ("study transfer", ["study", "transfer", "--preset", "tiny", "seed=abc"],
             "transfer_tiny"),
            ("pretrain", ["pretrain", "t.parquet", "seed=abc", "--tokenizer", "t"],
             "omnijet_cpu"),
            ("study omnilearn", ["study", "omnilearn", "--config", OMNILEARN, "seed=abc"],
             OMNILEARN),
            ("benchmark tagging", ["benchmark", "tagging", "--config",
                                   "benchmark_tagging_tiny", "seed=abc"],
             "benchmark_tagging_tiny")):
        assert main(argv) == 2
        line = one_line_error(capsys, command)
        assert f"{preset(name)}: override 'seed=abc': seed: 'abc' is not of type int" in line
    assert main(["study", "omnilearn", "--config", "omnilearn_transfer_tinyy"]) == 2
    assert "no preset of that name; presets: " in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- overrides
def test_overrides_set_nested_keys_and_lists():
    path = preset(OMNILEARN)
    base = OmniLearnTransferConfig.from_yaml(path)
    config = OmniLearnTransferConfig.from_yaml(path, [
        "sizes=[10,30]", "pretraining.generator.body.dim=32", "tagging.training.lr=1e-4",
        "pretraining.training={max_epochs: 2}",  # a mapping is merged key by key
        "workers=2"])  # absent from the file: starts from the default
    assert config.sizes == [10, 30] and config.workers == 2
    assert config.pretraining["generator"]["body"] == {**base.pretraining["generator"]["body"],
                                                       "dim": 32}
    assert config.tagging["training"] == {**base.tagging["training"], "lr": 1e-4}
    assert config.pretraining["training"] == {**base.pretraining["training"], "max_epochs": 2}
    assert config.generation == base.generation
    # list elements by index, in either spelling; null
    study = tokenizer_study_config(preset("tokenizer_study_tiny"), [
        "variants.1.vqvae.fsq_levels=[4,3,3]", "variants.1.vqvae.codebook_size=36",
        "variants[0].name=vq-small", "n_floor=null"])
    assert study.variants[0]["name"] == "vq-small" and study.n_floor is None
    assert study.variants[1]["vqvae"] == {"quantizer": "fsq", "fsq_levels": [4, 3, 3],
                                          "codebook_size": 36}
    # a block the file leaves out starts from the field's default ({} for files here)
    omnijet = OmniJetConfig.from_yaml(preset("omnijet_cpu"), ["files.top=/data/top.root"])
    assert omnijet.files == {"top": "/data/top.root"}
    # the command line's order: the last override of a key wins
    assert read_config(path, OmniLearnTransferConfig, ["seed=4", "seed=7"])["seed"] == 7


def test_delete_overrides_drop_entries_and_an_empty_mapping_is_refused():
    """A mapping value merges, so ``models={}`` would change nothing: it is refused, and
    ``~KEY`` deletes (Hydra's syntax), from the API and the command line alike."""
    from jetfm.studies.amplitudes import load_config as amplitude_config

    path = preset("amplitudes_tiny")
    base = amplitude_config(path)
    assert len(base.models) >= 2
    kept = amplitude_config(path, ["~models.mlp"])
    assert list(kept.models) == [m for m in base.models if m != "mlp"]
    assert amplitude_config(path, ["~sizes.0"]).sizes == base.sizes[1:]
    with pytest.raises(ValueError, match=r"override '~models': a top-level key cannot be "
                                         r"deleted \(it would fall back to the built-in "
                                         r"default\)"):
        amplitude_config(path, ["~models"])
    assert split_overrides(["~models.mlp", "a.yaml"]) == (["a.yaml"], ["~models.mlp"])
    with pytest.raises(ValueError, match=r"'models=\{\}': a mapping value is merged into the "
                                         r"block, so an empty one changes nothing; delete "
                                         r"entries with ~models\.NAME"):
        amplitude_config(path, ["models={}"])
    with pytest.raises(ValueError, match=r"override '~models\.gnn': no key 'models\.gnn' to "
                                         r"delete"):
        amplitude_config(path, ["~models.gnn"])
    with pytest.raises(ValueError, match=r"override '~sizes\.9': no key 'sizes\.9'"):
        amplitude_config(path, ["~sizes.9"])
    with pytest.raises(ValueError, match=r"unknown key 'modelz'"):
        amplitude_config(path, ["~modelz.mlp"])
    with pytest.raises(ValueError, match=r"models: give at least one model"):
        amplitude_config(path, [f"~models.{m}" for m in base.models])


@pytest.mark.parametrize(("override", "message"), [
    ("training.max_steps=10", r"override 'training\.max_steps=10': unknown key 'training'; "
                              r"valid: \['generation', .*'pretraining', .*'workers'\]"),
    ("pretraining.training.max_stepz=10",
     r"pretraining: training: unknown keys \['max_stepz'\]; valid: \[.*'max_steps'"),
    ("tagging.head_configs.n_heads=2",
     r"tagging: unknown keys \['head_configs'\]; valid: \['backbone_lr_factor', 'head', "
     r"'head_config', 'training'\]"),
])
def test_unknown_key_is_refused_listing_the_valid_keys(override, message):
    with pytest.raises(ValueError, match=rf"^{preset(OMNILEARN)}: .*{message}"):
        OmniLearnTransferConfig.from_yaml(preset(OMNILEARN), [override])


@pytest.mark.parametrize(("override", "message"), [
    ("seed=abc", r"override 'seed=abc': seed: 'abc' is not of type int"),
    ("n_test=true", r"override 'n_test=true': n_test: True is not of type int"),
    ("sizes=[10,x]", r"sizes: \[10, 'x'\] is not of type list\[int\]"),
    ("val_fraction=[0.2]", r"val_fraction: \[0.2\] is not of type float"),
    ("pretraining=3", r"pretraining: 3 is not of type dict\[str, Any\]"),
    ("pretraining.generator.body.dim=thirty",  # inside a block: the study's own check
     r"pretraining: generator: body: dim: 'thirty' is not an integer"),
    ("tagging.training.lr=fast", r"tagging: training: lr: 'fast' is not a number"),
    ("sizes.5=3", r"override 'sizes\.5=3': list index out of range"),
    ("seed", r"override 'seed': expected KEY=VALUE"),
    ("sizes=[1,", r"override 'sizes=\[1,': its value is not valid YAML"),
    ("sizes=[1,2]]", r"override 'sizes=\[1,2\]\]': its value is not valid YAML"),
])
def test_wrong_value_is_refused_naming_the_key(override, message):
    with pytest.raises(ValueError, match=rf"^{preset(OMNILEARN)}: .*{message}"):
        OmniLearnTransferConfig.from_yaml(preset(OMNILEARN), [override])


def test_cli_bad_overrides_and_unknown_options_are_one_line_errors(tmp_path, capsys):
    """Malformed YAML in an override is bad input (exit 2), not an unexpected failure; an
    option the command does not have is named as such (not its value as a bad override)."""
    base = ["study", "omnilearn", "--config", OMNILEARN, "--out", str(tmp_path / "out")]
    for extra, message in [(["sizes=[1,"], "its value is not valid YAML"),
                           (["--max-epochs", "0"], "unrecognized arguments: --max-epochs")]:
        try:
            code = main(base + extra)
        except SystemExit as exit_info:  # argparse's own errors
            code = exit_info.code
        assert code == 2, extra
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not (tmp_path / "out").exists()


def test_type_check_follows_the_dataclass_annotations():
    assert matches(3, int) and not matches(True, int) and not matches("3", int)
    assert matches(3, float) and matches(0.5, float | None) and matches(None, float | None)
    assert matches({"top": 3, "qcd": 4}, int | dict[str, int])
    assert not matches({"top": "3"}, int | dict[str, int])
    assert matches({1000: 5}, int | dict[int, int]) and matches(["a", "b"], list[str] | None)
    assert not matches("a", list[str] | None)


def test_split_overrides_from_files(tmp_path):
    odd = tmp_path / "a=b.root"  # an existing file stays a file
    odd.write_text("")
    assert split_overrides(["x.root", str(odd), "seed=2", "gpt.dim=8", "=3"]) == \
        (["x.root", str(odd), "=3"], ["seed=2", "gpt.dim=8"])


# ----------------------------------------------------------------------------- resolved
ROUND_TRIPS = [
    (OmniJetConfig.from_yaml, OmniJetConfig, "omnijet_cpu",
     ["gpt.dim=64", "tagging_sizes=[100,1000]", "pretraining.lr=3e-4"]),
    (EvolutionStudyConfig.from_yaml, EvolutionStudyConfig, "evolution_cpu",
     ["training.max_epochs=2", "thesis.gpt.dim=32", "example_trees=[0,1]"]),
    (tokenizer_study_config, TokenizerStudyConfig, "tokenizer_study_tiny",
     ["variants.0.n_train=50", "vqvae.codebook_size=16"]),
    (gpt_curve_config, GPTCurveConfig, "gpt_curve_tiny",
     ["n_jets.top=200", "variants.2.temperature=0.9"]),
    (OmniLearnTransferConfig.from_yaml, OmniLearnTransferConfig, OMNILEARN,
     ["pretraining.generator.body.dim=32", "sizes=[10,40]"]),
    (benchmark_config, BenchmarkConfig, "benchmark_tagging_tiny",
     ["models.0.name=renamed", "training.lr=2e-3", "files=[a.root,b.root]"]),
    (GenerationBenchmarkConfig.from_yaml, GenerationBenchmarkConfig,
     "benchmark_generation_tiny", ["n_train=300", "generators.0.training.max_steps=7"]),
]


@pytest.mark.parametrize(("load", "cls", "name", "overrides"), ROUND_TRIPS,
                         ids=[r[2] for r in ROUND_TRIPS])
def test_resolved_config_reloads_to_the_same_config(tmp_path, load, cls, name, overrides):
    config = load(preset(name), overrides)
    assert config != load(preset(name))  # the overrides changed it
    data = read_config(preset(name), cls, overrides)
    path = write_resolved(data, tmp_path / "run", preset(name), overrides)
    assert path == tmp_path / "run" / RESOLVED_NAME
    assert path.read_text().startswith(f"# the config of this run: {preset(name)} with "
                                       f"overrides {' '.join(overrides)}\n")
    again = load(path)
    assert again == config and asdict(again) == asdict(config)
    assert [p.name for p in path.parent.iterdir()] == [RESOLVED_NAME]  # no temporary left


def test_transfer_resolved_config_reloads_over_its_preset(tmp_path):
    overrides = ["gpt.dim=24", "sizes=[50,500]", "finetuning.lr=1e-4"]
    config = transfer_study.load_config("tiny", None, overrides)
    assert config.gpt["dim"] == 24 and config.sizes == [50, 500]
    path = write_resolved(transfer_study.config_data("tiny", None, overrides), tmp_path,
                          "--preset tiny", overrides)
    assert transfer_study.load_config("tiny", path) == config
    with pytest.raises(ValueError, match=r"transfer_tiny.yaml: finetuning: unknown keys "
                                         r"\['lrr'\]; valid: \["):
        transfer_study.load_config("tiny", None, ["finetuning.lrr=1"])


def test_pretrain_writes_the_resolved_config_with_overrides_and_options(tmp_path, capsys):
    """Overrides among the token files and the --lr option both land in the resolved file,
    which reloads to the config the run used."""
    tokenizer = tiny_tokenizer(tmp_path / "tok.safetensors")
    tokens = token_file(tmp_path / "t.parquet", tokenizer, 30, 1, seed=1)
    config = tiny_config(tmp_path / "c.yaml")
    out = tmp_path / "run"
    assert main(["pretrain", str(tokens), "pretraining.batch_size=8", "gpt.dropout=0.2",
                 "--tokenizer", str(tmp_path / "tok.safetensors"), "--config", str(config),
                 "--lr", "0.002", "--out-dir", str(out)]) == 0
    resolved = out / RESOLVED_NAME
    assert f"config -> {resolved}" in capsys.readouterr().out
    data = yaml.safe_load(resolved.read_text())
    assert data["pretraining"] == {"max_epochs": 1, "batch_size": 8, "lr": 0.002}
    assert data["gpt"]["dropout"] == 0.2 and data["seed"] == 5
    expected = OmniJetConfig.from_yaml(config, ["pretraining.batch_size=8", "gpt.dropout=0.2",
                                                "pretraining.lr=0.002"])
    assert OmniJetConfig.from_yaml(resolved) == expected
    assert (out / "backbone.safetensors").exists()


def test_bad_override_of_a_file_command_stops_before_any_output(tmp_path, capsys):
    config = tiny_config(tmp_path / "c.yaml")
    out = tmp_path / "run"
    assert main(["tokenizer", "missing.root", "tokenizer_training.batch_size=big",
                 "--config", str(config), "--out-dir", str(out)]) == 2
    assert "tokenizer_training: batch_size: 'big' is not an integer" in \
        one_line_error(capsys, "tokenizer")
    assert main(["tokenizer", "seed=2", "--config", str(config)]) == 2
    assert "no files given, only the config overrides ['seed=2']" in \
        one_line_error(capsys, "tokenizer")
    assert main(["finetune", "missing.root", "classes=[QCD,Tbqq]", "--out-dir", str(out)]) == 2
    assert "['classes']: set by the options --classes" in one_line_error(capsys, "finetune")
    assert main(["finetune", "missing.root", "training.patience=-1", "--out-dir",
                 str(out)]) == 2
    assert f"{preset('tagging_cpu')}: training: patience: -1 must be >= 0" in \
        one_line_error(capsys, "finetune")
    assert not out.exists()


def test_apply_overrides_leaves_the_input_mapping_alone():
    data = {"seed": 1, "pretraining": {"training": {"lr": 1e-3}}}
    out = apply_overrides(data, ["pretraining.training.lr=2e-3"], OmniLearnTransferConfig,
                          "x.yaml")
    assert data == {"seed": 1, "pretraining": {"training": {"lr": 1e-3}}}
    assert out["pretraining"]["training"]["lr"] == 2e-3
