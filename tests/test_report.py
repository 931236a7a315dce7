"""Report writer: tables and figures of a run directory end up in Markdown and HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jetfm.report import Report, markdown_table, read_table, report_from_run_dir, write_table


def test_markdown_table_formats_cells() -> None:
    text = markdown_table([{"metric": "KL", "value": 0.123456, "floor": None},
                           {"metric": "W1|x", "value": float("inf")}])
    lines = text.splitlines()
    assert lines[0] == "| metric | value | floor |"
    assert lines[2] == "| KL | 0.1235 | — |"
    assert lines[3] == r"| W1\|x | inf | — |"


def test_table_round_trip(tmp_path) -> None:
    rows = [{"a": 1, "b": 2.5}, {"a": 2, "b": None}]
    path = write_table(tmp_path / "t.table.json", rows, title="T")
    assert read_table(path) == ("T", ["a", "b"], rows)


def test_report_from_run_dir(tmp_path) -> None:
    import matplotlib.pyplot as plt

    write_table(tmp_path / "scores.table.json", [{"metric": "AUC", "value": 0.98}], title="Scores")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "roc.png")
    plt.close(fig)
    pd.DataFrame({"step": [1, 2], "train_loss": [1.0, np.nan], "val_loss": [np.nan, 0.8]}).to_csv(
        tmp_path / "metrics.csv", index=False
    )
    md = report_from_run_dir(tmp_path, title="Run", html=True)
    text = md.read_text()
    assert text.startswith("# Run")
    assert "## Scores" in text and "| AUC | 0.98 |" in text
    assert "![roc](roc.png)" in text
    assert "![training_curves](training_curves.png)" in text
    html = (tmp_path / "report.html").read_text()
    assert "<td>AUC</td>" in html and 'src="roc.png"' in html


def test_report_escapes_html_and_missing_dir(tmp_path) -> None:
    report = Report("a < b")
    report.add_text("x & y")
    assert "a &lt; b" in report.to_html() and "x &amp; y" in report.to_html()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report_from_run_dir(tmp_path / "missing")
