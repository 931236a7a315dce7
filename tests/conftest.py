"""Shared test set-up. Tests write their own small files in the real formats."""

from __future__ import annotations

import matplotlib
import torch

matplotlib.use("Agg")
# pytest-xdist runs one worker per core: one thread each avoids oversubscription.
torch.set_num_threads(1)
