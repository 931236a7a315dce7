"""The whole OmniJet-alpha chain (``jetfm omnijet`` / ``jetfm demo``) on a tiny config: every
stage writes its result, the numbers are consistent with each other, and a second run resumes
(reuses every stage) instead of training again."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from cli_models import omnijet_meta
from sklearn.metrics import roc_auc_score

from jetfm.cli import main
from jetfm.data.io import read_jets
from jetfm.data.tokens import read_tokens
from jetfm.models.backbone import backbone_from_meta
from jetfm.models.features import ParticleInputs
from jetfm.models.tagger import Tagger
from jetfm.physics.observables import jet_observables
from jetfm.studies.omnijet import OmniJetConfig, make_splits, mass_mode
from jetfm.tasks.tagging import InputsDataset, TaggingTask
from jetfm.tasks.training import TrainConfig, fit

TINY = {
    "n_jets": {"top": 90, "qcd": 60},
    "workers": 1,
    "seed": 3,
    "n_max": 16,
    "tokenizer_jets": 40,
    "pretrain_fraction": 0.5,
    "eval_fraction": 0.2,
    "vqvae": {"dim": 16, "n_blocks": 1, "n_heads": 2, "latent_dim": 2, "codebook_size": 16},
    "tokenizer_training": {"max_epochs": 1, "batch_size": 16},
    "gpt": {"dim": 16, "n_blocks": 1, "n_heads": 2, "positional": True},
    "pretraining": {"max_epochs": 1, "batch_size": 16},
    "n_generate": 8,
    "sample_batch": 5,
    "tagging_sizes": [20, 10000],
    "tagging_training": {"max_epochs": 1, "batch_size": 8},
    "n_bootstrap": 3,
    "augment": 2,  # the GPT trains on its jets and their eta-reflected images
}


def test_chain_writes_every_stage_and_resumes(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["omnijet", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped D = 10000" in printed  # too few jets: said, not silently dropped
    assert "- skipped D = 10000: only " in (out / "summary.md").read_text()  # and written

    jets = {name: read_jets([str(out / "data" / f"{name}.root")]) for name in ("top", "qcd")}
    assert (len(jets["top"]), len(jets["qcd"])) == (90, 60)
    splits = make_splits(jets, OmniJetConfig(**TINY))
    summary = json.loads((out / "summary.json").read_text())

    # augment 2: the GPT's tokens are its 45 pre-training jets and their 45 images
    augmented = read_tokens(out / "augmented" / "tokens" / "top.parquet", TINY["n_max"])
    assert len(augmented) == 2 * len(splits.pretrain["top"]) == 90

    # generated jets: every requested sequence is either decoded or counted as empty
    sampling = json.loads((out / "generated" / "sampling.json").read_text())
    generated = read_jets([str(out / "generated" / "generated.parquet")])
    assert len(generated) + sampling["n_empty"] == TINY["n_generate"]
    assert int(generated.n_particles.max()) <= TINY["n_max"]

    # the evaluation table compares with held-out truth and carries floors
    rows = {(r["metric"], r["observable"]): r for r in summary["generation"]}
    for observable in ("mass", "tau32", "n_particles"):
        assert rows[("W1", observable)]["floor"] is not None
        assert np.isfinite(rows[("KL", observable)]["value"])
    assert len(splits.evaluation) == 18  # 20 % of 90 top jets
    # held-out jets: the last n_generate (at most half) give the floor, the rest is the truth
    assert (summary["n_truth"], summary["n_floor"]) == (10, 8)
    truth = jets["top"][splits.evaluation[:10]]
    # tokenizer only: the floor jets encoded and decoded keep their multiplicity, so their
    # multiplicity metrics are the floor's own
    decoded = {(r["metric"], r["observable"]): r for r in summary["tokenizer_only"]}
    for metric in ("W1", "KL"):
        row = decoded[(metric, "n_particles")]
        assert row["value"] == pytest.approx(row["floor"], abs=1e-12)
    assert [r["sample"] for r in summary["samples"]] == ["tokenizer only (decoded truth)",
                                                        "generated"]
    prong = summary["three_prong"]
    assert prong["tau32_median"] == pytest.approx(np.nanmedian(jet_observables(generated)["tau32"]))
    assert prong["pass"] == (prong["tau32_median"] < 0.55
                             and abs(prong["mass_mode"] - prong["truth_mass_mode"]) <= 10)
    assert "Three-prong check" in (out / "summary.md").read_text()
    medians = summary["medians"]["mass"]  # of the held-out truth, raw and in the frame
    assert medians["generated"] == pytest.approx(np.nanmedian(generated.jet_mass))
    assert medians["truth"] == pytest.approx(np.nanmedian(truth.jet_mass))
    assert summary["medians"]["n_particles"]["truth in the tokenizer frame"] <= TINY["n_max"]

    # taggers: both modes at D = 20, tested on the same held-out jets, ROC plots written
    tagging = summary["tagging"]
    assert {(r["D"], r["mode"]) for r in tagging} == {(20, "finetune"), (20, "scratch")}
    assert len({r["n_test"] for r in tagging}) == 1
    for r in tagging:  # the summary's AUC is that of the saved test scores
        with np.load(out / "tagging" / f"D{r['D']}_{r['mode']}" / "test_scores.npz") as saved:
            assert len(saved["labels"]) == r["n_test"] and set(saved["labels"]) == {0, 1}
            assert r["auc"] == pytest.approx(roc_auc_score(saved["labels"], saved["scores"]))
    assert (out / "tagging" / "roc_all.png").exists()
    assert (out / "plots" / "mass.png").exists()

    # resume: nothing is trained again and the numbers are the same
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    stamps.update({p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")})
    assert main(["omnijet", "--config", str(config), "--out", str(out)]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    again = json.loads((out / "summary.json").read_text())
    assert again["tagging"] == tagging and again["generation"] == summary["generation"]


def test_omnijet_tagger_separates_separable_toy_tokens(tmp_path):
    """A from-scratch OmniJet tagger (TaggingTask on token inputs) on sequences whose classes
    use disjoint halves of the vocabulary must separate held-out sequences almost perfectly (a
    broken head, label order or score column would not)."""
    rng = np.random.default_rng(0)

    def toy(n: int) -> InputsDataset:
        labels = np.repeat([1, 0], n)
        codes = np.where(labels[:, None] == 1, rng.integers(1, 6, (2 * n, 8)),
                         rng.integers(6, 11, (2 * n, 8)))
        tokens = np.concatenate([np.zeros((2 * n, 1), dtype=np.int64), codes], axis=1)
        return InputsDataset(ParticleInputs(np.ones_like(tokens, dtype=bool), tokens=tokens),
                             labels)

    gpt = {"dim": 16, "n_blocks": 1, "n_heads": 2, "vocab_size": 12, "max_length": 10}
    tagger = Tagger(backbone_from_meta(omnijet_meta(gpt), "test"), ["QCD", "Tbqq"])
    task = TaggingTask(tagger.meta(), mode="scratch", lr=3e-3)
    fit(task, toy(80), toy(20), TrainConfig(max_epochs=4, batch_size=16, lr=3e-3,
                                            progress=False, accelerator="cpu"), tmp_path)
    test = toy(100)
    probs = task.tagger.predict_proba(ParticleInputs(test.inputs.mask.numpy(),
                                                     tokens=test.inputs.tokens.numpy()))
    assert roc_auc_score(test.labels.numpy(), probs[:, 1]) > 0.95


@pytest.mark.parametrize(("change", "message"), [
    ({"eval_fraction": 0.0}, r"eval_fraction must be a fraction in \(0, 1\)"),
    ({"pretrain_fraction": 0.8, "eval_fraction": 0.5}, "keep the sum below 1"),
    ({"pretrain_fraction": 0.8, "eval_fraction": 0.2}, "leaves 0 of the jets for the taggers"),
    ({"n_jets": {"top": 600}}, r"n_jets: give a number for \['qcd'\]"),
    ({"n_jets": {"top": 0, "qcd": 10}}, r"n_jets: top: 0; give a whole number of jets >= 1"),
    ({"n_jets": "many"}, r"n_jets: 'many'; give a whole number"),
])
def test_split_fractions_and_classes_are_checked_before_any_work(change, message):
    with pytest.raises(ValueError, match=message):
        OmniJetConfig(**{**TINY, **change})


def test_mass_mode_is_the_density_peak_whatever_the_binning():
    """A narrow peak on a broad shoulder is found to a GeV, and shifting the sample by half a
    histogram bin shifts the mode by as much (a fullest-bin mode would jump by a bin)."""
    rng = np.random.default_rng(4)
    mass = np.r_[rng.normal(173.0, 12.0, 400), rng.uniform(60, 280, 200)]
    assert mass_mode(mass) == pytest.approx(173.0, abs=3.0)
    assert mass_mode(mass + 5.0) - mass_mode(mass) == pytest.approx(5.0, abs=0.5)
    assert mass_mode(np.r_[mass, np.nan, -1.0, 500.0]) == mass_mode(mass)  # outside: ignored
    assert np.isnan(mass_mode(np.array([np.nan, 42.0]))) and mass_mode(np.full(3, 80.0)) == 80.0
