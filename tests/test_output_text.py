"""What a user reads in the terminal (issue 15): no known-benign library warnings (but every
other warning), FastJet's banner once per run, no text lost to rich markup, tables titled
with what they belong to, values rounded to their errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from contextlib import nullcontext

import lightning as L
import numpy as np
import pytest
from cli_models import omnijet_meta
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.utilities import rank_zero_warn
from rich.table import Table
from scipy.linalg import LinAlgWarning, sqrtm

import jetfm.tasks.training as training
from jetfm._warnings import BENIGN_WARNINGS
from jetfm.console import Console, protect_markup
from jetfm.metrics.distances import frechet_distance
from jetfm.report import format_with_error, markdown_table, round_to_error

OMNIJET_SMALL = omnijet_meta({"vocab_size": 12, "dim": 16, "n_blocks": 1, "n_heads": 2,
                              "max_length": 8})
BENIGN_TEXT = ("`isinstance(treespec, LeafSpec)` is deprecated",
               "is smaller than the logging interval")


class _Unrelated(L.Callback):
    """Raises warnings that signal real problems: they must reach the user."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        warnings.warn("an unrelated problem", UserWarning, stacklevel=1)
        rank_zero_warn("another Lightning possible problem", category=PossibleUserWarning)


def _tiny_fit(tmp_path, name: str) -> list[str]:
    """Messages of every warning a 1-epoch fit of a tiny GPT on 40 sequences emits (3 batches,
    fewer than log_every_n_steps = 10), with Python's default filters replaced by "always"."""
    from jetfm.tasks.omnijet import GenerativeTask
    from jetfm.tasks.training import TrainConfig, fit, tensor_dataset

    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 11, (40, 8))
    data = tensor_dataset(tokens, np.ones((40, 8), dtype=bool))
    config = TrainConfig(max_epochs=1, batch_size=16, progress=False, accelerator="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(GenerativeTask(OMNIJET_SMALL), data, data, config, tmp_path / name,
            callbacks=[_Unrelated()])
    return [str(w.message) for w in caught]


def test_fit_hides_the_benign_library_warnings_and_shows_every_other(tmp_path,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(sys, "warnoptions", [])  # as a user without -W / PYTHONWARNINGS
    shown = _tiny_fit(tmp_path, "silenced")
    assert not [m for m in shown if any(t in m for t in BENIGN_TEXT)], shown
    assert "an unrelated problem" in shown
    assert "another Lightning possible problem" in shown  # same category, other message
    # the same fit without the filters does emit both benign warnings (the test can fail)
    monkeypatch.setattr(training, "silence_benign_warnings", lambda: None)
    unfiltered = _tiny_fit(tmp_path, "unfiltered")
    for text in BENIGN_TEXT:
        assert any(text in m for m in unfiltered), (text, unfiltered)


def _tagging_fit(tmp_path, name: str, head_in_eval: bool = False) -> list[str]:
    """Warning messages of a 1-epoch OmniJet tagger fit (its tokenizer is kept in eval mode
    by design); ``head_in_eval``: the head left in eval mode as well, by mistake."""
    from jetfm.models.backbone import backbone_from_meta
    from jetfm.models.features import ParticleInputs
    from jetfm.models.tagger import Tagger
    from jetfm.tasks.tagging import InputsDataset, TaggingTask
    from jetfm.tasks.training import TrainConfig, fit

    rng = np.random.default_rng(1)
    tokens, mask = np.zeros((40, 8), dtype=np.int64), np.zeros((40, 8), dtype=bool)
    tokens[:, 1:5], tokens[:, 5], mask[:, :6] = rng.integers(2, 10, (40, 4)), 11, True
    data = InputsDataset(ParticleInputs(mask=mask, tokens=tokens), rng.integers(0, 2, 40))
    task = TaggingTask(Tagger(backbone_from_meta(OMNIJET_SMALL, "test"), ["QCD", "Tbqq"],
                              "summation").meta())
    if head_in_eval:
        task.tagger.head.eval()
    config = TrainConfig(max_epochs=1, batch_size=16, progress=False, accelerator="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(task, data, data, config, tmp_path / name)
    return [str(w.message) for w in caught]


def test_eval_mode_warning_only_for_modules_not_frozen_by_design(tmp_path,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(sys, "warnoptions", [])
    eval_mode = "in eval mode at the start of training"
    assert not [m for m in _tagging_fit(tmp_path, "frozen_tokenizer") if eval_mode in m]
    assert [m for m in _tagging_fit(tmp_path, "head", head_in_eval=True) if eval_mode in m]
    # and the frozen tokenizer alone does trigger Lightning's warning (the test can fail)
    monkeypatch.setattr(training, "intended_eval_modes", lambda module: nullcontext())
    assert [m for m in _tagging_fit(tmp_path, "unfiltered") if eval_mode in m]


def test_cli_entry_point_applies_the_filters_narrowly(monkeypatch, capsys) -> None:
    from jetfm.cli import main

    monkeypatch.setattr(sys, "warnoptions", [])
    singular = np.diag([1.0, 0.0])  # a constant feature: singular covariance
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["study", "transfer", "--help"]) == 0
        assert frechet_distance(np.zeros(2), singular, np.zeros(2), singular) == 0.0
        sqrtm(singular)  # the same scipy warning from other code is still shown
        warnings.warn("The number of training batches (3) is smaller than the logging "
                      "interval", PossibleUserWarning, stacklevel=1)
        warnings.warn("something else is wrong", UserWarning, stacklevel=1)
    capsys.readouterr()
    found = [(w.category, str(w.message), w.filename) for w in caught]
    singular_warnings = [f for f in found if f[0] is LinAlgWarning]
    assert len(singular_warnings) == 1 and singular_warnings[0][2] == __file__  # sqrtm's
    assert not [f for f in found if "logging interval" in f[1]], found
    assert "something else is wrong" in [f[1] for f in found]


def test_user_warning_options_win(monkeypatch) -> None:
    from jetfm._warnings import silence_benign_warnings

    monkeypatch.setattr(sys, "warnoptions", ["default"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_benign_warnings()
        warnings.warn(BENIGN_WARNINGS[0].message.replace("\\", ""), FutureWarning, stacklevel=1)
    assert len(caught) == 1


def test_fastjet_banner_is_printed_once_with_generator_workers(tmp_path) -> None:
    script = textwrap.dedent("""
        from jetfm.data.pythia import GeneratorConfig, generate

        if __name__ == "__main__":
            config = GeneratorConfig("z", events_per_batch=40)
            generate(config, 4, seed=4, workers=2, progress=False)  # two worker processes
            generate(config, 2, seed=5, workers=1, progress=False)  # clusters in this one
    """)
    path = tmp_path / "banner.py"
    path.write_text(script)
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=300, check=True)
    assert (run.stdout + run.stderr).count("FastJet release") == 1, run.stdout


def test_console_prints_brackets_that_are_not_styles() -> None:
    console = Console(soft_wrap=True, emoji=False, width=200, force_terminal=False,
                      record=True)
    console.print("0.5 sum |n_gen - n_truth| (merged 3 x 3) [splittings per jet]; ref")
    console.print("[yellow]warning: file a[1].root, mass [GeV], path C:\\x\\[/]")
    console.print("[bold]estimate[/]: [1/3] done")
    console.rule("cell [qcd] D=20")
    table = Table(title="a[1].root: 3 jets", title_justify="left")
    table.add_column("feature")
    table.add_column("unit")
    table.add_row("jet mass", "[GeV]")
    console.print(table)
    text = console.export_text()
    assert "(merged 3 x 3) [splittings per jet]; ref" in text
    assert "warning: file a[1].root, mass [GeV], path C:\\x\\\n" in text
    assert "estimate: [1/3] done" in text
    assert "cell [qcd] D=20" in text
    assert "a[1].root: 3 jets" in text and "[GeV]" in text
    assert "[yellow]" not in text and "[bold]" not in text and "[/]" not in text
    assert protect_markup("[red]x[/red] [y]") == "[red]x[/red] \\[y]"


@pytest.mark.parametrize("module", ["jetfm.cli", "jetfm.studies.evolution",
                                    "jetfm.studies.transfer", "jetfm.studies.omnijet",
                                    "jetfm.studies.benchmark_generation"])
def test_command_consoles_keep_bracketed_text(module, capsys) -> None:
    """``jetfm evolution`` printed its summary.md through such a console, and "[splittings per
    jet]" vanished from it (rich markup)."""
    import importlib

    console = importlib.import_module(module).console
    assert isinstance(console, Console)
    console.print("merged 3 x 3) [splittings per jet]; reference: held-out jets")
    assert "merged 3 x 3) [splittings per jet]; reference" in capsys.readouterr().out


def test_values_are_rounded_to_their_errors() -> None:
    assert round_to_error(9.571, 2.895) == ("9.6", "2.9")
    assert round_to_error(0.004977, 0.001929) == ("0.0050", "0.0019")
    assert round_to_error(331.7, 23.4) == ("332", "23")
    assert round_to_error(-3.2, 0.0996) == ("-3.20", "0.10")  # the error rounds up to 0.10
    assert round_to_error(0.5893, 0.0) == ("0.5893", "0")  # no error: 4 significant digits
    assert round_to_error(18.42, 6.7e-7) == ("18.42", "6.7e-07")  # not 18.42000000
    assert format_with_error(13.57, 1.4) == "13.6 ± 1.4"
    assert format_with_error(0.5, float("nan")) == "0.5 ± n/a"
    table = markdown_table([{"metric": "W1", "value": 0.2609, "error": 0.06306,
                             "floor": 0.2637, "floor_error": 0.06781, "auc": 0.9,
                             "auc std": 0.01234}])
    assert table.splitlines()[2] == "| W1 | 0.261 | 0.063 | 0.264 | 0.068 | 0.900 | 0.012 |"


def test_printed_metric_tables_name_their_samples(tmp_path) -> None:
    from io_jets import random_jets

    from jetfm.metrics.evaluate import evaluate_batches, evaluate_tagging

    rng = np.random.default_rng(1)
    result = evaluate_batches(random_jets(60, seed=1), random_jets(60, seed=2), tmp_path,
                              n_bootstrap=2, plots=False,
                              title="evolution_top: generated from held-out roots vs truth")
    lines = result.format().splitlines()
    assert lines[0] == "evolution_top: generated from held-out roots vs truth"
    labels = rng.integers(0, 2, 200)
    tagging = evaluate_tagging(labels, rng.normal(labels, 1.0), name="part finetune, D=160",
                               signal="Tbqq", background="QCD")
    assert tagging.format().splitlines()[0] == "part finetune, D=160: Tbqq vs QCD"


@pytest.mark.parametrize("benign", BENIGN_WARNINGS, ids=lambda b: b.category.__name__)
def test_every_benign_entry_says_why(benign) -> None:
    assert len(benign.why) > 40 and benign.message and not benign.message.startswith(".*")
