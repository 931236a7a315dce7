"""OmniJet-alpha end to end: jets -> tokenizer -> generative pre-training -> generated jets
-> evaluation against held-out truth -> top-vs-QCD taggers fine-tuned vs from scratch.

Every stage writes its result under ``out_dir`` and is skipped when that result is already
there, so an interrupted run resumes where it stopped:

    data/{top,qcd}.root              generated jets (or the files given in the config)
    tokenizer/tokenizer.safetensors  VQ-VAE + preprocessing;  tokenizer/resolution.json
    tokens/{top,qcd}.parquet         tokenized jets (with the tokenizer's fingerprint)
    pretrain/backbone.safetensors    GPT backbone + generative head
    generated/generated.parquet      sampled jets, decoded;  evaluation/ (table, plots, report)
    tagging/D{n}_{mode}/             fine-tuned and from-scratch taggers;  tagging/summary.json
    summary.md                       all numbers of the run

Splits are fixed by the seed: each class is shuffled once and cut into tokenizer/pre-training,
held-out evaluation, and tagging pools (train, validation, test).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from textwrap import indent
from typing import Any

import numpy as np
import torch
from rich.console import Console

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.data.batch import JetBatch
from jetfm.data.classes import class_index
from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets, write_jets
from jetfm.data.tokens import TokenDataset, read_tokens, write_tokens
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.metrics.evaluate import evaluate_batches, evaluate_tagging
from jetfm.models.gpt import GPT, GPTConfig, NextTokenHead, sample
from jetfm.models.heads import HEADS
from jetfm.models.tokenizer import Tokenizer, format_resolution, resolution_warnings
from jetfm.models.vqvae import VQVAEConfig
from jetfm.physics.observables import jet_observables
from jetfm.plots.roc import plot_roc
from jetfm.report import METRIC_COLUMNS, markdown_table
from jetfm.studies import read_config, write_json
from jetfm.tasks.omnijet import (
    FINETUNE_MODES,
    GPT_KEYS,
    VQVAE_KEYS,
    ClassifierTask,
    GenerativeTask,
    TokenizerTask,
)
from jetfm.tasks.training import (
    TRAIN_KEYS,
    TrainConfig,
    check_blocks,
    check_keys,
    fit,
    seed_all,
    split_indices,
    tensor_dataset,
)

console = Console(soft_wrap=True, emoji=False)
log = logging.getLogger("jetfm.omnijet")


@dataclass
class OmniJetConfig:
    """Everything the pipeline needs; YAML files in ``configs/`` fill it."""

    n_jets: int | dict[str, int] = 4000  # generated per class, or {top: n, qcd: n}
    files: dict[str, str] = field(default_factory=dict)  # class -> existing file instead
    workers: int = 2
    seed: int = 1
    n_max: int = 128
    pt_min: float | None = 0.1  # GeV, particle cut of the tokenizer preprocessing
    tokenizer_jets: int | None = None  # per class, from the pre-training split (None: all)
    pretrain_fraction: float = 0.5  # of top jets: tokenizer + GPT training (QCD: tokenizer)
    eval_fraction: float = 0.2  # of top jets: held-out truth for the generated sample
    vqvae: dict[str, Any] = field(default_factory=dict)
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

    @classmethod
    def from_yaml(cls, path: str | Path) -> OmniJetConfig:
        """The config in the YAML file ``path``. Every key, of the top level and of the
        ``vqvae``, ``gpt``, ``*_training``/``pretraining``, ``files`` and ``n_jets`` blocks,
        is used; an unknown one raises ``ValueError`` naming the file, the block, the key and
        the valid keys (as do unknown tagging modes or heads)."""
        data = read_config(path, cls)
        blocks = {"vqvae": VQVAE_KEYS, "gpt": GPT_KEYS, "tokenizer_training": TRAIN_KEYS,
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
        return cls(**data)




# ----------------------------------------------------------------------------- stages
def load_jets(config: OmniJetConfig, out_dir: Path) -> dict[str, JetBatch]:
    """Top and QCD jets: given files or generated ones (reused when already on disk)."""
    files = dict(config.files)
    for i, name in enumerate(("top", "qcd")):
        if name in files:
            continue
        n_jets = config.n_jets[name] if isinstance(config.n_jets, dict) else config.n_jets
        # one call per class, seeded as generated_files seeds the i-th process of a list
        (path,) = generated_files([name], n_jets, out_dir / "data", seed=config.seed + 1000 * i,
                                  workers=config.workers)
        files[name] = str(path)
    return {name: read_jets([files[name]]) for name in ("top", "qcd")}


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


def fit_tokenizer(
    batch: JetBatch, vqvae: dict[str, Any], training: dict[str, Any], n_max: int,
    out_dir: Path, seed: int = 1, pt_min: float | None = None,
) -> Tokenizer:
    """Train a VQ-VAE on ``batch`` (OmniJet-alpha preprocessing, 10 % validation jets);
    writes ``tokenizer.safetensors`` and ``resolution.json`` (on the validation jets), prints
    the resolution summary and logs a warning per figure beyond
    :data:`jetfm.models.tokenizer.RESOLUTION_LIMITS` (a poorly trained tokenizer).

    ``vqvae``: :class:`VQVAEConfig` fields but ``n_features`` (set by the preprocessing);
    ``training``: :class:`TrainConfig` fields. Unknown keys raise ``ValueError``.
    """
    check_keys(vqvae, VQVAE_KEYS, "vqvae")
    train_config = TrainConfig.from_overrides(training, seed, "tokenizer_training")
    preprocessing = omnijet_preprocessing(n_max, pt_min)
    values, mask, reports = preprocessing.apply(batch)
    for report in reports:
        console.print(f"  {report}")
    train_idx, val_idx = split_indices(len(values), 0.1, seed)
    seed_all(seed)
    vq_config = VQVAEConfig(**{**vqvae, "n_features": len(preprocessing.features)})
    task = TokenizerTask(asdict(vq_config), **train_config.optimiser())
    trainer = fit(task, tensor_dataset(values[train_idx], mask[train_idx]),
                  tensor_dataset(values[val_idx], mask[val_idx]), train_config, out_dir)
    tokenizer = Tokenizer(task.model.cpu(), preprocessing)
    if trainer.global_rank == 0:
        tokenizer.save(out_dir / "tokenizer.safetensors")
        resolution = tokenizer.resolution(batch[val_idx])
        write_json(out_dir / "resolution.json", resolution)
        console.print(f"tokenizer resolution on {len(val_idx)} validation jets:")
        console.print(indent(format_resolution(resolution), "  "))
        for message in resolution_warnings(resolution):
            log.warning("%s: %s", out_dir / "tokenizer.safetensors", message)
    return tokenizer


def train_tokenizer(
    jets: dict[str, JetBatch], splits: Splits, config: OmniJetConfig, out_dir: Path
) -> Tokenizer:
    path = out_dir / "tokenizer" / "tokenizer.safetensors"
    if path.exists():
        return Tokenizer.load(path)
    console.rule("tokenizer: train the VQ-VAE on top and QCD jets")
    cap = config.tokenizer_jets
    batch = JetBatch.concatenate(
        [jets[n][splits.pretrain[n][:cap]] for n in ("top", "qcd")]
    )
    return fit_tokenizer(batch, config.vqvae, config.tokenizer_training, config.n_max,
                         out_dir / "tokenizer", config.seed, config.pt_min)


def tokenizer_resolution(tokenizer: Tokenizer, jets: JetBatch) -> dict[str, float]:
    """Reconstruction quality of ``tokenizer`` on ``jets``: :meth:`Tokenizer.resolution`."""
    return tokenizer.resolution(jets)


def tokenize_all(
    tokenizer: Tokenizer, jets: dict[str, JetBatch], out_dir: Path
) -> dict[str, TokenDataset]:
    datasets = {}
    for name, batch in jets.items():
        path = out_dir / "tokens" / f"{name}.parquet"
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
    return datasets


def in_frame(tokenizer: Tokenizer, jets: JetBatch) -> JetBatch:
    """``jets`` after the tokenizer's preprocessing (cuts, truncation, massless particles
    around the axis): the frame generated jets live in."""
    values, mask, _ = tokenizer.preprocessing.apply(jets)
    return tokenizer.preprocessing.invert(values, mask, label=jets.label)


def gpt_config_for(gpt: dict[str, Any], tokenizer: Tokenizer) -> dict[str, Any]:
    """GPT size from ``gpt`` with vocabulary and length set by the tokenizer."""
    return asdict(GPTConfig(**{**gpt, "vocab_size": tokenizer.vocab_size,
                               "max_length": tokenizer.n_max + 2}))


def fit_generative(
    tokens: TokenDataset, tokenizer: Tokenizer, gpt: dict[str, Any], training: dict[str, Any],
    out_dir: Path, seed: int = 1, resume: str | Path | None = None,
    init: str | Path | None = None,
) -> Path:
    """Generative training on token sequences; writes ``backbone.safetensors``.

    ``init``: a ``backbone.safetensors`` to start from (generative fine-tuning); its GPT size
    replaces ``gpt`` and its tokenizer must be ``tokenizer``.
    """
    seq, seq_mask = tokenizer.to_sequences(tokens.codes, tokens.mask)
    train_idx, val_idx = split_indices(len(seq), 0.1, seed)
    if init is not None:
        backbone, head, meta = load_generative(init)
        if meta.get("tokenizer_fingerprint") != tokenizer.fingerprint:
            raise ValueError(f"{init}: made with another tokenizer than {tokenizer.fingerprint}")
        gpt = meta["gpt"]
    seed_all(seed)
    task = GenerativeTask(gpt_config_for(gpt, tokenizer), lr=training.get("lr", 1e-3))
    if init is not None:
        task.backbone.load_state_dict(backbone.state_dict())
        task.head.load_state_dict(head.state_dict())
    trainer = fit(task, tensor_dataset(seq[train_idx], seq_mask[train_idx]),
                  tensor_dataset(seq[val_idx], seq_mask[val_idx]),
                  TrainConfig.from_overrides(training, seed), out_dir, resume=resume)
    path = out_dir / "backbone.safetensors"
    if trainer.global_rank == 0:
        tensors = {f"backbone.{k}": v for k, v in task.backbone.state_dict().items()}
        tensors.update({f"head.{k}": v for k, v in task.head.state_dict().items()})
        save_model(path, tensors, {"kind": "gpt", "gpt": task.hparams["gpt"],
                                   "tokenizer_fingerprint": tokenizer.fingerprint})
    return path


def load_generative(path: str | Path) -> tuple[GPT, NextTokenHead, dict[str, Any]]:
    """Backbone and generative head from ``backbone.safetensors`` (on CPU, eval mode)."""
    tensors, meta = load_model(path)
    if meta.get("kind") != "gpt":
        raise ValueError(f"{path}: not a GPT model file (kind={meta.get('kind')!r})")
    gpt_config = GPTConfig(**meta["gpt"])
    backbone, head = GPT(gpt_config), NextTokenHead(gpt_config.dim, gpt_config.vocab_size)
    backbone.load_state_dict(prefixed(tensors, "backbone"))
    head.load_state_dict(prefixed(tensors, "head"))
    return backbone.eval(), head.eval(), meta


def pretrain(
    tokens: TokenDataset, idx: np.ndarray, tokenizer: Tokenizer, config: OmniJetConfig,
    out_dir: Path,
) -> tuple[GPT, NextTokenHead]:
    path = out_dir / "pretrain" / "backbone.safetensors"
    if not path.exists():
        console.rule("pre-training: GPT on top-jet tokens")
        subset = TokenDataset(tokens.codes[idx], tokens.mask[idx], tokens.label[idx],
                              tokens.tokenizer)
        fit_generative(subset, tokenizer, config.gpt, config.pretraining, out_dir / "pretrain",
                       config.seed)
    backbone, head, _ = load_generative(path)
    return backbone, head


def sample_jets(
    backbone: GPT, head: NextTokenHead, tokenizer: Tokenizer, n_jets: int, *,
    temperature: float = 1.0, top_k: int | None = None, batch_size: int = 256, seed: int = 1,
    use_cache: bool = True, label: int | None = None, device: str = "auto",
) -> tuple[JetBatch, dict[str, Any]]:
    """Sample ``n_jets`` token sequences and decode them; returns jets and sampling figures.

    ``device``: where the GPT runs ("auto": CUDA when available, else the CPU); ``backbone``
    and ``head`` are moved there. The random stream is seeded on that device, so a seed
    reproduces a sample on the same kind of device.
    Sequences that stop before their first particle cannot be decoded into a jet: they are
    left out of the returned batch and counted in ``n_empty``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    backbone, head = backbone.to(device), head.to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    codes, masks = [], []
    start = time.perf_counter()
    for first in range(0, n_jets, batch_size):
        n = min(batch_size, n_jets - first)
        c, m = sample(backbone, head, n, tokenizer.n_max, temperature=temperature, top_k=top_k,
                      generator=generator, use_cache=use_cache)
        codes.append(c.cpu().numpy())
        masks.append(m.cpu().numpy())
    elapsed = time.perf_counter() - start
    codes_np, mask_np = np.concatenate(codes), np.concatenate(masks)
    empty = mask_np.sum(axis=1) == 0
    labels = None if label is None else np.full(int((~empty).sum()), label)
    jets = tokenizer.decode(codes_np[~empty], mask_np[~empty], label=labels)
    stats = {"n_requested": n_jets, "n_empty": int(empty.sum()),
             "jets_per_second": n_jets / elapsed, "seconds": elapsed, "device": str(device)}
    return jets, stats


def generate_jets(
    backbone: GPT, head: NextTokenHead, tokenizer: Tokenizer, config: OmniJetConfig,
    out_dir: Path,
) -> JetBatch:
    path = out_dir / "generated" / "generated.parquet"
    if path.exists():
        return read_jets([str(path)])
    console.rule(f"sampling {config.n_generate} jets (KV cache)")
    jets, stats = sample_jets(backbone, head, tokenizer, config.n_generate,
                              temperature=config.temperature, top_k=config.top_k,
                              batch_size=config.sample_batch, seed=config.seed,
                              label=class_index("Tbqq"))
    console.print(f"  {stats['jets_per_second']:.1f} jets/s; {stats['n_empty']} sequences "
                  "stopped before their first particle (left out, counted)")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jets(jets, path)
    write_json(out_dir / "generated" / "sampling.json", stats)
    return jets


def train_taggers(
    tokens: dict[str, TokenDataset], splits: Splits, tokenizer: Tokenizer,
    config: OmniJetConfig, out_dir: Path,
) -> list[dict[str, Any]]:
    """Top (1) vs QCD (0) taggers on ``D`` training jets per size, each mode; test metrics."""
    summary_path = out_dir / "tagging" / "summary.json"
    done = json.loads(summary_path.read_text()) if summary_path.exists() else []
    rng = np.random.default_rng(config.seed + 7)
    pools = {n: rng.permutation(splits.tagging[n]) for n in ("top", "qcd")}
    n_pool = min(len(p) for p in pools.values())
    n_test = n_val = max(n_pool // 5, 1)

    def pick(part: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seqs, masks, labels = [], [], []
        for label, name in ((1, "top"), (0, "qcd")):
            idx = pools[name][part]
            s, m = tokenizer.to_sequences(tokens[name].codes[idx], tokens[name].mask[idx])
            seqs.append(s)
            masks.append(m)
            labels.append(np.full(len(idx), label))
        return np.concatenate(seqs), np.concatenate(masks), np.concatenate(labels)

    test = pick(slice(0, n_test))
    val = pick(slice(n_test, n_test + n_val))
    n_train_max = n_pool - n_test - n_val
    state, _ = load_model(out_dir / "pretrain" / "backbone.safetensors")
    backbone_state = prefixed(state, "backbone")
    for size in config.tagging_sizes:
        per_class = size // 2
        if per_class > n_train_max:
            console.print(f"[yellow]skip D = {size}: only {2 * n_train_max} training jets[/]")
            continue
        train = pick(slice(n_test + n_val, n_test + n_val + per_class))
        for mode in config.tagging_modes:
            if any(r["D"] == size and r["mode"] == mode for r in done):
                continue
            console.rule(f"tagger: D = {size}, {mode}")
            run_dir = out_dir / "tagging" / f"D{size}_{mode}"
            task = fit_tagger(train, val, gpt_config_for(config.gpt, tokenizer), backbone_state,
                              mode=mode, head=config.tagging_head,
                              backbone_lr_factor=config.backbone_lr_factor,
                              training=config.tagging_training, out_dir=run_dir,
                              seed=config.seed)
            scores = predict_scores(task, test[0], test[1])
            np.savez(run_dir / "test_scores.npz", labels=test[2], scores=scores)
            result = evaluate_tagging(test[2], scores, run_dir, name=f"{mode}, D={size}",
                                      signal="top", background="QCD")
            done.append({"D": size, "mode": mode, "n_test": len(test[2]), **result.summary})
            write_json(summary_path, done)
    plot_taggers(out_dir / "tagging")
    return done


def plot_taggers(tagging_dir: Path) -> Path | None:
    """All taggers' test ROC curves in one plot, ``roc_all.png`` (from their saved scores)."""
    taggers = {}
    for path in sorted(tagging_dir.glob("D*_*/test_scores.npz")):
        size, mode = path.parent.name[1:].split("_", 1)
        with np.load(path) as data:
            taggers[f"{mode}, D = {int(size):,}"] = (data["labels"], data["scores"])
    if not taggers:
        return None
    return plot_roc(taggers, tagging_dir / "roc_all.png", signal="top", background="QCD")


def fit_tagger(
    train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...], gpt: dict[str, Any],
    backbone_state: dict[str, torch.Tensor] | None, *, mode: str, head: str,
    backbone_lr_factor: float, training: dict[str, Any], out_dir: Path, seed: int = 1,
    n_classes: int = 2,
) -> ClassifierTask:
    """Train a classifier on (tokens, mask, label) arrays; ``backbone_state`` initialises the
    backbone unless ``mode == "scratch"``."""
    seed_all(seed)
    task = ClassifierTask(gpt, n_classes=n_classes, head=head, mode=mode,
                          lr=training.get("lr", 1e-3), backbone_lr_factor=backbone_lr_factor)
    if mode != "scratch":
        if backbone_state is None:
            raise ValueError(f"mode {mode!r} needs a pre-trained backbone")
        task.backbone.load_state_dict(backbone_state)
    fit(task, tensor_dataset(*train), tensor_dataset(*val),
        TrainConfig.from_overrides(training, seed), out_dir)
    return task


@torch.no_grad()
def predict_scores(task: ClassifierTask, tokens: np.ndarray, mask: np.ndarray,
                   batch_size: int = 512) -> np.ndarray:
    """Softmax probability of class 1 (top)."""
    task.eval()
    scores = []
    for start in range(0, len(tokens), batch_size):
        logits = task(torch.as_tensor(tokens[start : start + batch_size]),
                      torch.as_tensor(mask[start : start + batch_size]))
        scores.append(torch.softmax(logits, dim=1)[:, 1].numpy())
    return np.concatenate(scores)


# ----------------------------------------------------------------------------- the run
def run(config: OmniJetConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole chain; returns (and writes to ``summary.json``/``summary.md``) the numbers."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jets = load_jets(config, out_dir)
    splits = make_splits(jets, config)
    tokenizer = train_tokenizer(jets, splits, config, out_dir)
    tokens = tokenize_all(tokenizer, jets, out_dir)
    backbone, head = pretrain(tokens["top"], splits.pretrain["top"], tokenizer, config, out_dir)
    generated = generate_jets(backbone, head, tokenizer, config, out_dir)
    console.rule("evaluation: generated vs held-out top jets")
    truth = jets["top"][splits.evaluation]
    evaluation = evaluate_batches(in_frame(tokenizer, truth), generated, out_dir / "evaluation",
                                  n_bootstrap=config.n_bootstrap, seed=config.seed,
                                  title="OmniJet-alpha generated top jets vs held-out truth")
    print(evaluation.format())
    tagging = train_taggers(tokens, splits, tokenizer, config, out_dir)
    resolution = json.loads((out_dir / "tokenizer" / "resolution.json").read_text())
    mass = jet_observables(generated)["mass"]
    hist, edges = np.histogram(mass[np.isfinite(mass)], bins=np.linspace(0, 300, 31))
    summary = {
        "tokenizer_resolution": resolution,
        "generation": evaluation.table,
        "generated_mass_mode": float(0.5 * (edges[hist.argmax()] + edges[hist.argmax() + 1])),
        "tagging": tagging,
        "seconds": time.perf_counter() - start,
    }
    write_json(out_dir / "summary.json", summary)
    write_summary_markdown(summary, out_dir / "summary.md")
    return summary


def write_summary_markdown(summary: dict[str, Any], path: Path) -> None:
    lines = ["# OmniJet-alpha run", "", "## Tokenizer resolution", ""]
    lines += [f"- {k}: {v:.4g}" for k, v in summary["tokenizer_resolution"].items()]
    lines += ["", "## Generated top jets vs held-out truth", "",
              markdown_table(summary["generation"], METRIC_COLUMNS)]
    lines += ["", f"Generated jet-mass mode: {summary['generated_mass_mode']:.0f} GeV", "",
              "## Top-vs-QCD tagging (test set)", "",
              "| D | mode | AUC | rejection at eps_S = 0.3 | accuracy |",
              "| --- | --- | --- | --- | --- |"]
    for row in summary["tagging"]:
        lines.append(f"| {row['D']} | {row['mode']} | {row['auc']:.4f} | "
                     f"{row['rejection@0.3']:.1f} | {row['accuracy']:.3f} |")
    lines += ["", f"Run time: {summary['seconds']:.0f} s"]
    path.write_text("\n".join(lines) + "\n")
