"""Tokenizer: token conventions, safetensors save/load (no pickle), encode/decode on jets."""

import json

import numpy as np
import pytest
import torch
from io_jets import random_jets
from safetensors.torch import save_file

from jetfm.checkpoint import load_model
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.tokenizer import Tokenizer, format_resolution, resolution_warnings
from jetfm.models.vqvae import VQVAE, VQVAEConfig


def small_tokenizer(codebook_size: int = 16) -> Tokenizer:
    torch.manual_seed(0)
    config = VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=codebook_size)
    return Tokenizer(VQVAE(config), omnijet_preprocessing(n_max=20))


def test_sequences_follow_omnijet_conventions():
    tok = small_tokenizer(codebook_size=16)
    codes = np.array([[3, 0, 7, 0], [5, 0, 0, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)
    tokens, seq_mask = tok.to_sequences(codes, mask)
    np.testing.assert_array_equal(tokens[0], [0, 4, 1, 8, 17, 0])
    np.testing.assert_array_equal(tokens[1], [0, 6, 17, 0, 0, 0])
    np.testing.assert_array_equal(seq_mask.sum(1), [5, 3])
    assert tok.vocab_size == 18 and tok.stop_token == 17


def test_save_load_round_trip_is_exact_and_pickle_free(tmp_path):
    tok = small_tokenizer()
    jets = random_jets(30, seed=3)
    codes, mask, reports = tok.encode(jets)
    path = tok.save(tmp_path / "tok.safetensors")
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file
    again = Tokenizer.load(path)
    codes2, mask2, _ = again.encode(jets)
    np.testing.assert_array_equal(codes2, codes)
    np.testing.assert_array_equal(mask2, mask)
    assert again.fingerprint == tok.fingerprint
    assert again.preprocessing == tok.preprocessing
    decoded = again.decode(codes, mask)
    np.testing.assert_array_equal(decoded.n_particles, mask.sum(1))
    _, meta = load_model(path)
    json.dumps(meta)  # metadata is plain data


def test_refuses_foreign_files(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a jetfm model file"):
        Tokenizer.load(path)
    with pytest.raises(FileNotFoundError):
        Tokenizer.load(tmp_path / "missing.safetensors")


def test_token_file_round_trip_records_tokenizer(tmp_path):
    from jetfm.data.batch import JetDataError
    from jetfm.data.tokens import TokenDataset, read_tokens, write_tokens

    tok = small_tokenizer()
    jets = random_jets(25, seed=4)
    codes, mask, _ = tok.encode(jets)
    record = {"fingerprint": tok.fingerprint, "codebook_size": tok.codebook_size}
    path = write_tokens(tmp_path / "t.parquet", TokenDataset(codes, mask, jets.label, record))
    back = read_tokens(path, n_max=tok.n_max, fingerprint=tok.fingerprint)
    np.testing.assert_array_equal(back.codes, codes)
    np.testing.assert_array_equal(back.mask, mask)
    np.testing.assert_array_equal(back.label, jets.label)
    with pytest.raises(JetDataError, match="made by tokenizer"):
        read_tokens(path, n_max=tok.n_max, fingerprint="0" * 16)
    with pytest.raises(JetDataError, match="exceed n_max"):
        read_tokens(path, n_max=1)


GOOD = {  # the VQ-VAE demo tokenizer (jetfm/configs/omnijet_cpu_vqvae.yaml)
    "pt_rel_error_median": -0.01, "pt_rel_error_68_halfwidth": 0.1,
    "eta_rel_abs_error_mean": 0.033, "phi_rel_abs_error_mean": 0.034,
    "jet_mass_rel_error_mean": -0.044, "jet_mass_rel_error_std": 0.080,
    "tau32_abs_error_mean": 0.05, "codebook_utilisation": 1.0, "codebook_perplexity": 877.0,
    "codebook_size": 1024,
}


def test_resolution_thresholds_pass_the_good_tokenizer_and_name_each_poor_figure():
    assert resolution_warnings(GOOD) == []
    for key, value in [("jet_mass_rel_error_mean", -0.86), ("jet_mass_rel_error_mean", 0.12),
                       ("jet_mass_rel_error_std", 0.25), ("eta_rel_abs_error_mean", 0.15),
                       ("phi_rel_abs_error_mean", 0.11), ("codebook_utilisation", 0.05),
                       ("jet_mass_rel_error_mean", float("nan"))]:
        (message,) = resolution_warnings({**GOOD, key: value})
        assert message.startswith(f"poor tokenizer: {key} = ")
    assert len(resolution_warnings({**GOOD, "jet_mass_rel_error_mean": -0.86,
                                    "codebook_utilisation": 0.01})) == 2
    summary = format_resolution(GOOD)
    assert "-4.4 % +- 8.0 %" in summary and "100 % of 1024 codes" in summary


def test_resolution_of_untrained_tokenizer_warns_and_of_exact_decoding_is_zero(monkeypatch):
    tok = small_tokenizer(codebook_size=16)
    jets = random_jets(40, seed=2, n_min=3, n_max=15)
    res = tok.resolution(jets)
    assert any("jet_mass_rel_error" in m for m in resolution_warnings(res))
    # a decoder that returns the preprocessed jets exactly: every error 0, no warning
    values, mask, _ = tok.preprocessing.apply(jets)
    monkeypatch.setattr(tok, "decode", lambda codes, m: tok.preprocessing.invert(values, m))
    exact = tok.resolution(jets)
    for key in ("pt_rel_error_median", "pt_rel_error_68_halfwidth", "eta_rel_abs_error_mean",
                "phi_rel_abs_error_mean", "jet_mass_rel_error_mean", "jet_mass_rel_error_std",
                "tau32_abs_error_mean"):
        assert exact[key] == pytest.approx(0, abs=1e-6), key
    codes, _, _ = tok.encode(jets)
    assert exact["codebook_utilisation"] == len(np.unique(codes[mask])) / 16
    assert resolution_warnings(exact) == []


def test_resolution_of_one_particle_jets_is_none_with_the_reason_never_nan():
    """Tester of issue 11, defect 7: one-particle (massless) jets printed "relative error
    +nan % +- nan %" and wrote NaN into resolution.json; the mass error is undefined there."""
    tok = small_tokenizer(codebook_size=16)
    jets = random_jets(20, seed=3, counts=np.ones(20, dtype=np.int64))
    res = tok.resolution(jets)
    assert res["jet_mass_rel_error_mean"] is None and res["jet_mass_rel_error_std"] is None
    assert res["tau32_abs_error_mean"] is None
    assert res["n_jets"] == 20 and res["n_jets_massive"] == 0 and res["n_jets_tau32"] == 0
    assert all(v is None or np.isfinite(v) for v in res.values())
    json.dumps(res, allow_nan=False)  # standard JSON: null, no NaN
    summary = format_resolution(res)
    assert "nan" not in summary
    assert "jet mass: relative error n/a (no jet with mass > 0 among 20 jets)" in summary
    messages = resolution_warnings(res)
    assert ("tokenizer resolution: jet_mass_rel_error_mean not measured (no jet with mass > 0 "
            "among 20 jets)") in messages
    assert not any("poor tokenizer: jet_mass" in m for m in messages)
