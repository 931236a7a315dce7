"""Every CLI subcommand that reads jet files, on every awkward file of every format.

The files are those of :mod:`awkward_files` (0 jets; 1-3 particles; zero-pT and null
particles; optional branches jagged, scalar or missing; NaN and inf momenta), written in the
real formats. Each command gives a result (exit 0) or one clear line naming the file (exit 2);
never a traceback, an unexpected-error exit (1), a hang or a partial output.
"""

from __future__ import annotations

import pytest
from awkward_files import EXPECTED, N_JETS, write_awkward_files
from cli_models import tiny_tokenizer

from jetfm import cli
from jetfm.cli import main
from jetfm.data.io import read_jets


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("awkward")
    paths = {k: str(v) for k, v in write_awkward_files(d / "files").items()}
    tiny_tokenizer(d / "tok.safetensors")
    paths["tokenizer"] = str(d / "tok.safetensors")
    return paths


@pytest.fixture(autouse=True)
def fast_plots(monkeypatch):
    """Observables are computed as usual; only the PNG drawing (seconds each) is skipped."""
    import jetfm.plots.observables as plots

    monkeypatch.setattr(plots, "plot_observables_by_class", lambda *args, **kwargs: [])


def _commands(path: str, out: str, tokenizer: str) -> dict[str, list[str]]:
    return {
        "info": ["info", path],
        "plot": ["plot", path, "--out-dir", f"{out}/plots"],
        "trees": ["trees", path, "--out", f"{out}/trees.parquet"],
        "evaluate": ["evaluate", path, "--generated", path, "--out-dir", f"{out}/eval",
                     "--n-bootstrap", "2", "--no-plots"],
        "tokenize": ["tokenize", path, "--tokenizer", tokenizer, "--out", f"{out}/t.parquet"],
    }


@pytest.mark.parametrize("command", ["info", "plot", "trees", "evaluate", "tokenize"])
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_every_command_on_every_awkward_file(files, capsys, tmp_path, key, command):
    path = files[key]
    argv = _commands(path, str(tmp_path), files["tokenizer"])[command]
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    expected = EXPECTED[key]
    if expected == "error" or (expected == "empty" and command != "info"):
        assert code == 2, (out, err)
        line = err.strip()
        assert "\n" not in line and line.startswith(f"jetfm {command}: error: ")
        assert path in line  # the file is named
        assert ("0 jets" in line) if expected == "empty" else ("non-finite" in line)
        assert not list(tmp_path.rglob("*.parquet"))  # nothing half-written
        return
    if command == "evaluate" and len(read_jets(path)) < 2:
        assert code == 2 and "fewer than" in err and path in err  # a sample needs 2 jets
        return
    assert code == 0, (out, err)
    if expected == "empty":
        assert f"{path}: 0 jets" in out


ERROR_FILES = [k for k, v in sorted(EXPECTED.items()) if v == "error"]


@pytest.mark.parametrize(("key", "command"), [(k, "info") for k in ERROR_FILES] + [
    (k, c) for k in ERROR_FILES if k.endswith("nan_momenta")  # one kind per format suffices
    for c in ("plot", "trees", "evaluate", "tokenize")])
def test_skip_invalid_counts_what_it_drops(files, capsys, caplog, tmp_path, key, command):
    """Each error file holds one bad jet among N_JETS: with --skip-invalid, every command that
    reads jets (the one the error message points to) keeps the others and says how many it
    removed and why."""
    path = files[key]
    argv = _commands(path, str(tmp_path), files["tokenizer"])[command]
    with caplog.at_level("WARNING", logger="jetfm"):
        assert main([*argv, "--skip-invalid"]) == 0, capsys.readouterr().err
    if command == "info":
        assert f"{path}: {N_JETS[key] - 1} jets" in capsys.readouterr().out
    assert f"kept {N_JETS[key] - 1} / {N_JETS[key]} (removed non-finite" in caplog.text


def test_every_jet_reading_command_has_skip_invalid():
    """The invalid-jet error tells the user to pass --skip-invalid: every command that reads
    jet files must take it (the tokenizer one too, which the test above does not train)."""
    parser = cli.build_parser()
    for command in ("info", "plot", "trees", "tokenize", "tokenizer"):
        extra = ["--tokenizer", "t", "--out", "t.parquet"] if command == "tokenize" else []
        assert parser.parse_args([command, "f.root", *extra, "--skip-invalid"]).skip_invalid
    args = parser.parse_args(["evaluate", "r.root", "--generated", "g.root", "--skip-invalid"])
    assert args.skip_invalid


def test_command_list_is_complete():
    """A new subcommand that reads jet files must be added above."""
    readers = {"info", "plot", "trees", "evaluate", "tokenize", "tokenizer", "omnijet", "demo",
               "generate", "pretrain", "sample", "finetune", "evolution", "study", "benchmark"}
    readers |= {"cluster"}  # reads HepMC event files: its bad inputs are in test_hepmc.py
    readers |= {"report"}  # reads run folders: its bad inputs are in test_report_cli.py
    subcommands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert subcommands == readers
