"""Lightning training loop: learning, checkpoints loadable with weights_only, resume, seeds."""

import numpy as np
import pandas as pd
import torch
from cli_models import omnijet_meta

from jetfm.models.backbone import backbone_from_meta
from jetfm.models.features import ParticleInputs
from jetfm.models.tagger import Tagger
from jetfm.tasks.omnijet import GenerativeTask, TokenizerTask
from jetfm.tasks.tagging import InputsDataset, TaggingTask
from jetfm.tasks.training import (
    TrainConfig,
    fit,
    split_indices,
    tensor_dataset,
    validation_schedule,
)

GPT_SMALL = {"vocab_size": 12, "dim": 32, "n_blocks": 1, "n_heads": 4, "max_length": 8}
OMNIJET_SMALL = omnijet_meta(GPT_SMALL)


def token_tagger_meta(head: str = "summation") -> dict:
    """Tagger metadata: the small OmniJet backbone with ``head`` over QCD vs top."""
    backbone = backbone_from_meta(OMNIJET_SMALL, "test")
    return Tagger(backbone, ["QCD", "Tbqq"], head).meta()


def token_inputs(tokens: np.ndarray, mask: np.ndarray, label: np.ndarray) -> InputsDataset:
    return InputsDataset(ParticleInputs(mask=mask, tokens=tokens), label)


def toy_sequences(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two populations: label 0 jets use codes 1-4, label 1 jets codes 5-8 (tokens +1)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    length = rng.integers(2, 6, n)
    tokens = np.zeros((n, 8), dtype=np.int64)
    mask = np.zeros((n, 8), dtype=bool)
    for i in range(n):
        codes = rng.integers(1, 5, length[i]) + 4 * label[i]
        tokens[i, 1 : length[i] + 1] = codes + 1
        tokens[i, length[i] + 1] = 11
        mask[i, : length[i] + 2] = True
    return tokens, mask, label


def config(**kw) -> TrainConfig:
    base = {"max_epochs": 3, "batch_size": 32, "lr": 3e-3, "progress": False,
            "accelerator": "cpu"}
    return TrainConfig(**{**base, **kw})


def test_classifier_learns_and_checkpoint_is_plain_data(tmp_path):
    tokens, mask, label = toy_sequences()
    train, val = split_indices(len(label), 0.25, seed=0)
    task = TaggingTask(token_tagger_meta(), mode="scratch")
    fit(task, token_inputs(tokens[train], mask[train], label[train]),
        token_inputs(tokens[val], mask[val], label[val]), config(max_epochs=6), tmp_path)
    inputs = ParticleInputs(mask=mask[val], tokens=tokens[val]).to_torch()
    with torch.no_grad():
        logits = task(inputs)
    accuracy = (logits.argmax(1).numpy() == label[val]).mean()
    assert accuracy > 0.9
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    gpt = ckpt["hyper_parameters"]["tagger"]["backbone_config"]["gpt"]
    assert {k: gpt[k] for k in GPT_SMALL} == GPT_SMALL
    assert (tmp_path / "logs" / "metrics.csv").exists()


def test_resume_continues_from_last_epoch_and_seed_reproduces(tmp_path):
    tokens, mask, _ = toy_sequences(128)
    data = tensor_dataset(tokens, mask)
    first = GenerativeTask(OMNIJET_SMALL)
    fit(first, data, data, config(max_epochs=1), tmp_path / "a")
    resumed = GenerativeTask(OMNIJET_SMALL)
    trainer = fit(resumed, data, data, config(max_epochs=2), tmp_path / "a",
                  resume=tmp_path / "a" / "checkpoints" / "last.ckpt")
    assert trainer.current_epoch == 2
    torch.manual_seed(123)
    again = GenerativeTask(OMNIJET_SMALL)
    torch.manual_seed(123)
    twin = GenerativeTask(OMNIJET_SMALL)
    fit(again, data, data, config(max_epochs=1), tmp_path / "b")
    fit(twin, data, data, config(max_epochs=1), tmp_path / "c")
    for p, q in zip(again.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_frozen_backbone_does_not_change(tmp_path):
    tokens, mask, label = toy_sequences(64)
    task = TaggingTask(token_tagger_meta("class_attention"), mode="frozen")
    before = {k: v.clone() for k, v in task.tagger.backbone.state_dict().items()}
    data = token_inputs(tokens, mask, label)
    fit(task, data, data, config(max_epochs=1), tmp_path)
    for k, v in task.tagger.backbone.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_tokenizer_task_trains(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 3)).astype(np.float32)
    mask = np.ones((64, 6), dtype=bool)
    vq = {"dim": 16, "n_blocks": 1, "n_heads": 2, "codebook_size": 32}
    task = TokenizerTask(vq)
    data = tensor_dataset(x, mask)
    fit(task, data, data, config(max_epochs=2), tmp_path)
    assert bool(task.model.quantizer.initialised)


def test_resume_keeps_the_metrics_history(tmp_path):
    """Lightning's CSV logger deletes metrics.csv when it starts: a resumed run keeps the rows
    of the earlier epochs (train 2 epochs, resume to 4: four epochs of validation loss)."""
    tokens, mask, _ = toy_sequences(64)
    data = tensor_dataset(tokens, mask)
    fit(GenerativeTask(OMNIJET_SMALL), data, data, config(max_epochs=2), tmp_path)
    first = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    fit(GenerativeTask(OMNIJET_SMALL), data, data, config(max_epochs=4), tmp_path,
        resume=tmp_path / "checkpoints" / "last.ckpt")
    log = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    val = log.dropna(subset=["val/loss"])
    assert val["epoch"].tolist() == [0, 1, 2, 3]
    assert val["step"].is_monotonic_increasing
    old = first.dropna(subset=["val/loss"])
    np.testing.assert_array_equal(val["val/loss"].to_numpy()[:2], old["val/loss"].to_numpy())
    # a resume from an older checkpoint replaces the epochs it logs again, no duplicates
    fit(GenerativeTask(OMNIJET_SMALL), data, data, config(max_epochs=4), tmp_path,
        resume=tmp_path / "checkpoints" / "best.ckpt")
    again = pd.read_csv(tmp_path / "logs" / "metrics.csv").dropna(subset=["val/loss"])
    assert again["epoch"].tolist() == sorted(set(again["epoch"])) and again["epoch"].max() == 3
    # resumed into another folder: the history of the checkpoint's run comes along
    fit(GenerativeTask(OMNIJET_SMALL), data, data, config(max_epochs=5), tmp_path / "more",
        resume=tmp_path / "checkpoints" / "last.ckpt")
    more = pd.read_csv(tmp_path / "more" / "logs" / "metrics.csv").dropna(subset=["val/loss"])
    assert more["epoch"].tolist() == [0, 1, 2, 3, 4]


def test_max_steps_before_the_first_validation_ends_cleanly(tmp_path):
    """A step cap inside the first epoch stops training there, with one validation at the
    cap (so the best weights are chosen on it, and no 'monitored key' warning); the module
    keeps the weights of its last step."""
    tokens, mask, _ = toy_sequences(64)
    task = GenerativeTask(OMNIJET_SMALL)
    before = [p.clone() for p in task.parameters()]
    trainer = fit(task, tensor_dataset(tokens, mask), tensor_dataset(tokens, mask),
                  config(max_steps=1, batch_size=16), tmp_path)
    assert trainer.global_step == 1
    assert any(not torch.equal(p, q) for p, q in zip(task.parameters(), before, strict=True))
    log = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    assert log["val/loss"].notna().sum() == 1 and (tmp_path / "checkpoints" / "best.ckpt"
                                                    ).exists()


def test_validation_schedule_validates_the_last_step():
    """Epoch-end validation unless the step budget ends the run mid-epoch; then every
    max_steps / m steps with m the fewest validations, at least one per epoch, dividing
    max_steps."""
    assert validation_schedule(1000, 10_000, 391, 1) == (250, None)  # 4 x 250 = 1000
    assert validation_schedule(600, 10_000, 391, 1) == (300, None)
    assert validation_schedule(600, 10_000, 40, 1) == (None, 1)  # 15 whole epochs
    assert validation_schedule(3, 10_000, 4, 1) == (3, None)  # inside the first epoch
    assert validation_schedule(7, 10_000, 3, 1) == (1, None)  # 7 is prime: every step
    assert validation_schedule(1000, 2, 391, 1) == (None, 1)  # the epochs end it first
    assert validation_schedule(1000, -1, 391, 1) == (250, None)  # no epoch limit
    assert validation_schedule(-1, 5, 391, 1) == (None, 1)  # no step limit
    assert validation_schedule(1000, 10_000, 391, 2) == (None, 1)  # DDP: Lightning's


def test_a_budget_ending_mid_epoch_is_validated_at_its_last_step(tmp_path):
    """10 steps of 3-batch epochs (at least 4 validations; 5 divides 10): validation every 2
    steps, the last at step 10, so the kept weights may be the last step's (not those of
    epoch 3, as with epoch-end validation only)."""
    tokens, mask, _ = toy_sequences(96)
    task = GenerativeTask(OMNIJET_SMALL)
    trainer = fit(task, tensor_dataset(tokens, mask), tensor_dataset(tokens, mask),
                  config(max_steps=10, max_epochs=100, batch_size=32), tmp_path)
    assert trainer.global_step == 10
    log = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    assert log.loc[log["val/loss"].notna(), "step"].tolist() == [1, 3, 5, 7, 9]
