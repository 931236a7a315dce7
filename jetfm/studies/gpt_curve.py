"""GPT learning curve (``jetfm study gpt-curve``): generated top jets vs the number of top
training jets, the GPT size and the sampling settings, at one fixed tokenizer.

One tokenizer (trained once on ``tokenizer_jets`` top and QCD jets of the training pool, or the
config's ``tokenizer`` file) tokenizes every top jet. Each variant pre-trains the OmniJet-alpha
GPT (:func:`jetfm.tasks.omnijet.fit_generative`) on the first ``n_train`` top jets of the pool
(a model is shared by every variant with the same ``n_train``, ``gpt`` and ``pretraining``:
sampling variants reuse it), samples ``n_generate`` jets with its ``temperature`` / ``top_k``
and compares them with ``n_eval`` held-out truth top jets (:func:`jetfm.metrics.evaluate.
evaluate_batches`, bootstrap errors). Every number stands next to its floor: the same metric
between ``n_floor`` independent truth jets and the held-out ones (disjoint from each other and
from every training jet). The row ``tokenizer only`` puts those floor jets through the tokenizer
(:meth:`~jetfm.models.tokenizer.Tokenizer.reconstruct`): the best any GPT over these tokens can
do, so each row shows whether the GPT or the tokenizer limits. Truth jets are compared in the
tokenizer's frame (particle cuts, ``n_max``, massless constituents).

Issue 13's target on held-out top jets: generated tau32 median within 0.08 of the truth's,
W1(tau32) and W1(mass) within 5x their floors; ``summary.md`` says which variants meet it.

Outputs (a rerun reuses every stage whose record matches, :class:`jetfm.studies.Stage`):

    data/{top,qcd}.root, tokenizer/, tokens/top.parquet
    models/<n_train>-<hash>/pretrain/backbone.safetensors (+ logs/metrics.csv)
    variants/<name>/generated/, variants/<name>/evaluation/, variants/<name>/metrics.json
    tokenizer_only/evaluation/
    plots/{tau32,mass}.png   truth vs the tokenizer-only sample and every variant (ratio panel)
    table.md, summary.md, summary.json
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE, POSITIVE_INT, Rule, check_fields
from jetfm.console import Console
from jetfm.data.batch import JetBatch
from jetfm.models.gpt import GPTConfig
from jetfm.models.omnijet import load_generative
from jetfm.models.tokenizer import Tokenizer
from jetfm.physics.observables import OBSERVABLE_LABELS, jet_observables
from jetfm.plots.histograms import plot_distribution
from jetfm.report import markdown_table
from jetfm.studies import (
    HeldOutStudy,
    Stage,
    check_config_values,
    file_digest,
    read_config,
    variant_entries,
    write_json,
)
from jetfm.studies.omnijet import (
    OmniJetConfig,
    Splits,
    compare_sample,
    generate_jets,
    load_jets,
    mass_mode,
    pretrain,
    tokenize_all,
    tokenizer_stage,
)
from jetfm.tasks.omnijet import CODEBOOK_KEYS, GPT_KEYS, VQVAE_KEYS
from jetfm.tasks.training import TRAIN_KEYS, TrainConfig, check_blocks

console = Console(soft_wrap=True, emoji=False)

VARIANT_KEYS = ("name", "n_train", "gpt", "pretraining", "temperature", "top_k")
MODEL_KEYS = ("n_train", "gpt", "pretraining")  # what a trained GPT depends on
TOKENIZER_KEYS = ("tokenizer_model", "tokenizer_jets", "vqvae", "codebook",
                  "tokenizer_training", "tokenizer", "subjet_order",
                  "subjet_frame")
TARGET = {"tau32_median": 0.08, "floor_factor": 5.0}  # issue 13, held-out top jets


@dataclass
class GPTCurveConfig(HeldOutStudy):
    """The study; YAML files (``jetfm/configs/gpt_curve_*.yaml``) fill it.

    ``n_jets``: generated per class ({top: n, qcd: n} or one number; or ``files``). Top jets
    are split into ``n_eval`` held-out, ``n_floor`` (default ``n_eval``) floor and the
    training pool; QCD jets only train the tokenizer. A variant is ``name`` plus overrides of
    ``n_train`` (top jets for the GPT; the validation tenth included), ``gpt`` and
    ``pretraining`` (merged key by key into the defaults), ``temperature`` and ``top_k``.
    The tokenizer keys are those of :class:`jetfm.studies.omnijet.OmniJetConfig`.
    """

    n_jets: int | dict[str, int] = field(default_factory=lambda: {"top": 34000, "qcd": 3000})
    tokenizer_jets: int | None = 3000
    tokenizer_model: str = "codebook"
    vqvae: dict[str, Any] = field(default_factory=dict)
    codebook: dict[str, Any] = field(default_factory=dict)
    tokenizer_training: dict[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None
    subjet_order: int = 0
    subjet_frame: bool = False
    n_train: int = 10000
    gpt: dict[str, Any] = field(default_factory=dict)
    pretraining: dict[str, Any] = field(default_factory=dict)
    n_generate: int = 1000
    temperature: float = 1.0
    top_k: int | None = None
    sample_batch: int = 250
    n_bootstrap: int = 30
    variants: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "default"}])

    def variant(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The full settings of variant ``entry``: the defaults with its overrides."""
        return {"name": entry["name"], "n_train": entry.get("n_train", self.n_train),
                "gpt": {**self.gpt, **entry.get("gpt", {})},
                "pretraining": {**self.pretraining, **entry.get("pretraining", {})},
                "temperature": entry.get("temperature", self.temperature),
                "top_k": entry.get("top_k", self.top_k)}

    def omnijet(self, full: dict[str, Any] | None = None) -> OmniJetConfig:
        """The :class:`OmniJetConfig` of the tokenizer (and of variant ``full``'s GPT and
        sampling): the pipeline's stages run on it. Its checks apply (``ValueError``)."""
        keys = {k: getattr(self, k) for k in TOKENIZER_KEYS + (
            "n_max", "pt_min", "seed", "workers", "n_bootstrap", "sample_batch", "n_generate")}
        if full is not None:
            keys.update({k: full[k] for k in ("gpt", "pretraining", "temperature", "top_k")})
        config = OmniJetConfig(**keys)
        config.check_values("")
        return config

    def check(self, where: str | Path) -> None:
        """Every value and every variant, before any work: ``ValueError`` naming ``where``,
        the variant and the key."""
        check_config_values(where, [
            ("", lambda: check_fields(self, {
                "workers": POSITIVE_INT, "seed": Rule(int, low=0), "n_eval": Rule(int, low=2),
                "n_floor": Rule(int, low=2, optional=True), "n_train": POSITIVE_INT,
                "n_generate": Rule(int, low=2), "n_bootstrap": Rule(int, low=2)})),
            ("", self.omnijet)])
        for entry, label in variant_entries(self.variants, where, VARIANT_KEYS,
                                            {"gpt": GPT_KEYS, "pretraining": TRAIN_KEYS}):
            full = self.variant(entry)
            check_config_values(label, [
                ("", lambda f=full: check_fields(_Fields(f["n_train"], f["temperature"],
                                                         f["top_k"]), _Fields.RULES)),
                ("gpt", lambda f=full: GPTConfig(**f["gpt"])),
                ("pretraining", lambda f=full: TrainConfig(**f["pretraining"]))])
        n_top = self.n_jets["top"] if isinstance(self.n_jets, dict) else self.n_jets
        need = self.n_eval + self.floor_jets + max(self.variant(v)["n_train"]
                                                   for v in self.variants)
        if "top" not in self.files and n_top < need:
            raise ValueError(f"{where}: n_jets: {n_top} top jets, fewer than n_eval + n_floor "
                             f"+ the largest n_train = {need}")


@dataclass
class _Fields:
    """A variant's scalar values, checked with :func:`jetfm.checks.check_fields`."""

    n_train: int
    temperature: float
    top_k: int | None
    RULES = {"n_train": Rule(int, low=10), "temperature": POSITIVE,
             "top_k": Rule(int, low=1, optional=True)}


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> GPTCurveConfig:
    """The config in YAML file ``path`` with the command-line ``KEY=VALUE`` ``overrides``
    (:func:`jetfm.studies.read_config`), every key checked (``ValueError`` naming the file,
    the variant and the key)."""
    data = read_config(path, GPTCurveConfig, overrides)
    blocks = {"vqvae": VQVAE_KEYS, "codebook": CODEBOOK_KEYS, "gpt": GPT_KEYS,
              "tokenizer_training": TRAIN_KEYS, "pretraining": TRAIN_KEYS,
              "files": ("top", "qcd")}
    if isinstance(data.get("n_jets"), dict):
        blocks["n_jets"] = ("top", "qcd")
    check_blocks(data, blocks, str(path))
    config = GPTCurveConfig(**data)
    config.check(path)
    return config


# ----------------------------------------------------------------------------- stages
def make_splits(jets: dict[str, JetBatch], config: GPTCurveConfig
                ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(held-out, floor, training pool per class) jet indices, fixed by the seed; QCD jets
    are all in the pool. ``ValueError`` when the top jets are too few."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(jets["top"]))
    need_train = max(config.variant(v)["n_train"] for v in config.variants)
    a, b = config.n_eval, config.n_eval + config.floor_jets
    if len(order) < b + need_train:
        raise ValueError(f"top: {len(order)} jets, fewer than n_eval + n_floor + the largest "
                         f"n_train = {b + need_train}")
    return order[:a], order[a:b], {"top": order[b:], "qcd": rng.permutation(len(jets["qcd"]))}


def model_folder(full: dict[str, Any]) -> str:
    """``<n_train>-<8 hex digits of the model settings>``: variants that differ only in
    sampling share it."""
    text = json.dumps({k: full[k] for k in MODEL_KEYS}, sort_keys=True)
    return f"{full['n_train']}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def training_record(folder: Path) -> dict[str, Any]:
    """Best validation loss (nats per token), its epoch and the steps run, from the
    training's ``logs/metrics.csv``."""
    path = folder / "logs" / "metrics.csv"
    if not path.exists():
        return {}
    rows = pd.read_csv(path)
    val = rows.dropna(subset=["val/loss"]) if "val/loss" in rows else rows.iloc[:0]
    if not len(val):
        return {}
    best = val.loc[val["val/loss"].idxmin()]
    return {"val_loss": float(best["val/loss"]), "best_epoch": int(best["epoch"]),
            "steps": int(rows["step"].max()) + 1}


def sample_result(truth: JetBatch, sample: JetBatch, floor: JetBatch, tokenizer: Tokenizer,
                  folder: Path, config: GPTCurveConfig, title: str) -> dict[str, Any]:
    """:func:`jetfm.studies.omnijet.compare_sample` without its text and full table (the
    evaluation folder has them)."""
    out = compare_sample(truth, sample, floor, tokenizer, folder, n_bootstrap=config.n_bootstrap,
                         seed=config.seed, title=title)
    return {k: v for k, v in out.items() if k not in ("text", "table")}


def run_variant(entry: dict[str, Any], jets: dict[str, JetBatch], pools: dict[str, np.ndarray],
                held: tuple[JetBatch, JetBatch], tokens: Any, tokenizer: Tokenizer,
                config: GPTCurveConfig, out_dir: Path) -> dict[str, Any]:
    """Pre-train (or reuse) the variant's GPT, sample, evaluate; reused when its record
    matches."""
    full = config.variant(entry)
    cfg = config.omnijet(full)
    model_dir = out_dir / "models" / model_folder(full)
    start = time.perf_counter()
    backbone = pretrain(tokens, pools["top"][: full["n_train"]], tokenizer, cfg, model_dir,
                        tokens_file=out_dir / "tokens" / "top.parquet",
                        record={"n_train": full["n_train"]})
    seconds = time.perf_counter() - start
    seconds_file = model_dir / "pretrain" / "seconds.json"
    if not seconds_file.exists():  # trained now: its wall-clock time
        write_json(seconds_file, {"seconds": seconds})
    folder = out_dir / "variants" / full["name"]
    metrics_file = folder / "metrics.json"
    stage = Stage(out_dir, f"variants/{full['name']}", {**full, "n_eval": config.n_eval,
                  "n_floor": config.floor_jets, "n_bootstrap": config.n_bootstrap},
                  {"backbone": file_digest(backbone)}, [metrics_file], None)
    if stage.prepare():
        console.print(f"variant {full['name']}: reused")
        return json.loads(metrics_file.read_text())
    console.rule(f"variant {full['name']}: {full['n_train']} top jets, GPT {full['gpt']}, "
                 f"T = {full['temperature']}, top_k = {full['top_k']}")
    generated = generate_jets(backbone, tokenizer, cfg, folder)
    truth, floor = held
    result = {"variant": full, "model": model_folder(full),
              "training_seconds": json.loads(seconds_file.read_text())["seconds"],
              "training": training_record(model_dir / "pretrain"),
              "n_parameters": gpt_parameters(backbone),
              **sample_result(truth, generated, floor, tokenizer, folder / "evaluation",
                              config, f"Generated ({full['name']}) vs held-out truth top jets")}
    write_json(metrics_file, result)
    stage.finish()
    return result


def gpt_parameters(path: Path) -> int:
    """Trainable parameters of the generative model in ``path``: GPT and next-token head (not
    the fixed tokenizer, not buffers)."""
    backbone, head = load_generative(path)
    return sum(p.numel() for module in (backbone.gpt, head) for p in module.parameters())


# ----------------------------------------------------------------------------- summary
def _m(result: dict[str, Any], key: str) -> dict[str, Any]:
    return result["metrics"][key]


def meets_target(result: dict[str, Any], truth_tau32_median: float) -> bool:
    """Issue 13's generation target (module docstring)."""
    k = TARGET["floor_factor"]
    return (abs(result["tau32_median"] - truth_tau32_median) <= TARGET["tau32_median"]
            and all(_m(result, key)["value"] <= k * _m(result, key)["floor"]
                    for key in ("W1 tau32", "W1 mass")))


def row(result: dict[str, Any]) -> dict[str, Any]:
    """The README row of a variant (or of the tokenizer-only sample)."""
    full = result.get("variant", {})
    gpt = full.get("gpt", {})
    training = result.get("training", {})

    def cell(key: str, digits: int) -> str:
        m = _m(result, key)
        return f"{m['value']:.{digits}f} ({m['floor']:.{digits}f})"

    return {
        "variant": full.get("name", "tokenizer only"),
        "top train jets": full.get("n_train", "-"),
        "GPT dim x blocks": f"{gpt.get('dim', '-')} x {gpt.get('n_blocks', '-')}" if gpt
        else "-",
        "params": f"{result['n_parameters']:,}" if "n_parameters" in result else "-",
        "T / top-k": f"{full['temperature']} / {full['top_k'] or '-'}" if full else "-",
        "train s": round(result["training_seconds"]) if "training_seconds" in result else "-",
        "val loss": f"{training['val_loss']:.3f}" if training else "-",
        "tau32 median": f"{result['tau32_median']:.3f}",
        # from the stored masses: rows written before the estimator changed get it too
        "mass mode [GeV]": f"{mass_mode(np.asarray(result['values']['mass'], dtype=float)):.0f}",
        "W1 tau32 (floor)": cell("W1 tau32", 4),
        "W1 mass [GeV] (floor)": cell("W1 mass", 2),
        "W1 n (floor)": cell("W1 n_particles", 2),
        "C2ST AUC (floor)": cell("C2ST AUC jet features", 3),
    }


def plot_variants(truth: dict[str, np.ndarray], results: list[dict[str, Any]], out_dir: Path
                  ) -> list[Path]:
    """Truth vs the tokenizer-only sample and every variant, for tau32 and mass."""
    files = []
    for obs in ("tau32", "mass"):
        others = {r.get("variant", {}).get("name", "tokenizer only"):
                  np.asarray(r["values"][obs], dtype=float) for r in results}
        files.append(plot_distribution(np.asarray(truth[obs], dtype=float), others,
                                       out_dir / "plots" / f"{obs}.png",
                                       xlabel=f"{OBSERVABLE_LABELS[obs]} (top jets)",
                                       reference_label="Truth (tokenizer frame)"))
    return files


def run(config: GPTCurveConfig, out_dir: str | Path) -> dict[str, Any]:
    """The tokenizer, every variant (reused where its record matches), then ``table.md``,
    ``summary.md``, ``summary.json`` and the plots; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jets, data = load_jets(config, out_dir)
    eval_idx, floor_idx, pools = make_splits(jets, config)
    console.print(f"top jets: {len(eval_idx)} held out, {len(floor_idx)} floor, "
                  f"{len(pools['top'])} in the training pool")
    base = config.omnijet()
    tokenizer, _ = tokenizer_stage(jets, Splits(pools, eval_idx, {}), base, out_dir, data)
    tokens = tokenize_all(tokenizer, {"top": jets["top"]}, out_dir, {"data/top": data["data/top"]})
    truth, floor = jets["top"][eval_idx], jets["top"][floor_idx]
    results = [run_variant(v, jets, pools, (truth, floor), tokens["top"], tokenizer, config,
                           out_dir) for v in config.variants]
    stage = Stage(out_dir, "tokenizer_only", {"n_eval": config.n_eval,
                  "n_floor": config.floor_jets, "n_bootstrap": config.n_bootstrap},
                  {"tokenizer": tokenizer.fingerprint}, [out_dir / "tokenizer_only.json"], None)
    if stage.prepare():
        decoded = json.loads((out_dir / "tokenizer_only.json").read_text())
    else:
        decoded = sample_result(truth, tokenizer.reconstruct(floor), floor, tokenizer,
                                out_dir / "tokenizer_only" / "evaluation", config,
                                "Tokenizer only: decoded floor jets vs held-out truth top jets")
        write_json(out_dir / "tokenizer_only.json", decoded)
        stage.finish()
    obs_truth = jet_observables(tokenizer.in_frame(truth))
    truth_tau32 = float(np.nanmedian(obs_truth["tau32"]))
    rows = [row(decoded)] + [row(r) for r in results]
    table = markdown_table(rows)
    write_text_atomic(out_dir / "table.md", table + "\n")
    met = [r["variant"]["name"] for r in results if meets_target(r, truth_tau32)]
    plots = plot_variants(obs_truth, [decoded, *results], out_dir)
    truth_mode = mass_mode(obs_truth["mass"])
    text = "\n\n".join([
        "# GPT learning curve", f"Generated ({config.n_generate} per variant) vs {config.n_eval} "
        f"held-out truth top jets; in brackets the floor: {config.floor_jets} independent truth "
        "jets vs the same held-out jets. 'tokenizer only': those floor jets encoded and "
        "decoded, the best a GPT over these tokens can reach. val loss: best validation "
        f"cross-entropy, nats per token. Truth: tau32 median {truth_tau32:.3f}, mass mode "
        f"{truth_mode:.0f} GeV (peak of a kernel density estimate).", table,
        f"Variants meeting issue 13's target (tau32 median within {TARGET['tau32_median']} of "
        f"the truth's, W1(tau32) and W1(mass) <= {TARGET['floor_factor']:g}x floor): "
        + (", ".join(met) if met else "none")])
    write_text_atomic(out_dir / "summary.md", text + "\n")
    summary = {"rows": rows, "meets_target": met, "truth_tau32_median": truth_tau32,
               "truth_mass_mode": truth_mode, "tokenizer": tokenizer.fingerprint,
               "plots": [str(p) for p in plots], "config": asdict(config),
               "seconds": time.perf_counter() - start}
    write_json(out_dir / "summary.json", summary)
    return summary
