"""`jetfm study tokenizer` (jetfm.studies.tokenizer): the tiny preset end to end, reuse of
variants, and config errors that name the file, the variant and the key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jetfm.cli import main
from jetfm.configs import preset
from jetfm.studies.tokenizer import load_config

TINY = preset("tokenizer_study_tiny")
CPU = TINY.with_name("tokenizer_study_cpu.yaml")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer_study")
    assert main(["study", "tokenizer", "--config", str(TINY), "--out", str(out)]) == 0
    return out


def metrics(out: Path, variant: str) -> dict:
    return json.loads((out / "variants" / variant / "metrics.json").read_text())


def test_tiny_study_runs_end_to_end(study):
    names = [v["name"] for v in yaml.safe_load(TINY.read_text())["variants"]]
    table = (study / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert "floor" in (study / "summary.md").read_text()
    for name in names:
        result = metrics(study, name)
        for cls in ("top", "qcd"):
            m = result[cls]["metrics"]
            # the decoded multiplicity is the input's (after the tokenizer's cuts), jet by jet
            assert m["W1 n_particles"]["value"] == 0.0
            for key in ("W1 mass", "W1 tau32", "KL tau21", "KL mass"):
                assert np.isfinite(m[key]["value"]) and np.isfinite(m[key]["floor"])
    for name in ("codebook-64", "codebook-64-frame"):  # exact in feature space
        assert metrics(study, name)["top"]["round_trip"]["features"] == 1.0
    for png in ("top_tau32", "top_mass", "qcd_tau32", "qcd_mass"):
        assert (study / "plots" / f"{png}.png").stat().st_size > 0


def test_rerun_reuses_every_variant_and_redoes_a_changed_one(study, tmp_path, capsys):
    before = {n: metrics(study, n)["fingerprint"] for n in ("vq-32", "codebook-64")}
    config = yaml.safe_load(TINY.read_text())
    config["variants"][2]["codebook"] = {"codebook_size": 48}
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["study", "tokenizer", "--config", str(changed), "--out", str(study)]) == 0
    out = capsys.readouterr().out
    assert "variant vq-32: reused" in out and "variant fsq-27: reused" in out
    assert "stage variants/codebook-64: redone (config codebook.codebook_size: 64 -> 48)" \
        in out
    assert metrics(study, "vq-32")["fingerprint"] == before["vq-32"]
    assert metrics(study, "codebook-64")["fingerprint"] != before["codebook-64"]


@pytest.mark.parametrize(("change", "message"), [
    ({"variants": [{"name": "a", "quantiser": "fsq"}]},
     r"variant a: unknown keys \['quantiser'\]"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, r"names \['a'\] appear more than once"),
    ({"variants": [{"name": "a", "model": "kmeans"}]}, "model 'kmeans' is not one of"),
    ({"variants": [{"name": "a", "model": "codebook", "vqvae": {"dim": 8}}]},
     r"variant a: \['vqvae'\] do not apply to model codebook"),
    ({"variants": [{"name": "a", "vqvae": {"codebook_size": -3}}]},
     "variant a: vqvae: codebook_size"),
    ({"variants": [{"name": "a", "n_train": "many"}]}, "variant a: n_train"),
    ({"variants": [{"name": "a", "subjet_frame": True}]},
     "variant a: subjet_frame needs model codebook"),
    ({"variants": [{"name": "a", "model": "codebook", "subjet_frame": True}]},
     "variant a: subjet_frame: true needs subjet_order >= 1"),
    ({"variants": [{"name": "a", "model": "codebook", "subjet_order": 3,
                    "subjet_frame": True, "codebook": {"feature_weights": [1, 2, 2]}}]},
     r"variant a: codebook: feature_weights: \[1, 2, 2\]; give 4"),
    ({"variants": [{"name": "a/b"}]}, "it names a folder"),
    ({"n_evall": 3}, r"unknown keys \['n_evall'\]"),
    # found by a fresh tester: no file named, or found only after generating the jets
    ({"n_eval": 1}, "n_eval: 1 must be >= 2"),
    ({"n_train": 500}, r"n_jets: 150 per class, fewer than n_eval \+ n_floor \+ the largest "
                       r"n_train \(variants \['vq-32', 'fsq-27'\]\)"),
])
def test_config_errors_name_the_file_variant_and_key(tmp_path, change, message):
    config = {**yaml.safe_load(TINY.read_text()), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_too_few_jets_for_the_split_is_named(tmp_path):
    from io_jets import random_jets

    from jetfm.studies.tokenizer import make_splits

    config = load_config(TINY)
    with pytest.raises(ValueError, match=r"top: 100 jets, fewer than n_eval \+ n_floor"):
        make_splits({"top": random_jets(100), "qcd": random_jets(200)}, config)


def test_cpu_preset_is_valid():
    config = load_config(CPU)
    assert len({v["name"] for v in config.variants}) == len(config.variants) >= 8


def test_a_variant_that_cannot_train_is_named(tmp_path):
    """More codes than training particles: the error names the variant (and nothing is
    generated: the jets come from files)."""
    from io_jets import random_jets

    from jetfm.data.io import write_jets
    from jetfm.studies.tokenizer import run

    files = {}
    for i, name in enumerate(("top", "qcd")):
        files[name] = str(tmp_path / f"{name}.root")
        write_jets(random_jets(60, seed=i, n_max=10), files[name])
    config = yaml.safe_load(TINY.read_text())
    config.update(files=files, n_eval=10, n_floor=10, n_train=20,
                  variants=[{"name": "big", "model": "codebook",
                             "codebook": {"codebook_size": 100000}}])
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"variant big: codebook fit: \d+ particles for 100000 "
                                         "codes"):
        run(load_config(path), tmp_path / "out")
