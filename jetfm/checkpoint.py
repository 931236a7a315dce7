"""Model files: safetensors weights + JSON metadata (config, preprocessing), written atomically.

A jetfm model file never needs unpickling: tensors go through safetensors and everything
else (model configuration, the preprocessing that turns jets into inputs and back, class
names, the tokenizer a backbone was trained with) is JSON stored in the safetensors header.
Files load on CPU by default. Lightning's own ``.ckpt`` files (full training state, for
resuming) are loaded with ``weights_only=True`` by :mod:`jetfm.tasks.training`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from jetfm.atomic import atomic_path

META_KEY = "jetfm"


def save_model(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-able ``meta`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu"
               ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata written by :func:`save_model`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file {path}")
    device = check_device(device)
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a jetfm model file (not a safetensors file: {err})"
                         ) from None
    if META_KEY not in header:
        raise ValueError(f"{path}: not a jetfm model file (no '{META_KEY}' metadata)")
    return load_file(str(path), device=str(device)), json.loads(header[META_KEY])


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists here; ``ValueError`` naming it otherwise
    (``cuda`` without a CUDA device, ``cuda:3`` on a machine with two, ``mps`` without MPS,
    a name torch does not know). One check for every command and loader."""
    text = str(device)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{text!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"{text}: CUDA is not available on this machine (use cpu)")
        if device.index is not None and device.index >= n:
            raise ValueError(f"{text}: this machine has {n} CUDA device(s), cuda:0 to "
                             f"cuda:{n - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{text}: MPS is not available on this machine")
    elif device.type not in ("cpu", "mps", "cuda"):
        raise ValueError(f"{text}: jetfm runs on cpu, cuda[:N] or mps")
    return device


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries of ``state`` under ``prefix.``, with the prefix removed."""
    start = prefix + "."
    return {k[len(start):]: v for k, v in state.items() if k.startswith(start)}
