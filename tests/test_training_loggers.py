"""Training logs (jetfm.tasks.training.fit): the CSV log always; TensorBoard event files with
the same values when the ``tensorboard`` package is importable, and nothing said when not."""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from jetfm.tasks.training import LossTask, TrainConfig, fit, tensor_dataset


class Line(LossTask):
    """y = w . x + b fitted by mean squared error: the smallest module ``fit`` trains."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"lr": 1e-2, "weight_decay": 0.0})
        self.linear = torch.nn.Linear(2, 1)

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        x, y = batch
        loss = F.mse_loss(self.linear(x).squeeze(-1), y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True)
        return loss


def tiny_fit(out_dir) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2))
    y = x @ np.array([1.0, -2.0]) + 0.5
    fit(Line(), tensor_dataset(x[:48], y[:48]), tensor_dataset(x[48:], y[48:]),
        TrainConfig(max_epochs=3, batch_size=16, progress=False, accelerator="cpu"), out_dir)


def test_tensorboard_events_hold_the_csv_values(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tiny_fit(tmp_path)
    csv = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    for tag in ("val/loss", "train/loss"):
        logged = csv[["step", tag]].dropna()
        scalars = accumulator.Scalars(tag)
        assert len(logged) == 3 and [s.step for s in scalars] == logged["step"].tolist()
        np.testing.assert_allclose([s.value for s in scalars], logged[tag], rtol=1e-6)


def test_without_tensorboard_only_csv_and_no_complaint(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    assert importlib.util.find_spec("tensorboard") is None
    with pytest.raises(ImportError):
        import tensorboard  # noqa: F401
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_fit(tmp_path)
    assert len(pd.read_csv(tmp_path / "logs" / "metrics.csv")["val/loss"].dropna()) == 3
    assert not (tmp_path / "tensorboard").exists()
    said = " ".join([str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
                    + list(capsys.readouterr()))
    assert "tensorboard" not in said.lower()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
