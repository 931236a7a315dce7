"""Shared fixtures. Tests write their own small files in the real formats."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
