"""Report pages: Markdown (and optionally HTML) with text, tables and PNG figures.

A run or study directory (``jetfm report RUN_DIR``) is turned into one page by
:func:`report_from_run_dir`. It walks the directory and its subdirectories (the directory
first, then each subdirectory in natural order, ``D10`` after ``D2``; hidden directories,
``checkpoints`` and ``__pycache__`` are skipped) and collects, per directory:

- Markdown pages jetfm writes (``summary.md``, ``table.md``, a ``report.md`` of ``jetfm
  evaluate`` or of a study, a bundle's ``README.md`` model card, any other ``*.md``), their
  headings moved below the page's and their relative links rebased onto the page; a page
  whose text another page of the directory holds (a study's ``summary.md`` inside its
  ``report.md``) is left out;
- tables: every ``*.table.json`` (``{"title": str, "columns": [...], "rows": [{...}]}``, as
  written by :func:`write_table`) and every other ``*.json`` holding ``"rows"`` (a list of
  mappings; a study's ``table.json``) unless a Markdown page of the same stem shows it
  (``table.md``); the ``*.table.json`` of a directory with a ``report.md`` are that page's;
- a training-curve plot (``training_curves.png``, written next to it) of each Lightning
  ``metrics.csv``;
- every ``*.png`` figure not already shown by one of the Markdown pages.

Image links are relative, so the directory can be moved or published as is. The page is
written atomically and ends with :data:`REPORT_MARK`, by which a later run recognises (and
replaces, or leaves out of the walk) its own pages; any other file of the output's name is
never replaced.
"""

from __future__ import annotations

import html as html_lib
import json
import math
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jetfm.atomic import atomic_path, write_text_atomic

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


ERROR_DIGITS = 2
"""Significant digits of an uncertainty in tables (the Particle Data Group quotes one or two,
Review of Particle Physics, Introduction sec. 5.3); the value is rounded to the same decimal
place (:func:`round_to_error`)."""
_MAX_VALUE_DIGITS = 8  # more digits than this (an error tiny next to its value): .4g / .2g
ERROR_SUFFIXES: tuple[str, ...] = ("_error", " error", "_err", " err", "_std", " std")
"""A column named ``<name><suffix>`` next to a column ``<name>`` holds ``<name>``'s
uncertainty (and ``error`` is that of ``value``): tables round the pair together."""


def round_to_error(value: float, error: float) -> tuple[str, str]:
    """(value, error) as text: the error with :data:`ERROR_DIGITS` significant digits and the
    value rounded to the same decimal place, e.g. (9.571, 2.895) -> ("9.6", "2.9"),
    (0.004977, 0.001929) -> ("0.0050", "0.0019"), (331.7, 23.4) -> ("332", "23"). A zero,
    negative or non-finite error, or one below 1e-8 of the value, gives
    :func:`format_value` of each (value with 4 significant digits)."""
    if not (math.isfinite(value) and math.isfinite(error)) or error <= 0:
        return format_value(value), format_value(error)
    rounded = float(f"{error:.{ERROR_DIGITS - 1}e}")  # 0.0996 -> 0.1, one more digit place
    decimals = ERROR_DIGITS - 1 - math.floor(math.log10(rounded))
    value_digits = decimals + math.floor(math.log10(abs(value))) + 1 if value else 1
    if value_digits > _MAX_VALUE_DIGITS:
        return format_value(value), f"{error:.{ERROR_DIGITS}g}"
    places = max(decimals, 0)
    return f"{round(value, decimals):.{places}f}", f"{round(rounded, decimals):.{places}f}"


def format_with_error(value: float, error: float | None) -> str:
    """``value ± error`` rounded together (:func:`round_to_error`); "± n/a" for a missing or
    non-finite error, "n/a" for a non-finite value."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if error is None or not math.isfinite(error):
        return f"{format_value(float(value))} ± n/a"
    return " ± ".join(round_to_error(float(value), float(error)))


def _cells(row: Mapping[str, Any], cols: Sequence[str]) -> dict[str, str]:
    """Text of each cell of ``row``; a value and its error column (:data:`ERROR_SUFFIXES`)
    rounded together (:func:`round_to_error`)."""
    cells = {c: format_value(row.get(c)) for c in cols}
    pairs = [("value", "error")] + [(c[: -len(s)], c) for c in cols for s in ERROR_SUFFIXES
                                    if c.endswith(s) and len(c) > len(s)]
    for name, err in pairs:
        value, error = row.get(name), row.get(err)
        if name in cells and err in cells and all(
                isinstance(v, float | int) and not isinstance(v, bool) for v in (value, error)):
            cells[name], cells[err] = round_to_error(float(value), float(error))
    return cells


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
    """GitHub-flavoured Markdown table of ``rows`` (missing cells shown as an em dash; a value
    and its error column rounded together, :func:`round_to_error`)."""
    cols = _columns(rows, columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = _cells(row, cols)
        lines.append("| " + " | ".join(cells[c].replace("|", r"\|") for c in cols) + " |")
    return "\n".join(lines)


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """HTML ``<table>`` of ``rows``."""
    cols = _columns(rows, columns)
    head = "".join(f"<th>{html_lib.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html_lib.escape(cell)}</td>" for cell in _cells(row, cols).values())
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
    try:
        payload = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a JSON table file ({err})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{path}: expected a mapping with keys title, columns, rows")
    missing = {"title", "columns", "rows"} - set(payload)
    if missing:
        raise ValueError(f"{path}: table file lacks the keys {sorted(missing)}")
    return payload["title"], payload["columns"], payload["rows"]


@dataclass
class Report:
    """An ordered page of headed text, tables, images and Markdown, written as Markdown and
    (rendered with ``markdown-it-py``, CommonMark + tables, raw HTML escaped) HTML."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def add_heading(self, text: str, level: int = 2) -> None:
        """A heading of ``level`` 2 ... 6 (1 is the page title)."""
        self.blocks.append(("heading", (text, min(max(level, 2), 6))))

    def add_text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def add_markdown(self, text: str) -> None:
        """Markdown included as it is (its links must already be relative to the page)."""
        self.blocks.append(("markdown", text))

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
                parts.append(f"{'#' * content[1]} {content[0]}")
            elif kind in ("text", "markdown"):
                parts.append(content.strip("\n"))
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
                parts.append(f"<h{content[1]}>{esc(content[0])}</h{content[1]}>")
            elif kind == "text":
                parts.append(f"<p>{esc(content)}</p>")
            elif kind == "markdown":
                parts.append(_markdown_html(content))
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
            "figure{display:inline-block;margin:4px}img{max-width:100%}"
        )
        return (
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
        )

    def write(self, out_dir: str | Path, name: str = "report", html: bool = False,
              mark: str = "") -> Path:
        """Write ``name.md`` (and ``name.html``) into ``out_dir``, each atomically
        (:func:`jetfm.atomic.write_text_atomic`); returns the Markdown path. ``mark``: a
        comment line ending both files (:data:`REPORT_MARK`)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md_path = out_dir / f"{name}.md"
        tail = f"\n{mark}\n" if mark else ""
        write_text_atomic(md_path, self.to_markdown(out_dir) + tail)
        if html:
            page = self.to_html(out_dir)
            if mark:
                page = page.replace("</body></html>", f"{mark}</body></html>", 1)
            write_text_atomic(out_dir / f"{name}.html", page)
        return md_path


def _markdown_html(text: str) -> str:
    """HTML of Markdown ``text``: CommonMark with GitHub tables, raw HTML escaped (a cell such
    as ``<memory>`` shows as written), by ``markdown-it-py``."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


# ------------------------------------------------------------------------ run-directory page
REPORT_MARK = "<!-- written by jetfm report (jetfm.report.report_from_run_dir) -->"
"""The last line of every page :func:`report_from_run_dir` writes: such a file is replaced by
the next run and left out of the walk; a file of the output's name without it is never
replaced."""
SKIPPED_DIRS = frozenset({"checkpoints", "__pycache__"})
"""Subdirectories :func:`report_from_run_dir` does not enter (besides hidden ones)."""
MARKDOWN_ORDER = ("summary.md", "table.md", "report.md", "README.md")
"""Markdown pages of a directory in this order, then the others by name."""
MAX_JSON_BYTES = 5_000_000  # a larger *.json is data, not a table
CURVES_FILE = "training_curves.png"
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
_HEADING = re.compile(r"^(#{1,6})(?=\s)", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~)")


def _natural_key(path: Path) -> list[Any]:
    """Sort key: digit runs compared as numbers (``D2`` < ``D10``), the rest as text."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", path.name)]


def _folders(run_dir: Path) -> Iterator[Path]:
    """``run_dir``, then its subdirectories depth-first in natural order, without hidden
    ones and :data:`SKIPPED_DIRS`."""
    yield run_dir
    children = [p for p in run_dir.iterdir() if p.is_dir() and not p.is_symlink()
                and not p.name.startswith(".") and p.name not in SKIPPED_DIRS]
    for child in sorted(children, key=_natural_key):
        yield from _folders(child)


def _is_own_page(path: Path) -> bool:
    """Whether ``path`` ends with :data:`REPORT_MARK` (a page of :func:`report_from_run_dir`)."""
    with path.open("rb") as f:
        f.seek(max(path.stat().st_size - 4 * len(REPORT_MARK), 0))
        return REPORT_MARK.encode() in f.read()


def _shift_headings(text: str, by: int) -> str:
    """Markdown ``text`` with every ATX heading (outside code fences) ``by`` levels lower,
    at most level 6."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = _HEADING.sub(lambda m: "#" * min(len(m[1]) + by, 6), line)
        out.append(line)
    return "\n".join(out)


def _rebase(text: str, rel: str, folder: Path, linked: set[Path]) -> str:
    """Markdown ``text`` of a page in ``folder`` (``rel``: its path from the report's
    directory) with relative link targets prefixed by ``rel``; the files its images show are
    added to ``linked``."""
    def fix(match: re.Match[str]) -> str:
        target = match[2]
        if re.match(r"^([a-z][a-z0-9+.-]*:|/|#)", target, re.IGNORECASE):
            return match[0]  # a URL, an absolute path or an anchor
        if match[1].startswith("!"):
            linked.add((folder / target).resolve())
        new = posixpath.normpath(posixpath.join(rel, target)) if rel != "." else target
        return f"{match[1]}{new}{match[3]}"

    return _LINK.sub(fix, text)


def _strip_front_matter(text: str) -> str:
    """``text`` without a leading YAML front matter block (``---`` ... ``---``, as a model
    card has)."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end >= 0:
            return text[end + 5:]
    return text


def _rows_table(path: Path) -> tuple[str, list[str] | None, list[dict[str, Any]]] | None:
    """(title, columns, rows) of a ``*.json`` holding ``"rows"`` (a non-empty list of
    mappings), else None: a file that is not such a table is not part of the report."""
    if path.stat().st_size > MAX_JSON_BYTES:
        return None
    try:
        payload = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not (isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows)):
        return None
    columns = payload.get("columns")
    title = payload.get("title")
    return (title if isinstance(title, str) else path.name,
            columns if isinstance(columns, list) else None, rows)


def _curves(csv: Path, rel: str, report: Report) -> Path | None:
    """Draw a Lightning ``metrics.csv`` as ``training_curves.png`` next to it (atomically)
    and add it to ``report``; a log with nothing to draw is a one-line note instead."""
    import pandas as pd

    from jetfm.plots.curves import plot_training_curves

    try:
        table = pd.read_csv(csv)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        report.add_text(f"{rel}: not drawn ({type(err).__name__}: {err})")
        return None
    metrics = [c for c in table.select_dtypes("number").columns if c not in ("epoch", "step")]
    if "step" not in table.columns or not metrics or table[metrics].isna().all().all():
        report.add_text(f"{rel}: no logged metric to draw")
        return None
    target = csv.parent / CURVES_FILE
    with atomic_path(target) as tmp:
        plot_training_curves(table, tmp)
    report.add_image(target, target.stem)
    return target


def _folder_blocks(folder: Path, run_dir: Path, outputs: set[Path], report: Report,
                   level: int, linked: set[Path]) -> int:
    """Add the pages, tables, training curves and figures of ``folder`` (module docstring)
    to ``report`` with headings from ``level``; returns how many items were added.
    ``linked``: the figures the pages added so far show (updated), not added again."""
    rel = folder.relative_to(run_dir).as_posix()
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.resolve() not in outputs), key=_natural_key)
    pages = [p for p in files if p.suffix == ".md" and not _is_own_page(p)]
    pages.sort(key=lambda p: (MARKDOWN_ORDER.index(p.name) if p.name in MARKDOWN_ORDER
                              else len(MARKDOWN_ORDER), _natural_key(p)))
    texts = {page: _strip_front_matter(page.read_text(errors="replace")).strip()
             for page in pages}
    n = 0
    for page, text in texts.items():
        if not text or any(text in other and (len(other) > len(text) or o < page)
                           for o, other in texts.items() if o != page):
            continue  # shown by a larger page of the folder (a study's report.md holds its
            # summary.md), or the same text twice
        report.add_markdown(_rebase(_shift_headings(text, level - 1), rel, folder, linked))
        n += 1
    stems = {p.stem for p in pages}
    has_page = any(p.name == "report.md" for p in pages)
    for path in files:
        if path.name.endswith(".table.json"):
            if has_page:
                continue  # jetfm evaluate's report.md shows it
            title, columns, rows = read_table(path)
        elif path.suffix == ".json" and path.stem not in stems:
            found = _rows_table(path)
            if found is None:
                continue
            title, columns, rows = found
        else:
            continue
        report.add_heading(title, level)
        report.add_table(rows, columns)
        n += 1
    if "metrics.csv" in {p.name for p in files}:
        _curves(folder / "metrics.csv", f"{rel}/metrics.csv".removeprefix("./"), report)
        n += 1
    logged = (folder / "metrics.csv").exists()  # its curves are added above (or not drawn)
    figures = [p for p in files if p.suffix.lower() == ".png" and p.resolve() not in linked
               and not (logged and p.name == CURVES_FILE)]
    if figures:
        report.add_heading("Figures", level)
        for figure in figures:
            report.add_image(figure, figure.stem)
        n += len(figures)
    return n


def report_from_run_dir(
    run_dir: str | Path, *, title: str | None = None, html: bool = False,
    name: str = "report",
) -> Path:
    """Write ``name.md`` (and ``name.html``) for a run or study directory and its
    subdirectories (module docstring); returns the Markdown path.

    Each subdirectory with anything to show gets a heading (its path from ``run_dir``); the
    pages end with :data:`REPORT_MARK`. Raises ``FileNotFoundError`` / ``NotADirectoryError``
    for a missing ``run_dir`` or a file; ``ValueError`` naming ``run_dir`` when nothing in it
    can be reported, or naming a ``*.table.json`` that is not a table; ``FileExistsError``
    when ``name.md`` (or ``name.html``) exists and was not written by this function (a study's
    or ``jetfm evaluate``'s ``report.md``): it is not replaced.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} is a file; give a run or study directory")
    outputs = {(run_dir / f"{name}{suffix}").resolve() for suffix in (".md", ".html")}
    for path in sorted(outputs):
        if path.exists() and (path.suffix == ".md" or html) and not _is_own_page(path):
            raise FileExistsError(f"{path} exists and was not written by jetfm report; not "
                                  "replaced (choose another name)")
    report = Report(title or run_dir.resolve().name)
    n_items, linked = 0, set()
    for folder in _folders(run_dir):
        sub = Report("")
        n = _folder_blocks(folder, run_dir, outputs, sub, 2 if folder == run_dir else 3,
                           linked)
        if n:
            if folder != run_dir:
                report.add_heading(folder.relative_to(run_dir).as_posix(), 2)
            report.blocks += sub.blocks
            n_items += n
    if not n_items:
        raise ValueError(
            f"{run_dir}: nothing to report: no Markdown page (*.md), table (*.table.json, "
            "*.json with rows), training log (metrics.csv) or figure (*.png) in it or its "
            "subdirectories; give a directory jetfm wrote (a run, study or benchmark output)")
    return report.write(run_dir, name, html=html, mark=REPORT_MARK)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename): a file that exists is complete. Non-finite
    numbers are written as null (:func:`jetfm.report.json_safe`), never as NaN / Infinity."""
    text = json.dumps(json_safe(data), indent=2, default=float, allow_nan=False)
    write_text_atomic(path, text + "\n")
