"""`jetfm study gpt-curve` (jetfm.studies.gpt_curve): the tiny preset end to end, model sharing
between sampling variants, reuse, and config errors that name the file, the variant and the
key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from jetfm.cli import main
from jetfm.configs import preset
from jetfm.studies.gpt_curve import load_config, model_folder

TINY = preset("gpt_curve_tiny")
CPU = TINY.with_name("gpt_curve_cpu.yaml")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt_curve")
    assert main(["study", "gpt-curve", "--config", str(TINY), "--out", str(out)]) == 0
    return out


def metrics(out: Path, variant: str) -> dict:
    return json.loads((out / "variants" / variant / "metrics.json").read_text())


def test_tiny_study_runs_end_to_end(study):
    names = [v["name"] for v in yaml.safe_load(TINY.read_text())["variants"]]
    table = (study / "table.md").read_text()
    assert all(f"| {name} |" in table for name in [*names, "tokenizer only"])
    for name in names:
        result = metrics(study, name)
        for key in ("W1 mass", "W1 tau32", "KL tau21", "C2ST AUC jet features"):
            m = result["metrics"][key]
            assert np.isfinite(m["value"]) and np.isfinite(m["floor"])
        assert result["training"]["val_loss"] > 0
        # every generated jet is a top jet of at most n_max particles; tokens in the prongs'
        # frame are sampled under the tokenizer's grammar: three leaders, so every jet has
        # at least three particles and a tau32
        assert max(result["values"]["mass"]) < 1e4
        assert np.isfinite(result["values"]["tau32"]).all()
    # the tokenizer-only sample is the floor jets decoded: their multiplicity is the floor
    # jets' own (decoding keeps the particle count), so its multiplicity metrics equal the floor
    decoded = json.loads((study / "tokenizer_only.json").read_text())["metrics"]
    for key in ("W1 n_particles", "KL n_particles"):
        assert decoded[key]["value"] == pytest.approx(decoded[key]["floor"], abs=1e-12)
    # the truth median is that of the held-out jets (split by the seed) in the tokenizer frame
    from jetfm.data.io import read_jets
    from jetfm.models.tokenizer import Tokenizer
    from jetfm.physics.observables import jet_observables
    from jetfm.studies.gpt_curve import make_splits

    summary = json.loads((study / "summary.json").read_text())
    jets = {n: read_jets([str(study / "data" / f"{n}.root")]) for n in ("top", "qcd")}
    held, _, _ = make_splits(jets, load_config(TINY))
    tokenizer = Tokenizer.load(study / "tokenizer" / "tokenizer.safetensors")
    tau32 = jet_observables(tokenizer.in_frame(jets["top"][held]))["tau32"]
    assert summary["truth_tau32_median"] == pytest.approx(float(np.nanmedian(tau32)))
    for png in ("tau32", "mass"):
        assert (study / "plots" / f"{png}.png").stat().st_size > 0


def test_sampling_variants_share_the_model(study):
    """n100 and n100-T0.8 differ only in sampling: one GPT, two samples."""
    assert metrics(study, "n100")["model"] == metrics(study, "n100-T0.8")["model"]
    assert metrics(study, "n60")["model"] != metrics(study, "n100")["model"]
    assert len(list((study / "models").iterdir())) == 2
    a = metrics(study, "n100")["values"]["tau32"]
    b = metrics(study, "n100-T0.8")["values"]["tau32"]
    assert a != b


def test_rerun_reuses_and_a_new_temperature_only_resamples(study, tmp_path, capsys):
    config = yaml.safe_load(TINY.read_text())
    config["variants"][2]["temperature"] = 0.7
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["study", "gpt-curve", "--config", str(changed), "--out", str(study)]) == 0
    out = capsys.readouterr().out
    assert "variant n60: reused" in out and "variant n100: reused" in out
    assert "stage variants/n100-T0.8: redone (config temperature: 0.8 -> 0.7)" in out
    assert "pre-training" not in out  # no GPT was trained again
    assert metrics(study, "n100-T0.8")["variant"]["temperature"] == 0.7


def test_model_folder_depends_on_the_model_settings_only():
    base = {"name": "a", "n_train": 100, "gpt": {"dim": 16}, "pretraining": {},
            "temperature": 1.0, "top_k": None}
    assert model_folder(base) == model_folder({**base, "name": "b", "temperature": 0.5})
    assert model_folder(base) != model_folder({**base, "gpt": {"dim": 32}})
    assert model_folder(base).startswith("100-")


@pytest.mark.parametrize(("change", "message"), [
    ({"variants": [{"name": "a", "temp": 0.5}]}, r"variant a: unknown keys \['temp'\]"),
    ({"variants": [{"name": "a"}, {"name": "a"}]}, r"names \['a'\] appear more than once"),
    ({"variants": [{"name": "a", "temperature": 0}]}, "variant a: temperature"),
    ({"variants": [{"name": "a", "top_k": 0}]}, "variant a: top_k"),
    ({"variants": [{"name": "a", "gpt": {"dim": 15}}]}, "variant a: gpt"),
    ({"variants": [{"name": "a", "gpt": {"width": 15}}]}, r"unknown keys \['width'\]"),
    ({"variants": [{"name": "a/b"}]}, "it names a folder"),
    ({"n_train": 500}, r"n_jets: 170 top jets, fewer than n_eval \+ n_floor \+ the largest "
                       r"n_train = 560"),
    ({"vqvae": {"dim": 8}}, r"tokenizer_model is codebook, so \['vqvae'\] would not be used"),
    ({"n_evall": 3}, r"unknown keys \['n_evall'\]"),
])
def test_config_errors_name_the_file_variant_and_key(tmp_path, change, message):
    config = {**yaml.safe_load(TINY.read_text()), **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_cpu_preset_is_valid():
    config = load_config(CPU)
    assert len({v["name"] for v in config.variants}) == len(config.variants) >= 5
