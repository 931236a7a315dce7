"""Generated-vs-reference evaluation on :class:`~jetfm.data.JetBatch` samples, and tagging.

:func:`evaluate_batches` (and :func:`evaluate_files`, which reads the files first) computes

* KL divergence and Wasserstein-1 (:mod:`jetfm.metrics.generation`) of the jet observables
  :data:`JET_OBSERVABLES` and of the particle features :data:`PARTICLE_FEATURES` (all particles
  of all jets pooled), each with a seeded bootstrap uncertainty (jets are resampled);
* FPD and KPD (:mod:`jetfm.metrics.distances`) and the classifier two-sample AUC
  (:mod:`jetfm.metrics.two_sample`) on the per-jet feature vector :data:`DISTANCE_FEATURES`
  (rows ``FPD(8 obs)``, ``KPD(8 obs)``: 8 jet observables, not comparable with published
  tables);
* FPD, KPD and W1 in jetnet's definitions (:mod:`jetfm.metrics.efp`), from the particles: rows
  ``FPD(EFP, jetnet)`` and ``KPD(EFP, jetnet)`` on the 36 energy-flow polynomials with d <= 4,
  ``W1(EFP, jetnet)`` averaged over the 5 with n = d = 4 (the numbers of published tables).
  jetnet's batch sizes (FPD 20,000 - 50,000, KPD 5,000, W1 50,000) need 50,000 jets per sample;
  with fewer they are scaled down as for ``FPD(8 obs)`` (min(N, 50,000) and 0.4 of it,
  min(N, 5,000), min(N, 50,000)) and the row's note says so;
* for every number the statistical floor: the same metric between two independent reference
  samples, one of the generated size (:func:`jetfm.metrics.generation.floor_split`). When the
  reference holds fewer than twice as many jets as the generated sample, the floor is
  unavailable and the generated sample is compared with the full reference.

**Frame.** A generator's jets live in its own frame: a tokenizer's particle cuts, its ``n_max``
truncation and its massless particles around the jet axis (``jetfm sample``). Comparing them
with raw truth measures the frame, not the generator. ``frame`` (a callable JetBatch ->
JetBatch; :func:`tokenizer_frame` gives a tokenizer's, used by ``jetfm evaluate --tokenizer``)
is applied to the whole reference before the floor split, so generated jets, reference and
floor are all in the same frame; ``frame_name`` says which, and the table title,
``report.md`` and :meth:`EvaluationResult.format` name it ("raw reference" without a frame).

Inputs are checked as in :mod:`jetfm.metrics.inputs`: each sample (and the reference after the
frame) needs at least two jets (FPD, KPD and the two-sample test estimate spreads), else a
``ValueError`` naming the sample and its files. Non-finite values (tau21/tau32 of jets with one
or two constituents, observables of empty jets) are removed per observable and counted in the
table; nothing is dropped silently. Plots (one histogram with ratio panel per observable) and
``report.md`` go to ``out_dir``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
from tqdm import tqdm

from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.data.summary import zero_pt_particles
from jetfm.metrics.distances import fpd, kpd
from jetfm.metrics.efp import W1EFP_INDICES, batch_efps, jetnet_fpd, jetnet_kpd, w1efp
from jetfm.metrics.generation import (
    Estimate,
    bootstrap,
    check_n_bootstrap,
    floor_split,
    kl_fixed_bins,
    wasserstein1,
)
from jetfm.metrics.inputs import require_jets
from jetfm.metrics.tagging import binary_summary
from jetfm.metrics.two_sample import classifier_two_sample_auc
from jetfm.physics.observables import OBSERVABLE_LABELS, jet_observables
from jetfm.plots.histograms import plot_distribution
from jetfm.plots.roc import plot_roc
from jetfm.report import Report, format_value, write_table

if TYPE_CHECKING:
    from jetfm.models.tokenizer import Tokenizer

JET_OBSERVABLES: tuple[str, ...] = ("pt", "mass", "tau21", "tau32", "n_particles")
PARTICLE_FEATURES: tuple[str, ...] = ("pt_rel", "eta_rel", "phi_rel")
PARTICLE_LABELS: dict[str, str] = {
    "pt_rel": r"$p_T / p_T^{jet}$",
    "eta_rel": r"$\eta - \eta^{jet}$",
    "phi_rel": r"$\phi - \phi^{jet}$ [rad]",
}
DISTANCE_FEATURES: tuple[str, ...] = (
    "pt", "mass", "sdmass", "n_particles", "tau1", "tau2", "tau3", "tau4",
)
EFP_FEATURES: str = "36 EFPs (d <= 4)"
W1_EFP_FEATURES: str = "mean of 5 EFPs (n = d = 4, prime)"
"""The ``observable`` of the jetnet-definition rows (:mod:`jetfm.metrics.efp`)."""
RAW_FRAME: str = "raw reference"
TABLE_COLUMNS: tuple[str, ...] = (
    "metric", "observable", "value", "error", "floor", "floor_error",
    "n_generated", "n_reference", "removed_generated", "removed_reference", "note",
)
ZERO_PT_REASON: str = "pT = 0 (zero weight, no direction)"
UNDEFINED_WHEN: dict[str, str] = {
    "tau21": "tau21 needs >= 2 particles",
    "tau32": "tau32 needs >= 3 particles",
}
"""Why a jet observable can be non-finite, for the table's note on an undefined metric."""


@dataclass
class MetricRow:
    """One metric on one observable: generated vs reference, and its floor (None: unavailable).

    ``removed_*``: non-finite entries (jets, or particles for particle features) removed before
    computing the metric.
    """

    metric: str
    observable: str
    value: Estimate
    floor: Estimate | None
    n_generated: int
    n_reference: int
    removed_generated: int = 0
    removed_reference: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "observable": self.observable,
            "value": self.value.value,
            "error": self.value.error,
            "floor": None if self.floor is None else self.floor.value,
            "floor_error": None if self.floor is None else self.floor.error,
            "n_generated": self.n_generated,
            "n_reference": self.n_reference,
            "removed_generated": self.removed_generated,
            "removed_reference": self.removed_reference,
            "note": "; ".join(dict.fromkeys(
                e.note for e in (self.value, self.floor) if e is not None and e.note)),
        }


@dataclass
class EvaluationResult:
    """Rows of the metric table, how the floor was obtained, the reference's frame and the
    files written."""

    rows: list[MetricRow]
    floor_method: str
    selections: list[SelectionReport] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    frame: str = RAW_FRAME
    title: str = ""  # which model / class / samples: the first line of format()

    @property
    def table(self) -> list[dict[str, Any]]:
        return [row.as_dict() for row in self.rows]

    def format(self) -> str:
        """Plain-text table: value ± error next to floor ± error for every metric, under its
        title (the samples compared) when it has one."""
        header = ("metric", "observable", "gen vs ref", "floor (ref vs ref)", "N gen / ref",
                  "non-finite removed")
        lines = [header]
        for r in self.rows:
            # notes (why a number is n/a) are listed below the table
            floor = "unavailable" if r.floor is None else str(replace(r.floor, note=""))
            lines.append((
                r.metric, r.observable, str(replace(r.value, note="")), floor,
                f"{r.n_generated} / {r.n_reference}",
                f"{r.removed_generated} / {r.removed_reference}",
            ))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
        text.insert(1, "  ".join("-" * w for w in widths))
        notes = [f"{r.metric} {r.observable}: {r.as_dict()['note']}" for r in self.rows
                 if r.as_dict()["note"]]
        notes += [f"{s.n_removed} particle(s) with pT = 0 left out of the particle metrics "
                  f"({s.name}: {s.n_after} kept)" for s in self.selections
                  if s.removed.get(ZERO_PT_REASON)]
        title = [self.title, "=" * len(self.title)] if self.title else []
        return "\n".join(title + text + ["", f"Reference: {self.frame}",
                                          f"Floor: {self.floor_method}"]
                         + [f"Note: {n}" for n in notes])


def tokenizer_frame(tokenizer: Tokenizer) -> tuple[Callable[[JetBatch], JetBatch], str]:
    """(frame, frame_name) for :func:`evaluate_batches`: jets put through ``tokenizer``'s
    preprocessing (:meth:`~jetfm.models.tokenizer.Tokenizer.in_frame`), the frame of its
    sampled jets, named "reference in the frame of tokenizer <fingerprint>"."""
    name = f"reference in the frame of tokenizer {tokenizer.fingerprint}"
    return tokenizer.in_frame, name


def _files(batch: JetBatch) -> str:
    """The files a batch came from, for messages."""
    return ", ".join(map(str, batch.source_files)) or "<memory>"


def _finite(values: Any, name: str) -> tuple[Any, SelectionReport]:
    """Finite entries of a per-jet (numpy) or per-particle (awkward) array, with a count."""
    if isinstance(values, ak.Array):
        kept = values[np.isfinite(values)]
        n_before, n_after = int(ak.count(values)), int(ak.count(kept))
    else:
        values = np.asarray(values, dtype=np.float64)
        kept = values[np.isfinite(values)]
        n_before, n_after = len(values), len(kept)
    return kept, SelectionReport(name, n_before, n_after, {"non-finite": n_before - n_after})


def _size(values: Any) -> int:
    """Number of values of a per-jet (numpy) or per-particle (awkward) array."""
    return int(ak.count(values)) if isinstance(values, ak.Array) else len(values)


def _flat(values: Any) -> np.ndarray:
    """All values of a per-jet (numpy) or per-particle (awkward, pooled) array, (n,)."""
    return ak.to_numpy(ak.flatten(values)) if isinstance(values, ak.Array) else values


def _kl(generated: Any, reference: Any, n_bootstrap: int, seed: int) -> Estimate:
    """Bootstrapped KL on the bins of the full samples (:func:`kl_fixed_bins`), per jet or
    on all particles pooled."""
    kl = kl_fixed_bins(_flat(generated), _flat(reference))
    return bootstrap(lambda g, r: kl(_flat(g), _flat(r)), generated, reference, n_bootstrap,
                     seed)


def _w1(generated: Any, reference: Any, n_bootstrap: int, seed: int) -> Estimate:
    """Bootstrapped W1, per jet or on all particles pooled."""
    return bootstrap(lambda g, r: wasserstein1(_flat(g), _flat(r)), generated, reference,
                     n_bootstrap, seed)


def _distance_matrix(obs: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, SelectionReport]:
    matrix = np.stack([np.asarray(obs[f], dtype=np.float64) for f in DISTANCE_FEATURES], axis=1)
    good = np.isfinite(matrix).all(axis=1)
    report = SelectionReport(name, len(matrix), int(good.sum()), {"non-finite": int((~good).sum())})
    return matrix[good], report


def _efp_matrix(batch: JetBatch, name: str) -> tuple[np.ndarray, SelectionReport]:
    """The 36 d <= 4 EFPs of every jet (:func:`jetfm.metrics.efp.batch_efps`), (n_kept, 36);
    jets with a non-finite pt_rel (jet pT = 0) removed and counted."""
    matrix = batch_efps(batch)
    good = np.isfinite(matrix).all(axis=1)
    report = SelectionReport(name, len(matrix), int(good.sum()), {"non-finite": int((~good).sum())})
    return matrix[good], report


def evaluate_batches(
    reference: JetBatch,
    generated: JetBatch,
    out_dir: str | Path,
    *,
    n_bootstrap: int = 100,
    seed: int = 0,
    html: bool = False,
    plots: bool = True,
    title: str = "Generated vs reference jets",
    frame: Callable[[JetBatch], JetBatch] | None = None,
    frame_name: str | None = None,
    floor_sample: JetBatch | None = None,
) -> EvaluationResult:
    """Every generation metric with bootstrap error and floor; table, report and (``plots``)
    one histogram per observable in ``out_dir``.

    ``frame``: applied to ``reference`` (and ``floor_sample``) before anything else (module
    docstring); ``frame_name`` describes it in the outputs (default: the callable's name).

    ``floor_sample``: true jets disjoint from ``reference`` and from every jet that seeded or
    conditioned ``generated`` (ideally as many as ``generated``); the floor is then the metric
    of ``floor_sample`` vs the whole ``reference``. Without it the reference is split at random
    (:func:`jetfm.metrics.generation.floor_split`), which is like-for-like only when no
    reference jet seeded the generated sample.

    Particle-level metrics leave out particles with pT = 0 (zero weight, no direction) and
    count them in ``selections``. Raises ``ValueError`` for a sample with fewer than two jets
    or ``n_bootstrap`` < 2.
    """
    check_n_bootstrap(n_bootstrap)
    require_jets(len(generated), f"generated sample ({_files(generated)})", 2)
    require_jets(len(reference), f"reference sample ({_files(reference)})", 2)
    if floor_sample is not None:
        require_jets(len(floor_sample), f"floor sample ({_files(floor_sample)})", 2)
    frame_text = RAW_FRAME
    if frame is not None:
        frame_text = frame_name or f"reference through {getattr(frame, '__name__', frame)!s}"
        reference = frame(reference)
        require_jets(len(reference), f"reference sample ({_files(reference)}) in {frame_text}", 2)
        if floor_sample is not None:
            floor_sample = frame(floor_sample)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_gen, n_ref_total = len(generated), len(reference)
    split = None if floor_sample is not None else floor_split(n_ref_total, n_gen, seed)
    if floor_sample is not None:
        ref_idx, floor_idx = np.arange(n_ref_total), None
        floor_method = (
            f"a floor sample of {len(floor_sample)} true jets given by the caller (disjoint "
            f"from the reference and from the jets that seeded the generated sample) compared "
            f"with the same {n_ref_total} reference jets as the {n_gen} generated jets"
        )
    elif split is None:
        ref_idx, floor_idx = np.arange(n_ref_total), None
        floor_method = (
            f"unavailable: the reference has {n_ref_total} jets, fewer than twice the "
            f"{n_gen} generated jets; generated jets are compared with the full reference"
        )
    else:
        ref_idx, floor_idx = split.reference, split.pseudo_generated
        floor_method = (
            f"reference split at random (seed {seed}) into {len(floor_idx)} pseudo-generated "
            f"jets and {len(ref_idx)} reference jets; the floor compares the two, the generated "
            f"sample is compared with the same {len(ref_idx)} reference jets"
        )
    samples = {"generated": generated, "reference": reference[ref_idx]}
    if floor_sample is not None:
        samples["floor"] = floor_sample
    elif floor_idx is not None:
        samples["floor"] = reference[floor_idx]

    observables = {k: jet_observables(b) for k, b in samples.items()}
    rows: list[MetricRow] = []
    selections: list[SelectionReport] = []
    files: list[Path] = []

    def metric_row(metric: str, observable: str, compute: Callable[[Any, Any], Estimate],
                   inputs: dict[str, Any]) -> None:
        finite = {k: _finite(v, f"{k} {observable}") for k, v in inputs.items()}
        selections.extend(report for _, report in finite.values())
        ref = finite["reference"][0]

        def safe(key: str) -> Estimate:
            # no finite value left (e.g. tau32 of jets with < 3 particles): NaN, and why
            empty = [finite[k][1] for k in (key, "reference") if finite[k][1].n_after == 0]
            if not empty:
                return compute(finite[key][0], ref)
            reason = UNDEFINED_WHEN.get(observable, "no finite value")
            return Estimate(float("nan"), float("nan"), "undefined: " + ", ".join(
                f"{s.n_before - s.n_after} of {s.n_before} {s.name} values non-finite ({reason})"
                for s in empty))

        floor = safe("floor") if "floor" in finite else None
        rows.append(MetricRow(
            metric, observable, safe("generated"), floor,
            finite["generated"][1].n_after, finite["reference"][1].n_after,
            finite["generated"][1].n_removed, finite["reference"][1].n_removed,
        ))

    n_tasks = 2 * (len(JET_OBSERVABLES) + len(PARTICLE_FEATURES)) + 6
    with tqdm(total=n_tasks, desc="evaluate", unit="metric") as progress:
        for name in JET_OBSERVABLES:
            inputs = {k: obs[name] for k, obs in observables.items()}
            for metric, fn in (("KL", _kl), ("W1", _w1)):
                metric_row(metric, name, lambda g, r, fn=fn: fn(g, r, n_bootstrap, seed), inputs)
                progress.update()
            if plots:
                files.append(plot_distribution(
                    inputs["reference"], {"Generated": inputs["generated"]},
                    out_dir / f"hist_{name}.png", xlabel=OBSERVABLE_LABELS[name],
                    discrete=name == "n_particles",
                ))
        nonzero = {k: zero_pt_particles(b) for k, b in samples.items()}
        selections.extend(
            SelectionReport(f"{k} particles", _size(keep), _size(keep) - n_zero,
                            {ZERO_PT_REASON: n_zero})
            for k, (keep, n_zero) in nonzero.items())
        for name in PARTICLE_FEATURES:
            inputs = {k: b.particle_feature(name)[nonzero[k][0]] for k, b in samples.items()}
            for metric, fn in (("KL", _kl), ("W1", _w1)):
                metric_row(metric, f"particle {name}",
                           lambda g, r, fn=fn: fn(g, r, n_bootstrap, seed), inputs)
                progress.update()
            if plots:
                files.append(plot_distribution(
                    ak.to_numpy(ak.flatten(inputs["reference"])),
                    {"Generated": ak.to_numpy(ak.flatten(inputs["generated"]))},
                    out_dir / f"hist_particle_{name}.png", xlabel=PARTICLE_LABELS[name],
                ))

        matrices = {k: _distance_matrix(obs, f"{k} jet features") for k, obs in observables.items()}
        selections.extend(report for _, report in matrices.values())
        features = {k: m for k, (m, _) in matrices.items()}
        n_small = min(len(features["generated"]), len(features["reference"]))
        distance_metrics = {
            "FPD(8 obs)": lambda g, r: fpd(
                r, g, min_samples=max(2, int(0.4 * min(n_small, 50_000))),
                max_samples=min(n_small, 50_000), seed=seed),
            "KPD(8 obs)": lambda g, r: kpd(r, g, batch_size=min(n_small, 5_000), seed=seed),
            "C2ST AUC": lambda g, r: classifier_two_sample_auc(
                r, g, n_bootstrap=n_bootstrap, seed=seed),
        }
        for metric, fn in distance_metrics.items():
            floor = fn(features["floor"], features["reference"]) if "floor" in features else None
            rows.append(MetricRow(
                metric, "jet features", fn(features["generated"], features["reference"]), floor,
                len(features["generated"]), len(features["reference"]),
                matrices["generated"][1].n_removed, matrices["reference"][1].n_removed,
            ))
            progress.update()

        # jetnet's definitions on EFPs (module docstring); batch sizes scaled below 50k jets
        efp_sets = {k: _efp_matrix(b, f"{k} EFPs") for k, b in samples.items()}
        selections.extend(report for _, report in efp_sets.values())
        efps = {k: m for k, (m, _) in efp_sets.items()}
        n_efp = min(len(efps["generated"]), len(efps["reference"]))
        w1 = list(W1EFP_INDICES)
        efp_metrics = {
            "FPD(EFP, jetnet)": (EFP_FEATURES, lambda g, r: jetnet_fpd(
                r, g, min_samples=max(2, int(0.4 * min(n_efp, 50_000))),
                max_samples=min(n_efp, 50_000), seed=seed)),
            "KPD(EFP, jetnet)": (EFP_FEATURES, lambda g, r: jetnet_kpd(
                r, g, batch_size=min(n_efp, 5_000), seed=seed)),
            "W1(EFP, jetnet)": (W1_EFP_FEATURES, lambda g, r: w1efp(
                r[:, w1], g[:, w1], num_eval_samples=min(n_efp, 50_000), seed=seed).average()),
        }
        scaled = "" if n_efp >= 50_000 else (
            f"jetnet's batch sizes scaled to the {n_efp} jets available (they need 50,000 per "
            "sample): not comparable with published values")
        for metric, (observable, fn) in efp_metrics.items():
            floor = fn(efps["floor"], efps["reference"]) if "floor" in efps else None
            rows.append(MetricRow(
                metric, observable,
                replace(fn(efps["generated"], efps["reference"]), note=scaled),
                None if floor is None else replace(floor, note=scaled),
                len(efps["generated"]), len(efps["reference"]),
                efp_sets["generated"][1].n_removed, efp_sets["reference"][1].n_removed,
            ))
            progress.update()

    result = EvaluationResult(rows, floor_method, selections, files, frame_text, title)
    files.append(write_table(out_dir / "metrics.table.json", result.table,
                             title=f"{title} ({frame_text})", columns=TABLE_COLUMNS))
    files.append(_write_report(result, samples, out_dir, title, html))
    return result


def _write_report(result: EvaluationResult, samples: dict[str, JetBatch], out_dir: Path,
                  title: str, html: bool) -> Path:
    report = Report(title)
    report.add_heading("Inputs")
    report.add_table([
        {"sample": k, "jets": len(b), "files": ", ".join(b.source_files) or "<memory>",
         "classes": ", ".join(f"{c}: {n}" for c, n in b.class_counts().items())}
        for k, b in samples.items()
    ])
    report.add_text(f"Reference: {result.frame}.")
    report.add_text(f"Statistical floor: {result.floor_method}.")
    report.add_text(
        "KL: P = generated, Q = reference; integer-valued observables one bin per value, "
        "others reference-quantile bins, each tied value (repeated, >= 1/n_bins of its sample) "
        "a bin of its own, plus under/overflow; bins fixed at the full samples for the "
        "bootstrap; particle features without pT = 0 particles; "
        f"W1 in the unit of the observable; FPD(8 obs)/KPD(8 obs) on the 8 jet observables "
        f"({', '.join(DISTANCE_FEATURES)}); FPD/KPD(EFP, jetnet): jetnet's definitions on "
        f"the {EFP_FEATURES}, W1(EFP, jetnet) on the {W1_EFP_FEATURES} (jetnet.evaluation, "
        "jetfm.metrics.efp; comparable with published tables for >= 50,000 jets per sample); "
        "C2ST AUC: 0.5 = indistinguishable."
    )
    report.add_heading("Metrics")
    report.add_table(
        [{k: (format_value(v) if isinstance(v, float) else v) for k, v in row.items()}
         for row in result.table],
        TABLE_COLUMNS,
    )
    removed = [s for s in result.selections if s.n_removed]
    if removed:
        report.add_heading("Removed values (non-finite, or particles with pT = 0)")
        report.add_text("\n".join(f"- {s}" for s in removed))
    figures = [path for path in result.files if path.suffix == ".png"]
    if figures:
        report.add_heading("Distributions")
        for path in figures:
            report.add_image(path, path.stem)
    return report.write(out_dir, html=html)


def evaluate_files(
    reference: Sequence[str],
    generated: Sequence[str],
    out_dir: str | Path,
    *,
    n_bootstrap: int = 100,
    seed: int = 0,
    html: bool = False,
    plots: bool = True,
    frame: Callable[[JetBatch], JetBatch] | None = None,
    frame_name: str | None = None,
    skip_invalid: bool = False,
) -> EvaluationResult:
    """Read both file lists (any jetfm format; ``skip_invalid`` drops and counts invalid jets)
    and run :func:`evaluate_batches` (``frame``: applied to the reference, see the module
    docstring). Raises :class:`~jetfm.data.JetDataError` naming the files when a sample holds
    no jet."""
    from jetfm.data.io import read_jets

    title = f"{', '.join(map(str, generated))} vs {', '.join(map(str, reference))}"
    batches = {}
    for what, paths in (("reference", reference), ("generated", generated)):
        batches[what] = read_jets([str(p) for p in paths], skip_invalid=skip_invalid)
        if len(batches[what]) == 0:
            raise JetDataError(f"{', '.join(map(str, paths))}: 0 jets; nothing to evaluate "
                               f"(the {what} sample)")
    return evaluate_batches(
        batches["reference"], batches["generated"], out_dir,
        n_bootstrap=n_bootstrap, seed=seed, html=html, plots=plots, title=title,
        frame=frame, frame_name=frame_name,
    )


@dataclass
class TaggingResult:
    """Binary tagging summary (see :func:`jetfm.metrics.tagging.binary_summary`)."""

    summary: dict[str, float]
    files: list[Path] = field(default_factory=list)
    title: str = ""  # tagger and classes ("name: signal vs background"): format()'s first line

    def format(self) -> str:
        """The summary, one quantity a line, under the title when there is one."""
        lines = [self.title] if self.title else []
        return "\n".join(lines + [f"{k:>16}  {format_value(v)}"
                                   for k, v in self.summary.items()])


def evaluate_tagging(
    labels: np.ndarray,
    scores: np.ndarray,
    out_dir: str | Path | None = None,
    *,
    name: str = "tagger",
    signal: str = "signal",
    background: str = "background",
    html: bool = False,
) -> TaggingResult:
    """Accuracy, AUC, rejections and max SIC of binary scores (1 = signal); with ``out_dir``
    also ``roc.png``, ``tagging.table.json`` and ``report.md``."""
    result = TaggingResult(binary_summary(labels, scores),
                           title=f"{name}: {signal} vs {background}")
    if out_dir is not None:
        out_dir = Path(out_dir)
        roc = plot_roc({name: (labels, scores)}, out_dir / "roc.png", signal=signal,
                       background=background)
        rows = [{"quantity": k, "value": v} for k, v in result.summary.items()]
        table = write_table(out_dir / "tagging.table.json", rows,
                            title=f"{name}: {signal} vs {background}")
        report = Report(f"{name}: {signal} vs {background}")
        report.add_table(rows)
        report.add_image(roc, "ROC")
        result.files = [roc, table, report.write(out_dir, html=html)]
    return result
