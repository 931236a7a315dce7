"""Pipelines that chain data, models, training and metrics into one resumable run each:
:mod:`~jetfm.studies.omnijet`, :mod:`~jetfm.studies.evolution`, :mod:`~jetfm.studies.transfer`.
Shared here: reading a YAML config into a dataclass, writing results as JSON and
reading a training run's log."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from jetfm.atomic import write_text_atomic


def read_config(path: str | Path, cls: type) -> dict[str, Any]:
    """The mapping in the YAML file ``path``, checked against the fields of dataclass ``cls``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no config file {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    valid = {f.name for f in fields(cls)}
    unknown = set(data) - valid
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: {sorted(valid)}")
    return data


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a file that exists is complete."""
    write_text_atomic(path, json.dumps(data, indent=2, default=float) + "\n")


def training_log(run_dir: Path) -> dict[str, float]:
    """Epochs, optimiser steps and best validation loss of the training run in ``run_dir``,
    from Lightning's ``run_dir/logs/metrics.csv`` (:func:`jetfm.tasks.training.fit`)."""
    import pandas as pd

    log = pd.read_csv(Path(run_dir) / "logs" / "metrics.csv")
    return {"epochs": int(log["epoch"].max()) + 1, "steps": int(log["step"].max()) + 1,
            "best_val_loss": float(log["val/loss"].min())}
