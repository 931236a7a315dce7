"""The tagging benchmark (``jetfm benchmark tagging``): the tiny preset end to end through
the CLI on tiny generated 5-class data, its resume (a rerun reuses every cell; a changed
model entry redoes only that model's cells), the split, labelled files (``--data``) and the
bad-input errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from tagging_jets import prong_jets

from jetfm.cli import main
from jetfm.data.batch import JetBatch
from jetfm.data.io import write_jets
from jetfm.metrics.tagging import multiclass_summary
from jetfm.models.tagger import load_tagger
from jetfm.studies.benchmark_tagging import (
    PRESETS_DIR,
    BenchmarkConfig,
    budget_text,
    load_config,
    load_data,
    make_split,
    select,
)

TINY = PRESETS_DIR / "benchmark_tagging_tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    assert main(["benchmark", "tagging", "--config", str(TINY), "--out", str(out)]) == 0
    return load_config(TINY), out


def test_tiny_preset_writes_every_cell_and_its_numbers(tiny_run):
    config, out = tiny_run
    table = json.loads((out / "table.json").read_text())
    assert [(r["model"], r["D"]) for r in table["rows"]] == [
        (m["name"], d) for d in config.sizes for m in config.models]
    assert table["max_steps"] == config.max_steps and "4 optimiser steps" in table["budget"]
    jets, _ = load_data(config, out)
    test = select(jets, make_split(jets, config).test)
    labels = np.repeat(np.arange(5), config.n_test)
    for row in table["rows"]:
        cell = out / "cells" / f"D{row['D']}" / row["model"]
        assert row["n_train"] == 5 * row["D"] and row["n_val"] == 5 * config.n_val(row["D"])
        with np.load(cell / "test_probs.npz") as saved:
            np.testing.assert_array_equal(saved["labels"], labels)  # the same test jets
            probs = saved["probs"]
        # the table's numbers are those of the saved test probabilities
        again = multiclass_summary(labels, probs, config.classes,
                                   n_bootstrap=config.n_bootstrap, seed=config.seed)
        assert row["macro_auc"] == pytest.approx(again["macro_auc"].value, abs=1e-12)
        assert row["accuracy_error"] == pytest.approx(again["accuracy"].error, abs=1e-12)
        if row["backbone"] != "gbdt":
            # the saved tagger is the evaluated one; the budget bounds its steps
            tagger = load_tagger(cell / "tagger.safetensors")
            np.testing.assert_allclose(tagger.predict_proba(test), probs, atol=1e-5)
            assert row["parameters"] == sum(p.numel() for p in tagger.parameters())
            assert 1 <= row["steps"] <= config.max_steps
        else:
            assert row["parameters"] > 0
    # the OmniJet taggers start from the benchmark's own pre-training (a stage of the run)
    assert (out / "omnijet" / "pretrain" / "backbone.safetensors").exists()
    finetuned = load_tagger(out / "cells" / f"D{config.sizes[0]}" / "OmniJet-finetuned" /
                            "tagger.safetensors")
    assert finetuned.backbone.name == "omnijet"
    page = (out / "table.md").read_text()
    assert "AUC Wqq vs Zqq" in page and "at most 4 optimiser steps" in page
    for size in config.sizes:
        assert (out / "plots" / f"roc_D{size}.png").stat().st_size > 0
    # best neural model minus the GBDT, per D, from the same saved probabilities
    assert [c["D"] for c in table["best_vs_baseline"]] == config.sizes
    for comparison in table["best_vs_baseline"]:
        rows = {r["model"]: r for r in table["rows"] if r["D"] == comparison["D"]}
        best = max((r for r in rows.values() if r["backbone"] != "gbdt"),
                   key=lambda r: r["accuracy"])
        assert comparison["model"] == best["model"] and comparison["baseline"] == "GBDT"
        assert comparison["accuracy"]["value"] == pytest.approx(
            best["accuracy"] - rows["GBDT"]["accuracy"], abs=1e-12)
    assert "paired bootstrap over the same test jets" in (out / "table.md").read_text()


def test_rerun_reuses_every_cell_and_a_changed_model_redoes_only_its_cells(tiny_run, tmp_path,
                                                                            capsys):
    config, out = tiny_run
    before = {p: p.read_bytes() for p in (out / "cells").glob("D*/*/result.json")}
    capsys.readouterr()
    assert main(["benchmark", "tagging", "--config", str(TINY), "--out", str(out)]) == 0
    assert "cells: 0 run, 12 reused" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in before} == before

    data = yaml.safe_load(TINY.read_text())
    data["models"][1]["training"] = {"lr": 0.001}  # ParT only
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(data))
    assert main(["benchmark", "tagging", "--config", str(changed), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cells: 2 run, 10 reused" in printed
    assert "stage cells/D20/ParT: redone (config model.training.lr: 0.003 -> 0.001)" in printed
    for path, content in before.items():
        assert (path.read_bytes() == content) == (path.parent.name != "ParT")

    # a cell interrupted after training (no result, no record) resumes from its checkpoint
    cell = out / "cells" / "D20" / "ParT"
    (cell / "result.json").unlink()
    (out / "stages" / "cells" / "D20" / "ParT.json").unlink()
    assert (cell / "checkpoints" / "last.ckpt").exists()
    assert main(["benchmark", "tagging", "--config", str(changed), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ParT at D = 20: resuming" in printed and "cells: 1 run, 11 reused" in printed
    # ... but not when its settings changed meanwhile: then it starts afresh
    (cell / "result.json").unlink()
    (out / "stages" / "cells" / "D20" / "ParT.json").unlink()
    assert main(["benchmark", "tagging", "--config", str(TINY), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ParT at D = 20: training" in printed and "cells: 2 run, 10 reused" in printed


def test_split_is_fixed_nested_and_disjoint(tmp_path):
    config = load_config(TINY)
    jets = {c: prong_jets(config.n_per_class, 1 + k % 3, c, seed=k)
            for k, c in enumerate(config.classes)}
    split, again = make_split(jets, config), make_split(jets, config)
    for c in config.classes:
        assert (split.train[c] == again.train[c]).all()  # fixed by the seed
        for size in config.sizes:  # each cell: test, D training and n_val validation jets
            parts = [split.test[c], split.train[c][:size], split.val[c][:config.n_val(size)]]
            assert len(np.unique(np.concatenate(parts))) == sum(map(len, parts))
            assert len(parts[0]) == config.n_test and len(parts[1]) == size
    # nested in D: the small cell's jets are among the big cell's
    small, big = (config.sizes[0], config.n_val(config.sizes[0])), (config.sizes[1],
                                                                     config.n_val(config.sizes[1]))
    for c in config.classes:
        assert set(split.train[c][:small[0]]) <= set(split.train[c][:big[0]])
        assert set(split.val[c][:small[1]]) <= set(split.val[c][:big[1]])
    # the other sizes of the config do not move a cell's jets
    config.sizes = [config.sizes[0]]
    alone = make_split(jets, config)
    for c in config.classes:
        assert (alone.train[c][:small[0]] == split.train[c][:small[0]]).all()
        assert (alone.val[c][:small[1]] == split.val[c][:small[1]]).all()


def _write(tmp_path, name, *parts):
    path = tmp_path / name
    write_jets(JetBatch.concatenate(list(parts)), path)
    return str(path)


def _config(tmp_path, **changes):
    data = {"classes": ["QCD", "Tbqq"], "sizes": [30], "n_test": 30, "val_fraction": 0.5,
            "seed": 2, "n_bootstrap": 3,
            "models": [{"name": "GBDT", "backbone": "gbdt",
                        "backbone_config": {"max_iter": 40, "min_samples_leaf": 5}}],
            **changes}
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_labelled_files_are_benchmarked(tmp_path):
    qcd = _write(tmp_path, "qcd.parquet", prong_jets(80, 1, "QCD", seed=1))
    top = _write(tmp_path, "top.parquet", prong_jets(80, 3, "Tbqq", seed=2))
    out = tmp_path / "run"
    assert main(["benchmark", "tagging", "--config", _config(tmp_path), "--data", qcd, top,
                 "--out", str(out)]) == 0
    (row,) = json.loads((out / "table.json").read_text())["rows"]
    assert row["n_test"] == 60 and row["n_train"] == 60
    assert row["accuracy"] > 0.9 and row["macro_auc"] > 0.95  # 1 vs 3 prongs: mass separates


def test_bad_inputs_name_the_file_and_the_problem(tmp_path, capsys):
    qcd = _write(tmp_path, "qcd.parquet", prong_jets(80, 1, "QCD", seed=1))
    top = _write(tmp_path, "top.parquet", prong_jets(80, 3, "Tbqq", seed=2))
    mixed = _write(tmp_path, "mixed.parquet", prong_jets(80, 3, "Tbqq", seed=2),
                   prong_jets(5, 2, "Hcc", seed=3))
    few = _write(tmp_path, "few.parquet", prong_jets(20, 3, "Tbqq", seed=2))
    config = _config(tmp_path)
    cases = [
        ([qcd, mixed], rf"{mixed} holds jets of \['Hcc'\] \(classes found: "
                       r"\{'Hcc': 5, 'Tbqq': 80\}\)"),
        ([qcd], r"no file holds jets of \['Tbqq'\] \(classes found in .*qcd.parquet: "
                r"\['QCD'\]\)"),
        ([qcd, few], rf"error: {few}: 20 jets of class Tbqq; the benchmark needs 75 per class"),
    ]
    for files, message in cases:
        assert main(["benchmark", "tagging", "--config", config, "--data", *files,
                     "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert "jetfm benchmark tagging: error:" in err
        assert re.search(message, err), err
    # features the data lack: named before any training
    part = {"name": "ParT", "backbone": "part", "features": ["d0val"],
            "backbone_config": {"embed_dims": [8], "pair_embed_dims": [4], "num_heads": 1,
                                "num_layers": 1}, "head_config": {"n_heads": 1, "n_blocks": 1}}
    config = _config(tmp_path, models=[part])
    assert main(["benchmark", "tagging", "--config", config, "--data", qcd, top,
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "ParT" in err and "d0val" in err and not (tmp_path / "run" / "cells").exists()


@pytest.mark.parametrize(("change", "message"), [
    ({"models": [{"name": "GBDT", "backbone": "gbdt", "head": "summation"}]},
     r"models\[0\] \(GBDT\): keys \['head'\] do not apply to the gradient-boosted baseline"),
    ({"models": [{"name": "A", "backbone": "part", "training": {"max_steps": 5}}]},
     r"models\[0\] \(A\): training \(max_steps is the benchmark's budget.*unknown keys "
     r"\['max_steps'\]"),
    ({"models": [{"name": "A", "backbone": "gbdt"}, {"name": "A", "backbone": "gbdt"}]},
     "names must be unique"),
    ({"models": [{"name": "A", "backbone": "parT"}]}, "unknown backbone 'parT'"),
    ({"models": [{"name": "A", "backbone": "part", "backbone_config": {"depth": 2}}]},
     r"models\[0\] \(A\): .*\(backbone 'part'\): unknown keys \['depth'\]"),
    ({"classes": ["Tbqq", "Wqq"]}, "QCD is needed"),
    ({"classes": ["QCD", "Hcc"]}, r"classes \['Hcc'\] have no built-in generator"),
    ({"sizes": ["1e1", 0]}, "sizes: 0 is not a positive whole number"),
    ({"sizez": [10]}, r"unknown keys \['sizez'\]"),
    ({"device": "gpu0"}, r"device: 'gpu0' is not a device"),
    # found by a fresh tester: each was a raw TypeError / OverflowError or named no key
    ({"n_test": float("inf")}, "n_test: inf is not a positive whole number"),
    ({"sizes": [20, float("inf")]}, "sizes: inf is not a positive whole number"),
    ({"sizes": 20}, "sizes: 20; give a list of D"),
    ({"sizes": "20"}, "sizes: '20'; give a list of D"),
    ({"seed": "abc"}, "seed: 'abc' is not an integer"),
    ({"seed": -1}, "seed: -1 must be >= 0"),
    ({"val_fraction": "abc"}, "val_fraction: 'abc' is not a number"),
    ({"val_fraction": 1.0}, "val_fraction: 1.0 must be < 1"),
    ({"models": "GBDT"}, "models: 'GBDT'; give a list of model entries"),
])
def test_bad_configs_raise_clear_errors(tmp_path, change, message, capsys):
    config = _config(tmp_path, **change)
    assert main(["benchmark", "tagging", "--config", config, "--out",
                 str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "bench.yaml") in err or "no built-in generator" in err
    assert re.search(message, err), err


@pytest.mark.parametrize("preset", ["tiny", "cpu", "gpu"])
def test_presets_load_with_one_budget_for_every_neural_model(preset):
    """At each D every neural model trains with the benchmark's steps, except the entries
    that set their own, which the budget line states."""
    config = load_config(PRESETS_DIR / f"benchmark_tagging_{preset}.yaml")
    assert config.models[0]["backbone"] == "gbdt" and config.classes[0] == "QCD"
    common = config.max_steps
    for size in config.sizes:
        steps = common if isinstance(common, int) else common[size]
        for m in config.models:
            if m["backbone"] == "gbdt":
                continue
            budget = config.model_config(m, m["name"], size).train_config(config.seed).max_steps
            if "max_steps" in m:
                assert f"{m['name']}: " in budget_text(config)
            else:
                assert budget == steps, (m["name"], size)


def test_budget_per_d_and_stated_exceptions(tmp_path):
    """max_steps as a mapping D -> steps sets each D's budget; an entry's own max_steps
    overrides it, is stated under the table, and leaves the cells of the D where it agrees
    with the common budget unchanged (their records do not move)."""
    part = {"name": "P", "backbone": "part"}
    own = {**part, "max_steps": {10: 3, 20: 7}}
    plain = BenchmarkConfig(sizes=[10, 20], max_steps={10: 3, 20: 5}, models=[part])
    config = BenchmarkConfig(sizes=[10, 20], max_steps={10: 3, 20: 5}, models=[own])
    steps = {size: config.model_config(own, "P", size).train_config(1).max_steps
             for size in (10, 20)}
    assert steps == {10: 3, 20: 7}
    assert plain.model_config(part, "P", 20).train_config(1).max_steps == 5
    assert config.cell_config(own, 10) == plain.cell_config(part, 10)
    assert config.cell_config(own, 20) != plain.cell_config(part, 20)
    text = budget_text(config)
    assert "3 optimiser steps at D = 10, 5 optimiser steps at D = 20" in text
    assert "Exceptions (stated): P: 3 optimiser steps at D = 10, 7 optimiser steps at D = 20" \
        in text
    assert "Exceptions" not in budget_text(plain)
    # a model's own training keys change what it sees: stated too (found by a fresh tester)
    short = BenchmarkConfig(sizes=[10, 20], max_steps={10: 3, 20: 5},
                            models=[{**part, "training": {"max_epochs": 1}},
                                    {"name": "G", "backbone": "gbdt"}])
    assert "Exceptions (stated): P: training max_epochs 1" in budget_text(short)
    only_gbdt = budget_text(BenchmarkConfig(sizes=[10], max_steps=3,
                                            models=[{"name": "G", "backbone": "gbdt"}]))
    assert "neural" not in only_gbdt and "gradient-boosted" in only_gbdt
    assert "gradient-boosted" not in budget_text(plain)


@pytest.mark.parametrize(("change", "message"), [
    ({"max_steps": {10: 3}}, r"max_steps: no budget for D = \[20\]"),
    ({"max_steps": 0}, "max_steps: 0 is not a positive whole number of optimiser steps"),
    ({"max_steps": {10: 3, 20: -1}}, r"max_steps\[20\]: -1 is not a positive whole number"),
    ({"models": [{"name": "P", "backbone": "part", "max_steps": {20: 2}}]},
     r"models\[0\] \(P\): max_steps: no budget for D = \[10\]"),
    ({"models": [{"name": "G", "backbone": "gbdt", "max_steps": 2}]},
     r"models\[0\] \(G\): keys \['max_steps'\] do not apply"),
    ({"max_steps": {10: 3, 20: 4, 40: 2}}, r"max_steps: D = \[40\] is not among sizes"),
    ({"sizes": [10, 10]}, r"sizes: \[10, 10\] lists a D twice"),
    ({"models": [{"name": "P", "backbone": "part", "init": "pretrained", "mode": "finetune"}]},
     r"models\[0\] \(P\): init: pretrained .* needs backbone: omnijet, not part"),
    ({"models": [{"name": "P", "backbone": "part", "init": "/no/such.safetensors",
                  "mode": "finetune"}]},
     r"models\[0\] \(P\): no model file /no/such.safetensors"),
])
def test_bad_budgets_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        BenchmarkConfig(**{"sizes": [10, 20], **change})


def test_awkward_files_give_one_clear_line(tmp_path, capsys):
    """--data files that hold no jet or an invalid one: exit 2, one line naming the file;
    with --skip-invalid the invalid jet is dropped (and the rest judged: here too few)."""
    from awkward_files import EXPECTED, write_awkward_files

    paths = write_awkward_files(tmp_path / "files")
    empty = str(paths["parquet/zero_jets"])
    bad = str(next(paths[k] for k, v in sorted(EXPECTED.items()) if v == "error"
                   and k.endswith("nan_momenta")))
    config = _config(tmp_path)
    for files, extra, wanted in (([empty], [], "0 jets; nothing to benchmark"),
                                 ([bad], [], "non-finite"),
                                 ([bad], ["--skip-invalid"], "do not match the class list")):
        assert main(["benchmark", "tagging", "--config", config, "--data", *files, *extra,
                     "--out", str(tmp_path / "run")]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert line.startswith("jetfm benchmark tagging: error: ") and files[0] in line
        assert wanted in line, line


def test_cell_records_do_not_depend_on_how_init_is_spelled(tmp_path):
    """A cell's record holds the init file's digest (its inputs), not its path: the same
    run folder reached as 'runs/x' or '/abs/runs/x' reuses its cells."""
    config = BenchmarkConfig(sizes=[10], max_steps=3, models=[{"name": "P",
                                                               "backbone": "part"}])
    entry = {"name": "O", "backbone": "omnijet", "mode": "finetune"}
    relative = config.cell_config({**entry, "init": "run/omnijet/backbone.safetensors"}, 10)
    absolute = config.cell_config({**entry, "init": f"{tmp_path}/run/omnijet/backbone"
                                   ".safetensors"}, 10)
    assert relative == absolute and "init" not in relative["model"]
