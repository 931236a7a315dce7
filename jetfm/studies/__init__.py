"""Pipelines that chain data, models, training and metrics into one resumable run each:
:mod:`~jetfm.studies.omnijet`, :mod:`~jetfm.studies.evolution`, :mod:`~jetfm.studies.transfer`,
:mod:`~jetfm.studies.benchmark_tagging`. They orchestrate only: models are built, trained and
applied through :mod:`jetfm.models` and :mod:`jetfm.tasks`.
Shared here: reading a YAML config into a dataclass, writing results as JSON, reading a
training run's log, and
:class:`Stage`, the one mechanism by which every resumable stage of every study decides
whether what is on disk may be reused.

Policy for stale results (all studies): a stage's outputs are reused only when its record
shows the same configuration subset and the same inputs (file digests, tokenizer
fingerprints, digests of the upstream stages' records); otherwise the stage, and through the
digests everything downstream of it, is redone, with one printed line per stage saying which
keys differ (``stage tokenizer: redone (config vqvae.codebook_size: 16 -> 32)``).
A backbone is only ever used with the tokens of the tokenizer it was trained on
(:func:`jetfm.models.tokenizer.check_fingerprint`; OmniJet model files carry their tokenizer)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from jetfm.atomic import file_digest  # noqa: F401  (re-exported)
from jetfm.models.tokenizer import check_fingerprint  # noqa: F401  (re-exported)
from jetfm.report import write_json  # noqa: F401  (re-exported)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    silently: ``y_cut: 0.01`` then ``y_cut: 0.1`` would run with 0.1 unseen)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> Any:
    """The data in the YAML file ``path`` (None for an empty file). Raises
    ``FileNotFoundError`` naming a missing file and ``ValueError`` naming the file, the line
    and the problem for malformed YAML (PyYAML's own message names only "<unicode string>")
    and for a key given twice in one mapping.
    ``path`` may name a shipped preset (``"omnijet_cpu"``: :func:`jetfm.configs.locate`), as
    on the command line."""
    from jetfm.configs import locate

    path = locate(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file {path}" if not path.exists()
                                else f"{path} is not a file")
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (safe)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        since = f" started at line {start.line + 1}, column {start.column + 1}" if start else ""
        problem = getattr(err, "problem", None) or str(err)
        what = f"{context}{since}: {problem}" if context else str(problem)
        raise ValueError(f"{path}:{line} malformed YAML: {' '.join(what.split())}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text (UTF-8) YAML file ({err.reason})") from None


def read_config(path: str | Path, cls: type, overrides: Sequence[str] = ()
                ) -> dict[str, Any]:
    """The mapping in the YAML file ``path``, checked against the fields of dataclass ``cls``
    (errors as :func:`load_yaml`'s; ``ValueError`` naming the file for unknown keys), with the
    command-line ``KEY=VALUE`` ``overrides`` applied (:func:`jetfm.configs.apply_overrides`:
    ``ValueError`` naming the file and the override for an unknown key or a wrong type)."""
    from jetfm.configs import apply_overrides

    path = Path(path)
    data = load_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    valid = {f.name for f in fields(cls)}
    unknown = set(data) - valid
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; valid: {sorted(valid)}")
    return apply_overrides(data, overrides, cls, path) if overrides else data


def config_from_yaml(path: str | Path, cls: type, overrides: Sequence[str] = ()) -> Any:
    """``cls(**data)`` for the mapping in the YAML file ``path`` with ``overrides``
    (:func:`read_config`); ``ValueError`` naming the file for unknown keys or a value ``cls``
    rejects."""
    data = read_config(path, cls, overrides)
    if not data:
        raise ValueError(f"{path}: the config file holds no keys (an empty file would run "
                         "every default)")
    try:
        return cls(**data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def check_config_values(where: str | Path, checks: Iterable[tuple[str, Callable[[], object]]]
                        ) -> None:
    """Build each config object of ``checks`` ((block name, call) pairs such as
    ``("vqvae", lambda: VQVAEConfig(**config.vqvae))``; ``""`` for top-level keys) before any
    work is
    done, so a bad value (``dim: sixteen``, ``codebook_size: -32``) raises ``ValueError``
    naming ``where`` (the file), the block and the key instead of failing deep in a model."""
    for block, make in checks:
        try:
            make()
        except (TypeError, ValueError) as err:
            prefix = f"{where}: {block}: " if block else f"{where}: "
            raise ValueError(prefix + str(err)) from None


# ----------------------------------------------------------------------------- stages
STAGES_DIR = "stages"


@dataclass
class HeldOutStudy:
    """Fields shared by the studies of variants (tokenizer, GPT curve): the jets (generated,
    or ``files``), the preprocessing cuts and the held-out split: ``n_eval`` evaluated jets
    and ``n_floor`` (default ``n_eval``) independent ones for the floor."""

    files: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    seed: int = 1
    n_max: int = 64
    pt_min: float | None = 0.1
    n_eval: int = 1000
    n_floor: int | None = None

    @property
    def floor_jets(self) -> int:
        return self.n_eval if self.n_floor is None else self.n_floor


def variant_entries(variants: Any, where: str | Path, keys: Iterable[str],
                    blocks: dict[str, Iterable[str]]) -> list[tuple[dict[str, Any], str]]:
    """The ``variants`` list of a study config, checked: a non-empty list of mappings, each
    with a ``name`` usable as a folder name, only ``keys`` and, in its blocks, only the keys
    of ``blocks``; names unique. Returns (entry, label) pairs, the label naming ``where`` and
    the variant for the study's own checks; ``ValueError`` naming them otherwise."""
    from jetfm.tasks.training import check_blocks, check_keys

    if not isinstance(variants, list) or not variants:
        raise ValueError(f"{where}: variants: give a list of at least one variant")
    out, names = [], []
    for i, entry in enumerate(variants):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{where}: variants[{i}]: each variant is a mapping with a name")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", entry["name"]):
            raise ValueError(f"{where}: variants[{i}]: name {entry['name']!r}: use letters, "
                             "digits and _ . + - (it names a folder)")
        names.append(entry["name"])
        label = f"{where}: variant {entry['name']}"
        check_keys(entry, keys, label)
        check_blocks(entry, blocks, label)
        out.append((entry, label))
    repeated = sorted(n for n, c in Counter(names).items() if c > 1)
    if repeated:
        raise ValueError(f"{where}: variants: names {repeated} appear more than once")
    return out


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``vqvae.codebook_size``), for naming what differs."""
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _differences(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old, new = _flat(old), _flat(new)
    return [f"{kind} {key}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}"
            for key in sorted(set(old) | set(new)) if old.get(key, "(absent)") !=
            new.get(key, "(absent)")]


class Stage:
    """One resumable step of a study, reused only when it was made from the same things.

    The record ``<out_dir>/stages/<name>.json`` (written atomically by :meth:`finish`, after
    the stage's outputs) holds the ``config`` subset the stage depends on, the digests of its
    ``inputs`` (files via :func:`file_digest`, tokenizer fingerprints, upstream
    :attr:`digest`) and of its ``outputs``. :meth:`prepare` reuses the stage when the record
    exists and its config, inputs and outputs (present, same digest) all match; otherwise it
    prints one line naming the stage and each key that differs, deletes the old outputs and
    ``folder`` (so stale files cannot be read back) and returns False: the caller redoes the
    stage and calls :meth:`finish`. Outputs without a record (an older jetfm, files copied
    in by hand) are redone too: nothing says what they were made from.
    """

    def __init__(self, out_dir: str | Path, name: str, config: dict[str, Any],
                 inputs: dict[str, str] | None = None, outputs: list[Path] | None = None,
                 folder: Path | None = None) -> None:
        self.out_dir, self.name = Path(out_dir), name
        self.config = json.loads(json.dumps(config, default=float))
        self.inputs = dict(inputs or {})
        self.outputs = [Path(p) for p in outputs or []]
        self.folder = folder
        self.record_path = self.out_dir / STAGES_DIR / f"{name}.json"

    def _label(self, path: Path) -> str:
        return str(path.relative_to(self.out_dir)) if path.is_relative_to(self.out_dir) \
            else str(path)

    def _read(self) -> dict[str, Any] | None:
        if not self.record_path.exists():
            return None
        try:
            return json.loads(self.record_path.read_text())
        except json.JSONDecodeError:
            return None

    def stale(self) -> list[str]:
        """Why the stage cannot be reused ([] when it can); no side effects."""
        record = self._read()
        if record is None:
            return ["no record of what it was made from"]
        reasons = _differences("config", record.get("config", {}), self.config)
        reasons += _differences("input", record.get("inputs", {}), self.inputs)
        recorded = record.get("outputs", {})
        for path in self.outputs:
            label = self._label(path)
            if not path.exists():
                reasons.append(f"output {label} missing")
            elif recorded.get(label) != file_digest(path):
                reasons.append(f"output {label} changed since it was made")
        return reasons

    def prepare(self) -> bool:
        """True: reuse the outputs. False: they were removed (with a printed line saying
        which keys differ when a record existed); redo the stage, then call :meth:`finish`."""
        reasons = self.stale()
        if not reasons:
            return True
        if self.record_path.exists() or any(p.exists() for p in self.outputs):
            print(f"stage {self.name}: redone ({'; '.join(reasons)})")
        self.record_path.unlink(missing_ok=True)
        for path in self.outputs:
            if path.is_relative_to(self.out_dir):  # never delete a user's input file
                path.unlink(missing_ok=True)
        if self.folder is not None and self.folder.is_relative_to(self.out_dir):
            shutil.rmtree(self.folder, ignore_errors=True)
        return False

    def finish(self) -> None:
        """Record config, inputs and output digests (call after the outputs are written)."""
        outputs = {self._label(p): file_digest(p) for p in self.outputs}
        write_json(self.record_path, {"stage": self.name, "config": self.config,
                                      "inputs": self.inputs, "outputs": outputs})

    @property
    def digest(self) -> str:
        """Hash of the record (config, inputs, outputs): the input digest downstream stages
        record. Raises FileNotFoundError before :meth:`finish`."""
        if not self.record_path.exists():
            raise FileNotFoundError(f"stage {self.name}: no record {self.record_path}")
        return hashlib.sha256(self.record_path.read_bytes()).hexdigest()[:16]


def start_cell(stage: Stage, cell_dir: Path) -> bool:
    """Prepare ``cell_dir`` for a (re)run: kept (True: training resumes from its checkpoint)
    when its ``cell.json`` shows the settings of ``stage``, emptied otherwise."""
    marker = cell_dir / "cell.json"
    wanted = {"config": stage.config, "inputs": stage.inputs}
    if marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(wanted)):
        return True
    shutil.rmtree(cell_dir, ignore_errors=True)
    cell_dir.mkdir(parents=True)
    write_json(marker, wanted)
    return False


def data_digests(files: list[Path], out_dir: Path) -> dict[str, str]:
    """File digests keyed by the path relative to ``out_dir`` (the built-in data) or the
    absolute path (a user's files), so a copied or moved run folder keeps its cells."""
    out = {}
    for f in files:
        path = Path(f).resolve()
        root = out_dir.resolve()
        key = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        out[key] = file_digest(path)
    return out


def generated_stage(out_dir: str | Path, name: str, config: dict[str, Any],
                    make: Callable[[], list[Path]]) -> list[Path]:
    """Jet files made by ``make`` (a call of :func:`jetfm.data.generated.generated_files`,
    which reuses a file only when its own record shows the same generator settings, seed,
    workers and number of jets): recorded as the stage ``name`` with ``config``, so a change
    is announced like every other stage's. Stages downstream record the files' digests."""
    stage = Stage(out_dir, name, config)
    reused = stage.prepare()
    paths = make()
    if not reused:
        stage.finish()
    return paths
def training_log(run_dir: Path) -> dict[str, float]:
    """Epochs, optimiser steps and best validation loss of the training run in ``run_dir``,
    from Lightning's ``run_dir/logs/metrics.csv`` (:func:`jetfm.tasks.training.fit`)."""
    import pandas as pd

    log = pd.read_csv(Path(run_dir) / "logs" / "metrics.csv")
    return {"epochs": int(log["epoch"].max()) + 1, "steps": int(log["step"].max()) + 1,
            "best_val_loss": float(log["val/loss"].min())}


def zjets_events(out_dir: Path, n_events: int, zjets: dict[str, Any], workers: int, seed: int
                 ) -> tuple[Any, str]:
    """The Z -> mu mu + jets events of a study (``out_dir/data/zjets.h5``, simulated by
    :func:`jetfm.data.zjets.generate_zjets` with ``ZJetsConfig(**zjets)``; reused while these
    keys match, as the stage ``data``) and the stage's digest for the stages downstream."""
    from jetfm.data.events import read_events, write_events
    from jetfm.data.zjets import ZJetsConfig, generate_zjets

    path = Path(out_dir) / "data" / "zjets.h5"
    keys = {"n_events": n_events, "zjets": zjets, "workers": workers, "seed": seed}
    stage = Stage(out_dir, "data", keys, outputs=[path])
    if not stage.prepare():
        print(f"simulating {n_events:,} Z -> mu mu + jets events")
        events = generate_zjets(n_events, ZJetsConfig(**zjets), seed=seed, workers=workers)
        write_events(events, path)
        stage.finish()
    return read_events(path), stage.digest


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's CPU thread count set to ``threads`` (None or 0: unchanged) inside the block and
    restored after it (an oversubscribed machine runs small networks faster on one thread)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
