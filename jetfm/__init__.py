"""jetfm: foundation models for jet physics.

The public data API lives in :mod:`jetfm.data` (the :class:`~jetfm.data.JetBatch` every reader
produces and every model consumes) and the physics in :mod:`jetfm.physics`.
Units: GeV for momenta, energies and masses; radians for angles.
Trained models are saved and loaded as bundle directories: :func:`save`, :func:`load`
(:mod:`jetfm.bundle`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load(path: str | os.PathLike[str], device: Any = None) -> Any:
    """The model of bundle directory ``path``, in eval mode on ``device`` (None: the CPU);
    see :func:`jetfm.bundle.load` (imported on first use, so ``import jetfm`` stays light)."""
    from jetfm.bundle import load as load_bundle

    return load_bundle(path, device)


def save(model: Any, path: str | os.PathLike[str], card: Mapping[str, Any] | None = None,
         *, overwrite: bool = True) -> Path:
    """Write ``model`` as a bundle directory ``path`` with model card ``card``, atomically;
    see :func:`jetfm.bundle.save`."""
    from jetfm.bundle import save as save_bundle

    return save_bundle(model, path, card, overwrite=overwrite)
