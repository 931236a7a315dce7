"""Plot building blocks: drawn values equal the input histograms; files are written."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

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
    ratio_points = ax_ratio.lines[-1].get_ydata()
    np.testing.assert_allclose(ratio_points, gen_density / ref_density)
    legend = [t.get_text() for t in ax_main.get_legend().get_texts()]
    assert f"gen ({outside['gen']} outside)" in legend
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
