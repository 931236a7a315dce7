"""The shipped presets (YAML configs) and command-line overrides of any config key.

Presets are package data (``jetfm/configs/NAME.yaml``, in the wheel), found with
:mod:`importlib.resources`, so ``jetfm demo`` and ``--config NAME`` work from any folder after
``pip install``. ``--config`` takes a YAML file or a preset name (:func:`locate`).

Overrides: ``KEY=VALUE`` with a dotted ``KEY`` (``pretraining.training.max_steps=10``,
``sizes=[100,1000]``, ``variants.0.n_train=50``), applied to the YAML's mapping by OmegaConf
(:meth:`omegaconf.DictConfig.merge_with_dotlist`: the value is YAML, a mapping value is merged
key by key into the block, a list value replaces the list, ``null`` sets None). ``~KEY``
deletes a key inside a block or list (``~models.mlp`` drops one entry of a block, as Hydra's
``~`` does), since a mapping value can only add or change entries: an empty mapping
(``models={}``, which would merge nothing) is refused, and so is deleting a top-level key
(it would fall back silently to the built-in default). Interpolations (``${...}``) are left
as text. Top-level keys are checked against the config dataclass's fields
(unknown: ``ValueError`` listing the valid keys) and their values against the field types
(:func:`apply_overrides`); the keys and values inside blocks are checked by the study's own
loader, as those of the YAML file are.
"""

from __future__ import annotations

import copy
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, fields, is_dataclass
from importlib.resources import files
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

RESOLVED_NAME = "config.resolved.yaml"
# KEY=VALUE: KEY a dotted path of names and list indices (``a.b.0.c`` or ``a.b[0].c``)
OVERRIDE = re.compile(r"(?P<key>[A-Za-z_]\w*(?:\.\w+|\[\d+\])*)=(?P<value>.*)", re.DOTALL)
# ~KEY: delete a key (Hydra's syntax)
DELETE = re.compile(r"~(?P<key>[A-Za-z_]\w*(?:\.\w+|\[\d+\])*)")


# ----------------------------------------------------------------------------- presets
def presets_dir() -> Path:
    """The folder holding the preset YAML files (inside the installed package).

    Raises ``FileNotFoundError`` when jetfm is imported from an archive (zip) rather than
    from files, as no wheel installs it."""
    folder = files(__name__)
    if not isinstance(folder, Path):
        raise FileNotFoundError(f"jetfm presets: {folder} is not a folder on disk (jetfm is "
                                "imported from an archive); install jetfm with pip")
    return folder


def names() -> list[str]:
    """Names of the shipped presets (``omnijet_cpu``, ``transfer_tiny``, ...), sorted."""
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset(name: str) -> Path:
    """The YAML file of the shipped preset ``name`` (``.yaml`` optional). Raises
    ``FileNotFoundError`` naming the valid names for an unknown one."""
    stem = name.removesuffix(".yaml")
    path = presets_dir() / f"{stem}.yaml"
    if "/" in stem or not path.is_file():
        raise FileNotFoundError(f"no preset {name!r}; presets: {', '.join(names())}")
    return path


def locate(text: str | Path) -> Path:
    """The config file ``text`` names: an existing file as given, else the preset of that name
    (``omnijet_cpu`` or ``omnijet_cpu.yaml``). A missing ``configs/NAME.yaml`` (the presets'
    folder before they moved into the package) whose NAME is a preset gives the preset too.
    Any other missing path is returned as given (the loader names it: ``no config file``);
    a bare name that is no preset raises ``FileNotFoundError`` listing the presets."""
    path = Path(text)
    if path.exists():
        return path
    bare = len(path.parts) == 1 and path.suffix in ("", ".yaml")
    moved = len(path.parts) == 2 and path.parts[0] == "configs" and path.suffix == ".yaml"
    if bare or moved:
        if (presets_dir() / f"{path.stem}.yaml").is_file():
            return preset(path.stem)
        if bare:
            raise FileNotFoundError(f"no config file {text} and no preset of that name; "
                                    f"presets: {', '.join(names())}")
    return path


# ----------------------------------------------------------------------------- overrides
def is_override(text: str) -> bool:
    """True for ``KEY=VALUE`` text (a dotted key, ``=``, anything) and ``~KEY`` (delete)."""
    return OVERRIDE.fullmatch(text) is not None or DELETE.fullmatch(text) is not None


def _key_path(key: str) -> list[str | int]:
    """``a.b[0].c`` / ``a.b.0.c`` -> ``["a", "b", 0, "c"]``."""
    return [int(part) if part.isdigit() else part
            for part in re.split(r"\.|\[|\]", key) if part != ""]


def _delete(data: dict[str, Any], text: str, key: str, where: str | Path) -> dict[str, Any]:
    """``data`` without ``key`` (a dotted path); ``ValueError`` naming it when it is absent."""
    data = copy.deepcopy(data)
    node: Any = data
    path = _key_path(key)
    for i, part in enumerate(path):
        if isinstance(node, dict) and str(part) in node:
            part = str(part)
        elif not (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            shown = ".".join(str(p) for p in path[:i + 1])
            raise ValueError(f"{where}: override {text!r}: no key {shown!r} to delete")
        if i == len(path) - 1:
            del node[part]
        else:
            node = node[part]
    return data


def split_overrides(items: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files, overrides) of command-line ``items``: ``KEY=VALUE`` items are overrides, unless
    a file of that name exists."""
    paths, overrides = [], []
    for item in items:
        (overrides if is_override(item) and not Path(item).exists() else paths).append(item)
    return paths, overrides


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` (plain YAML data) fits the type annotation ``hint``: ``int`` (not a
    bool), ``float`` (an int too), ``str``, ``bool``, ``None``, unions, ``list[X]``,
    ``dict[K, V]``, ``Any``; other annotations: ``isinstance`` of their origin class."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, UnionType):
        return any(matches(value, arg) for arg in args)
    if hint is NoneType or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(matches(v, args[0]) for v in value if args)
    if origin is dict:
        return isinstance(value, dict) and (not args or all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()))
    return isinstance(value, origin or hint) if isinstance(origin or hint, type) else True


def schema_of(cls: type, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Top-level key -> type annotation of the config dataclass ``cls``, plus ``extra``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)} | dict(extra or {})


def _default(cls: type | None, key: str) -> Any:
    """The default of field ``key`` of dataclass ``cls`` (MISSING when it has none)."""
    for f in fields(cls) if cls is not None and is_dataclass(cls) else ():
        if f.name == key:
            if f.default is not MISSING:
                return copy.deepcopy(f.default)
            if f.default_factory is not MISSING:
                return f.default_factory()
    return MISSING


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], cls: type,
                    where: str | Path, extra: Mapping[str, Any] | None = None
                    ) -> dict[str, Any]:
    """``data`` (a config's YAML mapping) with the ``KEY=VALUE`` ``overrides`` applied in
    order, as a new mapping (``data`` is not changed).

    ``cls``: the config dataclass; its fields (and ``extra``: more key -> annotation) are the
    valid top-level keys. A key absent from ``data`` starts from the field's default, so
    ``block.key=v`` changes one key of a default block. Raises ``ValueError`` naming ``where``
    (the config file) and the override when it is not ``KEY=VALUE``, when its top-level key
    is unknown (listing the valid keys), when OmegaConf cannot apply it (an index past the
    end of a list, ...), and when the top-level value it gives does not fit the field's type
    (``seed=abc``). Keys and values inside blocks are left to the study's loader."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = schema_of(cls, extra)
    data = dict(data)
    for text in overrides:
        match = OVERRIDE.fullmatch(text) or DELETE.fullmatch(text)
        if match is None:
            raise ValueError(f"{where}: override {text!r}: expected KEY=VALUE with a dotted KEY "
                             "(e.g. training.max_steps=10) or ~KEY (delete the key)")
        top = re.split(r"[.\[]", match["key"], maxsplit=1)[0]
        if top not in schema:
            raise ValueError(f"{where}: override {text!r}: unknown key {top!r}; valid: "
                             f"{sorted(schema)}")
        if top not in data and (default := _default(cls, top)) is not MISSING:
            data[top] = default
        if text.startswith("~"):
            if match["key"] == top:  # the file's value would silently become the default
                raise ValueError(f"{where}: override {text!r}: a top-level key cannot be "
                                 f"deleted (it would fall back to the built-in default); set "
                                 f"it instead, or delete entries inside it (~{top}.NAME)")
            data = _delete(data, text, match["key"], where)
            if top in data and not matches(data[top], schema[top]):
                raise ValueError(f"{where}: override {text!r}: {top}: {data[top]!r} is not of "
                                 f"type {_hint_name(schema[top])}")
            continue
        if re.fullmatch(r"\s*\{\s*\}\s*", match["value"]):
            raise ValueError(f"{where}: override {text!r}: a mapping value is merged into the "
                             "block, so an empty one changes nothing; delete entries with "
                             f"~{match['key']}.NAME")
        try:
            conf = OmegaConf.create(data)
            conf.merge_with_dotlist([text])
            data = OmegaConf.to_container(conf, resolve=False)
        except yaml.YAMLError as err:  # OmegaConf parses VALUE as YAML: sizes=[1,
            problem = getattr(err, "problem", None) or "not valid YAML"
            raise ValueError(f"{where}: override {text!r}: its value is not valid YAML "
                             f"({problem})") from None
        except (OmegaConfBaseException, ValueError, TypeError) as err:
            problem = " ".join(str(err).split("\n")[0].split())
            raise ValueError(f"{where}: override {text!r}: {problem}") from None
        if not matches(data[top], schema[top]):
            raise ValueError(f"{where}: override {text!r}: {top}: {data[top]!r} is not of type "
                             f"{_hint_name(schema[top])}")
    return data


def write_resolved(data: Mapping[str, Any], out_dir: str | Path, source: str | Path,
                   overrides: Sequence[str] = ()) -> Path:
    """Write the config mapping ``data`` (the YAML of ``source`` after ``overrides``) to
    ``out_dir/config.resolved.yaml`` atomically, with a header naming both; returns the
    path. ``--config`` with that file reruns the same configuration."""
    import yaml

    from jetfm.atomic import write_text_atomic

    header = f"# the config of this run: {source}"
    header += f" with overrides {' '.join(overrides)}\n" if overrides else "\n"
    text = header + yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
    return write_text_atomic(Path(out_dir) / RESOLVED_NAME, text)


__all__ = ["DELETE", "OVERRIDE", "RESOLVED_NAME", "apply_overrides", "is_override", "locate",
           "matches", "names", "preset", "presets_dir", "schema_of", "split_overrides",
           "write_resolved"]
