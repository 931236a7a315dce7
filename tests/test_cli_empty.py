"""Every subcommand on a file with zero jets (or a selection that leaves none), in-process.

``info`` has a result (0 jets, exit 0); every command that needs jets says which file holds
none and exits 2 before any model is built or any output file is written.
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_models import tiny_backbone, tiny_config, tiny_tokenizer, token_file
from io_jets import random_jets

import jetfm.tasks.omnijet as omnijet
import jetfm.tasks.tagging as tagging
from jetfm.cli import main
from jetfm.data.io import write_jets


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Zero-jet jet files (ROOT, parquet, HDF5), a zero-jet token file and tiny models."""
    d = tmp_path_factory.mktemp("empty")
    empty = random_jets(3, seed=1)[np.zeros(3, dtype=bool)]
    assert len(empty) == 0
    paths = {}
    for suffix in ("root", "parquet", "h5"):
        paths[suffix] = d / f"empty.{suffix}"
        write_jets(empty, paths[suffix])
    paths["jets"] = d / "jets.parquet"
    write_jets(random_jets(20, seed=2), paths["jets"])
    tokenizer = tiny_tokenizer(d / "tok.safetensors")
    paths["tokenizer"] = d / "tok.safetensors"
    paths["backbone"] = tiny_backbone(d / "gpt.safetensors", tokenizer)
    paths["stops"] = tiny_backbone(d / "stops.safetensors", tokenizer, stop_bias=1e4)
    paths["tokens"] = token_file(d / "tokens.parquet", tokenizer, 30, 1, seed=3)
    paths["no_tokens"] = token_file(d / "no_tokens.parquet", tokenizer, 0, 0, seed=3)
    paths["config"] = tiny_config(d / "config.yaml")
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """An empty input must be refused before any model is built or trained."""
    def refuse(*args, **kwargs):
        pytest.fail("a model was built for an empty input")

    for name in ("fit_tokenizer", "fit_generative"):
        monkeypatch.setattr(omnijet, name, refuse)
    monkeypatch.setattr(tagging, "train_tagger", refuse)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("suffix", ["root", "parquet", "h5"])
def test_info_reports_zero_jets_and_succeeds(files, capsys, suffix):
    assert main(["info", files[suffix]]) == 0
    assert f"{files[suffix]}: 0 jets" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", ["root", "parquet", "h5"])
@pytest.mark.parametrize(
    ("command", "purpose"),
    [(["plot", "--out-dir", "{out}"], "nothing to plot"),
     (["trees", "--out", "{out}/trees.parquet"], "nothing to build trees from"),
     (["tokenizer", "--out-dir", "{out}", "--config", "{config}"], "nothing to train"),
     (["tokenize", "--tokenizer", "{tokenizer}", "--out", "{out}/t.parquet"], "to tokenize")],
)
def test_commands_needing_jets_refuse_an_empty_file(files, capsys, tmp_path, suffix, command,
                                                    purpose):
    out = tmp_path / "out"
    argv = [a.format(out=out, **files) for a in command]
    assert main([argv[0], files[suffix], *argv[1:]]) == 2
    err = _error(capsys)
    assert f"{files[suffix]}: 0 jets" in err and purpose in err
    assert not out.exists() or not any(out.iterdir())  # no output, not even an empty one


def test_empty_file_among_others_is_named_and_skipped(files, capsys, tmp_path):
    assert main(["trees", files["root"], files["jets"]]) == 0
    out = capsys.readouterr().out
    assert f"0 jets in {files['root']}" in out and "20 jets -> trees" in out


def test_pretrain_and_finetune_refuse_empty_files(files, capsys, tmp_path):
    tok = ["--tokenizer", files["tokenizer"], "--config", files["config"]]
    assert main(["pretrain", files["no_tokens"], *tok, "--out-dir", str(tmp_path / "p")]) == 2
    err = _error(capsys)
    assert f"{files['no_tokens']}: 0 tokenized jets; nothing to pre-train on" in err
    for suffix in ("root", "parquet", "h5"):
        argv = ["finetune", files[suffix], "--init", files["backbone"],
                "--out-dir", str(tmp_path / "f")]
        assert main(argv) == 2
        assert f"{files[suffix]}: 0 jets; nothing to train a tagger on" in _error(capsys)
    assert not (tmp_path / "p").exists() and not (tmp_path / "f").exists()


def test_sample_that_decodes_no_jet_writes_nothing(files, capsys, tmp_path):
    out = tmp_path / "gen.parquet"
    argv = ["sample", "--model", files["stops"], "--tokenizer", files["tokenizer"],
            "--n-jets", "8", "--out", str(out)]
    assert main(argv) == 2
    err = _error(capsys)
    assert "all 8 sampled sequences stopped before their first particle" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_generate_selection_that_leaves_no_jet_stops_with_counts(capsys, tmp_path):
    argv = ["generate", "--process", "qcd", "--n-jets", "2", "--out-dir", str(tmp_path),
            "--eta-max", "1e-6", "--max-events-without-jet", "40"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "qcd: no jet passed the selection in 200 events" in err
    assert "from 200 events: kept 0 /" in err and "|eta| > 1e-06:" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("which", ["reference", "generated"])
def test_evaluate_names_the_empty_file(files, capsys, tmp_path, which):
    ref, gen = (files["root"], files["jets"]) if which == "reference" else \
        (files["jets"], files["root"])
    assert main(["evaluate", ref, "--generated", gen, "--out-dir", str(tmp_path / "e"),
                 "--n-bootstrap", "2"]) == 2
    assert f"{files['root']}: 0 jets" in _error(capsys)
