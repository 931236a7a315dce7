"""The feature-space codebook tokenizer (jetfm.models.codebook): exact round trips, nearest-code
assignment against an independent k-d tree, per-particle tokens, pT weighting, files."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from io_jets import random_jets
from scipy.spatial import cKDTree

from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.codebook import CodebookConfig, FeatureCodebook
from jetfm.models.omnijet import omnijet_backbone
from jetfm.models.tokenizer import Tokenizer
from jetfm.tasks.omnijet import fit_codebook


def particles(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised (log pT, eta_rel, phi_rel)-like features and pT [GeV]."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, np.exp(x[:, 0] + 1.8).astype(np.float64)


def fitted(k: int = 64, **options) -> FeatureCodebook:
    x, pt = particles()
    return FeatureCodebook(CodebookConfig(codebook_size=k, max_iter=10, **options)).fit(x, pt, 3)


def padded(x: np.ndarray, n_max: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    n_jets = len(x) // n_max
    values = torch.as_tensor(x[: n_jets * n_max].reshape(n_jets, n_max, 3))
    counts = torch.arange(n_jets) % n_max + 1
    mask = torch.arange(n_max)[None] < counts[:, None]
    return values * mask[..., None], mask


def test_round_trip_is_exact_in_feature_space():
    """decode(encode(decode(encode(x)))) == decode(encode(x)), bit for bit."""
    book = fitted()
    x, mask = padded(particles(seed=1)[0])
    codes = book.encode(x, mask)
    once = book.decode(codes, mask)
    assert torch.equal(book.encode(once, mask), codes)
    assert torch.equal(book.decode(book.encode(once, mask), mask), once)
    assert torch.equal(once[~mask], torch.zeros_like(once[~mask]))
    assert not torch.equal(once[mask], x[mask])  # it does quantise


def test_codes_are_the_nearest_code_vectors_of_an_independent_kd_tree():
    weights = [1.0, 2.0, 2.0]
    book = fitted(feature_weights=weights)
    x, mask = padded(particles(seed=2)[0])
    w = np.array(weights)
    tree = cKDTree(book.codebook.double().numpy() * w)
    _, expected = tree.query(x[mask].double().numpy() * w)
    assert np.array_equal(book.encode(x, mask)[mask].numpy(), expected)


def test_a_particle_is_tokenized_on_its_own():
    """Tokens do not depend on the other particles: permuting a jet permutes its codes, and
    a particle alone gets the code it has inside the jet."""
    book = fitted()
    x, mask = padded(particles(seed=4)[0])
    codes = book.encode(x, mask)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(0))
    assert torch.equal(book.encode(x[:, perm], mask[:, perm]), codes[:, perm])
    single = torch.zeros_like(mask)
    single[:, 0] = mask[:, 0]
    assert torch.equal(book.encode(x, single)[:, 0], codes[:, 0])


def test_pt_weighting_puts_codes_where_the_hard_particles_are():
    """With pt_power = 1 the hardest 5 % of particles are reconstructed better than without."""
    x, pt = particles(seed=5)
    hard = pt > np.quantile(pt, 0.95)

    def error(power: float) -> float:
        book = FeatureCodebook(CodebookConfig(codebook_size=64, pt_power=power, max_iter=10))
        book.fit(x, pt, 3)
        xt = torch.as_tensor(x[hard])[None]
        mask = torch.ones(xt.shape[:2], dtype=torch.bool)
        decoded = book.decode(book.encode(xt, mask), mask)
        return float(((decoded - xt) ** 2).sum(-1).mean())

    assert error(1.0) < 0.7 * error(0.0)


def test_tokenizer_keeps_multiplicity_and_files_round_trip(tmp_path):
    jets = random_jets(300, seed=6)
    tokenizer = fit_codebook(jets, {"codebook_size": 32, "max_iter": 5}, 16, tmp_path, seed=2)
    codes, mask, _ = tokenizer.encode(jets)
    decoded = tokenizer.decode(codes, mask)
    n_in = np.minimum(ak.to_numpy(jets.n_particles), 16)  # no cut window removes any here
    assert np.array_equal(ak.to_numpy(decoded.n_particles), n_in)
    values = tokenizer.decode_values(codes, mask)
    assert np.array_equal(tokenizer.encode_values(values, mask), codes)
    loaded = Tokenizer.load(tmp_path / "tokenizer.safetensors")
    assert loaded.kind == "codebook" and loaded.fingerprint == tokenizer.fingerprint
    assert np.array_equal(loaded.encode(jets)[0], codes)
    assert (tmp_path / "resolution.json").exists()
    # an OmniJet backbone takes the codebook tokenizer like a VQ-VAE one
    backbone = omnijet_backbone(tokenizer, {"dim": 16, "n_blocks": 1, "n_heads": 2})
    assert backbone.tokenizer.fingerprint == tokenizer.fingerprint
    inputs, _ = backbone.prepare(jets[:4])
    embeddings, _ = backbone(inputs.to_torch())
    assert embeddings.shape == (4, 18, 16)


@pytest.mark.parametrize(("options", "key"), [
    ({"codebook_size": 0}, "codebook_size"),
    ({"pt_power": -1}, "pt_power"),
    ({"feature_weights": [1, 2]}, "feature_weights"),
    ({"feature_weights": [1, 0, 1]}, "feature_weights"),
])
def test_bad_values_name_the_key(options, key):
    with pytest.raises(ValueError, match=key):
        CodebookConfig(**options)


def test_fit_refuses_fewer_particles_than_codes_and_bad_inputs():
    x, pt = particles(100)
    with pytest.raises(ValueError, match="100 particles for 128 codes"):
        FeatureCodebook(CodebookConfig(codebook_size=128)).fit(x, pt)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        FeatureCodebook(CodebookConfig(codebook_size=16)).fit(x, pt)
    with pytest.raises(ValueError, match="unknown"):
        fit_codebook(random_jets(10), {"codebook_sise": 16}, 16, None)  # type: ignore[arg-type]



def test_omnijet_config_and_cli_train_a_codebook_tokenizer(tmp_path, capsys):
    """``tokenizer_model: codebook`` in an OmniJet config: `jetfm tokenizer` fits the codebook;
    VQ-VAE blocks and training options, which it would not use, are refused by name."""
    import yaml

    from jetfm.cli import main
    from jetfm.data.io import write_jets
    from jetfm.studies.omnijet import OmniJetConfig

    jets = tmp_path / "jets.root"
    write_jets(random_jets(200, seed=9), jets)
    config = tmp_path / "codebook.yaml"
    config.write_text(yaml.safe_dump({"tokenizer_model": "codebook", "n_max": 16,
                                      "codebook": {"codebook_size": 32, "max_iter": 3}}))
    assert main(["tokenizer", str(jets), "--config", str(config), "--out-dir",
                 str(tmp_path / "tok")]) == 0
    tokenizer = Tokenizer.load(tmp_path / "tok" / "tokenizer.safetensors")
    assert tokenizer.kind == "codebook" and tokenizer.codebook_size == 32
    capsys.readouterr()
    assert main(["tokenizer", str(jets), "--config", str(config), "--max-epochs", "3",
                 "--out-dir", str(tmp_path / "tok2")]) == 2
    assert "takes no training options: ['max_epochs']" in capsys.readouterr().err
    for extra, message in (({"vqvae": {"dim": 8}}, r"\['vqvae'\] would not be used"),
                           ({"tokenizer_model": "kmeans"}, "tokenizer_model: 'kmeans'"),
                           ({"codebook": {"codebook_size": -1}}, "codebook: codebook_size")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), **extra}))
        with pytest.raises(ValueError, match=message):
            OmniJetConfig.from_yaml(bad)


def test_omnijet_backbone_draws_no_extra_random_numbers():
    """Building an OmniJet backbone draws random numbers only for the tokenizer model and the
    GPT, in that order (so seeded runs of earlier versions give the same GPT): checking the
    tokenizer's configuration must not build a throw-away model."""
    from jetfm.data.transforms import omnijet_preprocessing
    from jetfm.models.gpt import GPT
    from jetfm.models.vqvae import VQVAE, VQVAEConfig

    vq = VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=32)
    tokenizer = Tokenizer(VQVAE(vq), omnijet_preprocessing(16))
    gpt = {"dim": 16, "n_blocks": 1, "n_heads": 2}
    torch.manual_seed(5)
    backbone = omnijet_backbone(tokenizer, gpt)
    torch.manual_seed(5)
    VQVAE(vq)
    expected = GPT(backbone.gpt.config)
    for (name, a), (_, b) in zip(backbone.gpt.state_dict().items(),
                                 expected.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------- code coordinates
def codebook_tokenizer(k: int = 64) -> Tokenizer:
    from jetfm.data.transforms import omnijet_preprocessing

    return Tokenizer(fitted(k, feature_weights=[1, 2, 2]), omnijet_preprocessing(12))


CODE_GPT = {"dim": 16, "n_blocks": 1, "n_heads": 2, "code_features": 8}


def test_code_coordinates_are_the_weighted_code_vectors():
    tokenizer = codebook_tokenizer()
    backbone = omnijet_backbone(tokenizer, CODE_GPT)
    coords = backbone.gpt.codes.coordinates
    model = tokenizer.model
    torch.testing.assert_close(coords[1:-1], model.codebook * model.weights)
    table = backbone.gpt.code_table()
    assert table.shape == (66, 16)
    assert not table[0].any() and not table[-1].any()  # start and stop have no position
    # the Fourier features of a code are those of its coordinates: sin^2 + cos^2 = 1
    torch.testing.assert_close((table[1:-1] ** 2).reshape(64, 2, 8).sum(1),
                               torch.ones(64, 8))
    # a fresh GPT of the same tokenizer (taggers from scratch) gets them too
    torch.testing.assert_close(backbone.scratch().gpt.codes.coordinates, coords)


def test_code_coordinates_move_logits_smoothly_and_survive_a_file(tmp_path):
    """Two codes at the same coordinates get the same code-feature logit; a saved generative
    model gives the same logits after loading (buffers included)."""
    from jetfm.models.gpt import NextTokenHead
    from jetfm.models.omnijet import load_generative, save_generative

    tokenizer = codebook_tokenizer()
    torch.manual_seed(0)
    backbone = omnijet_backbone(tokenizer, CODE_GPT).eval()
    head = NextTokenHead.for_backbone(backbone.gpt).eval()
    tokens = torch.tensor([[0, 5, 9, 17, 3]])
    hidden, _ = backbone.gpt(tokens)
    logits = head(hidden, backbone.gpt.code_table())
    path = save_generative(tmp_path / "model.safetensors", backbone, head)
    loaded, loaded_head = load_generative(path, tokenizer)
    hidden2, _ = loaded.gpt(tokens)
    torch.testing.assert_close(loaded_head(hidden2, loaded.gpt.code_table()), logits)
    with pytest.raises(ValueError, match="pass the backbone's code_table"):
        head(hidden)


def test_code_features_need_a_codebook_tokenizer_and_set_coordinates():
    from jetfm.data.transforms import omnijet_preprocessing
    from jetfm.models.gpt import GPT, GPTConfig
    from jetfm.models.vqvae import VQVAE, VQVAEConfig

    vq = Tokenizer(VQVAE(VQVAEConfig(dim=16, n_blocks=1, n_heads=2, codebook_size=32)),
                   omnijet_preprocessing(16))
    with pytest.raises(ValueError, match="codes of a vqvae tokenizer have no coordinates"):
        omnijet_backbone(vq, CODE_GPT)
    gpt = GPT(GPTConfig(vocab_size=10, dim=16, n_blocks=1, n_heads=2, code_features=4,
                        code_dim=3))
    with pytest.raises(RuntimeError, match="code coordinates are not set"):
        gpt(torch.tensor([[0, 1, 2]]))


def test_code_frequencies_do_not_depend_on_the_global_seed():
    """The Fourier frequencies come from a private generator (seed 0) times code_scale: the
    same in every model of that size, whatever the global seed (a model file's buffers and a
    fresh model agree)."""
    from jetfm.models.gpt import GPT, GPTConfig

    config = GPTConfig(vocab_size=10, dim=16, n_blocks=1, n_heads=2, code_features=4,
                       code_dim=3, code_scale=2.5)
    freqs = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        freqs.append(GPT(config).codes.frequencies)
    torch.testing.assert_close(freqs[0], freqs[1])
    expected = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 2.5
    torch.testing.assert_close(freqs[0], expected)


def test_subjet_frame_codebook_keeps_leaders_and_followers_apart(tmp_path):
    """With subjet_frame every code has one subjet label (leader of subjet k: k, its
    followers: 3 + k), never a mix (the labels' standardised gap of 100 dwarfs every other
    distance); the round trip in token space is exact and the decoded multiplicity is the
    input's. Re-encoding the decoded *jets* reclusters them into subjets, which quantisation
    can change: that round trip is not exact (README, "Tokenizers")."""
    jets = random_jets(300, seed=6)
    tokenizer = fit_codebook(jets, {"codebook_size": 64, "max_iter": 5,
                                    "feature_weights": [1, 2, 2, 1]}, 16, tmp_path, seed=2,
                             subjet_order=3, subjet_frame=True)
    flags = tokenizer.model.codebook[:, 3].numpy()
    assert set(np.unique(flags).tolist()) == {0.0, 100.0, 200.0, 300.0, 400.0, 500.0}
    codes, mask, _ = tokenizer.encode(jets)
    values = tokenizer.decode_values(codes, mask)
    assert np.array_equal(tokenizer.encode_values(values, mask), codes)
    leaders = mask & (values[..., 3] < 250)
    assert (leaders.sum(1) == np.minimum(mask.sum(1), 3)).all()  # three subjets a jet
    assert np.array_equal(leaders[:, :3], mask[:, :3])  # first in the sequence
    decoded = tokenizer.decode(codes, mask)
    n_in = np.minimum(ak.to_numpy(jets.n_particles), 16)
    assert np.array_equal(ak.to_numpy(decoded.n_particles), n_in)
    # every sequence the tokenizer writes obeys its grammar (what the sampler enforces)
    grammar = tokenizer.token_grammar().numpy()
    assert grammar.shape == (4, 66) and grammar[3, 65] and not grammar[:3, 65].any()
    tokens, seq_mask = tokenizer.to_sequences(codes, mask)
    full = mask.sum(1) >= 3
    for step in range(tokens.shape[1] - 1):
        real = seq_mask[:, step + 1] & full
        allowed = grammar[min(step, 3)][tokens[real, step + 1]]
        assert allowed.all(), step
    assert codebook_tokenizer().token_grammar() is None  # no frame: no grammar


def test_subjet_frame_codebook_that_cannot_be_sampled_is_refused(tmp_path):
    """A leader label without a code (too few codes, or jets too short to have 3 leaders)
    makes the grammar allow nothing at that step: the fit refuses it, naming the subjets."""
    jets = random_jets(60, seed=6)
    with pytest.raises(ValueError, match=r"no code for the leader\(s\) of subjet\(s\) \[.*\]"):
        fit_codebook(jets, {"codebook_size": 2, "max_iter": 2}, 16, tmp_path, seed=2,
                     subjet_order=3, subjet_frame=True)
    short = random_jets(60, seed=6, counts=np.full(60, 2))  # 2 particles: no 3rd leader
    with pytest.raises(ValueError, match=r"leader\(s\) of subjet\(s\) \[2\] .*codebook_size"):
        fit_codebook(short, {"codebook_size": 16, "max_iter": 2}, 16, tmp_path, seed=2,
                     subjet_order=3, subjet_frame=True)
    assert not (tmp_path / "tokenizer.safetensors").exists()


def test_subjet_frame_counts_jets_with_fewer_leaders():
    prep = omnijet_preprocessing(n_max=16, subjet_order=3, subjet_frame=True)
    jets = random_jets(40, seed=3)
    _, mask, reports = prep.apply(jets)
    short = int((mask.sum(1) < 3).sum())
    report = next(r for r in reports if r.name == "jets with all 3 subjet leaders")
    assert (report.n_before, report.n_after) == (40, 40 - short)
    with pytest.raises(ValueError, match="n_max >= subjet_order"):
        omnijet_preprocessing(n_max=2, subjet_order=3, subjet_frame=True)


def test_subjet_frame_followers_are_encoded_against_their_decoded_leader(tmp_path):
    """Encoding takes a particle's offsets from its reference's decoded position (a follower's
    leader, a leader's first leader): a decoded subjet does not move rigidly with its
    leader's quantisation error, so the decoded
    particle positions are closer to the truth than with offsets from the true leader."""
    jets = random_jets(300, seed=7)
    tokenizer = fit_codebook(jets, {"codebook_size": 64, "max_iter": 5,
                                    "feature_weights": [1, 2, 2, 1]}, 16, tmp_path, seed=2,
                             subjet_order=3, subjet_frame=True)
    prep = tokenizer.preprocessing
    values, mask, _ = prep.apply(jets)
    truth = prep.absolute(values, mask)[mask][:, 1:3]
    x, m = torch.as_tensor(values), torch.as_tensor(mask)
    open_loop = tokenizer.model.encode(x, m).numpy()  # offsets from the true leaders
    errors = {}
    for name, codes in (("open", open_loop), ("closed", tokenizer.encode_values(values, mask))):
        decoded = prep.absolute(tokenizer.decode_values(codes, mask), mask)[mask][:, 1:3]
        errors[name] = float(np.abs(decoded - truth).mean())
    assert errors["closed"] < 0.85 * errors["open"]  # measured 0.059 vs 0.076
    # the hardest subjet's leader (label 0) has no reference and keeps its code
    leaders = mask & (values[..., 3] < 50)
    assert np.array_equal(tokenizer.encode_values(values, mask)[leaders], open_loop[leaders])


def test_token_coordinates_place_every_token_in_the_jet_frame(tmp_path):
    """Tokenizer.token_coordinates: a token sequence's particles as standardised features in
    the jet frame (followers' angles made absolute), 0 for start, stop and padding; the
    backbone scales them like the code coordinates and feeds them to a GPT with
    absolute_coordinates, which a saved model keeps."""
    from jetfm.models.gpt import NextTokenHead
    from jetfm.models.omnijet import load_generative, save_generative

    jets = random_jets(120, seed=8)
    tokenizer = fit_codebook(jets, {"codebook_size": 64, "max_iter": 5,
                                    "feature_weights": [1, 2, 2, 1]}, 16, tmp_path, seed=2,
                             subjet_order=3, subjet_frame=True)
    codes, mask, _ = tokenizer.encode(jets)
    tokens, seq_mask = tokenizer.to_sequences(codes, mask)
    coordinates = tokenizer.token_coordinates(np.where(seq_mask, tokens, 0))
    prep = tokenizer.preprocessing
    absolute = prep.absolute(tokenizer.decode_values(codes, mask), mask)
    scale = np.array([f.scale for f in prep.features])
    shift = np.array([f.shift for f in prep.features])
    expected = np.where(mask[..., None], (absolute - shift) / scale, 0.0)
    np.testing.assert_allclose(coordinates[:, 1:-1], expected, atol=1e-5)
    counts = mask.sum(1)
    assert not coordinates[:, 0].any()  # start
    assert not coordinates[np.arange(len(codes)), counts + 1].any()  # stop
    followers = mask & (tokenizer.decode_values(codes, mask)[..., 3] > 250)
    relative = tokenizer.decode_values(codes, mask)[..., 1]
    assert not np.allclose(coordinates[:, 1:-1, 1][followers], relative[followers])
    backbone = omnijet_backbone(tokenizer, {**CODE_GPT, "absolute_coordinates": True}).eval()
    seq = torch.as_tensor(tokens[:3])
    scaled = backbone.token_coordinates(seq)
    torch.testing.assert_close(scaled, torch.as_tensor(
        coordinates[:3] * tokenizer.model.weights.numpy()))
    head = NextTokenHead.for_backbone(backbone.gpt)
    path = save_generative(tmp_path / "model.safetensors", backbone, head)
    loaded, _ = load_generative(path, tokenizer)
    inputs, _ = loaded.prepare(jets[:3])
    torch.testing.assert_close(loaded(inputs.to_torch())[0], backbone(inputs.to_torch())[0])
    assert omnijet_backbone(tokenizer, CODE_GPT).token_coordinates(seq) is None


def test_decode_refuses_codes_outside_the_codebook_and_encodes_an_empty_batch():
    tokenizer = codebook_tokenizer(16)
    mask = np.array([[True, True, False]])
    for bad in (-1, 16):
        with pytest.raises(ValueError, match=rf"1 code\(s\) outside \[0, 16\) \(first: {bad} "
                                             r"at jet 0, particle 1\)"):
            tokenizer.decode(np.array([[3, bad, 0]]), mask)
    tokenizer.decode(np.array([[3, 5, -1]]), mask)  # masked slots may hold anything
    with pytest.raises(ValueError, match="one shape"):
        tokenizer.decode(np.array([3, 5]), mask)
    codes, empty_mask, reports = tokenizer.encode(random_jets(3, seed=1)[:0])
    assert codes.shape == empty_mask.shape == (0, 12) and reports == []
