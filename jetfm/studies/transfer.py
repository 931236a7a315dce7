"""Transfer-learning study of the AspenOpenJets paper (arXiv:2412.10504, section III).

Pre-train the OmniJet-alpha GPT on an AspenOpenJets-like source, fine-tune generation on
JetClass-like targets with D training jets, and compare with the same architecture trained
from scratch; then the same backbone as a top-vs-QCD tagger.

* Source: AOJ-like QCD jets (pT > 300 GeV, |eta| < 2.5, detector smearing; the Pythia source
  of :mod:`jetfm.data.generated`) or real AOJ files (``files: {source: ...}``). The source
  tokenizer (VQ-VAE) and the GPT are trained on the source only.
* Targets: JetClass-like QCD and top (t -> bqq') jets, 500 < pT < 1000 GeV, |eta| < 2
  (generated, or ``files: {qcd: ..., top: ...}``). Each target is shuffled once (config
  ``seed``) and cut into ``n_truth`` held-out truth jets and a training pool.
* A generation cell (target, D, seed, mode) trains on the first D jets of a seed-dependent
  permutation of the pool (nested in D; the same jets for both modes). ``finetune``: the
  pre-trained GPT on the jets tokenized by the source tokenizer; ``scratch``: the same
  architecture, randomly initialised, on the jets tokenized by the target's own tokenizer.
  That tokenizer (``scratch_tokenizer_jets``) is by default (``fixed``) trained once per
  target on up to ``tokenizer_jets`` jets of the target's training pool, at every D, as the
  AOJ paper trains its tokenizer on all of JetClass; with ``d`` each scratch cell trains its
  own on that cell's D training jets only (at most ``tokenizer_jets`` of them), so the
  scratch model sees no target jet beyond its D. The summary table gives, per D, how many
  target jets the scratch tokenizer saw. Training rule: 10 % of the D jets are the
  validation split; up to ``max_epochs`` epochs with early stopping (``patience`` epochs) and
  at most ``max_steps`` optimiser steps (the ``finetuning`` / ``scratch`` blocks); the best
  validation epoch is kept. The cell samples ``n_generate`` jets and compares them with the
  target's truth in the tokenizer's frame (as :func:`jetfm.studies.omnijet.run`): KL and W1
  of jet pT, mass, tau21, tau32 and multiplicity with bootstrap errors and the floor (truth
  split into a pseudo-generated part of the generated size and the rest).
* A tagging cell (D, seed, mode) trains a top (1) vs QCD (0) tagger on D jets (D / 2 per
  class, source tokenizer, 10 % validation), the pre-trained backbone fine-tuned or the same
  architecture from scratch, and tests it on the truth jets of both targets.

Layout of ``out_dir``::

    data/                                   generated jets (AOJ-like source, targets)
    source/{tokenizer,tokens,pretrain}/     source tokenizer, token files, pre-trained GPT
    targets/{qcd,top}/{tokenizer,tokens}/   each target's own tokenizer (scratch baseline)
    cells/{qcd,top}/D{D}/seed{s}/{mode}/    result.json, backbone, generated jets, evaluation
    cells/tagging/D{D}/seed{s}/{mode}/      result.json, ROC, tagging table
    plots/, summary.json, summary.md, report.md

    stages/                                 what each stage and cell was made from

Every stage and every cell is reused only when its record (``stages/...json``,
:class:`jetfm.studies.Stage`, written after its outputs) shows the same configuration keys
and the same inputs (digests of the jet and token files, tokenizer fingerprints, the
backbone's digest); otherwise it is redone, with a printed line naming it and the keys that
differ, and everything downstream follows. So a rerun with an overriding config redoes the
cells it changes (and the estimate counts them), a removed cell directory is redone from
scratch, and a finished cell of the same config is skipped. A failing cell writes
``failed.json`` (error and traceback), the run goes on, and the next run retries it.
Curves, fits, verdicts, figures and pages of the finished cells:
:mod:`jetfm.studies.transfer_summary`.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from jetfm.configs import apply_overrides, presets_dir
from jetfm.configs import preset as preset_path
from jetfm.console import Console
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index
from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets, write_jets
from jetfm.data.tokens import TokenDataset
from jetfm.metrics.evaluate import JET_OBSERVABLES, evaluate_batches, evaluate_tagging
from jetfm.models.omnijet import load_generative, sample_jets
from jetfm.models.tokenizer import Tokenizer
from jetfm.physics.observables import jet_observables
from jetfm.report import json_safe
from jetfm.studies import Stage, file_digest, generated_stage, read_config, training_log, write_json
from jetfm.studies.omnijet import tokenize_all
from jetfm.studies.transfer_summary import (
    METRICS,
    MODE_LABELS,
    MODES,
    TARGETS,
    closing_note,
    compare,
    make_curve,
    needed_by_scratch,
    plot_target,
    write_pages,
)
from jetfm.tasks.omnijet import (
    CODEBOOK_KEYS,
    GPT_KEYS,
    VQVAE_KEYS,
    check_token_model_blocks,
    fit_generative,
    fit_token_model,
)
from jetfm.tasks.tagging import TaggingConfig, train_tagger
from jetfm.tasks.training import TRAIN_KEYS, TrainConfig, check_blocks, split_indices

console = Console(soft_wrap=True, emoji=False)

PRESETS_DIR = presets_dir()  # the shipped presets (package data)
RESULT, FAILED = "result.json", "failed.json"
TRAINING_BLOCKS = ("tokenizer_training", "pretraining", "finetuning", "scratch",
                   "tagging_training")
SCRATCH_TOKENIZER_JETS = ("fixed", "d")


# ----------------------------------------------------------------------------- configuration
@dataclass
class TransferConfig:
    """Everything the study needs; the presets ``jetfm/configs/transfer_{cpu,gpu,tiny}.yaml``
    fill it."""

    sizes: list[int] = field(default_factory=lambda: [100, 1000])  # D, target training jets
    seeds: list[int] = field(default_factory=lambda: [1, 2])  # training seeds per (target, D)
    tagging_sizes: list[int] = field(default_factory=lambda: [100, 1000])
    n_source: int = 4000  # AOJ-like jets generated for the source
    n_truth: int = 1000  # held-out truth jets per target
    n_generate: int = 500  # jets sampled per cell (n_truth >= 2 n_generate: floor)
    files: dict[str, str | list[str]] = field(default_factory=dict)  # source/qcd/top -> files
    workers: int = 1
    seed: int = 1  # data: generation and splits
    n_max: int = 64
    pt_min: float | None = 1.0  # GeV, particle cut of the tokenizer preprocessing
    tokenizer_jets: int | None = None  # cap on the jets each tokenizer is trained on
    # the scratch baseline's tokenizer: "fixed" = one per target on (up to tokenizer_jets of)
    # its training pool, whatever D (the AOJ paper's choice); "d" = one per scratch cell on
    # that cell's D training jets only (up to tokenizer_jets of them)
    scratch_tokenizer_jets: str = "fixed"
    tokenizer_model: str = "vqvae"  # or "codebook" (jetfm.models.codebook)
    vqvae: dict[str, Any] = field(default_factory=dict)
    codebook: dict[str, Any] = field(default_factory=dict)
    tokenizer_training: dict[str, Any] = field(default_factory=dict)
    gpt: dict[str, Any] = field(default_factory=dict)
    pretraining: dict[str, Any] = field(default_factory=dict)
    finetuning: dict[str, Any] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)
    tagging_training: dict[str, Any] = field(default_factory=dict)
    tagging_head: str = "class_attention"
    backbone_lr_factor: float = 0.1
    temperature: float = 1.0
    top_k: int | None = None
    sample_batch: int = 256
    n_bootstrap: int = 30

    def __post_init__(self) -> None:
        self.sizes = [_count(v, "sizes") for v in self.sizes]
        self.tagging_sizes = [_count(v, "tagging_sizes") for v in self.tagging_sizes]
        for name in ("n_source", "n_truth", "n_generate"):
            setattr(self, name, _count(getattr(self, name), name))
        if not self.sizes or min(self.sizes + self.tagging_sizes) < 10:
            raise ValueError("sizes (at least one) and tagging_sizes (none: no tagging) need "
                             "at least 10 jets each (10 % validate)")
        if not self.seeds:
            raise ValueError("seeds must list at least one training seed")
        if self.n_truth < 2 * self.n_generate:
            raise ValueError(f"n_truth ({self.n_truth}) must be at least 2 n_generate "
                             f"({self.n_generate}) for the floor from two truth samples")
        if self.n_bootstrap < 2:
            raise ValueError("n_bootstrap must be at least 2 (bootstrap errors weight the fits)")
        if self.scratch_tokenizer_jets not in SCRATCH_TOKENIZER_JETS:
            raise ValueError(f"scratch_tokenizer_jets: {self.scratch_tokenizer_jets!r}; use "
                             f"one of {', '.join(SCRATCH_TOKENIZER_JETS)}")
        check_token_model_blocks(self.tokenizer_model, {
            k: getattr(self, k) for k in ("vqvae", "codebook", "tokenizer_training")})
        unknown = set(self.files) - {"source", *TARGETS}
        if unknown:
            raise ValueError(f"files: unknown keys {sorted(unknown)}; use source, qcd, top")
        check_blocks({block: getattr(self, block) for block in BLOCK_KEYS}, BLOCK_KEYS,
                     "transfer config")

    @property
    def tokenizer_keys(self) -> tuple[str, ...]:
        """The config keys a tokenizer depends on (a VQ-VAE's records stay what they were)."""
        keys = ("vqvae", "tokenizer_training", "n_max", "pt_min", "seed", "tokenizer_jets")
        return keys + (("tokenizer_model", "codebook") if self.tokenizer_model != "vqvae"
                       else ())

    def fit_tokenizer(self, jets: JetBatch, out_dir: Path) -> Tokenizer:
        """This config's tokenizer fitted on ``jets`` (:func:`jetfm.tasks.omnijet.
        fit_token_model`), written to ``out_dir``."""
        settings = self.codebook if self.tokenizer_model == "codebook" else self.vqvae
        return fit_token_model(jets, self.tokenizer_model, settings, self.tokenizer_training,
                               self.n_max, out_dir, self.seed, self.pt_min)

    @property
    def n_target(self) -> int:
        """Jets per generated target: truth plus the largest training set."""
        return self.n_truth + max(max(self.sizes), max(self.tagging_sizes, default=0) // 2)


# The keys of the blocks: every one is used. Cell seeds come from ``seeds``, so the training
# blocks have no ``seed``; the code sets the VQ-VAE's n_features and the GPT's vocabulary and
# length.
BLOCK_KEYS: dict[str, frozenset[str]] = {
    "files": frozenset({"source", *TARGETS}),
    "vqvae": VQVAE_KEYS,
    "codebook": CODEBOOK_KEYS,
    "gpt": GPT_KEYS,
    **dict.fromkeys(TRAINING_BLOCKS, TRAIN_KEYS - {"seed"}),
}


def _count(value: Any, name: str) -> int:
    """A positive whole number of jets; YAML's '1e4' (a string) and 1.0e4 are accepted."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number >= 1 or number != int(number):
        raise ValueError(f"{name}: {value!r} is not a positive whole number of jets")
    return int(number)


def _read_yaml(path: Path) -> dict[str, Any]:
    """The keys of one config file, top level and blocks checked (errors name the file)."""
    data = read_config(path, TransferConfig)
    check_blocks(data, BLOCK_KEYS, str(path))
    return data


def config_data(preset: str = "cpu", path: str | Path | None = None,
                overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The mapping of the preset ``jetfm/configs/transfer_{preset}.yaml``, overridden by the
    YAML file ``path``, then by the command-line ``KEY=VALUE`` ``overrides``
    (:func:`jetfm.configs.apply_overrides`); keys of every block checked (``ValueError``
    naming the file).

    Top-level keys of ``path`` replace the preset's; mapping values (``gpt``, ``finetuning``,
    ``files``, ...) are merged key by key, as those of an override.
    """
    data = _read_yaml(preset_path(f"transfer_{preset}"))
    if path is not None:
        for key, value in _read_yaml(Path(path)).items():
            merge = isinstance(value, dict) and isinstance(data.get(key), dict)
            data[key] = {**data[key], **value} if merge else value
    if overrides:
        where = path or preset_path(f"transfer_{preset}")
        data = apply_overrides(data, overrides, TransferConfig, where)
        check_blocks(data, BLOCK_KEYS, str(where))
    return data


def load_config(preset: str = "cpu", path: str | Path | None = None,
                overrides: Sequence[str] = ()) -> TransferConfig:
    """The config of :func:`config_data` (preset, YAML file ``path``, ``overrides``);
    ``ValueError`` naming the file for a bad key or value."""
    data = config_data(preset, path, overrides)
    try:
        return TransferConfig(**data)
    except ValueError as err:
        raise ValueError(f"{path or preset_path(f'transfer_{preset}')}: {err}") from None


# ----------------------------------------------------------------------------- data
@dataclass
class Target:
    """A target population: its jets, the held-out truth and the training pool (indices)."""

    name: str
    jets: JetBatch
    truth: np.ndarray
    pool: np.ndarray

    def training(self, size: int, seed: int, data_seed: int) -> np.ndarray:
        """The D = ``size`` training jets of ``seed`` (nested in D)."""
        order = np.random.default_rng([data_seed, seed]).permutation(len(self.pool))
        return self.pool[order[:size]]


def load_data(config: TransferConfig, out_dir: Path
              ) -> tuple[JetBatch, dict[str, Target], dict[str, str]]:
    """Source jets and the targets (given files, or generated ones reused when on disk), and
    the digest of each one's files (``data/source``, ``data/qcd``, ``data/top``): the inputs
    the downstream stages record."""
    files = {k: [v] if isinstance(v, str) else list(v) for k, v in config.files.items()}
    if "source" not in files:
        (path,) = generated_stage(
            out_dir, "data/source", {"n_jets": config.n_source, "seed": config.seed,
                                     "workers": config.workers},
            lambda: generated_files(["qcd"], config.n_source, out_dir / "data", fmt="aspen",
                                    aspen_like=True, seed=config.seed, workers=config.workers))
        files["source"] = [str(path)]
    missing = [t for t in TARGETS if t not in files]
    if missing:
        made = generated_stage(
            out_dir, "data/targets", {"processes": missing, "n_jets": config.n_target,
                                      "seed": config.seed + 1, "workers": config.workers},
            lambda: generated_files(missing, config.n_target, out_dir / "data",
                                    seed=config.seed + 1, workers=config.workers))
        files.update({t: [str(p)] for t, p in zip(missing, made, strict=True)})
    source = read_jets(files["source"])
    rng = np.random.default_rng(config.seed)
    targets = {}
    for name in TARGETS:
        jets = read_jets(files[name])
        if len(jets) < config.n_target:
            raise JetDataError(
                f"{', '.join(files[name])}: target {name!r} has {len(jets)} jets; the study "
                f"needs n_truth + the largest D = {config.n_target}"
            )
        order = rng.permutation(len(jets))
        targets[name] = Target(name, jets, order[: config.n_truth], order[config.n_truth :])
    digests = {f"data/{name}": "+".join(file_digest(f) for f in paths)
               for name, paths in files.items()}
    return source, targets, digests


def train_tokenizer(jets: JetBatch, config: TransferConfig, out_dir: Path, root: Path,
                    inputs: dict[str, str]) -> Tokenizer:
    """A tokenizer trained on the first ``tokenizer_jets`` of ``jets``: the stage
    ``out_dir/tokenizer`` of the run in ``root``, reused while its configuration keys and
    ``inputs`` (digests of the jets' files and how they were selected) are the same."""
    path = out_dir / "tokenizer" / "tokenizer.safetensors"
    stage = Stage(root, str(path.parent.relative_to(root)),
                  {k: getattr(config, k) for k in config.tokenizer_keys}, inputs,
                  [path, path.parent / "resolution.json"], path.parent)
    if stage.prepare():
        return Tokenizer.load(path)
    batch = jets[: config.tokenizer_jets]
    console.rule(f"tokenizer on {len(batch)} jets -> {path.parent}")
    tokenizer = config.fit_tokenizer(batch, out_dir / "tokenizer")
    stage.finish()
    return tokenizer


def pretrain(tokens: TokenDataset, tokenizer: Tokenizer, config: TransferConfig,
             out_dir: Path, root: Path) -> Path:
    """GPT pre-trained on all source tokens (``out_dir/tokens/source.parquet``), a stage of
    the run in ``root``; ``timing.json`` records seconds and steps."""
    path = out_dir / "pretrain" / "backbone.safetensors"
    stage = Stage(root, str(path.parent.relative_to(root)),
                  {k: getattr(config, k) for k in ("gpt", "pretraining", "seed")},
                  {"tokenizer": tokenizer.fingerprint,
                   "tokens": file_digest(out_dir / "tokens" / "source.parquet")},
                  [path, path.parent / "timing.json"], path.parent)
    if not stage.prepare():
        console.rule(f"pre-training the GPT on {len(tokens)} source jets")
        start = time.perf_counter()
        fit_generative(tokens, tokenizer, config.gpt, config.pretraining, path.parent,
                       config.seed)
        write_json(path.parent / "timing.json",
                    {"seconds": time.perf_counter() - start, **training_log(path.parent)})
        stage.finish()
    load_generative(path, tokenizer)
    return path


def _subset(tokens: TokenDataset, idx: np.ndarray) -> TokenDataset:
    return TokenDataset(tokens.codes[idx], tokens.mask[idx], tokens.label[idx], tokens.tokenizer)



# ----------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One training run: a target (or ``tagging``), D, a seed and a mode."""

    target: str
    size: int
    seed: int
    mode: str

    def path(self, out_dir: Path) -> Path:
        return out_dir / "cells" / self.target / f"D{self.size}" / f"seed{self.seed}" / self.mode

    def __str__(self) -> str:
        return f"{self.target} D={self.size} seed={self.seed} {self.mode}"


def generation_cells(config: TransferConfig) -> list[Cell]:
    return [Cell(t, d, s, m) for t in TARGETS for d in config.sizes for s in config.seeds
            for m in MODES]


def tagging_cells(config: TransferConfig) -> list[Cell]:
    return [Cell("tagging", d, s, m) for d in config.tagging_sizes for s in config.seeds
            for m in MODES]


CELL_KEYS = {
    "generation": ("gpt", "n_truth", "seed", "n_generate", "temperature", "top_k",
                   "sample_batch", "n_bootstrap"),
    "tagging": ("gpt", "n_truth", "seed", "tagging_training", "tagging_head",
                "backbone_lr_factor"),
}


def cell_stage(cell: Cell, config: TransferConfig, out_dir: Path,
               inputs: dict[str, str]) -> Stage:
    """The record of ``cell``: the configuration keys its numbers depend on (its training
    block included) and ``inputs`` (digests of its token files and tokenizer, and of the
    backbone where it starts from one); outputs ``result.json`` (and the generated jets)."""
    cell_dir = cell.path(out_dir)
    if cell.target == "tagging":
        keys, outputs = CELL_KEYS["tagging"], [cell_dir / RESULT]
    else:
        keys = (*CELL_KEYS["generation"],
                *(("finetuning",) if cell.mode == "finetune" else
                  ("scratch", "scratch_tokenizer_jets",
                   *(k for k in config.tokenizer_keys if k != "seed"))))
        outputs = [cell_dir / RESULT, cell_dir / "generated.parquet"]
    return Stage(out_dir, str(cell_dir.relative_to(out_dir)),
                 {**asdict(cell), **{k: getattr(config, k) for k in keys}}, inputs, outputs,
                 cell_dir)


def run_cells(cells: list[Cell], work: Callable[[Cell, Path], dict[str, Any]], out_dir: Path,
              desc: str, stage: Callable[[Cell], Stage]) -> dict[str, int]:
    """Run ``work(cell, cell_dir)`` for every cell whose ``stage(cell)`` cannot be reused
    (no result, or made from another configuration or inputs); a failure is written to
    ``failed.json`` and the loop goes on. Returns counts of run/skipped/failed."""
    counts = {"run": 0, "skipped": 0, "failed": 0}
    for cell in tqdm(cells, desc=desc, unit="cell"):
        cell_dir = cell.path(out_dir)
        record = stage(cell)
        if record.prepare():
            counts["skipped"] += 1
            continue
        shutil.rmtree(cell_dir, ignore_errors=True)  # leftovers of an interrupted attempt
        console.rule(str(cell))
        start = time.perf_counter()
        try:
            result = work(cell, cell_dir)
        except Exception as err:  # recorded, not fatal: the study runs unattended
            write_json(cell_dir / FAILED, {**asdict(cell), "error": f"{type(err).__name__}: "
                                            f"{err}", "traceback": traceback.format_exc()})
            console.print(f"[red]{cell} failed ({err}); recorded in {cell_dir / FAILED}[/]")
            counts["failed"] += 1
            continue
        write_json(cell_dir / RESULT, {**asdict(cell), **result,
                                        "seconds": time.perf_counter() - start})
        record.finish()
        counts["run"] += 1
    return counts


def generation_cell(cell: Cell, tokens: TokenDataset, tokenizer: Tokenizer, truth: JetBatch,
                    config: TransferConfig, init: Path | None, cell_dir: Path
                    ) -> dict[str, Any]:
    """Train on the tokens of the cell's D target jets, sample, evaluate against the truth
    (in ``tokenizer``'s frame); the cell's numbers."""
    training = config.finetuning if cell.mode == "finetune" else config.scratch
    model = fit_generative(tokens, tokenizer, config.gpt, training, cell_dir, cell.seed,
                           init=init)
    shutil.rmtree(cell_dir / "checkpoints")  # backbone.safetensors holds the best epoch
    backbone, head = load_generative(model, tokenizer)
    jets, sampling = sample_jets(backbone, head, config.n_generate,
                                 temperature=config.temperature, top_k=config.top_k,
                                 batch_size=config.sample_batch, seed=cell.seed,
                                 label=class_index(TARGETS[cell.target]))
    write_jets(jets, cell_dir / "generated.parquet")
    evaluation = evaluate_batches(truth, jets, cell_dir / "evaluation",
                                  n_bootstrap=config.n_bootstrap, seed=cell.seed, plots=False,
                                  title=f"{cell}: generated vs held-out truth")
    metrics = {f"{row['metric']} {row['observable']}": row for row in evaluation.table
               if row["metric"] in METRICS and row["observable"] in JET_OBSERVABLES}
    return {"n_train_jets": len(tokens), "tokenizer": tokenizer.fingerprint,
            "training": training_log(cell_dir), "sampling": sampling, "metrics": metrics}


def cell_tokenizer(target: Target, idx: np.ndarray, config: TransferConfig, cell_dir: Path
                   ) -> tuple[Tokenizer, TokenDataset, JetBatch]:
    """``scratch_tokenizer_jets: d``: a tokenizer trained on the cell's training jets ``idx``
    alone (the first ``tokenizer_jets`` of them; ``cell_dir/tokenizer``); returns it, the
    tokens of those jets and the target's truth in its frame."""
    jets = target.jets[idx]
    # not a stage of its own: the cell's record covers it (cell_stage)
    tokenizer = config.fit_tokenizer(jets[: config.tokenizer_jets], cell_dir / "tokenizer")
    shutil.rmtree(cell_dir / "tokenizer" / "checkpoints", ignore_errors=True)  # file kept
    codes, mask, _ = tokenizer.encode(jets)
    tokens = TokenDataset(codes, mask, jets.label, {"fingerprint": tokenizer.fingerprint})
    return tokenizer, tokens, tokenizer.in_frame(target.jets[target.truth])


def tokenizer_target_jets(config: TransferConfig, mode: str, pool: int, size: int) -> int:
    """Target jets the tokenizer of a generation cell was trained on (its 10 % validation
    included): none for ``finetune`` (the source tokenizer); for ``scratch`` up to
    ``tokenizer_jets`` of the training pool (``fixed``) or of the D training jets (``d``)."""
    if mode == "finetune":
        return 0
    cap = config.tokenizer_jets or math.inf
    return int(min(pool if config.scratch_tokenizer_jets == "fixed" else size, cap))


def tagging_cell(cell: Cell, targets: dict[str, Target], backbone: Path,
                 config: TransferConfig, cell_dir: Path) -> dict[str, Any]:
    """Top-vs-QCD tagger (:func:`jetfm.tasks.tagging.train_tagger` on the source backbone,
    ``backbone: omnijet``) on D jets (D / 2 per class), tested on both targets' truth jets."""

    def pick(part: Callable[[Target], np.ndarray]) -> JetBatch:
        picked = []
        for name in ("top", "qcd"):
            batch = targets[name].jets[part(targets[name])]
            batch.label = np.full(len(batch), class_index(TARGETS[name]))
            picked.append(batch)
        return JetBatch.concatenate(picked)

    jets = pick(lambda t: t.training(cell.size // 2, cell.seed, config.seed))
    fit_idx, val_idx = split_indices(len(jets), 0.1, cell.seed)
    test = pick(lambda t: t.truth)
    tagging = TaggingConfig(backbone="omnijet", head=config.tagging_head,
                            classes=[TARGETS["qcd"], TARGETS["top"]], mode=cell.mode,
                            init=str(backbone), backbone_lr_factor=config.backbone_lr_factor,
                            training=config.tagging_training)
    tagger = train_tagger(jets[fit_idx], jets[val_idx], tagging, cell_dir, seed=cell.seed)
    shutil.rmtree(cell_dir / "checkpoints")
    labels, scores = tagger.labels_of(test), tagger.predict_proba(test)[:, 1]
    result = evaluate_tagging(labels, scores, cell_dir, name=f"{MODE_LABELS[cell.mode]}, "
                              f"D={cell.size}", signal="top", background="QCD")
    return {"n_train_jets": len(fit_idx), "n_val_jets": len(val_idx), "n_test_jets": len(scores),
            "training": training_log(cell_dir), **result.summary}


# ----------------------------------------------------------------------------- the run
def run(config: TransferConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole study; returns (and writes to ``summary.json``/``summary.md``) the numbers
    and writes the plots and ``report.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    console.rule("transfer study: data")
    source, targets, data = load_data(config, out_dir)
    src_tok = train_tokenizer(source, config, out_dir / "source", out_dir,
                              {"data/source": data["data/source"]})
    everything = {"source": source, **{name: t.jets for name, t in targets.items()}}
    src_tokens = tokenize_all(src_tok, everything, out_dir / "source", data, out_dir)
    backbone = pretrain(src_tokens["source"], src_tok, config, out_dir / "source", out_dir)
    tokenizers, tokens = {}, {}
    fixed = config.scratch_tokenizer_jets == "fixed"  # else each scratch cell trains its own
    for name, target in targets.items() if fixed else ():
        here = {f"data/{name}": data[f"data/{name}"], "n_truth": str(config.n_truth)}
        tokenizers[name] = train_tokenizer(target.jets[target.pool], config,
                                           out_dir / "targets" / name, out_dir, here)
        tokens[name] = tokenize_all(tokenizers[name], {name: target.jets},
                                    out_dir / "targets" / name, here, out_dir)[name]
    truth = {(t, m): (src_tok if m == "finetune" or not fixed else tokenizers[t]).in_frame(
                 target.jets[target.truth])
             for t, target in targets.items() for m in MODES}
    cells, tag_cells = generation_cells(config), tagging_cells(config)

    def token_file(cell: Cell, name: str) -> Path:
        if cell.mode == "finetune" or cell.target == "tagging":
            return out_dir / "source" / "tokens" / f"{name}.parquet"
        return out_dir / "targets" / name / "tokens" / f"{name}.parquet"

    backbone_digest = file_digest(backbone)

    def stage(cell: Cell) -> Stage:
        if cell.mode == "scratch" and cell.target != "tagging" and not fixed:
            # the cell trains its own tokenizer on its D jets (cell_tokenizer)
            return cell_stage(cell, config, out_dir,
                              {f"data/{cell.target}": data[f"data/{cell.target}"],
                               "tokenizer": "the cell's own, on its D jets"})
        names = ["qcd", "top"] if cell.target == "tagging" else [cell.target]
        inputs = {f"tokens/{n}": file_digest(token_file(cell, n)) for n in names}
        inputs["tokenizer"] = (src_tok if cell.mode == "finetune" or cell.target == "tagging"
                               else tokenizers[cell.target]).fingerprint
        if cell.mode == "finetune":
            inputs["backbone"] = backbone_digest
        return cell_stage(cell, config, out_dir, inputs)

    print_estimate(config, cells + tag_cells, out_dir, stage)

    def generation(cell: Cell, cell_dir: Path) -> dict[str, Any]:
        finetune, target = cell.mode == "finetune", targets[cell.target]
        idx = target.training(cell.size, cell.seed, config.seed)
        if finetune or fixed:
            tokenizer = src_tok if finetune else tokenizers[cell.target]
            cell_tokens = _subset((src_tokens if finetune else tokens)[cell.target], idx)
            cell_truth = truth[cell.target, cell.mode]
        else:
            tokenizer, cell_tokens, cell_truth = cell_tokenizer(target, idx, config, cell_dir)
        result = generation_cell(cell, cell_tokens, tokenizer, cell_truth, config,
                                 backbone if finetune else None, cell_dir)
        n_tok = tokenizer_target_jets(config, cell.mode, len(target.pool), len(idx))
        return {**result, "tokenizer_target_jets": n_tok}

    counts = run_cells(cells, generation, out_dir, "generation cells", stage)
    tag_counts = run_cells(
        tag_cells, lambda c, d: tagging_cell(c, targets, backbone, config, d), out_dir,
        "tagging cells", stage)
    console.rule("summary")
    cap = config.tokenizer_jets or math.inf
    n_jets = {"source": len(source), "source tokenizer": min(len(source), cap)}
    for name, target in targets.items():
        n_jets.update({f"{name} truth": len(target.truth), f"{name} pool": len(target.pool)})
        if fixed:
            n_jets[f"{name} tokenizer"] = min(len(target.pool), cap)
    summary = {**summarise(config, out_dir), "jets": n_jets}
    path = out_dir / "summary.json"
    figures = [out_dir / "plots" / f"transfer_{t}.png" for t in TARGETS]
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous.pop("this_run", None)
    if previous != json.loads(json.dumps(json_safe(summary), default=float)) or not all(
            f.exists() for f in figures):  # plots take seconds: redraw only when needed
        plot_study(summary, config, out_dir, truth, src_tok.in_frame(source[: config.n_truth]))
    write_pages(summary, figures, out_dir)
    summary["this_run"] = {"generation": counts, "tagging": tag_counts,
                           "seconds": time.perf_counter() - start}
    write_json(path, summary)
    return summary


def print_estimate(config: TransferConfig, cells: list[Cell], out_dir: Path,
                   stage: Callable[[Cell], Stage]) -> int:
    """Upper bound of the training time of the cells that cannot be reused (``stage``), at
    the pre-training's seconds per step; returns the optimiser steps counted."""
    timing = json.loads((out_dir / "source" / "pretrain" / "timing.json").read_text())
    per_step = timing["seconds"] / max(timing["steps"], 1)
    steps = 0
    for cell in cells:
        if not stage(cell).stale():
            continue
        block = {"finetune": config.finetuning, "scratch": config.scratch}[cell.mode]
        training = TrainConfig(**(config.tagging_training if cell.target == "tagging"
                                  else block))
        epoch_steps = math.ceil(0.9 * cell.size / training.batch_size)
        cap = training.max_steps if training.max_steps > 0 else math.inf
        steps += min(training.max_epochs * epoch_steps, cap)
    console.print(f"[bold]estimate[/]: {len(cells)} cells, at most {steps} optimiser steps to "
                  f"go, ~{steps * per_step / 60:.1f} min at the pre-training's "
                  f"{per_step:.3f} s/step (early stopping shortens it; sampling and evaluation "
                  "add ~10-30 s per generation cell)")
    return steps


# ----------------------------------------------------------------------------- summary
def _results(cells: list[Cell], out_dir: Path) -> tuple[list[dict], list[dict]]:
    done, failed = [], []
    for cell in cells:
        cell_dir = cell.path(out_dir)
        if (cell_dir / RESULT).exists():
            done.append(json.loads((cell_dir / RESULT).read_text()))
        elif (cell_dir / FAILED).exists():
            failed.append({k: v for k, v in json.loads((cell_dir / FAILED).read_text()).items()
                           if k != "traceback"})
    return done, failed


def summarise(config: TransferConfig, out_dir: Path) -> dict[str, Any]:
    """Curves (seed envelopes, floors, power-law fits), fine-tuned vs scratch, the D scratch
    needs to match each fine-tuned point, the tagging table and the closing note."""
    results, failed = _results(generation_cells(config), out_dir)
    tag_results, tag_failed = _results(tagging_cells(config), out_dir)
    curves = [make_curve(results, target, metric, observable, mode, config.sizes)
              for target in TARGETS for metric in METRICS for observable in JET_OBSERVABLES
              for mode in MODES]
    comparison = compare(curves)
    needed = needed_by_scratch(curves)
    tagging = tagging_table(tag_results, config)
    summary = {"curves": curves, "comparison": comparison, "d_needed": needed,
               "scratch_tokenizer": scratch_tokenizer_table(results, config),
               "tagging": tagging, "failed": failed + tag_failed,
               "cells": {"generation": len(results), "tagging": len(tag_results),
                         "failed": len(failed) + len(tag_failed),
                         "expected": len(generation_cells(config)) + len(tagging_cells(config))}}
    summary["closing_note"] = closing_note(summary)
    return summary


def scratch_tokenizer_table(results: list[dict], config: TransferConfig
                            ) -> list[dict[str, Any]]:
    """Per target and D: the target jets the scratch cells' tokenizer was trained on
    (``scratch_tokenizer_jets``), as the cells recorded it (None: cell from an older run)."""
    rows = []
    for target in TARGETS:
        for size in config.sizes:
            seen = {r.get("tokenizer_target_jets") for r in results
                    if (r["target"], r["size"], r["mode"]) == (target, size, "scratch")}
            if seen:
                rows.append({"target": target, "D": size,
                             "scratch_tokenizer_jets": config.scratch_tokenizer_jets,
                             "target jets": seen.pop() if len(seen) == 1 else sorted(seen)})
    return rows


def tagging_table(results: list[dict], config: TransferConfig) -> list[dict[str, Any]]:
    rows = []
    for size in config.tagging_sizes:
        for mode in MODES:
            runs = [r for r in results if r["size"] == size and r["mode"] == mode]
            if not runs:
                continue
            row = {"D": size, "mode": mode, "n_seeds": len(runs)}
            for key in ("auc", "rejection@0.3"):
                values = np.array([r[key] for r in runs], dtype=float)
                row[key] = float(values.mean())
                row[f"{key} std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- plots, pages
def plot_study(summary: dict[str, Any], config: TransferConfig, out_dir: Path,
               truth: dict[tuple[str, str], JetBatch], source: JetBatch) -> None:
    """One figure per target (``plots/transfer_{target}.png``), laid out as the AOJ paper's
    figures 3 and 4: a row per observable; columns: the fine-tuned samples for every D over
    the truth (filled) and the AOJ-like source (dotted), the from-scratch samples, KL and W1
    vs D. Histograms show the first seed with a finished cell."""
    source_obs = jet_observables(source)
    for target in TARGETS:
        generated = {}
        for mode in MODES:
            for size in config.sizes:
                cell_dir = next((Cell(target, size, s, mode).path(out_dir) for s in config.seeds
                                 if (Cell(target, size, s, mode).path(out_dir) / RESULT).exists()),
                                None)
                if cell_dir is not None:
                    jets = read_jets([str(cell_dir / "generated.parquet")])
                    generated[mode, size] = jet_observables(jets)
        plot_target(target, summary["curves"], jet_observables(truth[target, "finetune"]),
                    source_obs, generated, config.sizes,
                    out_dir / "plots" / f"transfer_{target}.png")

