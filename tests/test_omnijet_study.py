"""The whole OmniJet-alpha chain (``jetfm omnijet`` / ``jetfm demo``) on a tiny config: every
stage writes its result, the numbers are consistent with each other, and a second run resumes
(reuses every stage) instead of training again."""

from __future__ import annotations

import json

import numpy as np
import yaml

from jetfm.cli import main
from jetfm.data.io import read_jets
from jetfm.studies.omnijet import OmniJetConfig, make_splits

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
}


def test_chain_writes_every_stage_and_resumes(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "run"
    assert main(["omnijet", "--config", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skip D = 10000" in printed  # too few jets: said, not silently dropped

    jets = {name: read_jets([str(out / "data" / f"{name}.root")]) for name in ("top", "qcd")}
    assert (len(jets["top"]), len(jets["qcd"])) == (90, 60)
    splits = make_splits(jets, OmniJetConfig(**TINY))
    summary = json.loads((out / "summary.json").read_text())

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

    # taggers: both modes at D = 20, tested on the same held-out jets, ROC plots written
    tagging = summary["tagging"]
    assert {(r["D"], r["mode"]) for r in tagging} == {(20, "finetune"), (20, "scratch")}
    assert len({r["n_test"] for r in tagging}) == 1
    assert all(0.0 <= r["auc"] <= 1.0 for r in tagging)
    assert (out / "tagging" / "roc_all.png").exists()
    assert (out / "plots" / "mass.png").exists()

    # resume: nothing is trained again and the numbers are the same
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    stamps.update({p: p.stat().st_mtime_ns for p in out.rglob("*.ckpt")})
    assert main(["omnijet", "--config", str(config), "--out", str(out)]) == 0
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}
    again = json.loads((out / "summary.json").read_text())
    assert again["tagging"] == tagging and again["generation"] == summary["generation"]
