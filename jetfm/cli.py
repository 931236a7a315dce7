"""The ``jetfm`` command line.

    jetfm generate   simulate jets with Pythia8 + FastJet and write them to files
    jetfm cluster    anti-kt jets of your own HepMC event file, written as generate's
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
                     ``jetfm study omnilearn`` (PET pre-training -> unseen tasks),
                     ``jetfm study jetgpt`` (JetGPT multiplicity extrapolation),
                     ``jetfm study amplitudes`` (L-GATr amplitude regression),
                     ``jetfm study event-generation`` (L-GATr CFM event generation)
    jetfm benchmark  ``jetfm benchmark tagging``: every backbone and a GBDT on the same jets;
                     ``jetfm benchmark generation``: every generator on the same top/QCD jets
    jetfm demo       the built-in default job (the OmniJet-alpha chain on generated jets)
    jetfm report     one page (Markdown, HTML) of a run or study folder: its tables and plots

Every command prints what it does; ``jetfm COMMAND --help`` lists the options (each with its
default and unit) and examples that run on a fresh install.

Configs. ``--config`` takes a YAML file or the name of a shipped preset (``omnijet_cpu``,
``transfer_tiny``, ...: ``jetfm/configs/*.yaml``, :mod:`jetfm.configs`). Every command that
reads a config also takes ``KEY=VALUE`` overrides of any key, with a dotted path into blocks
and lists (``jetfm study omnilearn --config omnilearn_transfer_tiny sizes=[10,20]
pretraining.generator.body.dim=32``; after the jet or token files where a command takes
files), checked like the file's keys (:func:`jetfm.configs.apply_overrides`). The config a
run used (the YAML after the overrides) is written to ``OUT/config.resolved.yaml``; give that
file to ``--config`` to rerun it.

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
import json
import os
import re
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from rich.table import Table

from jetfm.checks import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Rule, number
from jetfm.configs import locate, presets_dir, split_overrides, write_resolved
from jetfm.console import Console

if TYPE_CHECKING:
    from jetfm.data.batch import JetBatch
    from jetfm.data.tokens import TokenDataset
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.studies.omnijet import OmniJetConfig

console = Console(soft_wrap=True, emoji=False)

CONFIGS = presets_dir()  # the shipped presets (package data: jetfm/configs/*.yaml)
DEMO_CONFIG = CONFIGS / "omnijet_cpu.yaml"
TAGGING_CONFIG = CONFIGS / "tagging_cpu.yaml"
BENCHMARK_CONFIG = CONFIGS / "benchmark_tagging_cpu.yaml"
GENERATION_BENCHMARK_CONFIG = CONFIGS / "benchmark_generation_cpu.yaml"
OMNILEARN_CONFIG = CONFIGS / "omnilearn_transfer_cpu.yaml"
TOKENIZER_STUDY_CONFIG = CONFIGS / "tokenizer_study_cpu.yaml"
GPT_CURVE_CONFIG = CONFIGS / "gpt_curve_cpu.yaml"
JETGPT_CONFIG = CONFIGS / "jetgpt_zjets_cpu.yaml"
DEFAULT_N_JETS = 2000  # jetfm generate's jets per process
AMPLITUDES_CONFIG = CONFIGS / "amplitudes_cpu.yaml"
EVENT_GENERATION_CONFIG = CONFIGS / "event_generation_cpu.yaml"
# names the parser offers; the modules behind them load only when a command needs them
BACKBONES = ("jetgpt", "lgatr", "omnijet", "part", "pet")
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
    created, or reused to resume), refused before any work is done. An empty path is refused
    (``Path("")`` is the current folder: a study would spill its files there)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a folder (it is created if "
                                         "missing)")
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


def config_option(text: str) -> Path:
    """An argparse ``type`` for ``--config``: a YAML file, or the name of a shipped preset
    (:func:`jetfm.configs.locate`); a bare name that is neither is a usage error listing the
    presets. A missing file is reported by the command (``no config file ...``)."""
    try:
        return locate(text)
    except FileNotFoundError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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
    from jetfm.data.shards import GenerateJob, ShardOptions, run_command

    if "zjets" in args.process:
        return _generate_zjets(args)
    zjets_only = {"--n-events": args.n_events, "--hard-process": args.hard_process,
                  "--no-hadronization": args.no_hadronization}
    given = [name for name, value in zjets_only.items() if value not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: options of --process zjets (Z -> mu mu + jets "
                         "events), not of the jet processes")
    keys = ("pt_min", "pt_max", "eta_max", "max_events_without_jet")
    cuts = {k: getattr(args, k) for k in keys}
    if args.n_jets is None:
        args.n_jets = DEFAULT_N_JETS
    sharding = ShardOptions.from_args(args)
    if sharding.active:  # shards: jetfm.data.shards
        jobs = [GenerateJob.for_process(
            process, args.n_jets, args.out_dir, fmt=args.format or ("aspen" if args.aspen_like
                                                                   else "root"),
            seed=args.seed, workers=args.workers, n_shards=sharding.n_shards, mpi=args.mpi,
            aspen_like=args.aspen_like, smear=not args.no_smear,
            cuts={k: v for k, v in cuts.items() if v is not None}) for process in args.process]
        run_command(jobs, sharding)
        return 0
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


def _generate_zjets(args: argparse.Namespace) -> int:
    """``generate --process zjets``: Z -> mu mu + jets events (:mod:`jetfm.data.zjets`) to
    OUT_DIR/zjets.h5, with the jet multiplicities and what each cut removed."""
    from jetfm.data.events import write_events
    from jetfm.data.shards import ShardOptions
    from jetfm.data.zjets import ZJetsConfig, generate_zjets

    others = [p for p in args.process if p != "zjets"]
    if others or len(args.process) > 1:
        raise ValueError(f"--process zjets (events) cannot be combined with other processes "
                         f"({' '.join(args.process)}); run jetfm generate once per kind")
    jet_only = {"--n-jets": args.n_jets, "--format": args.format, "--aspen-like": args.aspen_like,
                "--no-smear": args.no_smear, "--pt-min": args.pt_min, "--pt-max": args.pt_max,
                "--eta-max": args.eta_max,
                "--max-events-without-jet": args.max_events_without_jet,
                "--n-shards/--shard/--dask/--merge": ShardOptions.from_args(args).active}
    given = [name for name, value in jet_only.items() if value not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)}: options of the jet processes, not of "
                         "--process zjets")
    chosen = {"hard_process": args.hard_process} if args.hard_process else {}
    config = ZJetsConfig(mpi=args.mpi, hadronization=not args.no_hadronization, **chosen)
    path = Path(args.out_dir) / "zjets.h5"
    events = generate_zjets(args.n_events or 10_000, config, seed=args.seed,
                            workers=args.workers)
    write_events(events, path)
    seconds = events.meta["seconds"]
    console.print(f"[bold]zjets[/]: {len(events)} events in {seconds:.1f} s "
                  f"({len(events) / max(seconds, 1e-9):.0f} events/s) -> {path}")
    _print_events(events)
    return 0


def _print_events(events: Any) -> None:
    """What each cut removed, the exclusive jet counts and the staircase ratios of an events
    file (``generate --process zjets``, ``info``)."""
    from jetfm.data.zjets import cut_reports
    from jetfm.physics.staircase import staircase_ratios

    for report in cut_reports(events.meta) if "cuts" in events.meta else ():
        console.print(f"  {report}")
    counts, ratios, errors = staircase_ratios(events.n_jets, int(events.n_jets.max(initial=0)))
    console.print("  events per jet multiplicity: "
                  + ", ".join(f"{n}: {c}" for n, c in enumerate(counts)))
    console.print("  staircase ratios R_(n+1)/n: " + ", ".join(
        f"{n + 1}/{n}: " + ("n/a" if np.isnan(r) else f"{r:.3f} ± {e:.3f}")
        for n, (r, e) in enumerate(zip(ratios, errors, strict=True))))


# ---------------------------------------------------------------------------- cluster
def _cmd_cluster(args: argparse.Namespace) -> int:
    """Anti-kt jets of HepMC event files (:mod:`jetfm.data.hepmc`), written and reported as
    ``generate``'s: the jet file plus a ``.cuts.json`` record of what each cut removed. Several
    files: their jets in order in one file (``--n-jets`` per file), or in shards
    (:mod:`jetfm.data.shards`)."""
    from dataclasses import asdict

    from jetfm.data.classes import UNLABELLED, class_index
    from jetfm.data.hepmc import ClusterConfig, detect_format
    from jetfm.data.io import write_jets
    from jetfm.data.shards import ClusterJob, ShardOptions, cluster_files, run_command
    from jetfm.data.summary import write_sidecar

    label = None if args.label is None else class_index(args.label)
    check_output(args.out, label)
    keys = ("jet_r", "pt_min", "pt_max", "eta_max", "jets_per_event", "n_jets")
    config = ClusterConfig(**{k: getattr(args, k) for k in keys if getattr(args, k) is not None},
                           label=UNLABELLED if label is None else label)
    sharding = ShardOptions.from_args(args)
    if sharding.active:
        run_command([ClusterJob(tuple(args.events), config, Path(args.out), sharding.n_shards)],
                    sharding)
        return 0
    one = len(args.events) == 1  # one file: the record names it as before (not a list)
    formats = [detect_format(f)[0] for f in args.events]
    start = time.perf_counter()
    batch, reports = cluster_files(args.events, config, progress=True)
    elapsed = time.perf_counter() - start
    write_jets(batch, args.out)
    write_sidecar(args.out, reports, {
        "source": str(args.events[0]) if one else [str(f) for f in args.events],
        "source_format": formats[0] if one else formats,
        **asdict(config), "seconds": round(elapsed, 2)})
    n_events = sum(r.n_before for r in reports if r.name.endswith(": events"))
    console.print(f"{_names(args.events)}: {len(batch)} jets from {n_events} events in "
                  f"{elapsed:.1f} s, label {args.label or 'none (unlabelled)'} -> {args.out}")
    for report in reports:
        console.print(f"  {report}")
    return 0


# ---------------------------------------------------------------------------- info
def print_info(paths: Sequence[str], *, skip_invalid: bool = False) -> None:
    """Print, per file: jets per class, feature ranges, cut reports and invalid jets."""
    from jetfm.data.events import is_events_file, read_events
    from jetfm.data.io import read_jets
    from jetfm.data.summary import feature_ranges

    for path in paths:
        if is_events_file(path):  # generate --process zjets
            events = read_events(path)
            console.print(f"{path}: {len(events)} Z -> mu mu + jets events (up to "
                          f"{events.max_jets} jets stored)")
            _print_events(events)
            continue
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
    if "source" in config:  # jetfm cluster: jets of the user's own events
        sources = config["source"] if isinstance(config["source"], list) else [config["source"]]
        console.print(
            f"clustered from: {', '.join(map(str, sources))} ({config.get('source_format')}) "
            f"anti-kt R={config.get('jet_r')} pt=[{config.get('pt_min')}, "
            f"{config.get('pt_max')}] |eta|<{config.get('eta_max')}")
        for report in reports:
            console.print(f"  cut {report}")
        return
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


def _overrides(args: argparse.Namespace, block: str | None = None) -> list[str]:
    """The ``KEY=VALUE`` config overrides of the command line: those given (among the files
    of commands that take files), then the training options (``--max-epochs 3`` is
    ``BLOCK.max_epochs=3``, ``block`` the training block the command uses), so that the
    resolved config shows them."""
    given = list(getattr(args, "overrides", None) or [])
    for name in ("files", "tokens"):
        if getattr(args, name, None):
            files, more = split_overrides(getattr(args, name))
            if not files:
                raise ValueError(f"no {name} given, only the config overrides {more}")
            setattr(args, name, files)
            given += more
    return given + (_flag_overrides(args, block) if block is not None else [])


def _flag_overrides(args: argparse.Namespace, block: str) -> list[str]:
    """The training options as overrides of ``block`` (``--lr 1e-4``: ``block.lr=0.0001``)."""
    return [f"{block}.{key}={json.dumps(value)}"
            for key, value in _training_overrides(args).items()]


def _save_config(out_dir: str | Path, args: argparse.Namespace, overrides: Sequence[str],
                 config: Any = None, data: dict[str, Any] | None = None,
                 source: str | Path | None = None) -> None:
    """Write the config a run uses (``data``, by default the YAML of ``--config`` after
    ``overrides`` read for the dataclass of ``config``) to ``out_dir/config.resolved.yaml``
    (:func:`jetfm.configs.write_resolved`) and print its path; only in the process that
    reports (rank 0 of DDP).

    The file it replaces is remembered: a run that then stops on bad input (an
    ``EXPECTED_ERRORS`` error, e.g. sizes larger than the data) gets it back (:func:`main`), so
    a folder's config file always describes the run that made its results."""
    from jetfm.configs import RESOLVED_NAME
    from jetfm.studies import read_config

    if _rank_zero():
        if data is None:
            data = read_config(args.config, type(config), overrides)
        target = Path(out_dir) / RESOLVED_NAME
        _REPLACED_CONFIGS.append((target, target.read_bytes() if target.is_file() else None))
        path = write_resolved(data, out_dir, source or args.config, overrides)
        console.print(f"config -> {path}")


_REPLACED_CONFIGS: list[tuple[Path, bytes | None]] = []
"""(config.resolved.yaml, its bytes before this command wrote it or None) of this command."""


def _restore_configs() -> None:
    """Put back the config files this command replaced (it stopped on bad input)."""
    from jetfm.atomic import atomic_path

    while _REPLACED_CONFIGS:
        path, before = _REPLACED_CONFIGS.pop()
        if before is None:
            path.unlink(missing_ok=True)
        else:
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(before)


def _omnijet_config(path: Path, overrides: Sequence[str] = ()) -> OmniJetConfig:
    """The OmniJet config in ``path`` with the ``KEY=VALUE`` ``overrides``, keys and values
    checked before any work is done (:meth:`jetfm.studies.omnijet.OmniJetConfig.from_yaml`);
    every ``ValueError`` names the file."""
    from jetfm.studies.omnijet import OmniJetConfig

    try:
        return OmniJetConfig.from_yaml(path, overrides)
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

    overrides = _overrides(args)
    config = _omnijet_config(args.config, overrides)
    if config.tokenizer_model == "codebook":  # k-means: the training options do not apply
        given = sorted(set(_training_overrides(args)) - {"seed"})
        if given:
            raise ValueError(f"{args.config}: tokenizer_model is codebook (k-means), which "
                             f"takes no training options: {given} would not be used; set "
                             "the codebook block's max_iter / batch_size instead")
        overrides += [f"seed={args.seed}"] if args.seed is not None else []
    else:
        overrides += _flag_overrides(args, "tokenizer_training")
    config = _omnijet_config(args.config, overrides)
    training, seed = _training(args, config, "tokenizer_training")
    jets = read_jet_files(args.files, "train a tokenizer on", skip_invalid=args.skip_invalid)
    _save_config(args.out_dir, args, overrides, config)
    tokenizer = fit_token_model(jets, config.tokenizer_model, config.tokenizer_settings, training,
                                config.n_max, Path(args.out_dir), seed, config.pt_min,
                                config.subjet_order, config.subjet_frame)
    if _rank_zero():
        console.print(f"tokenizer {tokenizer.fingerprint} -> "
                      f"{args.out_dir}/tokenizer.safetensors")
    return 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from jetfm.data.shards import ShardOptions, TokenizeJob, run_command
    from jetfm.data.tokens import TokenDataset, write_tokens
    from jetfm.models.tokenizer import Tokenizer

    sharding = ShardOptions.from_args(args)
    if sharding.active:  # shards of the input files: jetfm.data.shards
        run_command([TokenizeJob(tuple(args.files), args.tokenizer, Path(args.out),
                                 sharding.n_shards, args.skip_invalid)], sharding)
        return 0
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
    from dataclasses import asdict

    from jetfm.bundle import from_file
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.tasks.omnijet import fit_generative
    from jetfm.tasks.training import TrainConfig

    overrides = _overrides(args, "pretraining")
    config = _omnijet_config(args.config, overrides)
    training, seed = _training(args, config, "pretraining")
    _check_bundle_target(Path(args.out_dir) / "model")
    tokenizer = Tokenizer.load(args.tokenizer)
    tokens = _read_token_files(args.tokens, tokenizer, "pre-train on")
    if len(tokens) < 2:
        raise ValueError(f"{_names(args.tokens)}: 1 tokenized jet; pre-training needs at least "
                         "2 (one for training, one for validation)")
    _save_config(args.out_dir, args, overrides, config)
    done = _epochs_done(args.resume) if args.resume else 0
    path = fit_generative(tokens, tokenizer, config.gpt, training, Path(args.out_dir), seed,
                          resume=args.resume)
    if _rank_zero():
        train_config = TrainConfig.from_overrides(training, seed, "pretraining")
        if done >= train_config.max_epochs:
            console.print(f"[yellow]{args.resume} has already run {done} epoch(s) and "
                          f"max_epochs is {train_config.max_epochs}: nothing was trained; the "
                          "backbone is the checkpoint's (raise --max-epochs to train on)[/]")
        console.print(f"backbone -> {path}")
        _write_bundle(from_file(path, tokenizer=args.tokenizer), Path(args.out_dir) / "model", {
            "title": "OmniJet-alpha generative model",
            "description": "Tokenizer + GPT + next-token head (Birk, Hallin, Kasieczka 2024, "
                           "arXiv:2403.05618) pre-trained by jetfm pretrain; "
                           "model.generate(n) samples and decodes jets.",
            "data": {**_file_records("token files", args.tokens),
                     **_file_records("tokenizer", [args.tokenizer]),
                     "tokenizer fingerprint": tokenizer.fingerprint, "jets": len(tokens)},
            "training": {"config": _config_name(args.config), "overrides": overrides, "seed": seed,
                         "gpt": config.gpt, "resumed from": args.resume,
                         **asdict(train_config)},
            "evaluation": _best_validation(Path(args.out_dir) / "logs" / "metrics.csv")})
    return 0


def _best_validation(metrics_csv: Path, column: str = "val/loss") -> dict[str, float]:
    """``{"best <column>": lowest value}`` of a Lightning ``metrics.csv`` (empty when it holds
    none): the validation loss of the weights a run keeps."""
    import pandas as pd

    if not metrics_csv.exists():
        return {}
    values = pd.read_csv(metrics_csv).get(column)
    values = values.dropna() if values is not None else []
    return {f"best {column}": float(values.min())} if len(values) else {}


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


def _tagging_data(args: argparse.Namespace) -> dict[str, Any]:
    """The mapping of ``--config`` (TaggingConfig keys and ``seed``) with the overrides
    ``args.config_overrides``; ``ValueError`` naming the file for an override of a key the
    options set (``classes``, ``mode``, ``init``)."""
    from jetfm.configs import apply_overrides
    from jetfm.studies import load_yaml
    from jetfm.tasks.tagging import TaggingConfig

    data = load_yaml(args.config) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{args.config}: expected a mapping of config keys")
    overrides = getattr(args, "config_overrides", [])
    optioned = sorted({o.split("=")[0].split(".")[0].split("[")[0] for o in overrides}
                      & {"classes", "mode", "init"})
    if optioned:
        raise ValueError(f"{args.config}: {optioned}: set by the options --classes, --mode "
                         "and --init, not by a KEY=VALUE override")
    return apply_overrides(data, overrides, TaggingConfig, args.config, extra={"seed": int})


def _tagging_config(args: argparse.Namespace, classes: list[str], quiet: bool = False
                    ) -> tuple[Any, int]:
    """The :class:`~jetfm.tasks.tagging.TaggingConfig` of ``--config`` with the command-line
    choices, and the seed; ``ValueError`` naming the config file and key for a bad value."""
    from jetfm.checkpoint import load_model
    from jetfm.tasks.tagging import tagging_config

    data = _tagging_data(args)
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
    from dataclasses import asdict

    from jetfm.data.classes import CLASSES, class_name
    from jetfm.data.io import check_distinct_files
    from jetfm.metrics.evaluate import evaluate_tagging
    from jetfm.metrics.tagging import multiclass_summary
    from jetfm.models.tagger import check_classes
    from jetfm.report import format_with_error, write_json
    from jetfm.tasks.tagging import train_tagger
    from jetfm.tasks.training import check_accelerator

    if args.mode in ("finetune", "frozen") and not args.init:
        raise ValueError(f"--mode {args.mode} starts from a saved backbone: pass --init FILE "
                         "(a backbone, tagger or pre-trained OmniJet file), or use --mode "
                         "scratch")
    args.config_overrides = _overrides(args, "training")
    check_distinct_files(args.files)
    if args.classes:
        check_classes(args.classes, "--classes")
    config, seed = _tagging_config(args, args.classes or ["QCD", "Tbqq"], quiet=True)
    check_accelerator(config.train_config(seed).accelerator)  # all checked before the jets
    _check_bundle_target(Path(args.out_dir) / "tagger")
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
    _save_config(args.out_dir, args, args.config_overrides, data=_tagging_data(args))
    tagger = train_tagger(jets[train], jets[val], config, Path(args.out_dir), seed=seed)
    if not _rank_zero():
        return 0
    probs = tagger.predict_proba(jets[test])
    summary = {"classes": classes, "n_train": len(train), "n_val": len(val),
               "n_test": len(test),
               "accuracy": float((probs.argmax(axis=1) == labels[test]).mean())}
    if len(classes) == 2:
        result = evaluate_tagging(labels[test], probs[:, 1], args.out_dir,
                                  name=f"{config.backbone} {config.mode}, D={len(train)}",
                                  signal=classes[1], background=classes[0])
        print(result.format())
        summary.update(result.summary)
    else:
        numbers = multiclass_summary(labels[test], probs, classes, seed=seed,
                                     background=classes[0] if "QCD" not in classes else "QCD")
        summary.update({k: {"value": v.value, "error": v.error} for k, v in numbers.items()})
        console.print(f"{config.backbone} {config.mode}, D={len(train)}: "
                      f"{', '.join(classes)} (test jets)")
        for key, value in numbers.items():
            console.print(f"  {key}: {format_with_error(value.value, value.error)}")
    write_json(Path(args.out_dir) / "result.json", summary)
    console.print(f"tested on {len(test)} jets; tagger -> {args.out_dir}/tagger.safetensors, "
                  f"results in {args.out_dir}/result.json")
    if len(classes) == 2:
        evaluation = [{"metric": k, "value": v} for k, v in result.summary.items()]
    else:
        evaluation = [{"metric": k, "value": v.value, "error": v.error}
                      for k, v in numbers.items()]
    if "accuracy" not in {row["metric"] for row in evaluation}:
        evaluation.insert(0, {"metric": "accuracy", "value": summary["accuracy"]})
    _write_bundle(tagger, Path(args.out_dir) / "tagger", {
        "title": f"{config.backbone} jet tagger: {' vs '.join(classes)}",
        "description": f"A {config.backbone} backbone with a {config.head} head "
                       f"({config.mode}{', from ' + str(config.init) if config.init else ''}), "
                       f"trained by jetfm finetune; it gives the probabilities of the classes "
                       f"{', '.join(classes)}, in this order.",
        "data": {**_file_records("files", args.files), "classes": classes,
                 "jets": {"training": len(train), "validation": len(val), "test": len(test)},
                 "test_fraction": args.test_fraction, "skip_invalid": args.skip_invalid},
        "training": {"config": _config_name(args.config), "overrides": args.config_overrides,
                     "seed": seed, "backbone": config.backbone, "head": config.head,
                     "mode": config.mode, "init": config.init,
                     **asdict(config.train_config(seed))},
        "evaluation": evaluation})
    return 0


def _file_records(key: str, paths: Sequence[str | Path]) -> dict[str, Any]:
    """``{key: {path: SHA-256 (first 16 hex digits)}}``: the input files of a model card."""
    from jetfm.atomic import file_digest

    return {f"{key} (SHA-256, first 16 hex digits)": {str(p): file_digest(p) for p in paths}}


def _config_name(path: str | Path) -> str:
    """A config file as a model card names it: a shipped preset by its name, another file by
    its path."""
    path = Path(path)
    return f"{path.stem} (jetfm preset)" if path.parent == CONFIGS else str(path)


def _check_bundle_target(path: Path) -> None:
    """``FileExistsError`` naming ``path``, before any work, when the run could not write its
    model bundle there (something that is not a jetfm bundle is in the way; a bundle of an
    earlier run is replaced)."""
    from jetfm.bundle import _is_bundle  # what jetfm.save may replace

    if path.exists() and not _is_bundle(path):
        raise FileExistsError(f"{path} exists and is not a jetfm model bundle; the run writes "
                              "its bundle there: move it away or choose another output folder")


def _write_bundle(model: Any, path: Path, card: dict[str, Any]) -> Path:
    """``jetfm.save`` of ``model`` to the bundle directory ``path`` with the model ``card``
    (:mod:`jetfm.bundle`), its path printed; call on DDP rank 0 only."""
    from jetfm.bundle import save

    save(model, path, card)
    console.print(f"model bundle -> {path} (jetfm.load({str(path)!r}))")
    return path


def _cmd_omnijet(args: argparse.Namespace) -> int:
    """The OmniJet-alpha chain from a config (``jetfm demo``: the CPU config), with the
    observables of the training jets (the config's files and the generated ones) plotted per
    class."""
    from jetfm.studies.omnijet import run

    out = Path(args.out)
    overrides = _overrides(args)
    config = _omnijet_config(args.config, overrides)
    _save_config(out, args, overrides, config)
    summary = run(config, out)
    used = {*config.files.values(), *(str(p) for p in (out / "data").glob("*.root"))}
    plot_files(sorted(used), out / "plots")
    console.print(Path(out, "summary.md").read_text())
    console.print(f"run time {summary['seconds']:.0f} s; everything is in {out}")
    return 0


def _cmd_evolution(args: argparse.Namespace) -> int:
    """The jet-evolution study from a config: trees, models, likelihoods, generated jets."""
    from jetfm.studies.evolution import EvolutionStudyConfig, run

    overrides = _overrides(args)
    config = EvolutionStudyConfig.from_yaml(args.config, overrides)
    _save_config(args.out, args, overrides, config)
    summary = run(config, args.out)
    console.print(Path(args.out, "summary.md").read_text())
    console.print(f"run time {summary['seconds']:.0f} s; everything is in {args.out}")
    return 0


def _cmd_study_transfer(args: argparse.Namespace) -> int:
    """The transfer-learning study (pre-train on AOJ-like jets, fine-tune on JetClass-like)."""
    from jetfm.studies.transfer import config_data, load_config, run

    overrides = _overrides(args)
    config = load_config(args.preset, args.config, overrides)
    source = f"--preset {args.preset}" + (f" --config {args.config}" if args.config else "")
    _save_config(args.out, args, overrides, data=config_data(args.preset, args.config,
                                                              overrides), source=source)
    summary = run(config, args.out)
    console.print(Path(args.out, "summary.md").read_text())
    console.print(f"run time {summary['this_run']['seconds']:.0f} s; report: "
                  f"{Path(args.out, 'report.md')}")
    return 0


VARIANT_STUDIES = {"tokenizer": "jetfm.studies.tokenizer", "gpt-curve": "jetfm.studies.gpt_curve",
                   "jetgpt": "jetfm.studies.jetgpt_extrapolation",
                   "amplitudes": "jetfm.studies.amplitudes",
                   "event-generation": "jetfm.studies.event_generation"}


def _cmd_study_variants(args: argparse.Namespace) -> int:
    """A study of variants from a config: the tokenizer resolution study
    (:mod:`jetfm.studies.tokenizer`), the GPT learning curve (:mod:`jetfm.studies.gpt_curve`)
    JetGPT's multiplicity extrapolation (:mod:`jetfm.studies.jetgpt_extrapolation`), the
    amplitude regression (:mod:`jetfm.studies.amplitudes`) or the CFM event generation
    (:mod:`jetfm.studies.event_generation`)."""
    module = importlib.import_module(VARIANT_STUDIES[args.study])
    overrides = _overrides(args)
    config = module.load_config(args.config, overrides)
    _save_config(args.out, args, overrides, config)
    summary = module.run(config, args.out)
    console.print(Path(args.out, "table.md").read_text(), markup=False)
    console.print(f"run time {summary['seconds']:.0f} s; every metric in "
                  f"{Path(args.out, 'summary.md')}")
    return 0


def _cmd_study_omnilearn(args: argparse.Namespace) -> int:
    """OmniLearn transfer to unseen tasks (:mod:`jetfm.studies.omnilearn_transfer`)."""
    from jetfm.studies.omnilearn_transfer import load_config, run

    overrides = _overrides(args)
    config = load_config(args.config, overrides)
    _save_config(args.out, args, overrides, config)
    rows = run(config, args.out)
    console.print(Path(args.out, "table.md").read_text(), markup=False)
    console.print(f"{len(rows)} cells; models and tables in {args.out}")
    return 0


def _benchmark_overrides(args: argparse.Namespace) -> list[str]:
    """The overrides of a benchmark command: those given (also among the ``--data`` files),
    then ``files=[...]`` for ``--data`` and ``skip_invalid=true`` for ``--skip-invalid``."""
    overrides = _overrides(args)
    if args.data:
        files, more = split_overrides(args.data)
        overrides += more + ([f"files={json.dumps(files)}"] if files else [])
    if getattr(args, "skip_invalid", False):
        overrides.append("skip_invalid=true")
    return overrides


def _cmd_benchmark_tagging(args: argparse.Namespace) -> int:
    """The tagging benchmark (:mod:`jetfm.studies.benchmark_tagging`) from a config, on the
    built-in 5-class data or the labelled files of ``--data``."""
    from jetfm.studies.benchmark_tagging import load_config, run

    overrides = _benchmark_overrides(args)
    config = load_config(args.config, overrides)
    _save_config(args.out, args, overrides, config)
    table = run(config, args.out)
    console.print(Path(args.out, "table.md").read_text(), markup=False)
    console.print(f"{len(table['rows'])} cells; table, plots and models in {args.out}")
    return 0


def _cmd_benchmark_generation(args: argparse.Namespace) -> int:
    """The generation benchmark (:mod:`jetfm.studies.benchmark_generation`) from a config, on
    the built-in top and QCD jets or the labelled files of ``--data``."""
    from jetfm.studies.benchmark_generation import load_config, run

    overrides = _benchmark_overrides(args)
    config = load_config(args.config, overrides)
    _save_config(args.out, args, overrides, config)
    results = run(config, args.out)
    console.print(f"{len(results)} generators; table, plots and models in {args.out}")
    return 0


# ---------------------------------------------------------------------------- report
REPORT_NAME = "index"  # jetfm report writes RUN_DIR/index.md (and index.html)


def _cmd_report(args: argparse.Namespace) -> int:
    """One page of a run or study folder (:func:`jetfm.report.report_from_run_dir`)."""
    from jetfm.report import report_from_run_dir

    path = report_from_run_dir(args.run_dir, title=args.title, html=args.html,
                               name=REPORT_NAME)
    console.print(f"report -> {path}" + (f", {path.with_suffix('.html')}" if args.html
                                           else ""))
    return 0


# ---------------------------------------------------------------------------- help
_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_RST_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str) -> str:
    """``text`` (reStructuredText of a docstring) as plain terminal text: ``:mod:`x```,
    ``:func:`x``` ... and double-backquoted literals become ``x``."""
    return _RST_LITERAL.sub(r"\1", _RST_ROLE.sub(r"\1", text))


def _default_text(value: Any) -> str:
    """An option's default as the user types it: lists space-separated, a shipped preset by
    its name, other paths as given."""
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    if isinstance(value, Path) and value.parent == CONFIGS:
        return value.stem
    return str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """jetfm's ``--help`` layout: descriptions and epilogs keep their lines (the examples),
    and every option's default is appended to its help as
    ``argparse.ArgumentDefaultsHelpFormatter`` does, unless the help already states it or
    there is none to state (None, or False for a switch: the help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False
                or default == argparse.SUPPRESS
                or not (action.option_strings or action.nargs in ("?", "*"))):
            return text
        return f"{text} (default: {_default_text(default)})".replace("%", "%%")

    def add_argument(self, action: argparse.Action) -> None:
        """As argparse's, with room for the command names of a subcommand list (argparse
        measures them without their extra indentation, and then wraps the longer ones)."""
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS:
            longest = max((len(name) for name in action.choices), default=0)
            indent = self._current_indent + 2 * self._indent_increment
            self._action_max_length = max(self._action_max_length, longest + indent)


CONFIG_HELP = """\
config: --config takes a YAML file or the name of a shipped preset (jetfm/configs/*.yaml;
a name that is neither is refused with the list of presets). KEY=VALUE arguments{where}
override any key of it, with a dotted path into blocks and lists (training.max_epochs=2,
sizes=[10,20], variants.0.n_train=50), checked like the file's keys; the config a run used
is written to OUT/config.resolved.yaml (give it to --config to rerun)."""

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("the built-in default job (about 10 minutes on 2 CPU cores)",
         "jetfm demo --out runs/demo"),
        ("jets, then a tagger on them", "jetfm generate --process top qcd --n-jets 500 "
         "--out-dir data"),
        ("", "jetfm finetune data/top.root data/qcd.root --backbone part --max-epochs 2 "
         "--out-dir finetune"),
        ("a study at its tiny size, then one page of its tables and plots",
         "jetfm study omnilearn --config omnilearn_transfer_tiny --out runs/omnilearn_tiny"),
        ("", "jetfm report runs/omnilearn_tiny --html"),
    ),
    "generate": (
        ("500 top and 500 QCD jets: data/top.root, data/qcd.root (JetClass ROOT layout)",
         "jetfm generate --process top qcd --n-jets 500 --out-dir data"),
        ("AspenOpenJets-like unlabelled QCD jets (pT > 300 GeV, smeared): aoj/qcd.h5",
         "jetfm generate --process qcd --n-jets 300 --aspen-like --out-dir aoj"),
        ("shard 0 of 4 (e.g. one batch-array task); --merge joins the shards afterwards",
         "jetfm generate --process qcd --n-jets 400 --n-shards 4 --shard 0 --out-dir shards"),
        ("2000 Z -> mu mu + jets events (muons and anti-kt R = 0.4 jets): events/zjets.h5",
         "jetfm generate --process zjets --n-events 2000 --out-dir events"),
    ),
    "cluster": (
        ("anti-kt R = 0.8 jets of your own HepMC3 (or HepMC2) file, e.g. Pythia 8 or Herwig "
         "output, labelled as QCD", "jetfm cluster events.hepmc --label QCD --out "
         "qcd_jets.root"),
        ("the 2 hardest jets per event above 300 GeV, unlabelled, as Parquet",
         "jetfm cluster events.hepmc.gz --pt-min 300 --jets-per-event 2 --out jets.parquet"),
    ),
    "info": (
        ("the files of the generate example", "jetfm info data/top.root data/qcd.root"),
    ),
    "plot": (
        ("observable histograms per class (PNG) of the generate example's jets",
         "jetfm plot data/top.root data/qcd.root --out-dir plots"),
    ),
    "trees": (
        ("kt declustering trees of the generate example's top jets",
         "jetfm trees data/top.root --out trees.parquet"),
    ),
    "evaluate": (
        ("two samples compared (top vs QCD jets of the generate example: far apart)",
         "jetfm evaluate data/qcd.root --generated data/top.root --out-dir evaluation --html"),
        ("jets of `jetfm sample` vs truth, in the tokenizer's frame",
         "jetfm evaluate data/top.root --generated sampled.parquet --tokenizer "
         "tokenizer/tokenizer.safetensors --out-dir evaluation_gpt"),
    ),
    "tokenizer": (
        ("a 512-code feature codebook on the generate example's jets",
         "jetfm tokenizer data/top.root data/qcd.root codebook.codebook_size=512 --out-dir "
         "tokenizer"),
        ("the paper's VQ-VAE instead", "jetfm tokenizer data/top.root data/qcd.root "
         "--config omnijet_cpu_vqvae --max-epochs 2 --out-dir tokenizer_vqvae"),
    ),
    "tokenize": (
        ("the top jets as tokens of the tokenizer example",
         "jetfm tokenize data/top.root --tokenizer tokenizer/tokenizer.safetensors --out "
         "tokens_top.parquet"),
    ),
    "pretrain": (
        ("a small GPT on the tokenize example's tokens (writes pretrain/backbone.safetensors "
         "and the bundle pretrain/model)", "jetfm pretrain tokens_top.parquet gpt.dim=32 "
         "--tokenizer tokenizer/tokenizer.safetensors --max-epochs 2 --out-dir pretrain"),
        ("resumed for 2 more epochs", "jetfm pretrain tokens_top.parquet gpt.dim=32 "
         "--tokenizer tokenizer/tokenizer.safetensors --max-epochs 4 --out-dir pretrain "
         "--resume pretrain/checkpoints/last.ckpt"),
    ),
    "sample": (
        ("200 jets of the pretrain example's GPT",
         "jetfm sample --model pretrain/backbone.safetensors --n-jets 200 --out "
         "sampled.parquet"),
    ),
    "finetune": (
        ("a ParT top tagger from scratch on the generate example's jets (writes the bundle "
         "finetune/tagger)", "jetfm finetune data/top.root data/qcd.root --backbone part "
         "--max-epochs 2 --out-dir finetune"),
        ("fine-tuned from the pretrain example's GPT",
         "jetfm finetune data/top.root data/qcd.root training.lr=3e-4 --init "
         "pretrain/backbone.safetensors --max-epochs 2 --out-dir finetune_omnijet"),
    ),
    "omnijet": (
        ("the OmniJet-alpha chain at CPU size (about 10 minutes)",
         "jetfm omnijet --config omnijet_cpu --out runs/omnijet"),
        ("the same with fewer jets and a smaller GPT", "jetfm omnijet --config omnijet_cpu "
         "--out runs/omnijet_small n_jets.top=2000 n_jets.qcd=1000 gpt.dim=64"),
    ),
    "evolution": (
        ("jet-evolution generator vs the thesis baseline at CPU size",
         "jetfm evolution --config evolution_cpu --out runs/evolution"),
    ),
    "study": (
        ("each study at its tiny size (about a minute each; numbers without physics)",
         "jetfm study transfer --preset tiny --out runs/transfer_tiny"),
        ("", "jetfm study tokenizer --config tokenizer_study_tiny --out runs/tokenizer_tiny"),
        ("", "jetfm study gpt-curve --config gpt_curve_tiny --out runs/gpt_curve_tiny"),
        ("", "jetfm study jetgpt --config jetgpt_zjets_tiny --out runs/jetgpt_tiny"),
        ("", "jetfm study amplitudes --config amplitudes_tiny --out runs/amplitudes_tiny"),
        ("", "jetfm study event-generation --config event_generation_tiny --out "
         "runs/event_generation_tiny"),
        ("", "jetfm study omnilearn --config omnilearn_transfer_tiny --out "
         "runs/omnilearn_tiny"),
    ),
    "study transfer": (
        ("the tiny preset (about a minute)",
         "jetfm study transfer --preset tiny --out runs/transfer_tiny"),
        ("the CPU preset with its D scan cut short (rerun to resume)",
         "jetfm study transfer --preset cpu --out runs/transfer sizes=[100,1000]"),
    ),
    "study tokenizer": (
        ("the tiny preset (under a minute)",
         "jetfm study tokenizer --config tokenizer_study_tiny --out runs/tokenizer_tiny"),
    ),
    "study gpt-curve": (
        ("the tiny preset (under a minute)",
         "jetfm study gpt-curve --config gpt_curve_tiny --out runs/gpt_curve_tiny"),
    ),
    "study jetgpt": (
        ("the tiny preset (about a minute; numbers without physics)",
         "jetfm study jetgpt --config jetgpt_zjets_tiny --out runs/jetgpt_tiny"),
        ("the CPU preset: 4M simulated events, four variants with Bayesian bands",
         "jetfm study jetgpt --config jetgpt_zjets_cpu --out runs/jetgpt_zjets"),
    ),
    "study amplitudes": (
        ("the tiny preset (about a minute; numbers without physics)",
         "jetfm study amplitudes --config amplitudes_tiny --out runs/amplitudes_tiny"),
        ("the CPU preset (about an hour on 2 cores)",
         "jetfm study amplitudes --config amplitudes_cpu --out runs/amplitudes"),
    ),
    "study event-generation": (
        ("the tiny preset (about a minute; numbers without physics)",
         "jetfm study event-generation --config event_generation_tiny --out "
         "runs/event_generation_tiny"),
        ("the CPU preset: Z + 1, 2, 3 jets, D = 1000 and 10000, three generators",
         "jetfm study event-generation --config event_generation_cpu --out "
         "runs/event_generation"),
    ),
    "study omnilearn": (
        ("the tiny preset (about a minute)",
         "jetfm study omnilearn --config omnilearn_transfer_tiny --out runs/omnilearn_tiny"),
        ("one D only", "jetfm study omnilearn --config omnilearn_transfer_tiny --out "
         "runs/omnilearn_d10 sizes=[10]"),
    ),
    "benchmark": (
        ("each benchmark at its tiny size (1-3 minutes each; numbers without physics)",
         "jetfm benchmark tagging --config benchmark_tagging_tiny --out "
         "runs/benchmark_tagging_tiny"),
        ("", "jetfm benchmark generation --config benchmark_generation_tiny --out "
         "runs/benchmark_generation_tiny"),
    ),
    "benchmark tagging": (
        ("the tiny preset on the built-in generated jets",
         "jetfm benchmark tagging --config benchmark_tagging_tiny --out "
         "runs/benchmark_tagging_tiny"),
        ("on the generate example's top and QCD jets",
         "jetfm benchmark tagging --config benchmark_tagging_tiny --data data/top.root "
         "data/qcd.root classes=[QCD,Tbqq] --out runs/benchmark_tagging_files"),
    ),
    "benchmark generation": (
        ("the tiny preset on the built-in generated jets",
         "jetfm benchmark generation --config benchmark_generation_tiny --out "
         "runs/benchmark_generation_tiny"),
    ),
    "demo": (
        ("the built-in default job: the OmniJet-alpha chain (about 10 minutes on 2 CPU cores)",
         "jetfm demo --out runs/demo"),
    ),
    "report": (
        ("one page of the tiny omnilearn study of `jetfm study omnilearn --help`",
         "jetfm report runs/omnilearn_tiny --html"),
        ("of a finetune run", "jetfm report finetune --html --title \"ParT top tagger\""),
    ),
}
"""The examples of each command's ``--help`` (key: the words after ``jetfm``): (comment,
command line) pairs, each runnable on a fresh install, in the order given (later ones use the
files of earlier ones: ``jetfm generate`` makes ``data/top.root``, ...)."""


def _examples(path: str) -> str:
    lines = ["examples:"]
    for comment, command in EXAMPLES[path]:
        lines += [f"  # {comment}"] if comment else []
        lines.append(f"  {command}")
    return "\n".join(lines)


def _document(parser: argparse.ArgumentParser, path: str = "",
              summary: str | None = None) -> None:
    """Give ``parser`` (the command ``jetfm PATH``) and its subcommands jetfm's help layout:
    the description (else the one-line ``summary`` of the command list), the config note of
    commands with ``--config``, and the examples of :data:`EXAMPLES`."""
    parser.formatter_class = HelpFormatter
    if parser.description is None and summary:
        parser.description = summary[:1].upper() + summary[1:] + "."
    if parser.description and "\n" not in parser.description:
        parser.description = textwrap.fill(parser.description, 92)
    parts = [parser.epilog] if parser.epilog else []
    dests = {a.dest for a in parser._actions}
    if "config" in dests:
        where = (" (after the jet or token files)" if {"files", "tokens"} & dests else
                 " (after the options)" if "overrides" in dests else "")
        parts.append(textwrap.fill(" ".join(CONFIG_HELP.format(where=where).split()), 92))
    if path in EXAMPLES:
        parts.append(_examples(path))
    parser.epilog = "\n\n".join(parts) or None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                _document(child, f"{path} {name}".strip(), helps.get(name))


# ---------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``jetfm sample: error: argument
    --top-k: '0' must be >= 1``, exit 2), like every other bad-input error of jetfm; the
    usage is in ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``jetfm`` argument parser with all subcommands."""
    from jetfm import __version__
    from jetfm.data.classes import CLASSES

    paragraphs = [p if p[:1].isspace() else textwrap.fill(" ".join(p.split()), 92,
                                                          break_on_hyphens=False)
                  for p in plain_text(__doc__).strip().split("\n\n")[2:]]
    parser = _Parser(prog="jetfm", description="jetfm: foundation models for jet physics "
                     "(data, tokenizers, backbones, tasks, physics metrics).",
                     epilog="\n\n".join(paragraphs))
    parser.add_argument("--version", action="version", version=f"jetfm {__version__}",
                        help="print the version (jetfm X.Y.Z) and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands", description="jetfm COMMAND --help: its "
                                "options and examples")

    def overrides_option(p: argparse.ArgumentParser) -> None:
        # checked when applied (jetfm.configs.apply_overrides), not as an argparse type: so
        # that `--unknown-option 0` is reported as an unrecognised option, not as "'0' is
        # not KEY=VALUE"
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="config overrides, any key, dotted into blocks and lists "
                            "(training.max_steps=10 sizes=[100,1000] variants.0.n_train=50)")

    def skip_invalid_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--skip-invalid", action="store_true",
                       help="drop jets with invalid values (NaN, negative energy, ...) and "
                            "count them in a warning, instead of stopping with an error")

    def jet_window_options(p: argparse.ArgumentParser, pt_min: str, pt_max: str,
                           eta_max: str) -> None:
        """The jet pT / |eta| window of `generate` and `cluster` (their defaults are
        GeneratorConfig's; each text adds what differs for the command)."""
        p.add_argument("--pt-min", type=NON_NEGATIVE_OPTION,
                       help=f"jet pT lower cut [GeV] (default 500{pt_min})")
        p.add_argument("--pt-max", type=POSITIVE_OPTION,
                       help=f"jet pT upper cut [GeV] (default 1000{pt_max})")
        p.add_argument("--eta-max", type=POSITIVE_OPTION,
                       help=f"jet |pseudorapidity| cut (default 2{eta_max})")

    def shard_options(p: argparse.ArgumentParser, items: str) -> None:
        """Shards (jetfm.data.shards): batch-array elements or Dask tasks."""
        s = p.add_argument_group("shards (batch arrays, Dask)")
        s.add_argument("--n-shards", type=POSITIVE_INT_OPTION, default=1, metavar="N",
                       help=f"split the {items} into N shards, each written to its own file "
                       "NAME.shard-III-of-NNN.SUFFIX with its own cuts report; together they "
                       "equal one unsharded run. Alone: run all N here, one after another")
        s.add_argument("--shard", type=SEED_OPTION, metavar="I",
                       help="run only shard I (0 ... N-1), e.g. $SLURM_ARRAY_TASK_ID "
                       "(default: all N)")
        where = s.add_mutually_exclusive_group()
        where.add_argument("--dask", action="store_true",
                           help="run the N shards as tasks of a local Dask cluster (one worker "
                           "process per core; pip install 'jetfm[dask]')")
        where.add_argument("--dask-scheduler", metavar="ADDRESS",
                           help="run the N shards on the Dask scheduler at ADDRESS "
                           "(tcp://host:8786); its workers must see the output folder "
                           "(default: no Dask)")
        s.add_argument("--merge", action="store_true",
                       help="after all N shards finished: merge them into the file and cuts "
                       "report of one unsharded run (runs nothing else)")

    gen = sub.add_parser("generate", help="simulate jets with Pythia8 + FastJet",
                         description="Simulate pp collisions at 13 TeV with Pythia 8, cluster "
                         "anti-kt R = 0.8 jets with FastJet and write one jet file per process "
                         "(OUT_DIR/PROCESS.root, ...) plus a .cuts.json record of what each "
                         "cut removed (jetfm info shows it).")
    gen.add_argument(
        "--process", nargs="+", default=["qcd", "top", "w", "z", "hbb"],
        choices=("qcd", "top", "w", "z", "hbb", "zjets"), metavar="PROCESS",
        help="processes, one file each: qcd (light-quark and gluon jets), top (t -> bqq'), "
             "w (W -> qq'), z (Z -> qq), hbb (H -> bb) (default: all five); or zjets alone: "
             "Z -> mu mu + jets events (two muons, anti-kt R = 0.4 jets with pT > 20 GeV) to "
             "OUT_DIR/zjets.h5",
    )
    gen.add_argument("--n-jets", type=POSITIVE_INT_OPTION,
                     help="jets per process (>= 1; default 2000)")
    gen.add_argument("--out-dir", type=folder_output, default="data",
                     help="output folder (created if missing)")
    gen.add_argument(
        "--format", choices=("aspen", "parquet", "root"),
        help="root (JetClass layout) by default; aspen (AspenOpenJets HDF5) with --aspen-like",
    )
    gen.add_argument("--seed", type=SEED_OPTION, default=1,
                     help="random seed (>= 0); each process and worker draws its own stream "
                     "from it, so a process's jets do not depend on the other processes")
    gen.add_argument("--workers", type=POSITIVE_INT_OPTION, default=1,
                     help="parallel generator processes")
    gen.add_argument(
        "--mpi", action="store_true",
        help="multi-parton interactions on (underlying event; ~4x slower)",
    )
    gen.add_argument(
        "--aspen-like", action="store_true",
        help="AspenOpenJets-like source: pT > 300 GeV, |eta| < 2.5, <= 150 constituents, smeared",
    )
    gen.add_argument("--no-smear", action="store_true",
                     help="with --aspen-like: no detector smearing of the particles")
    jet_window_options(gen, "; 300 with --aspen-like", "; none with --aspen-like",
                       "; 2.5 with --aspen-like")
    gen.add_argument("--max-events-without-jet", type=POSITIVE_INT_OPTION,
                     help="stop with an error after this many events without an accepted "
                     "jet (default 10000, per worker)")
    zj = gen.add_argument_group("Z -> mu mu + jets events (--process zjets)")
    zj.add_argument("--n-events", type=POSITIVE_INT_OPTION,
                    help="events to keep (default 10000); the events depend on --seed only, "
                    "not on --workers")
    zj.add_argument("--hard-process", choices=("zjet", "inclusive"),
                    help="zjet: Z + jet with pTHat > 20 GeV (default; more high-multiplicity "
                    "events, n <= 1 sculpted); inclusive: q q~ -> Z, jets from the shower only")
    zj.add_argument("--no-hadronization", action="store_true",
                    help="parton-level jets (about 1.6x faster)")
    shard_options(gen, "jets of each process (--n-jets in all; shards with --workers W "
                  "equal one run with --workers N*W)")
    gen.set_defaults(func=_cmd_generate)

    clu = sub.add_parser("cluster", help="anti-kt jets of a HepMC event file (your own events)")
    clu.add_argument("events", nargs="+", help="HepMC3 (or HepMC2) event file(s), plain or "
                     ".gz/.bz2/.xz/.zst; several: their jets in order")
    clu.add_argument("--out", required=True, help="output jet file (.root: JetClass layout, "
                     "needs --label; .parquet, .h5)")
    clu.add_argument("--label", choices=CLASSES, help="class of every jet (needed for .root "
                     "output); default: unlabelled")
    clu.add_argument("--jet-r", type=POSITIVE_OPTION,
                     help="anti-kt radius R in the (rapidity, azimuth) plane (default 0.8)")
    jet_window_options(clu, ", as generate", ", as generate", ", as generate")
    clu.add_argument("--jets-per-event", type=POSITIVE_INT_OPTION,
                     help="keep the K hardest jets of each event that pass the cuts "
                     "(default: all)")
    clu.add_argument("--n-jets", type=POSITIVE_INT_OPTION,
                     help="stop after this many jets of each file (default: the whole file)")
    shard_options(clu, "event files (in the order given; at least one file per shard)")
    clu.set_defaults(func=_cmd_cluster)

    info = sub.add_parser("info", help="jets per class, feature ranges, cuts")
    info.add_argument("files", nargs="+", help="jet files: JetClass .root, Parquet, "
                      "AspenOpenJets / JetNet / top-tagging .h5, quark-gluon .npz (the format "
                      "is read from the file)")
    skip_invalid_option(info)
    info.set_defaults(func=_cmd_info)

    plot = sub.add_parser("plot", help="observable histograms per class")
    plot.add_argument("files", nargs="+", help="jet files (any format jetfm reads; see "
                      "jetfm info --help)")
    plot.add_argument("--out-dir", type=folder_output, default="plots",
                      help="folder for the PNG histograms (created if missing)")
    skip_invalid_option(plot)
    plot.set_defaults(func=_cmd_plot)

    tr = sub.add_parser("trees", help="FastJet declustering trees, validated, with jets/s")
    tr.add_argument("files", nargs="+", help="jet files (any format jetfm reads)")
    tr.add_argument("--algorithm", choices=("kt", "cambridge", "antikt"), default="kt",
                    help="clustering algorithm whose history is the tree: kt, "
                    "Cambridge/Aachen or anti-kt")
    tr.add_argument("--recombination", choices=("E", "WTA_pt"), default="E",
                    help="recombination scheme: E (four-momentum sum) or WTA_pt "
                    "(winner-take-all axis)")
    tr.add_argument("--r", type=POSITIVE_OPTION, help="jet radius > 0 (default: one tree per "
                    "jet)")
    tr.add_argument("--out", type=parquet_output, help="write the trees to this .parquet file")
    skip_invalid_option(tr)
    tr.set_defaults(func=_cmd_trees)

    ev = sub.add_parser("evaluate", help="generated-vs-reference metrics, floors, report")
    ev.add_argument("reference", nargs="+", help="reference jet file(s)")
    ev.add_argument("--generated", nargs="+", required=True, help="generated jet file(s)")
    ev.add_argument("--out-dir", type=folder_output, default="evaluation",
                    help="folder for metrics.table.json, report.md and the plots")
    ev.add_argument("--n-bootstrap", type=option(Rule(int, low=2)), default=100,
                    help="bootstrap resamples for the errors (>= 2; default 100)")
    ev.add_argument("--seed", type=SEED_OPTION, default=0,
                    help="seed of the bootstrap and of the classifier test (C2ST)")
    ev.add_argument("--html", action="store_true", help="also write report.html")
    ev.add_argument("--no-plots", action="store_true", help="table and report only")
    ev.add_argument("--tokenizer", type=Path,
                    help="put the reference through this tokenizer's frame (particle cuts, "
                         "n_max, massless particles around the axis) as `jetfm sample` jets are")
    skip_invalid_option(ev)
    ev.set_defaults(func=_cmd_evaluate)

    def training_options(p: argparse.ArgumentParser, config: Path = DEMO_CONFIG) -> None:
        p.add_argument("--config", type=config_option, default=config,
                       help=f"YAML file or preset name (default: {config.stem})")
        p.add_argument("--max-epochs", type=POSITIVE_INT_OPTION,
                       help="training epochs, at most (early stopping on the validation "
                       "loss may end sooner; default: the config's training block)")
        p.add_argument("--batch-size", type=POSITIVE_INT_OPTION,
                       help="jets per batch, per device (default: the config's)")
        p.add_argument("--lr", type=POSITIVE_OPTION,
                       help="peak learning rate of the optimiser (AdamW, cosine decay per "
                       "step; default: the config's)")
        p.add_argument("--accelerator", help="cpu, gpu or auto (default: the config's, "
                       "else auto: a GPU if there is one)")
        p.add_argument("--devices", type=POSITIVE_INT_OPTION, help="devices, one process "
                       "each with DDP (default: the config's, else 1)")
        p.add_argument("--strategy", help="Lightning strategy: auto, ddp, ddp_spawn, ... "
                       "(default: the config's, else auto)")
        p.add_argument("--seed", type=SEED_OPTION, help="random seed (>= 0) of the initial "
                       "weights, the data split and the batch order (default: the training "
                       "block's seed, else the config's)")

    tok = sub.add_parser("tokenizer",
                         help="train a tokenizer (VQ-VAE or feature codebook) on jet files",
                         description="Train a tokenizer on jet files: OmniJet-alpha's VQ-VAE, "
                         "or a feature-space codebook (tokenizer_model: codebook in --config; "
                         "optionally in the prongs' frame, subjet_frame: true).")
    tok.add_argument("files", nargs="+", help="jet files, then any KEY=VALUE config "
                     "overrides (training.max_steps=10)")
    tok.add_argument("--out-dir", type=folder_output, default="tokenizer",
                     help="folder for tokenizer.safetensors, its logs and checkpoints")
    skip_invalid_option(tok)
    training_options(tok)
    tok.set_defaults(func=_cmd_tokenizer)

    tkz = sub.add_parser("tokenize", help="jet files -> token parquet")
    tkz.add_argument("files", nargs="+", help="jet files (any format jetfm reads)")
    tkz.add_argument("--tokenizer", required=True, help="tokenizer file (tokenizer.safetensors "
                     "of jetfm tokenizer)")
    tkz.add_argument("--out", required=True, type=parquet_output, help="output .parquet")
    skip_invalid_option(tkz)
    shard_options(tkz, "jet files (in the order given; at least one file per shard)")
    tkz.set_defaults(func=_cmd_tokenize)

    pre = sub.add_parser("pretrain", help="generative pre-training of the GPT backbone")
    pre.add_argument("tokens", nargs="+", help="token parquet file(s), then any KEY=VALUE "
                     "config overrides (pretraining.lr=1e-4)")
    pre.add_argument("--tokenizer", required=True, help="the tokenizer file the tokens were "
                     "made with (its fingerprint is checked against theirs)")
    pre.add_argument("--out-dir", type=folder_output, default="pretrain",
                     help="folder for backbone.safetensors, the model bundle model/ "
                     "(jetfm.load), logs and checkpoints")
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
    smp.add_argument("--batch-size", type=POSITIVE_INT_OPTION, default=256,
                     help="sequences sampled at once")
    smp.add_argument("--seed", type=SEED_OPTION, default=1, help="sampling seed (>= 0)")
    smp.add_argument("--no-cache", action="store_true", help="recompute the prefix every step")
    smp.add_argument("--device", type=device_option, default="auto",
                     help="cpu, cuda, cuda:1, ...; auto: CUDA if available")
    smp.set_defaults(func=_cmd_sample)

    ft = sub.add_parser("finetune", help="jet tagger (any backbone, any classes) from a "
                        "saved backbone or from scratch")
    ft.add_argument("files", nargs="+", help="labelled jet files (every class of --classes), "
                    "then any KEY=VALUE config overrides (training.lr=1e-4)")
    ft.add_argument("--backbone", choices=sorted(BACKBONES),
                    help="backbone (default: the --init file's, else the config's)")
    ft.add_argument("--init", help="backbone, tagger or pre-trained OmniJet file to start from")
    ft.add_argument("--mode", choices=("finetune", "frozen", "scratch"),
                    help="finetune (all weights train), frozen (the --init backbone is kept, "
                    "only the head trains) or scratch (random start) (default: finetune "
                    "with --init, else scratch)")
    ft.add_argument("--classes", nargs="+", choices=CLASSES, metavar="CLASS",
                    help="classes to separate, in output order (default: those in the files)")
    ft.add_argument("--head", choices=sorted(HEAD_NAMES),
                    help="classification head on the backbone (default: the config's)")
    ft.add_argument("--n-train", type=POSITIVE_INT_OPTION, help="training jets (default: all "
                    "available)")
    ft.add_argument("--test-fraction", type=option(Rule(float, low=0, low_open=True, high=1,
                                                         high_open=True)), default=0.3,
                    help="share of the jets kept for the test, in (0, 1)")
    ft.add_argument("--out-dir", type=folder_output, default="finetune",
                    help="folder for tagger.safetensors, the tagger bundle tagger/ "
                    "(jetfm.load), result.json, the ROC plot, logs and checkpoints")
    skip_invalid_option(ft)
    training_options(ft, TAGGING_CONFIG)
    ft.set_defaults(func=_cmd_finetune)

    omni = sub.add_parser("omnijet", help="the whole OmniJet-alpha chain from a config")
    omni.add_argument("--config", type=config_option, default=DEMO_CONFIG,
                      help=f"YAML file or preset name (default: {DEMO_CONFIG.stem})")
    overrides_option(omni)
    omni.add_argument("--out", type=folder_output, default="runs/omnijet",
                      help="output folder (rerun to resume)")
    omni.set_defaults(func=_cmd_omnijet)

    evo = sub.add_parser("evolution", help="jet-evolution generator vs thesis baseline study")
    evo.add_argument("--config", type=config_option, required=True,
                     help="YAML file or preset name (evolution_cpu)")
    overrides_option(evo)
    evo.add_argument("--out", type=folder_output, default="runs/evolution",
                     help="output folder (rerun to resume)")
    evo.set_defaults(func=_cmd_evolution)

    study = sub.add_parser("study", help="studies from presets (resumable)")
    studies = study.add_subparsers(dest="study", required=True, metavar="STUDY")
    tl = studies.add_parser("transfer", help="AOJ-like pre-training, fine-tuning on "
                            "JetClass-like QCD and top vs from scratch, D scan")
    tl.add_argument("--preset", choices=("cpu", "gpu", "tiny"), default="cpu",
                    help="the preset transfer_PRESET (jetfm/configs/transfer_PRESET.yaml)")
    tl.add_argument("--config", type=config_option, help="YAML file whose keys override the "
                    "preset's (default: none)")
    overrides_option(tl)
    tl.add_argument("--out", type=folder_output, default="runs/transfer",
                    help="output folder (rerun to resume)")
    tl.set_defaults(func=_cmd_study_transfer)
    for name, config, out, text in (
            ("tokenizer", TOKENIZER_STUDY_CONFIG, "runs/tokenizer_study",
             "tokenizer resolution: decoded vs truth top and QCD jets over codebook size, "
             "training jets, quantiser, ..."),
            ("gpt-curve", GPT_CURVE_CONFIG, "runs/gpt_curve",
             "GPT learning curve: generated vs held-out top jets over training jets, GPT size "
             "and sampling, one tokenizer"),
            ("jetgpt", JETGPT_CONFIG, "runs/jetgpt_zjets",
             "JetGPT on Z -> mu mu + jets: trained on <= 6 jets, extrapolated to 8 (naive, "
             "bootstrap, truncated and override losses; Bayesian bands)"),
            ("amplitudes", AMPLITUDES_CONFIG, "runs/amplitudes",
             "amplitude regression: L-GATr vs transformer vs MLP on e+e- -> q qbar + n g "
             "squared amplitudes over training-set size"),
            ("event-generation", EVENT_GENERATION_CONFIG, "runs/event_generation",
             "Z -> mu mu + 1, 2, 3 jets generated by a CFM with an L-GATr or a transformer "
             "velocity and by JetGPT: marginals, W1, classifier AUC, NLL vs training size")):
        variants = studies.add_parser(name, help=text)
        variants.add_argument("--config", type=config_option, default=config,
                              help=f"YAML file or preset name (default: {config.stem})")
        overrides_option(variants)
        variants.add_argument("--out", type=folder_output, default=out,
                              help="output folder (rerun to resume)")
        variants.set_defaults(func=_cmd_study_variants)
    ol = studies.add_parser("omnilearn", help="PET pre-trained jointly on 5 classes, "
                            "fine-tuned to quark/gluon tagging and gluon-jet generation vs "
                            "from scratch, D scan")
    ol.add_argument("--config", type=config_option, default=OMNILEARN_CONFIG,
                    help=f"YAML file or preset name (default: {OMNILEARN_CONFIG.stem})")
    overrides_option(ol)
    ol.add_argument("--out", type=folder_output, default="runs/omnilearn_transfer",
                    help="output folder (rerun to resume)")
    ol.set_defaults(func=_cmd_study_omnilearn)

    bench = sub.add_parser("benchmark", help="benchmarks from configs (resumable)")
    benches = bench.add_subparsers(dest="study", required=True, metavar="BENCHMARK")
    def benchmark(name: str, help_text: str, config: Path, data_help: str, func: Any
                  ) -> argparse.ArgumentParser:
        p = benches.add_parser(name, help=help_text)
        p.add_argument("--config", type=config_option, default=config,
                       help=f"YAML file or preset name (default: {config.stem})")
        p.add_argument("--data", nargs="+", help=data_help + "; KEY=VALUE overrides may "
                       "follow the files")
        overrides_option(p)
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
    demo.add_argument("--out", type=folder_output, default="runs/demo",
                      help="output folder (rerun to resume)")
    demo.add_argument("--config", type=config_option, default=DEMO_CONFIG,
                      help=f"YAML file or preset name (default: {DEMO_CONFIG.stem})")
    overrides_option(demo)
    demo.set_defaults(func=_cmd_omnijet)

    rep = sub.add_parser(
        "report", help="one page (Markdown, HTML) of a run or study folder: tables and plots",
        description="One page of everything a jetfm run, study or benchmark wrote in RUN_DIR "
        "and its subfolders: its Markdown pages (summary.md, table.md, report.md of evaluate, "
        "model cards), tables (*.table.json, table.json), training curves (drawn from each "
        "Lightning metrics.csv as training_curves.png next to it) and PNG plots, with "
        f"relative image links. Written atomically to RUN_DIR/{REPORT_NAME}.md (and "
        f".html); an existing {REPORT_NAME}.md that jetfm report did not write is an error, "
        "never replaced.")
    rep.add_argument("run_dir", metavar="RUN_DIR", type=Path,
                     help="a folder a jetfm command wrote (--out or --out-dir)")
    rep.add_argument("--html", action="store_true",
                     help=f"also write RUN_DIR/{REPORT_NAME}.html (one page, images linked)")
    rep.add_argument("--title", help="page title (default: the folder's name)")
    rep.set_defaults(func=_cmd_report)
    _document(parser)
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
    from jetfm._warnings import silence_benign_warnings

    silence_benign_warnings()  # known-benign library warnings only; see jetfm/_warnings.py
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2, one line already printed)
        return done.code if isinstance(done.code, int) else 2
    command = " ".join(filter(None, (args.command, getattr(args, "study", None))))
    _REPLACED_CONFIGS.clear()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"jetfm {command}: interrupted", file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as err:
        _restore_configs()
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
