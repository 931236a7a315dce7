"""JetGPT extrapolation in jet multiplicity (``jetfm study jetgpt``), Spinner thesis ch. 5.

Z -> mu mu + jets events from the built-in Pythia source (:mod:`jetfm.data.zjets`) are split
into training, validation and test events. JetGPT variants (:mod:`jetfm.models.jetgpt`,
trained by :func:`jetfm.tasks.jetgpt.fit_jetgpt`) see only events with at most ``n_max_jets``
jets (thesis: 6), the 0-, 1- and 2-jet subsets capped to the size of the 3-jet one (thesis
Tab. 5.1), and generate up to ``n_extrapolate`` jets (thesis: 8):

* ``naive``: the full likelihood loss, Eq. (5.21) (thesis Sec. 5.2.1: does not extrapolate);
* ``bootstrap``: the full loss with generated ``n_max + 1``-jet events added (Sec. 5.2.2),
  starting from the trained ``naive`` model (``init_from``: the thesis' warm-up is a
  full-length training of the naive model);
* ``truncated``: Eq. (5.22)/(5.25), no Bernoulli term at ``n_max`` (Sec. 5.2.3);
* ``override``: Eqs. (5.29)-(5.31), the label at ``n_max`` from the pT-balance posterior with
  a staircase prior (Sec. 5.2.4, :mod:`jetfm.physics.staircase`), weight lambda.

Each variant is Bayesian (last layer): ``n_draws`` weight draws each generate ``n_sample``
events; every histogram is the mean over draws with the draws' standard deviation as band.

The truth: multiplicities and staircase ratios R_(n+1)/n of the test events, with every
event of more than ``n_max_jets`` jets of the whole sample (none is ever trained on) for the
7- and 8-jet kinematics and for R_(7/6), R_(8/7). The generated-vs-truth W1 distances of
those kinematics stand next to their floor: W1 between two disjoint halves of the truth, with
as many generated events as truth events in one half.

Outputs (a rerun reuses every stage whose record matches, :class:`jetfm.studies.Stage`)::

    data/zjets.h5                       simulated events (+ data summary in summary.json)
    models/<variant>/jetgpt.safetensors (+ logs/metrics.csv)
    samples/<variant>/draw<k>.h5        generated events per weight draw
    plots/multiplicity.png, plots/ratios.png, plots/<observable>_<n>j.png
    table.md, summary.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jetfm.atomic import write_text_atomic
from jetfm.checks import POSITIVE_INT, Rule, check_fields, from_mapping
from jetfm.console import Console
from jetfm.data.events import (
    Events,
    cap_low_multiplicities,
    concatenate_events,
    read_events,
    select_max_jets,
    write_events,
)
from jetfm.models.jetgpt import JetGPTConfig, load_jetgpt
from jetfm.models.jetgpt_inputs import EVENT_MODEL_FIELDS, EventPreprocessing
from jetfm.nn.bayesian import resample_bayesian, set_bayesian_mode
from jetfm.physics import staircase
from jetfm.physics.kinematics import delta_phi
from jetfm.plots.bands import plot_counts_with_bands, plot_with_bands
from jetfm.report import markdown_table
from jetfm.studies import (
    Stage,
    check_config_values,
    config_from_yaml,
    start_cell,
    write_json,
    zjets_events,
)
from jetfm.tasks.jetgpt import MODEL_FILE, SequenceData, fit_jetgpt
from jetfm.tasks.training import TrainConfig

console = Console()
VARIANT_KEYS = ("name", "loss", "bootstrap", "override_weight", "training", "init_from")
#: Kinematic observables of the extrapolated events (thesis Figs. 5.7, 5.9, 5.11).
OBSERVABLES = {
    "pt_j1": "Leading-jet $p_T$ [GeV]",
    "delta_r_j1j2": r"$\Delta R_{j_1 j_2}$",
    "pt_sum": r"$p_{T,\Sigma}$ (all objects) [GeV]",
}


@dataclass
class JetGPTStudyConfig:
    """The study (module docstring). ``zjets``: :class:`jetfm.data.zjets.ZJetsConfig` fields;
    ``n_events``: simulated events; ``test_fraction``/``val_fraction`` of them; ``model``:
    :class:`~jetfm.models.jetgpt.JetGPTConfig` size fields (the event representation's fields
    are set by the study); ``training``: :class:`~jetfm.tasks.training.TrainConfig` fields for
    every variant (a variant's own ``training`` block updates them); ``override``: the
    staircase prior and fit ranges of the override label (thesis: ratio 0.225, cap below 3,
    fits up to 6 and 5 jets, lambda 0.2)."""

    n_events: int = 1_000_000
    zjets: dict[str, Any] = field(default_factory=dict)
    workers: int = 2
    seed: int = 1
    n_max_jets: int = 6
    n_extrapolate: int = 8
    cap_below: int = 3
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    model: dict[str, Any] = field(default_factory=lambda: {"dim": 64, "n_blocks": 3,
                                                           "n_heads": 4, "bayesian": True})
    training: dict[str, Any] = field(default_factory=dict)
    variants: list[dict[str, Any]] = field(default_factory=lambda: [
        {"name": "naive", "loss": "full"}, {"name": "truncated", "loss": "truncated"}])
    override: dict[str, Any] = field(default_factory=lambda: {
        "ratio": 0.225, "cap_below": 3, "n_fit_complete": 6, "n_fit_slope": 5})
    n_draws: int = 5
    n_sample: int = 100_000
    sample_batch: int = 8192

    def __post_init__(self) -> None:
        """``ValueError`` naming the key: counts >= 1, ``n_extrapolate > n_max_jets >= 1``,
        fractions in (0, 0.5), distinct variant names with known keys and losses."""
        check_fields(self, {**dict.fromkeys(("n_events", "workers", "n_max_jets",
                                             "n_extrapolate", "n_draws", "n_sample",
                                             "sample_batch"), POSITIVE_INT),
                            "seed": Rule(int), "cap_below": Rule(int, low=0),
                            **dict.fromkeys(("test_fraction", "val_fraction"),
                                            Rule(float, low=0, high=0.5, low_open=True,
                                                 high_open=True))})
        if self.n_extrapolate <= self.n_max_jets:
            raise ValueError(f"n_extrapolate ({self.n_extrapolate}) must exceed n_max_jets "
                             f"({self.n_max_jets})")
        names = [v.get("name") for v in self.variants]
        if len(set(names)) != len(names) or None in names:
            raise ValueError(f"variants: need distinct names, got {names}")
        for v in self.variants:
            unknown = set(v) - set(VARIANT_KEYS)
            if unknown:
                raise ValueError(f"variants: {v['name']}: unknown keys {sorted(unknown)}; "
                                 f"valid: {list(VARIANT_KEYS)}")
            if v.get("loss", "full") not in ("full", "truncated", "override"):
                raise ValueError(f"variants: {v['name']}: loss {v.get('loss')!r}")
            if "init_from" in v and v["init_from"] not in names[:names.index(v["name"])]:
                raise ValueError(f"variants: {v['name']}: init_from {v['init_from']!r} must "
                                 "name an earlier variant (its trained model starts this one)")
        size_fields = set(JetGPTConfig.__dataclass_fields__) - set(EVENT_MODEL_FIELDS)
        unknown = set(self.model) - size_fields
        if unknown:
            raise ValueError(f"model: keys {sorted(unknown)} are not size fields of "
                             "JetGPTConfig (the event fields are set by the study)")
        self._check_blocks()

    def _check_blocks(self) -> None:
        """Every block built once before any work (data are simulated only after this), so a
        bad value stops the run at once with the block's name."""
        from jetfm.data.zjets import ZJetsConfig
        from jetfm.tasks.jetgpt import BootstrapConfig

        if not self.variants:
            raise ValueError("variants: give at least one (naive, bootstrap, truncated, "
                             "override)")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        check_config_values("", [
            ("zjets", lambda: ZJetsConfig(**self.zjets)),
            ("model", lambda: JetGPTConfig(**_model_config(self))),
            ("override", lambda: _check_override(self.override, self.n_max_jets)),
            *((f"variants: {v['name']}: training", lambda v=v: TrainConfig.from_overrides(
                {**self.training, **v.get("training", {})}, self.seed, "training"))
              for v in self.variants),
            *((f"variants: {v['name']}: bootstrap", lambda v=v: from_mapping(
                BootstrapConfig, v["bootstrap"], "bootstrap"))
              for v in self.variants if v.get("bootstrap") is not None)])

    @property
    def n_max_objects(self) -> int:
        return 2 + self.n_max_jets


def _check_override(override: dict[str, Any], n_max_jets: int) -> None:
    """The override block: exactly the keys ``ratio`` (> 0), ``cap_below`` (int >= 0),
    ``n_fit_complete`` and ``n_fit_slope`` (2 .. n_max_jets)."""
    keys = {"ratio", "cap_below", "n_fit_complete", "n_fit_slope"}
    if set(override) != keys:
        raise ValueError(f"keys {sorted(override)}; need exactly {sorted(keys)}")
    staircase.staircase_prior(n_max_jets + 1, override["ratio"], override["cap_below"])
    for key in ("n_fit_complete", "n_fit_slope"):
        value = override[key]
        if not isinstance(value, int) or not 2 <= value <= n_max_jets:
            raise ValueError(f"{key} must be an integer in [2, n_max_jets={n_max_jets}], "
                             f"got {value!r}")


# ----------------------------------------------------------------------------- data
def simulate(config: JetGPTStudyConfig, out_dir: Path) -> tuple[Events, str]:
    """The simulated events and the data stage's digest (:func:`jetfm.studies.zjets_events`)."""
    return zjets_events(out_dir, config.n_events, config.zjets, config.workers, config.seed)


@dataclass
class Split:
    train: Events
    val: Events
    test: Events  # all multiplicities, capped like the training events
    beyond: Events  # every event with more than n_max_jets jets (never trained on)
    n_jets_all: np.ndarray  # multiplicity of every simulated event
    removed: dict[str, Any]


def split_events(events: Events, config: JetGPTStudyConfig) -> Split:
    """Seeded test / validation / training split; training and validation keep at most
    ``n_max_jets`` jets; low multiplicities capped in each part (counts in ``removed``)."""
    order = np.random.default_rng(config.seed).permutation(len(events))
    n_test = int(round(config.test_fraction * len(events)))
    n_val = int(round(config.val_fraction * len(events)))
    test, val, train = (events[np.sort(order[a:b])] for a, b in (
        (0, n_test), (n_test, n_test + n_val), (n_test + n_val, len(events))))
    removed: dict[str, Any] = {}
    parts = {}
    for name, part in (("train", train), ("val", val)):
        kept, n_beyond = select_max_jets(part, config.n_max_jets)
        kept, capped = cap_low_multiplicities(kept, config.cap_below, seed=config.seed)
        parts[name] = kept
        removed[name] = {f"events with more than {config.n_max_jets} jets": n_beyond,
                         "capped (per n_jets)": {str(k): v for k, v in capped.items()}}
    test, capped = cap_low_multiplicities(test, config.cap_below, seed=config.seed)
    removed["test"] = {"capped (per n_jets)": {str(k): v for k, v in capped.items()}}
    beyond = events[events.n_jets > config.n_max_jets]
    return Split(parts["train"], parts["val"], test, beyond, events.n_jets, removed)


def override_labels(events: Events, config: JetGPTStudyConfig, fit: staircase.PtBalanceFit
                    ) -> np.ndarray:
    """Override label (thesis Eq. (5.30)) of each event with exactly ``n_max_jets`` jets
    (0 elsewhere, unused)."""
    labels = np.zeros(len(events), dtype=np.float32)
    at_max = events.n_jets == config.n_max_jets
    if at_max.any():
        sel = events[at_max]
        px, py = staircase.vector_sum_pt(sel.muons, sel.jets, sel.n_jets)
        o = config.override
        labels[at_max] = staircase.override_label(px, py, config.n_max_jets, fit,
                                                  config.n_extrapolate, o["ratio"],
                                                  o["cap_below"])
    return labels


# ----------------------------------------------------------------------------- models
def _model_config(config: JetGPTStudyConfig) -> dict[str, Any]:
    return {**config.model, **EVENT_MODEL_FIELDS}


def train_variant(variant: dict[str, Any], split: Split, prep: EventPreprocessing,
                  fit: staircase.PtBalanceFit | None, config: JetGPTStudyConfig,
                  out_dir: Path, data_digest: str, init: Path | None = None) -> Path:
    """Train one variant (reused while its record matches; ``init``: the model file of the
    variant it starts from); returns the model file."""
    from jetfm.atomic import file_digest

    name = variant["name"]
    folder = out_dir / "models" / name
    path = folder / MODEL_FILE
    keys = {"variant": variant, "model": config.model, "training": config.training,
            **{k: getattr(config, k) for k in ("n_max_jets", "n_extrapolate", "cap_below",
                                               "test_fraction", "val_fraction", "seed",
                                               "override")}}
    inputs = {"data": data_digest, **({"init": file_digest(init)} if init else {})}
    stage = Stage(out_dir, f"models/{name}", keys, inputs, [path])
    if stage.prepare():
        return path
    resuming = start_cell(stage, folder)  # a changed config empties the folder: no resume
    console.rule(f"JetGPT variant {name} ({variant.get('loss', 'full')} loss"
                 f"{', bootstrap' if variant.get('bootstrap') else ''})")
    loss = variant.get("loss", "full")
    data = {}
    for part in ("train", "val"):
        events = getattr(split, part)
        x, mask, report = prep.encode(events)
        label = override_labels(events, config, fit) if loss == "override" else None
        data[part] = SequenceData.of(x, mask, override_label=label)
        console.print(f"  {part}: {len(events):,} events; {report}")
    checkpoint = folder / "checkpoints" / "last.ckpt"
    fit_jetgpt(data["train"], data["val"], _model_config(config),
               {**config.training, **variant.get("training", {})}, folder, loss=loss,
               n_max=config.n_max_objects,
               override_weight=float(variant.get("override_weight", 0.2)),
               bootstrap=variant.get("bootstrap"), meta={"preprocessing": prep.to_dict()},
               seed=config.seed, resume=checkpoint if resuming and checkpoint.exists()
               else None, init=init)
    stage.finish()
    return path


def sample_variant(name: str, model_path: Path, config: JetGPTStudyConfig, out_dir: Path
                   ) -> list[tuple[Events, dict[str, int]]]:
    """``n_draws`` samples, one Bayesian weight draw each; events that want more than
    ``n_extrapolate`` jets are discarded and counted (thesis Sec. 5.1.4 "Sampling")."""
    from jetfm.atomic import file_digest

    model, meta = load_jetgpt(model_path)
    prep = EventPreprocessing(**meta["preprocessing"])
    results = []
    for k in range(config.n_draws):
        path = out_dir / "samples" / name / f"draw{k}.h5"
        keys = {"n_sample": config.n_sample, "n_extrapolate": config.n_extrapolate,
                "seed": config.seed, "draw": k}
        stage = Stage(out_dir, f"samples/{name}/draw{k}", keys,
                      {"model": file_digest(model_path)}, [path])
        if not stage.prepare():
            generator = torch.Generator().manual_seed(config.seed * 1000 + k)
            if model.config.bayesian:
                set_bayesian_mode(model, "fixed")
                resample_bayesian(model, generator)
            begin = _now()
            out = model.sample(config.n_sample, 0, max_objects=2 + config.n_extrapolate,
                               seed=config.seed * 1000 + k, batch_size=config.sample_batch)
            seconds = _now() - begin
            keep = ~out.overflow
            events = prep.decode(out.x[keep].numpy(), out.mask[keep].numpy(),
                                 rng=np.random.default_rng(k))
            events.meta.update({"variant": name, "draw": k, "seconds": seconds,
                                "overflow": int(out.overflow.sum()),
                                "n_sample": config.n_sample})
            write_events(events, path)
            stage.finish()
        events = read_events(path)
        results.append((events, {"overflow": int(events.meta["overflow"]),
                                 "seconds": float(events.meta["seconds"])}))
    return results


def _now() -> float:
    import time

    return time.perf_counter()


# ----------------------------------------------------------------------------- analysis
def kinematics(events: Events) -> dict[str, np.ndarray]:
    """Per event: leading-jet pT [GeV], Delta R of the two leading jets, and pT of the vector
    sum of all objects [GeV] (events with >= 2 jets)."""
    j = events.jets
    px, py = staircase.vector_sum_pt(events.muons, events.jets, events.n_jets)
    dr = np.hypot(j[:, 0, 1] - j[:, 1, 1], delta_phi(j[:, 0, 2], j[:, 1, 2]))
    return {"pt_j1": j[:, 0, 0], "delta_r_j1j2": dr, "pt_sum": np.hypot(px, py)}


def _w1_with_floor(truth: np.ndarray, generated: list[np.ndarray], seed: int
                   ) -> tuple[float, float, float]:
    """W1(generated, truth half A) with as many generated events as truth events in half B:
    mean and standard deviation over the draws; and the floor W1(half B, half A)."""
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(truth))
    a, b = truth[order[: len(truth) // 2]], truth[order[len(truth) // 2:]]
    values = [wasserstein_distance(g[rng.permutation(len(g))[: len(b)]], a)
              for g in generated if len(g)]
    return (float(np.mean(values)) if values else float("nan"),
            float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
            float(wasserstein_distance(b, a)) if len(a) and len(b) else float("nan"))


def analyse(samples: dict[str, list[tuple[Events, dict[str, int]]]], split: Split,
            config: JetGPTStudyConfig, out_dir: Path) -> dict[str, Any]:
    """Multiplicity fractions, staircase ratios and 7-/8-jet kinematics vs truth: plots,
    ``table.md`` and the returned summary."""
    n_ext = config.n_extrapolate
    ns = np.arange(n_ext + 1)
    counts, t_ratios, t_err = staircase.staircase_ratios(split.test.n_jets, n_ext)
    truth_frac = counts / counts.sum()
    truth_frac_err = np.sqrt(counts) / counts.sum()
    # ratios: from every simulated event where capping does not act (n >= cap_below; the
    # events above n_max_jets are never trained on), from the capped test events below
    _, a_ratios, a_err = staircase.staircase_ratios(split.n_jets_all, n_ext)
    use_all = ns[:-1] >= config.cap_below
    ratio_truth = np.where(use_all, a_ratios, t_ratios)
    ratio_truth_err = np.where(use_all, a_err, t_err)

    fractions, ratios, rows = {}, {}, []
    kin_truth = {n: kinematics(split.beyond[split.beyond.n_jets == n])
                 for n in range(config.n_max_jets + 1, n_ext + 1)}
    kin_gen: dict[str, dict[int, dict[str, list[np.ndarray]]]] = {}
    for name, draws in samples.items():
        f, r = [], []
        kin_gen[name] = {n: {o: [] for o in OBSERVABLES} for n in kin_truth}
        for events, _ in draws:
            c, rr, _ = staircase.staircase_ratios(events.n_jets, n_ext)
            f.append(c / max(c.sum(), 1))
            r.append(rr)
            for n in kin_truth:
                kin = kinematics(events[events.n_jets == n])
                for o in OBSERVABLES:
                    kin_gen[name][n][o].append(kin[o])
        fractions[name], ratios[name] = np.array(f), np.array(r)
        overflow = sum(d[1]["overflow"] for d in draws)
        row: dict[str, Any] = {"variant": name,
                               "overflow": f"{overflow / (len(draws) * config.n_sample):.1e}"}
        for n in range(config.n_max_jets, n_ext):
            mean, std = np.nanmean(ratios[name][:, n]), np.nanstd(ratios[name][:, n])
            row[f"R_({n + 1}/{n})"] = f"{mean:.3f} ± {std:.3f}"
        for n in kin_truth:
            for o in ("pt_j1", "pt_sum"):
                w1, spread, floor = _w1_with_floor(kin_truth[n][o], kin_gen[name][n][o],
                                                   config.seed)
                row[f"W1 {o} {n}j [GeV]"] = f"{w1:.1f} ± {spread:.1f} ({floor:.1f})"
        rows.append(row)
    truth_row: dict[str, Any] = {"variant": "truth", "overflow": "-"}
    for n in range(config.n_max_jets, n_ext):
        truth_row[f"R_({n + 1}/{n})"] = f"{ratio_truth[n]:.3f} ± {ratio_truth_err[n]:.3f}"
    for n in kin_truth:
        for o in ("pt_j1", "pt_sum"):
            truth_row[f"W1 {o} {n}j [GeV]"] = f"floor ({len(kin_truth[n][o])} events)"
    rows.insert(0, truth_row)

    plots = out_dir / "plots"
    plot_counts_with_bands(truth_frac, truth_frac_err, fractions, ns,
                           plots / "multiplicity.png", xlabel="Number of jets",
                           ylabel="Fraction of events", vline=config.n_max_jets + 0.5,
                           vline_label="trained up to here")
    plot_counts_with_bands(ratio_truth, ratio_truth_err, ratios, ns[1:] - 0.5,
                           plots / "ratios.png", xlabel="n + 1/2",
                           ylabel=r"$R_{(n+1)/n}$", logy=False,
                           vline=config.n_max_jets + 0.5, ratio_range=(0.0, 3.0))
    for n, truth_kin in kin_truth.items():
        for o, label in OBSERVABLES.items():
            if not len(truth_kin[o]):
                continue
            # bins follow the truth (its 0.5-99.5 % range, widened by a quarter on each side):
            # a generator far off shows up in the ratio panel's arrows, not as a wider axis
            lo, hi = np.quantile(truth_kin[o], [0.005, 0.995])
            lo, hi = max(lo - 0.25 * (hi - lo), 0.0), hi + 0.25 * (hi - lo)
            plot_with_bands(truth_kin[o], {k: g[n][o] for k, g in kin_gen.items()},
                            np.linspace(lo, hi, 21), plots / f"{o}_{n}j.png", xlabel=label,
                            ylabel="Normalised" + (" [1/GeV]" if "GeV" in label else ""),
                            title=f"Z + {n} jets (trained on <= {config.n_max_jets} jets)")
    table = markdown_table(rows)
    write_text_atomic(out_dir / "table.md", table + "\n")
    return {"truth_counts_test": counts.tolist(), "truth_ratios": ratio_truth.tolist(),
            "truth_ratio_errors": ratio_truth_err.tolist(),
            "fractions": {k: v.tolist() for k, v in fractions.items()},
            "ratios": {k: np.nan_to_num(v, nan=-1).tolist() for k, v in ratios.items()},
            "table": rows, "truth_beyond": {str(n): int((split.beyond.n_jets == n).sum())
                                            for n in kin_truth}}


# ----------------------------------------------------------------------------- run
def run(config: JetGPTStudyConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole study (module docstring); returns the summary written to summary.json."""
    out_dir = Path(out_dir)
    begin = _now()
    events, data_digest = simulate(config, out_dir)
    counts, ratios, errors = staircase.staircase_ratios(events.n_jets)
    console.print("data: exclusive jet counts " + " ".join(map(str, counts.tolist())))
    console.print("data: R_(n+1)/n " + " ".join("n/a" if np.isnan(r) else f"{r:.3f}±{e:.3f}"
                                                for r, e in zip(ratios, errors, strict=True)))
    split = split_events(events, config)
    console.print(f"split: {len(split.train):,} training, {len(split.val):,} validation, "
                  f"{len(split.test):,} test events; {len(split.beyond):,} simulated events "
                  f"(all parts) with more than {config.n_max_jets} jets")
    prep = EventPreprocessing.fit(split.train)
    fit = None
    if any(v.get("loss") == "override" for v in config.variants):
        o = config.override
        widths, n_counts = staircase.pt_balance_widths(split.train.muons, split.train.jets,
                                                       split.train.n_jets, config.n_max_jets)
        fit = staircase.fit_pt_balance(widths, n_counts, o["n_fit_complete"],
                                       o["n_fit_slope"])
        console.print(f"pT-balance fit (Eq. 5.27): sigma(k;k) = {fit.a:.2f} k + {fit.b:.2f} "
                      f"GeV, 1/m_k = {fit.c:.4f} k + {fit.d:.4f} /GeV")
    samples = {}
    paths: dict[str, Path] = {}
    for variant in config.variants:
        init = paths[variant["init_from"]] if "init_from" in variant else None
        path = paths[variant["name"]] = train_variant(variant, split, prep, fit, config,
                                                      out_dir, data_digest, init)
        samples[variant["name"]] = sample_variant(variant["name"], path, config, out_dir)
    summary = analyse(samples, split, config, out_dir)
    summary["data"] = {"counts": counts.tolist(), "ratios": np.nan_to_num(ratios, nan=-1)
                       .tolist(), "ratio_errors": np.nan_to_num(errors, nan=-1).tolist(),
                       "split": split.removed, "n_train": len(split.train)}
    if fit is not None:
        summary["pt_balance_fit"] = {k: getattr(fit, k) for k in ("a", "b", "c", "d")}
    summary["config"] = asdict(config)
    summary["seconds"] = _now() - begin
    write_json(out_dir / "summary.json", summary)
    write_text_atomic(out_dir / "summary.md", _summary_markdown(summary, config))
    return summary


def _removed_text(what: dict[str, Any]) -> str:
    parts = []
    for key, value in what.items():
        if isinstance(value, dict):
            value = ", ".join(f"n = {n}: {c:,}" for n, c in value.items()) or "none"
            parts.append(f"{key}: {value}")
        else:
            parts.append(f"{key}: {value:,}")
    return "; ".join(parts)


def _summary_markdown(summary: dict[str, Any], config: JetGPTStudyConfig) -> str:
    """summary.md: the data's multiplicities and staircase ratios, the split, the pT-balance
    fit and the table."""
    data = summary["data"]
    ratios = " ".join("n/a" if r < 0 else f"{r:.3f} ± {e:.3f}"
                      for r, e in zip(data["ratios"], data["ratio_errors"], strict=True))
    lines = [f"# JetGPT extrapolation: trained on <= {config.n_max_jets} jets, generated up to "
             f"{config.n_extrapolate}", "",
             f"Simulated events: {sum(data['counts']):,}; exclusive jet counts n = 0, 1, ...: "
             f"{', '.join(f'{c:,}' for c in data['counts'])}.", "",
             f"Staircase ratios R_(n+1)/n of the simulated events: {ratios}.", "",
             f"Training events: {data['n_train']:,}. Removed by the split:", "",
             *(f"- {part}: {_removed_text(what)}" for part, what in data["split"].items()),
             ""]
    if "pt_balance_fit" in summary:
        f = summary["pt_balance_fit"]
        lines += [f"pT-balance fit (thesis Eq. 5.27): sigma(k;k) = {f['a']:.2f} k + "
                  f"{f['b']:.2f} GeV, 1/m_k = {f['c']:.4f} k + {f['d']:.4f} 1/GeV.", ""]
    lines += [f"Ratios: mean ± standard deviation over the {config.n_draws} Bayesian weight "
              f"draws of {config.n_sample:,} sampled events each (truth: statistical error; "
              f"for n < {config.cap_below} from the capped test events, else from every "
              "simulated event). overflow: fraction of sampled events that wanted more than "
              f"{config.n_extrapolate} jets (discarded). W1 of the extrapolated events' "
              "kinematics, mean ± standard deviation over the draws, floor in brackets: two "
              "disjoint halves of "
              "the truth, as many generated events as in one half; with few truth events "
              "both are noisy.", "", markdown_table(summary["table"]), ""]
    lines.append(f"Run time {summary['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def load_config(path: str | Path, overrides: tuple[str, ...] = ()) -> JetGPTStudyConfig:
    return config_from_yaml(path, JetGPTStudyConfig, overrides)


__all__ = ["JetGPTStudyConfig", "run", "load_config", "split_events", "kinematics",
           "concatenate_events"]
