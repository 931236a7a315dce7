"""Report pages: Markdown (and optionally HTML) with text, tables and PNG figures.

A run directory is turned into a page by :func:`report_from_run_dir`. It collects, in name
order, every ``*.table.json`` file (``{"title": str, "columns": [...], "rows": [{...}]}``,
as written by :func:`write_table`), a training-curve plot from a Lightning ``metrics.csv``
(if present) and every ``*.png`` figure. Image links are relative, so the directory can be
moved or published as is.
"""

from __future__ import annotations

import html as html_lib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.atomic import write_text_atomic

METRIC_COLUMNS = ("metric", "observable", "value", "error", "floor", "floor_error")
"""Columns of a generation-metric table (rows of :class:`jetfm.metrics.evaluate.MetricRow`)."""


def format_value(value: Any) -> str:
    """Cell text: floats with 4 significant digits, None as an em dash, NaN as "n/a" (the
    row's note says why), +-inf as "inf" / "-inf"."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return str(value) if math.isinf(value) else f"{value:.4g}"
    return str(value)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf, also numpy floats) replaced by None,
    through dicts, lists and tuples, so that ``json.dumps(..., allow_nan=False)`` writes
    standard JSON (null) instead of the invalid tokens NaN / Infinity."""
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> list[str]:
    if columns is not None:
        return list(columns)
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (missing cells shown as an em dash)."""
    cols = _columns(rows, columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = (format_value(row.get(c)).replace("|", r"\|") for c in cols)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """HTML ``<table>`` of ``rows``."""
    cols = _columns(rows, columns)
    head = "".join(f"<th>{html_lib.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html_lib.escape(format_value(row.get(c)))}</td>" for c in cols)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_table(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write a table as JSON (``*.table.json`` is what :func:`report_from_run_dir` picks up).

    Non-finite numbers are written as null (:func:`json_safe`), never as NaN / Infinity."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"title": title, "columns": _columns(rows, columns), "rows": list(rows)}
    write_text_atomic(path, json.dumps(json_safe(payload), indent=1, default=str,
                                       allow_nan=False))
    return path


def read_table(path: str | Path) -> tuple[str, list[str], list[dict[str, Any]]]:
    """(title, columns, rows) of a table written by :func:`write_table`."""
    payload = json.loads(Path(path).read_text())
    missing = {"title", "columns", "rows"} - set(payload)
    if missing:
        raise ValueError(f"{path}: table file lacks the keys {sorted(missing)}")
    return payload["title"], payload["columns"], payload["rows"]


@dataclass
class Report:
    """An ordered page of headed text, tables and images."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def add_heading(self, text: str) -> None:
        self.blocks.append(("heading", text))

    def add_text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def add_table(
        self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> None:
        self.blocks.append(("table", (list(rows), _columns(rows, columns))))

    def add_image(self, path: str | Path, caption: str = "") -> None:
        self.blocks.append(("image", (Path(path), caption)))

    def _link(self, path: Path, out_dir: Path) -> str:
        try:
            return path.resolve().relative_to(out_dir.resolve()).as_posix()
        except ValueError:
            return path.resolve().as_posix()

    def to_markdown(self, out_dir: str | Path = ".") -> str:
        """The page as Markdown; images linked relative to ``out_dir``."""
        parts = [f"# {self.title}"]
        for kind, content in self.blocks:
            if kind == "heading":
                parts.append(f"## {content}")
            elif kind == "text":
                parts.append(content)
            elif kind == "table":
                parts.append(markdown_table(*content))
            else:
                path, caption = content
                parts.append(f"![{caption or path.stem}]({self._link(path, Path(out_dir))})")
        return "\n\n".join(parts) + "\n"

    def to_html(self, out_dir: str | Path = ".") -> str:
        """The page as a standalone HTML document; images linked relative to ``out_dir``."""
        esc = html_lib.escape
        parts = [f"<h1>{esc(self.title)}</h1>"]
        for kind, content in self.blocks:
            if kind == "heading":
                parts.append(f"<h2>{esc(content)}</h2>")
            elif kind == "text":
                parts.append(f"<p>{esc(content)}</p>")
            elif kind == "table":
                parts.append(html_table(*content))
            else:
                path, caption = content
                link = esc(self._link(path, Path(out_dir)))
                parts.append(
                    f'<figure><img src="{link}" alt="{esc(caption or path.stem)}" width="480">'
                    f"<figcaption>{esc(caption)}</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
            "figure{display:inline-block;margin:4px}"
        )
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
        )

    def write(self, out_dir: str | Path, name: str = "report", html: bool = False) -> Path:
        """Write ``name.md`` (and ``name.html``) into ``out_dir``; returns the Markdown path."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path = out_dir / f"{name}.md"
        md_path.write_text(self.to_markdown(out_dir))
        if html:
            (out_dir / f"{name}.html").write_text(self.to_html(out_dir))
        return md_path


def report_from_run_dir(
    run_dir: str | Path, *, title: str | None = None, html: bool = False
) -> Path:
    """Write ``report.md`` (and ``report.html``) for a run directory; returns the Markdown path.

    Tables come from ``*.table.json``, figures from ``*.png``; a Lightning ``metrics.csv`` is
    first drawn as ``training_curves.png``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    metrics_csv = run_dir / "metrics.csv"
    if metrics_csv.exists():
        from jetfm.plots.curves import plot_training_curves

        plot_training_curves(metrics_csv, run_dir / "training_curves.png")
    report = Report(title or run_dir.name)
    for table_path in sorted(run_dir.glob("*.table.json")):
        table_title, columns, rows = read_table(table_path)
        report.add_heading(table_title)
        report.add_table(rows, columns)
    figures = sorted(run_dir.glob("*.png"))
    if figures:
        report.add_heading("Figures")
        for figure in figures:
            report.add_image(figure, figure.stem)
    return report.write(run_dir, html=html)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a file that exists is complete. Non-finite
    numbers are written as null (:func:`jetfm.report.json_safe`), never as NaN / Infinity."""
    text = json.dumps(json_safe(data), indent=2, default=float, allow_nan=False)
    write_text_atomic(path, text + "\n")
