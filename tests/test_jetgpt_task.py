"""JetGPT Lightning task: fit, file, bootstrapping buffer (jetfm.tasks.jetgpt)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jetfm.models.jetgpt import load_jetgpt
from jetfm.tasks.jetgpt import JetGPTTask, SequenceData, fit_jetgpt

MODEL = {"components": ["log_pt", "phi", "eta"], "periodic": ["phi"], "n_types": 2,
         "fixed_types": [0], "free_type": 1, "dim": 16, "n_blocks": 1, "n_heads": 2,
         "n_mixture": 3}


def _data(n: int, n_max: int, seed: int) -> SequenceData:
    rng = np.random.default_rng(seed)
    n_obj = rng.integers(1, n_max + 1, n)
    x = rng.normal(size=(n, n_max, 3)).astype(np.float32)
    mask = np.arange(n_max)[None] < n_obj[:, None]
    return SequenceData.of(x, mask)


def test_fit_writes_a_model_and_bootstraps(tmp_path) -> None:
    n_max = 4
    data = _data(500, n_max, 1)
    train, val = data[:400], data[400:]
    assert len(val) == 100 and np.array_equal(val.x, data.x[400:])
    training = {"max_steps": 12, "max_epochs": 100, "batch_size": 64, "progress": False,
                "accelerator": "cpu"}
    boot = {"warmup_steps": 4, "refresh_every": 3, "generate": 256, "buffer_size": 50,
            "per_batch": 2}
    net = fit_jetgpt(train, val, MODEL, training, tmp_path, loss="truncated", n_max=n_max,
                     bootstrap=boot, meta={"note": "x"}, seed=3)
    loaded, meta = load_jetgpt(tmp_path / "jetgpt.safetensors")
    assert meta["note"] == "x" and meta["training"]["loss"] == "truncated"
    assert meta["training"]["bootstrap_sequences_added"] > 0  # an untrained model overshoots
    x, mask = torch.as_tensor(val.x), torch.as_tensor(val.mask)
    c = torch.zeros(len(x), dtype=torch.long)
    assert torch.equal(loaded.log_likelihood(x, mask, c), net.log_likelihood(x, mask, c))


def test_buffer_sequences_are_padded_into_the_batch() -> None:
    task = JetGPTTask(MODEL, loss="full", n_max=3,
                      bootstrap={"warmup_steps": 0, "per_batch": 2})
    x = torch.zeros(5, 3, 3)
    mask = torch.ones(5, 3, dtype=torch.bool)
    longer = (torch.ones(4, 3), torch.ones(4, dtype=torch.bool), torch.tensor(0))
    task.buffer = [longer]
    bx, bmask, bc, bl = task._with_buffer((x, mask, torch.zeros(5, dtype=torch.long),
                                           torch.zeros(5)))
    assert bx.shape == (7, 4, 3) and bmask.shape == (7, 4)
    assert bmask.sum(1).tolist() == [3] * 5 + [4, 4]
    assert torch.equal(bx[5], torch.ones(4, 3)) and len(bc) == len(bl) == 7


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="n_max"):
        JetGPTTask(MODEL, loss="truncated")
    with pytest.raises(ValueError, match="loss"):
        JetGPTTask(MODEL, loss="partial", n_max=3)
    with pytest.raises(ValueError, match="refresh_every"):
        JetGPTTask(MODEL, n_max=3, bootstrap={"refresh_every": 0})
    with pytest.raises(ValueError, match="unknown keys"):
        JetGPTTask({**MODEL, "width": 3})


def test_init_starts_from_a_model_file(tmp_path) -> None:
    """``init`` loads the weights of a trained model (the thesis' bootstrap warm-up); with a
    vanishing learning rate the result is that model; another architecture is refused."""
    train, val = _data(200, 4, 1), _data(50, 4, 2)
    training = {"max_steps": 4, "max_epochs": 10, "batch_size": 64, "progress": False,
                "accelerator": "cpu"}
    first = fit_jetgpt(train, val, MODEL, training, tmp_path / "a", seed=1)
    again = fit_jetgpt(train, val, MODEL, {**training, "lr": 1e-12}, tmp_path / "b", seed=2,
                       init=tmp_path / "a" / "jetgpt.safetensors")
    x, mask = torch.as_tensor(val.x), torch.as_tensor(val.mask)
    c = torch.zeros(len(x), dtype=torch.long)
    torch.testing.assert_close(again.log_likelihood(x, mask, c),
                               first.log_likelihood(x, mask, c), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="differs"):
        fit_jetgpt(train, val, {**MODEL, "dim": 8}, training, tmp_path / "c",
                   init=tmp_path / "a" / "jetgpt.safetensors")
