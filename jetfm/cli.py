"""The ``jetfm`` command line.

    jetfm generate   simulate jets with Pythia8 + FastJet and write them to files
    jetfm info       jets per class, feature ranges and what cuts removed
    jetfm plot       observable histograms per class (PNG)
    jetfm trees      recluster jets into declustering trees and validate them
    jetfm evaluate   generated-vs-reference metrics with statistical floors, plots, report
    jetfm tokenizer  train a tokenizer (VQ-VAE or feature codebook) on jet files
    jetfm tokenize   jet files -> token parquet (records the tokenizer)
    jetfm pretrain   generative GPT pre-training on token files (CPU, GPU, DDP; resumable)
    jetfm sample     sample jets from a pre-trained GPT (KV cache) and decode them
    jetfm finetune   jet tagger: any backbone (part, lgatr, pet, omnijet), any classes
    jetfm omnijet    the whole OmniJet-alpha chain from a YAML config
    jetfm evolution  jet-evolution generator (and thesis baseline) on declustering trees
    jetfm study      studies: ``jetfm study transfer`` (AOJ -> JetClass transfer),
                     ``jetfm study tokenizer`` (tokenizer resolution),
                     ``jetfm study gpt-curve`` (GPT learning curve),
                     ``jetfm study omnilearn`` (PET pre-training -> unseen tasks)
    jetfm benchmark  ``jetfm benchmark tagging``: every backbone and a GBDT on the same jets;
                     ``jetfm benchmark generation``: every generator on the same top/QCD jets
    jetfm demo       the built-in default job (the OmniJet-alpha chain on generated jets)

Every command prints what it does; ``jetfm COMMAND --help`` lists the options.

Errors and exit codes. 0: done. 2: a request that cannot give a result (a missing or invalid
file, a file or selection with no jets, contradictory options): one line
``jetfm COMMAND: error: ...`` on stderr that names the file and what is wrong. 1: an
unexpected failure (a defect): one line naming the command and the error, plus the path of a
log file with the full traceback. Logs go to ``$JETFM_LOG_DIR`` when that is set, else to
``jetfm-logs/`` in the system temporary folder (``tempfile.gettempdir()``, usually
``/tmp/jetfm-logs``), one file ``jetfm-COMMAND-YYYYmmdd-HHMMSS-PID.log`` per failure. 130:
interrupted (Ctrl-C). Outputs are written atomically (:mod:`jetfm.atomic`) and only after
their inputs were checked: a failed command leaves no partial or empty output file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from rich.console import Console
from rich.table import Table

from jetfm.checks import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Rule, number

if TYPE_CHECKING:
    from jetfm.data.batch import JetBatch
    from jetfm.data.tokens import TokenDataset
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.studies.omnijet import OmniJetConfig

console = Console(soft_wrap=True, emoji=False)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEMO_CONFIG = CONFIGS / "omnijet_cpu.yaml"
TAGGING_CONFIG = CONFIGS / "tagging_cpu.yaml"
BENCHMARK_CONFIG = CONFIGS / "benchmark_tagging_cpu.yaml"
GENERATION_BENCHMARK_CONFIG = CONFIGS / "benchmark_generation_cpu.yaml"
OMNILEARN_CONFIG = CONFIGS / "omnilearn_transfer_cpu.yaml"
TOKENIZER_STUDY_CONFIG = CONFIGS / "tokenizer_study_cpu.yaml"
GPT_CURVE_CONFIG = CONFIGS / "gpt_curve_cpu.yaml"
# names the parser offers; the modules behind them load only when a command needs them
BACKBONES = ("lgatr", "omnijet", "part", "pet")
HEAD_NAMES = ("class_attention", "global_token", "pooled_mlp", "summation")
LOG_DIR_ENV = "JETFM_LOG_DIR"


# ---------------------------------------------------------------------------- option types
def option(rule: Rule) -> Callable[[str], Any]:
    """An argparse ``type``: the option's text as a number checked against ``rule``
    (:func:`jetfm.checks.number`), so a bad value is a one-line usage error (exit 2) naming
    the option, before any work is done."""
    def parse(text: str) -> Any:
        try:
            return number("value", text, rule)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value: ")) from None

    parse.__name__ = rule.kind.__name__  # argparse names the type in some messages
    return parse


POSITIVE_INT_OPTION = option(POSITIVE_INT)
POSITIVE_OPTION = option(POSITIVE)
NON_NEGATIVE_OPTION = option(NON_NEGATIVE)
SEED_OPTION = option(NON_NEGATIVE_INT)


def folder_output(text: str) -> str:
    """An argparse ``type`` for output folders: a path that is not an existing file (it is
    created, or reused to resume), refused before any work is done."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is created if "
                                         "missing)")
    return text


def device_option(text: str) -> str:
    """An argparse ``type`` for ``--device``: ``auto`` or a device torch knows
    (``cpu``, ``cuda``, ``cuda:1``, ``mps``) that is available on this machine."""
    if text == "auto":
        return text
    from jetfm.checkpoint import check_device

    try:
        check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def parquet_output(text: str) -> str:
    """An argparse ``type`` for outputs written as Parquet: the name must end in
    ``.parquet`` (a ``.root`` name would hold Parquet that no ROOT reader opens)."""
    if Path(text).suffix.lower() != ".parquet":
        raise argparse.ArgumentTypeError(f"{text}: this output is written as Parquet; give a "
                                         "name ending in .parquet")
    return text


# ---------------------------------------------------------------------------- shared checks
def _names(paths: Sequence[str | Path]) -> str:
    return ", ".join(str(p) for p in paths)


def read_jet_files(paths: Sequence[str | Path], purpose: str, **kwargs: object) -> JetBatch:
    """All jets of ``paths`` in one batch, for a command that needs at least one jet.

    ``purpose`` says what the command does with them (``"plot"``, ...). ``kwargs`` go to
    :func:`jetfm.data.io.read_jets`. Raises ``ValueError`` naming the files when they hold no
    jet (or none survives ``skip_invalid``); files among several that hold none are named in a
    warning.
    """
    from jetfm.data.io import read_jets

    batch = read_jets([str(p) for p in paths], **kwargs)
    if len(batch) == 0:
        after = " after dropping invalid jets (--skip-invalid)" if kwargs.get("skip_invalid") \
            else ""
        raise ValueError(f"{_names(paths)}: 0 jets{after}; nothing to {purpose}")
    per_file = np.bincount(batch.source, minlength=len(batch.source_files))
    empty = [f for f, n in zip(batch.source_files, per_file, strict=True) if n == 0]
    if empty:
        console.print(f"[yellow]warning: 0 jets in {_names(empty)}[/]")
    return batch


def check_output(path: str | Path, label: int | None = None) -> str:
    """Format name of a jet output file, checked before any work is done.

    ``label``: the class every jet written will carry (``None``: unlabelled). Raises
    ``ValueError`` for read-only formats, unknown suffixes and JetClass ROOT output of
    unlabelled jets (JetClass files need a class for every jet); warns that AspenOpenJets
    HDF5 output drops a label.
    """
    from jetfm.data.classes import CLASSES
    from jetfm.data.io import FORMATS, detect_format

    name = detect_format(path, for_writing=True)
    if FORMATS[name].write is None:
        writable = sorted({s for f in FORMATS.values() if f.write for s in f.suffixes})
        raise ValueError(f"{path}: {name} files are read-only in jetfm; write one of {writable}")
    if name == "jetclass" and label is None:
        raise ValueError(f"{path}: JetClass ROOT files need a class for every jet; pass "
                         f"--label CLASS (one of {', '.join(CLASSES)}) or write .parquet")
    if name == "aspen" and label is not None:
        console.print(f"[yellow]warning: {path}: AspenOpenJets HDF5 files hold no class "
                      "labels; the label is not stored (write .root or .parquet to keep it)[/]")
    return name


# ---------------------------------------------------------------------------- generate
def _cmd_generate(args: argparse.Namespace) -> int:
    from jetfm.data.generated import generated_files

    keys = ("pt_min", "pt_max", "eta_max", "max_events_without_jet")
    cuts = {k: getattr(args, k) for k in keys}
    generated_files(
        args.process,
        args.n_jets,
        args.out_dir,
        fmt=args.format or ("aspen" if args.aspen_like else "root"),
        seed=args.seed,
        workers=args.workers,
        mpi=args.mpi,
        aspen_like=args.aspen_like,
        smear=not args.no_smear,
        cuts={k: v for k, v in cuts.items() if v is not None},
    )
    return 0


# ---------------------------------------------------------------------------- info
def print_info(paths: Sequence[str], *, skip_invalid: bool = False) -> None:
    """Print, per file: jets per class, feature ranges, cut reports and invalid jets."""
    from jetfm.data.io import read_jets
    from jetfm.data.summary import feature_ranges

    for path in paths:
        batch = read_jets([path], skip_invalid=skip_invalid)
        if len(batch) == 0:
            after = " after dropping invalid jets" if skip_invalid else ""
            console.print(f"{path}: 0 jets{after}")
            _print_sidecar(path)
            continue
        table = Table(title=f"{path}: {len(batch)} jets", title_justify="left")
        table.add_column("class")
        table.add_column("jets", justify="right")
        for name, count in batch.class_counts().items():
            table.add_row(name, str(count))
        console.print(table)
        ranges = Table(title="feature ranges", title_justify="left")
        for col in ("feature", "unit", "min", "median", "max"):
            ranges.add_column(col, justify="left" if col in ("feature", "unit") else "right")
        for name, unit, lo, med, hi in feature_ranges(batch):
            ranges.add_row(name, unit, f"{lo:.4g}", f"{med:.4g}", f"{hi:.4g}")
        console.print(ranges)
        console.print(f"particle fields: {', '.join(batch.fields)}")
        _print_sidecar(path)


def _print_sidecar(path: str) -> None:
    """The generator record (``.cuts.json``) of ``path``, if there is one."""
    from jetfm.data.summary import read_sidecar

    side = read_sidecar(path)
    if side is None:
        console.print("cuts: no generator record (.cuts.json) next to this file")
        return
    reports, config = side
    console.print(
        f"generated with: process={config.get('process')} seed={config.get('seed')} "
        f"({config.get('seeding', 'seed + 1000 x position in the process list')}) "
        f"mpi={config.get('mpi')} pt=[{config.get('pt_min')}, {config.get('pt_max')}] "
        f"|eta|<{config.get('eta_max')}"
    )
    for report in reports:
        console.print(f"  cut {report}")


def _cmd_info(args: argparse.Namespace) -> int:
    print_info(args.files, skip_invalid=args.skip_invalid)
    return 0


# ---------------------------------------------------------------------------- plot
def plot_files(paths: Sequence[str], out_dir: Path, *, skip_invalid: bool = False
               ) -> list[Path]:
    """Per-class histograms of jet observables of all ``paths`` into ``out_dir``
    (``skip_invalid``: drop and count invalid jets, see :func:`jetfm.data.io.read_jets`)."""
    from jetfm.data.classes import class_name
    from jetfm.physics.observables import OBSERVABLE_LABELS, jet_observables
    from jetfm.plots.observables import plot_observables_by_class

    batch = read_jet_files(paths, "plot", skip_invalid=skip_invalid)
    observables = jet_observables(batch)
    written = plot_observables_by_class(
        observables, batch.label, out_dir, axis_labels=OBSERVABLE_LABELS
    )
    summary = Table(title="median per class", title_justify="left")
    summary.add_column("class")
    names = ("mass", "sdmass", "tau21", "tau32", "n_particles")
    for name in names:
        summary.add_column(name, justify="right")
    def median(values: np.ndarray) -> str:  # tau32 of jets with < 3 particles is undefined
        finite = values[np.isfinite(values)]
        return f"{np.median(finite):.3g}" if finite.size else "n/a"

    for label in np.unique(batch.label):
        sel = batch.label == label
        summary.add_row(class_name(int(label)), *(median(observables[n][sel]) for n in names))
    console.print(summary)
    console.print(f"wrote {len(written)} plots to {out_dir}")
    return written


def _cmd_plot(args: argparse.Namespace) -> int:
    plot_files(args.files, Path(args.out_dir), skip_invalid=args.skip_invalid)
    return 0


# ---------------------------------------------------------------------------- trees
def _cmd_trees(args: argparse.Namespace) -> int:
    from jetfm.data.trees_io import write_trees
    from jetfm.physics.trees import build_trees, validate_trees

    jets = read_jet_files(args.files, "build trees from", skip_invalid=args.skip_invalid)
    start = time.perf_counter()
    trees = build_trees(jets, algorithm=args.algorithm, recombination=args.recombination,
                        **({"r": args.r} if args.r is not None else {}))
    elapsed = time.perf_counter() - start
    console.print(f"{len(jets)} jets -> trees ({args.algorithm}, {args.recombination}) in "
                  f"{elapsed:.2f} s: {len(jets) / elapsed:,.0f} jets/s")
    console.print(str(trees.report))
    for check in validate_trees(trees, jets):
        console.print(str(check))
    if args.out:
        write_trees(trees, args.out)
        console.print(f"trees -> {args.out}")
    return 0


# ---------------------------------------------------------------------------- evaluate
def _cmd_evaluate(args: argparse.Namespace) -> int:
    from jetfm.metrics.evaluate import evaluate_files, tokenizer_frame

    frame, frame_name = None, None
    if args.tokenizer is not None:  # the frame of `jetfm sample`'s jets: cuts, n_max, axis
        from jetfm.models.tokenizer import Tokenizer

        frame, frame_name = tokenizer_frame(Tokenizer.load(args.tokenizer))

    result = evaluate_files(args.reference, args.generated, args.out_dir,
                            n_bootstrap=args.n_bootstrap, seed=args.seed, html=args.html,
                            plots=not args.no_plots, frame=frame, frame_name=frame_name,
                            skip_invalid=args.skip_invalid)
    print(result.format())
    console.print(f"{'report' if args.no_plots else 'plots and report'} in {args.out_dir}")
    return 0


# ---------------------------------------------------------------------------- OmniJet-alpha
def _training_overrides(args: argparse.Namespace) -> dict[str, object]:
    keys = ("max_epochs", "batch_size", "lr", "accelerator", "devices", "strategy", "seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _omnijet_config(path: Path) -> OmniJetConfig:
    """The OmniJet config in ``path``, keys and values checked before any work is done
    (:meth:`jetfm.studies.omnijet.OmniJetConfig.from_yaml`); every ``ValueError`` names the
    file."""
    from jetfm.studies.omnijet import OmniJetConfig

    try:
        return OmniJetConfig.from_yaml(path)
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {err}") from None


def _training(args: argparse.Namespace, config: OmniJetConfig, block: str
              ) -> tuple[dict[str, Any], int]:
    """The training block ``block`` of ``config`` with the command-line overrides, and the
    seed: ``--seed``, else the block's ``seed``, else the config's ``seed`` (never None).

    The block with the overrides is checked before any work is done: ``ValueError`` naming
    the config file, the block and the key of a bad value."""
    from jetfm.studies import check_config_values
    from jetfm.tasks.training import TrainConfig, check_accelerator

    training = {**getattr(config, block), **_training_overrides(args)}
    seed = next((s for s in (training.get("seed"), config.seed) if s is not None), None)
    if not isinstance(seed, int):
        raise ValueError(f"{args.config}: no integer seed (--seed, {block}.seed or seed); "
                         f"got {seed!r}")
    training["seed"] = seed
    check_config_values(args.config, [
        ("", lambda: TrainConfig.from_overrides(training, seed, block))])
    check_accelerator(TrainConfig.from_overrides(training, seed, block).accelerator)
    return training, seed


def _rank_zero() -> bool:
    """True in the process that reports (rank 0 of a DDP run, or the only process): DDP
    re-runs the command in one process per device, and only one should print results."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from jetfm.tasks.omnijet import fit_token_model

    config = _omnijet_config(args.config)
    training, seed = _training(args, config, "tokenizer_training")
    jets = read_jet_files(args.files, "train a tokenizer on", skip_invalid=args.skip_invalid)
    if config.tokenizer_model == "codebook":  # k-means: the training options do not apply
        given = sorted(set(_training_overrides(args)) - {"seed"})
        if given:
            raise ValueError(f"{args.config}: tokenizer_model is codebook (k-means), which "
                             f"takes no training options: {given} would not be used; set "
                             "the codebook block's max_iter / batch_size instead")
    tokenizer = fit_token_model(jets, config.tokenizer_model, config.tokenizer_settings, training,
                                config.n_max, Path(args.out_dir), seed, config.pt_min,
                                config.subjet_order, config.subjet_frame)
    if _rank_zero():
        console.print(f"tokenizer {tokenizer.fingerprint} -> "
                      f"{args.out_dir}/tokenizer.safetensors")
    return 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from jetfm.data.tokens import TokenDataset, write_tokens
    from jetfm.models.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.tokenizer)
    jets = read_jet_files(args.files, "tokenize", skip_invalid=args.skip_invalid)
    codes, mask, reports = tokenizer.encode(jets)
    for report in reports:
        console.print(f"  {report}")
    record = {"fingerprint": tokenizer.fingerprint, "tokenizer": str(args.tokenizer),
              "codebook_size": tokenizer.codebook_size}
    write_tokens(args.out, TokenDataset(codes, mask, jets.label, record))
    console.print(f"{len(jets)} jets -> {args.out}")
    return 0


def _read_token_files(paths: Sequence[str], tokenizer: Tokenizer, purpose: str) -> TokenDataset:
    """Token files made by ``tokenizer``, concatenated; ``ValueError`` naming the files when
    they hold no jet (``purpose``: what the command does with them)."""
    from jetfm.data.tokens import TokenDataset, read_tokens

    parts = [read_tokens(p, tokenizer.n_max, tokenizer.fingerprint) for p in paths]
    if sum(len(p) for p in parts) == 0:
        raise ValueError(f"{_names(paths)}: 0 tokenized jets; nothing to {purpose}")
    return TokenDataset(np.concatenate([p.codes for p in parts]),
                        np.concatenate([p.mask for p in parts]),
                        np.concatenate([p.label for p in parts]), parts[0].tokenizer)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.tasks.omnijet import fit_generative
    from jetfm.tasks.training import TrainConfig

    config = _omnijet_config(args.config)
    training, seed = _training(args, config, "pretraining")
    tokenizer = Tokenizer.load(args.tokenizer)
    tokens = _read_token_files(args.tokens, tokenizer, "pre-train on")
    if len(tokens) < 2:
        raise ValueError(f"{_names(args.tokens)}: 1 tokenized jet; pre-training needs at least "
                         "2 (one for training, one for validation)")
    done = _epochs_done(args.resume) if args.resume else 0
    path = fit_generative(tokens, tokenizer, config.gpt, training, Path(args.out_dir), seed,
                          resume=args.resume)
    if _rank_zero():
        max_epochs = TrainConfig.from_overrides(training, seed, "pretraining").max_epochs
        if done >= max_epochs:
            console.print(f"[yellow]{args.resume} has already run {done} epoch(s) and "
                          f"max_epochs is {max_epochs}: nothing was trained; the backbone is "
                          "the checkpoint's (raise --max-epochs to train on)[/]")
        console.print(f"backbone -> {path}")
    return 0


def _epochs_done(checkpoint: str | Path) -> int:
    """Epochs the training that wrote the Lightning ``checkpoint`` has run through: the fit
    loop's processed epochs (a checkpoint written at an epoch's end counts that epoch, and
    a resumed run with ``max_epochs`` at most this trains nothing)."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    progress = state.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    return int(progress.get("current", {}).get("processed", state.get("epoch", 0)))


def _cmd_sample(args: argparse.Namespace) -> int:
    from jetfm.data.classes import class_index
    from jetfm.data.io import write_jets
    from jetfm.models.omnijet import load_generative, sample_jets
    from jetfm.models.tokenizer import Tokenizer

    label = None if args.label is None else class_index(args.label)
    check_output(args.out, label)
    tokenizer = Tokenizer.load(args.tokenizer) if args.tokenizer else None
    backbone, head = load_generative(args.model, tokenizer)
    jets, stats = sample_jets(backbone, head, args.n_jets,
                              temperature=args.temperature, top_k=args.top_k,
                              batch_size=args.batch_size, seed=args.seed,
                              use_cache=not args.no_cache, label=label, device=args.device)
    if len(jets) == 0:
        raise ValueError(f"{args.model}: all {args.n_jets} sampled sequences stopped before "
                         f"their first particle; no jets, nothing written to {args.out}")
    write_jets(jets, args.out)
    console.print(f"{len(jets)} jets ({stats['n_empty']} empty sequences left out) at "
                  f"{stats['jets_per_second']:.1f} jets/s, label "
                  f"{args.label or 'none (unlabelled)'} -> {args.out}")
    return 0


def _tagging_split(labels: np.ndarray, classes: Sequence[str], test_fraction: float,
                   n_train: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (train, validation, test) indices: ``test_fraction`` for the test, 20 % of the
    rest for validation, at most ``n_train`` of the rest for training, balanced across the
    classes as far as the pool allows (the number used and available is printed).
    ``ValueError`` when a part lacks a class (``labels``: positions in ``classes``)."""
    from jetfm.tasks.training import split_indices

    rest, test = split_indices(len(labels), test_fraction, seed)
    fit_idx, val_idx = split_indices(len(rest), 0.2, seed)
    available = len(fit_idx)
    if n_train is not None and n_train > available:
        console.print(f"[yellow]--n-train {n_train}: only {available} training jets available "
                      f"({len(labels)} jets: {len(test)} test, {len(val_idx)} validation); "
                      f"using {available}[/]")
    pool = rest[fit_idx]
    # classes interleaved (the k-th jet of every class before the (k+1)-th of any), so
    # --n-train takes as many jets of each class as the pool allows
    rank = np.zeros(len(pool), dtype=np.int64)
    for k in np.unique(labels[pool]):
        rank[labels[pool] == k] = np.arange(int((labels[pool] == k).sum()))
    train, val = pool[np.lexsort((labels[pool], rank))][:n_train], rest[val_idx]
    for name, part in (("training", train), ("validation", val), ("test", test)):
        counts = np.bincount(labels[part], minlength=len(classes))
        if (counts == 0).any():
            found = ", ".join(f"{c} {n}" for c, n in zip(classes, counts, strict=True))
            hint = "raise --n-train or give more jets" if name == "training" and n_train \
                else "give more jets or change --test-fraction"
            raise ValueError(f"the {name} set has no jet of some class ({found}; "
                             f"{len(labels)} jets in all); it needs every class: {hint}")
    console.print(f"{len(train)} training jets (of {available} available), {len(val)} "
                  f"validation, {len(test)} test")
    return train, val, test


def _tagging_config(args: argparse.Namespace, classes: list[str], quiet: bool = False
                    ) -> tuple[Any, int]:
    """The :class:`~jetfm.tasks.tagging.TaggingConfig` of ``--config`` with the command-line
    choices, and the seed; ``ValueError`` naming the config file and key for a bad value."""
    from jetfm.checkpoint import load_model
    from jetfm.studies import load_yaml
    from jetfm.tasks.tagging import tagging_config

    data = load_yaml(args.config) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{args.config}: expected a mapping of config keys")
    seed = data.pop("seed", 1)
    training = {**(data.get("training") or {}), **_training_overrides(args)}
    seed = training.pop("seed", seed)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"{args.config}: seed: {seed!r} is not an integer")
    data["training"] = training
    configured = data.get("backbone", "part")  # what --config's keys are written for
    meta: dict[str, Any] = {}
    if args.init:
        meta = load_model(args.init)[1]
        if "backbone" not in meta:
            raise ValueError(f"--init {args.init}: not a backbone, tagger or pre-trained "
                             f"OmniJet file (kind={meta.get('kind')!r})")
        data["backbone"] = args.backbone or meta["backbone"]
        data["init"] = args.init
        unused = ["backbone_config", "features"]  # the file fixes them
    else:
        data["backbone"] = args.backbone or configured
        unused = ["backbone_config", "features"] if data["backbone"] != configured else []
    if data["backbone"] != configured:
        unused += ["head", "head_config"]  # written for another backbone
    if args.head:
        unused += ["head", "head_config"]
    dropped = sorted({k for k in unused if data.pop(k, None) is not None})
    if dropped and not quiet:
        console.print(f"{args.config}: {', '.join(dropped)} not used (written for backbone "
                      f"{configured!r}; the run: backbone {data['backbone']!r}"
                      f"{', from ' + args.init if args.init else ''})")
    if args.head:
        data["head"] = args.head
    elif "head" not in data and meta.get("kind") == "tagger" and \
            meta["backbone"] == data["backbone"]:
        data["head"], data["head_config"] = meta["head"], meta.get("head_config") or {}
    data["mode"] = args.mode or ("finetune" if args.init else "scratch")
    data["classes"] = classes
    return tagging_config(data, str(args.config), also_valid=("seed",)), seed


def _cmd_finetune(args: argparse.Namespace) -> int:
    from jetfm.data.classes import CLASSES, class_name
    from jetfm.data.io import check_distinct_files
    from jetfm.metrics.evaluate import evaluate_tagging
    from jetfm.metrics.tagging import multiclass_summary
    from jetfm.models.tagger import check_classes
    from jetfm.report import write_json
    from jetfm.tasks.tagging import train_tagger
    from jetfm.tasks.training import check_accelerator

    if args.mode in ("finetune", "frozen") and not args.init:
        raise ValueError(f"--mode {args.mode} starts from a saved backbone: pass --init FILE "
                         "(a backbone, tagger or pre-trained OmniJet file), or use --mode "
                         "scratch")
    check_distinct_files(args.files)
    if args.classes:
        check_classes(args.classes, "--classes")
    config, seed = _tagging_config(args, args.classes or ["QCD", "Tbqq"], quiet=True)
    check_accelerator(config.train_config(seed).accelerator)  # all checked before the jets
    jets = read_jet_files(args.files, "train a tagger on", skip_invalid=args.skip_invalid)
    present = [class_name(int(i)) for i in np.unique(jets.label)]
    if "unlabelled" in present:
        n = int((jets.label < 0).sum())
        raise ValueError(f"{_names(args.files)}: {n} unlabelled jets; a tagger needs labelled "
                         "jets (label branches, or files of the generator)")
    classes = args.classes or [c for c in CLASSES if c in present]
    if len(classes) < 2:
        raise ValueError(f"{_names(args.files)}: jets of one class only ({present}); a tagger "
                         "needs at least two classes")
    config, seed = _tagging_config(args, classes)
    console.print(f"backbone {config.backbone} ({config.mode}"
                  f"{', from ' + config.init if config.init else ''}), head {config.head}, "
                  f"classes {classes}")
    tagger = config.build()
    labels = tagger.labels_of(jets, _names(args.files))
    train, val, test = _tagging_split(labels, classes, args.test_fraction, args.n_train, seed)
    tagger = train_tagger(jets[train], jets[val], config, Path(args.out_dir), seed=seed)
    if not _rank_zero():
        return 0
    probs = tagger.predict_proba(jets[test])
    summary = {"classes": classes, "n_train": len(train), "n_val": len(val),
               "n_test": len(test),
               "accuracy": float((probs.argmax(axis=1) == labels[test]).mean())}
    if len(classes) == 2:
        result = evaluate_tagging(labels[test], probs[:, 1], args.out_dir,
                                  name=f"{config.mode}, D={len(train)}", signal=classes[1],
                                  background=classes[0])
        print(result.format())
        summary.update(result.summary)
    else:
        numbers = multiclass_summary(labels[test], probs, classes, seed=seed,
                                     background=classes[0] if "QCD" not in classes else "QCD")
        summary.update({k: {"value": v.value, "error": v.error} for k, v in numbers.items()})
        for key, value in numbers.items():
            console.print(f"  {key}: {value.value:.4f} +- {value.error:.4f}")
    write_json(Path(args.out_dir) / "result.json", summary)
    console.print(f"tested on {len(test)} jets; tagger -> {args.out_dir}/tagger.safetensors, "
                  f"results in {args.out_dir}/result.json")
    return 0


def _cmd_omnijet(args: argparse.Namespace) -> int:
    """The OmniJet-alpha chain from a config (``jetfm demo``: the CPU config), with the
    observables of the training jets (the config's files and the generated ones) plotted per
    class."""
    from jetfm.studies.omnijet import run

    out = Path(args.out)
    config = _omnijet_config(args.config)
    summary = run(config, out)
    used = {*config.files.values(), *(str(p) for p in (out / "data").glob("*.root"))}
    plot_files(sorted(used), out / "plots")
    console.print(Path(out, "summary.md").read_text())
    console.print(f"run time {summary['seconds']:.0f} s; everything is in {out}")
    return 0


def _cmd_evolution(args: argparse.Namespace) -> int:
    """The jet-evolution study from a config: trees, models, likelihoods, generated jets."""
    from jetfm.studies.evolution import EvolutionStudyConfig, run

    summary = run(EvolutionStudyConfig.from_yaml(args.config), args.out)
    console.print(Path(args.out, "summary.md").read_text())
    console.print(f"run time {summary['seconds']:.0f} s; everything is in {args.out}")
    return 0


def _cmd_study_transfer(args: argparse.Namespace) -> int:
    """The transfer-learning study (pre-train on AOJ-like jets, fine-tune on JetClass-like)."""
    from jetfm.studies.transfer import load_config, run

    summary = run(load_config(args.preset, args.config), args.out)
    console.print(Path(args.out, "summary.md").read_text())
    console.print(f"run time {summary['this_run']['seconds']:.0f} s; report: "
                  f"{Path(args.out, 'report.md')}")
    return 0


VARIANT_STUDIES = {"tokenizer": "jetfm.studies.tokenizer", "gpt-curve": "jetfm.studies.gpt_curve"}


def _cmd_study_variants(args: argparse.Namespace) -> int:
    """A study of variants from a config: the tokenizer resolution study
    (:mod:`jetfm.studies.tokenizer`) or the GPT learning curve (:mod:`jetfm.studies.gpt_curve`)."""
    module = importlib.import_module(VARIANT_STUDIES[args.study])
    summary = module.run(module.load_config(args.config), args.out)
    console.print(Path(args.out, "table.md").read_text(), markup=False)
    console.print(f"run time {summary['seconds']:.0f} s; every metric in "
                  f"{Path(args.out, 'summary.md')}")
    return 0


def _cmd_study_omnilearn(args: argparse.Namespace) -> int:
    """OmniLearn transfer to unseen tasks (:mod:`jetfm.studies.omnilearn_transfer`)."""
    from jetfm.studies.omnilearn_transfer import load_config, run

    rows = run(load_config(args.config), args.out)
    console.print(Path(args.out, "table.md").read_text(), markup=False)
    console.print(f"{len(rows)} cells; models and tables in {args.out}")
    return 0


def _cmd_benchmark_tagging(args: argparse.Namespace) -> int:
    """The tagging benchmark (:mod:`jetfm.studies.benchmark_tagging`) from a config, on the
    built-in 5-class data or the labelled files of ``--data``."""
    from jetfm.studies.benchmark_tagging import load_config, run

    config = load_config(args.config)
    if args.data:
        config.files = list(args.data)
    config.skip_invalid = config.skip_invalid or args.skip_invalid
    table = run(config, args.out)
    console.print(Path(args.out, "table.md").read_text(), markup=False)
    console.print(f"{len(table['rows'])} cells; table, plots and models in {args.out}")
    return 0


def _cmd_benchmark_generation(args: argparse.Namespace) -> int:
    """The generation benchmark (:mod:`jetfm.studies.benchmark_generation`) from a config, on
    the built-in top and QCD jets or the labelled files of ``--data``."""
    from jetfm.studies.benchmark_generation import load_config, run

    config = load_config(args.config)
    if args.data:
        config.files = list(args.data)
    results = run(config, args.out)
    console.print(f"{len(results)} generators; table, plots and models in {args.out}")
    return 0


# ---------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``jetfm sample: error: argument
    --top-k: '0' must be >= 1``, exit 2), like every other bad-input error of jetfm; the
    usage is in ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``jetfm`` argument parser with all subcommands."""
    from jetfm.data.classes import CLASSES

    parser = _Parser(prog="jetfm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def skip_invalid_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--skip-invalid", action="store_true",
                       help="drop jets with invalid values (NaN, negative energy, ...) and "
                            "count them in a warning, instead of stopping with an error")

    gen = sub.add_parser("generate", help="simulate jets with Pythia8 + FastJet")
    gen.add_argument(
        "--process", nargs="+", default=["qcd", "top", "w", "z", "hbb"],
        help="qcd top w z hbb (default: all)",
    )
    gen.add_argument("--n-jets", type=POSITIVE_INT_OPTION, default=2000, help="jets per process")
    gen.add_argument("--out-dir", type=folder_output, default="data", help="output folder")
    gen.add_argument(
        "--format", choices=("aspen", "parquet", "root"),
        help="root (JetClass) by default; aspen (AOJ HDF5) with --aspen-like",
    )
    gen.add_argument("--seed", type=SEED_OPTION, default=1)
    gen.add_argument("--workers", type=POSITIVE_INT_OPTION, default=1, help="parallel processes")
    gen.add_argument(
        "--mpi", action="store_true",
        help="multi-parton interactions on (underlying event; ~4x slower)",
    )
    gen.add_argument(
        "--aspen-like", action="store_true",
        help="AspenOpenJets-like source: pT > 300 GeV, |eta| < 2.5, <= 150 constituents, smeared",
    )
    gen.add_argument("--no-smear", action="store_true", help="no detector smearing (aspen-like)")
    gen.add_argument("--pt-min", type=NON_NEGATIVE_OPTION, help="jet pT lower cut [GeV]")
    gen.add_argument("--pt-max", type=POSITIVE_OPTION, help="jet pT upper cut [GeV]")
    gen.add_argument("--eta-max", type=POSITIVE_OPTION, help="jet |eta| cut")
    gen.add_argument("--max-events-without-jet", type=POSITIVE_INT_OPTION,
                     help="stop with an error after this many events without an accepted "
                     "jet (default 10000, per worker)")
    gen.set_defaults(func=_cmd_generate)

    info = sub.add_parser("info", help="jets per class, feature ranges, cuts")
    info.add_argument("files", nargs="+")
    skip_invalid_option(info)
    info.set_defaults(func=_cmd_info)

    plot = sub.add_parser("plot", help="observable histograms per class")
    plot.add_argument("files", nargs="+")
    plot.add_argument("--out-dir", type=folder_output, default="plots")
    skip_invalid_option(plot)
    plot.set_defaults(func=_cmd_plot)

    tr = sub.add_parser("trees", help="FastJet declustering trees, validated, with jets/s")
    tr.add_argument("files", nargs="+")
    tr.add_argument("--algorithm", choices=("kt", "cambridge", "antikt"), default="kt")
    tr.add_argument("--recombination", choices=("E", "WTA_pt"), default="E")
    tr.add_argument("--r", type=POSITIVE_OPTION, help="jet radius > 0 (default: one tree per "
                    "jet)")
    tr.add_argument("--out", type=parquet_output, help="write the trees to this .parquet file")
    skip_invalid_option(tr)
    tr.set_defaults(func=_cmd_trees)

    ev = sub.add_parser("evaluate", help="generated-vs-reference metrics, floors, report")
    ev.add_argument("reference", nargs="+", help="reference jet file(s)")
    ev.add_argument("--generated", nargs="+", required=True, help="generated jet file(s)")
    ev.add_argument("--out-dir", type=folder_output, default="evaluation")
    ev.add_argument("--n-bootstrap", type=option(Rule(int, low=2)), default=100,
                    help="bootstrap resamples for the errors (>= 2; default 100)")
    ev.add_argument("--seed", type=SEED_OPTION, default=0)
    ev.add_argument("--html", action="store_true", help="also write report.html")
    ev.add_argument("--no-plots", action="store_true", help="table and report only")
    ev.add_argument("--tokenizer", type=Path,
                    help="put the reference through this tokenizer's frame (particle cuts, "
                         "n_max, massless particles around the axis) as `jetfm sample` jets are")
    skip_invalid_option(ev)
    ev.set_defaults(func=_cmd_evaluate)

    def training_options(p: argparse.ArgumentParser, config: Path = DEMO_CONFIG) -> None:
        p.add_argument("--config", type=Path, default=config,
                       help=f"YAML config (default: configs/{config.name})")
        p.add_argument("--max-epochs", type=POSITIVE_INT_OPTION)
        p.add_argument("--batch-size", type=POSITIVE_INT_OPTION)
        p.add_argument("--lr", type=POSITIVE_OPTION)
        p.add_argument("--accelerator", help="cpu, gpu or auto")
        p.add_argument("--devices", type=POSITIVE_INT_OPTION, help="devices (processes with "
                       "DDP)")
        p.add_argument("--strategy", help="auto, ddp, ddp_spawn, ...")
        p.add_argument("--seed", type=SEED_OPTION, help="default: the training block's seed, "
                       "else the config's")

    tok = sub.add_parser("tokenizer",
                         help="train a tokenizer (VQ-VAE or feature codebook) on jet files",
                         description="Train a tokenizer on jet files: OmniJet-alpha's VQ-VAE, "
                         "or a feature-space codebook (tokenizer_model: codebook in --config; "
                         "optionally in the prongs' frame, subjet_frame: true).")
    tok.add_argument("files", nargs="+")
    tok.add_argument("--out-dir", type=folder_output, default="tokenizer")
    skip_invalid_option(tok)
    training_options(tok)
    tok.set_defaults(func=_cmd_tokenizer)

    tkz = sub.add_parser("tokenize", help="jet files -> token parquet")
    tkz.add_argument("files", nargs="+")
    tkz.add_argument("--tokenizer", required=True, help="tokenizer.safetensors")
    tkz.add_argument("--out", required=True, type=parquet_output, help="output .parquet")
    skip_invalid_option(tkz)
    tkz.set_defaults(func=_cmd_tokenize)

    pre = sub.add_parser("pretrain", help="generative pre-training of the GPT backbone")
    pre.add_argument("tokens", nargs="+", help="token parquet file(s)")
    pre.add_argument("--tokenizer", required=True)
    pre.add_argument("--out-dir", type=folder_output, default="pretrain")
    pre.add_argument("--resume", help="Lightning checkpoint to resume from (e.g. last.ckpt)")
    training_options(pre)
    pre.set_defaults(func=_cmd_pretrain)

    smp = sub.add_parser("sample", help="sample jets from a pre-trained GPT")
    smp.add_argument("--model", required=True, help="backbone.safetensors")
    smp.add_argument("--tokenizer", help="check that the model holds this tokenizer (the "
                     "model file carries its own)")
    smp.add_argument("--n-jets", type=POSITIVE_INT_OPTION, default=1000, help="sequences "
                     "sampled; those that stop before their first particle are left out "
                     "(counted)")
    smp.add_argument("--out", required=True, help="output jet file (.parquet, .h5; .root "
                     "needs --label)")
    smp.add_argument("--label", choices=CLASSES, help="class of the sampled jets (needed for "
                     "JetClass .root output); default: unlabelled")
    smp.add_argument("--temperature", type=POSITIVE_OPTION, default=1.0,
                     help="softmax temperature > 0 (< 1: sharper, > 1: flatter)")
    smp.add_argument("--top-k", type=POSITIVE_INT_OPTION,
                     help="sample among the k most likely tokens (>= 1; default: all)")
    smp.add_argument("--batch-size", type=POSITIVE_INT_OPTION, default=256)
    smp.add_argument("--seed", type=SEED_OPTION, default=1)
    smp.add_argument("--no-cache", action="store_true", help="recompute the prefix every step")
    smp.add_argument("--device", type=device_option, default="auto",
                     help="cpu, cuda, cuda:1, ...; auto: CUDA if available")
    smp.set_defaults(func=_cmd_sample)

    ft = sub.add_parser("finetune", help="jet tagger (any backbone, any classes) from a "
                        "saved backbone or from scratch")
    ft.add_argument("files", nargs="+", help="labelled jet files (every class of --classes)")
    ft.add_argument("--backbone", choices=sorted(BACKBONES),
                    help="backbone (default: the --init file's, else the config's)")
    ft.add_argument("--init", help="backbone, tagger or pre-trained OmniJet file to start from")
    ft.add_argument("--mode", choices=("finetune", "frozen", "scratch"),
                    help="default: finetune with --init, else scratch")
    ft.add_argument("--classes", nargs="+", choices=CLASSES, metavar="CLASS",
                    help="classes to separate, in output order (default: those in the files)")
    ft.add_argument("--head", choices=sorted(HEAD_NAMES), help="default: the config's")
    ft.add_argument("--n-train", type=POSITIVE_INT_OPTION, help="training jets (default: all "
                    "available)")
    ft.add_argument("--test-fraction", type=option(Rule(float, low=0, low_open=True, high=1,
                                                         high_open=True)), default=0.3,
                    help="share of the jets kept for the test, in (0, 1)")
    ft.add_argument("--out-dir", type=folder_output, default="finetune")
    skip_invalid_option(ft)
    training_options(ft, TAGGING_CONFIG)
    ft.set_defaults(func=_cmd_finetune)

    omni = sub.add_parser("omnijet", help="the whole OmniJet-alpha chain from a config")
    omni.add_argument("--config", type=Path, default=DEMO_CONFIG, help="YAML config")
    omni.add_argument("--out", type=folder_output, default="runs/omnijet")
    omni.set_defaults(func=_cmd_omnijet)

    evo = sub.add_parser("evolution", help="jet-evolution generator vs thesis baseline study")
    evo.add_argument("--config", type=Path, required=True, help="YAML config")
    evo.add_argument("--out", type=folder_output, default="runs/evolution")
    evo.set_defaults(func=_cmd_evolution)

    study = sub.add_parser("study", help="studies from presets (resumable)")
    studies = study.add_subparsers(dest="study", required=True)
    tl = studies.add_parser("transfer", help="AOJ-like pre-training, fine-tuning on "
                            "JetClass-like QCD and top vs from scratch, D scan")
    tl.add_argument("--preset", choices=("cpu", "gpu", "tiny"), default="cpu",
                    help="configs/transfer_PRESET.yaml")
    tl.add_argument("--config", type=Path, help="YAML file overriding preset keys")
    tl.add_argument("--out", type=folder_output, default="runs/transfer",
                    help="output folder (rerun to resume)")
    tl.set_defaults(func=_cmd_study_transfer)
    for name, config, out, text in (
            ("tokenizer", TOKENIZER_STUDY_CONFIG, "runs/tokenizer_study",
             "tokenizer resolution: decoded vs truth top and QCD jets over codebook size, "
             "training jets, quantiser, ..."),
            ("gpt-curve", GPT_CURVE_CONFIG, "runs/gpt_curve",
             "GPT learning curve: generated vs held-out top jets over training jets, GPT size "
             "and sampling, one tokenizer")):
        variants = studies.add_parser(name, help=text)
        variants.add_argument("--config", type=Path, default=config,
                              help=f"YAML config (default: configs/{config.name})")
        variants.add_argument("--out", type=folder_output, default=out,
                              help="output folder (rerun to resume)")
        variants.set_defaults(func=_cmd_study_variants)
    ol = studies.add_parser("omnilearn", help="PET pre-trained jointly on 5 classes, "
                            "fine-tuned to quark/gluon tagging and gluon-jet generation vs "
                            "from scratch, D scan")
    ol.add_argument("--config", type=Path, default=OMNILEARN_CONFIG,
                    help=f"YAML config (default: configs/{OMNILEARN_CONFIG.name})")
    ol.add_argument("--out", type=folder_output, default="runs/omnilearn_transfer",
                    help="output folder (rerun to resume)")
    ol.set_defaults(func=_cmd_study_omnilearn)

    bench = sub.add_parser("benchmark", help="benchmarks from configs (resumable)")
    benches = bench.add_subparsers(dest="study", required=True)
    def benchmark(name: str, help_text: str, config: Path, data_help: str, func: Any
                  ) -> argparse.ArgumentParser:
        p = benches.add_parser(name, help=help_text)
        p.add_argument("--config", type=Path, default=config,
                       help=f"YAML config (default: configs/{config.name})")
        p.add_argument("--data", nargs="+", help=data_help)
        p.add_argument("--out", type=folder_output, default=f"runs/benchmark_{name}",
                       help="output folder (rerun to resume)")
        p.set_defaults(func=func)
        return p

    skip_invalid_option(benchmark(
        "tagging", "every backbone and a gradient-boosted baseline trained on the same jets: "
        "accuracy, AUCs, rejections, speed", BENCHMARK_CONFIG,
        "labelled jet files (classes exactly the config's) instead of the built-in generated "
        "jets", _cmd_benchmark_tagging))
    benchmark("generation", "every generator (PET, OmniJet-alpha, jet evolution) trained on "
              "the same top and QCD jets: W1/KL/FPD/KPD/C2ST vs held-out truth next to their "
              "floors, speed, overlays", GENERATION_BENCHMARK_CONFIG,
              "labelled top (Tbqq) and QCD jet files instead of the built-in generated jets",
              _cmd_benchmark_generation)

    demo = sub.add_parser("demo", help="the built-in default job: the OmniJet-alpha chain")
    demo.add_argument("--out", type=folder_output, default="runs/demo")
    demo.add_argument("--config", type=Path, default=DEMO_CONFIG, help="YAML config")
    demo.set_defaults(func=_cmd_omnijet)
    return parser


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (``KeyError`` without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or repr(err)


def _write_log(command: str, argv: Sequence[str] | None) -> Path:
    """Write the current exception's traceback to a new log file; returns its path."""
    folder = Path(os.environ.get(LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "jetfm-logs")
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"jetfm-{command.replace(' ', '-')}-{stamp}-{os.getpid()}.log"
    args = sys.argv[1:] if argv is None else list(argv)
    path.write_text(f"jetfm {' '.join(args)}\n\n{traceback.format_exc()}")
    return path


# Errors that mean "this input or request cannot give a result" (exit 2, one line): jetfm's
# readers raise JetDataError (a ValueError) naming the file, key and problem.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
    PermissionError, FileExistsError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jetfm`` console script; returns the exit status.

    0: done; 2: bad input (one line on stderr); 1: unexpected failure (one line with the path
    of the log file holding the traceback); 130: interrupted. See the module docstring.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, one line already printed)
        return done.code if isinstance(done.code, int) else 2
    command = " ".join(filter(None, (args.command, getattr(args, "study", None))))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"jetfm {command}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as err:
        print(f"jetfm {command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        what = f"jetfm {command}: unexpected {type(err).__name__}: {_one_line(err)}"
        try:
            where = f"traceback in {_write_log(command, argv)}"
        except OSError as log_err:
            traceback.print_exc()
            where = f"could not write a log ({log_err}); traceback above"
        print(f"{what} ({where})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
