"""Amplitude regression: train a regressor (:mod:`jetfm.models.amplitude`) with MSE on
standardised log squared amplitudes, predict, and measure the relative errors.

Targets (Spinner's thesis, Eq. 6.22; reference code heidelberg-hepml/lorentz-gatr,
``experiments/amplitudes/preprocessing.py::preprocess_amplitude``):

    y = (log A - mean(log A)) / std(log A),

mean and standard deviation from the training amplitudes (:class:`LogAmplitudeScaler`; the
reference takes them from the whole data set). Metric on held-out points (the reference's
``plots.py``): the relative error Delta = (A_pred - A_true) / A_true with A_pred =
exp(y_pred std + mean); :func:`error_summary` gives the MSE of y (the thesis' Fig. 6.2 metric),
the half-width of the central 68 % interval of Delta, the RMS of Delta, the median |Delta| and
the fractions with |Delta| below 0.1 %, 1 % and 10 % (the reference's ``delta_rates``).

Training (:class:`AmplitudeTaskConfig`; the thesis' Table A.3 and the reference's
``config/default.yaml``): Adam (AdamW without weight decay), learning rate 1e-4, no scheduler
(``scheduler: constant``; ``cosine`` is jetfm's usual decay), gradient norm clipped at 5
(``clip_grad_norm``), batch 256; the number of iterations and early stopping come from the
:class:`~jetfm.tasks.training.TrainConfig` (``max_steps``, ``patience``), through
:func:`jetfm.tasks.training.fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.checks import NON_NEGATIVE, check_fields
from jetfm.models.amplitude import AmplitudeRegressor
from jetfm.tasks.training import LossTask, TrainConfig, adamw_with_cosine, fit, tensor_dataset

SCHEDULERS = ("constant", "cosine")
DELTA_THRESHOLDS = (0.001, 0.01, 0.1)
"""|Delta| thresholds of the reported fractions (the reference's ``delta_maxs``)."""


@dataclass
class LogAmplitudeScaler:
    """Standardisation of log A: mean and standard deviation of log A of the training
    amplitudes (:meth:`fit`)."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, amplitudes: np.ndarray, who: str = "amplitudes") -> LogAmplitudeScaler:
        """From positive, finite ``amplitudes`` (events,); ``ValueError`` naming ``who``
        otherwise or when there are fewer than 2 or all are equal."""
        log_a = _log_amplitude(amplitudes, who)
        if len(log_a) < 2:
            raise ValueError(f"{who}: need at least 2 amplitudes to standardise, got "
                             f"{len(log_a)}")
        if float(np.std(log_a)) == 0.0:
            raise ValueError(f"{who}: got {len(log_a)} amplitudes but all are equal; "
                             "standardising needs a spread")
        return cls(float(np.mean(log_a)), float(np.std(log_a)))

    def transform(self, amplitudes: np.ndarray, who: str = "amplitudes") -> np.ndarray:
        """y = (log A - mean) / std (events,) float64."""
        return (_log_amplitude(amplitudes, who) - self.mean) / self.std

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """A = exp(y std + mean) (events,) float64."""
        return np.exp(np.asarray(y, dtype=np.float64) * self.std + self.mean)


def _log_amplitude(amplitudes: np.ndarray, who: str) -> np.ndarray:
    a = np.asarray(amplitudes, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{who}: expected one amplitude per event (events,), got shape "
                         f"{a.shape}")
    bad = ~(np.isfinite(a) & (a > 0))
    if bad.any():
        raise ValueError(f"{who}: {int(bad.sum())} amplitudes are not positive and finite "
                         f"(first at {np.flatnonzero(bad)[:5].tolist()})")
    return np.log(a)


@dataclass
class AmplitudeTaskConfig:
    """Optimiser settings of :class:`AmplitudeTask` besides the learning rate (module
    docstring): ``scheduler`` (``constant`` or ``cosine``), ``clip_grad_norm`` (0: none).
    ``ValueError`` naming a bad field."""

    scheduler: str = "constant"
    clip_grad_norm: float = 5.0

    def __post_init__(self) -> None:
        check_fields(self, {"clip_grad_norm": NON_NEGATIVE})
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler: {self.scheduler!r} is not one of {list(SCHEDULERS)}")


class AmplitudeTask(LossTask):
    """MSE of the standardised log amplitude; batches are (momenta (B, N, 4) [GeV], y (B,))."""

    def __init__(self, model: AmplitudeRegressor, lr: float = 1e-4, weight_decay: float = 0.0,
                 scheduler: str = "constant", clip_grad_norm: float = 5.0) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        p4, y = batch
        loss = torch.nn.functional.mse_loss(self.model(p4), y)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=len(y),
                 on_step=stage == "train", on_epoch=True)
        return loss

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.scheduler == "cosine":
            return adamw_with_cosine(self, [{"params": self.parameters()}], hp.lr,
                                     hp.weight_decay)
        return torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        if self.hparams.clip_grad_norm > 0:
            self.clip_gradients(optimizer, self.hparams.clip_grad_norm, "norm")


def train_regressor(model: AmplitudeRegressor, p4_train: np.ndarray, y_train: np.ndarray,
                    p4_val: np.ndarray, y_val: np.ndarray, training: TrainConfig,
                    out_dir: str | Path, task: AmplitudeTaskConfig | None = None,
                    resume: str | Path | None = None) -> AmplitudeRegressor:
    """Train ``model`` (preprocessing set from ``p4_train`` first) on momenta (events, N, 4)
    [GeV] and standardised targets y (events,); returns it with the weights of the best
    validation epoch. Logs and checkpoints under ``out_dir`` (:func:`jetfm.tasks.training.fit`;
    ``resume``: a checkpoint to continue from). ``ValueError`` for mismatched lengths."""
    for name, p4, y in (("training", p4_train, y_train), ("validation", p4_val, y_val)):
        if len(p4) != len(y) or not len(y):
            raise ValueError(f"{name} set: {len(p4)} momenta and {len(y)} targets")
    task = task or AmplitudeTaskConfig()
    model.set_preprocessing(p4_train)
    module = AmplitudeTask(model, scheduler=task.scheduler, clip_grad_norm=task.clip_grad_norm)
    fit(module, tensor_dataset(p4_train, y_train), tensor_dataset(p4_val, y_val), training,
        out_dir, resume=resume)
    return module.model


@torch.no_grad()
def predict(model: AmplitudeRegressor, p4: np.ndarray, batch_size: int = 4096,
            device: str | torch.device = "cpu") -> np.ndarray:
    """Standardised predictions (events,) float64 of momenta (events, N, 4) [GeV], in
    batches, in eval mode."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(p4), batch_size):
        chunk = torch.as_tensor(np.asarray(p4[start:start + batch_size]), dtype=torch.float32)
        out.append(model(chunk.to(device)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def relative_error(a_pred: np.ndarray, a_true: np.ndarray) -> np.ndarray:
    """Delta = (A_pred - A_true) / A_true (events,)."""
    a_true = np.asarray(a_true, dtype=np.float64)
    return (np.asarray(a_pred, dtype=np.float64) - a_true) / a_true


def error_summary(y_pred: np.ndarray, y_true: np.ndarray, scaler: LogAmplitudeScaler,
                  thresholds: Sequence[float] = DELTA_THRESHOLDS) -> dict[str, float]:
    """Metrics of standardised predictions ``y_pred`` against ``y_true`` (module docstring):
    ``mse`` (of y), ``delta_68`` (half-width of the central 68 % interval of Delta),
    ``delta_rms``, ``delta_median_abs``, ``delta_mean`` and ``frac_below_<t>`` for each
    threshold t. ``ValueError`` for different lengths, no events or non-finite predictions."""
    y_pred, y_true = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    if y_pred.shape != y_true.shape or not y_true.size:
        raise ValueError(f"predictions {y_pred.shape} and truth {y_true.shape} differ or are "
                         "empty")
    if not np.isfinite(y_pred).all():
        raise ValueError(f"{int((~np.isfinite(y_pred)).sum())} non-finite predictions")
    delta = relative_error(scaler.inverse(y_pred), scaler.inverse(y_true))
    q16, q84 = np.quantile(delta, [0.16, 0.84])
    out = {"mse": float(np.mean((y_pred - y_true) ** 2)), "delta_68": float((q84 - q16) / 2),
           "delta_rms": float(np.sqrt(np.mean(delta ** 2))),
           "delta_median_abs": float(np.median(np.abs(delta))),
           "delta_mean": float(np.mean(delta))}
    for t in thresholds:
        out[f"frac_below_{t:g}"] = float(np.mean(np.abs(delta) < t))
    return out


__all__ = ["AmplitudeTask", "AmplitudeTaskConfig", "LogAmplitudeScaler", "error_summary",
           "predict", "relative_error", "train_regressor"]
