"""``jetfm --help`` and every ``jetfm COMMAND --help``: each option has help stating its
default, no reStructuredText markup reaches the terminal, each command shows examples that
parse (and the cheap ones run), configs mention KEY=VALUE overrides, ``--version``."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

import jetfm
from jetfm.cli import CONFIGS, EXAMPLES, HelpFormatter, build_parser, main

RST = re.compile(r"``|:(?:mod|class|func|meth|data|attr|obj|ref):|^\s*\.\. ", re.MULTILINE)


def commands(parser: argparse.ArgumentParser | None = None, path: str = ""
             ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(``"study omnilearn"``, its parser) for the whole tree, the top level as ``""``."""
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, f"{path} {name}".strip())


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)]


def example_lines(parser: argparse.ArgumentParser) -> list[str]:
    """The command lines under ``examples:`` in the parser's epilog."""
    epilog = parser.epilog or ""
    if "examples:" not in epilog:
        return []
    block = epilog.split("examples:", 1)[1]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("jetfm")]


TREE = list(commands())
PATHS = [path for path, _ in TREE]


def test_the_tree_has_every_command_and_study():
    assert {"generate", "finetune", "pretrain", "report", "study omnilearn",
            "benchmark generation", "study transfer"} <= set(PATHS)
    assert len(PATHS) == 27  # root, 17 commands, 7 studies, 2 benchmarks


@pytest.mark.parametrize("path", PATHS)
def test_every_option_has_help_that_states_its_default(path):
    parser = dict(TREE)[path]
    formatter = HelpFormatter(prog="jetfm")
    for action in options(parser):
        assert action.help and action.help.strip(), f"jetfm {path}: {action.dest} has no help"
        shown = formatter._get_help_string(action)
        if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
            assert "default" in shown.lower(), f"jetfm {path}: {action.dest}: {shown!r}"


@pytest.mark.parametrize("path", PATHS)
def test_no_restructuredtext_markup_in_help(path):
    parser = dict(TREE)[path]
    texts = [parser.description or "", parser.epilog or "", parser.format_help()]
    texts += [a.help or "" for a in options(parser)]
    for text in texts:
        found = RST.search(text)
        assert found is None, f"jetfm {path}: {found[0]!r} in {text[:200]!r}"


@pytest.mark.parametrize("path", PATHS)
def test_every_command_shows_examples_of_itself_that_parse(path):
    parser = dict(TREE)[path]
    lines = example_lines(parser)
    prefix = f"jetfm {path}".strip()
    own = [line for line in lines if line == prefix or line.startswith(prefix + " ")]
    assert own, f"jetfm {path}: no example starting with {prefix!r} in {parser.epilog!r}"
    assert "examples:" in parser.format_help()
    for line in lines:
        argv = shlex.split(line)[1:]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as err:
            pytest.fail(f"example {line!r} does not parse (exit {err.code})")
        words = [w for w in (args.command, getattr(args, "study", None)) if w]
        assert line.startswith(" ".join(["jetfm", *words])), line


def test_examples_are_listed_for_each_command_only():
    assert set(EXAMPLES) == set(PATHS)


@pytest.mark.parametrize("path", PATHS)
def test_commands_with_a_config_explain_key_value_overrides(path):
    parser = dict(TREE)[path]
    has_config = any("--config" in a.option_strings for a in parser._actions)
    text = parser.format_help()
    if has_config:
        assert "KEY=VALUE" in text and "config.resolved.yaml" in text, path
        takes = {a.dest for a in parser._actions} & {"overrides", "files", "tokens", "data"}
        assert takes, f"jetfm {path} has --config but takes no KEY=VALUE arguments"


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"jetfm {jetfm.__version__}\n"


def test_top_level_help_lists_every_command_in_plain_text(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert RST.search(out) is None
    for path in PATHS:
        if path and " " not in path:
            assert re.search(rf"^\s+{re.escape(path)}\s", out, re.MULTILINE), path
    assert "KEY=VALUE" in out and "jetfm demo --out runs/demo" in out


def test_a_default_list_and_a_preset_show_as_typed(capsys):
    assert main(["generate", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: qcd top w z hbb)" not in out  # the help states "all five"
    assert "default: all five" in out
    assert main(["study", "omnilearn", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: omnilearn_transfer_cpu)" in out and str(CONFIGS) not in out


# ------------------------------------------------------------------ cheap examples, run
def test_the_cheap_chain_of_examples_runs(tmp_path, monkeypatch, capsys):
    """generate (fewer jets than its example) -> the examples of info, trees, finetune and
    report, exactly as printed, in a fresh folder (plot and evaluate on such files:
    tests/test_cli.py)."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--process", "top", "qcd", "--n-jets", "30", "--out-dir",
                 "data"]) == 0
    first = {path: EXAMPLES[path][0][1] for path in ("info", "trees")}
    first["finetune"] = EXAMPLES["finetune"][0][1]
    first["report"] = EXAMPLES["report"][1][1]
    assert first["report"].startswith("jetfm report finetune")
    for line in first.values():
        capsys.readouterr()
        assert main(shlex.split(line)[1:]) == 0, (line, capsys.readouterr())
    assert (tmp_path / "trees.parquet").is_file()
    assert jetfm.load(tmp_path / "finetune" / "tagger").classes == ("QCD", "Tbqq")
    page = (tmp_path / "finetune" / "index.html").read_text()
    assert "<title>ParT top tagger</title>" in page and 'src="roc.png"' in page
