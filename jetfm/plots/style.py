"""Plot style and the building blocks used by every jetfm figure.

:func:`use_style` applies the mplhep CMS style (bundled fonts, no TeX) once per process.
:func:`default_bins` chooses bin edges that cover every sample drawn (the union of each
sample's central quantile range), so a generated sample away from the reference stays visible.
:func:`hist_with_ratio` draws normalised histograms of a reference and any number of other
samples with a ratio panel (other / reference) and Poisson error bars; values below or above
the bins and non-finite ones are counted and shown in the legend, never dropped silently, and
ratio points beyond the panel's limits are marked by arrows at its edge
(:func:`mark_out_of_range`). :func:`place_legend` puts a legend where it covers no drawn data
(inside the axes if a corner or edge is free, else to the right of the axes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import Collection, LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.path import Path as MplPath
from matplotlib.transforms import Bbox, blended_transform_factory

_STYLE_APPLIED = False
REFERENCE_COLOR = "black"
# Inside-the-axes legend positions tried in this order by place_legend (matplotlib loc names).
LEGEND_LOCATIONS: tuple[str, ...] = (
    "upper right", "upper left", "lower left", "lower right", "center right", "center left",
    "upper center", "lower center", "center",
)


def use_style() -> None:
    """Apply the mplhep CMS style once (idempotent; works with the Agg backend, no TeX)."""
    global _STYLE_APPLIED
    if _STYLE_APPLIED:
        return
    hep.style.use("CMS")
    plt.rcParams["text.usetex"] = False
    _STYLE_APPLIED = True


def ratio_figure(figsize: tuple[float, float] = (8.0, 8.0)) -> tuple[Figure, Axes, Axes]:
    """A figure with a main panel over a shared-x ratio panel (3:1 heights)."""
    use_style()
    fig, (ax_main, ax_ratio) = plt.subplots(
        2, 1, figsize=figsize, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
    )
    return fig, ax_main, ax_ratio


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as ``path`` (PNG, parents created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def default_bins(
    *samples: np.ndarray, n_bins: int = 40, discrete: bool = False, coverage: float = 0.99,
    reference_spans: float | None = 2.0,
) -> np.ndarray:
    """Bin edges covering the central ``coverage`` fraction of the finite values of *every*
    sample: the union of the per-sample ranges [q_(1-c)/2, q_(1+c)/2], kept within
    ``reference_spans`` widths of the first sample's (the reference's) range on either side.

    Taking the union (not the reference's range alone) keeps a generated sample that sits away
    from the reference inside the plot; taking quantiles (not min / max) keeps a few outliers
    from stretching the range; the limit keeps a generated sample with a wide tail (a
    dimuon mass out to 5 TeV beside a Z peak 20 GeV wide) from squeezing the reference into one
    bin (``None``: no limit). The values left beyond the edges are what
    :func:`hist_with_ratio` counts as below / above. The default 0.99 (0.5-99.5 %) is the range
    ``jetfm plot`` has always used for data-driven binning.

    ``samples``: 1-D arrays (non-finite values ignored; a sample with none is skipped).
    ``discrete``: unit-width bins centred on integers (multiplicities), or wider integer steps
    so that there are at most about ``n_bins`` bins. Returns the (n_edges,) increasing edges.
    Raises ``ValueError`` when no sample has a finite value or ``coverage`` is not in (0, 1].
    """
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    tail = 0.5 * (1.0 - coverage)
    ranges, reference = [], None
    for i, sample in enumerate(samples):
        finite = np.asarray(sample, dtype=np.float64).reshape(-1)
        finite = finite[np.isfinite(finite)]
        if len(finite):
            ranges.append(np.quantile(finite, [tail, 1.0 - tail]))
            if i == 0:
                reference = ranges[-1]
    if not ranges:
        raise ValueError("no sample has finite values to derive bins from")
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if reference_spans is not None and reference is not None:
        ref_lo, ref_hi = reference
        width = max(ref_hi - ref_lo, 1e-12 * max(abs(ref_lo), abs(ref_hi), 1.0))
        lo = max(lo, ref_lo - reference_spans * width)
        hi = min(hi, ref_hi + reference_spans * width)
    if discrete:
        width = max(1, int(np.ceil((hi - lo + 1) / n_bins)))
        return np.arange(np.floor(lo) - 0.5, np.ceil(hi) + 0.5 + width, width)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n_bins + 1)


def outside_counts(values: np.ndarray, bins: np.ndarray) -> dict[str, int]:
    """How many of ``values`` lie below the first edge, above the last one, or are not finite
    (the underflow, overflow and non-finite counts of a histogram with edges ``bins``)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(values)
    return {
        "below": int(np.sum(values[finite] < bins[0])),
        "above": int(np.sum(values[finite] > bins[-1])),
        "non-finite": int(np.sum(~finite)),
    }


def outside_label(name: str, counts: dict[str, int]) -> str:
    """Legend text ``name (N outside: a below, b above, c non-finite)``, naming only the
    non-zero parts; just ``name`` when nothing is outside."""
    parts = [f"{n} {what}" for what, n in counts.items() if n]
    if not parts:
        return name
    return f"{name} ({sum(counts.values())} outside: {', '.join(parts)})"


def _density(values: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(density, Poisson error, n outside the bins or non-finite) of a 1-D sample.

    Normalised to the whole sample, so the area inside the bins is the fraction inside them.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    counts, _ = np.histogram(values[np.isfinite(values)], bins=bins)
    n_outside = len(values) - int(counts.sum())
    norm = max(len(values), 1) * np.diff(bins)
    return counts / norm, np.sqrt(counts) / norm, n_outside


def mark_out_of_range(
    ax: Axes, x: np.ndarray, y: np.ndarray, limits: tuple[float, float], **style: Any
) -> tuple[int, int]:
    """Draw an upward arrow (``^``) at the top edge of ``ax`` for every point with y above
    ``limits[1]`` (+inf included), a downward one (``v``) at the bottom edge for y below
    ``limits[0]``; NaN points are left out. Returns (n above, n below).

    The arrows sit at 7 % of the axes height from the edge, in axes coordinates, so they stay
    at the edge whatever the y scale. ``style``: Line2D keywords (e.g. ``color``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    lo, hi = limits
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    above, below = y > hi, y < lo  # NaN compares False: not drawn
    for mask, marker, height in ((above, "^", 0.93), (below, "v", 0.07)):
        if mask.any():
            ax.plot(x[mask], np.full(int(mask.sum()), height), linestyle="none", marker=marker,
                    ms=7, transform=edge, clip_on=False, **style)
    return int(above.sum()), int(below.sum())


def _display_points(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points[np.all(np.isfinite(points), axis=1)]


def _occupied(ax: Axes, exclude: Legend | None = None) -> tuple[list[tuple[MplPath, bool]],
                                                                 list[np.ndarray]]:
    """What ``ax`` draws, in display coordinates: (paths with a filled flag, point clouds
    with their marker radius as the last column)."""
    paths: list[tuple[MplPath, bool]] = []
    points: list[np.ndarray] = []
    dpi_scale = ax.figure.dpi / 72.0

    def add_path(path: MplPath, transform: Any, filled: bool) -> None:
        vertices = _display_points(transform.transform(path.vertices))
        if len(vertices) >= 2:
            paths.append((MplPath(vertices), filled))
        elif len(vertices):
            points.append(np.c_[vertices, np.zeros(len(vertices))])

    frame = {id(ax.patch), *(id(spine) for spine in ax.spines.values())}
    for artist in ax.get_children():
        if artist is exclude or id(artist) in frame or not artist.get_visible():
            continue
        if isinstance(artist, Line2D):
            xy = artist.get_transform().transform(artist.get_path().vertices)
            radius = 0.5 * artist.get_markersize() * dpi_scale
            if artist.get_linestyle() in ("None", "none", "", " "):
                xy = _display_points(xy)
                points.append(np.c_[xy, np.full(len(xy), radius)])
            else:
                add_path(artist.get_path(), artist.get_transform(), False)
                if artist.get_marker() not in (None, "None", "none", "", " "):
                    xy = _display_points(xy)
                    points.append(np.c_[xy, np.full(len(xy), radius)])
        elif isinstance(artist, Patch):
            filled = bool(artist.get_fill()) and artist.get_facecolor()[3] > 0
            add_path(artist.get_path(), artist.get_transform(), filled)
        elif isinstance(artist, LineCollection | PolyCollection):
            for path in artist.get_paths():
                add_path(path, artist.get_transform(), isinstance(artist, PolyCollection))
        elif isinstance(artist, Collection) and len(artist.get_offsets()):
            xy = _display_points(artist.get_offset_transform().transform(artist.get_offsets()))
            sizes = artist.get_sizes()
            radius = 0.5 * np.sqrt(float(np.max(sizes))) * dpi_scale if len(sizes) else 0.0
            points.append(np.c_[xy, np.full(len(xy), radius)])
    return paths, points


def legend_collisions(ax: Axes, legend: Legend, renderer: Any) -> list[str]:
    """What ``legend`` (of ``ax``) covers, as short descriptions: drawn lines, steps, filled
    areas, markers and texts of ``ax``, and — for a legend outside the axes frame — the axis
    labels, tick labels and title of every axes of the figure; a legend partly inside the
    axes frame crosses it, which counts too. An empty list: nothing."""
    box = legend.get_window_extent(renderer)
    hits = []
    paths, points = _occupied(ax, exclude=legend)
    for path, filled in paths:
        if path.intersects_bbox(box, filled=filled):
            hits.append("data (line / area)")
            break
    for cloud in points:
        x, y, r = cloud.T
        if np.any((x + r > box.x0) & (x - r < box.x1) & (y + r > box.y0) & (y - r < box.y1)):
            hits.append("data (markers)")
            break
    for text in ax.texts:
        if text.get_visible() and text.get_text() and box.overlaps(
                text.get_window_extent(renderer)):
            hits.append(f"text {text.get_text()!r}")
    inside = Bbox.intersection(box, ax.bbox)
    if inside is not None and inside.width > 0.5 and inside.height > 0.5 and (
            inside.width < box.width - 0.5 or inside.height < box.height - 0.5):
        hits.append("the axes frame (partly inside, partly outside)")
    elif inside is None or inside.width <= 0.5 or inside.height <= 0.5:
        for other in ax.figure.axes:
            if not other.get_visible():
                continue
            labels = [other.xaxis.label, other.yaxis.label, other.title,
                      *other.get_xticklabels(), *other.get_yticklabels()]
            for label in labels:
                if label.get_visible() and label.get_text() and box.overlaps(
                        label.get_window_extent(renderer)):
                    hits.append(f"label {label.get_text()!r}")
            if other is not ax and box.overlaps(other.bbox):
                hits.append("another axes")
    return hits


def place_legend(ax: Axes, **kwargs: Any) -> Legend | None:
    """Add the legend of ``ax`` where it covers nothing drawn: the first position of
    :data:`LEGEND_LOCATIONS` inside the axes with no collision (:func:`legend_collisions`),
    tried with the requested ``ncols`` and then in one column; else outside, to the right of
    the axes (top-aligned, one column). ``kwargs`` go to ``Axes.legend`` (``loc`` and
    ``bbox_to_anchor`` are chosen here). Call it after everything is drawn and the axis
    limits are final (for a constrained-layout figure, the layout is run first). Nothing
    labelled on ``ax``: no legend (None)."""
    if not ax.get_legend_handles_labels()[0]:
        return None
    fig = ax.figure
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ncols in dict.fromkeys((kwargs.pop("ncols", 1), 1)):
        legend = ax.legend(loc=LEGEND_LOCATIONS[0], ncols=ncols, **kwargs)
        for loc in LEGEND_LOCATIONS:
            legend.set_loc(loc)
            if not legend_collisions(ax, legend, renderer):
                return legend
        legend.remove()
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     **kwargs)


def hist_with_ratio(
    ax_main: Axes,
    ax_ratio: Axes,
    reference: np.ndarray,
    others: Mapping[str, np.ndarray],
    bins: int | np.ndarray,
    *,
    reference_label: str = "Reference",
    xlabel: str | None = None,
    ratio_label: str = "Ratio",
    ratio_range: tuple[float, float] = (0.5, 1.5),
    logy: bool = False,
) -> dict[str, int]:
    """Histograms of ``reference`` and each of ``others``, each normalised to its full sample
    size, plus their ratio panel.

    ``reference`` and every entry of ``others`` are 1-D samples; ``bins`` is a count (edges
    from :func:`default_bins` of all samples) or an array of edges. The reference's statistical
    uncertainty is a grey band around 1 in the ratio panel; other samples carry Poisson error
    bars. Ratio points outside ``ratio_range`` — also +inf where only the other sample fills
    a bin, and 0 where only the reference does — are marked by arrows at the panel's edge
    (:func:`mark_out_of_range`). Returns, per sample (reference under ``reference_label``),
    the number of values that fell outside the bins or were non-finite; the legend shows them,
    split into below / above / non-finite (:func:`outside_label`).
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    if np.isscalar(bins):
        bins = default_bins(reference, *others.values(), n_bins=int(bins))
    bins = np.asarray(bins, dtype=np.float64)
    centres = 0.5 * (bins[1:] + bins[:-1])

    ref_density, ref_err, ref_outside = _density(reference, bins)
    outside = {reference_label: ref_outside}
    hep.histplot(
        ref_density, bins, ax=ax_main, color=REFERENCE_COLOR, histtype="fill", alpha=0.25,
        label=outside_label(reference_label, outside_counts(reference, bins)),
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_err = np.where(ref_density > 0, ref_err / ref_density, np.nan)
    ax_ratio.stairs(1 + rel_err, bins, baseline=1 - rel_err, fill=True, color="grey", alpha=0.4)
    ax_ratio.axhline(1.0, color=REFERENCE_COLOR, lw=1)

    for name, sample in others.items():
        density, err, n_out = _density(sample, bins)
        outside[name] = n_out
        artists = hep.histplot(
            density, bins, yerr=err, ax=ax_main, histtype="step",
            label=outside_label(name, outside_counts(sample, bins)),
        )
        color = artists[0].stairs.get_edgecolor()
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref_density > 0, density / ref_density,
                             np.where(density > 0, np.inf, np.nan))
            ratio_err = np.where(ref_density > 0, err / ref_density, np.nan)
        drawn = np.isfinite(ratio)
        ax_ratio.errorbar(centres[drawn], ratio[drawn], yerr=ratio_err[drawn], fmt="o", ms=3,
                          color=color)
        mark_out_of_range(ax_ratio, centres, ratio, ratio_range, color=color)

    ax_main.set_ylabel("Normalised density")
    if logy:
        ax_main.set_yscale("log")
    ax_ratio.set_ylim(*ratio_range)
    ax_ratio.set_ylabel(ratio_label, fontsize="small")  # the panel is low: no overlap
    ax_ratio.set_xlim(bins[0], bins[-1])
    if xlabel:
        ax_ratio.set_xlabel(xlabel)
    place_legend(ax_main, fontsize="small")
    return outside

