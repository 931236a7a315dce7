"""The generation benchmark: every jetfm generator on the same top and QCD jets, each compared
with the same held-out truth next to its like-for-like floor.

    jetfm benchmark generation --config benchmark_generation_cpu [--out DIR] [KEY=VALUE ...]

Orchestration only: generators are trained and sampled through the public API
(:func:`jetfm.tasks.omnilearn.train_generator` and
:meth:`~jetfm.models.pet_generator.PETGenerator.generate`; :func:`jetfm.tasks.omnijet.
fit_token_model`, :func:`~jetfm.tasks.omnijet.fit_generative` and
:func:`jetfm.models.omnijet.sample_jets`; :func:`jetfm.tasks.jet_evolution.fit_evolution` and
:meth:`~jetfm.models.jet_evolution.JetEvolutionModel.generate`; :func:`jetfm.tasks.jetgpt.
fit_jetgpt` and :func:`jetfm.models.jetgpt_constituents.sample_jets`); numbers come from
:func:`jetfm.metrics.evaluate.evaluate_batches`.

**Data and split.** The built-in top and QCD jets (processes ``top``, ``qcd`` of
:func:`jetfm.data.generated.generated_files`) or labelled files (``files``). Each class is
shuffled once (``seed``) and cut into ``n_train`` training jets, ``val_fraction * n_train``
validation jets, ``n_generate`` *roots* (the jet four-momenta a conditional generator such as
the jet-evolution model grows from), ``n_generate`` *floor* jets and ``n_reference``
*reference* jets, all disjoint. Every generator trains on the same training jets (its entry may
use fewer, ``n_train``, stated in the table), generates ``n_generate`` jets per class, and is
compared with the reference; its floor is the floor jets vs the same reference, so no sample
shares a jet with the reference or with what conditioned the generation.

**Frames.** Each generator has its own frame (PET: the hardest ``n_max`` particles, massless;
OmniJet-alpha: its tokenizer's cuts and ``n_max``; jet evolution: particles above its pT cut,
the hardest ``particle_n_max``, reclustered; JetGPT: the hardest ``n_max`` particles above
``pt_min``, massless, which is PET's frame for ``pt_min = 0``): reference and floor pass
through it before the comparison (``frame`` of :func:`~jetfm.metrics.evaluate.
evaluate_batches`), so a number measures the generator, not its cuts. The overlay plots
show each generator against the reference in its frame (ratio panels to that reference).

**Cells.** Each generator entry is one resumable stage (``stages/cells/{name}.json``),
reused while its entry, the split keys and the data files are the same; a changed entry redoes
its cell only. Inside a cell, training resumes from its checkpoint.

Layout of ``out``::

    data/                         generated jets (without ``files``)
    cells/{name}/                 model files, generated_{class}.parquet, result.json
                                  (JetGPT: ``sampling``, overflows cut at n_max per class),
                                  evaluation_{class}/ (tables, histograms), steps/ (PET scan)
    plots/overlay_{class}_{obs}.png   every generator vs its reference, ratio panels
    table.md, table.json          every number of every cell
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.checks import NON_NEGATIVE, POSITIVE_INT, Rule, check_fields, number
from jetfm.console import Console
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index
from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets, write_jets
from jetfm.metrics.evaluate import evaluate_batches, tokenizer_frame
from jetfm.physics.observables import OBSERVABLE_LABELS, jet_observables
from jetfm.plots.curves import plot_sampler_steps
from jetfm.plots.histograms import default_bins, plot_distribution
from jetfm.report import write_json
from jetfm.studies import (
    Stage,
    config_from_yaml,
    data_digests,
    start_cell,
    training_log,
)

console = Console(soft_wrap=True, emoji=False)
PROCESSES = {"Tbqq": "top", "QCD": "qcd"}
"""Built-in process of each class the benchmark generates."""
KINDS = ("pet", "omnijet", "evolution", "jetgpt")
NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")
"""A generator's name: it names its cell folder, so no path separators."""
SUMMARY_OBSERVABLES = ("mass", "tau32", "n_particles")
"""Observables of the summary's W1 / floor columns (the issue's targets)."""
OVERLAY_OBSERVABLES = ("pt", "mass", "tau21", "tau32", "n_particles")
ENTRY_KEYS: dict[str, tuple[str, ...]] = {
    "pet": ("generator", "training", "optimizer", "ema_decay", "weights", "sampler_steps",
            "steps_scan", "guidance"),
    "omnijet": ("tokenizer_model", "codebook", "vqvae", "tokenizer_training", "n_max",
                "pt_min", "subjet_order", "subjet_frame", "gpt", "pretraining",
                "temperature", "top_k"),
    "evolution": ("model", "training", "particle_pt_min", "particle_n_max", "algorithm"),
    "jetgpt": ("model", "training", "n_max", "pt_min"),
}


@dataclass
class GenerationBenchmarkConfig:
    """The benchmark's configuration (a YAML file fills it; module docstring).

    ``generators``: entries ``{name, kind, n_train?, ...}`` with ``kind`` one of :data:`KINDS`
    and the kind's keys (:data:`ENTRY_KEYS`). ``device``: where PET and OmniJet-alpha sample
    (``cpu`` or ``cuda``; training follows each entry's ``accelerator``; the jet-evolution
    model samples on the CPU). Raises ``ValueError`` naming the key.
    """

    classes: list[str] = field(default_factory=lambda: ["Tbqq", "QCD"])
    n_train: int = 10_000
    val_fraction: float = 0.1
    n_generate: int = 1000
    n_reference: int = 2000
    files: list[str] | None = None
    seed: int = 1
    workers: int = 1
    n_bootstrap: int = 20
    sample_batch: int = 256
    device: str = "cpu"
    generators: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_fields(self, {k: POSITIVE_INT for k in ("n_train", "n_generate", "n_reference",
                                                      "workers", "sample_batch")}
                     | {"n_bootstrap": Rule(int, low=2),
                        "val_fraction": Rule(float, low=0, high=1, low_open=True,
                                             high_open=True)})
        unknown = [c for c in self.classes if c not in PROCESSES]
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes: {self.classes!r} lists a class twice")
        if unknown or not self.classes:
            raise ValueError(f"classes: {self.classes!r}; the benchmark generates "
                             f"{list(PROCESSES)}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device: {self.device!r} is not cpu or cuda")
        if not self.generators:
            raise ValueError("generators: give at least one entry {name, kind, ...}")
        names = []
        for i, entry in enumerate(self.generators):
            where = f"generators[{i}]"
            if not isinstance(entry, dict) or "name" not in entry or "kind" not in entry:
                raise ValueError(f"{where}: an entry needs a name and a kind, got {entry!r}")
            if entry["kind"] not in KINDS:
                raise ValueError(f"{where} ({entry['name']}): kind {entry['kind']!r} is not "
                                 f"one of {list(KINDS)}")
            valid = {"name", "kind", "n_train", *ENTRY_KEYS[entry["kind"]]}
            extra = sorted(set(entry) - valid)
            if extra:
                raise ValueError(f"{where} ({entry['name']}): unknown keys {extra}; valid: "
                                 f"{sorted(valid)}")
            n = entry.get("n_train", self.n_train)
            if not isinstance(n, int) or not 2 <= n <= self.n_train:
                raise ValueError(f"{where} ({entry['name']}): n_train {n!r} must be a whole "
                                 f"number in [2, {self.n_train}] (the benchmark's n_train)")
            if not isinstance(entry["name"], str) or not NAME.fullmatch(entry["name"]):
                raise ValueError(f"{where}: name {entry['name']!r} must be letters, digits "
                                 "and - _ . + (it names the cell's folder), not starting "
                                 "with a dot")
            names.append(entry["name"])
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"generators: names {repeated} appear more than once")
        for entry in self.generators:  # every model key checked now, not mid-run
            _check_entry(entry)

    @property
    def n_val(self) -> int:
        return max(2, round(self.val_fraction * self.n_train))

    @property
    def n_per_class(self) -> int:
        return self.n_train + self.n_val + 2 * self.n_generate + self.n_reference

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()
                  ) -> GenerationBenchmarkConfig:
        """The config in the YAML file ``path`` with the command-line ``KEY=VALUE``
        ``overrides`` (:func:`jetfm.studies.config_from_yaml`)."""
        return config_from_yaml(path, cls, overrides)


def _check_entry(entry: dict[str, Any]) -> None:
    """Build the entry's configuration objects (``ValueError`` for a bad key or value)."""
    where = f"generator {entry['name']}"
    try:
        if entry["kind"] == "pet":
            _pet_config(entry)
            number("sampler_steps", entry.get("sampler_steps", 32), POSITIVE_INT)
            scan = entry.get("steps_scan", [])
            if not isinstance(scan, list):
                raise ValueError(f"steps_scan: a list of step counts, got {scan!r}")
            for steps in scan:
                number("steps_scan", steps, POSITIVE_INT)
            number("guidance", entry.get("guidance", 0.0), NON_NEGATIVE)
        elif entry["kind"] == "omnijet":
            _omnijet_config(entry)
        elif entry["kind"] == "jetgpt":
            _jetgpt_config(entry, list(PROCESSES))
        else:
            from jetfm.studies.evolution import EvolutionStudyConfig

            EvolutionStudyConfig(**_evolution_keys(entry))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


# ----------------------------------------------------------------------------- data
@dataclass
class Split:
    """Per class: train, val, roots, floor and reference jets (disjoint)."""

    parts: dict[str, dict[str, JetBatch]]

    def joined(self, part: str, n: int | None = None) -> JetBatch:
        return JetBatch.concatenate([p[part][:n] if n else p[part]
                                     for p in self.parts.values()])


def load_data(config: GenerationBenchmarkConfig, out_dir: Path
              ) -> tuple[Split, dict[str, str]]:
    """The split of every class and the digests of the data files."""
    if config.files:
        files = [Path(f) for f in config.files]
    else:
        files = generated_files([PROCESSES[c] for c in config.classes], config.n_per_class,
                                out_dir / "data", seed=config.seed, workers=config.workers)
    digests = data_digests(files, out_dir)
    jets = read_jets([str(f) for f in files])
    parts = {}
    for cls in config.classes:
        own = jets[jets.label == class_index(cls)]
        if len(own) < config.n_per_class:
            raise JetDataError(f"{[str(f) for f in files]}: {len(own)} {cls} jets, the "
                               f"benchmark needs {config.n_per_class} (n_train + validation "
                               "+ 2 n_generate + n_reference)")
        order = np.random.default_rng([config.seed, class_index(cls)]).permutation(len(own))
        sizes = {"train": config.n_train, "val": config.n_val, "roots": config.n_generate,
                 "floor": config.n_generate, "reference": config.n_reference}
        start, parts[cls] = 0, {}
        for part, size in sizes.items():
            parts[cls][part] = own[np.sort(order[start:start + size])]
            start += size
    return Split(parts), digests


# ----------------------------------------------------------------------------- generators
class _training_clock:
    """Training wall time of a cell, kept in ``cell/training_time.json``: measured while
    training (added to the time of an interrupted earlier attempt), read back when the model
    files exist already (``done``)."""

    def __init__(self, cell: Path, done: bool) -> None:
        self.path = cell / "training_time.json"
        self.done = done
        self.seconds = 0.0

    def _stored(self) -> float:
        return float(json.loads(self.path.read_text())["seconds"]) if self.path.exists() \
            else 0.0

    def __enter__(self) -> _training_clock:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.done:
            self.seconds = self._stored()
            return
        self.seconds = self._stored() + time.perf_counter() - self.start
        if exc[0] is None or exc[0] is KeyboardInterrupt:
            write_json(self.path, {"seconds": self.seconds})


def _pet_config(entry: dict[str, Any], classes: list[str] | None = None) -> Any:
    from jetfm.tasks.omnilearn import OmniLearnConfig

    keys = ("generator", "training", "optimizer", "ema_decay", "weights")
    return OmniLearnConfig(classes=classes or list(PROCESSES),
                           **{k: entry[k] for k in keys if k in entry})


def _run_pet(entry: dict[str, Any], split: Split, config: GenerationBenchmarkConfig,
             cell: Path) -> dict[str, Any]:
    """Train the PET generator on both classes; generate; the sampler-steps scan."""
    from jetfm.models.pet_generator import load_generator
    from jetfm.tasks.omnilearn import train_generator

    n = entry.get("n_train", config.n_train)
    path = cell / "generator.safetensors"
    with _training_clock(cell, path.exists()) as clock:
        if not path.exists():
            checkpoint = cell / "checkpoints" / "last.ckpt"
            train_generator(split.joined("train", n), split.joined("val"),
                            _pet_config(entry, config.classes), cell, seed=config.seed,
                            resume=checkpoint if checkpoint.exists() else None)
    seconds = clock.seconds
    model = load_generator(path, config.device)
    steps = entry.get("sampler_steps", 32)
    guidance = entry.get("guidance", 0.0)
    out: dict[str, Any] = {"train_seconds": seconds, "sampler_steps": steps,
                           "parameters": sum(p.numel() for p in model.parameters()),
                           "samples": {}, "steps_scan": []}
    for cls in config.classes:
        begin = time.perf_counter()
        jets = model.generate(config.n_generate, cls, steps=steps, guidance=guidance,
                              batch_size=config.sample_batch, seed=config.seed)
        out["samples"][cls] = (jets, config.n_generate / (time.perf_counter() - begin))
    scan_class = config.classes[0]
    for scan_steps in entry.get("steps_scan", []):
        if scan_steps == steps:  # the main sample (same seed): not drawn again
            jets, rate = out["samples"][scan_class]
        else:
            begin = time.perf_counter()
            jets = model.generate(config.n_generate, scan_class, steps=scan_steps,
                                  guidance=guidance, batch_size=config.sample_batch,
                                  seed=config.seed)
            rate = config.n_generate / (time.perf_counter() - begin)
        result = evaluate_batches(split.parts[scan_class]["reference"], jets,
                                  cell / "steps" / f"{scan_steps}", n_bootstrap=config.n_bootstrap,
                                  seed=config.seed, plots=False, frame=model.frame,
                                  frame_name="PET frame",
                                  floor_sample=split.parts[scan_class]["floor"])
        out["steps_scan"].append({"steps": scan_steps, "jets_per_second": rate,
                                  "class": scan_class, **_w1_columns(result.table)})
    out["frame"] = model.frame
    out["frame_name"] = "PET frame (hardest n_max particles, massless)"
    return out


def _omnijet_config(entry: dict[str, Any]) -> Any:
    from jetfm.studies.omnijet import OmniJetConfig

    keys = ENTRY_KEYS["omnijet"]
    return OmniJetConfig(**{k: entry[k] for k in keys if k in entry})


def _run_omnijet(entry: dict[str, Any], split: Split, config: GenerationBenchmarkConfig,
                 cell: Path) -> dict[str, Any]:
    """One tokenizer on both classes' training jets, one GPT per class on the tokens of its
    training and validation jets (:func:`~jetfm.tasks.omnijet.fit_generative` validates on a
    random 10 % of them)."""
    from jetfm.data.tokens import TokenDataset
    from jetfm.models.omnijet import load_generative, sample_jets
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.tasks.omnijet import fit_generative, fit_token_model

    oj = _omnijet_config(entry)
    n = entry.get("n_train", config.n_train)
    trained = all((cell / f"gpt_{c}" / "backbone.safetensors").exists() for c in config.classes)
    with _training_clock(cell, trained) as clock:
        tok_path = cell / "tokenizer" / "tokenizer.safetensors"
        if tok_path.exists():
            tokenizer = Tokenizer.load(tok_path)
        else:
            tokenizer = fit_token_model(split.joined("train", n), oj.tokenizer_model,
                                        oj.tokenizer_settings, oj.tokenizer_training, oj.n_max,
                                        cell / "tokenizer", config.seed, oj.pt_min,
                                        oj.subjet_order, oj.subjet_frame)
        for cls in config.classes:
            folder = cell / f"gpt_{cls}"
            model_file = folder / "backbone.safetensors"
            if not model_file.exists():
                # training + validation jets: fit_generative holds out a random 10 % of them
                # for validation (about the benchmark's validation share)
                jets = JetBatch.concatenate([split.parts[cls]["train"][:n],
                                             split.parts[cls]["val"]])
                codes, mask, reports = tokenizer.encode(jets)
                for report in reports:
                    console.print(f"  {cls}: {report}")
                tokens = TokenDataset(codes, mask, jets.label,
                                      {"fingerprint": tokenizer.fingerprint})
                checkpoint = folder / "checkpoints" / "last.ckpt"
                fit_generative(tokens, tokenizer, oj.gpt, oj.pretraining, folder, config.seed,
                               resume=checkpoint if checkpoint.exists() else None)
    out: dict[str, Any] = {"samples": {}, "parameters": 0}
    seconds = clock.seconds
    for cls in config.classes:
        backbone, head = load_generative(cell / f"gpt_{cls}" / "backbone.safetensors",
                                         tokenizer)
        out["parameters"] += sum(p.numel() for p in backbone.parameters()) + \
            sum(p.numel() for p in head.parameters())
        jets, stats = sample_jets(backbone, head, config.n_generate,
                                  temperature=oj.temperature, top_k=oj.top_k,
                                  batch_size=config.sample_batch, seed=config.seed,
                                  label=class_index(cls), device=config.device)
        out["samples"][cls] = (jets, stats["jets_per_second"])
        out.setdefault("empty", {})[cls] = stats["n_empty"]
    frame, name = tokenizer_frame(tokenizer)
    out.update(train_seconds=seconds, frame=frame, frame_name=name)
    return out


def _evolution_keys(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ENTRY_KEYS["evolution"] if k in entry}


def _run_evolution(entry: dict[str, Any], split: Split, config: GenerationBenchmarkConfig,
                   cell: Path) -> dict[str, Any]:
    """The jet-evolution model on both classes' trees; jets grown from the roots part."""
    from jetfm.models.jet_evolution import JetEvolutionModel
    from jetfm.models.splitting import trees_to_jets
    from jetfm.physics.trees import build_trees
    from jetfm.studies.evolution import EvolutionStudyConfig
    from jetfm.tasks.jet_evolution import MODEL_FILE, fit_evolution

    ev = EvolutionStudyConfig(**_evolution_keys(entry))
    n = entry.get("n_train", config.n_train)

    def frame(batch: JetBatch) -> JetBatch:
        cut = frame_cut(batch, ev, "reference jets")
        return trees_to_jets(build_trees(cut, ev.algorithm), cut.label)

    path = cell / MODEL_FILE
    with _training_clock(cell, path.exists()) as clock:
        if path.exists():
            model = JetEvolutionModel.load(path)
        else:
            trees = {part: build_trees(frame_cut(split.joined(part, n if part == "train"
                                                              else None), ev, f"{part} jets"),
                                       ev.algorithm)
                     for part in ("train", "val")}
            checkpoint = cell / "checkpoints" / "last.ckpt"
            model = fit_evolution(trees["train"], trees["val"], ev.model, ev.training, cell,
                                  config.seed,
                                  resume=checkpoint if checkpoint.exists() else None)
    seconds = clock.seconds
    out: dict[str, Any] = {"samples": {}, "train_seconds": seconds,
                           "parameters": sum(p.numel() for p in model.net.parameters())}
    for cls in config.classes:
        # the roots in the model's frame: the four-momenta of the jets after its particle cut
        roots = frame_cut(split.parts[cls]["roots"], ev, f"{cls} roots").jet_p4
        begin = time.perf_counter()
        grown = model.generate(roots, seed=config.seed)
        rate = len(roots) / (time.perf_counter() - begin)
        out["samples"][cls] = (trees_to_jets(grown, class_index(cls)), rate)
    out.update(frame=frame, frame_name=f"particles with pT > {ev.particle_pt_min:g} GeV, "
               f"hardest {ev.particle_n_max}, {ev.algorithm} trees (jets grown from held-out "
               "roots: the jet four-momentum is given)")
    return out


def frame_cut(batch: JetBatch, ev: Any, origin: str) -> JetBatch:
    """The jet-evolution model's particle cut (counted); jets left without particles are
    removed and counted."""
    from jetfm.studies.evolution import cut_particles

    cut, report = cut_particles(batch, ev.particle_pt_min, origin, ev.particle_n_max)
    console.print(f"  {report}")
    empty = int((cut.n_particles == 0).sum())
    if empty:
        console.print(f"  {origin}: {empty} jets without particles after the cut removed")
    return cut[cut.n_particles > 0]


def _jetgpt_config(entry: dict[str, Any], classes: list[str]) -> tuple[Any, dict[str, Any]]:
    """(unfitted :class:`~jetfm.models.jetgpt_constituents.ConstituentPreprocessing`, the
    :class:`~jetfm.models.jetgpt.JetGPTConfig` fields) of a ``jetgpt`` entry: ``model`` gives
    the size (``dim``, ``n_blocks``, ``n_heads``, ``n_mixture``, ...), the representation
    fixes the rest (a Bayesian layer is not offered here: the benchmark compares one sample
    per generator). ``ValueError`` naming the key."""
    from jetfm.checks import from_mapping
    from jetfm.models.jetgpt import JetGPTConfig
    from jetfm.models.jetgpt_constituents import ConstituentPreprocessing
    from jetfm.tasks.training import TrainConfig

    prep = ConstituentPreprocessing(classes, **{k: entry[k] for k in ("n_max", "pt_min")
                                                if k in entry})
    fixed = {**prep.model_fields(), "bayesian": False}
    from_mapping(JetGPTConfig, entry.get("model", {}), "model", fixed=fixed)
    TrainConfig.from_overrides(entry.get("training", {}), 1, "training")
    return prep, {**entry.get("model", {}), **fixed}


def _run_jetgpt(entry: dict[str, Any], split: Split, config: GenerationBenchmarkConfig,
                cell: Path) -> dict[str, Any]:
    """One class-conditioned JetGPT (the class is the start token) on both classes' training
    jets, full loss (thesis Eq. (5.21)), early stopping on the validation jets; the same
    number of jets sampled per class (:func:`~jetfm.models.jetgpt_constituents.sample_jets`,
    overflows at ``n_max`` cut and counted in ``sampling``)."""
    from jetfm.models.jetgpt_constituents import (
        META_KEY,
        OVERFLOW_POLICY,
        ConstituentPreprocessing,
        load_constituent_model,
        sample_jets,
    )
    from jetfm.tasks.jetgpt import MODEL_FILE, SequenceData, fit_jetgpt

    prep, model = _jetgpt_config(entry, config.classes)
    n = entry.get("n_train", config.n_train)
    path = cell / MODEL_FILE
    with _training_clock(cell, path.exists()) as clock:
        if not path.exists():
            train = split.joined("train", n)
            prep = ConstituentPreprocessing.fit(train, config.classes, prep.n_max, prep.pt_min)
            data = {}
            for part, jets in (("train", train), ("val", split.joined("val"))):
                x, mask, condition, reports = prep.encode(jets, f"{part} jets",
                                                          drop_empty=True)
                for report in reports:
                    console.print(f"  {part}: {report}")
                data[part] = SequenceData.of(x, mask, condition)
            checkpoint = cell / "checkpoints" / "last.ckpt"
            fit_jetgpt(data["train"], data["val"], model, entry.get("training", {}), cell,
                       loss="full", meta={META_KEY: prep.to_dict()}, seed=config.seed,
                       resume=checkpoint if checkpoint.exists() else None)
    net, prep = load_constituent_model(path, config.device)
    out: dict[str, Any] = {"samples": {}, "sampling": {}, "train_seconds": clock.seconds,
                           "parameters": sum(p.numel() for p in net.parameters())}
    for cls in config.classes:
        jets, stats = sample_jets(net, prep, config.n_generate, cls, seed=config.seed,
                                  batch_size=config.sample_batch)
        console.print(f"  {cls}: {stats['n_overflow']} of {config.n_generate} sequences "
                      f"wanted more than {prep.n_max} particles ({OVERFLOW_POLICY}); "
                      f"{stats['n_not_pt_ordered']} not pT-ordered (re-ordered)")
        out["samples"][cls] = (jets, stats["jets_per_second"])
        out["sampling"][cls] = {k: v for k, v in stats.items() if k != "seconds"}
    out.update(frame=prep.frame, frame_name=f"JetGPT frame (hardest {prep.n_max} particles "
               f"with pT > {prep.pt_min:g} GeV, massless)")
    return out


RUNNERS = {"pet": _run_pet, "omnijet": _run_omnijet, "evolution": _run_evolution,
           "jetgpt": _run_jetgpt}


# ----------------------------------------------------------------------------- evaluation
def _w1_columns(table: list[dict[str, Any]]) -> dict[str, float]:
    """W1 value and floor of :data:`SUMMARY_OBSERVABLES` from an evaluation table."""
    out = {}
    for row in table:
        if row["metric"] == "W1" and row["observable"] in SUMMARY_OBSERVABLES:
            out[f"w1_{row['observable']}"] = row["value"]
            out[f"floor_{row['observable']}"] = row["floor"]
    return out


def run_cell(entry: dict[str, Any], split: Split, config: GenerationBenchmarkConfig,
             out_dir: Path, digests: dict[str, str]) -> dict[str, Any]:
    """Train, sample and evaluate one generator (reused while its stage record matches)."""
    name = entry["name"]
    cell = out_dir / "cells" / name
    result_path = cell / "result.json"
    split_keys = {k: getattr(config, k) for k in ("classes", "n_train", "val_fraction",
                                                  "n_generate", "n_reference", "seed",
                                                  "n_bootstrap", "sample_batch")}
    stage = Stage(out_dir, f"cells/{name}", {"entry": entry, **split_keys}, digests,
                  [result_path])
    if stage.prepare():
        return json.loads(result_path.read_text())
    if start_cell(stage, cell):
        console.print(f"{name}: resuming the cell's unfinished run")
    console.rule(f"{name} ({entry['kind']})")
    run = RUNNERS[entry["kind"]](entry, split, config, cell)
    result: dict[str, Any] = {"name": name, "kind": entry["kind"],
                              "n_train": entry.get("n_train", config.n_train),
                              "train_seconds": run["train_seconds"],
                              "parameters": run["parameters"], "frame": run["frame_name"],
                              "steps_scan": run.get("steps_scan", []), "classes": {}}
    if "sampling" in run:  # JetGPT: per class, sequences cut at n_max and out of pT order
        result["sampling"] = run["sampling"]
    for log_dir in (cell, *sorted(cell.glob("gpt_*"))):
        if (log_dir / "logs" / "metrics.csv").exists():
            result.setdefault("training", {})[log_dir.name] = training_log(log_dir)
    for cls, (jets, rate) in run["samples"].items():
        parts = split.parts[cls]
        sample_path = cell / f"generated_{cls}.parquet"
        write_jets(jets, sample_path)
        evaluation = evaluate_batches(parts["reference"], jets, cell / f"evaluation_{cls}",
                                      n_bootstrap=config.n_bootstrap, seed=config.seed,
                                      frame=run["frame"], frame_name=run["frame_name"],
                                      floor_sample=parts["floor"],
                                      title=f"{name}: generated {cls} vs held-out truth")
        console.print(evaluation.format())
        reference = run["frame"](parts["reference"])
        write_jets(reference, cell / f"reference_{cls}.parquet")
        result["classes"][cls] = {"jets_per_second": rate, "n_generated": len(jets),
                                  "table": evaluation.table, **_w1_columns(evaluation.table)}
    write_json(result_path, result)
    stage.finish()
    return result


def overlay_plots(results: list[dict[str, Any]], config: GenerationBenchmarkConfig,
                  out_dir: Path) -> list[Path]:
    """Per class and observable: every generator's jets over the reference in its frame
    (histograms normalised, ratio to the reference of the first generator's frame; each
    generator's own ratio is in its evaluation folder)."""
    paths = []
    for cls in config.classes:
        obs: dict[str, dict[str, np.ndarray]] = {}
        reference_obs = None
        for result in results:
            cell = out_dir / "cells" / result["name"]
            generated = read_jets([str(cell / f"generated_{cls}.parquet")])
            obs[result["name"]] = jet_observables(generated)
            if reference_obs is None:
                reference_obs = jet_observables(
                    read_jets([str(cell / f"reference_{cls}.parquet")]))
                reference_name = f"truth ({result['name']} frame)"
        for key in OVERLAY_OBSERVABLES:
            values = {n: np.asarray(o[key], dtype=float) for n, o in obs.items()}
            reference = np.asarray(reference_obs[key], dtype=float)
            bins = default_bins(reference, *values.values(),  # covers every sample
                                discrete=key == "n_particles")
            paths.append(plot_distribution(
                reference, values, out_dir / "plots" / f"overlay_{cls}_{key}.png",
                xlabel=OBSERVABLE_LABELS.get(key, key), bins=bins,
                discrete=key == "n_particles", reference_label=reference_name))
    return paths


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (generator, class): W1 / floor of mass, tau32, multiplicity, time, rate."""
    rows = []
    for r in results:
        for cls, c in r["classes"].items():
            row = {"generator": r["name"], "class": cls, "n_train": r["n_train"],
                   "parameters": r["parameters"], "train_s": r["train_seconds"],
                   "jets_per_s": c["jets_per_second"]}
            for key in SUMMARY_OBSERVABLES:
                w1, floor = c.get(f"w1_{key}"), c.get(f"floor_{key}")
                row[f"W1 {key}"] = w1
                row[f"floor {key}"] = floor
                row[f"x floor {key}"] = w1 / floor if w1 is not None and floor else None
            rows.append(row)
    return rows


def steps_plot(name: str, scan: list[dict[str, Any]], out_dir: Path) -> Path:
    """``plots/steps_{name}.png``: W1 / floor of mass, tau32 and multiplicity and jets/s vs the
    number of sampler steps (rows of a generator's ``steps_scan``, sorted by steps); a metric
    whose floor is 0 or missing (tiny samples) is left out of the plot."""
    def ratio(w1: float | None, floor: float | None) -> float:
        return w1 / floor if w1 is not None and floor else float("nan")  # no floor: not drawn

    ratios = {f"W1 {key}": [ratio(row[f"w1_{key}"], row[f"floor_{key}"]) for row in scan]
              for key in SUMMARY_OBSERVABLES}
    return plot_sampler_steps([row["steps"] for row in scan], ratios,
                              [row["jets_per_second"] for row in scan],
                              out_dir / "plots" / f"steps_{name}.png",
                              title=f"{name}, {scan[0]['class']} jets")


def write_tables(results: list[dict[str, Any]], out_dir: Path) -> Path:
    """``table.json`` (every number) and ``table.md`` (the summary and the PET steps scan)."""
    from jetfm.report import markdown_table

    rows = summary_rows(results)
    write_json(out_dir / "table.json", {"summary": rows, "cells": results})
    lines = ["# Generation benchmark", "",
             "W1 of generated vs held-out reference jets in each generator's frame, next to "
             "the floor (independent truth jets of the generated size vs the same reference).",
             "", markdown_table(rows), ""]
    for r in results:
        if r.get("steps_scan"):
            scan = sorted(r["steps_scan"], key=lambda row: row["steps"])
            cls = scan[0]["class"]
            plot = steps_plot(r["name"], scan, out_dir)
            lines += [f"## {r['name']}: quality vs sampler steps ({cls})", "",
                      markdown_table(scan), "", f"![steps scan]({plot.relative_to(out_dir)})",
                      ""]
    path = out_dir / "table.md"
    from jetfm.atomic import write_text_atomic

    write_text_atomic(path, "\n".join(lines))
    return path


def run(config: GenerationBenchmarkConfig, out_dir: str | Path) -> list[dict[str, Any]]:
    """The whole benchmark (module docstring); returns every cell's result."""
    out_dir = Path(out_dir)
    split, digests = load_data(config, out_dir)
    results = []
    for i, entry in enumerate(config.generators, 1):
        console.print(f"[{i}/{len(config.generators)}] {entry['name']}")
        results.append(run_cell(entry, split, config, out_dir, digests))
    overlay_plots(results, config, out_dir)
    path = write_tables(results, out_dir)
    console.print(path.read_text())
    return results


def load_config(path: str | Path, overrides: Sequence[str] = ()
                ) -> GenerationBenchmarkConfig:
    """:meth:`GenerationBenchmarkConfig.from_yaml`."""
    return GenerationBenchmarkConfig.from_yaml(path, overrides)


__all__ = ["GenerationBenchmarkConfig", "load_config", "run", "summary_rows"]
