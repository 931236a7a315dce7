"""The tagging benchmark: every backbone and the gradient-boosted baseline on the same jets.

    jetfm benchmark tagging --config benchmark_tagging_cpu [--data FILES] [--out DIR]
        [KEY=VALUE ...]

Orchestration only: models are built, trained and applied through the public API
(:func:`jetfm.tasks.tagging.train_tagger`, :meth:`jetfm.models.tagger.Tagger.predict_proba`,
:class:`jetfm.models.gbdt.GBDTTagger`); numbers come from
:func:`jetfm.metrics.tagging.multiclass_summary`.

**Data.** The built-in 5-class data (QCD, t -> bqq', W -> qq', Z -> qq, H -> bb: the processes
``qcd, top, w, z, hbb`` of :func:`jetfm.data.generated.generated_files`, JetClass-like cuts),
generated once per run folder and reused, or labelled jet files (``files`` / ``--data``, any
format jetfm reads; ``skip_invalid`` / ``--skip-invalid`` drops and counts invalid jets) whose
classes must be exactly ``classes``.

**Split** (fixed by ``seed``): each class is shuffled once; the first ``n_test`` jets are the
test set. For each D of ``sizes`` (training jets **per class**) a model trains on the next D
jets and validates (early stopping, best epoch) on the last ``max(1, round(val_fraction *
D))`` jets of the shuffled class: the same jets for every model at a given D, nested in D,
disjoint from each other and from the test jets, which are the same for every cell
(:func:`make_split`). Generated data are made with ``n_test`` + the largest D and its
validation jets per class, so a config that changes these makes new data and redoes every
cell (announced, as every redone stage).

**Budget rule: equal optimiser steps.** Every neural model trains for at most ``max_steps``
optimiser steps at a given D (one number for every D, or a mapping D -> steps; ``max_epochs``
defaults to 10,000 so that the steps bind), stopping earlier only by early stopping on the
validation loss (``patience``); the steps taken are in the table. A model entry may set its
own ``max_steps`` (an exception the table's budget line states, e.g. a model too slow for the
common budget on a CPU). The baseline stops by early stopping on
the same validation jets (:mod:`jetfm.models.gbdt`).

**Cells.** Each (model, D) is one resumable stage (:class:`jetfm.studies.Stage`,
``stages/cells/D{D}/{model}.json``), reused only while the model's entry (its training block
merged with the shared one), the split settings, the metric settings and the data files'
digests are the same: a changed model entry redoes that model's cells only. A cell
interrupted during training resumes from its checkpoint when its recorded settings
(``cell.json``) are unchanged, and starts afresh otherwise (its training time then counts
the last attempt only).

**Numbers** (on the test jets, each with a bootstrap error over ``n_bootstrap`` resamples of
the test jets within each class): accuracy, macro one-vs-one AUC, the QCD rejection
1/eps_B at eps_S = ``signal_efficiency`` for every other class with p_X / (p_X + p_QCD) (ParT
paper's JetClass convention), the W-vs-Z and H-vs-Z AUC; and the parameters (the baseline:
nodes of its trees), the training time (wall time from jets to a fitted model, including
feature and observable computation) and the inference rate (test jets per second from jets to
probabilities on ``device``, feature computation included).

Layout of ``out``::

    data/                    generated jets (without --data)
    cells/D{D}/{model}/      result.json, test_probs.npz, cell.json, tagger.safetensors
                             (neural models), checkpoints/ and logs/
    plots/roc_D{D}.png       QCD rejection vs eps_S, one panel per class, one curve per model
    table.md, table.json     every number of every cell
    stages/                  what each stage was made from
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE_INT, Rule, check_fields, check_flag, number
from jetfm.configs import presets_dir
from jetfm.console import Console
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index, class_name
from jetfm.data.generated import generated_files
from jetfm.data.io import check_distinct_files, read_jets
from jetfm.data.pythia import PROCESSES
from jetfm.data.tokens import TokenDataset
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.metrics.tagging import CLASS_PAIRS, multiclass_summary, paired_difference
from jetfm.models.gbdt import GBDTConfig, GBDTTagger
from jetfm.models.gpt import GPTConfig
from jetfm.models.tagger import check_classes
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAEConfig
from jetfm.plots.roc import plot_multiclass_roc
from jetfm.report import format_value, markdown_table
from jetfm.studies import (
    Stage,
    check_config_values,
    file_digest,
    generated_stage,
    read_config,
    start_cell,
    training_log,
    write_json,
)
from jetfm.tasks.omnijet import GPT_KEYS, VQVAE_KEYS, fit_generative, fit_tokenizer
from jetfm.tasks.tagging import TaggingConfig, tagging_config, train_tagger
from jetfm.tasks.training import TRAIN_KEYS, TrainConfig, check_keys

console = Console(soft_wrap=True, emoji=False)

PRESETS_DIR = presets_dir()  # the shipped presets (package data)
GBDT = "gbdt"  # the ``backbone`` key of the gradient-boosted baseline's model entry
BUDGET_KEYS = ("max_steps", "seed")  # set by the benchmark, not by a training block
DEFAULT_MAX_EPOCHS = 10_000  # so that max_steps, not the epochs, ends training
CLASS_PROCESS = {name: process for process, name in PROCESSES.items()}
MODEL_KEYS = {"name", "max_steps", *asdict(TaggingConfig())} - {"classes"}
PRETRAINED = "pretrained"  # init: the benchmark's own OmniJet pre-training (omnijet block)
OMNIJET_DEFAULTS = {"n_jets": 2000, "n_max": 64, "pt_min": 0.1, "vqvae": {}, "gpt": {},
                    "tokenizer_training": {}, "pretraining": {}}


def default_models() -> list[dict[str, Any]]:
    """The baseline and ParT with its default configuration."""
    return [{"name": "GBDT", "backbone": GBDT}, {"name": "ParT", "backbone": "part"}]


@dataclass
class BenchmarkConfig:
    """Everything the benchmark needs; ``jetfm/configs/benchmark_tagging_{tiny,cpu,gpu}.yaml`` fill
    it. Model entries: ``name`` (unique; the cell folder), ``backbone`` (``gbdt`` for the
    baseline, whose options are its ``backbone_config``: :class:`~jetfm.models.gbdt.GBDTConfig`
    keys) and the keys of :class:`~jetfm.tasks.tagging.TaggingConfig` but ``classes``; a
    model's ``training`` overrides the shared ``training`` key by key."""

    classes: list[str] = field(default_factory=lambda: ["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"])
    sizes: list[int] = field(default_factory=lambda: [1000, 10000])  # D: training jets/class
    n_test: int = 2000  # test jets per class
    val_fraction: float = 0.2  # validation jets per class = max(1, round(val_fraction * D))
    files: list[str] = field(default_factory=list)  # labelled jet files instead of generated
    skip_invalid: bool = False  # files: drop (and count) invalid jets instead of stopping
    workers: int = 2  # generator processes
    seed: int = 1  # data generation, split and training
    max_steps: int | dict[int, int] = 2000  # the budget: steps of every neural model (per D)
    training: dict[str, Any] = field(default_factory=dict)  # shared TrainConfig keys
    models: list[dict[str, Any]] = field(default_factory=default_models)
    n_bootstrap: int = 100
    signal_efficiency: float = 0.5
    inference_batch: int = 512
    device: str = "cpu"  # inference: cpu, cuda, auto
    omnijet: dict[str, Any] = field(default_factory=dict)  # the pre-training of init: pretrained

    def __post_init__(self) -> None:
        self.classes = list(check_classes(self.classes, "classes"))
        if "QCD" not in self.classes:
            raise ValueError(f"classes {self.classes}: QCD is needed (rejections are quoted "
                             "against QCD)")
        if not isinstance(self.sizes, list):
            raise ValueError(f"sizes: {self.sizes!r}; give a list of D (training jets per "
                             "class), e.g. [1000, 10000]")
        self.sizes = [_count(v, "sizes") for v in self.sizes]
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"sizes: {self.sizes} lists a D twice")
        self.n_test = _count(self.n_test, "n_test")
        if not self.sizes:
            raise ValueError("sizes: give at least one D (training jets per class)")
        self.max_steps = check_budget(self.max_steps, self.sizes, "max_steps")
        check_fields(self, {"workers": POSITIVE_INT, "seed": Rule(int, low=0),
                            "val_fraction": Rule(float, low=0, low_open=True, high=1,
                                                 high_open=True),
                            "n_bootstrap": Rule(int, low=2), "inference_batch": POSITIVE_INT,
                            "signal_efficiency": Rule(float, low=0, low_open=True, high=1)})
        if isinstance(self.files, str):
            self.files = [self.files]
        check_flag("skip_invalid", self.skip_invalid)
        self.training = self.training or {}
        check_keys(self.training, TRAIN_KEYS - set(BUDGET_KEYS), "training")
        if self.device != "auto":
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, TypeError, ValueError):
                raise ValueError(f"device: {self.device!r} is not a device; use auto, cpu, "
                                 "cuda or cuda:N") from None
        if not self.models:
            raise ValueError("models: list at least one model")
        if not isinstance(self.models, list) or not all(isinstance(m, dict)
                                                         for m in self.models):
            raise ValueError(f"models: {self.models!r}; give a list of model entries, each a "
                             "mapping with name and backbone")
        names = [m.get("name") if isinstance(m, dict) else None for m in self.models]
        for i, (entry, name) in enumerate(zip(self.models, names, strict=True)):
            model = self.model_config(entry, f"models[{i}]")
            if not isinstance(model, TaggingConfig):
                continue
            if model.init == PRETRAINED:
                if model.backbone != "omnijet":
                    raise ValueError(f"models[{i}] ({name}): init: {PRETRAINED} is the "
                                     "benchmark's OmniJet pre-training; it needs backbone: "
                                     f"omnijet, not {model.backbone}")
                continue
            try:  # a bad backbone, head or init file stops here, before any work
                model.build()
            except (ValueError, FileNotFoundError) as err:
                raise ValueError(f"models[{i}] ({name}): {err}") from None
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique, got {names}")
        self.omnijet = self.omnijet or {}
        check_omnijet_block(self.omnijet)  # kept as given; the defaults fill in at use
        uses = [n for m, n in zip(self.models, names, strict=True) if m.get("init") == PRETRAINED]
        if uses and not self.omnijet:
            raise ValueError(f"models {uses}: init: {PRETRAINED} needs the omnijet block (the "
                             "generative pre-training to start from)")

    def n_val(self, size: int) -> int:
        """Validation jets per class at D = ``size``."""
        return max(1, round(self.val_fraction * size))

    @property
    def n_per_class(self) -> int:
        """Jets needed per class: test + the largest validation and training sets."""
        return self.n_test + self.n_val(max(self.sizes)) + max(self.sizes)

    def steps(self, entry: dict[str, Any], size: int) -> int:
        """The optimiser-step budget of model ``entry`` at D = ``size``: its own
        ``max_steps`` where it sets one, else the benchmark's."""
        budget = entry.get("max_steps", self.max_steps)
        return budget if isinstance(budget, int) else budget[size]

    def training_block(self, entry: dict[str, Any], size: int) -> dict[str, Any]:
        """The shared training keys, the model's own, and the budget at D = ``size``
        (:meth:`steps`; the seed is the benchmark's)."""
        return {"max_epochs": DEFAULT_MAX_EPOCHS, **self.training,
                **(entry.get("training") or {}), "max_steps": self.steps(entry, size)}

    def model_config(self, entry: Any, where: str, size: int | None = None
                     ) -> GBDTConfig | TaggingConfig:
        """The model entry as the baseline's or a tagger's configuration at D = ``size``
        (default: the first D); ``ValueError`` naming ``where``, the key and the problem."""
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected a mapping with name and backbone, got {entry!r}")
        check_keys(entry, MODEL_KEYS, where)
        name = entry.get("name")
        if not isinstance(name, str) or not name or not name.replace("-", "").replace(
                "_", "").replace(".", "").isalnum():
            raise ValueError(f"{where}: name {name!r} must be a non-empty string of letters, "
                             "digits, '-', '_', '.' (it names the cell folder)")
        if "backbone" not in entry:
            raise ValueError(f"{where} ({name}): no backbone (part, lgatr, pet, omnijet or "
                             f"{GBDT})")
        if entry["backbone"] == GBDT:
            unused = sorted(set(entry) - {"name", "backbone", "backbone_config"})
            if unused:
                raise ValueError(f"{where} ({name}): keys {unused} do not apply to the "
                                 "gradient-boosted baseline (its options: backbone_config)")
            return GBDTConfig.from_dict(entry.get("backbone_config"), f"{where} ({name}): "
                                        "backbone_config")
        check_keys(entry.get("training") or {}, TRAIN_KEYS - set(BUDGET_KEYS),
                   f"{where} ({name}): training (max_steps is the benchmark's budget, seed "
                   "the benchmark's seed)")
        if "max_steps" in entry:
            entry = {**entry, "max_steps": check_budget(entry["max_steps"], self.sizes,
                                                        f"{where} ({name}): max_steps")}
        data = {k: v for k, v in entry.items() if k not in ("name", "max_steps")}
        data["training"] = self.training_block(entry, self.sizes[0] if size is None else size)
        return tagging_config({**data, "classes": self.classes}, f"{where} ({name})")

    def cell_config(self, entry: dict[str, Any], size: int) -> dict[str, Any]:
        """What the numbers of cell (``entry``, D = ``size``) depend on (its stage record)."""
        # max_steps: in the training block; init: by its digest (the stage's inputs), so the
        # record does not depend on how the run folder or the file path is spelled
        model = {k: v for k, v in deepcopy(entry).items() if k not in ("max_steps", "init")}
        if entry["backbone"] != GBDT:
            model["training"] = self.training_block(entry, size)
        keys = ("classes", "n_test", "seed", "n_bootstrap", "signal_efficiency", "skip_invalid")
        return {"model": model, "D": size, "n_val": self.n_val(size),
                **{k: getattr(self, k) for k in keys}}


def check_budget(value: Any, sizes: list[int], name: str) -> int | dict[int, int]:
    """A step budget: a positive whole number, or a mapping D -> steps covering every D of
    ``sizes`` (YAML keys such as ``1e4`` accepted); ``ValueError`` naming ``name``."""
    if not isinstance(value, dict):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: {value!r} is not a positive whole number of optimiser "
                             "steps (or a mapping D -> steps)")
        return value
    budget = {_count(k, f"{name} (a key: D)"): check_budget(v, sizes, f"{name}[{k}]")
              for k, v in value.items()}
    missing = [size for size in sizes if size not in budget]
    if missing:
        raise ValueError(f"{name}: no budget for D = {missing} (the mapping has "
                         f"{sorted(budget)})")
    unused = sorted(set(budget) - set(sizes))
    if unused:
        raise ValueError(f"{name}: D = {unused} is not among sizes {sizes} (a budget that "
                         "no cell uses)")
    return budget


def _count(value: Any, name: str) -> int:
    """A positive whole number of jets; YAML's '1e4' (a string) and 1.0e4 are accepted;
    ``ValueError`` naming ``name`` for anything else (infinities and NaN included)."""
    try:
        return number(name, value, POSITIVE_INT)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a positive whole number of jets") from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> BenchmarkConfig:
    """The benchmark config in the YAML file ``path`` with the command-line ``KEY=VALUE``
    ``overrides`` (:func:`jetfm.studies.read_config`); ``ValueError`` naming the file and
    the bad key or value."""
    data = read_config(path, BenchmarkConfig, overrides)
    try:
        return BenchmarkConfig(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


# ----------------------------------------------------------------------------- data
def load_data(config: BenchmarkConfig, out_dir: Path
              ) -> tuple[dict[str, JetBatch], dict[str, str]]:
    """Jets per class (the config's files, or generated ones reused while the generator
    settings are the same) and the digest of the data (the input every cell records).

    Raises ``ValueError`` naming the files and the classes found when the files' labels do
    not match ``classes``, and when a class has fewer jets than the split needs."""
    if config.files:
        check_distinct_files(config.files)
        jets = read_jets(config.files, skip_invalid=config.skip_invalid)
        if len(jets) == 0:
            after = " after dropping invalid jets" if config.skip_invalid else ""
            raise JetDataError(f"{', '.join(config.files)}: 0 jets{after}; nothing to "
                               "benchmark")
        check_labels(jets, config.classes)
        per_class = {name: jets[jets.label == class_index(name)] for name in config.classes}
        digests = {"data": "+".join(file_digest(f) for f in config.files)}
        origin = {name: ", ".join(np.asarray(jets.source_files)[np.unique(
            jets.source[jets.label == class_index(name)])]) for name in config.classes}
    else:
        missing = [c for c in config.classes if c not in CLASS_PROCESS]
        if missing:
            raise ValueError(f"classes {missing} have no built-in generator (built-in: "
                             f"{sorted(CLASS_PROCESS)}); give labelled files with --data")
        processes = [CLASS_PROCESS[c] for c in config.classes]
        paths = generated_stage(
            out_dir, "data", {"processes": processes, "n_jets": config.n_per_class,
                              "seed": config.seed, "workers": config.workers},
            partial(generated_files, processes, config.n_per_class, out_dir / "data",
                    seed=config.seed, workers=config.workers))
        per_class = {c: read_jets([str(p)]) for c, p in zip(config.classes, paths, strict=True)}
        digests = {f"data/{c}": file_digest(p) for c, p in zip(config.classes, paths,
                                                                strict=True)}
        origin = {c: str(p) for c, p in zip(config.classes, paths, strict=True)}
    for name, batch in per_class.items():
        if len(batch) < config.n_per_class:
            raise ValueError(
                f"{origin[name]}: {len(batch)} jets of class {name}; the benchmark needs "
                f"{config.n_per_class} per class (n_test {config.n_test} + validation "
                f"{config.n_val(max(config.sizes))} + the largest D {max(config.sizes)})")
    return per_class, digests


def check_labels(jets: JetBatch, classes: list[str]) -> None:
    """``ValueError`` naming each file whose jets hold classes outside ``classes`` (or
    unlabelled ones) and the classes found, and the classes of ``classes`` no file holds."""
    problems = []
    for k, path in enumerate(jets.source_files):
        labels = jets.label[jets.source == k]
        found = {class_name(int(v)): int(n) for v, n in
                 zip(*np.unique(labels, return_counts=True), strict=True)}
        extra = sorted(set(found) - set(classes))
        if extra:
            problems.append(f"{path} holds jets of {extra} (classes found: {found})")
    present = {class_name(int(v)) for v in np.unique(jets.label)}
    absent = [c for c in classes if c not in present]
    if absent:
        problems.append(f"no file holds jets of {absent} (classes found in "
                        f"{', '.join(jets.source_files)}: {sorted(present)})")
    if problems:
        raise JetDataError(f"the data do not match the class list {classes}: "
                           + "; ".join(problems))


@dataclass
class Split:
    """Jet indices per class: test jets, and the pools whose first D (training) and first
    n_val (validation) jets a cell uses; fixed by the seed."""

    test: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    train: dict[str, np.ndarray]


def make_split(jets: dict[str, JetBatch], config: BenchmarkConfig) -> Split:
    """Each class shuffled once (seed: (``seed``, class index)): the first ``n_test`` jets are
    the test set, the training pool runs forward from there and the validation pool backward
    from the end. So a cell's jets depend only on the seed, ``n_test``, its D and the class's
    jets, not on the other sizes of the config (adding a D reuses the other cells), and they
    are disjoint while ``n_test`` + D + n_val fits (checked by :func:`load_data`)."""
    test, val, train = {}, {}, {}
    for name, batch in jets.items():
        order = np.random.default_rng([config.seed, class_index(name)]).permutation(len(batch))
        test[name] = order[:config.n_test]
        train[name] = order[config.n_test:]
        val[name] = order[config.n_test:][::-1]
    return Split(test, val, train)


def select(jets: dict[str, JetBatch], indices: dict[str, np.ndarray], n: int | None = None
           ) -> JetBatch:
    """The first ``n`` (all: None) jets of each class's ``indices``, classes in order."""
    return JetBatch.concatenate([jets[c][idx[:n]] for c, idx in indices.items()])


# ----------------------------------------------------------------------------- cells
def _fit_gbdt(entry: dict[str, Any], train: JetBatch, val: JetBatch, config: BenchmarkConfig,
              cell_dir: Path, size: int) -> tuple[GBDTTagger, dict[str, Any]]:
    model = GBDTTagger(entry.get("backbone_config"), seed=config.seed)
    model.fit(train, val, config.classes)
    bad = {split: {k: v for k, v in counts.items() if v} for split, counts in
           model.nonfinite.items()}
    if any(bad.values()):
        console.print(f"  observables undefined (NaN, kept: trees route them): {bad}")
    return model, {"parameters": model.n_parameters, "iterations": model.n_iterations,
                   "nonfinite_observables": bad}


def _fit_tagger(entry: dict[str, Any], train: JetBatch, val: JetBatch,
                config: BenchmarkConfig, cell_dir: Path, size: int
                ) -> tuple[Any, dict[str, Any]]:
    tagger = train_tagger(train, val, config.model_config(entry, entry["name"], size),
                          cell_dir, seed=config.seed)
    info: dict[str, Any] = {"parameters": sum(p.numel() for p in tagger.parameters())}
    try:
        info.update(training_log(cell_dir))
    except KeyError:  # no validation ran (max_steps within the first epoch)
        log = pd.read_csv(cell_dir / "logs" / "metrics.csv")
        info.update(steps=int(log["step"].max()) + 1, epochs=int(log["epoch"].max()) + 1)
    except FileNotFoundError:
        pass  # no Lightning log (a non-zero DDP rank): steps unknown
    return tagger, info


def inference_device(name: str) -> str:
    """The device of ``device`` (``auto``: CUDA when available, else the CPU); ``ValueError``
    when it asks for CUDA on a machine without."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(name).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {name} is not available on this machine (set device: cpu "
                         "or auto in the config)")
    return name


def run_cell(entry: dict[str, Any], size: int, jets: dict[str, JetBatch], split: Split,
             config: BenchmarkConfig, cell_dir: Path) -> dict[str, Any]:
    """Train model ``entry`` on D = ``size`` jets per class, predict the test jets, write
    ``test_probs.npz`` and ``result.json``; returns the result."""
    train = select(jets, split.train, size)
    val = select(jets, split.val, config.n_val(size))
    test = select(jets, split.test)
    start = time.perf_counter()
    fit = _fit_gbdt if entry["backbone"] == GBDT else _fit_tagger
    model, info = fit(entry, train, val, config, cell_dir, size)
    seconds = time.perf_counter() - start
    if entry["backbone"] != GBDT:
        model = model.to(inference_device(config.device))
    start = time.perf_counter()
    probs = (model.predict_proba(test) if entry["backbone"] == GBDT
             else model.predict_proba(test, batch_size=config.inference_batch))
    rate = len(test) / (time.perf_counter() - start)
    labels = model.labels_of(test, "test jets")
    np.savez(cell_dir / "test_probs.npz", labels=labels, probs=probs)
    summary = multiclass_summary(labels, probs, config.classes,
                                 signal_efficiency=config.signal_efficiency,
                                 n_bootstrap=config.n_bootstrap, seed=config.seed)
    result = {"model": entry["name"], "backbone": entry["backbone"], "D": size,
              "n_train": len(train), "n_val": len(val), "n_test": len(test),
              "training_seconds": seconds, "inference_jets_per_second": rate, **info,
              "metrics": {k: asdict(v) for k, v in summary.items()}}
    write_json(cell_dir / "result.json", result)
    return result


def cell_stage(entry: dict[str, Any], size: int, config: BenchmarkConfig, out_dir: Path,
               data: dict[str, str]) -> Stage:
    """The record of cell (``entry``, D = ``size``): its configuration subset and inputs (the
    data digests and, with ``init``, the digest of that file)."""
    cell_dir = out_dir / "cells" / f"D{size}" / entry["name"]
    inputs = dict(data)
    if entry.get("init"):
        inputs["init"] = file_digest(entry["init"])
    return Stage(out_dir, f"cells/D{size}/{entry['name']}", config.cell_config(entry, size),
                 inputs, [cell_dir / "result.json", cell_dir / "test_probs.npz"])


def check_models(config: BenchmarkConfig, sample: JetBatch) -> None:
    """Build every neural model once and prepare ``sample`` with it, so that features
    missing from the data (or an ``init`` file of another backbone) stop the run before any
    training (entries with ``init: pretrained`` once their pre-training exists)."""
    for entry in config.models:
        if entry["backbone"] != GBDT and entry.get("init") != PRETRAINED:
            tagger = config.model_config(entry, entry["name"]).build()
            tagger.prepare(sample, f"{entry['name']}: the benchmark's jets")


# ----------------------------------------------------------------------------- OmniJet
def check_omnijet_block(block: dict[str, Any]) -> dict[str, Any]:
    """The ``omnijet`` block with its defaults (empty: no pre-training); ``ValueError``
    naming the key for an unknown key or a bad value. Keys: ``n_jets`` (per class, of
    independent generated jets), ``n_max``, ``pt_min`` (GeV; the tokenizer's preprocessing),
    ``vqvae``, ``gpt`` (model sizes), ``tokenizer_training``, ``pretraining`` (TrainConfig
    keys)."""
    if not block:
        return {}
    check_keys(block, OMNIJET_DEFAULTS, "omnijet")
    block = {**OMNIJET_DEFAULTS, **block}
    check_keys(block["vqvae"], VQVAE_KEYS, "omnijet: vqvae")
    check_keys(block["gpt"], GPT_KEYS, "omnijet: gpt")
    for key in ("tokenizer_training", "pretraining"):
        TrainConfig.from_overrides(block[key], 1, f"omnijet: {key}")
    block["n_jets"] = _count(block["n_jets"], "omnijet: n_jets")
    check_config_values("omnijet", [
        ("vqvae", lambda: VQVAEConfig(**block["vqvae"])),
        ("gpt", lambda: GPTConfig(**block["gpt"])),
        ("", lambda: omnijet_preprocessing(block["n_max"], block["pt_min"]))])
    return block


def pretrain_omnijet(config: BenchmarkConfig, jets: dict[str, JetBatch], split: Split,
                     data: dict[str, str], out_dir: Path) -> Path:
    """The benchmark's OmniJet pre-training (``init: pretrained``): tokenizer and generative
    GPT, each a resumable stage under ``omnijet/``. On the built-in data they train on
    ``n_jets`` independent generated jets per class (another seed: no jet of any cell);
    with ``files`` on the training pool of the largest D, labels unused (generative
    pre-training needs no labels; the taggers then see the same jets with labels)."""
    block, folder = check_omnijet_block(config.omnijet), out_dir / "omnijet"
    if config.files:
        batch = select(jets, split.train, max(config.sizes))
        inputs = dict(data)
    else:
        processes = [CLASS_PROCESS[c] for c in config.classes]
        seed = config.seed + 1000
        paths = generated_stage(
            out_dir, "omnijet/data", {"processes": processes, "n_jets": block["n_jets"],
                                      "seed": seed, "workers": config.workers},
            partial(generated_files, processes, block["n_jets"], folder / "data", seed=seed,
                    workers=config.workers))
        batch = JetBatch.concatenate([read_jets([str(p)]) for p in paths])
        inputs = {f"omnijet/data/{p.stem}": file_digest(p) for p in paths}
    tok_path = folder / "tokenizer" / "tokenizer.safetensors"
    keys = ("n_max", "pt_min", "vqvae", "tokenizer_training")
    stage = Stage(out_dir, "omnijet/tokenizer", {"seed": config.seed,
                                                 **{k: block[k] for k in keys}},
                  inputs, [tok_path], tok_path.parent)
    if stage.prepare():
        tokenizer = Tokenizer.load(tok_path)
    else:
        console.rule(f"OmniJet pre-training: tokenizer on {len(batch):,} jets")
        tokenizer = fit_tokenizer(batch, block["vqvae"], block["tokenizer_training"],
                                  block["n_max"], tok_path.parent, config.seed, block["pt_min"])
        stage.finish()
    path = folder / "pretrain" / "backbone.safetensors"
    stage = Stage(out_dir, "omnijet/pretrain", {"seed": config.seed, "gpt": block["gpt"],
                                                "pretraining": block["pretraining"]},
                  {**inputs, "tokenizer": tokenizer.fingerprint}, [path], path.parent)
    if not stage.prepare():
        console.rule(f"OmniJet pre-training: generative GPT on {len(batch):,} jets")
        codes, mask, _ = tokenizer.encode(batch)
        tokens = TokenDataset(codes, mask, batch.label, {"fingerprint": tokenizer.fingerprint})
        fit_generative(tokens, tokenizer, block["gpt"], block["pretraining"], path.parent,
                       config.seed)
        stage.finish()
    return path


def with_pretrained(config: BenchmarkConfig, path: Path) -> BenchmarkConfig:
    """``config`` with ``init: pretrained`` of every model entry replaced by ``path``."""
    models = [{**m, "init": str(path)} if m.get("init") == PRETRAINED else m
              for m in config.models]
    return replace(config, models=models)


# ----------------------------------------------------------------------------- the run
def run(config: BenchmarkConfig, out_dir: str | Path) -> dict[str, Any]:
    """Every cell (reused where its record matches), then ``table.md``, ``table.json`` and
    the ROC plots; returns the table data."""
    out_dir = Path(out_dir)
    inference_device(config.device)  # no CUDA: said before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    jets, data = load_data(config, out_dir)
    split = make_split(jets, config)
    console.print(f"classes {config.classes}: {config.n_test} test jets per class; D = "
                  f"{config.sizes} training jets per class; {budget_text(config)}")
    check_models(config, select(jets, split.test, 2))  # before any training
    if any(m.get("init") == PRETRAINED for m in config.models):
        config = with_pretrained(config, pretrain_omnijet(config, jets, split, data, out_dir))
        check_models(config, select(jets, split.test, 2))
    cells = [(entry, size) for size in config.sizes for entry in config.models]
    rows, counts = [], {"run": 0, "reused": 0}
    for i, (entry, size) in enumerate(cells, start=1):
        label = f"[{i}/{len(cells)}] {entry['name']} at D = {size:,}"
        cell_dir = out_dir / "cells" / f"D{size}" / entry["name"]
        stage = cell_stage(entry, size, config, out_dir, data)
        if stage.prepare():
            counts["reused"] += 1
            console.print(f"{label}: reused ({cell_dir})")
        else:
            resumed = start_cell(stage, cell_dir)
            console.rule(f"{label}: {'resuming' if resumed else 'training'} on "
                         f"{size * len(config.classes):,} jets, validating on "
                         f"{config.n_val(size) * len(config.classes):,}")
            result = run_cell(entry, size, jets, split, config, cell_dir)
            stage.finish()
            counts["run"] += 1
            console.print(f"{label}: accuracy {result['metrics']['accuracy']['value']:.4f}, "
                          f"macro AUC {result['metrics']['macro_auc']['value']:.4f}, "
                          f"{result['training_seconds']:.0f} s")
        rows.append(json.loads((cell_dir / "result.json").read_text()))
    table = write_outputs(rows, config, out_dir)
    console.print(f"cells: {counts['run']} run, {counts['reused']} reused")
    return {**table, "cells": counts}


def budget_text(config: BenchmarkConfig) -> str:
    """The budget rule as stated under the table."""
    def steps(budget: int | dict[int, int]) -> str:
        if isinstance(budget, int):
            return f"{budget:,} optimiser steps at every D"
        return ", ".join(f"{budget[size]:,} optimiser steps at D = {size:,}"
                         for size in config.sizes)

    neural = [m for m in config.models if m.get("backbone") != GBDT]
    own = [f"{m['name']}: {steps(m['max_steps'])}" for m in neural if "max_steps" in m]
    # a model's own training keys (epochs, batch size, patience, ...) change what it sees too
    own += [f"{m['name']}: training " + ", ".join(f"{k} {v}" for k, v in m["training"].items())
            for m in neural if m.get("training")]
    exceptions = f" Exceptions (stated): {'; '.join(own)}." if own else ""
    text = []
    if neural:
        text.append(f"Budget: equal optimiser steps. Every neural model trains for at most "
                    f"{steps(config.max_steps)} (early stopping on the validation loss may "
                    f"end it earlier: column steps).{exceptions}")
    if len(neural) < len(config.models):
        text.append("The gradient-boosted baseline (GBDT, five jet observables) stops by "
                    "early stopping on the same validation jets.")
    return " ".join(text)


def write_outputs(rows: list[dict[str, Any]], config: BenchmarkConfig, out_dir: Path
                  ) -> dict[str, Any]:
    """``table.json`` (values and errors), ``table.md`` (value ± error) and one ROC plot per
    D; returns the table data."""
    metric_keys = list(rows[0]["metrics"]) if rows else []
    flat = []
    for row in rows:
        entry = {k: row.get(k) for k in ("model", "backbone", "D", "n_train", "n_val",
                                         "n_test", "parameters", "steps",
                                         "training_seconds", "inference_jets_per_second")}
        for key in metric_keys:
            estimate = row["metrics"][key]
            entry[key], entry[f"{key}_error"] = estimate["value"], estimate["error"]
            if estimate.get("note"):
                entry[f"{key}_note"] = estimate["note"]
        flat.append(entry)
    table = {"title": "Tagging benchmark", "classes": config.classes,
             "n_test_per_class": config.n_test, "n_bootstrap": config.n_bootstrap,
             "signal_efficiency": config.signal_efficiency, "budget": budget_text(config),
             "max_steps": config.max_steps, "rows": flat,
             "best_vs_baseline": best_vs_baseline(rows, config, out_dir)}
    write_json(out_dir / "table.json", table)
    plots = []
    for size in config.sizes:
        taggers = {row["model"]: _test_probs(out_dir, row) for row in rows if row["D"] == size}
        if taggers:
            plots.append(plot_multiclass_roc(taggers, config.classes,
                                             out_dir / "plots" / f"roc_D{size}.png"))
    write_text_atomic(out_dir / "table.md", markdown(flat, metric_keys, config, plots,
                                                     out_dir, table["best_vs_baseline"]))
    return table


def _test_probs(out_dir: Path, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    with np.load(out_dir / "cells" / f"D{row['D']}" / row["model"] / "test_probs.npz") as saved:
        return saved["labels"], saved["probs"]


def best_vs_baseline(rows: list[dict[str, Any]], config: BenchmarkConfig, out_dir: Path
                     ) -> list[dict[str, Any]]:
    """Per D: the neural model with the highest accuracy minus the gradient-boosted baseline,
    accuracy and macro AUC with paired-bootstrap errors on the same test jets
    (:func:`jetfm.metrics.tagging.paired_difference`); [] without a baseline."""
    out = []
    for size in config.sizes:
        here = [r for r in rows if r["D"] == size]
        baseline = [r for r in here if r["backbone"] == GBDT]
        neural = [r for r in here if r["backbone"] != GBDT]
        if not baseline or not neural:
            continue
        best = max(neural, key=lambda r: r["metrics"]["accuracy"]["value"])
        labels, probs_best = _test_probs(out_dir, best)
        labels_b, probs_base = _test_probs(out_dir, baseline[0])
        if not np.array_equal(labels, labels_b):
            raise ValueError(f"D = {size}: {best['model']} and {baseline[0]['model']} were "
                             "tested on different jets; rerun the benchmark")
        difference = paired_difference(labels, probs_best, probs_base, config.classes,
                                       signal_efficiency=config.signal_efficiency,
                                       n_bootstrap=config.n_bootstrap, seed=config.seed)
        out.append({"D": size, "model": best["model"], "baseline": baseline[0]["model"],
                    **{key: {"value": difference[key].value, "error": difference[key].error}
                       for key in ("accuracy", "macro_auc")}})
    return out


def _pm(row: dict[str, Any], key: str, n_background: int) -> str:
    """``value ± error`` of ``key`` in ``row``; an infinite rejection (stored as null with its
    note) as the lower bound ``> n_background``."""
    value, error = row.get(key), row.get(f"{key}_error")
    if value is None:
        return f"> {n_background:,}" if "no background jet" in row.get(f"{key}_note", "") \
            else format_value(value)
    if error is None or not math.isfinite(error):
        return f"{format_value(value)} ± n/a"
    return f"{format_value(value)} ± {error:.2g}"


def column_name(key: str) -> str:
    """Table heading of a :func:`~jetfm.metrics.tagging.multiclass_summary` key."""
    if key.startswith("rejection@"):
        return f"1/eps_B {key.split('_', 1)[1]}"
    if key.startswith("auc_"):
        return "AUC " + key.removeprefix("auc_").replace("_vs_", " vs ")
    return {"macro_auc": "macro AUC"}.get(key, key)


def markdown(flat: list[dict[str, Any]], metric_keys: list[str], config: BenchmarkConfig,
             plots: list[Path], out_dir: Path,
             comparisons: list[dict[str, Any]] | None = None) -> str:
    """The table page: settings, budget rule, one row per cell, notes and plot links."""
    columns = {"model": "model", "D": "D / class"}
    columns.update({key: column_name(key) for key in metric_keys})
    columns.update({"parameters": "parameters", "steps": "steps",
                    "training_seconds": "training [s]",
                    "inference_jets_per_second": "inference [jets/s]"})
    cells = []
    for row in flat:
        cell = {name: _pm(row, key, config.n_test) if key in metric_keys else row.get(key)
                for key, name in columns.items()}
        cell["training [s]"] = f"{row['training_seconds']:.0f}"
        cell["inference [jets/s]"] = f"{row['inference_jets_per_second']:,.0f}"
        if row.get("parameters") is not None:
            cell["parameters"] = f"{row['parameters']:,}"
        cells.append(cell)
    notes = sorted({f"{row['model']} D={row['D']} {key}: {row[f'{key}_note']}"
                    for row in flat for key in metric_keys if row.get(f"{key}_note")})
    lines = ["# Tagging benchmark", "",
             f"Classes {', '.join(config.classes)}; {config.n_test:,} test jets per class; "
             f"D training jets per class with {config.val_fraction:g} D validation jets; "
             f"errors: standard deviation over {config.n_bootstrap} bootstrap resamples of "
             "the test jets (within each class). 1/eps_B X: rejection of QCD at eps_S = "
             f"{config.signal_efficiency:g} with p_X / (p_X + p_QCD) on X and QCD jets "
             "('> n': no QCD test jet passes; the error of a rejection R is R^2 times the "
             "bootstrap spread of eps_B)." + "".join(
                 f" AUC {a} vs {b}: p_{a} / (p_{a} + p_{b}) on {a} and {b} jets."
                 for a, b in CLASS_PAIRS if a in config.classes and b in config.classes), "",
             budget_text(config), "", markdown_table(cells, list(columns.values())), "",
             ("Parameters of GBDT: nodes of its trees. " if any(
                 r["backbone"] == GBDT for r in flat) else "")
             + "Training time: from jets to a fitted model (features and observables "
             "included); inference: test jets per second "
             f"from jets to probabilities ({config.device}).", ""]
    lines += [f"- {note}" for note in notes]
    if not comparisons:
        lines.append("No best-neural-model-minus-baseline line: the config has "
                     + ("no neural model." if all(r["backbone"] == GBDT for r in flat)
                        else "no gradient-boosted baseline (backbone: gbdt)."))
    lines += [f"Best neural model (highest accuracy) minus {c['baseline']} at D = {c['D']:,}: "
              f"{c['model']}, "
              f"accuracy {c['accuracy']['value']:+.4f} ± {c['accuracy']['error']:.2g}, "
              f"macro AUC {c['macro_auc']['value']:+.4f} ± {c['macro_auc']['error']:.2g} "
              "(paired bootstrap over the same test jets)." for c in comparisons or []]
    lines += [f"![ROC]({p.relative_to(out_dir)})" for p in plots]
    return "\n".join(lines) + "\n"
