"""Amplitude regression (Spinner's thesis, chapter 6.2; Spinner et al. 2024,
arXiv:2405.14806, Sec. 4): L-GATr against a transformer and an MLP, trained on standardised
log squared amplitudes with MSE, as a function of the training-set size, per process.

    jetfm study amplitudes --config amplitudes_cpu [--out DIR] [KEY=VALUE ...]

Orchestration only: data from :func:`jetfm.physics.amplitudes.generate` (RAMBO phase space,
the cut s_ij > y_cut s, the exact e+e- -> q qbar g amplitude and the leading-colour antenna
surrogate for more gluons: see that module), models from :mod:`jetfm.models.amplitude`,
training and metrics from :mod:`jetfm.tasks.amplitude`.

Per process (``processes``): ``n_test`` held-out points, then the validation and training
pools; for each training size D of ``sizes`` the first D pool points train (nested in D) and
``val_fraction`` D (at least :data:`MIN_VAL`) validation points pick the best epoch; the
targets are standardised with the training set's mean and standard deviation of log A. Each
model of ``models`` (registered names: ``lgatr``, ``transformer``, ``mlp``; each a block
``{config: {...}, training: {...}}``, ``training`` overriding the shared ``training`` block:
:class:`~jetfm.tasks.training.TrainConfig` keys) is trained once per network seed of
``seeds`` (initial weights and batch order; the data are fixed by ``seed``). ``task``:
:class:`~jetfm.tasks.amplitude.AmplitudeTaskConfig` (scheduler, gradient clipping).

Reported on the test points (table.md, summary.json, summary.md; mean and standard deviation
over the seeds): the MSE of the standardised log amplitude (the thesis' metric), the
half-width of the central 68 % interval of Delta = (A_pred - A_true) / A_true, the median
|Delta|, the fraction with |Delta| < 1 %, and ``boost_shift``: the RMS change of the
standardised prediction when every test event is boosted (rapidity ``boost_rapidity`` in a
random direction) and rotated at random (0 for a Lorentz-invariant network up to float32
rounding). Plots: the |Delta| distribution at the largest D (one curve per model) and the
Delta width vs D, per process. Each cell is a resumable stage
(``stages/cells/<process>/D<D>/<model>_s<seed>.json``); a rerun resumes a cut-off training
from its last checkpoint. Layout::

    data/<process>.npz, .json      momenta (events, particles, 4) [GeV], A; cut report
    cells/<process>/D<D>/<model>_s<seed>/   logs, checkpoints, result.json, test_pred.npy
    plots/delta_<process>.png, plots/width_<process>.png
    table.md, summary.md, summary.json
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.atomic import atomic_path, write_text_atomic
from jetfm.checks import POSITIVE, Rule, check_fields, number
from jetfm.console import Console
from jetfm.report import markdown_table, write_json
from jetfm.studies import (
    Stage,
    config_from_yaml,
    file_digest,
    start_cell,
    torch_threads,
    training_log,
)

console = Console(soft_wrap=True, emoji=False)
MIN_VAL = 50
"""Fewest validation points of a cell."""
MODEL_KEYS = ("config", "training")
MODEL_LABELS = {"lgatr": "L-GATr", "transformer": "Transformer", "mlp": "MLP"}


@dataclass
class AmplitudeStudyConfig:
    """The study's configuration (module docstring); ``ValueError`` naming the key.

    ``sqrt_s`` [GeV] (the massless amplitudes scale as s^-n, so it only sets the units),
    ``y_cut`` (:func:`jetfm.physics.amplitudes.cut_mask`), ``boost_rapidity`` (> 0) of the
    invariance check, ``threads``: torch CPU threads (0: torch's default; 1 is fastest on a
    machine shared with other jobs, where idle intra-op threads spin: measured 6x more CPU
    time per L-GATr step with 2 threads than with 1 on a loaded 2-core machine)."""

    processes: list[str] = field(default_factory=lambda: ["ee_qqg", "ee_qq2g"])
    sqrt_s: float = 500.0
    y_cut: float = 0.01
    sizes: list[int] = field(default_factory=lambda: [1000, 10000, 100000])
    val_fraction: float = 0.25
    n_test: int = 10000
    seed: int = 1
    seeds: list[int] = field(default_factory=lambda: [1])
    models: dict[str, Any] = field(default_factory=lambda: {
        "lgatr": {}, "transformer": {}, "mlp": {}})
    training: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] = field(default_factory=dict)
    boost_rapidity: float = 1.0
    threads: int = 0

    def __post_init__(self) -> None:
        from jetfm.models.amplitude import regressor_class
        from jetfm.physics.amplitudes import get_process
        from jetfm.tasks.amplitude import AmplitudeTaskConfig

        check_fields(self, {"sqrt_s": POSITIVE, "n_test": Rule(int, low=10),
                            "y_cut": Rule(float, low=0, high=1, low_open=True,
                                          high_open=True),
                            "val_fraction": Rule(float, low=0, low_open=True),
                            "seed": Rule(int, low=0), "boost_rapidity": POSITIVE,
                            "threads": Rule(int, low=0)})
        if not isinstance(self.processes, list) or not self.processes:
            raise ValueError(f"processes: a list of process names, got {self.processes!r}")
        for name in self.processes:
            try:
                get_process(name)
            except ValueError as err:
                raise ValueError(f"processes: {err}") from None
        if len(set(self.processes)) != len(self.processes):
            raise ValueError(f"processes: {self.processes} lists a process twice")
        for name in self.processes:
            # the n(n-1)/2 invariants s_ij of n massless partons sum to s: none passes a cut
            # s_ij > y_cut s with y_cut >= 2 / (n (n - 1))
            n = get_process(name).n_particles - 2
            if self.y_cut >= 2 / (n * (n - 1)):
                raise ValueError(f"y_cut: {self.y_cut} >= 2 / (n (n - 1)) = {2 / (n * (n - 1)):.4g}"
                                 f" for the {n} final-state partons of {name}: their pair "
                                 "invariants sum to s, so no point passes s_ij > y_cut s")
        for key, low in (("sizes", 2), ("seeds", 0)):
            values = getattr(self, key)
            if not isinstance(values, list) or not values:
                raise ValueError(f"{key}: a list of whole numbers, got {values!r}")
            checked = [number(key, v, Rule(int, low=low)) for v in values]
            if len(set(checked)) != len(checked):
                raise ValueError(f"{key}: {values} lists a value twice")
        self.sizes = sorted(number("sizes", v, Rule(int)) for v in self.sizes)
        for block in ("models", "training", "task"):
            if not isinstance(getattr(self, block), dict):
                raise ValueError(f"{block}: expected a mapping of keys, got "
                                 f"{getattr(self, block)!r}")
        if not self.models:
            raise ValueError("models: give at least one model (lgatr, transformer, mlp)")
        try:
            AmplitudeTaskConfig(**self.task)
        except (TypeError, ValueError) as err:
            raise ValueError(f"task: {err}") from None
        for name, block in self.models.items():
            try:
                regressor_class(name)
            except ValueError as err:
                raise ValueError(f"models: {err}") from None
            block = block or {}
            if not isinstance(block, dict) or set(block) - set(MODEL_KEYS):
                raise ValueError(f"models: {name}: a mapping with keys {list(MODEL_KEYS)}, "
                                 f"got {block!r}")
            self.model_config(name)
            self.train_config(name, 1)

    def model_config(self, name: str) -> Any:
        """The model's config dataclass (``ValueError`` naming the block otherwise)."""
        from jetfm.checks import from_mapping
        from jetfm.models.amplitude import regressor_class

        cls = regressor_class(name).config_class
        return from_mapping(cls, (self.models[name] or {}).get("config") or {},
                            f"models: {name}: config")

    def train_config(self, name: str, seed: int) -> Any:
        """The shared ``training`` block overridden by the model's own, with ``seed``."""
        from jetfm.tasks.training import TrainConfig

        merged = {**self.training, **((self.models[name] or {}).get("training") or {})}
        return TrainConfig.from_overrides(merged, seed, f"training of model {name}")

    def n_val(self, d: int) -> int:
        """Validation points of a cell with D training points."""
        return max(MIN_VAL, round(self.val_fraction * d))

    @property
    def n_points(self) -> int:
        """Points per process: test, the largest validation set and training set."""
        return self.n_test + self.n_val(self.sizes[-1]) + self.sizes[-1]

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = ()) -> AmplitudeStudyConfig:
        """The config in the YAML file ``path`` with the command-line ``KEY=VALUE``
        ``overrides`` (:func:`jetfm.studies.config_from_yaml`)."""
        return config_from_yaml(path, cls, overrides)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> AmplitudeStudyConfig:
    """:meth:`AmplitudeStudyConfig.from_yaml`."""
    return AmplitudeStudyConfig.from_yaml(path, overrides)


# ----------------------------------------------------------------------------- data
def data_stage(config: AmplitudeStudyConfig, process: str, out_dir: Path
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], str]:
    """(momenta (n_points, particles, 4) [GeV], A (n_points,), the cut report, the file's
    digest) of ``process``: made once, reused while the settings are the same."""
    from jetfm.physics.amplitudes import generate

    path = out_dir / "data" / f"{process}.npz"
    report_path = path.with_suffix(".json")
    keys = {"process": process, "sqrt_s": config.sqrt_s, "y_cut": config.y_cut,
            "n_points": config.n_points, "seed": config.seed}
    stage = Stage(out_dir, f"data_{process}", keys, outputs=[path, report_path])
    if not stage.prepare():
        start = time.perf_counter()
        p4, amplitude, report = generate(process, config.n_points, config.sqrt_s,
                                         config.y_cut, seed=config.seed)
        report["seconds"] = time.perf_counter() - start
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, p4=p4, amplitude=amplitude)
        write_json(report_path, report)
        stage.finish()
        console.print(f"{process}: {report['accepted']} of {report['generated']} RAMBO points "
                      f"pass y_cut = {config.y_cut} (efficiency {report['efficiency']:.3f}); "
                      f"{config.n_points} kept")
    with np.load(path) as data:
        p4, amplitude = data["p4"], data["amplitude"]
    return p4, amplitude, json.loads(report_path.read_text()), file_digest(path)


# ----------------------------------------------------------------------------- cells
def run_cell(config: AmplitudeStudyConfig, process: str, d: int, model_name: str, seed: int,
             splits: dict[str, tuple[np.ndarray, np.ndarray]], cell: Path, device: str
             ) -> dict[str, Any]:
    """Train one model on the first D pool points and evaluate it on the test points."""
    from jetfm.models.amplitude import build_regressor, count_parameters
    from jetfm.physics.amplitudes import N_TYPES, get_process, random_lorentz, transform
    from jetfm.tasks.amplitude import (
        AmplitudeTaskConfig,
        LogAmplitudeScaler,
        error_summary,
        predict,
        train_regressor,
    )
    from jetfm.tasks.training import seed_all

    p4_pool, a_pool = splits["train"]
    p4_vpool, a_vpool = splits["val"]
    p4_test, a_test = splits["test"]
    p4_train, a_train = p4_pool[:d], a_pool[:d]
    n_val = config.n_val(d)
    p4_val, a_val = p4_vpool[:n_val], a_vpool[:n_val]
    scaler = LogAmplitudeScaler.fit(a_train, f"{process} training amplitudes")
    training = config.train_config(model_name, seed)
    seed_all(seed)
    model = build_regressor(model_name, asdict(config.model_config(model_name)),
                            get_process(process).types, N_TYPES)
    checkpoint = cell / "checkpoints" / "last.ckpt"
    start = time.perf_counter()
    model = train_regressor(model, p4_train, scaler.transform(a_train), p4_val,
                            scaler.transform(a_val), training, cell,
                            AmplitudeTaskConfig(**config.task),
                            resume=checkpoint if checkpoint.exists() else None)
    seconds = time.perf_counter() - start
    y_pred = predict(model, p4_test, device=device)
    y_true = scaler.transform(a_test)
    result: dict[str, Any] = {"n_train": d, "n_val": n_val, "n_test": len(a_test),
                              "parameters": count_parameters(model),
                              **error_summary(y_pred, y_true, scaler)}
    rng = np.random.default_rng(config.seed + 7)
    boosted = transform(p4_test, random_lorentz(len(p4_test), config.boost_rapidity, rng))
    shift = predict(model, boosted, device=device) - y_pred
    result["boost_shift"] = float(np.sqrt(np.mean(shift ** 2)))
    log = training_log(cell)
    result.update(train_seconds=seconds, epochs=log["epochs"], steps=log["steps"],
                  best_val_loss=log["best_val_loss"], log_a_mean=scaler.mean,
                  log_a_std=scaler.std)
    with atomic_path(cell / "test_pred.npy") as tmp:
        np.save(tmp, np.stack((y_true, y_pred)).astype(np.float64))
    return result


def _device(config: AmplitudeStudyConfig) -> str:
    import torch

    accelerators = {config.train_config(m, 1).accelerator for m in config.models}
    return "cuda" if torch.cuda.is_available() and accelerators & {"auto", "gpu", "cuda"} \
        else "cpu"


def run(config: AmplitudeStudyConfig, out_dir: str | Path) -> dict[str, Any]:
    """The whole study; returns the summary (also ``summary.json``) with ``seconds``. Torch's
    thread count is ``config.threads`` while it runs (restored afterwards)."""
    with torch_threads(config.threads):
        return _run(config, Path(out_dir))


def _run(config: AmplitudeStudyConfig, out_dir: Path) -> dict[str, Any]:
    start = time.perf_counter()
    device = _device(config)
    rows, reports = [], {}
    for process in config.processes:
        p4, amplitude, report, digest = data_stage(config, process, out_dir)
        reports[process] = report
        n_test, n_val = config.n_test, config.n_val(config.sizes[-1])
        splits = {"test": (p4[:n_test], amplitude[:n_test]),
                  "val": (p4[n_test:n_test + n_val], amplitude[n_test:n_test + n_val]),
                  "train": (p4[n_test + n_val:], amplitude[n_test + n_val:])}
        for d in config.sizes:
            for model_name, block in config.models.items():
                for seed in config.seeds:
                    name = f"{model_name}_s{seed}"
                    cell = out_dir / "cells" / process / f"D{d}" / name
                    keys = {"model": model_name, "block": block or {},
                            "training": config.training, "task": config.task,
                            "val_fraction": config.val_fraction, "n_test": config.n_test,
                            "boost_rapidity": config.boost_rapidity, "seed": seed}
                    stage = Stage(out_dir, f"cells/{process}/D{d}/{name}", keys,
                                  {"data": digest},
                                  [cell / "result.json", cell / "test_pred.npy"])
                    if not stage.prepare():
                        start_cell(stage, cell)
                        console.rule(f"{process}: D = {d}, {model_name}, seed {seed}")
                        result = run_cell(config, process, d, model_name, seed, splits, cell,
                                          device)
                        write_json(cell / "result.json", result)
                        stage.finish()
                    result = json.loads((cell / "result.json").read_text())
                    rows.append({"process": process, "D": d, "model": model_name,
                                 "seed": seed, **result})
    table = aggregate(rows)
    plots = write_plots(config, rows, out_dir)
    summary = {"config": asdict(config), "data": reports, "table": table, "rows": rows,
               "plots": [str(p.relative_to(out_dir)) for p in plots],
               "seconds": time.perf_counter() - start}
    write_json(out_dir / "summary.json", summary)
    write_markdown(config, table, reports, plots, out_dir, summary["seconds"])
    return summary


# ----------------------------------------------------------------------------- results
TABLE_METRICS = ("mse", "delta_68", "delta_median_abs", "frac_below_0.01", "boost_shift")


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (process, D, model): the mean over seeds of :data:`TABLE_METRICS` with
    ``<metric>_std`` (standard deviation over seeds, None for one seed), parameters, seeds
    and the mean training time [s]."""
    out = []
    keys = list(dict.fromkeys((r["process"], r["D"], r["model"]) for r in rows))
    for process, d, model in keys:
        cell = [r for r in rows if (r["process"], r["D"], r["model"]) == (process, d, model)]
        row: dict[str, Any] = {"process": process, "D": d, "model": model,
                               "parameters": cell[0]["parameters"], "seeds": len(cell)}
        for metric in TABLE_METRICS:
            values = np.array([r[metric] for r in cell], dtype=float)
            row[metric] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
        row["train_seconds"] = float(np.mean([r["train_seconds"] for r in cell]))
        out.append(row)
    return out


def write_plots(config: AmplitudeStudyConfig, rows: list[dict[str, Any]], out_dir: Path
                ) -> list[Path]:
    """Per process: |Delta| histograms at the largest D (first seed, one curve per model)
    and the Delta 68 % half-width vs D (mean and standard deviation over seeds)."""
    import matplotlib.pyplot as plt

    from jetfm.physics.amplitudes import get_process
    from jetfm.plots.style import place_legend, save_figure, use_style
    from jetfm.tasks.amplitude import LogAmplitudeScaler, relative_error

    use_style()
    paths = []
    bins = np.geomspace(1e-6, 1e2, 57)
    for process in config.processes:
        title = get_process(process).title
        d_max, seed = config.sizes[-1], config.seeds[0]
        fig, ax = plt.subplots(figsize=(8, 6))
        for model in config.models:
            folder = out_dir / "cells" / process / f"D{d_max}" / f"{model}_s{seed}"
            result = json.loads((folder / "result.json").read_text())
            y_true, y_pred = np.load(folder / "test_pred.npy")
            scaler = LogAmplitudeScaler(result["log_a_mean"], result["log_a_std"])
            delta = np.abs(relative_error(scaler.inverse(y_pred), scaler.inverse(y_true)))
            below, above = int((delta < bins[0]).sum()), int((delta > bins[-1]).sum())
            extra = f"; {below} below, {above} above the range" if below or above else ""
            ax.hist(delta, bins=bins, histtype="step", density=False, linewidth=2,
                    weights=np.full(len(delta), 1.0 / len(delta)),
                    label=f"{MODEL_LABELS.get(model, model)}: "
                          rf"$\Delta_{{68}}$ = {result['delta_68']:.2g}{extra}")
        ax.set_xscale("log")
        ax.set_xlabel(r"$|\Delta| = |A_\mathrm{pred} - A_\mathrm{true}| / A_\mathrm{true}$")
        ax.set_ylabel("Fraction of test points")
        ax.set_title(f"{title}, D = {d_max}", fontsize="medium")
        place_legend(ax, fontsize="x-small")
        paths.append(save_figure(fig, out_dir / "plots" / f"delta_{process}.png"))

        fig, ax = plt.subplots(figsize=(8, 6))
        for model in config.models:
            sizes, means, errors = [], [], []
            for d in config.sizes:
                values = [r["delta_68"] for r in rows
                          if (r["process"], r["D"], r["model"]) == (process, d, model)]
                sizes.append(d)
                means.append(np.mean(values))
                errors.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
            ax.errorbar(sizes, means, yerr=errors, marker="o", capsize=3,
                        label=MODEL_LABELS.get(model, model))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Training points $D$")
        ax.set_ylabel(r"$\Delta_{68}$ (central 68 % half-width)")
        ax.set_title(title, fontsize="medium")
        place_legend(ax, fontsize="small")
        paths.append(save_figure(fig, out_dir / "plots" / f"width_{process}.png"))
    return paths


def write_markdown(config: AmplitudeStudyConfig, table: list[dict[str, Any]],
                   reports: dict[str, dict[str, Any]], plots: list[Path], out_dir: Path,
                   seconds: float) -> None:
    """``table.md`` (the results table) and ``summary.md`` (table, data, plots)."""
    columns = ["process", "D", "model", "parameters", "seeds",
               *[c for m in TABLE_METRICS for c in (m, f"{m}_std")], "train_seconds"]
    if all(r["seeds"] == 1 for r in table):
        columns = [c for c in columns if not c.endswith("_std")]
    text = markdown_table(table, columns)
    legend = ("mse: of the standardised log A (1 is what predicting the training mean gives, "
              "so mse >= 1 means the network learned nothing); delta_68: half-width of the "
              "central 68 % interval of Delta = (A_pred - A_true) / A_true; "
              "delta_median_abs: median |Delta|; frac_below_0.01: share of test points "
              "with |Delta| < 1 %; "
              f"boost_shift: RMS change of the standardised prediction under a random "
              f"rotation and a boost of rapidity {config.boost_rapidity:g} of each test "
              "event (0 for a Lorentz-invariant network up to float32 rounding).")
    write_text_atomic(out_dir / "table.md", "# Amplitude regression\n\n" + text + "\n\n"
                      + legend + "\n")
    data_rows = [{"process": p, "generated": r["generated"], "accepted": r["accepted"],
                  "removed_by_cut": r["removed_by_cut"], "efficiency": r["efficiency"]}
                 for p, r in reports.items()]
    lines = ["# Amplitude regression: L-GATr vs transformer vs MLP", "",
             f"e+e- -> q qbar + n g at sqrt(s) = {config.sqrt_s:g} GeV, RAMBO phase space, "
             f"every final-state pair s_ij > {config.y_cut:g} s; {config.n_test} test points "
             f"per process; training sizes {config.sizes}; network seeds {config.seeds}. "
             "ee_qqg is the exact matrix element, ee_qq<n>g the leading-colour antenna "
             "surrogate (jetfm.physics.amplitudes).", "", "## Results", "", text, "",
             legend, "", "## Data", "", markdown_table(data_rows), "", "## Plots", ""]
    lines += [f"![{p.stem}]({p.relative_to(out_dir)})" for p in plots]
    lines += ["", f"Run time of this invocation: {seconds:.0f} s.", ""]
    write_text_atomic(out_dir / "summary.md", "\n".join(lines))


__all__ = ["AmplitudeStudyConfig", "load_config", "run"]
