"""VQ-VAE tokenizer: equivariance, masking, encode/decode consistency, learning."""

import torch

from jetfm.models.vqvae import VQVAE, VQVAEConfig


def small_vqvae(codebook_size: int = 64) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(dim=32, n_blocks=2, n_heads=4, codebook_size=codebook_size))


def toy_jets(n: int = 64, n_max: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_max, 3, generator=g)
    counts = torch.randint(1, n_max + 1, (n,), generator=g)
    mask = torch.arange(n_max)[None] < counts[:, None]
    return x * mask[..., None], mask


def test_codes_are_permutation_equivariant_and_ignore_padding():
    model = small_vqvae().eval()
    x, mask = toy_jets()
    codes = model.encode(x, mask)
    perm = torch.randperm(x.shape[1])
    assert torch.equal(model.encode(x[:, perm], mask[:, perm]), codes[:, perm])
    garbage = x.clone()
    garbage[~mask] = 50.0
    assert torch.equal(model.encode(garbage, mask), codes)
    assert (codes[~mask] == 0).all()


def test_forward_codes_match_encode_and_decode_matches_reconstruction():
    model = small_vqvae().eval()
    x, mask = toy_jets()
    out = model(x, mask)
    assert torch.equal(out.codes, model.encode(x, mask))
    decoded = model.decode(out.codes, mask)
    torch.testing.assert_close(decoded[mask], out.reconstruction[mask], rtol=1e-5, atol=1e-5)


def test_training_reduces_reconstruction_error():
    model = small_vqvae(codebook_size=128).train()
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
