"""``jetfm report RUN_DIR``: one page of a run or study folder and its subfolders (Markdown
pages, tables, training curves, plots), relative image links, atomic, rerunnable; clear
errors for a folder with nothing to report and for a page it must not replace."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jetfm.cli import main  # noqa: E402
from jetfm.report import REPORT_MARK, write_table  # noqa: E402


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path)
    plt.close(fig)
    return path


def study_dir(root: Path) -> Path:
    """A folder laid out as a jetfm study writes one: top-level table.md / table.json /
    summary.md / plots, cells with an evaluate report, a training log, a model card, and
    places the report must not enter (checkpoints, hidden folders)."""
    root.mkdir()
    (root / "table.md").write_text("# Study table\n\n| D | auc |\n|---|---|\n| 10 | 0.61 |\n")
    (root / "table.json").write_text(json.dumps({"config": {}, "rows": [{"D": 10,
                                                                           "auc": 0.61}]}))
    (root / "summary.md").write_text("# Summary\n\nsee ![overlay](plots/overlay.png)\n")
    png(root / "plots" / "overlay.png")
    png(root / "plots" / "mass.png")
    evaluation = root / "cells" / "D10" / "evaluation"
    png(evaluation / "hist_mass.png")
    write_table(evaluation / "metrics.table.json", [{"metric": "W1", "value": 7.3519}],
                title="metrics")
    (evaluation / "report.md").write_text(
        "# Generated vs reference jets\n\n## Metrics\n\n| metric | value |\n|---|---|\n"
        "| W1 | 7.3519 |\n\n## Distributions\n\n![hist_mass](hist_mass.png)\n")
    d2 = root / "cells" / "D2"
    write_table(d2 / "scores.table.json", [{"quantity": "accuracy", "value": 0.845}],
                title="D2 scores")
    pd.DataFrame({"epoch": [0, 0, 1], "step": [4, 4, 9], "train/loss": [0.9, None, 0.5],
                  "val/loss": [None, 0.8, 0.6]}).to_csv(
        (d2 / "logs").mkdir(parents=True) or d2 / "logs" / "metrics.csv", index=False)
    (d2 / "tagger").mkdir()
    (d2 / "tagger" / "README.md").write_text(
        "---\nlibrary_name: jetfm\n---\n\n# part jet tagger\n\n## Training data\n\n"
        "- **files**: data/top.root\n")
    png(d2 / "checkpoints" / "not_this.png")
    png(root / ".hidden" / "nor_this.png")
    return root


def image_sources(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def test_report_of_a_study_folder(tmp_path, capsys):
    run = study_dir(tmp_path / "study")
    assert main(["report", str(run), "--html"]) == 0
    md, html = run / "index.md", run / "index.html"
    assert f"report -> {md}, {html}" in capsys.readouterr().out
    text, page = md.read_text(), html.read_text()
    assert text.rstrip().endswith(REPORT_MARK) and REPORT_MARK in page
    # every figure of the folder once, linked relative to the page, none from checkpoints/
    # or hidden folders; the training log drawn next to it
    curves = run / "cells" / "D2" / "logs" / "training_curves.png"
    assert curves.is_file()
    sources = image_sources(page)
    assert sorted(sources) == sorted({
        "plots/overlay.png", "plots/mass.png", "cells/D10/evaluation/hist_mass.png",
        "cells/D2/logs/training_curves.png"})
    assert all((run / s).is_file() for s in sources)
    # the pages' headings below the page title, subfolders in natural order (D2 before D10)
    assert text.startswith("# study\n")
    assert "\n## Summary\n" in text and "\n## Study table\n" in text
    assert text.index("## cells/D2\n") < text.index("## cells/D10/evaluation\n")
    assert "\n### Generated vs reference jets\n" in text and "\n#### Metrics\n" in text
    assert "\n### part jet tagger\n" in text and "library_name" not in text
    # tables: the evaluate page stands for its metrics.table.json, table.md for table.json
    assert text.count("7.3519") == 1 and text.count("0.61") == 1
    assert "<td>accuracy</td>" in page and "<td>0.845</td>" in page
    assert "<h3>D2 scores</h3>" in page
    # nothing left behind but the two pages and the curves
    assert not [p for p in run.rglob(".*") if p.name != ".hidden"]
    # a rerun replaces its own pages and does not include them
    assert main(["report", str(run), "--html"]) == 0
    assert md.read_text() == text and html.read_text() == page


def test_report_without_html_and_of_a_subfolder(tmp_path, capsys):
    run = study_dir(tmp_path / "study")
    assert main(["report", str(run / "cells"), "--title", "cells only"]) == 0
    assert not (run / "cells" / "index.html").exists()
    text = (run / "cells" / "index.md").read_text()
    assert text.startswith("# cells only\n")
    assert "![hist_mass](D10/evaluation/hist_mass.png)" in text
    # the parent's report leaves the subfolder's own page out
    assert main(["report", str(run)]) == 0
    assert "cells only" not in (run / "index.md").read_text()


def test_nothing_to_report_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    png(empty / "checkpoints" / "x.png")
    (empty / "data.parquet").write_bytes(b"PAR1")
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"jetfm report: error: {empty}: nothing to report")
    assert "\n" not in err and not (empty / "index.md").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", str(empty / "data.parquet")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_page_it_did_not_write_is_never_replaced(tmp_path, capsys):
    run = study_dir(tmp_path / "study")
    (run / "index.md").write_text("my notes\n")
    assert main(["report", str(run)]) == 2
    assert "index.md exists and was not written by jetfm report" in capsys.readouterr().err
    assert (run / "index.md").read_text() == "my notes\n"


def test_a_broken_table_file_is_named(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "scores.table.json").write_text('{"title": "x", "rows": [')
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'scores.table.json'}: not a JSON table file" in err
    assert not (run / "index.md").exists()


@pytest.mark.parametrize("row", [{"value": float("nan")}, {"value": None}])
def test_missing_values_show_as_such(tmp_path, row):
    run = tmp_path / "run"
    write_table(run / "t.table.json", [{"metric": "KL", **row}], title="t")
    assert main(["report", str(run)]) == 0
    assert "| KL | — |" in (run / "index.md").read_text()


def test_a_page_held_by_a_larger_one_is_shown_once(tmp_path):
    """A study's report.md holds its summary.md and adds figures: the summary once."""
    run = tmp_path / "run"
    run.mkdir()
    summary = "# Transfer\n\n| D | gamma |\n|---|---|\n| 20 | 0.4321 |\n"
    (run / "summary.md").write_text(summary)
    (run / "report.md").write_text(summary + "\n## Figures\n\n![t](plots/t.png)\n")
    png(run / "plots" / "t.png")
    (run / "notes.md").write_text("# Notes\n\nrerun with D = 40\n")
    assert main(["report", str(run)]) == 0
    text = (run / "index.md").read_text()
    assert text.count("0.4321") == 1 and text.count("![t](plots/t.png)") == 1
    assert "rerun with D = 40" in text
