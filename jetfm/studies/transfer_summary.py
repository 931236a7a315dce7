"""What the cells of a transfer study (:mod:`jetfm.studies.transfer`) say, as numbers and pages.

Pure functions of the cells' result dictionaries: seed means with errors per training-set size
D (:func:`seed_point`), metric-vs-D curves with power-law fits a D^-gamma (:func:`make_curve`),
fine-tuned vs from scratch at each D (:func:`compare`), the D the scratch curve needs to match
each fine-tuned point (:func:`needed_by_scratch`), the closing note, the per-target figure
(the AOJ paper's figures 3 and 4) and the markdown pages.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogFormatter, LogLocator, NullFormatter

from jetfm.metrics.evaluate import JET_OBSERVABLES
from jetfm.metrics.generation import KL_EPSILON
from jetfm.metrics.scaling import PowerLawFit, fit_power_law
from jetfm.physics.observables import OBSERVABLE_LABELS
from jetfm.plots.histograms import default_bins
from jetfm.plots.style import outside_counts, outside_label, use_style
from jetfm.report import Report, format_with_error

TARGETS: dict[str, str] = {"qcd": "QCD", "top": "Tbqq"}  # target -> jetfm class name
MODES: tuple[str, ...] = ("finetune", "scratch")
METRICS: tuple[str, ...] = ("KL", "W1")
MODE_LABELS = {"finetune": "fine-tuned", "scratch": "from scratch"}
MODE_COLORS = {"finetune": "tab:blue", "scratch": "tab:red"}
SIGNIFICANCE = 2.0  # fine-tuning "helps" when scratch is worse by more than this many sigma
# A KL this close to its cap ln(1 / KL_EPSILON) = 18.4 nats means (nearly) disjoint samples; its
# bootstrap error then vanishes, so no significance is computed ("saturated").
KL_SATURATED = 0.95 * math.log(1.0 / KL_EPSILON)


def seed_point(values: np.ndarray, boot_errors: np.ndarray) -> dict[str, float]:
    """Mean over seeds with min/max/std and the error of the mean:
    sqrt(std^2 + mean(bootstrap error^2)) / sqrt(n_seeds) (std = 0 for one seed), which
    never vanishes and is conservative when the seed spread is itself statistical."""
    n = len(values)
    std = float(np.std(values, ddof=1)) if n > 1 else 0.0
    error = math.sqrt(std**2 + float(np.mean(np.square(boot_errors)))) / math.sqrt(n)
    return {"mean": float(np.mean(values)), "std": std, "min": float(np.min(values)),
            "max": float(np.max(values)), "error": error, "n_seeds": n}



def d_needed(a: float, gamma: float, value: float) -> float:
    """Training jets at which the power law a D^-gamma reaches ``value``: (a / value)^(1 / gamma);
    for a curve that does not fall (gamma <= 0): infinite if ``value`` < a, else 1; infinite
    too when the power overflows a float (a nearly flat curve, gamma -> 0+)."""
    if gamma <= 0:
        return math.inf if value < a else 1.0
    try:
        return float((a / value) ** (1.0 / gamma))
    except OverflowError:
        return math.inf



def fit_curve(points: list[dict[str, Any]]) -> tuple[PowerLawFit | None, str]:
    """Power-law fit of seed means vs D weighted by their errors; (None, reason) if impossible."""
    if len(points) < 3:  # two points fix both parameters: no degree of freedom, no error
        return None, f"{len(points)} point(s), a fit needs 3"
    means = np.array([p["mean"] for p in points])
    errors = np.array([p["error"] for p in points])
    if np.any(means <= 0) or not np.all(np.isfinite(errors) & (errors > 0)):
        return None, "non-positive values or errors"
    return fit_power_law(np.array([p["D"] for p in points], dtype=float), means, errors), ""



def make_curve(results: list[dict], target: str, metric: str, observable: str, mode: str,
               sizes: list[int]) -> dict[str, Any]:
    """One metric-vs-D curve from the cell results: a point per D (:func:`seed_point` plus the
    mean, min and max floor over seeds) and its power-law fit."""
    points = []
    for size in sizes:
        rows = [r["metrics"][f"{metric} {observable}"] for r in results
                if (r["target"], r["mode"], r["size"]) == (target, mode, size)]
        if not rows:
            continue
        floors = np.array([r["floor"] for r in rows])
        points.append({"D": size, **seed_point(np.array([r["value"] for r in rows]),
                                               np.array([r["error"] for r in rows])),
                       "floor": float(floors.mean()), "floor_min": float(floors.min()),
                       "floor_max": float(floors.max())})
    fit, reason = fit_curve(points)
    return {"target": target, "metric": metric, "observable": observable, "mode": mode,
            "points": points, "no_fit_reason": reason, "fit": None if fit is None else {
                "a": fit.a, "a_err": fit.a_err, "gamma": fit.gamma, "gamma_err": fit.gamma_err,
                "chi2": _chi2(fit, points), "ndf": len(points) - 2}}



def _chi2(fit: PowerLawFit, points: list[dict[str, Any]]) -> float:
    return float(sum(((p["mean"] - fit(p["D"])) / p["error"]) ** 2 for p in points))



def _curve(curves: list[dict], target: str, metric: str, observable: str, mode: str) -> dict:
    return next(c for c in curves if (c["target"], c["metric"], c["observable"], c["mode"])
                == (target, metric, observable, mode))



def compare(curves: list[dict]) -> list[dict[str, Any]]:
    """Per target, metric, observable: at each D the significance (scratch - fine-tuned) /
    error; verdict helps (> 2 sigma), hurts (< -2 sigma), compatible, or saturated (a KL at its
    cap in either mode, :data:`KL_SATURATED`: no significance); ``stops_helping_at``
    = the smallest D from which fine-tuning no longer helps (None: it helps at the largest D).
    """
    rows = []
    for ft in (c for c in curves if c["mode"] == "finetune"):
        sc = _curve(curves, ft["target"], ft["metric"], ft["observable"], "scratch")
        sc_points = {p["D"]: p for p in sc["points"]}
        per_d = []
        for p in ft["points"]:
            q = sc_points.get(p["D"])
            if q is None:
                continue
            diff, error = q["mean"] - p["mean"], math.hypot(p["error"], q["error"])
            z = diff / error if error > 0 else math.copysign(math.inf, diff) if diff else 0.0
            verdict = "helps" if z > SIGNIFICANCE else "hurts" if z < -SIGNIFICANCE else \
                "compatible"
            if ft["metric"] == "KL" and max(p["mean"], q["mean"]) >= KL_SATURATED:
                z, verdict = math.nan, "saturated"  # a capped KL has no meaningful error
            per_d.append({"D": p["D"], "finetune": p["mean"], "scratch": q["mean"],
                          "finetune_error": p["error"], "scratch_error": q["error"],
                          "significance": z, "verdict": verdict})
        stops = None
        for point in reversed(per_d):
            if point["verdict"] == "helps":
                break
            stops = point["D"]
        rows.append({"target": ft["target"], "metric": ft["metric"],
                     "observable": ft["observable"], "points": per_d, "stops_helping_at": stops})
    return rows



def needed_by_scratch(curves: list[dict]) -> list[dict[str, Any]]:
    """For each fine-tuned point, the D at which the scratch power law reaches its value and
    the ratio to the fine-tuned D; ``interpolated``: inside the measured scratch range."""
    rows = []
    for ft in (c for c in curves if c["mode"] == "finetune"):
        scratch = _curve(curves, ft["target"], ft["metric"], ft["observable"], "scratch")
        if scratch["fit"] is None:
            continue
        sizes = [p["D"] for p in scratch["points"]]
        for p in ft["points"]:
            needed = d_needed(scratch["fit"]["a"], scratch["fit"]["gamma"], p["mean"])
            rows.append({"target": ft["target"], "metric": ft["metric"],
                         "observable": ft["observable"], "D": p["D"], "finetune": p["mean"],
                         "scratch_D_needed": needed, "ratio": needed / p["D"],
                         "interpolated": min(sizes) <= needed <= max(sizes)})
    return rows



def closing_note(summary: dict[str, Any]) -> str:
    """Measured gammas, where fine-tuning stops helping, and the ten-times-fewer-jets check."""
    lines = []
    for target in TARGETS:
        lines.append(f"{target}:")
        for mode in MODES:
            gammas = [c["fit"]["gamma"] for c in summary["curves"]
                      if c["target"] == target and c["mode"] == mode and c["fit"]]
            if gammas:
                lines.append(f"- gamma, {MODE_LABELS[mode]}: median {np.median(gammas):.2f}, "
                             f"range {min(gammas):.2f} to {max(gammas):.2f} over {len(gammas)} "
                             "fitted curves")
            else:
                reasons = sorted({c["no_fit_reason"] for c in summary["curves"]
                                  if c["target"] == target and c["mode"] == mode})
                lines.append(f"- gamma, {MODE_LABELS[mode]}: n/a, no curve fitted "
                             f"({'; '.join(reasons) or 'no curves'})")
        rows = [r for r in summary["comparison"] if r["target"] == target]
        sizes = sorted({p["D"] for r in rows for p in r["points"]})
        helps = {d: sum(p["D"] == d and p["verdict"] == "helps" for r in rows
                        for p in r["points"]) for d in sizes}
        text = ", ".join(f"D={d}: {helps[d]}/{len(rows)}" for d in sizes)
        stop = next((d for i, d in enumerate(sizes)
                     if all(2 * helps[e] < len(rows) for e in sizes[i:])), None)
        where = "helps in at least half of them up to the largest D" if stop is None else \
            f"stops helping (better in fewer than half of them) from D = {stop}"
        lines.append(f"- fine-tuning better than scratch by > {SIGNIFICANCE:g} sigma "
                     f"(curves of KL/W1 x 5 observables): {text}; it {where}")
        rows = [r for r in summary["d_needed"] if r["target"] == target]
        ratios = np.array([r["ratio"] for r in rows if r["interpolated"]])
        if len(ratios):
            lines.append(f"- scratch needs >= 10x the fine-tuned D at {int((ratios >= 10).sum())}"
                         f" of {len(ratios)} fine-tuned points inside the measured range "
                         f"(median factor {np.median(ratios):.3g}; {len(rows) - len(ratios)} "
                         "points would need extrapolating the scratch power law, left out)")
    # only points whose matching scratch D lies inside the measured sizes: with gammas ~0.1 an
    # extrapolated power law gives factors of 1e-10 or 1e+6 that say nothing
    ratios = np.array([r["ratio"] for r in summary["d_needed"] if r["interpolated"]])
    if len(ratios):
        median = float(np.median(ratios))
        verdict = ("holds" if median >= 10 else "holds only partly" if median >= 3
                   else "does not hold")
        lines.append(f"Paper's finding (fine-tuned reaches a quality with ~10x fewer target "
                     f"jets): {verdict} here; median factor {median:.3g} over {len(ratios)} "
                     "points inside the measured range (rule: >= 10 holds, 3-10 partly, < 3 "
                     "does not).")
    elif summary["d_needed"]:
        lines.append("Paper's finding (~10x fewer target jets): not testable here, no "
                     "fine-tuned point is matched by the scratch curve inside the measured D.")
    else:
        lines.append("Paper's finding (~10x fewer target jets): not testable here, no scratch "
                     "curve has a power-law fit (it needs 3 D or more).")
    for row in summary["tagging"]:
        one = row.get("n_seeds", 2) < 2  # a spread of one seed is not an error
        auc_err = "n/a (1 seed)" if one else f"{row['auc std']:.3f}"
        rej_err = "n/a" if one else f"{row['rejection@0.3 std']:.1f}"
        lines.append(f"Tagging D={row['D']} {MODE_LABELS[row['mode']]}: AUC {row['auc']:.3f} "
                     f"± {auc_err}, rejection at eps_S = 0.3: "
                     f"{row['rejection@0.3']:.1f} ± {rej_err}")
    return "\n".join(lines)



def _histogram(ax: Any, values: np.ndarray, bins: np.ndarray, label: str, **style: Any) -> None:
    """Density normalised to the whole sample; values below / above the bins and non-finite
    ones are counted in the label."""
    values = np.asarray(values, dtype=np.float64)
    counts, _ = np.histogram(values[np.isfinite(values)], bins)
    label = outside_label(label, outside_counts(values, bins))
    ax.stairs(counts / max(len(values), 1) / np.diff(bins), bins, label=label, **style)



def plot_target(target: str, curves: list[dict], truth: dict[str, np.ndarray],
                source: dict[str, np.ndarray],
                generated: dict[tuple[str, int], dict[str, np.ndarray]], sizes: list[int],
                path: Path) -> Path:
    """See :func:`plot_study`. ``truth``, ``source`` and each ``generated[mode, D]`` map
    observable names to (n_jets,) arrays."""
    use_style()
    colors = dict(zip(sizes, plt.cm.viridis(np.linspace(0.0, 0.9, len(sizes))), strict=True))
    n_rows, n_cols = len(JET_OBSERVABLES), len(MODES) + len(METRICS)
    with plt.rc_context({"xtick.minor.visible": False, "ytick.minor.visible": False,
                         "axes.formatter.use_mathtext": False}):
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 4.5 * n_rows),
                                 squeeze=False)
        for i, name in enumerate(JET_OBSERVABLES):
            bins = default_bins(truth[name], source[name],  # every sample drawn is covered
                                *(g[name] for g in generated.values()),
                                discrete=name == "n_particles")
            for j, mode in enumerate(MODES):
                ax = axes[i, j]
                _histogram(ax, truth[name], bins, "truth", fill=True, color="grey", alpha=0.4)
                if mode == "finetune":
                    _histogram(ax, source[name], bins, "AOJ-like source", color="black",
                               linestyle=":")
                for size in sizes:
                    if (mode, size) in generated:
                        _histogram(ax, generated[mode, size][name], bins, f"D = {size}",
                                   color=colors[size])
                ax.set_xlabel(OBSERVABLE_LABELS[name])
                ax.legend(title=MODE_LABELS[mode], fontsize="xx-small",
                          title_fontsize="x-small")
            for j, metric in enumerate(METRICS):
                _plot_metric(axes[i, len(MODES) + j], curves, target, metric, name)
        fig.suptitle(f"{target}: generated vs held-out truth", fontsize="medium", y=0.995)
        fig.subplots_adjust(hspace=0.35, wspace=0.35, top=0.97)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=80)  # fixed layout: no bbox_inches="tight", one draw, not two
        plt.close(fig)
    return path



def _plot_metric(ax: Any, curves: list[dict], target: str, metric: str, observable: str
                 ) -> None:
    """Seed means with error bars and min-max envelopes, power-law fits, floor band."""
    floors = [p for mode in MODES
              for p in _curve(curves, target, metric, observable, mode)["points"]]
    if floors:
        sizes = sorted({p["D"] for p in floors})
        ax.fill_between(sizes, [min(p["floor_min"] for p in floors if p["D"] == d)
                                for d in sizes],
                        [max(p["floor_max"] for p in floors if p["D"] == d) for d in sizes],
                        color="grey", alpha=0.3, label="floor")
    for mode in MODES:
        curve = _curve(curves, target, metric, observable, mode)
        points, color = curve["points"], MODE_COLORS[mode]
        if not points:
            continue
        d = [p["D"] for p in points]
        ax.errorbar(d, [p["mean"] for p in points], yerr=[p["error"] for p in points],
                    fmt="o-", color=color, label=MODE_LABELS[mode])
        ax.fill_between(d, [p["min"] for p in points], [p["max"] for p in points], color=color,
                        alpha=0.15)
        if curve["fit"]:
            fit = curve["fit"]
            grid = np.geomspace(min(d), max(d), 50)
            ax.plot(grid, fit["a"] * grid ** -fit["gamma"], "--", color=color,
                    label=rf"$\gamma = {fit['gamma']:.2f} \pm {fit['gamma_err']:.2f}$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    sizes = sorted({p["D"] for mode in MODES
                    for p in _curve(curves, target, metric, observable, mode)["points"]})
    ax.set_xticks(sizes, [f"{d:g}" for d in sizes])
    # Plain tick labels at 1, 2, 5 x 10^k: the default mathtext labels cost seconds a figure.
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("Training jets D")
    ax.set_ylabel(f"{metric} {OBSERVABLE_LABELS[observable]}", fontsize="small")
    ax.legend(fontsize="xx-small")



def write_pages(summary: dict[str, Any], figures: list[Path], out_dir: Path) -> None:
    """``summary.md`` (closing note and tables) and ``report.md`` (the same plus figures)."""
    report = Report("Transfer learning: AOJ-like pre-training, fine-tuning on JetClass-like "
                    "targets")
    report.add_heading("Closing note")
    report.add_text(summary["closing_note"])
    cells = summary["cells"]
    report.add_text(f"Cells done: {cells['generation']} generation, {cells['tagging']} "
                    f"tagging of {cells['expected']}; failed: {cells['failed']}. Jets: "
                    + ", ".join(f"{k} {v}" for k, v in summary["jets"].items()) + ".")
    report.add_heading("Power-law fits a D^-gamma")
    report.add_table([
        {"target": c["target"], "metric": c["metric"], "observable": c["observable"],
         "mode": c["mode"], "gamma": c["fit"]["gamma"], "gamma error": c["fit"]["gamma_err"],
         "chi2 / ndf": f"{c['fit']['chi2']:.2g} / {c['fit']['ndf']}"}
        for c in summary["curves"] if c["fit"]])
    report.add_heading("Seed means (± error) vs D: fine-tuned | scratch | floor")
    tokenizer_jets = {(r["target"], r["D"]): r["target jets"]
                      for r in summary.get("scratch_tokenizer", [])}
    report.add_text("Tokenizers: the fine-tuned cells use the source tokenizer (no target "
                    "jets); 'scratch tokenizer' gives the target jets the scratch cells' own "
                    "tokenizer was trained on (its 10 % validation included): with "
                    "scratch_tokenizer_jets 'fixed' jets of the target's training pool, more "
                    "than the D the scratch GPT sees at small D (as the AOJ paper's tokenizer "
                    "trained on all of JetClass); with 'd' only (up to tokenizer_jets of) "
                    "those D jets.")
    rows = []
    for row in summary["comparison"]:
        floors = {p["D"]: p["floor"] for p in _curve(summary["curves"], row["target"],
                                                      row["metric"], row["observable"],
                                                      "finetune")["points"]}
        for p in row["points"]:
            n_tok = tokenizer_jets.get((row["target"], p["D"]))
            rows.append({"target": row["target"], "metric": row["metric"],
                         "observable": row["observable"], "D": p["D"],
                         "fine-tuned": format_with_error(p["finetune"], p["finetune_error"]),
                         "scratch": format_with_error(p["scratch"], p["scratch_error"]),
                         "floor": floors.get(p["D"]), "significance": p["significance"],
                         "verdict": p["verdict"],
                         "scratch tokenizer": "?" if n_tok is None else f"{n_tok} target jets"})
    report.add_table(rows)
    report.add_heading("D the scratch fit needs to match each fine-tuned point")
    report.add_table(summary["d_needed"])
    report.add_heading("Top-vs-QCD tagging (test: both targets' truth jets)")
    report.add_table(summary["tagging"])
    if summary["failed"]:
        report.add_heading("Failed cells (retried on the next run)")
        report.add_table(summary["failed"])
    report.write(out_dir, name="summary")
    report.add_heading("Figures")
    for figure in figures:
        report.add_image(figure, figure.stem)
    report.write(out_dir, name="report")
