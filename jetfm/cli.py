"""The ``jetfm`` command line.

    jetfm generate   simulate jets with Pythia8 + FastJet and write them to files
    jetfm info       jets per class, feature ranges and what cuts removed
    jetfm plot       observable histograms per class (PNG)
    jetfm trees      recluster jets into declustering trees and validate them
    jetfm evaluate   generated-vs-reference metrics with statistical floors, plots, report
    jetfm tokenizer  train a VQ-VAE tokenizer on jet files
    jetfm tokenize   jet files -> token parquet (records the tokenizer)
    jetfm pretrain   generative GPT pre-training on token files (CPU, GPU, DDP; resumable)
    jetfm sample     sample jets from a pre-trained GPT (KV cache) and decode them
    jetfm finetune   top-vs-QCD style tagger from a pre-trained backbone or from scratch
    jetfm omnijet    the whole OmniJet-alpha chain from a YAML config
    jetfm evolution  jet-evolution generator (and thesis baseline) on declustering trees
    jetfm study      studies from presets: ``jetfm study transfer`` (AOJ -> JetClass transfer)
    jetfm demo       the built-in default job (the OmniJet-alpha chain on generated jets)

Every command prints what it does; ``jetfm COMMAND --help`` lists the options.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console

if TYPE_CHECKING:
    from jetfm.data.tokens import TokenDataset
    from jetfm.models.tokenizer import Tokenizer
from rich.table import Table

console = Console(soft_wrap=True, emoji=False)

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "omnijet_cpu.yaml"


# ---------------------------------------------------------------------------- generate
def _cmd_generate(args: argparse.Namespace) -> int:
    from jetfm.data.generated import generated_files

    cuts = {k: getattr(args, k) for k in ("pt_min", "pt_max", "eta_max")}
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
    from jetfm.data.summary import feature_ranges, read_sidecar

    for path in paths:
        batch = read_jets([path], skip_invalid=skip_invalid)
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
        side = read_sidecar(path)
        if side is None:
            console.print("cuts: no generator record (.cuts.json) next to this file")
        else:
            reports, config = side
            console.print(
                f"generated with: process={config.get('process')} seed={config.get('seed')} "
                f"mpi={config.get('mpi')} pt=[{config.get('pt_min')}, {config.get('pt_max')}] "
                f"|eta|<{config.get('eta_max')}"
            )
            for report in reports:
                console.print(f"  cut {report}")


def _cmd_info(args: argparse.Namespace) -> int:
    print_info(args.files, skip_invalid=args.skip_invalid)
    return 0


# ---------------------------------------------------------------------------- plot
def plot_files(paths: Sequence[str], out_dir: Path) -> list[Path]:
    """Per-class histograms of jet observables of all ``paths`` into ``out_dir``."""
    from jetfm.data.classes import class_name
    from jetfm.data.io import read_jets
    from jetfm.physics.observables import OBSERVABLE_LABELS, jet_observables
    from jetfm.plots.observables import plot_observables_by_class

    batch = read_jets(list(paths))
    observables = jet_observables(batch)
    written = plot_observables_by_class(
        observables, batch.label, out_dir, axis_labels=OBSERVABLE_LABELS
    )
    summary = Table(title="median per class", title_justify="left")
    summary.add_column("class")
    names = ("mass", "sdmass", "tau21", "tau32", "n_particles")
    for name in names:
        summary.add_column(name, justify="right")
    for label in np.unique(batch.label):
        sel = batch.label == label
        summary.add_row(
            class_name(int(label)),
            *(f"{np.nanmedian(observables[n][sel]):.3g}" for n in names),
        )
    console.print(summary)
    console.print(f"wrote {len(written)} plots to {out_dir}")
    return written


def _cmd_plot(args: argparse.Namespace) -> int:
    plot_files(args.files, Path(args.out_dir))
    return 0


# ---------------------------------------------------------------------------- trees
def _cmd_trees(args: argparse.Namespace) -> int:
    from jetfm.data.io import read_jets
    from jetfm.data.trees_io import write_trees
    from jetfm.physics.trees import build_trees, validate_trees

    jets = read_jets(args.files)
    start = time.perf_counter()
    trees = build_trees(jets, algorithm=args.algorithm, recombination=args.recombination,
                        **({"r": args.r} if args.r else {}))
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
                            plots=not args.no_plots, frame=frame, frame_name=frame_name)
    print(result.format())
    console.print(f"{'report' if args.no_plots else 'plots and report'} in {args.out_dir}")
    return 0


# ---------------------------------------------------------------------------- OmniJet-alpha
def _training_overrides(args: argparse.Namespace) -> dict[str, object]:
    keys = ("max_epochs", "batch_size", "lr", "accelerator", "devices", "strategy", "seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _cmd_tokenizer(args: argparse.Namespace) -> int:
    from jetfm.data.io import read_jets
    from jetfm.studies.omnijet import OmniJetConfig, fit_tokenizer

    config = OmniJetConfig.from_yaml(args.config)
    training = {**config.tokenizer_training, **_training_overrides(args)}
    tokenizer = fit_tokenizer(read_jets(args.files), config.vqvae, training, config.n_max,
                              Path(args.out_dir), training.get("seed", config.seed),
                              config.pt_min)
    console.print(f"tokenizer {tokenizer.fingerprint} -> {args.out_dir}/tokenizer.safetensors")
    return 0


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from jetfm.data.io import read_jets
    from jetfm.data.tokens import TokenDataset, write_tokens
    from jetfm.models.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.tokenizer)
    jets = read_jets(args.files)
    codes, mask, reports = tokenizer.encode(jets)
    for report in reports:
        console.print(f"  {report}")
    record = {"fingerprint": tokenizer.fingerprint, "tokenizer": str(args.tokenizer),
              "codebook_size": tokenizer.codebook_size}
    write_tokens(args.out, TokenDataset(codes, mask, jets.label, record))
    console.print(f"{len(jets)} jets -> {args.out}")
    return 0


def _read_token_files(paths: Sequence[str], tokenizer: Tokenizer) -> TokenDataset:
    """Token files made by ``tokenizer``, concatenated."""
    from jetfm.data.tokens import TokenDataset, read_tokens

    parts = [read_tokens(p, tokenizer.n_max, tokenizer.fingerprint) for p in paths]
    return TokenDataset(np.concatenate([p.codes for p in parts]),
                        np.concatenate([p.mask for p in parts]),
                        np.concatenate([p.label for p in parts]), parts[0].tokenizer)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.studies.omnijet import OmniJetConfig, fit_generative

    config = OmniJetConfig.from_yaml(args.config)
    tokenizer = Tokenizer.load(args.tokenizer)
    tokens = _read_token_files(args.tokens, tokenizer)
    training = {**config.pretraining, **_training_overrides(args)}
    path = fit_generative(tokens, tokenizer, config.gpt, training, Path(args.out_dir),
                          training.get("seed", config.seed), resume=args.resume)
    console.print(f"backbone -> {path}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from jetfm.data.io import write_jets
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.studies.omnijet import load_generative, sample_jets

    tokenizer = Tokenizer.load(args.tokenizer)
    backbone, head, meta = load_generative(args.model)
    if meta.get("tokenizer_fingerprint") != tokenizer.fingerprint:
        raise ValueError(f"{args.model} was trained with tokenizer "
                         f"{meta.get('tokenizer_fingerprint')}, not {tokenizer.fingerprint}")
    jets, stats = sample_jets(backbone, head, tokenizer, args.n_jets,
                              temperature=args.temperature, top_k=args.top_k,
                              batch_size=args.batch_size, seed=args.seed,
                              use_cache=not args.no_cache, device=args.device)
    write_jets(jets, args.out)
    console.print(f"{len(jets)} jets ({stats['n_empty']} empty sequences left out) at "
                  f"{stats['jets_per_second']:.1f} jets/s -> {args.out}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from jetfm.checkpoint import load_model, prefixed
    from jetfm.metrics.evaluate import evaluate_tagging
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.studies.omnijet import (
        OmniJetConfig,
        fit_tagger,
        gpt_config_for,
        predict_scores,
    )
    from jetfm.tasks.training import split_indices

    config = OmniJetConfig.from_yaml(args.config)
    tokenizer = Tokenizer.load(args.tokenizer)
    classes = [_read_token_files([p], tokenizer) for p in (args.background, args.signal)]
    tokens, masks, labels = [], [], []
    for label, data in enumerate(classes):
        seq, seq_mask = tokenizer.to_sequences(data.codes, data.mask)
        tokens.append(seq)
        masks.append(seq_mask)
        labels.append(np.full(len(seq), label))
    tokens_np, masks_np, labels_np = (np.concatenate(x) for x in (tokens, masks, labels))
    rest, test = split_indices(len(tokens_np), args.test_fraction, args.seed)
    fit_idx, val_idx = split_indices(len(rest), 0.2, args.seed)
    train, val = rest[fit_idx][: args.n_train or None], rest[val_idx]
    state = None
    if args.mode != "scratch":
        tensors, _ = load_model(args.backbone)
        state = prefixed(tensors, "backbone")
    training = {**config.tagging_training, **_training_overrides(args)}
    task = fit_tagger(
        (tokens_np[train], masks_np[train], labels_np[train]),
        (tokens_np[val], masks_np[val], labels_np[val]),
        gpt_config_for(config.gpt, tokenizer), state, mode=args.mode, head=args.head,
        backbone_lr_factor=config.backbone_lr_factor, training=training,
        out_dir=Path(args.out_dir), seed=args.seed,
    )
    scores = predict_scores(task, tokens_np[test], masks_np[test])
    result = evaluate_tagging(labels_np[test], scores, args.out_dir,
                              name=f"{args.mode}, D={len(train)}")
    print(result.format())
    return 0


def _cmd_omnijet(args: argparse.Namespace) -> int:
    """The OmniJet-alpha chain from a config (``jetfm demo``: the CPU config), with the
    observables of the training jets plotted per class."""
    from jetfm.studies.omnijet import OmniJetConfig, run

    out = Path(args.out)
    summary = run(OmniJetConfig.from_yaml(args.config), out)
    plot_files(sorted(str(p) for p in (out / "data").glob("*.root")), out / "plots")
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


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jetfm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="simulate jets with Pythia8 + FastJet")
    gen.add_argument(
        "--process", nargs="+", default=["qcd", "top", "w", "z", "hbb"],
        help="qcd top w z hbb (default: all)",
    )
    gen.add_argument("--n-jets", type=int, default=2000, help="jets per process")
    gen.add_argument("--out-dir", default="data", help="output folder")
    gen.add_argument(
        "--format", choices=("aspen", "parquet", "root"),
        help="root (JetClass) by default; aspen (AOJ HDF5) with --aspen-like",
    )
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--workers", type=int, default=1, help="parallel processes")
    gen.add_argument(
        "--mpi", action="store_true",
        help="multi-parton interactions on (underlying event; ~4x slower)",
    )
    gen.add_argument(
        "--aspen-like", action="store_true",
        help="AspenOpenJets-like source: pT > 300 GeV, |eta| < 2.5, <= 150 constituents, smeared",
    )
    gen.add_argument("--no-smear", action="store_true", help="no detector smearing (aspen-like)")
    gen.add_argument("--pt-min", type=float, help="jet pT lower cut [GeV]")
    gen.add_argument("--pt-max", type=float, help="jet pT upper cut [GeV]")
    gen.add_argument("--eta-max", type=float, help="jet |eta| cut")
    gen.set_defaults(func=_cmd_generate)

    info = sub.add_parser("info", help="jets per class, feature ranges, cuts")
    info.add_argument("files", nargs="+")
    info.add_argument("--skip-invalid", action="store_true", help="drop and count bad jets")
    info.set_defaults(func=_cmd_info)

    plot = sub.add_parser("plot", help="observable histograms per class")
    plot.add_argument("files", nargs="+")
    plot.add_argument("--out-dir", default="plots")
    plot.set_defaults(func=_cmd_plot)

    tr = sub.add_parser("trees", help="FastJet declustering trees, validated, with jets/s")
    tr.add_argument("files", nargs="+")
    tr.add_argument("--algorithm", choices=("kt", "cambridge", "antikt"), default="kt")
    tr.add_argument("--recombination", choices=("E", "WTA_pt"), default="E")
    tr.add_argument("--r", type=float, help="jet radius (default: one tree per jet)")
    tr.add_argument("--out", help="write the trees to this parquet file")
    tr.set_defaults(func=_cmd_trees)

    ev = sub.add_parser("evaluate", help="generated-vs-reference metrics, floors, report")
    ev.add_argument("reference", nargs="+", help="reference jet file(s)")
    ev.add_argument("--generated", nargs="+", required=True, help="generated jet file(s)")
    ev.add_argument("--out-dir", default="evaluation")
    ev.add_argument("--n-bootstrap", type=int, default=100)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--html", action="store_true", help="also write report.html")
    ev.add_argument("--no-plots", action="store_true", help="table and report only")
    ev.add_argument("--tokenizer", type=Path,
                    help="put the reference through this tokenizer's frame (particle cuts, "
                         "n_max, massless particles around the axis) as `jetfm sample` jets are")
    ev.set_defaults(func=_cmd_evaluate)

    def training_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="YAML config")
        p.add_argument("--max-epochs", type=int)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--lr", type=float)
        p.add_argument("--accelerator", help="cpu, gpu or auto")
        p.add_argument("--devices", type=int, help="devices (processes with DDP)")
        p.add_argument("--strategy", help="auto, ddp, ddp_spawn, ...")
        p.add_argument("--seed", type=int)

    tok = sub.add_parser("tokenizer", help="train a VQ-VAE tokenizer on jet files")
    tok.add_argument("files", nargs="+")
    tok.add_argument("--out-dir", default="tokenizer")
    training_options(tok)
    tok.set_defaults(func=_cmd_tokenizer)

    tkz = sub.add_parser("tokenize", help="jet files -> token parquet")
    tkz.add_argument("files", nargs="+")
    tkz.add_argument("--tokenizer", required=True, help="tokenizer.safetensors")
    tkz.add_argument("--out", required=True, help="output .parquet")
    tkz.set_defaults(func=_cmd_tokenize)

    pre = sub.add_parser("pretrain", help="generative pre-training of the GPT backbone")
    pre.add_argument("tokens", nargs="+", help="token parquet file(s)")
    pre.add_argument("--tokenizer", required=True)
    pre.add_argument("--out-dir", default="pretrain")
    pre.add_argument("--resume", help="Lightning checkpoint to resume from (e.g. last.ckpt)")
    training_options(pre)
    pre.set_defaults(func=_cmd_pretrain)

    smp = sub.add_parser("sample", help="sample jets from a pre-trained GPT")
    smp.add_argument("--model", required=True, help="backbone.safetensors")
    smp.add_argument("--tokenizer", required=True)
    smp.add_argument("--n-jets", type=int, default=1000)
    smp.add_argument("--out", required=True, help="output jet file (.parquet, .root)")
    smp.add_argument("--temperature", type=float, default=1.0)
    smp.add_argument("--top-k", type=int)
    smp.add_argument("--batch-size", type=int, default=256)
    smp.add_argument("--seed", type=int, default=1)
    smp.add_argument("--no-cache", action="store_true", help="recompute the prefix every step")
    smp.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ...; auto: CUDA if "
                     "available")
    smp.set_defaults(func=_cmd_sample)

    ft = sub.add_parser("finetune", help="binary tagger: signal vs background token files")
    ft.add_argument("--signal", required=True, help="token parquet of class 1")
    ft.add_argument("--background", required=True, help="token parquet of class 0")
    ft.add_argument("--tokenizer", required=True)
    ft.add_argument("--backbone", help="backbone.safetensors (not needed with --mode scratch)")
    ft.add_argument("--mode", choices=("finetune", "frozen", "scratch"), default="finetune")
    ft.add_argument("--head", choices=("class_attention", "summation"),
                    default="class_attention")
    ft.add_argument("--n-train", type=int, help="training jets (default: all available)")
    ft.add_argument("--test-fraction", type=float, default=0.3)
    ft.add_argument("--out-dir", default="finetune")
    training_options(ft)
    ft.set_defaults(func=_cmd_finetune)

    omni = sub.add_parser("omnijet", help="the whole OmniJet-alpha chain from a config")
    omni.add_argument("--config", type=Path, default=DEMO_CONFIG, help="YAML config")
    omni.add_argument("--out", default="runs/omnijet")
    omni.set_defaults(func=_cmd_omnijet)

    evo = sub.add_parser("evolution", help="jet-evolution generator vs thesis baseline study")
    evo.add_argument("--config", type=Path, required=True, help="YAML config")
    evo.add_argument("--out", default="runs/evolution")
    evo.set_defaults(func=_cmd_evolution)

    study = sub.add_parser("study", help="studies from presets (resumable)")
    studies = study.add_subparsers(dest="study", required=True)
    tl = studies.add_parser("transfer", help="AOJ-like pre-training, fine-tuning on "
                            "JetClass-like QCD and top vs from scratch, D scan")
    tl.add_argument("--preset", choices=("cpu", "gpu", "tiny"), default="cpu",
                    help="configs/transfer_PRESET.yaml")
    tl.add_argument("--config", type=Path, help="YAML file overriding preset keys")
    tl.add_argument("--out", default="runs/transfer", help="output folder (rerun to resume)")
    tl.set_defaults(func=_cmd_study_transfer)

    demo = sub.add_parser("demo", help="the built-in default job: the OmniJet-alpha chain")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--config", type=Path, default=DEMO_CONFIG, help="YAML config")
    demo.set_defaults(func=_cmd_omnijet)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jetfm`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"jetfm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
