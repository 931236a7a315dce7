"""VQ-VAE tokenizer: equivariance, masking, encode/decode consistency, learning."""

import pytest
import torch

from jetfm.models.vqvae import VQVAE, VQVAEConfig, pt_weights

# the three quantisers at about 64 codes (FSQ: 4 x 4 x 4; residual VQ: 8 x 8)
QUANTIZERS = {"vq": {}, "fsq": {"quantizer": "fsq", "fsq_levels": [4, 4, 4]},
              "rvq": {"quantizer": "rvq", "rvq_stages": 2}}


def small_vqvae(codebook_size: int = 64, **options) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(dim=32, n_blocks=2, n_heads=4, codebook_size=codebook_size,
                             **options))


def toy_jets(n: int = 64, n_max: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_max, 3, generator=g)
    counts = torch.randint(1, n_max + 1, (n,), generator=g)
    mask = torch.arange(n_max)[None] < counts[:, None]
    return x * mask[..., None], mask


@pytest.mark.parametrize("quantizer", list(QUANTIZERS))
def test_codes_are_permutation_equivariant_and_ignore_padding(quantizer):
    model = small_vqvae(**QUANTIZERS[quantizer])
    model(*toy_jets(seed=3))  # a training step initialises data-dependent codebooks
    model.eval()
    x, mask = toy_jets()
    codes = model.encode(x, mask)
    perm = torch.randperm(x.shape[1])
    assert torch.equal(model.encode(x[:, perm], mask[:, perm]), codes[:, perm])
    garbage = x.clone()
    garbage[~mask] = 50.0
    assert torch.equal(model.encode(garbage, mask), codes)
    assert (codes[~mask] == 0).all()


@pytest.mark.parametrize("quantizer", list(QUANTIZERS))
def test_forward_codes_match_encode_and_decode_matches_reconstruction(quantizer):
    model = small_vqvae(**QUANTIZERS[quantizer])
    model(*toy_jets(seed=3))
    model.eval()
    x, mask = toy_jets()
    out = model(x, mask)
    assert torch.equal(out.codes, model.encode(x, mask))
    decoded = model.decode(out.codes, mask)
    torch.testing.assert_close(decoded[mask], out.reconstruction[mask], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("quantizer", list(QUANTIZERS))
def test_training_reduces_reconstruction_error(quantizer):
    options = {**QUANTIZERS[quantizer], "fsq_levels": [8, 4, 4]} if quantizer == "fsq" \
        else QUANTIZERS[quantizer]
    model = small_vqvae(codebook_size=128 if quantizer != "rvq" else 121, **options).train()
    x, mask = toy_jets(n=64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        out = model(x, mask)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = out.reconstruction_loss.item() if first is None else first
    assert out.reconstruction_loss.item() < 0.5 * first
    assert out.utilisation > 0.3


@pytest.mark.parametrize("quantizer", list(QUANTIZERS))
def test_codes_are_tokens_below_codebook_size_and_used(quantizer):
    """Each particle gets one integer token in [0, codebook_size); a code's vector is what
    the decoder sees (lookup of the assigned code = the quantised latent)."""
    model = small_vqvae(**QUANTIZERS[quantizer])
    x, mask = toy_jets(n=128)
    model(x, mask)
    model.eval()
    z = model.encoder(x, mask)[mask]
    codes = model.quantizer.assign(z)
    assert codes.dtype == torch.int64 and codes.min() >= 0 and codes.max() < 64
    assert len(codes.unique()) > 8
    out = model.quantizer(z)
    assert torch.equal(out.codes, codes)
    torch.testing.assert_close(model.quantizer.lookup(codes), out.z_q, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("options", "message"), [
    ({"quantizer": "fsq", "fsq_levels": [4, 4, 4], "codebook_size": 60},
     r"codebook_size 60 != the product of fsq_levels \[4, 4, 4\] \(64\); set codebook_size: 64"),
    ({"quantizer": "fsq"}, "quantizer fsq needs a list of integers >= 3"),
    ({"quantizer": "fsq", "fsq_levels": [4, 1, 16]}, "integers >= 3"),
    ({"quantizer": "fsq", "fsq_levels": [4, 2, 8], "codebook_size": 64}, "integers >= 3"),
    ({"quantizer": "rvq", "codebook_size": 60}, r"codebook_size 60 is not K\^2"),
    ({"quantizer": "vq", "fsq_levels": [4, 4]}, "fsq_levels apply to quantizer fsq, not vq"),
    ({"quantizer": "lfq"}, r"quantizer: 'lfq' is not one of \['vq', 'fsq', 'rvq'\]"),
    ({"pt_weight": 1.5}, "pt_weight"),
])
def test_bad_quantizer_settings_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        VQVAEConfig(**{"codebook_size": 64, **options})


def test_pt_weights_average_one_per_jet_and_follow_pt():
    pt = torch.tensor([[300.0, 100.0, 50.0, 50.0], [10.0, 5.0, 0.0, 0.0]])
    mask = pt > 0
    for a in (0.0, 0.5, 1.0):
        w = pt_weights(pt, mask, a)
        assert (w[~mask] == 0).all()
        torch.testing.assert_close(w.sum(1) / mask.sum(1), torch.ones(2))
    w = pt_weights(pt, mask, 1.0)
    torch.testing.assert_close(w[0], torch.tensor([2.4, 0.8, 0.4, 0.4]))


def test_pt_weighted_loss_ignores_padding_and_needs_pt():
    """The weighted reconstruction loss is the pT-weighted mean of the per-particle errors:
    padded slots (whatever they hold) do not change it; a = 0 is the unweighted loss."""
    model = small_vqvae(pt_weight=1.0).eval()
    x, mask = toy_jets(n=8)
    pt = torch.rand(mask.shape) * 100 * mask
    loss = model(x, mask, pt).reconstruction_loss
    garbage_x, garbage_pt = x.clone(), pt.clone()
    garbage_x[~mask], garbage_pt[~mask] = 9.0, 1e4
    torch.testing.assert_close(model(garbage_x, mask, garbage_pt).reconstruction_loss, loss)
    out = model(x, mask, pt)
    error = ((out.reconstruction - x) ** 2).mean(-1)
    w = pt_weights(pt, mask, 1.0)
    torch.testing.assert_close(loss, (w * error)[mask].sum() / w[mask].sum())
    with pytest.raises(ValueError, match="needs the particles' pT"):
        model(x, mask)
    plain = small_vqvae().eval()
    torch.testing.assert_close(plain(x, mask, pt).reconstruction_loss,
                               ((plain(x, mask).reconstruction - x)[mask] ** 2).mean())


@pytest.mark.parametrize("quantizer", ["fsq", "rvq"])
def test_tokenizer_files_keep_the_quantizer(tmp_path, quantizer):
    """A tokenizer with FSQ or residual VQ saves to safetensors and loads to the same
    tokens and decoded features (EMA codebooks and projections included)."""
    from jetfm.data.transforms import omnijet_preprocessing
    from jetfm.models.tokenizer import Tokenizer

    model = small_vqvae(**QUANTIZERS[quantizer])
    x, mask = toy_jets()
    model(x, mask)
    tokenizer = Tokenizer(model, omnijet_preprocessing(x.shape[1]))
    loaded = Tokenizer.load(tokenizer.save(tmp_path / "tokenizer.safetensors"))
    assert loaded.model.config == model.config and loaded.codebook_size == 64
    codes = tokenizer.model.encode(x, mask)
    assert torch.equal(loaded.model.encode(x, mask), codes)
    assert torch.equal(loaded.model.decode(codes, mask), tokenizer.model.decode(codes, mask))
    assert loaded.fingerprint == tokenizer.fingerprint


def test_plain_vq_metadata_is_unchanged_by_the_quantizer_options():
    """The quantiser options are written only when set: a plain-VQ tokenizer's metadata
    (hence its fingerprint, which token files record) has the keys it had before them."""
    plain = VQVAEConfig(codebook_size=64).to_dict()
    assert set(plain) == {"n_features", "dim", "n_blocks", "n_heads", "latent_dim",
                          "codebook_size", "beta", "replace_every", "vq_weight"}
    assert VQVAEConfig(**plain) == VQVAEConfig(codebook_size=64)
    fsq = VQVAEConfig(codebook_size=64, quantizer="fsq", fsq_levels=[4, 4, 4], pt_weight=0.5)
    assert fsq.to_dict()["fsq_levels"] == [4, 4, 4] and VQVAEConfig(**fsq.to_dict()) == fsq
