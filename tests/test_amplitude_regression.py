"""Amplitude regressors (jetfm.models.amplitude), their task (jetfm.tasks.amplitude) and the
study (jetfm.studies.amplitudes): L-GATr's prediction is unchanged by a boost + rotation of
the event and by permutations of identical particles, the baselines' are not; preprocessing,
targets and metrics; the study end to end, resumed, and its config errors."""

import json

import numpy as np
import pytest
import torch
import yaml

from jetfm.models.amplitude import REGRESSORS, build_regressor, count_parameters
from jetfm.physics.amplitudes import N_TYPES, generate, get_process, random_lorentz, transform
from jetfm.tasks.amplitude import LogAmplitudeScaler, error_summary, predict, relative_error

PROCESS = get_process("ee_qq2g")
SMALL = {"lgatr": {"hidden_mv_channels": 4, "hidden_s_channels": 8, "num_blocks": 1,
                   "num_heads": 2},
         "transformer": {"dim": 16, "n_heads": 2, "n_blocks": 1},
         "mlp": {"hidden": 32, "n_layers": 2}}


@pytest.fixture(scope="module")
def data():
    p4, amplitude, _ = generate(PROCESS, 256, 500.0, seed=3)
    return p4, LogAmplitudeScaler.fit(amplitude).transform(amplitude)


@pytest.fixture(scope="module")
def trained(data):
    """Each model after 30 Adam steps on the data, so that its predictions vary from event to
    event (an untrained L-GATr's output is nearly constant, which would make an invariance
    test pass trivially). One torch thread (fastest on a shared machine), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(*data)
    finally:
        torch.set_num_threads(threads)


def _train(p4, y):
    x, target = torch.tensor(p4, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    models = {}
    for name in REGRESSORS:
        torch.manual_seed(0)
        model = build_regressor(name, SMALL[name], PROCESS.types, N_TYPES)
        model.set_preprocessing(p4)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(30):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), target).backward()
            opt.step()
        models[name] = model.eval()
    return models


def test_lorentz_invariance_of_lgatr_only(data, trained):
    p4, _ = data
    moved = transform(p4, random_lorentz(len(p4), 1.0, rng=5))  # boost + rotation per event
    for name, model in trained.items():
        before, after = predict(model, p4), predict(model, moved)
        assert before.std() > 0.05, name  # the check is not trivial
        change = np.abs(after - before)
        if name == "lgatr":
            assert model.lorentz_invariant
            np.testing.assert_allclose(after, before, rtol=1e-3, atol=1e-3)
        else:
            assert not model.lorentz_invariant
            assert change.max() > 1e-2, name


def test_permutations_of_identical_particles(data, trained):
    """e+ <-> e-, q <-> qbar, g <-> g: L-GATr and the transformer (no positional
    information) give the same prediction; the MLP (fixed input order) does not."""
    p4, _ = data
    swapped = p4[:, [1, 0, 3, 2, 5, 4]]
    for name, model in trained.items():
        before, after = predict(model, p4), predict(model, swapped)
        if name == "mlp":
            assert np.abs(after - before).max() > 1e-2
        else:
            np.testing.assert_allclose(after, before, atol=1e-5)


def test_preprocessing(data):
    p4, _ = data
    model = build_regressor("transformer", SMALL["transformer"], PROCESS.types)
    model.set_preprocessing(p4)
    assert float(model.units) == pytest.approx(p4.std(), rel=1e-6)
    z = model.standardised(torch.tensor(p4, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(z.mean(axis=(0, 1)), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 1)), 1.0, rtol=1e-3)
    # the buffers travel with the weights
    state = model.state_dict()
    assert {"units", "mean", "std", "types"} <= set(state)
    assert model.n_types == 3 and model.one_hot(2, torch.float32).shape == (2, 6, 3)


def test_registry_and_bad_input(data):
    p4, _ = data
    assert set(REGRESSORS) == {"lgatr", "transformer", "mlp"}
    with pytest.raises(ValueError, match="regressor 'gnn'"):
        build_regressor("gnn", {}, PROCESS.types)
    with pytest.raises(ValueError, match=r"model config \(mlp\): unknown keys \['width'\]"):
        build_regressor("mlp", {"width": 3}, PROCESS.types)
    with pytest.raises(ValueError, match="dim: 10 must be a multiple of n_heads"):
        build_regressor("transformer", {"dim": 10, "n_heads": 4}, PROCESS.types)
    model = build_regressor("mlp", SMALL["mlp"], PROCESS.types)
    with pytest.raises(ValueError, match=r"shape \(batch, 6, 4\)"):
        model(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="non-finite"):
        model(torch.full((2, 6, 4), float("nan")))
    assert count_parameters(model) == (24 * 32 + 32) + (32 * 32 + 32) + 33
    # the defaults (the thesis' Table A.3 sizes) for e+e- -> q qbar g: counts quoted in the
    # module docstring (thesis: L-GATr 1.8e6, transformer 1.3e6, MLP 7e4)
    types = get_process("ee_qqg").types
    assert [count_parameters(build_regressor(name, {}, types, N_TYPES)) for name in REGRESSORS
            ] == [2_073_826, 1_061_377, 68_865]


def test_targets_and_metrics():
    amplitude = np.exp(np.random.default_rng(1).normal(2.0, 3.0, 500))
    scaler = LogAmplitudeScaler.fit(amplitude)
    y = scaler.transform(amplitude)
    assert y.mean() == pytest.approx(0.0, abs=1e-12) and y.std() == pytest.approx(1.0)
    np.testing.assert_allclose(scaler.inverse(y), amplitude, rtol=1e-12)
    perfect = error_summary(y, y, scaler)
    assert perfect["mse"] == 0 and perfect["delta_68"] == 0 and perfect["frac_below_0.001"] == 1
    # a shift of log A by 0.01 everywhere: Delta = exp(0.01) - 1 for every point
    shifted = error_summary(y + 0.01 / scaler.std, y, scaler)
    assert shifted["delta_median_abs"] == pytest.approx(np.expm1(0.01), rel=1e-9)
    assert shifted["delta_68"] == pytest.approx(0.0, abs=1e-9)
    assert shifted["frac_below_0.01"] == 0 and shifted["frac_below_0.1"] == 1
    assert relative_error(np.array([3.0]), np.array([2.0]))[0] == 0.5
    with pytest.raises(ValueError, match="not positive and finite"):
        LogAmplitudeScaler.fit(np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="got 2 amplitudes but all are equal"):
        LogAmplitudeScaler.fit(np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="need at least 2 amplitudes to standardise, got 1"):
        LogAmplitudeScaler.fit(np.array([1.0]))
    with pytest.raises(ValueError, match="non-finite predictions"):
        error_summary(np.array([np.nan, 0.0]), np.zeros(2), scaler)


TINY = {"processes": ["ee_qqg"], "sizes": [60], "n_test": 40, "val_fraction": 0.25,
        "seeds": [1], "models": {"lgatr": {"config": SMALL["lgatr"]},
                                 "mlp": {"config": SMALL["mlp"]}},
        "training": {"max_steps": 3, "batch_size": 32, "lr": 0.003, "progress": False,
                     "accelerator": "cpu"}, "threads": 1}


def test_study_end_to_end_and_resumed(tmp_path, capsys):
    from jetfm.studies.amplitudes import load_config, run

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    summary = run(load_config(path), out)
    assert [(r["model"], r["D"], r["n_train"], r["n_val"], r["n_test"]) for r in summary["rows"]
            ] == [("lgatr", 60, 60, 50, 40), ("mlp", 60, 60, 50, 40)]
    rows = {r["model"]: r for r in summary["rows"]}
    assert rows["lgatr"]["boost_shift"] < 1e-3 < rows["mlp"]["boost_shift"]
    assert summary["data"]["ee_qqg"]["accepted"] >= 150
    for name in ("table.md", "summary.md", "summary.json", "plots/delta_ee_qqg.png",
                 "plots/width_ee_qqg.png"):
        assert (out / name).stat().st_size > 0, name
    assert "| ee_qqg | 60 | lgatr |" in (out / "table.md").read_text()
    capsys.readouterr()
    # rerun: every stage reused, nothing trained again
    again = run(load_config(path), out)
    assert "redone" not in capsys.readouterr().out
    assert [r["mse"] for r in again["rows"]] == [r["mse"] for r in summary["rows"]]
    # a changed model block redoes that model's cell only
    changed = run(load_config(path, ["models.mlp.config.hidden=16"]), out)
    printed = capsys.readouterr().out
    assert "stage cells/ee_qqg/D60/mlp_s1: redone" in printed and "lgatr_s1: redone" not in printed
    assert json.loads((out / "summary.json").read_text())["rows"][1]["parameters"] == \
        changed["rows"][1]["parameters"] != summary["rows"][1]["parameters"]


@pytest.mark.parametrize(("change", "message"), [
    ({"models": {"gnn": {}}}, "models: regressor 'gnn'"),
    ({"processes": ["ee_mumu"]}, "processes: process 'ee_mumu'"),
    ({"models": {"mlp": {"config": {"width": 2}}}}, r"models: mlp: config: unknown keys"),
    ({"models": {"mlp": {"training": {"max_step": 2}}}}, "training of model mlp: unknown keys"),
    ({"models": {"mlp": {"optimiser": "adam"}}}, "models: mlp: a mapping with keys"),
    ({"sizes": [10, 10]}, "sizes: .* lists a value twice"),
    ({"task": {"scheduler": "step"}}, "task: scheduler: 'step'"),
    ({"seed": -1}, "seed: -1 must be >= 0"),
    ({"seeds": [1, -1]}, "seeds: -1 must be >= 0"),
    ({"y_cut": 0.0}, "y_cut: 0.0 must be > 0"),
    # three massless partons: s_12 + s_13 + s_23 = s, so s_ij > s / 3 is impossible
    ({"y_cut": 1 / 3}, r"y_cut: 0.333.* >= 2 / \(n \(n - 1\)\) = 0.3333 for the 3 "
                       r"final-state partons of ee_qqg"),
    ({"processes": ["ee_qqg", "ee_qq2g"], "y_cut": 0.17}, r"= 0.1667 for the 4 final-state "
                                                          r"partons of ee_qq2g"),
])
def test_config_errors(tmp_path, change, message):
    from jetfm.studies.amplitudes import load_config

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TINY, **change}))
    with pytest.raises(ValueError, match=message):
        load_config(path)
