"""The command line on tiny generated samples: generate -> info -> plot -> evaluate."""

from __future__ import annotations

import json

from jetfm.cli import main


def test_generate_info_plot(tmp_path, capsys):
    out = tmp_path / "data"
    assert main(["generate", "--process", "top", "qcd", "--n-jets", "25", "--out-dir",
                 str(out), "--seed", "3"]) == 0
    top, qcd = out / "top.root", out / "qcd.root"
    assert top.exists() and qcd.exists()
    record = json.loads((out / "top.cuts.json").read_text())
    assert record["config"]["process"] == "top" and record["config"]["n_jets"] == 25
    assert record["cuts"][0]["n_after"] == 25
    capsys.readouterr()

    assert main(["info", str(top)]) == 0
    printed = capsys.readouterr().out
    assert "Tbqq" in printed and "25" in printed and "jet_mass" in printed
    assert "truth match" in printed  # the generator's cut record is shown

    plots = tmp_path / "plots"
    assert main(["plot", str(top), str(qcd), "--out-dir", str(plots)]) == 0
    assert {p.name for p in plots.glob("*.png")} >= {"mass.png", "tau32.png", "tau21.png"}

    # evaluate: QCD against top is far from top; the table has floors and a report is written
    evaluation = tmp_path / "eval"
    assert main(["evaluate", str(top), "--generated", str(qcd), "--out-dir", str(evaluation),
                 "--n-bootstrap", "5"]) == 0
    table = capsys.readouterr().out
    assert "W1" in table and "mass" in table and "Floor" in table
    assert (evaluation / "report.md").exists() and (evaluation / "hist_mass.png").exists()
    rows = json.loads((evaluation / "metrics.table.json").read_text())
    w1_mass = next(r for r in rows["rows"] if r["metric"] == "W1" and r["observable"] == "mass")
    assert w1_mass["value"] > 40  # top (~174 GeV) vs QCD (~80 GeV) jet masses

    # a second generate with the same settings reuses the files
    before = top.stat().st_mtime_ns
    assert main(["generate", "--process", "top", "--n-jets", "25", "--out-dir", str(out),
                 "--seed", "3"]) == 0
    assert top.stat().st_mtime_ns == before


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.root")]) == 2
    assert "missing.root" in capsys.readouterr().err
