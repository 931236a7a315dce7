"""The terminal console of every jetfm command: rich, with markup limited to jetfm's styles.

rich reads any ``[word ...]`` in printed text as a markup tag and drops it: a unit such as
"[splittings per jet]" or "[GeV]" in a report, a path or an error message vanished from the
output. :class:`Console` interprets only the style tags in :data:`STYLE_TAGS` (``[yellow]``,
``[bold]``, ``[/]`` ...), which jetfm's own messages use, and escapes every other bracket with
:func:`rich.markup.escape` before rich parses it (in ``render_str``, the one place where rich
turns strings into text: ``print``, rule titles, table titles and cells). Everything else is
rich's ``Console``.
"""

from __future__ import annotations

import re
from typing import Any

import rich.console
import rich.text
from rich.markup import escape

STYLE_TAGS: tuple[str, ...] = (
    "bold", "dim", "italic", "red", "green", "yellow", "blue", "magenta", "cyan",
)
"""The style names jetfm's messages use as markup (alone, combined with spaces, or "/" closing
them); any other bracketed text is printed as written."""

_STYLE = "|".join(STYLE_TAGS)
_TAG = re.compile(rf"\[/?(?:(?:{_STYLE})(?: (?:{_STYLE}))*)?\]")


def protect_markup(text: str) -> str:
    """``text`` with every bracket that is not one of jetfm's style tags (:data:`STYLE_TAGS`,
    "[/]" and "[/name]") escaped for rich (:func:`rich.markup.escape`), so it prints as
    written; the style tags keep their effect."""
    parts, start = [], 0
    for tag in _TAG.finditer(text):
        parts += [escape(text[start:tag.start()]), tag.group()]
        start = tag.end()
    tail = escape(text[start:])
    if tail.endswith("\\") and not text.endswith("\\\\"):
        tail = tail[:-1]  # escape() doubles a final backslash for a tag that follows; none does
    parts.append(tail)
    return "".join(parts)


class Console(rich.console.Console):
    """``rich.console.Console`` whose markup is limited to :data:`STYLE_TAGS`: every string
    it renders (printed text, rule titles, table titles and cells) passes through
    :func:`protect_markup` first, unless markup is off for it."""

    def render_str(self, text: str, *, markup: bool | None = None,
                   **kwargs: Any) -> rich.text.Text:
        if markup or (markup is None and self._markup):
            text = protect_markup(text)
        return super().render_str(text, markup=markup, **kwargs)
