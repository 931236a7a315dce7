"""Transfer study: the tiny preset end to end, resume, redo of a removed cell, failures
recorded and retried; power-law fits, the "D needed" inversion and the fine-tuned-vs-scratch
verdicts on synthetic curves; configuration errors."""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from io_jets import random_jets

from jetfm.checkpoint import load_model, prefixed
from jetfm.cli import main
from jetfm.data.batch import JetBatch
from jetfm.data.classes import class_index
from jetfm.data.io import read_jets
from jetfm.studies import transfer
from jetfm.studies.transfer import (
    Cell,
    Target,
    TransferConfig,
    generation_cells,
    load_config,
    run,
)
from jetfm.studies.transfer_summary import (
    closing_note,
    compare,
    d_needed,
    fit_curve,
    needed_by_scratch,
    seed_point,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    config = load_config("tiny")
    return config, out, run(config, out)


def result(out, cell: Cell) -> dict:
    return json.loads((cell.path(out) / "result.json").read_text())


def test_tiny_preset_produces_every_cell(study):
    config, out, summary = study
    n_generation = 2 * len(config.sizes) * len(config.seeds) * 2
    n_tagging = len(config.tagging_sizes) * len(config.seeds) * 2
    assert summary["cells"] == {"generation": n_generation, "tagging": n_tagging, "failed": 0,
                                "expected": n_generation + n_tagging}
    assert summary["this_run"]["generation"] == {"run": n_generation, "skipped": 0, "failed": 0}
    assert len(summary["curves"]) == 2 * 2 * 5 * 2  # targets x metrics x observables x modes
    for curve in summary["curves"]:
        assert [p["D"] for p in curve["points"]] == config.sizes
        for p in curve["points"]:  # seed means of the cells' own numbers
            rows = [result(out, Cell(curve["target"], p["D"], s, curve["mode"]))["metrics"][
                f"{curve['metric']} {curve['observable']}"] for s in config.seeds]
            assert p["n_seeds"] == len(config.seeds)
            assert p["floor"] == pytest.approx(np.mean([r["floor"] for r in rows]))
            assert p["mean"] == pytest.approx(np.mean([r["value"] for r in rows]))
        # two D: no power-law fit (both parameters fixed, no error), and the table says why
        assert curve["fit"] is None and curve["no_fit_reason"] == "2 point(s), a fit needs 3"
    assert {(r["D"], r["mode"]) for r in summary["tagging"]} == {
        (d, m) for d in config.tagging_sizes for m in ("finetune", "scratch")}
    for row in summary["tagging"]:  # seed means of the tagging cells, tested on all truth
        cells = [result(out, Cell("tagging", row["D"], s, row["mode"])) for s in config.seeds]
        assert row["auc"] == pytest.approx(np.mean([c["auc"] for c in cells]))
        assert all(c["n_test_jets"] == 2 * config.n_truth for c in cells)
        assert all(c["n_train_jets"] + c["n_val_jets"] == row["D"] for c in cells)
    assert "gamma, fine-tuned" in summary["closing_note"]
    assert "Paper's finding" in summary["closing_note"]
    for name in ("summary.md", "summary.json", "report.md", "plots/transfer_qcd.png",
                 "plots/transfer_top.png"):
        assert (out / name).stat().st_size > 0
    assert "plots/transfer_top.png" in (out / "report.md").read_text()


def test_cells_use_the_right_tokenizer_truth_frame_and_initialisation(study):
    config, out, _ = study
    fingerprints = {}
    for cell in generation_cells(config):
        r = result(out, cell)
        fingerprints.setdefault((cell.target, cell.mode), set()).add(r["tokenizer"])
        pt = r["metrics"]["KL pt"]
        # floor from the truth: a pseudo-generated part of the generated size and the rest,
        # the generated jets compared with that same rest
        assert pt["n_reference"] == config.n_truth - pt["n_generated"]
        assert pt["n_generated"] + r["sampling"]["n_empty"] == config.n_generate
        jets = read_jets([str(cell.path(out) / "generated.parquet")])
        assert np.all(jets.label == class_index({"qcd": "QCD", "top": "Tbqq"}[cell.target]))
        assert jets.n_particles.max() <= config.n_max
        # fixed scratch tokenizer: the whole training pool (60 jets), at every D
        assert r["tokenizer_target_jets"] == (0 if cell.mode == "finetune" else 60)
    assert all(len(f) == 1 for f in fingerprints.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["jets"]["qcd pool"] == summary["jets"]["qcd tokenizer"] == 60
    assert [(r["target"], r["D"], r["target jets"]) for r in summary["scratch_tokenizer"]] == [
        (t, d, 60) for t in ("qcd", "top") for d in config.sizes]
    assert "| 60 target jets |" in (out / "summary.md").read_text()
    ft = {t: fingerprints[t, "finetune"].pop() for t in ("qcd", "top")}
    sc = {t: fingerprints[t, "scratch"].pop() for t in ("qcd", "top")}
    assert ft["qcd"] == ft["top"]  # the source tokenizer
    assert len({ft["qcd"], sc["qcd"], sc["top"]}) == 3  # each target has its own

    pre, _ = load_model(out / "source/pretrain/backbone.safetensors")
    pre = prefixed(pre, "backbone")

    def distance(cell: Cell) -> float:
        state = prefixed(load_model(cell.path(out) / "backbone.safetensors")[0], "backbone")
        return sum(float(torch.sum((state[k] - pre[k]) ** 2)) for k in pre if "blocks" in k)

    size = config.sizes[0]
    assert distance(Cell("top", size, 1, "finetune")) < 0.1 * distance(
        Cell("top", size, 1, "scratch"))


def test_rerun_skips_done_cells_redoes_removed_ones_and_records_failures(study, monkeypatch):
    config, out, _ = study
    cells = generation_cells(config)
    removed, failing = cells[0], cells[-1]
    before = {c: (c.path(out) / "result.json").stat().st_mtime_ns for c in cells}
    old = result(out, removed)
    for cell in (removed, failing):
        shutil.rmtree(cell.path(out))
    original = transfer.generation_cell

    def flaky(cell, *args):
        if cell == failing:
            raise RuntimeError("injected failure")
        return original(cell, *args)

    drawn = []  # plots are checked above; here only whether they are redrawn
    monkeypatch.setattr(transfer, "plot_study", lambda summary, *args: drawn.append(summary))
    monkeypatch.setattr(transfer, "generation_cell", flaky)
    summary = run(config, out)
    assert summary["this_run"]["generation"] == {"run": 1, "skipped": len(cells) - 2,
                                                 "failed": 1}
    assert summary["this_run"]["tagging"]["run"] == 0
    assert "injected failure" in json.loads((failing.path(out) / "failed.json").read_text())[
        "error"]
    assert [(f["target"], f["size"], f["mode"]) for f in summary["failed"]] == [
        (failing.target, failing.size, failing.mode)]
    assert summary["cells"]["generation"] == len(cells) - 1
    for cell in cells:
        if cell not in (removed, failing):
            assert (cell.path(out) / "result.json").stat().st_mtime_ns == before[cell]
    redone = result(out, removed)  # seeded: the redone cell reproduces its numbers
    for key, row in old["metrics"].items():
        assert redone["metrics"][key]["value"] == pytest.approx(row["value"], rel=1e-9)

    monkeypatch.setattr(transfer, "generation_cell", original)
    summary = run(config, out)
    assert summary["this_run"]["generation"] == {"run": 1, "skipped": len(cells) - 1,
                                                 "failed": 0}
    assert not (failing.path(out) / "failed.json").exists()
    assert summary["failed"] == [] and summary["cells"]["generation"] == len(cells)
    assert len(drawn) == 2
    summary = run(config, out)  # nothing left to do: no cell runs, no plot is redrawn
    assert summary["this_run"]["generation"] == {"run": 0, "skipped": len(cells), "failed": 0}
    assert len(drawn) == 2


def test_scratch_tokenizer_of_a_d_cell_sees_only_its_d_jets(tmp_path, monkeypatch):
    """scratch_tokenizer_jets: d trains the scratch cell's tokenizer on (up to tokenizer_jets
    of) the cell's D training jets, never on other pool jets; the table's count says so."""
    jets = random_jets(70, seed=4, n_min=3, n_max=12)
    order = np.random.default_rng(0).permutation(70)
    target = Target("qcd", jets, order[:20], order[20:])
    config = load_config("tiny")
    config.scratch_tokenizer_jets, config.tokenizer_jets = "d", 15
    seen = []
    real = transfer.fit_token_model

    def spy(batch, *args, **kwargs):
        seen.append(batch.jet_p4)
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(transfer, "fit_token_model", spy)
    idx = target.training(20, 1, config.seed)
    tokenizer, tokens, truth = transfer.cell_tokenizer(target, idx, config, tmp_path)
    np.testing.assert_array_equal(seen[0], jets.jet_p4[idx[:15]])  # the first 15 of the D
    assert len(tokens) == 20 and tokens.tokenizer["fingerprint"] == tokenizer.fingerprint
    assert len(truth) == 20 and truth.n_particles.max() <= config.n_max
    assert transfer.tokenizer_target_jets(config, "scratch", len(target.pool), 20) == 15
    assert transfer.tokenizer_target_jets(config, "scratch", len(target.pool), 10) == 10
    assert transfer.tokenizer_target_jets(config, "finetune", len(target.pool), 20) == 0
    config.scratch_tokenizer_jets = "fixed"
    assert transfer.tokenizer_target_jets(config, "scratch", 50, 10) == 15  # pool, capped
    config.tokenizer_jets = None
    assert transfer.tokenizer_target_jets(config, "scratch", 50, 10) == 50


def test_training_jets_are_nested_disjoint_from_truth_and_seeded():
    jets = JetBatch.from_ptetaphi([[10.0]] * 50, [[0.0]] * 50, [[0.0]] * 50)
    order = np.random.default_rng(0).permutation(50)
    target = Target("qcd", jets, order[:10], order[10:])
    small, large = target.training(5, 1, 3), target.training(30, 1, 3)
    assert np.array_equal(small, large[:5])
    assert not set(large) & set(target.truth)
    assert np.array_equal(target.training(30, 1, 3), large)
    assert not np.array_equal(target.training(30, 2, 3), large)


def test_seed_point_and_power_law_fit_recover_gamma():
    values, errors = np.array([1.0, 2.0, 4.0]), np.array([0.1, 0.2, 0.2])
    point = seed_point(values, errors)
    assert point["mean"] == pytest.approx(values.mean())
    assert (point["min"], point["max"]) == (1.0, 4.0)
    assert point["error"] == pytest.approx(
        math.sqrt(np.var(values, ddof=1) + np.mean(errors**2)) / math.sqrt(3))
    rng = np.random.default_rng(1)
    sizes = np.array([1e2, 1e3, 1e4, 1e5, 1e6])
    truth = 2.5 * sizes**-0.33
    points = [{"D": d, "mean": m * (1 + 0.02 * rng.normal()), "error": 0.02 * m}
              for d, m in zip(sizes, truth, strict=True)]
    fit, reason = fit_curve(points)
    assert reason == ""
    assert fit.gamma == pytest.approx(0.33, abs=3 * fit.gamma_err)
    assert fit.gamma_err < 0.02
    assert fit_curve(points[:1]) == (None, "1 point(s), a fit needs 3")
    assert fit_curve(points[:2]) == (None, "2 point(s), a fit needs 3")  # no error from 2


def test_d_needed_and_verdicts_on_synthetic_curves():
    assert d_needed(3.0, 0.4, 3.0 * 5000**-0.4) == pytest.approx(5000)
    assert d_needed(1.0, 0.0, 0.5) == math.inf
    assert d_needed(1.0, 1e-4, 0.5) == math.inf  # (a / value)^(1 / gamma) overflows a float
    sizes = [100, 1000, 10000]
    scratch_law = lambda d: 2.0 * d**-0.3  # noqa: E731
    # fine-tuned: what scratch reaches with 10.5x the jets; at the largest D, with 0.9x
    finetune = [scratch_law(10.5 * 100), scratch_law(10.5 * 1000), scratch_law(9000)]

    def curve(mode, values):
        points = [{"D": d, "mean": v, "error": 0.01 * v} for d, v in
                  zip(sizes, values, strict=True)]
        fit, _ = fit_curve(points)
        return {"target": "top", "metric": "W1", "observable": "mass", "mode": mode,
                "points": points, "fit": {"a": fit.a, "gamma": fit.gamma}}

    curves = [curve("finetune", finetune), curve("scratch", [scratch_law(d) for d in sizes])]
    rows = needed_by_scratch(curves)
    assert [r["ratio"] for r in rows] == pytest.approx([10.5, 10.5, 0.9])
    assert [r["interpolated"] for r in rows] == [True, False, True]
    (comparison,) = compare(curves)
    assert [p["verdict"] for p in comparison["points"]] == ["helps", "helps", "hurts"]
    assert comparison["stops_helping_at"] == 10000
    note = closing_note({"curves": curves, "comparison": [comparison], "d_needed": rows,
                         "tagging": []})
    # the D = 1000 point needs 10,500 scratch jets: beyond the measured sizes, left out
    assert ("scratch needs >= 10x the fine-tuned D at 1 of 2 fine-tuned points inside the "
            "measured range (median factor 5.7; 1 points would need extrapolating") in note
    assert "stops helping (better in fewer than half of them) from D = 10000" in note
    assert "holds only partly here; median factor 5.7 over 2 points" in note


def test_a_kl_at_its_cap_gets_no_significance():
    """Disjoint samples put KL at ln(1 / KL_EPSILON) with a vanishing bootstrap error: the
    comparison says "saturated" instead of a many-sigma verdict."""
    def curve(mode, means, errors, metric="KL"):
        return {"target": "qcd", "metric": metric, "observable": "pt", "mode": mode,
                "points": [{"D": d, "mean": m, "error": e} for d, m, e in
                           zip([20, 60], means, errors, strict=True)]}

    cap = math.log(1e8)
    kl = compare([curve("finetune", [cap, 5.0], [1e-6, 0.5]),
                  curve("scratch", [12.8, 6.0], [1.3, 0.5])])[0]
    assert [p["verdict"] for p in kl["points"]] == ["saturated", "compatible"]
    assert math.isnan(kl["points"][0]["significance"])
    w1 = compare([curve("finetune", [cap, 5.0], [1e-6, 0.5], "W1"),  # W1 has no cap
                  curve("scratch", [12.8, 6.0], [1.3, 0.5], "W1")])[0]
    assert w1["points"][0]["verdict"] == "hurts"


def test_bad_configs_raise_clear_errors(tmp_path, capsys):
    path = tmp_path / "override.yaml"
    cases = {
        "sizez: [100]\n": "unknown keys ['sizez']",
        "finetuning: {lr_rate: 0.1}\n": "finetuning: unknown keys ['lr_rate']",
        "gpt: {width: 8}\n": "gpt: unknown keys ['width']",
        "sizes: [12.5]\n": "not a positive whole number",
        "n_generate: 60\n": "n_truth (80) must be at least 2 n_generate",
        "files: {aoj: x.h5}\n": "files: unknown keys ['aoj']",
        "scratch_tokenizer_jets: D\n": "scratch_tokenizer_jets: 'D'; use one of fixed, d",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=re.escape(message)) as err:
            load_config("tiny", path)
        assert str(path) in str(err.value)
    path.write_text("sizes: ['1e4']\nfinetuning: {lr: 0.5}\n")
    config = load_config("tiny", path)
    assert config.sizes == [10000]
    assert config.finetuning["lr"] == 0.5 and config.finetuning["max_steps"] == 8  # merged
    with pytest.raises(FileNotFoundError):
        load_config("laptop")
    path.write_text("sizez: [100]\n")
    assert main(["study", "transfer", "--preset", "tiny", "--config", str(path),
                 "--out", str(tmp_path / "run")]) == 2
    assert "unknown keys ['sizez']" in capsys.readouterr().err


def test_codebook_tokenizer_in_the_transfer_study(tmp_path):
    """tokenizer_model: codebook fits the feature codebook with the codebook block; its keys
    join the tokenizer records (VQ-VAE records keep theirs); a VQ-VAE block beside it is
    refused."""
    config = load_config("tiny")
    vq_keys = config.tokenizer_keys
    assert "codebook" not in vq_keys
    config.tokenizer_model, config.vqvae, config.tokenizer_training = "codebook", {}, {}
    config.codebook = {"codebook_size": 16, "max_iter": 3}
    assert set(config.tokenizer_keys) == {*vq_keys, "tokenizer_model", "codebook"}
    tokenizer = config.fit_tokenizer(random_jets(40, seed=2, n_min=3, n_max=12),
                                     tmp_path / "tok")
    assert tokenizer.kind == "codebook" and tokenizer.codebook_size == 16
    assert (tmp_path / "tok" / "tokenizer.safetensors").exists()
    with pytest.raises(ValueError, match=r"\['vqvae'\] would not be used"):
        TransferConfig(tokenizer_model="codebook", vqvae={"dim": 8})
    with pytest.raises(ValueError, match="tokenizer_model: 'kmeans'"):
        TransferConfig(tokenizer_model="kmeans")
