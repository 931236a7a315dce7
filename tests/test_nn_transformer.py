"""Shared transformer blocks: permutation equivariance, padding, causality, KV cache."""

import torch

from jetfm.nn.transformer import Block


def make_block(normformer: bool = True) -> Block:
    torch.manual_seed(0)
    return Block(dim=32, n_heads=4, normformer=normformer).eval()


def test_permutation_equivariant_without_causal_mask():
    block = make_block()
    x = torch.randn(3, 10, 32)
    perm = torch.randperm(10)
    y, _ = block(x)
    y_perm, _ = block(x[:, perm])
    torch.testing.assert_close(y_perm, y[:, perm], rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_real_entries():
    block = make_block()
    x = torch.randn(2, 6, 32)
    padded = torch.cat([x, torch.randn(2, 4, 32) * 100], dim=1)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[:, :6] = True
    y, _ = block(x)
    y_pad, _ = block(padded, padding_mask=mask)
    torch.testing.assert_close(y_pad[:, :6], y, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(y_pad).all()


def test_causal_outputs_do_not_see_the_future():
    block = make_block(normformer=False)
    x = torch.randn(2, 8, 32)
    changed = x.clone()
    changed[:, 5:] = torch.randn(2, 3, 32)
    y, _ = block(x, causal=True)
    y_changed, _ = block(changed, causal=True)
    torch.testing.assert_close(y_changed[:, :5], y[:, :5])
    assert not torch.allclose(y_changed[:, 5:], y[:, 5:])


def test_kv_cache_matches_full_recomputation():
    block = make_block(normformer=False)
    x = torch.randn(2, 7, 32)
    full, _ = block(x, causal=True)
    outputs, cache = [], None
    for t in range(7):
        y, cache = block(x[:, t : t + 1], causal=True, cache=cache)
        outputs.append(y)
    torch.testing.assert_close(torch.cat(outputs, dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 7
