"""OmniJet-alpha end to end: jets -> tokenizer -> generative pre-training -> generated jets
-> evaluation against held-out truth -> top-vs-QCD taggers fine-tuned vs from scratch.

Every stage writes its result under ``out_dir``; a rerun reuses a stage only when its record
(``stages/<stage>.json``, :class:`jetfm.studies.Stage`) shows the same configuration keys and
the same inputs (digests of the jet files, the tokenizer's fingerprint, digests of the token
and backbone files). Otherwise the stage and everything downstream is redone, with a printed
line naming the stage and the keys that differ. So an interrupted run resumes where it
stopped, and a changed config never reports results of the old one:

    data/{top,qcd}.root              generated jets (or the files given in the config)
    tokenizer/tokenizer.safetensors  VQ-VAE + preprocessing;  tokenizer/resolution.json
    tokens/{top,qcd}.parquet         tokenized jets (with the tokenizer's fingerprint)
    pretrain/backbone.safetensors    GPT backbone + generative head
    generated/generated.parquet      sampled jets, decoded;  evaluation/ (table, plots, report)
    tagging/D{n}_{mode}/             fine-tuned and from-scratch taggers (result.json);
                                     tagging/summary.json: the rows of this config
    stages/                          what each stage was made from
    summary.md                       all numbers of the run

``tokenizer`` / ``backbone`` in the config: an existing ``tokenizer.safetensors`` /
``backbone.safetensors`` is used instead of training one (e.g. the tagging scan on top of a
finished run); the backbone must have been trained on that tokenizer's tokens.

Splits are fixed by the seed: each class is shuffled once and cut into tokenizer/pre-training,
held-out evaluation, and tagging pools. Taggers: a fixed test set (a fifth of the smaller
class pool per class) and, for each D, D labelled jets (D / 2 per class), of which a fraction
``tagging_val_fraction`` per class validates (early stopping, best epoch) and the rest trains:
D = train + validation, the same jets for the fine-tuned and the from-scratch tagger.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from copy import copy
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import gaussian_kde

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE, POSITIVE_INT, Rule, check_fields
from jetfm.console import Console
from jetfm.data.augment import DIHEDRAL, dihedral_images
from jetfm.data.batch import JetBatch
from jetfm.data.classes import class_index
from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets, write_jets
from jetfm.data.tokens import TokenDataset, read_tokens, write_tokens
from jetfm.data.transforms import Preprocessing, omnijet_preprocessing
from jetfm.metrics.evaluate import evaluate_batches, evaluate_tagging, tokenizer_frame
from jetfm.models.codebook import CodebookConfig
from jetfm.models.gpt import GPTConfig
from jetfm.models.heads import HEADS
from jetfm.models.omnijet import load_generative, sample_jets
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAEConfig
from jetfm.physics.observables import jet_observables
from jetfm.plots.roc import plot_roc
from jetfm.report import METRIC_COLUMNS, format_value, markdown_table
from jetfm.studies import (
    Stage,
    check_config_values,
    file_digest,
    generated_stage,
    read_config,
    write_json,
)
from jetfm.tasks.omnijet import (
    CODEBOOK_KEYS,
    GPT_KEYS,
    VQVAE_KEYS,
    check_token_model_blocks,
    fit_generative,
    fit_token_model,
)
from jetfm.tasks.tagging import FINETUNE_MODES, TaggingConfig, train_tagger
from jetfm.tasks.training import (
    TRAIN_KEYS,
    TrainConfig,
    check_blocks,
)

console = Console(soft_wrap=True, emoji=False)
log = logging.getLogger("jetfm.omnijet")


@dataclass
class OmniJetConfig:
    """Everything the pipeline needs; YAML files (presets: ``jetfm/configs/omnijet_*.yaml``)
    fill it."""

    n_jets: int | dict[str, int] = 4000  # generated per class, or {top: n, qcd: n}
    files: dict[str, str] = field(default_factory=dict)  # class -> existing file instead
    workers: int = 2
    seed: int = 1
    n_max: int = 128
    pt_min: float | None = 0.1  # GeV, particle cut of the tokenizer preprocessing
    subjet_order: int = 0  # tokens ordered by pT (0) or by exclusive-kt subjet (N subjets)
    subjet_frame: bool = False  # each subjet's particles relative to its hardest (needs order)
    augment: int = 1  # GPT training jets: each with its first `augment` D4 images (1: none)
    tokenizer_jets: int | None = None  # per class, from the pre-training split (None: all)
    pretrain_fraction: float = 0.5  # of top jets: tokenizer + GPT training (QCD: tokenizer)
    eval_fraction: float = 0.2  # of top jets: held-out truth for the generated sample
    tokenizer_model: str = "vqvae"  # or "codebook" (jetfm.models.codebook)
    vqvae: dict[str, Any] = field(default_factory=dict)
    codebook: dict[str, Any] = field(default_factory=dict)
    gpt: dict[str, Any] = field(default_factory=dict)
    tokenizer_training: dict[str, Any] = field(default_factory=dict)
    pretraining: dict[str, Any] = field(default_factory=dict)
    n_generate: int = 1000
    temperature: float = 1.0
    top_k: int | None = None
    sample_batch: int = 256
    tagging_sizes: list[int] = field(default_factory=lambda: [100, 1000])
    tagging_modes: list[str] = field(default_factory=lambda: ["finetune", "scratch"])
    tagging_head: str = "class_attention"
    backbone_lr_factor: float = 0.1
    tagging_training: dict[str, Any] = field(default_factory=dict)
    n_bootstrap: int = 50
    tagging_val_fraction: float = 0.2  # of the D labelled jets (per class): validation
    tokenizer: str | None = None  # an existing tokenizer.safetensors instead of training one
    backbone: str | None = None  # an existing backbone.safetensors (of that tokenizer)

    def __post_init__(self) -> None:
        check_token_model_blocks(self.tokenizer_model, {
            k: getattr(self, k) for k in ("vqvae", "codebook", "tokenizer_training")})
        if self.subjet_frame is True and self.tokenizer_model != "codebook":
            raise ValueError("subjet_frame: true needs tokenizer_model: codebook (a VQ-VAE "
                             "mixes the particles of a jet; the frame is per particle)")
        given = {"tokenizer": ("vqvae", "codebook", "tokenizer_training", "subjet_order",
                               "subjet_frame"),
                 "backbone": ("gpt", "pretraining")}
        for key, unused in given.items():
            extra = [k for k in unused if getattr(self, key) is not None and getattr(self, k)]
            if extra:
                raise ValueError(f"{key} is given ({getattr(self, key)}), so {extra} would not "
                                 "be used: remove them")
        if self.backbone is not None and self.tokenizer is None:
            raise ValueError("backbone is given: give the tokenizer it was trained with too "
                             "(config key tokenizer)")
        for key, low in (("pretrain_fraction", 0.0), ("eval_fraction", None)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not (value >= 0 if low == 0 else value > 0) or value >= 1:
                interval = "[0, 1)" if low == 0 else "(0, 1)"
                raise ValueError(f"{key} must be a fraction in {interval} of the jets, got "
                                 f"{value!r}")
        rest = 1 - self.pretrain_fraction - self.eval_fraction
        if rest < 0 or (self.tagging_sizes and rest <= 0):
            raise ValueError(f"pretrain_fraction + eval_fraction = "
                             f"{self.pretrain_fraction + self.eval_fraction:g} leaves "
                             f"{max(rest, 0):g} of the jets for the taggers (tagging_sizes "
                             f"{self.tagging_sizes}): keep the sum below 1")
        if isinstance(self.n_jets, dict):
            missing = [n for n in ("top", "qcd") if n not in self.n_jets and n not in self.files]
            if missing:
                raise ValueError(f"n_jets: give a number for {missing} (or their files:)")
        counts = self.n_jets if isinstance(self.n_jets, dict) else {"": self.n_jets}
        for name, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                key = f"n_jets: {name}" if name else "n_jets"
                raise ValueError(f"{key}: {count!r}; give a whole number of jets >= 1")
        if not 0 < self.tagging_val_fraction < 1:
            raise ValueError(f"tagging_val_fraction must be in (0, 1), got "
                             f"{self.tagging_val_fraction}")
        for size in self.tagging_sizes:
            n_val = tagging_split(size, self.tagging_val_fraction)[1]
            if size % 2 or size // 2 - n_val < 1:
                raise ValueError(f"tagging_sizes: D = {size} must be even (D / 2 jets per "
                                 "class) with at least one training and one validation jet "
                                 "per class")

    @property
    def tokenizer_settings(self) -> dict[str, Any]:
        """The block of the tokenizer model: ``codebook`` or ``vqvae``."""
        return self.codebook if self.tokenizer_model == "codebook" else self.vqvae

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> OmniJetConfig:
        """The config in the YAML file ``path`` with the command-line ``KEY=VALUE``
        ``overrides`` (:func:`jetfm.studies.read_config`). Every key, of the top level and of
        the ``vqvae``, ``gpt``, ``*_training``/``pretraining``, ``files`` and ``n_jets``
        blocks, is used; an unknown one raises ``ValueError`` naming the file, the block, the
        key and the valid keys (as do unknown tagging modes or heads)."""
        data = read_config(path, cls, overrides)
        blocks = {"vqvae": VQVAE_KEYS, "codebook": CODEBOOK_KEYS, "gpt": GPT_KEYS,
                  "tokenizer_training": TRAIN_KEYS,
                  "pretraining": TRAIN_KEYS, "tagging_training": TRAIN_KEYS,
                  "files": ("top", "qcd")}
        if isinstance(data.get("n_jets"), dict):
            blocks["n_jets"] = ("top", "qcd")
        check_blocks(data, blocks, str(path))
        for key, valid in (("tagging_modes", FINETUNE_MODES), ("tagging_head", HEADS)):
            values = data.get(key, [])
            bad = set([values] if isinstance(values, str) else values) - set(valid)
            if bad:
                raise ValueError(f"{path}: {key}: unknown {sorted(bad)}; valid: {sorted(valid)}")
        config = cls(**data)
        config.check_values(path)
        return config

    def preprocessing(self) -> Preprocessing:
        """The tokenizer's preprocessing these settings give
        (:func:`jetfm.data.transforms.omnijet_preprocessing`); ``ValueError`` naming a bad
        key."""
        return omnijet_preprocessing(self.n_max, self.pt_min, self.subjet_order,
                                     self.subjet_frame)

    def check_values(self, where: str | Path) -> None:
        """Build the model, preprocessing and training configs of every block and check the
        sampling and evaluation values, so that a bad value (``dim: sixteen``,
        ``codebook_size: -32``, ``batch_size: 0``) raises ``ValueError`` naming ``where``, the
        block and the key before any work is done."""
        blocks = ("tokenizer_training", "pretraining", "tagging_training")
        check_config_values(where, [
            ("vqvae", lambda: VQVAEConfig(**self.vqvae)),
            ("", self.preprocessing),
            ("codebook", lambda: CodebookConfig(**{  # one weight per preprocessing feature
                "n_features": len(self.preprocessing().features), **self.codebook})),
            ("gpt", lambda: GPTConfig(**self.gpt)),
            *((block, partial(TrainConfig, **getattr(self, block))) for block in blocks),
            ("", partial(check_fields, copy(self), {  # sampling and evaluation of the chain
                "augment": Rule(int, low=1, high=len(DIHEDRAL)), "temperature": POSITIVE,
                "top_k": Rule(int, low=1, optional=True),
                "sample_batch": POSITIVE_INT, "n_generate": POSITIVE_INT,
                "n_bootstrap": Rule(int, low=2)}))])




# ----------------------------------------------------------------------------- stages
def tagging_split(size: int, val_fraction: float) -> tuple[int, int]:
    """(training, validation) jets per class of a tagger with D = ``size`` labelled jets:
    D / 2 per class, ``round(val_fraction * D / 2)`` (at least 1) of them validate."""
    per_class = size // 2
    n_val = max(1, round(val_fraction * per_class))
    return per_class - n_val, n_val


MEDIAN_OBSERVABLES = ("mass", "tau21", "tau32", "n_particles")  # medians in the summary

def load_jets(config: Any, out_dir: Path) -> tuple[dict[str, JetBatch], dict[str, str]]:
    """Top and QCD jets: given files or generated ones (reused when already on disk, see
    :func:`jetfm.data.generated.generated_files`); and the digest of each class's file, the
    input the downstream stages record. ``config``: an :class:`OmniJetConfig` or any config
    with its ``n_jets``, ``files``, ``seed`` and ``workers`` (the tokenizer study's)."""
    files = dict(config.files)
    for name in ("top", "qcd"):
        if name in files:
            continue
        n_jets = config.n_jets[name] if isinstance(config.n_jets, dict) else config.n_jets
        seed = config.seed  # generated_files derives each process's streams from (seed, name)
        (path,) = generated_stage(
            out_dir, f"data/{name}", {"n_jets": n_jets, "seed": seed, "workers": config.workers},
            partial(generated_files, [name], n_jets, out_dir / "data", seed=seed,
                    workers=config.workers))
        files[name] = str(path)
    jets = {name: read_jets([files[name]]) for name in ("top", "qcd")}
    return jets, {f"data/{name}": file_digest(files[name]) for name in ("top", "qcd")}


@dataclass
class Splits:
    """Jet indices per class for each use; fixed by the seed."""

    pretrain: dict[str, np.ndarray]
    evaluation: np.ndarray  # top jets only
    tagging: dict[str, np.ndarray]


def make_splits(jets: dict[str, JetBatch], config: OmniJetConfig) -> Splits:
    rng = np.random.default_rng(config.seed)
    pretrain, tagging = {}, {}
    evaluation = np.array([], dtype=np.int64)
    for name, batch in jets.items():
        order = rng.permutation(len(batch))
        n_pre = int(config.pretrain_fraction * len(batch))
        pretrain[name] = order[:n_pre]
        rest = order[n_pre:]
        if name == "top":
            n_eval = int(config.eval_fraction * len(batch))
            evaluation, rest = rest[:n_eval], rest[n_eval:]
        tagging[name] = rest
    return Splits(pretrain, evaluation, tagging)


def train_tokenizer(
    jets: dict[str, JetBatch], splits: Splits, config: OmniJetConfig, out_dir: Path
) -> Tokenizer:
    path = out_dir / "tokenizer" / "tokenizer.safetensors"
    if path.exists():
        return Tokenizer.load(path)
    what = "fit the codebook" if config.tokenizer_model == "codebook" else "train the VQ-VAE"
    console.rule(f"tokenizer: {what} on top and QCD jets")
    cap = config.tokenizer_jets
    batch = JetBatch.concatenate(
        [jets[n][splits.pretrain[n][:cap]] for n in ("top", "qcd")]
    )
    return fit_token_model(batch, config.tokenizer_model, config.tokenizer_settings,
                           config.tokenizer_training, config.n_max, out_dir / "tokenizer",
                           config.seed, config.pt_min, config.subjet_order,
                           config.subjet_frame)


def tokenizer_stage(
    jets: dict[str, JetBatch], splits: Splits, config: OmniJetConfig, out_dir: Path,
    data: dict[str, str],
) -> tuple[Tokenizer, Path]:
    """The tokenizer (the config's file, or trained and reused while its configuration and
    jets are the same) and the path of its ``resolution.json``."""
    if config.tokenizer is not None:
        tokenizer = Tokenizer.load(config.tokenizer)
        console.print(f"tokenizer {tokenizer.fingerprint} from {config.tokenizer}")
        return tokenizer, Path(config.tokenizer).parent / "resolution.json"
    folder = out_dir / "tokenizer"
    keys = ("vqvae", "tokenizer_training", "n_max", "pt_min", "seed", "tokenizer_jets",
            "pretrain_fraction")
    if config.tokenizer_model != "vqvae":  # records of VQ-VAE runs stay what they were
        keys += ("tokenizer_model", "codebook")
    if config.subjet_order:  # and those of pT-ordered ones
        keys += ("subjet_order",)
    if config.subjet_frame:
        keys += ("subjet_frame",)
    stage = Stage(out_dir, "tokenizer", {k: getattr(config, k) for k in keys}, data,
                  [folder / "tokenizer.safetensors", folder / "resolution.json"], folder)
    reused = stage.prepare()
    tokenizer = train_tokenizer(jets, splits, config, out_dir)
    if not reused:
        stage.finish()
    return tokenizer, folder / "resolution.json"


def tokenizer_resolution(tokenizer: Tokenizer, jets: JetBatch) -> dict[str, float]:
    """Reconstruction quality of ``tokenizer`` on ``jets``: :meth:`Tokenizer.resolution`."""
    return tokenizer.resolution(jets)


def tokenize_all(
    tokenizer: Tokenizer, jets: dict[str, JetBatch], out_dir: Path,
    inputs: dict[str, str] | None = None, root: Path | None = None,
) -> dict[str, TokenDataset]:
    """``out_dir/tokens/{name}.parquet`` for each batch of ``jets``: a stage of the run in
    ``root`` (default ``out_dir``), reused while the tokenizer's fingerprint and ``inputs``
    (digests of the jet files) are the same."""
    root = out_dir if root is None else root
    folder = out_dir / "tokens"
    paths = {name: folder / f"{name}.parquet" for name in jets}
    stage = Stage(root, str(folder.relative_to(root)), {},
                  {"tokenizer": tokenizer.fingerprint, **(inputs or {})}, list(paths.values()),
                  folder)
    reused = stage.prepare()
    datasets = {}
    for name, batch in jets.items():
        path = paths[name]
        if not path.exists():
            codes, mask, reports = tokenizer.encode(batch)
            for report in reports:
                console.print(f"  {name}: {report}")
            record = {"fingerprint": tokenizer.fingerprint,
                      "tokenizer": str(out_dir / "tokenizer" / "tokenizer.safetensors"),
                      "codebook_size": tokenizer.codebook_size}
            path.parent.mkdir(parents=True, exist_ok=True)
            write_tokens(path, TokenDataset(codes, mask, batch.label, record))
        datasets[name] = read_tokens(path, tokenizer.n_max, tokenizer.fingerprint)
    if not reused:
        stage.finish()
    return datasets


def pretrain(
    tokens: TokenDataset, idx: np.ndarray, tokenizer: Tokenizer, config: OmniJetConfig,
    out_dir: Path, tokens_file: Path | None = None, record: dict[str, Any] | None = None,
) -> Path:
    """The backbone file: the config's, or pre-trained on the top-jet tokens ``idx`` (reused
    while its configuration, ``record`` (what else chose ``idx``) and the token file
    ``tokens_file`` (default ``out_dir/tokens/top.parquet``) are the same). Its tokenizer is
    checked."""
    if config.backbone is not None:
        load_generative(config.backbone, tokenizer)
        console.print(f"backbone from {config.backbone}")
        return Path(config.backbone)
    path = out_dir / "pretrain" / "backbone.safetensors"
    tokens_file = out_dir / "tokens" / "top.parquet" if tokens_file is None else tokens_file
    stage = Stage(out_dir, "pretrain",
                  {**{k: getattr(config, k) for k in ("gpt", "pretraining", "seed",
                                                      "pretrain_fraction")}, **(record or {})},
                  {"tokenizer": tokenizer.fingerprint, "tokens/top": file_digest(tokens_file)},
                  [path], path.parent)
    if not stage.prepare():
        console.rule("pre-training: GPT on top-jet tokens")
        subset = TokenDataset(tokens.codes[idx], tokens.mask[idx], tokens.label[idx],
                              tokens.tokenizer)
        fit_generative(subset, tokenizer, config.gpt, config.pretraining, out_dir / "pretrain",
                       config.seed)
        stage.finish()
    load_generative(path, tokenizer)
    return path


def generate_jets(
    backbone_file: Path, tokenizer: Tokenizer, config: OmniJetConfig, out_dir: Path,
) -> JetBatch:
    """``n_generate`` sampled top jets (reused while the sampling keys, backbone and
    tokenizer are the same)."""
    path = out_dir / "generated" / "generated.parquet"
    keys = ("n_generate", "temperature", "top_k", "sample_batch", "seed")
    stage = Stage(out_dir, "generated", {k: getattr(config, k) for k in keys},
                  {"tokenizer": tokenizer.fingerprint, "backbone": file_digest(backbone_file)},
                  [path, path.parent / "sampling.json"], path.parent)
    if stage.prepare():
        return read_jets([str(path)])
    backbone, head = load_generative(backbone_file, tokenizer)
    console.rule(f"sampling {config.n_generate} jets (KV cache)")
    jets, stats = sample_jets(backbone, head, config.n_generate,
                              temperature=config.temperature, top_k=config.top_k,
                              batch_size=config.sample_batch, seed=config.seed,
                              label=class_index("Tbqq"))
    console.print(f"  {stats['jets_per_second']:.1f} jets/s; {stats['n_empty']} sequences "
                  "stopped before their first particle (left out, counted)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jets(jets, path)
    write_json(out_dir / "generated" / "sampling.json", stats)
    stage.finish()
    return jets


TAGGING_CLASSES = ("QCD", "Tbqq")  # the tagger's outputs: QCD (0) and top (1)


def tagging_config(config: OmniJetConfig, mode: str, backbone_file: Path) -> TaggingConfig:
    """The top-vs-QCD tagger of ``mode`` on the OmniJet backbone of ``backbone_file`` (from
    scratch: its architecture and tokenizer, new GPT weights)."""
    return TaggingConfig(backbone="omnijet", head=config.tagging_head,
                         classes=list(TAGGING_CLASSES), mode=mode, init=str(backbone_file),
                         backbone_lr_factor=config.backbone_lr_factor,
                         training=config.tagging_training)


def train_taggers(
    jets: dict[str, JetBatch], splits: Splits, tokenizer: Tokenizer,
    config: OmniJetConfig, out_dir: Path, backbone_file: Path | None = None,
    data: dict[str, str] | None = None, skipped: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Top vs QCD taggers (:func:`jetfm.tasks.tagging.train_tagger`, ``backbone: omnijet``)
    on ``D`` labelled jets per size, each mode; test metrics.

    The jets' class is their role (``top`` or ``qcd``), whatever their files' labels. D =
    training + validation jets (:func:`tagging_split`); the test jets are the same for every
    row. Each row is a stage ``tagging/D{D}_{mode}`` (reused while its configuration, the jet
    files (``data``: their digests) and the backbone are the same); ``tagging/summary.json``
    lists the rows of this config only. ``backbone_file`` (default
    ``pretrain/backbone.safetensors``) must hold ``tokenizer`` (ValueError naming both
    fingerprints). A D larger than the labelled jets outside the test set is skipped, with
    a line printed and appended to ``skipped``.
    """
    backbone_file = backbone_file or out_dir / "pretrain" / "backbone.safetensors"
    load_generative(backbone_file, tokenizer)  # checks the tokenizer
    rng = np.random.default_rng(config.seed + 7)
    pools = {n: rng.permutation(splits.tagging[n]) for n in ("top", "qcd")}
    n_pool = min(len(p) for p in pools.values())
    n_test = max(n_pool // 5, 1)
    roles = {"top": class_index("Tbqq"), "qcd": class_index("QCD")}

    def pick(part: slice) -> JetBatch:
        picked = []
        for name in ("top", "qcd"):
            batch = jets[name][pools[name][part]]
            batch.label = np.full(len(batch), roles[name])
            picked.append(batch)
        return JetBatch.concatenate(picked)

    test = pick(slice(0, n_test))
    n_labelled_max = n_pool - n_test
    keys = ("tagging_head", "backbone_lr_factor", "tagging_training", "tagging_val_fraction",
            "seed", "pretrain_fraction", "eval_fraction")
    rows = []
    for size in config.tagging_sizes:
        n_train, n_val = tagging_split(size, config.tagging_val_fraction)
        if n_train + n_val > n_labelled_max:
            why = (f"skipped D = {size}: only {2 * max(n_labelled_max, 0)} labelled jets "
                   f"outside the {2 * n_test} test jets (more jets, or a smaller "
                   f"pretrain_fraction + eval_fraction)")
            console.print(f"[yellow]{why}[/]")
            if skipped is not None:
                skipped.append(why)
            continue
        start = n_test
        val = pick(slice(start, start + n_val))
        train = pick(slice(start + n_val, start + n_val + n_train))
        for mode in config.tagging_modes:
            run_dir = out_dir / "tagging" / f"D{size}_{mode}"
            stage = Stage(out_dir, f"tagging/D{size}_{mode}",
                          {"D": size, "mode": mode, **{k: getattr(config, k) for k in keys}},
                          {**(data or {}), "backbone": file_digest(backbone_file)},
                          [run_dir / "result.json", run_dir / "test_scores.npz"], run_dir)
            if not stage.prepare():
                console.rule(f"tagger: D = {size} ({2 * n_train} train + {2 * n_val} "
                             f"validation), {mode}")
                tagger = train_tagger(train, val, tagging_config(config, mode, backbone_file),
                                      run_dir, seed=config.seed)
                labels = tagger.labels_of(test)
                scores = tagger.predict_proba(test)[:, 1]
                np.savez(run_dir / "test_scores.npz", labels=labels, scores=scores)
                result = evaluate_tagging(labels, scores, run_dir, name=f"{mode}, D={size}",
                                          signal="top", background="QCD")
                write_json(run_dir / "result.json",
                           {"D": size, "mode": mode, "n_train": len(train), "n_val": len(val),
                            "n_test": len(test), **result.summary})
                stage.finish()
            rows.append(json.loads((run_dir / "result.json").read_text()))
    write_json(out_dir / "tagging" / "summary.json", rows)
    plot_taggers(out_dir / "tagging", rows)
    return rows


def plot_taggers(tagging_dir: Path, rows: list[dict[str, Any]]) -> Path | None:
    """The test ROC curves of the taggers ``rows`` in one plot, ``roc_all.png`` (from their
    saved scores; folders of other configurations are left out)."""
    taggers = {}
    for row in rows:
        path = tagging_dir / f"D{row['D']}_{row['mode']}" / "test_scores.npz"
        with np.load(path) as data:
            taggers[f"{row['mode']}, D = {row['D']:,}"] = (data["labels"], data["scores"])
    if not taggers:
        return None
    return plot_roc(taggers, tagging_dir / "roc_all.png", signal="top", background="QCD")


# ----------------------------------------------------------------------------- the run
def mass_mode(mass: np.ndarray, high: float = 300.0, step: float = 0.5) -> float:
    """The jet-mass peak [GeV]: the maximum of a Gaussian kernel density estimate
    (``scipy.stats.gaussian_kde``, Scott's bandwidth) of the finite masses in [0, ``high``],
    on a ``step``-GeV grid; NaN when fewer than 2 are inside, their value when all are equal.

    Not the fullest bin of a histogram: for a few hundred jets of a broad distribution that
    jumps with the binning (a session-10 demo sample of 500 generated jets: 195 or 190 GeV
    for 10 GeV bins starting at 0 or 5 GeV; the density peak 178 GeV)."""
    mass = np.asarray(mass, dtype=float)
    mass = mass[np.isfinite(mass) & (mass >= 0) & (mass <= high)]
    if len(mass) < 2:
        return float("nan")
    if np.ptp(mass) == 0:
        return float(mass[0])
    grid = np.arange(0.0, high + step, step)
    return float(grid[np.argmax(gaussian_kde(mass)(grid))])


def compare_sample(
    truth: JetBatch, sample: JetBatch, floor: JetBatch, tokenizer: Tokenizer, folder: Path, *,
    n_bootstrap: int, seed: int, title: str, plots: bool = False,
) -> dict[str, Any]:
    """``sample`` (generated, or ``floor`` reconstructed by the tokenizer) vs held-out
    ``truth`` in the tokenizer's frame, the floor being the independent truth jets ``floor``
    vs ``truth`` (:func:`jetfm.metrics.evaluate.evaluate_batches`); plus the sample's tau32 and
    mass medians, its mass mode (:func:`mass_mode`) and its tau32 and mass values."""
    frame, frame_name = tokenizer_frame(tokenizer)
    result = evaluate_batches(truth, sample, folder, n_bootstrap=n_bootstrap, seed=seed,
                              plots=plots, frame=frame, frame_name=frame_name,
                              floor_sample=floor, title=title)
    obs = jet_observables(sample)
    return {"table": result.table,
            "metrics": {f"{r['metric']} {r['observable']}": r for r in result.table},
            "tau32_median": float(np.nanmedian(obs["tau32"])),
            "mass_median": float(np.nanmedian(obs["mass"])),
            "mass_mode": mass_mode(obs["mass"]),
            "values": {o: obs[o].tolist() for o in ("tau32", "mass")},
            "text": result.format()}


THREE_PRONG = {"tau32_median": 0.55, "mass_mode_window": 10.0}  # issue 13: the demo's top jets


def sample_rows(samples: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per compared sample (:func:`compare_sample`): tau32 median, mass mode, and the
    headline W1 / C2ST numbers, each with its floor in brackets."""

    def cell(result: dict[str, Any], key: str, digits: int) -> str:
        m = result["metrics"][key]
        return f"{m['value']:.{digits}f} ({m['floor']:.{digits}f})"

    return [{"sample": name, "tau32 median": f"{r['tau32_median']:.3f}",
             "mass mode [GeV]": f"{r['mass_mode']:.0f}",
             "W1 tau32 (floor)": cell(r, "W1 tau32", 4),
             "W1 mass [GeV] (floor)": cell(r, "W1 mass", 2),
             "W1 n (floor)": cell(r, "W1 n_particles", 2),
             "C2ST AUC (floor)": cell(r, "C2ST AUC jet features", 3)}
            for name, r in samples.items()]


def run(config: OmniJetConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole chain; returns (and writes to ``summary.json``/``summary.md``) the numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jets, data = load_jets(config, out_dir)
    splits = make_splits(jets, config)
    tokenizer, resolution_path = tokenizer_stage(jets, splits, config, out_dir, data)
    tokens = tokenize_all(tokenizer, jets, out_dir, data)
    if config.augment > 1:  # the GPT's jets and their symmetry images, tokenized
        images = dihedral_images(jets["top"][splits.pretrain["top"]], config.augment)
        folder = out_dir / "augmented"
        augmented = tokenize_all(tokenizer, {"top": images}, folder,
                                 {**data, "augment": str(config.augment)}, out_dir)["top"]
        backbone = pretrain(augmented, np.arange(len(augmented)), tokenizer, config, out_dir,
                            folder / "tokens" / "top.parquet", {"augment": config.augment})
    else:
        backbone = pretrain(tokens["top"], splits.pretrain["top"], tokenizer, config, out_dir)
    generated = generate_jets(backbone, tokenizer, config, out_dir)
    console.rule("evaluation: generated vs held-out top jets")
    held = jets["top"][splits.evaluation]  # the last n_floor: the floor, the rest: the truth
    if len(held) < 4:
        raise ValueError(f"eval_fraction {config.eval_fraction} of {len(jets['top'])} top "
                         f"jets holds out {len(held)}: the evaluation needs at least 4 (truth "
                         f"and floor)")
    n_floor = min(config.n_generate, len(held) // 2)
    truth, floor = held[: len(held) - n_floor], held[len(held) - n_floor:]
    notes = []
    if n_floor < config.n_generate:
        notes.append(f"the floor compares {n_floor} truth jets, fewer than the "
                     f"{config.n_generate} generated (n_generate): {len(held)} held-out top "
                     f"jets (eval_fraction {config.eval_fraction}); hold out at least "
                     f"{2 * config.n_generate} for a like-for-like floor")
        console.print(f"[yellow]{notes[-1]}[/]")
    common = {"n_bootstrap": config.n_bootstrap, "seed": config.seed}
    samples = {
        "tokenizer only (decoded truth)": compare_sample(
            truth, tokenizer.reconstruct(floor), floor, tokenizer,
            out_dir / "evaluation_tokenizer_only", **common,
            title="Tokenizer only: independent truth top jets encoded and decoded, vs "
                  "held-out truth"),
        "generated": compare_sample(
            truth, generated, floor, tokenizer, out_dir / "evaluation", **common, plots=True,
            title="OmniJet-alpha generated top jets vs held-out truth")}
    print(samples["generated"]["text"])
    tagging = train_taggers(jets, splits, tokenizer, config, out_dir, backbone, data, notes)
    resolution = (json.loads(resolution_path.read_text()) if resolution_path.exists()
                  else {})
    observables = {"truth": jet_observables(truth),
                   "truth in the tokenizer frame": jet_observables(tokenizer.in_frame(truth)),
                   "generated": jet_observables(generated)}
    truth_mode = mass_mode(observables["truth in the tokenizer frame"]["mass"])
    gen = samples["generated"]
    three_prong = {
        "tau32_median": gen["tau32_median"], "tau32_median_max": THREE_PRONG["tau32_median"],
        "mass_mode": gen["mass_mode"], "truth_mass_mode": truth_mode,
        "mass_mode_window": THREE_PRONG["mass_mode_window"],
        "pass": bool(gen["tau32_median"] < THREE_PRONG["tau32_median"] and abs(
            gen["mass_mode"] - truth_mode) <= THREE_PRONG["mass_mode_window"])}
    summary = {
        "tokenizer_resolution": resolution,
        "generation": gen["table"],
        "tokenizer_only": samples["tokenizer only (decoded truth)"]["table"],
        "samples": sample_rows(samples),
        "n_truth": len(truth), "n_floor": len(floor),
        "medians": {name: {k: float(np.nanmedian(obs[name])) for k, obs in observables.items()}
                    for name in MEDIAN_OBSERVABLES},
        "generated_mass_mode": gen["mass_mode"],
        "three_prong": three_prong,
        "tagging": tagging,
        "notes": notes,
        "seconds": time.perf_counter() - start,
    }
    write_json(out_dir / "summary.json", summary)
    write_summary_markdown(summary, out_dir / "summary.md")
    return summary


def write_summary_markdown(summary: dict[str, Any], path: Path) -> None:
    lines = ["# OmniJet-alpha run", "", "## Tokenizer resolution", ""]
    lines += [f"- {k}: {format_value(v)}" for k, v in summary["tokenizer_resolution"].items()]
    lines += ["", "## Which part limits: tokenizer only vs generated", "",
              f"Both samples vs the same {summary['n_truth']} held-out truth top jets (in the "
              f"tokenizer's frame); in brackets the floor: {summary['n_floor']} independent "
              "truth jets vs the same ones. 'tokenizer only' = those independent jets encoded "
              "and decoded: the best a GPT over these tokens can do.", "",
              markdown_table(summary["samples"])]
    prong = summary["three_prong"]
    lines += ["", f"Three-prong check (issue 13): generated tau32 median "
              f"{prong['tau32_median']:.3f} (< {prong['tau32_median_max']} needed), mass mode "
              f"{prong['mass_mode']:.0f} GeV vs truth {prong['truth_mass_mode']:.0f} GeV "
              f"(within {prong['mass_mode_window']:.0f} GeV needed): "
              + ("PASS" if prong["pass"] else "FAIL")]
    lines += ["", "## Generated top jets vs held-out truth", "",
              markdown_table(summary["generation"], METRIC_COLUMNS),
              "", "## Tokenizer only (decoded truth) vs held-out truth", "",
              markdown_table(summary["tokenizer_only"], METRIC_COLUMNS)]
    medians = summary.get("medians", {})
    if medians:
        samples = list(next(iter(medians.values())))
        lines += ["", "Medians:", "", "| observable | " + " | ".join(samples) + " |",
                  "| --- |" + " --- |" * len(samples)]
        lines += [f"| {name} | " + " | ".join(format_value(row[k]) for k in samples) + " |"
                  for name, row in medians.items()]
    lines += ["", "## Top-vs-QCD tagging (test set)", "",
              "D: all labelled jets a tagger sees, training + validation (early stopping), "
              "half of them per class; the same jets for both modes; the test jets are not "
              "in D.", "",
              "| D | train + val | mode | AUC | rejection at eps_S = 0.3 | accuracy | test jets |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["tagging"]:
        lines.append(f"| {row['D']} | {row['n_train']} + {row['n_val']} | {row['mode']} | "
                     f"{format_value(row['auc'])} | {format_value(row['rejection@0.3'])} | "
                     f"{format_value(row['accuracy'])} | {row['n_test']} |")
    if summary.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in summary["notes"]]
    lines += ["", f"Run time: {summary['seconds']:.0f} s"]
    write_text_atomic(path, "\n".join(lines) + "\n")
