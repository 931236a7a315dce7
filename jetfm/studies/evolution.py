"""Jet evolution end to end: generated top and QCD jets -> kt trees -> the jet-evolution
generator (and the thesis baseline when configured) -> per-splitting likelihoods and jets
generated from held-out roots, compared with the truth.

Every stage writes its result under ``out_dir`` and is reused only when its record
(``stages/...json``, :class:`jetfm.studies.Stage`) shows the same configuration keys and
inputs (digests of the trees, model and generated files); otherwise it, and everything
downstream, is redone with a printed line naming the stage and the keys that differ:

    data/{top,qcd}.root                     generated jets (reused when the config matches)
    trees/{top,qcd}.parquet                 kt trees of the jets after the particle cut
    evolution/evolution.safetensors         the jet-evolution model (Lightning logs, ckpts)
    thesis/                                 the thesis baseline (``thesis:`` section only)
    nll.json                                binned NLL per splitting of every model, own NLL
    generated/{model}_{class}.parquet       trees generated from held-out roots
    evaluation/{model}_{class}/             evaluate_batches vs the held-out truth (floors)
    generation.json                         the evaluation tables and observable medians
    plots/lund_{model}_{class}.png, plots/trees_{class}.png
    stages/                                 what each stage was made from
    summary.json, summary.md

Splits are fixed by the seed: each class is shuffled once and cut into train, validation and
held-out jets. The held-out jets are cut again into three disjoint parts: ``roots`` (the first
``n_generate``: their roots seed the generated trees), ``floor`` (the next ``n_generate``) and
``reference`` (the rest). Every generated-vs-truth number compares the generated jets with the
reference, and its floor compares the true jets of ``floor`` with the same reference, so
neither sample contains a jet of the reference (the jets whose roots seeded the generation are
in neither). The generated jets keep the root (the jet's four-momentum), so the jet mass is
fixed by construction; substructure (tau21, tau32, multiplicity, Lund plane) is the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.console import Console
from jetfm.data.batch import JetBatch, SelectionReport
from jetfm.data.classes import class_index
from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets
from jetfm.data.trees_io import read_trees, write_trees
from jetfm.metrics.evaluate import evaluate_batches
from jetfm.metrics.splitting import binned_splitting_nll, lund_plane_distance
from jetfm.models.jet_evolution import EvolutionConfig, JetEvolutionModel, encode
from jetfm.models.splitting import SplittingModel, trees_to_jets
from jetfm.models.thesis_evolution import load_thesis_model
from jetfm.physics.lund import primary_lund
from jetfm.physics.observables import jet_observables
from jetfm.physics.trees import JetTrees, build_trees
from jetfm.plots.trees import plot_lund_planes, plot_trees
from jetfm.report import METRIC_COLUMNS, markdown_table
from jetfm.studies import Stage, file_digest, read_config, training_log, write_json
from jetfm.tasks.jet_evolution import MODEL_FILE, fit_evolution
from jetfm.tasks.thesis_evolution import check_thesis_config, fit_thesis_model
from jetfm.tasks.training import TRAIN_KEYS, TrainConfig, check_blocks, config_keys

console = Console(soft_wrap=True, emoji=False)
CLASSES = {"top": "Tbqq", "qcd": "QCD"}
MODEL_FILES = {"evolution": Path("evolution") / MODEL_FILE,
               "thesis": Path("thesis") / "thesis_model.safetensors"}
SPLIT_KEYS = ("seed", "train_fraction", "val_fraction")


@dataclass
class EvolutionStudyConfig:
    """Everything the study needs; the preset ``jetfm/configs/evolution_cpu.yaml`` fills it."""

    n_jets: int = 2000  # generated per class (top, QCD)
    workers: int = 1
    seed: int = 1
    particle_pt_min: float = 1.0  # GeV, constituents below are removed (counted) first
    particle_n_max: int | None = 40  # then the hardest kept (counted); None: all
    algorithm: str = "kt"
    train_fraction: float = 0.6
    val_fraction: float = 0.1  # the rest is held out
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    thesis: dict[str, Any] | None = None  # config of the thesis baseline; None: not trained
    nll_jets: int = 100  # held-out jets per class whose splittings enter the NLL
    nll_samples: int = 200
    nll_alpha: float = 0.5
    n_generate: int = 200  # per class, from the first held-out roots; as many held-out jets
    # make the floor sample and the rest (at least as many again) the reference
    n_bootstrap: int = 20
    evaluation_plots: bool = True  # one histogram per observable and sample
    example_trees: list[int] = field(default_factory=lambda: [0, 1, 2])

    def __post_init__(self) -> None:
        """Every key of the ``model``, ``training`` and ``thesis`` blocks is used; an unknown
        one raises ``ValueError`` naming the block, the key and the valid keys."""
        check_blocks({"model": self.model, "training": self.training},
                     {"model": config_keys(EvolutionConfig), "training": TRAIN_KEYS},
                     "evolution config")
        if self.thesis is not None:
            check_thesis_config(self.thesis, "evolution config: thesis")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()
                  ) -> EvolutionStudyConfig:
        """The config in the YAML file ``path`` with the command-line ``KEY=VALUE``
        ``overrides`` (:func:`jetfm.studies.read_config`); unknown keys (top level or in a
        block) raise ``ValueError`` naming the file."""
        data = read_config(path, cls, overrides)
        try:
            return cls(**data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None



def cut_particles(batch: JetBatch, pt_min: float, origin: str, n_max: int | None = None
                  ) -> tuple[JetBatch, SelectionReport]:
    """Constituents with pT > ``pt_min`` [GeV], at most the ``n_max`` hardest per jet; the
    report counts the particles each step removed."""
    out = batch[:]
    out.particles = batch.particles[batch.pt > pt_min]
    n_cut = int(out.n_particles.sum())
    n_truncated = 0
    if n_max is not None:
        out, n_truncated = out.truncate(n_max)
    n_before = int(batch.n_particles.sum())
    return out, SelectionReport(f"{origin}: particles", n_before, n_cut - n_truncated,
                                {f"pT <= {pt_min:g} GeV": n_before - n_cut,
                                 f"beyond the {n_max} hardest": n_truncated})


# ----------------------------------------------------------------------------- stages
def trees_stage(config: EvolutionStudyConfig, out_dir: Path) -> Stage:
    """The record of the trees (made from generated jets by the configured cuts)."""
    keys = ("n_jets", "seed", "workers", "particle_pt_min", "particle_n_max", "algorithm")
    folder = out_dir / "trees"
    return Stage(out_dir, "trees", {k: getattr(config, k) for k in keys}, {},
                 [*(folder / f"{name}.parquet" for name in CLASSES), folder / "notes.json"],
                 folder)


def _inputs(out_dir: Path, config: EvolutionStudyConfig, model_name: str | None = None
            ) -> dict[str, str]:
    """Digests of the trees stage and, given, of a model's file: what later stages record."""
    inputs = {"trees": trees_stage(config, out_dir).digest}
    if model_name is not None:
        inputs["model"] = file_digest(out_dir / MODEL_FILES[model_name])
    return inputs


def load_trees(config: EvolutionStudyConfig, out_dir: Path) -> tuple[dict[str, JetTrees],
                                                                      list[str]]:
    """Trees per class (built once, then read back); notes on what cuts removed."""
    paths = {name: out_dir / "trees" / f"{name}.parquet" for name in CLASSES}
    notes_path = out_dir / "trees" / "notes.json"
    stage = trees_stage(config, out_dir)
    if not stage.prepare():
        files = generated_files(list(CLASSES), config.n_jets, out_dir / "data", seed=config.seed,
                                workers=config.workers)
        notes = []
        for (name, path), file in zip(paths.items(), files, strict=True):
            jets, report = cut_particles(read_jets([str(file)]), config.particle_pt_min, name,
                                         config.particle_n_max)
            empty = jets.n_particles == 0
            if empty.any():  # a jet with nothing above the cut has no tree
                jets = jets[~empty]
            notes += [str(report), f"{name}: {int(empty.sum())} jets without particles above "
                      "the cut removed"]
            start = time.perf_counter()
            trees = build_trees(jets, config.algorithm, origin=str(file))
            notes.append(f"{name}: {len(trees)} {config.algorithm} trees in "
                         f"{time.perf_counter() - start:.1f} s; {trees.report}")
            path.parent.mkdir(parents=True, exist_ok=True)
            write_trees(trees, path)
        write_json(notes_path, notes)
        stage.finish()
    notes = json.loads(notes_path.read_text())
    for line in notes:
        console.print(f"  {line}")
    return {name: read_trees([str(p)]) for name, p in paths.items()}, notes


def make_splits(trees: dict[str, JetTrees], config: EvolutionStudyConfig
                ) -> dict[str, dict[str, np.ndarray]]:
    """Per class: seeded ``train``, ``val``, ``held_out`` jet rows, and the held-out rows cut
    into disjoint ``roots`` (``n_generate``, seeding the generation), ``floor``
    (``n_generate``) and ``reference`` (the rest).

    Raises ValueError when the reference would hold fewer than ``n_generate`` jets.
    """
    rng = np.random.default_rng(config.seed)
    splits = {}
    n_gen = config.n_generate
    for name, t in trees.items():
        order = rng.permutation(len(t))
        n_train = int(config.train_fraction * len(t))
        n_val = max(int(config.val_fraction * len(t)), 1)
        held = order[n_train + n_val:]
        if len(held) < 3 * n_gen:
            raise ValueError(
                f"{name}: {len(held)} held-out jets cannot give n_generate = {n_gen} roots, "
                f"{n_gen} floor jets and a reference of at least {n_gen}; set n_generate "
                f"<= {len(held) // 3} or hold out more jets")
        splits[name] = {"train": order[:n_train], "val": order[n_train:n_train + n_val],
                        "held_out": held, "roots": held[:n_gen],
                        "floor": held[n_gen:2 * n_gen], "reference": held[2 * n_gen:]}
    return splits


def _joined(trees: dict[str, JetTrees], splits: dict[str, dict[str, np.ndarray]], part: str
            ) -> JetTrees:
    return JetTrees.concatenate([trees[n].select(splits[n][part]) for n in CLASSES])


def train_models(trees: dict[str, JetTrees], splits: dict[str, dict[str, np.ndarray]],
                 config: EvolutionStudyConfig, out_dir: Path) -> dict[str, SplittingModel]:
    """The jet-evolution model (and the thesis baseline when configured), trained on top and
    QCD trees together."""
    train, val = _joined(trees, splits, "train"), _joined(trees, splits, "val")
    models: dict[str, SplittingModel] = {}
    inputs = _inputs(out_dir, config)
    path = out_dir / MODEL_FILES["evolution"]
    stage = Stage(out_dir, "evolution",
                  {k: getattr(config, k) for k in ("model", "training", *SPLIT_KEYS)}, inputs,
                  [path], path.parent)
    if stage.prepare():
        models["evolution"] = JetEvolutionModel.load(path)
    else:
        console.rule(f"jet evolution: {len(train)} training trees, {len(val)} validation")
        encoded = encode(train)
        console.print(f"  {encoded.n_negative_m2} children with m^2 < 0 (float32 rounding) "
                      f"taken as massless; {encoded.n_clipped} coordinates clipped into "
                      "[EPS, 1 - EPS] (massless children: r = 0)")
        models["evolution"] = fit_evolution(train, val, config.model, config.training,
                                            out_dir / "evolution", config.seed)
        stage.finish()
    if config.thesis is not None:
        thesis_file = out_dir / MODEL_FILES["thesis"]
        stage = Stage(out_dir, "thesis",
                      {k: getattr(config, k) for k in ("thesis", *SPLIT_KEYS)}, inputs,
                      [thesis_file], thesis_file.parent)
        if stage.prepare():
            models["thesis"] = load_thesis_model(thesis_file)
        else:
            console.rule("thesis baseline")
            models["thesis"] = fit_thesis_model(train, val, config.thesis, out_dir / "thesis",
                                                config.seed)
            stage.finish()
    return models


def training_budgets(splits: dict[str, dict[str, np.ndarray]], config: EvolutionStudyConfig,
                     out_dir: Path) -> list[dict[str, Any]]:
    """What each compared model was given and used: training and validation trees, batch size,
    epoch / step caps and patience (config), epochs run, optimiser steps and best validation
    loss (Lightning's log; None when the run left none). The thesis baseline has two stages,
    its VQ-VAE tokenizer and its GPT; the GPT is the one compared with the evolution model."""
    n_train = sum(len(splits[n]["train"]) for n in CLASSES)
    n_val = sum(len(splits[n]["val"]) for n in CLASSES)
    runs = [("evolution", out_dir / "evolution", config.training)]
    if config.thesis is not None:
        runs += [("thesis: VQ-VAE tokenizer", out_dir / "thesis" / "vqvae",
                  config.thesis.get("tokenizer_training", {})),
                 ("thesis: GPT", out_dir / "thesis" / "gpt", config.thesis.get("training", {}))]
    rows = []
    for name, run_dir, training in runs:
        cfg = TrainConfig.from_overrides(training, config.seed)
        has_log = (run_dir / "logs" / "metrics.csv").exists()
        rows.append({"model": name, "training trees": n_train, "validation trees": n_val,
                     "batch size": cfg.batch_size, "max epochs": cfg.max_epochs,
                     "max steps": cfg.max_steps if cfg.max_steps > 0 else None,
                     "patience": cfg.patience,
                     **(training_log(run_dir) if has_log else
                        dict.fromkeys(("epochs", "steps", "best_val_loss")))})
    return rows


def likelihoods(models: dict[str, SplittingModel], trees: dict[str, JetTrees],
                splits: dict[str, dict[str, np.ndarray]], config: EvolutionStudyConfig,
                out_dir: Path) -> dict[str, Any]:
    """Binned NLL per splitting (comparable) and each model's own NLL, held-out jets."""
    path = out_dir / "nll.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    keys = ("nll_jets", "nll_samples", "nll_alpha", *SPLIT_KEYS)
    done = {}  # the entries of this configuration only
    for model_name, model in models.items():
        for name in CLASSES:
            key = f"{model_name}/{name}"
            stage = Stage(out_dir, f"nll/{key}", {k: getattr(config, k) for k in keys},
                          _inputs(out_dir, config, model_name))
            if stage.prepare() and key in stored:
                done[key] = stored[key]
                continue
            held = trees[name].select(splits[name]["held_out"][:config.nll_jets])
            nodes = np.flatnonzero(~held.is_leaf)
            binned = binned_splitting_nll(model, held, nodes, config.nll_samples,
                                          alpha=config.nll_alpha, seed=config.seed)
            per = binned.pop("per_splitting")
            top_levels = held.depth[nodes] < 3
            own = model.splitting_nll(held)
            done[key] = {**binned, "nll_depth_lt_3": float(per[top_levels].mean()),
                         "n_depth_lt_3": int(top_levels.sum()),
                         "own_nll": float(np.mean(own)), "n_jets": len(held)}
            console.print(f"  {key}: binned NLL {binned['nll']:.3f} +- "
                          f"{binned['nll_error']:.3f} nats/splitting (uniform "
                          f"{binned['uniform_nll']:.2f}, oracle {binned['oracle_nll']:.2f}); "
                          f"own NLL {np.mean(own):.3f}")
            write_json(path, done)
            stage.finish()
    write_json(path, done)
    return done


def generate_from_roots(models: dict[str, SplittingModel], trees: dict[str, JetTrees],
                        splits: dict[str, dict[str, np.ndarray]], config: EvolutionStudyConfig,
                        out_dir: Path) -> dict[str, JetTrees]:
    """Trees grown by every model from the roots of the ``roots`` part of the held-out jets
    of each class (never in the reference or the floor sample of :func:`compare`)."""
    generated = {}
    for model_name, model in models.items():
        for name in CLASSES:
            path = out_dir / "generated" / f"{model_name}_{name}.parquet"
            stage = Stage(out_dir, f"generated/{model_name}_{name}",
                          {k: getattr(config, k) for k in ("n_generate", *SPLIT_KEYS)},
                          _inputs(out_dir, config, model_name), [path, path.with_suffix(".json")])
            if not stage.prepare():
                held = trees[name].select(splits[name]["roots"])
                roots = held.p4[held.to_global(held.root, np.arange(len(held)))]
                start = time.perf_counter()
                grown = model.generate(roots, seed=config.seed)
                seconds = time.perf_counter() - start
                path.parent.mkdir(parents=True, exist_ok=True)
                write_trees(grown, path)
                stats = {"jets_per_second": len(roots) / seconds, "seconds": seconds,
                         "report": str(getattr(model, "report", ""))}
                write_json(path.with_suffix(".json"), stats)
                console.print(f"  {model_name}/{name}: {len(roots)} jets at "
                              f"{stats['jets_per_second']:.1f} jets/s; {stats['report']}")
                stage.finish()
            generated[f"{model_name}_{name}"] = read_trees([str(path)])
    return generated


def compare(generated: dict[str, JetTrees], trees: dict[str, JetTrees],
            splits: dict[str, dict[str, np.ndarray]], config: EvolutionStudyConfig,
            out_dir: Path) -> dict[str, Any]:
    """Generated vs held-out truth: evaluation tables with floors, observables, plots
    (``generation.json`` keeps what is done).

    Like for like: the generated jets (grown from the ``roots`` part) and the true jets of the
    ``floor`` part, as many, are each compared with the ``reference`` part; the three parts
    are disjoint (:func:`make_splits`).
    """
    path = out_dir / "generation.json"
    stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results: dict[str, Any] = {}  # the entries of this configuration only
    # "floor": the like-for-like floor (roots / floor / reference parts); records made before
    # it had none, so their overlapping-floor results are redone
    stages = {key: Stage(out_dir, f"generation/{key}",
                         {**{k: getattr(config, k) for k in ("n_bootstrap", "evaluation_plots",
                                                             "n_generate", *SPLIT_KEYS)},
                          "floor": "disjoint floor sample"},
                         {"trees": trees_stage(config, out_dir).digest,
                          "generated": file_digest(out_dir / "generated" / f"{key}.parquet")},
                         folder=out_dir / "evaluation" / key) for key in generated}
    for key, stage in stages.items():
        if stage.prepare() and key in stored:
            results[key] = stored[key]
    parts = {}
    for name in CLASSES:
        label = class_index(CLASSES[name])
        parts[name] = {}
        for part in ("roots", "floor", "reference"):
            held = trees[name].select(splits[name][part])
            parts[name][part] = (held, trees_to_jets(held, label))
    for key, grown in generated.items():
        if key in results:
            continue
        name = key.rsplit("_", 1)[1]
        (held, truth), (floor_trees, floor_jets) = (parts[name]["reference"],
                                                    parts[name]["floor"])
        jets = trees_to_jets(grown, class_index(CLASSES[name]))
        evaluation = evaluate_batches(truth, jets, out_dir / "evaluation" / key,
                                      n_bootstrap=config.n_bootstrap, seed=config.seed,
                                      plots=config.evaluation_plots, floor_sample=floor_jets,
                                      title=f"{key}: generated from held-out roots vs truth")
        print(evaluation.format())
        obs_t, obs_g = jet_observables(truth), jet_observables(jets)
        results[key] = {
            "table": evaluation.table,
            "floor_method": evaluation.floor_method,
            "median": {k: {"truth": float(np.nanmedian(obs_t[k])),
                           "generated": float(np.nanmedian(obs_g[k]))}
                       for k in ("mass", "tau21", "tau32", "n_particles")},
            "mass_mode": {"truth": _mode(obs_t["mass"]), "generated": _mode(obs_g["mass"])},
        }
        lund_truth, lund_generated = primary_lund(held), primary_lund(grown)
        results[key]["lund_plane"] = lund_plane_distance(
            lund_truth, lund_generated, config.seed, floor_sample=primary_lund(floor_trees))
        plot_lund_planes(lund_truth, lund_generated, out_dir / "plots" / f"lund_{key}.png",
                         title=f"primary Lund plane, {key} vs held-out truth")
        write_json(path, results)
        stages[key].finish()
    write_json(path, results)
    for name in CLASSES:
        samples = {"truth": parts[name]["roots"][0]}  # the trees whose roots were grown
        samples.update({k.rsplit("_", 1)[0]: g for k, g in generated.items()
                        if k.endswith(f"_{name}")})
        plot_trees(samples, config.example_trees, out_dir / "plots" / f"trees_{name}.png")
    return results


def _mode(values: np.ndarray) -> float:
    """Centre of the most populated 10 GeV bin in [0, 300] GeV."""
    hist, edges = np.histogram(values[np.isfinite(values)], bins=np.linspace(0, 300, 31))
    return float(0.5 * (edges[hist.argmax()] + edges[hist.argmax() + 1]))


# ----------------------------------------------------------------------------- the run
def run(config: EvolutionStudyConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole study; returns (and writes to ``summary.json``/``summary.md``) the numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    trees, notes = load_trees(config, out_dir)
    splits = make_splits(trees, config)
    models = train_models(trees, splits, config, out_dir)
    console.rule("likelihoods of the true splittings (held-out jets)")
    nll = likelihoods(models, trees, splits, config, out_dir)
    console.rule("jets generated from held-out roots")
    generated = generate_from_roots(models, trees, splits, config, out_dir)
    comparison = compare(generated, trees, splits, config, out_dir)
    summary = {"notes": notes, "training": training_budgets(splits, config, out_dir),
               "nll": nll, "generation": comparison, "seconds": time.perf_counter() - start}
    write_json(out_dir / "summary.json", summary)
    write_summary_markdown(summary, out_dir / "summary.md")
    return summary


def write_summary_markdown(summary: dict[str, Any], path: Path) -> None:
    lines = ["# Jet evolution run", "", "## Data", ""] + [f"- {n}" for n in summary["notes"]]
    lines += ["", "## Training budgets", "",
              "Caps from the config; epochs run, optimiser steps and best validation loss "
              "from each run's log (early stopping may end a run before its cap).", "",
              markdown_table(summary["training"])]
    lines += ["", "## Negative log-likelihood of the true splittings (held-out jets)", "",
              "Binned: nats per splitting of the true splitting's Lund bin (ln 1/Delta, ln z, "
              "psi), estimated from sampled children with add-alpha smoothing; comparable "
              "between models. Own: each model's NLL in its own variables (not comparable).",
              "", "| model / class | binned NLL | depth < 3 | uniform | oracle | own NLL | "
              "splittings |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, r in summary["nll"].items():
        lines.append(f"| {key} | {r['nll']:.3f} ± {r['nll_error']:.3f} | "
                     f"{r['nll_depth_lt_3']:.3f} | {r['uniform_nll']:.3f} | "
                     f"{r['oracle_nll']:.3f} | {r['own_nll']:.3f} | {r['n_splittings']} |")
    lines += ["", "## Jets generated from held-out roots vs truth", "",
              "| sample | observable | truth median | generated median |",
              "| --- | --- | --- | --- |"]
    for key, r in summary["generation"].items():
        for obs, m in r["median"].items():
            lines.append(f"| {key} | {obs} | {m['truth']:.3f} | {m['generated']:.3f} |")
        lines.append(f"| {key} | mass mode [GeV] | {r['mass_mode']['truth']:.0f} | "
                     f"{r['mass_mode']['generated']:.0f} |")
    lines += ["", "## Primary Lund plane, generated vs truth", "",
              "0.5 sum |n_gen - n_truth| of the mean splittings per jet in 8 x 8 bins (the "
              "plotted ones merged 3 x 3) [splittings per jet]; reference: held-out jets "
              "whose roots seeded nothing; floor: as many other held-out jets (neither their "
              "roots nor they in the reference) vs the same reference.", "",
              "| sample | distance | floor | splittings / jet, truth | generated |",
              "| --- | --- | --- | --- | --- |"]
    for key, r in summary["generation"].items():
        if "lund_plane" in r:
            d = r["lund_plane"]
            lines.append(f"| {key} | {d['distance']:.3f} | {d['floor']:.3f} | "
                         f"{d['splittings_per_jet_truth']:.2f} | "
                         f"{d['splittings_per_jet_generated']:.2f} |")
    for key, r in summary["generation"].items():
        lines += ["", f"### {key}: metrics with floors", "",
                  markdown_table(r["table"], METRIC_COLUMNS), "", f"Floor: {r['floor_method']}"]
    lines += ["", f"Run time: {summary['seconds']:.0f} s"]
    path.write_text("\n".join(lines) + "\n")
