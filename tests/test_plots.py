"""Plot building blocks: drawn values equal the input histograms; files are written."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from jetfm.metrics.scaling import fit_power_law
from jetfm.plots.curves import plot_scaling, plot_training_curves
from jetfm.plots.histograms import default_bins, plot_distribution
from jetfm.plots.roc import plot_roc
from jetfm.plots.style import hist_with_ratio, ratio_figure, use_style

PNG_MAGIC = b"\x89PNG"


def test_use_style_is_idempotent_and_tex_free() -> None:
    use_style()
    use_style()
    assert plt.rcParams["text.usetex"] is False


def test_hist_with_ratio_draws_densities_and_counts_outside() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=2000)
    generated = np.r_[rng.normal(0.2, 1.0, 1000), np.nan, 50.0]
    bins = np.linspace(-3, 3, 13)
    fig, ax_main, ax_ratio = ratio_figure()
    outside = hist_with_ratio(ax_main, ax_ratio, reference, {"gen": generated}, bins)
    assert outside["gen"] == 2 + int(np.sum(np.abs(generated[:-2]) > 3))
    assert outside["Reference"] == int(np.sum(np.abs(reference) > 3))
    # each normalised to its full sample: the area inside the bins is the fraction inside
    ref_density = np.histogram(reference, bins=bins)[0] / (len(reference) * np.diff(bins))
    gen_counts, _ = np.histogram(generated[np.isfinite(generated)], bins=bins)
    gen_density = gen_counts / (len(generated) * np.diff(bins))
    drawn = [p.get_data()[0] for p in ax_main.patches]
    assert any(np.allclose(d, ref_density) for d in drawn)
    assert any(np.allclose(d, gen_density) for d in drawn)
    points = next(line for line in ax_ratio.lines if line.get_marker() == "o")
    np.testing.assert_allclose(points.get_ydata(), gen_density / ref_density)
    legend = [t.get_text() for t in ax_main.get_legend().get_texts()]
    above = int(np.sum(generated[:-2] > 3)) + 1
    below = int(np.sum(generated[:-2] < -3))
    parts = [f"{below} below"] * bool(below) + [f"{above} above", "1 non-finite"]
    assert f"gen ({outside['gen']} outside: {', '.join(parts)})" in legend
    plt.close(fig)


def test_default_bins_discrete_are_integer_centred() -> None:
    edges = default_bins(np.array([3, 5, 7, 9, 12]), discrete=True)
    assert np.allclose(edges - np.floor(edges), 0.5)


def test_plot_files_written(tmp_path) -> None:
    rng = np.random.default_rng(1)
    hist = plot_distribution(rng.normal(size=500), {"gen": rng.normal(size=300)},
                             tmp_path / "h.png", xlabel=r"$m$ [GeV]")
    labels = rng.integers(0, 2, 400)
    roc = plot_roc({"toy": (labels, rng.normal(labels, 1.0))}, tmp_path / "roc.png")
    sizes = np.geomspace(1e2, 1e5, 4)
    fit = fit_power_law(sizes, 2 * sizes**-0.3, 0.1 * sizes**-0.3)
    scaling = plot_scaling(sizes, 2 * sizes**-0.3, tmp_path / "s.png", fit=fit)
    for path in (hist, roc, scaling):
        assert path.read_bytes()[:4] == PNG_MAGIC


def test_training_curves_use_rows_where_each_metric_was_logged(tmp_path) -> None:
    # Lightning CSVLogger layout: train and val metrics on different rows
    log = pd.DataFrame({
        "epoch": [0, 0, 1, 1],
        "step": [10, 10, 20, 20],
        "train_loss": [1.0, np.nan, 0.5, np.nan],
        "val_loss": [np.nan, 1.2, np.nan, 0.7],
    })
    csv = tmp_path / "metrics.csv"
    log.to_csv(csv, index=False)
    fig_path = plot_training_curves(csv, tmp_path / "curves.png")
    assert fig_path.read_bytes()[:4] == PNG_MAGIC


# ---------------------------------------------------------------- issue 15: what a user sees
def _captured(monkeypatch, module) -> list:
    """Figures that ``module`` would save (its ``save_figure``): kept open for inspection."""
    figures = []
    monkeypatch.setattr(module, "save_figure", lambda fig, path: figures.append(fig) or path)
    return figures


def _densified(xy: np.ndarray, n: int = 25) -> np.ndarray:
    """Points along the polyline ``xy`` (display coordinates), ``n`` per segment."""
    xy = np.asarray(xy, dtype=float)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if len(xy) < 2:
        return xy
    t = np.linspace(0.0, 1.0, n, endpoint=False)[None, :, None]
    segments = xy[:-1, None, :] + t * (xy[1:, None, :] - xy[:-1, None, :])
    return np.vstack([segments.reshape(-1, 2), xy[-1:]])


def _legend_covers(fig) -> list[str]:
    """What each legend of the rendered ``fig`` covers: points along every drawn line, step
    and error bar of its axes inside the legend box, its axes' frame when the legend is
    neither inside nor outside it, and axis labels, tick labels or titles of any axes
    overlapping it (independent of jetfm.plots.style.legend_collisions)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent(renderer)
        drawn = [_densified(line.get_transform().transform(line.get_xydata()))
                 for line in ax.lines]
        drawn += [_densified(p.get_transform().transform(p.get_path().vertices))
                  for p in ax.patches]
        drawn += [_densified(c.get_transform().transform(path.vertices))
                  for c in ax.collections for path in c.get_paths()]
        points = np.vstack([d for d in drawn if len(d)])
        inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                  & (points[:, 1] > box.y0) & (points[:, 1] < box.y1))
        if inside.any():
            found.append(f"{int(inside.sum())} data points under the legend")
        frame = ax.bbox
        within = (box.x0 >= frame.x0 - 0.5 and box.x1 <= frame.x1 + 0.5
                  and box.y0 >= frame.y0 - 0.5 and box.y1 <= frame.y1 + 0.5)
        if not within and box.overlaps(frame):
            found.append("the legend crosses the axes frame")
        for other in fig.axes:
            texts = [other.xaxis.label, other.yaxis.label, other.title,
                     *other.get_xticklabels(), *other.get_yticklabels()]
            found += [f"label {t.get_text()!r}" for t in texts if t.get_visible()
                      and t.get_text() and box.overlaps(t.get_window_extent(renderer))]
    return found


def test_default_bins_cover_every_sample_and_resist_outliers() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0.0, 1.0, 2000)
    shifted = rng.normal(8.0, 1.0, 1000)  # a generated sample away from the reference
    edges = default_bins(reference, shifted)
    for sample in (reference, shifted):
        inside = np.mean((sample >= edges[0]) & (sample <= edges[-1]))
        assert inside >= 0.99
    # a few wild values (0.3 % of the sample) do not stretch the range
    wild = np.r_[shifted[:997], 1e6, 1e6, -1e5]
    assert np.allclose(default_bins(reference, wild), default_bins(reference, shifted[:997]),
                       atol=0.5)
    with pytest.raises(ValueError, match="no sample has finite values"):
        default_bins(np.array([np.nan]))


def test_default_bins_keep_a_wide_generated_tail_from_squeezing_the_reference() -> None:
    """A Z peak (91 +- 3 GeV) beside a generated sample with a tail to 5 TeV: the edges stay
    within two reference widths of the reference's range, so the peak spans many bins."""
    rng = np.random.default_rng(4)
    peak = rng.normal(91.0, 3.0, 4000)
    tail = np.r_[rng.normal(91.0, 3.0, 3000), rng.exponential(1500.0, 1000)]
    ref_lo, ref_hi = np.quantile(peak, [0.005, 0.995])
    edges = default_bins(peak, tail)
    width = ref_hi - ref_lo
    assert edges[0] >= ref_lo - 2 * width - 1e-9 and edges[-1] == pytest.approx(
        ref_hi + 2 * width)
    assert np.count_nonzero(np.histogram(peak, edges)[0]) >= 7  # not one bin
    assert default_bins(peak, tail, reference_spans=None)[-1] > 3000  # the old union


def test_generated_sample_beside_the_reference_is_drawn_not_counted_outside(
        monkeypatch) -> None:
    import jetfm.plots.histograms as histograms

    figures = _captured(monkeypatch, histograms)
    rng = np.random.default_rng(4)
    reference, generated = rng.normal(0.0, 1.0, 2000), rng.normal(6.0, 1.0, 60)
    plot_distribution(reference, {"Generated": generated}, "unused.png", xlabel="x")
    (fig,) = figures
    ax_main = fig.axes[0]
    labels = [t.get_text() for t in ax_main.get_legend().get_texts()]
    # was "Generated (60 outside)": now at most its 0.5 % tails (1 jet of 60) are beyond
    (label,) = [t for t in labels if t.startswith("Generated")]
    assert label in ("Generated", "Generated (1 outside: 1 above)",
                     "Generated (1 outside: 1 below)"), label
    lo, hi = ax_main.get_xlim()
    assert lo <= np.quantile(reference, 0.005) and hi >= np.sort(generated)[-2]
    plt.close(fig)


def test_ratio_points_beyond_the_panel_are_marked_at_its_edge() -> None:
    bins = np.arange(5.0)
    reference = np.repeat([0.5, 1.5, 2.5], 100)  # bin 3 empty
    generated = np.repeat([0.5, 1.5, 3.5], [100, 300, 50])  # bin 2 empty
    # density ratios: bin 0: (100/450)/(100/300) = 0.67, bin 1: 2.0, bin 2: 0, bin 3: inf
    fig, ax_main, ax_ratio = ratio_figure()
    hist_with_ratio(ax_main, ax_ratio, reference, {"gen": generated}, bins,
                    ratio_range=(0.5, 1.5))
    markers = {line.get_marker(): line for line in ax_ratio.lines}
    points = markers["o"]
    np.testing.assert_allclose(points.get_xdata(), [0.5, 1.5, 2.5])  # inf is not a point
    np.testing.assert_allclose(points.get_ydata(), [2 / 3, 2.0, 0.0])
    up, down = markers["^"], markers["v"]
    np.testing.assert_allclose(up.get_xdata(), [1.5, 3.5])
    np.testing.assert_allclose(down.get_xdata(), [2.5])
    # at the edges of the panel, whatever its data limits (axes coordinates in y)
    assert np.all(np.asarray(up.get_ydata()) > 0.9) and np.all(np.asarray(down.get_ydata()) < 0.1)
    assert up.get_color() == down.get_color() == points.get_color()
    plt.close(fig)


def test_per_class_legends_cover_no_curve_or_label(monkeypatch) -> None:
    import jetfm.plots.observables as observables

    figures = _captured(monkeypatch, observables)
    rng = np.random.default_rng(0)
    n = 4000
    labels = np.repeat(np.arange(10), n // 10)  # ten classes: a big legend
    values = {"eta": rng.uniform(-2.5, 2.5, n),
              "mass": np.r_[rng.normal(80, 10, n // 2), rng.normal(170, 20, n // 2)],
              "tau21": rng.uniform(0.0, 1.1, n)}
    observables.plot_observables_by_class(values, labels, "unused", names=tuple(values),
                                          title="ten classes")
    assert len(figures) == 3
    for fig in figures:
        assert _legend_covers(fig) == []
        plt.close(fig)
    # two classes with room above the curves: the legend stays inside the axes
    figures.clear()
    wide = np.where(labels[:800] < 5, rng.exponential(60.0, 800), rng.normal(172, 15, 800))
    observables.plot_observables_by_class({"mass": np.r_[wide[:400], 900.0, wide[401:]]},
                                          labels[:800] // 5 * 8, "unused", names=("mass",),
                                          title="file.root")
    (fig,) = figures
    assert _legend_covers(fig) == []
    plt.close(fig)
    figures.clear()
    observables.plot_observables_by_class({"eta": values["eta"][:800]}, labels[:800] // 5,
                                          "unused", names=("eta",))
    (fig,) = figures
    assert _legend_covers(fig) == []
    fig.canvas.draw()
    box = fig.axes[0].get_legend().get_window_extent(fig.canvas.get_renderer())
    assert fig.axes[0].bbox.contains(box.x0, box.y0) and fig.axes[0].bbox.contains(box.x1,
                                                                                   box.y1)
    plt.close(fig)


def test_per_class_bins_grow_to_cover_every_class(monkeypatch) -> None:
    import jetfm.plots.observables as observables

    figures = _captured(monkeypatch, observables)
    rng = np.random.default_rng(5)
    mass = np.r_[rng.normal(80.0, 10.0, 500), rng.normal(350.0, 20.0, 500)]  # beyond 300 GeV
    observables.plot_observables_by_class({"mass": mass}, np.repeat([0, 8], 500), "unused",
                                          names=("mass",))
    (fig,) = figures
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    above = [int(m) for m in re.findall(r"(\d+) above", " ".join(labels))]
    assert sum(above) <= 0.005 * 500 + 1, labels  # only the top 0.5 % tail (was 500 of 500)
    lo, hi = fig.axes[0].get_xlim()
    assert lo == 0.0 and hi >= np.quantile(mass[500:], 0.995)
    assert (hi - lo) / 5.0 == pytest.approx(round((hi - lo) / 5.0))  # the 5 GeV grid
    plt.close(fig)


def test_roc_legend_covers_no_curve_or_label(monkeypatch) -> None:
    import jetfm.plots.roc as roc

    figures = _captured(monkeypatch, roc)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    taggers = {f"tagger {i}": (labels, rng.normal(labels * s, 1.0))
               for i, s in enumerate([0.3, 1.0, 2.0, 3.0, 4.0])}
    plot_roc(taggers, "unused.png", signal="top", background="QCD")  # as roc_all.png
    probs = rng.dirichlet(np.ones(3), size=1500)
    three = rng.integers(0, 3, 1500)
    probs[np.arange(1500), three] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    roc.plot_multiclass_roc({"a": (three, probs), "b": (three, probs ** 0.5 / (
        probs ** 0.5).sum(axis=1, keepdims=True))}, ["QCD", "Tbqq", "Wqq"], "unused.png")
    assert len(figures) == 2
    for fig in figures:
        assert _legend_covers(fig) == []
        plt.close(fig)


def test_lund_ratio_scale_covers_every_ratio_and_marks_empty_bins() -> None:
    from matplotlib.colors import to_rgba

    from jetfm.plots.trees import RATIO_NONE_GENERATED, RATIO_NONE_IN_TRUTH, draw_lund_ratio

    shape = (24, 24)
    truth = np.full(shape, 1.0)
    generated = np.full(shape, 1.1)
    generated[3, 4] = 4.0  # ratio 4: beyond the old fixed 0.5-1.5 scale
    generated[5, 6] = 0.2  # ratio 0.2
    generated[7, 8] = 0.0  # nothing generated there
    truth[9, 10] = 0.0  # nothing in the truth there
    truth[11, 12] = generated[11, 12] = 0.0  # both empty
    fig, ax = plt.subplots()
    mesh = draw_lund_ratio(fig, ax, truth, generated)
    norm = mesh.norm
    assert norm.vmin == pytest.approx(1 / 5) and norm.vmax == pytest.approx(5.0)  # symmetric
    ratio = np.ma.filled(np.asarray(mesh.get_array(), dtype=float), np.nan).reshape(
        shape[::-1]).T
    lo, hi = norm.vmin * (1 - 1e-9), norm.vmax * (1 + 1e-9)
    finite = np.isfinite(ratio) & (ratio >= lo) & (ratio <= hi)
    assert finite.sum() == 24 * 24 - 3  # every bin with both densities is inside the scale
    colours = mesh.to_rgba(mesh.get_array())
    colours = np.asarray(colours).reshape(shape[1], shape[0], 4).transpose(1, 0, 2)
    assert np.allclose(colours[7, 8], to_rgba(RATIO_NONE_GENERATED))
    assert np.allclose(colours[9, 10], to_rgba(RATIO_NONE_IN_TRUTH))
    assert np.isnan(ratio[11, 12])
    plt.close(fig)


def test_lund_planes_file_written(tmp_path) -> None:
    import awkward as ak

    from jetfm.plots.trees import plot_lund_planes

    rng = np.random.default_rng(6)

    def lund(n_jets: int, scale: float) -> ak.Array:
        counts = rng.integers(1, 6, n_jets)
        n = int(counts.sum())
        flat = ak.Array({"delta": rng.uniform(0.01, 0.8, n), "kt": scale * rng.exponential(5, n)})
        return ak.unflatten(flat, counts)

    path = plot_lund_planes(lund(200, 1.0), lund(150, 3.0), tmp_path / "lund.png", title="t")
    assert path.read_bytes()[:4] == PNG_MAGIC
