"""Tokenizer resolution study (``jetfm study tokenizer``): how well do tokens keep a jet?

For each variant of the config (a VQ-VAE or a feature codebook, with its size, training jets,
latent dimension, loss weighting, quantiser), a tokenizer is trained on top and QCD jets and
then held-out jets of each class are encoded and decoded. Decoded-vs-truth distances of the
jet observables (W1 and KL of mass, tau21, tau32, multiplicity; :func:`jetfm.metrics.evaluate.
evaluate_batches`, bootstrap errors) stand next to their floors: the same metric between the
truth jets and as many independent truth jets of the same class (disjoint from the evaluated
and the training jets). Truth jets are compared in the tokenizer's frame (its particle cuts,
truncation and massless constituents: :meth:`jetfm.models.tokenizer.Tokenizer.in_frame`), so
the numbers measure the tokenization alone. Also per variant: per-particle errors and codebook
use (:meth:`~jetfm.models.tokenizer.Tokenizer.resolution`), medians of mass and tau32, the
round-trip stability of the tokens (features decoded and encoded again; decoded jets encoded
again, which also moves the jet axis), and the training time.

Outputs (a rerun reuses every variant whose record matches, :class:`jetfm.studies.Stage`):

    data/{top,qcd}.root                  generated jets (or the config's files)
    variants/<name>/tokenizer.safetensors, resolution.json, metrics.json, eval_{top,qcd}/
    plots/{top,qcd}_{tau32,mass}.png     truth vs every variant's decoded jets (ratio panel)
    summary.json, table.md, summary.md   the table (README) and every metric

Issue 13's target: decoded top jets with W1(tau32) <= 0.03 and W1(mass) <= 3 GeV from a
tokenizer trained in <= 15 minutes on 2 cores; ``summary.md`` says which variants meet it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE_INT, Rule, check_fields, number
from jetfm.console import Console
from jetfm.data.batch import JetBatch
from jetfm.data.transforms import Preprocessing, omnijet_preprocessing
from jetfm.metrics.evaluate import evaluate_batches, tokenizer_frame
from jetfm.models.codebook import CodebookConfig
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAEConfig
from jetfm.physics.observables import OBSERVABLE_LABELS, jet_observables
from jetfm.plots.histograms import plot_distribution
from jetfm.report import markdown_table
from jetfm.studies import (
    HeldOutStudy,
    Stage,
    check_config_values,
    read_config,
    variant_entries,
    write_json,
)
from jetfm.studies.omnijet import load_jets  # top and QCD jets: the config's files or generated
from jetfm.tasks.omnijet import CODEBOOK_KEYS, VQVAE_KEYS, fit_token_model
from jetfm.tasks.training import TRAIN_KEYS, TrainConfig, check_blocks

console = Console(soft_wrap=True, emoji=False)

CLASSES = ("top", "qcd")
MODELS = ("vqvae", "codebook")
OBSERVABLES = ("mass", "tau21", "tau32", "n_particles")
VARIANT_KEYS = ("name", "model", "n_train", "vqvae", "codebook", "training", "subjet_order",
                "subjet_frame")
FRAME_KEYS = ("subjet_order", "subjet_frame")  # recorded only when a variant gives them
TARGET = {"tau32": 0.03, "mass": 3.0, "seconds": 15 * 60}  # issue 13: top jets, 2 cores


@dataclass
class TokenizerStudyConfig(HeldOutStudy):
    """The study; YAML files (``jetfm/configs/tokenizer_study_*.yaml``) fill it.

    ``n_jets`` generated per class (or ``files``: {top: path, qcd: path}); per class,
    ``n_eval`` held-out jets are decoded and ``n_floor`` (default ``n_eval``) independent
    ones give the floor, the rest is the training pool. A variant is ``name`` plus overrides
    of the defaults ``model`` (``vqvae`` or ``codebook``), ``n_train`` (jets per class),
    ``vqvae`` / ``codebook`` (model config fields, merged key by key into the defaults) and
    ``training`` (the VQ-VAE's :class:`~jetfm.tasks.training.TrainConfig` fields).
    """

    n_jets: int = 12000
    n_train: int = 5000
    model: str = "vqvae"
    vqvae: dict[str, Any] = field(default_factory=dict)
    codebook: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "default"}])
    n_bootstrap: int = 30

    def variant(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The full settings of variant ``entry``: the defaults with its overrides."""
        model = entry.get("model", self.model)
        out = {"name": entry["name"], "model": model,
               "n_train": entry.get("n_train", self.n_train)}
        if model == "vqvae":
            out["vqvae"] = {**self.vqvae, **entry.get("vqvae", {})}
            out["training"] = {**self.training, **entry.get("training", {})}
        else:
            out["codebook"] = {**self.codebook, **entry.get("codebook", {})}
        out.update({k: entry[k] for k in FRAME_KEYS if k in entry})
        return out

    def preprocessing(self, full: dict[str, Any]) -> Preprocessing:
        """The tokenizer preprocessing of variant ``full``; ``ValueError`` naming a bad key."""
        return omnijet_preprocessing(self.n_max, self.pt_min, full.get("subjet_order", 0),
                                     full.get("subjet_frame", False))

    def check(self, where: str | Path) -> None:
        """Every value and every variant, before any work: ``ValueError`` naming ``where``,
        the variant and the key."""
        check_config_values(where, [
            ("", lambda: check_fields(self, {
                "n_jets": POSITIVE_INT, "workers": POSITIVE_INT, "seed": Rule(int, low=0),
                "n_max": POSITIVE_INT, "n_eval": Rule(int, low=2),
                "n_floor": Rule(int, low=2, optional=True), "n_train": POSITIVE_INT,
                "n_bootstrap": Rule(int, low=2)})),
            ("", lambda: omnijet_preprocessing(self.n_max, self.pt_min))])
        if set(self.files) - set(CLASSES):
            unknown = sorted(set(self.files) - set(CLASSES))
            raise ValueError(f"{where}: files: unknown classes {unknown}; valid: "
                             f"{list(CLASSES)}")
        blocks = {"vqvae": VQVAE_KEYS, "codebook": CODEBOOK_KEYS, "training": TRAIN_KEYS}
        for entry, label in variant_entries(self.variants, where, VARIANT_KEYS, blocks):
            full = self.variant(entry)
            if full["model"] not in MODELS:
                raise ValueError(f"{label}: model {full['model']!r} is not one of "
                                 f"{list(MODELS)}")
            unused = [b for b in ("vqvae", "training", "codebook")
                      if entry.get(b) and b not in full]
            if unused:
                raise ValueError(f"{label}: {unused} do not apply to model {full['model']}")
            if full.get("subjet_frame") and full["model"] != "codebook":
                raise ValueError(f"{label}: subjet_frame needs model codebook")
            check_config_values(label, [("", lambda f=full: number("n_train", f["n_train"],
                                                                   POSITIVE_INT))])
            checks = [("", lambda f=full: self.preprocessing(f)),
                      ("codebook", lambda f=full: CodebookConfig(**{
                          "n_features": len(self.preprocessing(f).features), **f["codebook"]}))] \
                if full["model"] == "codebook" else [("", lambda f=full: self.preprocessing(f)),
                ("vqvae", lambda f=full: VQVAEConfig(**f["vqvae"])),
                ("training", lambda f=full: TrainConfig(**f["training"]))]
            check_config_values(label, checks)
        # generated classes: enough jets for the split, said before anything is generated
        need_train = max(self.variant(v)["n_train"] for v in self.variants)
        need = self.n_eval + self.floor_jets + need_train
        if set(CLASSES) - set(self.files) and self.n_jets < need:
            largest = [v["name"] for v in self.variants
                       if self.variant(v)["n_train"] == need_train]
            raise ValueError(f"{where}: n_jets: {self.n_jets} per class, fewer than n_eval + "
                             f"n_floor + the largest n_train (variants {largest}) = "
                             f"{self.n_eval} + {self.floor_jets} + {need_train} = {need}")


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TokenizerStudyConfig:
    """The config in YAML file ``path`` with the command-line ``KEY=VALUE`` ``overrides``
    (:func:`jetfm.studies.read_config`), every key checked (``ValueError`` naming the file,
    the variant and the key)."""
    data = read_config(path, TokenizerStudyConfig, overrides)
    check_blocks(data, {"vqvae": VQVAE_KEYS, "codebook": CODEBOOK_KEYS,
                        "training": TRAIN_KEYS, "files": CLASSES}, str(path))
    config = TokenizerStudyConfig(**data)
    config.check(path)
    return config


# ----------------------------------------------------------------------------- data
@dataclass
class Split:
    """Jet indices of one class: evaluated, floor, training pool (disjoint; fixed by the
    seed)."""

    evaluation: np.ndarray
    floor: np.ndarray
    pool: np.ndarray


def make_splits(jets: dict[str, JetBatch], config: TokenizerStudyConfig) -> dict[str, Split]:
    """One :class:`Split` per class; ``ValueError`` naming the class when it has too few jets
    for n_eval + n_floor + the largest n_train."""
    rng = np.random.default_rng(config.seed)
    need_train = max(config.variant(v)["n_train"] for v in config.variants)
    splits = {}
    for name in CLASSES:
        n = len(jets[name])
        need = config.n_eval + config.floor_jets + need_train
        if n < need:
            raise ValueError(f"{name}: {n} jets, fewer than n_eval + n_floor + the largest "
                             f"n_train = {config.n_eval} + {config.floor_jets} + {need_train}")
        order = rng.permutation(n)
        a, b = config.n_eval, config.n_eval + config.floor_jets
        splits[name] = Split(order[:a], order[a:b], order[b:])
    return splits


# ----------------------------------------------------------------------------- variants
def train_variant(full: dict[str, Any], jets: dict[str, JetBatch], splits: dict[str, Split],
                  config: TokenizerStudyConfig, folder: Path) -> tuple[Tokenizer, float]:
    """The variant's tokenizer, trained on ``n_train`` pool jets per class, and the
    seconds its training took (wall clock, this machine)."""
    batch = JetBatch.concatenate([jets[n][splits[n].pool[: full["n_train"]]] for n in CLASSES])
    start = time.perf_counter()
    tokenizer = fit_token_model(batch, full["model"], full[full["model"]],
                                {"progress": False, **full.get("training", {})}, config.n_max,
                                folder, config.seed, config.pt_min,
                                full.get("subjet_order", 0), full.get("subjet_frame", False))
    return tokenizer, time.perf_counter() - start


def round_trip(tokenizer: Tokenizer, jets: JetBatch) -> dict[str, float]:
    """Token stability of ``jets``: ``features`` = fraction of tokens unchanged when the
    decoded features are encoded again (1 exactly for a feature codebook); ``jets`` =
    fraction of tokens kept (per jet, as a multiset) when the decoded jets are encoded
    again, which also recomputes their axis; ``jets_identical`` = fraction of jets whose
    tokens are all kept."""
    codes, mask, _ = tokenizer.encode(jets)
    values = tokenizer.decode_values(codes, mask)
    again = tokenizer.encode_values(values, mask)
    features = float((again == codes)[mask].mean())
    decoded = tokenizer.decode(codes, mask)
    codes2, mask2, _ = tokenizer.encode(decoded)
    kept, identical = 0, 0
    for i in range(len(codes)):
        a = Counter(codes[i][mask[i]].tolist())
        b = Counter(codes2[i][mask2[i]].tolist())
        common = sum((a & b).values())
        kept += common
        identical += int(common == mask[i].sum() == mask2[i].sum())
    return {"features": features, "jets": kept / max(int(mask.sum()), 1),
            "jets_identical": identical / len(codes)}


def evaluate_variant(tokenizer: Tokenizer, jets: dict[str, JetBatch],
                     splits: dict[str, Split], config: TokenizerStudyConfig, folder: Path
                     ) -> dict[str, Any]:
    """Per class: the metrics of decoded vs truth jets with floors, medians, resolution and
    round trip."""
    frame, frame_name = tokenizer_frame(tokenizer)
    out: dict[str, Any] = {}
    for name in CLASSES:
        truth = jets[name][splits[name].evaluation]
        floor = jets[name][splits[name].floor]
        decoded = tokenizer.reconstruct(truth)
        result = evaluate_batches(
            truth, decoded, folder / f"eval_{name}", n_bootstrap=config.n_bootstrap,
            seed=config.seed, plots=False, frame=frame, frame_name=frame_name,
            floor_sample=floor, title=f"Decoded vs truth {name} jets")
        metrics = {f"{r['metric']} {r['observable']}": r for r in result.table
                   if r["observable"] in OBSERVABLES and r["metric"] in ("W1", "KL")}
        obs_truth = jet_observables(tokenizer.in_frame(truth))
        obs_decoded = jet_observables(decoded)
        medians = {f"{o}_median_{kind}": float(np.nanmedian(obs[o]))
                   for o in ("mass", "tau32") for kind, obs in (("truth", obs_truth),
                                                                ("decoded", obs_decoded))}
        out[name] = {"metrics": metrics, "medians": medians,
                     "resolution": tokenizer.resolution(truth),
                     "round_trip": round_trip(tokenizer, truth),
                     "values": {o: {"truth": obs_truth[o].tolist(),
                                    "decoded": obs_decoded[o].tolist()}
                                for o in ("mass", "tau32")}}
    return out


def run_variant(entry: dict[str, Any], jets: dict[str, JetBatch], splits: dict[str, Split],
                config: TokenizerStudyConfig, out_dir: Path, data: dict[str, str]
                ) -> dict[str, Any]:
    """Train and evaluate one variant (or reuse it when its record matches)."""
    full = config.variant(entry)
    folder = out_dir / "variants" / full["name"]
    keys = {"n_max": config.n_max, "pt_min": config.pt_min, "seed": config.seed,
            "n_eval": config.n_eval, "n_floor": config.floor_jets,
            "n_bootstrap": config.n_bootstrap}
    stage = Stage(out_dir, f"variants/{full['name']}", {**full, **keys}, data,
                  [folder / "tokenizer.safetensors", folder / "metrics.json"], folder)
    if stage.prepare():
        console.print(f"variant {full['name']}: reused ({folder})")
        return json.loads((folder / "metrics.json").read_text())
    console.rule(f"variant {full['name']}: {full['model']}, {full['n_train']} jets per class")
    try:
        tokenizer, seconds = train_variant(full, jets, splits, config, folder)
    except ValueError as err:  # e.g. more codes than training particles: name the variant
        raise ValueError(f"variant {full['name']}: {err}") from None
    result = {"variant": full, "training_seconds": seconds,
              "fingerprint": tokenizer.fingerprint,
              **evaluate_variant(tokenizer, jets, splits, config, folder)}
    write_json(folder / "metrics.json", result)
    stage.finish()
    return result


# ----------------------------------------------------------------------------- summary
def _metric(result: dict[str, Any], name: str, key: str) -> dict[str, Any]:
    return result[name]["metrics"][key]


def row(result: dict[str, Any]) -> dict[str, Any]:
    """The README row of a variant: top-jet W1(tau32), W1(mass) with floors, medians,
    per-particle errors, codebook use, round trip, training time."""
    full = result["variant"]
    model = full.get("vqvae") or full.get("codebook") or {}
    top = result["top"]
    w_tau, w_mass = _metric(result, "top", "W1 tau32"), _metric(result, "top", "W1 mass")
    q_mass = _metric(result, "qcd", "W1 mass")
    return {
        "variant": full["name"], "model": full["model"],
        "codes": model.get("codebook_size", VQVAEConfig.codebook_size
                           if full["model"] == "vqvae" else CodebookConfig.codebook_size),
        "train jets/class": full["n_train"],
        "train s": round(result["training_seconds"]),
        "top W1 tau32 (floor)": f"{w_tau['value']:.4f} ({w_tau['floor']:.4f})",
        "top W1 mass [GeV] (floor)": f"{w_mass['value']:.2f} ({w_mass['floor']:.2f})",
        "top tau32 median (truth)": f"{top['medians']['tau32_median_decoded']:.3f} "
                                    f"({top['medians']['tau32_median_truth']:.3f})",
        "QCD W1 mass [GeV] (floor)": f"{q_mass['value']:.2f} ({q_mass['floor']:.2f})",
        "eta_rel error": round(top["resolution"]["eta_rel_abs_error_mean"], 4),
        "codes used": f"{100 * top['resolution']['codebook_utilisation']:.0f} %",
        "round trip": f"{100 * top['round_trip']['jets']:.1f} %",
    }


def meets_target(result: dict[str, Any]) -> bool:
    """Issue 13's tokenizer target on top jets (module docstring)."""
    return (_metric(result, "top", "W1 tau32")["value"] <= TARGET["tau32"]
            and _metric(result, "top", "W1 mass")["value"] <= TARGET["mass"]
            and result["training_seconds"] <= TARGET["seconds"])


def plot_variants(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Truth vs every variant's decoded jets, per class, for tau32 and mass."""
    files = []
    for name in CLASSES:
        for obs in ("tau32", "mass"):
            truth = np.asarray(results[0][name]["values"][obs]["truth"], dtype=float)
            others = {r["variant"]["name"]: np.asarray(r[name]["values"][obs]["decoded"],
                                                       dtype=float) for r in results}
            files.append(plot_distribution(
                truth, others, out_dir / "plots" / f"{name}_{obs}.png",
                xlabel=f"{OBSERVABLE_LABELS[obs]} ({name} jets)",
                reference_label="Truth (tokenizer frame)"))
    return files


def full_table(results: list[dict[str, Any]]) -> str:
    """Every W1 / KL with its floor, per class and variant (Markdown)."""
    rows = []
    for r in results:
        for name in CLASSES:
            for key, m in r[name]["metrics"].items():
                rows.append({"variant": r["variant"]["name"], "class": name, "metric": key,
                             "decoded vs truth": f"{m['value']:.4g} +- {m['error']:.2g}",
                             "floor": f"{m['floor']:.4g} +- {m['floor_error']:.2g}"})
    return markdown_table(rows)


def run(config: TokenizerStudyConfig, out_dir: str | Path) -> dict[str, Any]:
    """Every variant (reused where its record matches), then ``table.md``, ``summary.md``,
    ``summary.json`` and the plots; returns the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jets, data = load_jets(config, out_dir)
    splits = make_splits(jets, config)
    console.print(f"per class: {config.n_eval} evaluated, {config.floor_jets} floor jets, "
                  f"{len(splits['top'].pool)} / {len(splits['qcd'].pool)} top / QCD in the "
                  "training pool")
    results = [run_variant(v, jets, splits, config, out_dir, data) for v in config.variants]
    rows = [row(r) for r in results]
    table = markdown_table(rows)
    write_text_atomic(out_dir / "table.md", table + "\n")
    met = [r["variant"]["name"] for r in results if meets_target(r)]
    plots = plot_variants(results, out_dir)
    verdict = (f"variants meeting the target (top W1(tau32) <= {TARGET['tau32']}, W1(mass) <= "
               f"{TARGET['mass']} GeV, training <= {TARGET['seconds'] // 60} min): "
               + (", ".join(met) if met else "none"))
    text = "\n\n".join([
        "# Tokenizer resolution study", f"Decoded vs truth held-out jets ({config.n_eval} per "
        f"class). Floor: the same metric between those truth jets and {config.floor_jets} "
        "independent truth jets of the class, the sampling noise of a sample this size; the "
        "decoded jets are the truth jets themselves, passed through the tokenizer, so a good "
        "tokenizer can fall below it (0 = perfect). Multiplicity rows are 0 by construction "
        "(decoding keeps the particle count). Table columns from 'top' on: top jets. 'round "
        "trip' = tokens kept when the decoded jets are tokenized again.", table, verdict,
        "## Every metric", full_table(results)])
    write_text_atomic(out_dir / "summary.md", text + "\n")
    summary = {"rows": rows, "meets_target": met, "plots": [str(p) for p in plots],
               "seconds": time.perf_counter() - start}
    write_json(out_dir / "summary.json", summary)
    return summary
