"""Every key of every config (top level and blocks) is used or rejected with an error naming it;
``weight_decay`` of a training block reaches AdamW; every shipped config loads."""

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_models import omnijet_meta
from io_jets import random_jets

from jetfm.configs import presets_dir
from jetfm.models.backbone import backbone_from_meta
from jetfm.models.features import ParticleInputs
from jetfm.models.tagger import Tagger
from jetfm.studies.benchmark_generation import GenerationBenchmarkConfig
from jetfm.studies.benchmark_tagging import load_config as benchmark_config
from jetfm.studies.evolution import EvolutionStudyConfig
from jetfm.studies.gpt_curve import load_config as gpt_curve_config
from jetfm.studies.omnijet import OmniJetConfig
from jetfm.studies.omnilearn_transfer import OmniLearnTransferConfig
from jetfm.studies.tokenizer import load_config as tokenizer_study_config
from jetfm.studies.transfer import load_config
from jetfm.tasks.omnijet import GenerativeTask, TokenizerTask, fit_tokenizer
from jetfm.tasks.tagging import InputsDataset, TaggingTask, tagging_config
from jetfm.tasks.thesis_evolution import check_thesis_config
from jetfm.tasks.training import TrainConfig, fit, tensor_dataset

CONFIGS = presets_dir()  # the shipped presets
GPT_SMALL = {"vocab_size": 12, "dim": 16, "n_blocks": 1, "n_heads": 2, "max_length": 8}


def token_tagger_meta(head: str) -> dict:
    return Tagger(backbone_from_meta(omnijet_meta(GPT_SMALL), "test"), ["QCD", "Tbqq"],
                  head).meta()


def token_inputs(tokens: np.ndarray, mask: np.ndarray, label: np.ndarray) -> InputsDataset:
    return InputsDataset(ParticleInputs(mask=mask, tokens=tokens), label)


QUIET = {"progress": False, "accelerator": "cpu"}


def load_any(path: Path) -> object:
    """The shipped config ``path`` through the loader its study uses."""
    kind = path.stem.split("_")[0]
    if kind == "omnijet":
        return OmniJetConfig.from_yaml(path)
    if kind == "evolution":
        return EvolutionStudyConfig.from_yaml(path)
    if kind == "transfer":
        return load_config(path.stem.split("_", 1)[1])
    if kind == "omnilearn":
        return OmniLearnTransferConfig.from_yaml(path)
    if path.stem.startswith("benchmark_generation"):
        return GenerationBenchmarkConfig.from_yaml(path)
    if kind == "benchmark":
        return benchmark_config(path)
    if kind == "tokenizer":
        return tokenizer_study_config(path)
    if kind == "gpt":
        return gpt_curve_config(path)
    if kind in ("jetgpt", "amplitudes", "event"):
        module = {"jetgpt": "jetgpt_extrapolation", "amplitudes": "amplitudes",
                  "event": "event_generation"}[kind]
        return importlib.import_module(f"jetfm.studies.{module}").load_config(path)
    if kind == "tagging":  # `jetfm finetune --config`: TaggingConfig keys and the seed
        data = yaml.safe_load(path.read_text())
        seed = data.pop("seed")
        config = tagging_config(data, str(path))
        config.seed = seed
        return config
    raise AssertionError(f"no loader for {path}")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_any(path)
    data = yaml.safe_load(path.read_text())
    # what the file says is what the config holds (no key dropped on the way)
    for key, value in data.items():
        if key not in ("sizes", "tagging_sizes", "n_source", "n_truth", "n_generate"):
            assert getattr(config, key) == value, key


def with_key(tmp_path: Path, preset: str, block: list[str], key: str = "weight_decayy"
             ) -> Path:
    """``jetfm/configs/{preset}.yaml`` with ``key: 0.3`` added to the (nested) ``block``."""
    data = yaml.safe_load((CONFIGS / f"{preset}.yaml").read_text())
    node = data
    for name in block:
        node = node.setdefault(name, {})
    node[key] = 0.3
    path = tmp_path / f"{preset}_bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("preset", "block"),
    [("omnijet_cpu_vqvae", ["tokenizer_training"]), ("omnijet_cpu", ["pretraining"]),
     ("omnijet_cpu", ["tagging_training"]), ("omnijet_cpu_vqvae", ["vqvae"]),
     ("omnijet_cpu", ["codebook"]),
     ("omnijet_cpu", ["gpt"]), ("omnijet_cpu", ["files"]), ("omnijet_cpu", ["n_jets"]),
     ("evolution_cpu", ["training"]), ("evolution_cpu", ["model"]),
     ("evolution_cpu", ["thesis"]), ("evolution_cpu", ["thesis", "vqvae"]),
     ("evolution_cpu", ["thesis", "gpt"]), ("evolution_cpu", ["thesis", "training"]),
     ("evolution_cpu", ["thesis", "tokenizer_training"])],
)
def test_unknown_block_key_is_rejected_naming_file_block_and_valid_keys(tmp_path, preset,
                                                                         block):
    path = with_key(tmp_path, preset, block)
    loader = OmniJetConfig.from_yaml if preset.startswith("omnijet") else \
        EvolutionStudyConfig.from_yaml
    with pytest.raises(ValueError, match="weight_decayy") as err:
        loader(path)
    message = str(err.value)
    assert str(path) in message and block[-1] in message and "valid: [" in message


@pytest.mark.parametrize("key", ["vocab_size", "max_length", "code_dim"])
def test_gpt_keys_the_tokenizer_sets_are_rejected(tmp_path, key):
    """The tokenizer fixes the GPT's vocabulary and length: a configured one would be ignored."""
    with pytest.raises(ValueError, match=key):
        OmniJetConfig.from_yaml(with_key(tmp_path, "omnijet_cpu", ["gpt"], key))


@pytest.mark.parametrize("block", ["finetuning", "scratch", "vqvae", "gpt", "files"])
def test_transfer_override_file_keys_are_checked_naming_the_file(tmp_path, block):
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump({block: {"weight_decayy": 0.3}}))
    with pytest.raises(ValueError, match=rf"override\.yaml: {block}: unknown keys "
                                         r"\['weight_decayy'\]; valid: \["):
        load_config("tiny", path)


def test_thesis_block_keys_set_by_the_model_are_rejected():
    with pytest.raises(ValueError, match="positional"):
        check_thesis_config({"gpt": {"positional": False}})


def test_train_config_rejects_unknown_key_naming_block():
    with pytest.raises(ValueError, match=r"pretraining: unknown keys \['weight_decayy'\]; "
                                         r"valid: \[.*'weight_decay'"):
        TrainConfig.from_overrides({"weight_decayy": 0.3}, 1, "pretraining")


def test_train_config_numbers_from_yaml_strings_or_a_clear_error():
    block = yaml.safe_load("{lr: 1e-3, weight_decay: 3e-1, max_steps: 2e3}")
    assert block["lr"] == "1e-3"  # what YAML gives
    config = TrainConfig.from_overrides(block, 1, "pretraining")
    assert (config.lr, config.weight_decay, config.max_steps) == (0.001, 0.3, 2000)
    assert isinstance(config.max_steps, int)
    with pytest.raises(ValueError, match=r"pretraining: lr: 'fast' is not a number"):
        TrainConfig.from_overrides({"lr": "fast"}, 1, "pretraining")
    with pytest.raises(ValueError, match=r"batch_size: 32.5 is not an integer"):
        TrainConfig.from_overrides({"batch_size": 32.5}, 1, "tagging_training")


def toy_tokens(n: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 11, (n, 8))
    return tokens, np.ones((n, 8), dtype=bool), rng.integers(0, 2, n)


@pytest.mark.parametrize("kind", ["tokenizer", "generative", "finetune", "frozen"])
def test_weight_decay_of_the_block_reaches_adamw(tmp_path, kind):
    tokens, mask, label = toy_tokens()
    if kind == "tokenizer":
        task = TokenizerTask({"dim": 16, "n_blocks": 1, "n_heads": 2, "codebook_size": 8})
        data = tensor_dataset(np.random.default_rng(0).normal(size=(32, 6, 3)), mask[:, :6])
    elif kind == "generative":
        task, data = GenerativeTask(omnijet_meta(GPT_SMALL)), tensor_dataset(tokens, mask)
    else:
        task = TaggingTask(token_tagger_meta("class_attention"), mode=kind)
        data = token_inputs(tokens, mask, label)
    config = TrainConfig.from_overrides({"weight_decay": 0.3, "lr": 0.004, "max_epochs": 1,
                                         "batch_size": 16, **QUIET}, seed=1)
    trainer = fit(task, data, data, config, tmp_path)
    groups = trainer.optimizers[0].param_groups
    assert [g["weight_decay"] for g in groups] == [0.3] * len(groups)
    assert groups[0]["initial_lr"] == 0.004  # the head's (or only) group
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["weight_decay"] == 0.3


def test_weight_decay_none_keeps_each_task_default(tmp_path):
    tokens, mask, _ = toy_tokens()
    task = GenerativeTask(omnijet_meta(GPT_SMALL))
    config = TrainConfig(max_epochs=1, batch_size=16, **QUIET)
    trainer = fit(task, tensor_dataset(tokens, mask), tensor_dataset(tokens, mask), config,
                  tmp_path)
    assert trainer.optimizers[0].param_groups[0]["weight_decay"] == 1e-4


def test_tokenizer_block_weight_decay_reaches_the_optimiser_and_poor_one_warns(tmp_path,
                                                                              caplog):
    """Through the study's fit_tokenizer: the YAML block's weight_decay is AdamW's; a tokenizer
    trained for one step is poor and says so (item 21)."""
    jets = random_jets(60, seed=1, n_min=3, n_max=20)
    vqvae = {"dim": 16, "n_blocks": 1, "n_heads": 2, "codebook_size": 32}
    training = {"max_epochs": 1, "batch_size": 32, "weight_decay": 0.3, **QUIET}
    with caplog.at_level("WARNING", logger="jetfm"):
        fit_tokenizer(jets, vqvae, training, 16, tmp_path, seed=1)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["weight_decay"] == 0.3
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("jet_mass_rel_error_mean" in m and "poor tokenizer" in m for m in warned)
    assert (tmp_path / "resolution.json").exists()
    with pytest.raises(ValueError, match="n_features"):
        fit_tokenizer(jets, {**vqvae, "n_features": 4}, training, 16, tmp_path / "b")
