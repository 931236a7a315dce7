"""OmniLearn's point: one PET pre-trained jointly (classification + generation) on the built-in
5-class data, then fine-tuned to tasks it did not see, each against the same model trained from
scratch on the same labelled jets.

    jetfm study omnilearn --config omnilearn_transfer_cpu [--out DIR] [KEY=VALUE ...]

Orchestration only (:func:`jetfm.tasks.omnilearn.train_generator`,
:func:`jetfm.tasks.tagging.train_tagger`, :func:`jetfm.metrics.tagging.binary_summary`,
:func:`jetfm.metrics.evaluate.evaluate_batches`).

**Pre-training**: ``n_pretrain`` jets of each of QCD, Tbqq, Wqq, Zqq, Hbb (processes ``qcd,
top, w, z, hbb``), the joint loss with the classifier head (``pretraining``: keys of
:class:`~jetfm.tasks.omnilearn.OmniLearnConfig` but ``classes`` and ``init``).

**Unseen tasks**, on QCD jets the pre-training did not see, labelled quark or gluon by their
matched hard parton (:func:`jetfm.data.quarkgluon.label_by_parton`):

* (a) quark-vs-gluon tagging: a tagger on the pre-trained body (``finetune``, the body at
  ``backbone_lr_factor`` of the head's learning rate) vs the same architecture from scratch
  (``tagging``: head, head_config, training, backbone_lr_factor); test AUC and 1/eps_B at
  eps_S = 30 % (quark = signal) on ``n_test`` jets per class;
* (b) generating gluon jets (``QCD_gluon``: not a label of the pre-training; its jets resemble
  the QCD jets it saw): the pre-trained generator fine-tuned (body learning rate x
  ``body_lr_factor``) vs the same architecture from scratch (``generation``: training,
  ema_decay, body_lr_factor); W1 of mass, tau32, multiplicity of ``n_generate`` generated jets
  vs the ``n_test`` test gluon jets, next to the floor (``n_generate`` other gluon jets vs the
  same reference), in the generator's frame.

For each D of ``sizes`` (labelled jets **per class**: D training + ``val_fraction`` D
validation jets, nested in D, the same for both modes), each (task, mode) is a resumable stage
(``stages/cells/D{D}/{task}_{mode}.json``). Layout::

    data/                       generated jets
    pretrain/                   generator.safetensors, body.safetensors, logs
    cells/D{D}/{task}_{mode}/   models, result.json (evaluation folders for generation)
    table.md, table.json
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE_INT, Rule, check_fields, number
from jetfm.console import Console
from jetfm.data.batch import JetBatch, JetDataError
from jetfm.data.classes import class_index
from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets
from jetfm.data.quarkgluon import label_by_parton
from jetfm.metrics.evaluate import evaluate_batches
from jetfm.metrics.tagging import binary_summary
from jetfm.report import markdown_table, write_json
from jetfm.studies import Stage, config_from_yaml, data_digests, file_digest, start_cell

console = Console(soft_wrap=True, emoji=False)
PRETRAIN_CLASSES: dict[str, str] = {"qcd": "QCD", "top": "Tbqq", "w": "Wqq", "z": "Zqq",
                                    "hbb": "Hbb"}
TAGGING_CLASSES = ("QCD_quark", "QCD_gluon")
NEW_CLASS = "QCD_gluon"
MODES = ("finetune", "scratch")
SUMMARY_OBSERVABLES = ("mass", "tau32", "n_particles")


@dataclass
class OmniLearnTransferConfig:
    """The study's configuration (module docstring); ``ValueError`` naming the key."""

    n_pretrain: int = 5000
    sizes: list[int] = field(default_factory=lambda: [100, 1000, 10000])
    val_fraction: float = 0.2
    n_test: int = 2000
    n_generate: int = 1000
    seed: int = 1
    workers: int = 1
    pretraining: dict[str, Any] = field(default_factory=dict)
    tagging: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    sampler_steps: int = 32
    n_bootstrap: int = 20

    def __post_init__(self) -> None:
        check_fields(self, {k: POSITIVE_INT for k in ("n_pretrain", "n_test", "n_generate",
                                                      "workers", "sampler_steps")}
                     | {"n_bootstrap": Rule(int, low=2), "seed": Rule(int),
                        "val_fraction": Rule(float, low=0, high=1, low_open=True,
                                             high_open=True)})
        if not isinstance(self.sizes, list) or not self.sizes:
            raise ValueError(f"sizes: a list of whole numbers >= 2 (jets per class), got "
                             f"{self.sizes!r}")
        self.sizes = sorted(number("sizes", d, Rule(int, low=2)) for d in self.sizes)
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"sizes: {self.sizes} lists a size twice")
        for block in ("pretraining", "tagging", "generation"):
            if not isinstance(getattr(self, block), dict):
                raise ValueError(f"{block}: expected a mapping of keys, got "
                                 f"{getattr(self, block)!r}")
        bad = sorted(set(self.pretraining) & {"classes", "init"})
        if bad:
            raise ValueError(f"pretraining: {bad} are set by the study")
        extra = sorted(set(self.tagging) - {"head", "head_config", "training",
                                            "backbone_lr_factor"})
        if extra:
            raise ValueError(f"tagging: unknown keys {extra}; valid: ['backbone_lr_factor', "
                             "'head', 'head_config', 'training']")
        extra = sorted(set(self.generation) - {"training", "ema_decay", "body_lr_factor",
                                               "optimizer", "weights"})
        if extra:
            raise ValueError(f"generation: unknown keys {extra}; valid: ['body_lr_factor', "
                             "'ema_decay', 'optimizer', 'training', 'weights']")
        # every key of every block checked now, not after hours of pre-training
        for block, build in (("pretraining", self.pretrain_config),
                             ("generation", lambda: self.generation_config(None)),
                             ("tagging", self._tagging_check)):
            try:
                build()
            except (TypeError, ValueError) as err:
                raise ValueError(f"{block}: {err}") from None

    def _tagging_check(self) -> None:
        from jetfm.tasks.tagging import TaggingConfig

        TaggingConfig(backbone="pet", classes=list(TAGGING_CLASSES),
                      backbone_config={"dim": 8, "num_layers": 1, "num_heads": 1},
                      **self.tagging)

    def n_val(self, d: int) -> int:
        return max(2, round(self.val_fraction * d))

    @property
    def n_task_jets(self) -> int:
        """Quark or gluon jets needed per class: the largest D with its validation jets, the
        test jets and (gluon) the floor jets."""
        d = self.sizes[-1]
        return d + self.n_val(d) + self.n_test + self.n_generate

    def pretrain_config(self) -> Any:
        from jetfm.tasks.omnilearn import OmniLearnConfig

        return OmniLearnConfig(classes=list(PRETRAIN_CLASSES.values()), **self.pretraining)

    def generation_config(self, init: str | None) -> Any:
        from jetfm.tasks.omnilearn import OmniLearnConfig

        generator = {} if init else self.pretraining.get("generator", {})
        return OmniLearnConfig(classes=[NEW_CLASS], init=init, generator=generator,
                               **self.generation)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()
                  ) -> OmniLearnTransferConfig:
        """The config in the YAML file ``path`` with the command-line ``KEY=VALUE``
        ``overrides`` (:func:`jetfm.studies.config_from_yaml`)."""
        return config_from_yaml(path, cls, overrides)


# ----------------------------------------------------------------------------- data
def load_data(config: OmniLearnTransferConfig, out_dir: Path
              ) -> tuple[JetBatch, dict[str, dict[str, JetBatch]], dict[str, str]]:
    """(pre-training jets, per task class {"pool", "test", "floor"}, file digests).

    QCD jets: the first ``n_pretrain`` (shuffled) pre-train; the rest are labelled quark or
    gluon and split per label into test, floor (gluon) and the nested training pool.
    The built-in QCD sample is made large enough for the rarer label (quarks are ~47 %)."""
    others = [p for p in PRETRAIN_CLASSES if p != "qcd"]
    n_qcd = config.n_pretrain + int(np.ceil(2.5 * config.n_task_jets))
    files = generated_files(others, config.n_pretrain, out_dir / "data", seed=config.seed,
                            workers=config.workers)
    files += generated_files(["qcd"], n_qcd, out_dir / "data", seed=config.seed,
                             workers=config.workers)
    digests = data_digests(files, out_dir)
    jets = read_jets([str(f) for f in files])
    rng = np.random.default_rng(config.seed)
    qcd = np.flatnonzero(jets.label == class_index("QCD"))
    qcd = qcd[rng.permutation(len(qcd))]
    pretrain = [qcd[:config.n_pretrain]]
    for name in others:
        idx = np.flatnonzero(jets.label == class_index(PRETRAIN_CLASSES[name]))
        pretrain.append(idx[rng.permutation(len(idx))][:config.n_pretrain])
    pretrain_jets = jets[np.sort(np.concatenate(pretrain))]
    tasks = label_by_parton(jets[np.sort(qcd[config.n_pretrain:])], "task QCD jets")
    parts: dict[str, dict[str, JetBatch]] = {}
    for cls in TAGGING_CLASSES:
        idx = np.flatnonzero(tasks.label == class_index(cls))
        if len(idx) < config.n_task_jets:
            raise JetDataError(f"{len(idx)} {cls} jets; the study needs {config.n_task_jets}")
        idx = idx[rng.permutation(len(idx))]
        n_test, n_floor = config.n_test, config.n_generate
        parts[cls] = {"test": tasks[np.sort(idx[:n_test])],
                      "floor": tasks[np.sort(idx[n_test:n_test + n_floor])],
                      "pool": tasks[idx[n_test + n_floor:]]}
    return pretrain_jets, parts, digests


def _pool(parts: dict[str, dict[str, JetBatch]], classes: tuple[str, ...], d: int, n_val: int
          ) -> tuple[JetBatch, JetBatch]:
    """The first D (training) and next ``n_val`` (validation) pool jets of each class."""
    train = JetBatch.concatenate([parts[c]["pool"][:d] for c in classes])
    val = JetBatch.concatenate([parts[c]["pool"][d:d + n_val] for c in classes])
    return train, val


# ----------------------------------------------------------------------------- stages
def pretrain(config: OmniLearnTransferConfig, jets: JetBatch, out_dir: Path,
             digests: dict[str, str]) -> Path:
    """The jointly pre-trained generator (reused while its config and data are the same)."""
    from jetfm.tasks.omnilearn import train_generator

    folder = out_dir / "pretrain"
    path = folder / "generator.safetensors"
    stage = Stage(out_dir, "pretrain", {"pretraining": config.pretraining,
                                        "n_pretrain": config.n_pretrain, "seed": config.seed},
                  digests, [path, folder / "body.safetensors"])
    if not stage.prepare():
        console.rule(f"joint pre-training on {len(jets)} jets of "
                     f"{list(PRETRAIN_CLASSES.values())}")
        rng = np.random.default_rng(config.seed + 1)
        order = rng.permutation(len(jets))
        n_val = max(2, len(jets) // 10)
        checkpoint = folder / "checkpoints" / "last.ckpt"
        train_generator(jets[np.sort(order[n_val:])], jets[np.sort(order[:n_val])],
                        config.pretrain_config(), folder, seed=config.seed,
                        resume=checkpoint if checkpoint.exists() else None)
        stage.finish()
    return path


def tagging_cell(config: OmniLearnTransferConfig, parts: dict[str, dict[str, JetBatch]],
                 d: int, mode: str, body: Path, cell: Path) -> dict[str, Any]:
    """Quark-vs-gluon tagger of ``mode`` on the pre-trained body's architecture."""
    from jetfm.tasks.tagging import TaggingConfig, train_tagger

    train, val = _pool(parts, TAGGING_CLASSES, d, config.n_val(d))
    tagging = TaggingConfig(backbone="pet", classes=list(TAGGING_CLASSES), mode=mode,
                            init=str(body), **config.tagging)
    tagger = train_tagger(train, val, tagging, cell, seed=config.seed)
    test = JetBatch.concatenate([parts[c]["test"] for c in TAGGING_CLASSES])
    probs = tagger.predict_proba(test)
    labels = (test.label == class_index("QCD_quark")).astype(int)
    summary = binary_summary(labels, probs[:, 0])
    return {"auc": summary["auc"], "rejection@0.3": summary["rejection@0.3"],
            "accuracy": summary["accuracy"], "n_test": len(test)}


def generation_cell(config: OmniLearnTransferConfig, parts: dict[str, dict[str, JetBatch]],
                    d: int, mode: str, generator: Path, cell: Path) -> dict[str, Any]:
    """A gluon-jet generator of ``mode``: W1 vs the test gluon jets, with floors."""
    from jetfm.tasks.omnilearn import train_generator

    train, val = _pool(parts, (NEW_CLASS,), d, config.n_val(d))
    init = str(generator) if mode == "finetune" else None
    checkpoint = cell / "checkpoints" / "last.ckpt"
    model = train_generator(train, val, config.generation_config(init), cell,
                            seed=config.seed,
                            resume=checkpoint if checkpoint.exists() else None)
    jets = model.generate(config.n_generate, NEW_CLASS, steps=config.sampler_steps,
                          seed=config.seed)
    result = evaluate_batches(parts[NEW_CLASS]["test"], jets, cell / "evaluation",
                              n_bootstrap=config.n_bootstrap, seed=config.seed,
                              frame=model.frame, frame_name="PET frame",
                              floor_sample=parts[NEW_CLASS]["floor"], plots=False)
    out: dict[str, Any] = {}
    for row in result.table:
        if row["metric"] == "W1" and row["observable"] in SUMMARY_OBSERVABLES:
            out[f"w1_{row['observable']}"] = row["value"]
            out[f"floor_{row['observable']}"] = row["floor"]
    return out


def run(config: OmniLearnTransferConfig, out_dir: str | Path) -> list[dict[str, Any]]:
    """The whole study; returns the table rows (one per D, task and mode)."""
    out_dir = Path(out_dir)
    pretrain_jets, parts, digests = load_data(config, out_dir)
    generator = pretrain(config, pretrain_jets, out_dir, digests)
    body = generator.parent / "body.safetensors"
    model_digest = {"pretrained": file_digest(generator)}
    rows = []
    for d in config.sizes:
        for task, block in (("tagging", config.tagging), ("generation", config.generation)):
            for mode in MODES:
                cell = out_dir / "cells" / f"D{d}" / f"{task}_{mode}"
                keys = {task: block, "val_fraction": config.val_fraction,
                        "n_test": config.n_test, "n_generate": config.n_generate,
                        "seed": config.seed}
                if task == "generation":
                    keys.update(sampler_steps=config.sampler_steps,
                                n_bootstrap=config.n_bootstrap)
                stage = Stage(out_dir, f"cells/D{d}/{task}_{mode}", keys,
                              {**digests, **model_digest}, [cell / "result.json"])
                if stage.prepare():
                    result = json.loads((cell / "result.json").read_text())
                else:
                    start_cell(stage, cell)
                    console.rule(f"D = {d} per class: {task}, {mode}")
                    run_cell = tagging_cell if task == "tagging" else generation_cell
                    result = run_cell(config, parts, d, mode,
                                      body if task == "tagging" else generator, cell)
                    write_json(cell / "result.json", result)
                    result = json.loads((cell / "result.json").read_text())  # as a rerun reads it
                    stage.finish()
                rows.append({"D": d, "task": task, "mode": mode, **result})
    write_tables(rows, config, out_dir)
    return rows


def write_tables(rows: list[dict[str, Any]], config: OmniLearnTransferConfig, out_dir: Path
                 ) -> Path:
    """``table.json`` and ``table.md``: tagging and generation rows, and pre-trained minus
    scratch at each D."""
    write_json(out_dir / "table.json", {"config": asdict(config), "rows": rows})
    tagging = [{k: r[k] for k in ("D", "mode", "auc", "rejection@0.3", "accuracy")}
               for r in rows if r["task"] == "tagging"]
    generation = [{"D": r["D"], "mode": r["mode"],
                   **{k: r[k] for k in r if k.startswith(("w1_", "floor_"))}}
                  for r in rows if r["task"] == "generation"]
    lines = ["# OmniLearn transfer to unseen tasks", "",
             "## (a) quark vs gluon tagging (test AUC, 1/eps_B at eps_S = 30 %, quark = "
             "signal)", "", markdown_table(tagging), "",
             f"## (b) generating {NEW_CLASS} jets (W1 vs the test gluon jets; floor: as many "
             "other gluon jets)", "", markdown_table(generation), ""]
    path = out_dir / "table.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> OmniLearnTransferConfig:
    """:meth:`OmniLearnTransferConfig.from_yaml`."""
    return OmniLearnTransferConfig.from_yaml(path, overrides)


__all__ = ["OmniLearnTransferConfig", "load_config", "run"]
