"""Classification heads: permutation invariance, padding invariance, learning."""

import pytest
import torch

from jetfm.models.heads import HEADS

POOLING = sorted(set(HEADS) - {"global_token"})


@pytest.mark.parametrize("name", POOLING)
def test_invariant_to_permutation_and_padding(name):
    torch.manual_seed(0)
    head = HEADS[name](32, 3).eval()
    hidden = torch.randn(4, 9, 32)
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[:, 6:] = False
    out = head(hidden, mask)
    perm = torch.cat([torch.randperm(6), torch.arange(6, 9)])
    torch.testing.assert_close(head(hidden[:, perm], mask[:, perm]), out, rtol=1e-5, atol=1e-5)
    changed = hidden.clone()
    changed[:, 6:] = 1e3
    torch.testing.assert_close(head(changed, mask), out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", POOLING)
def test_separates_two_populations(name):
    torch.manual_seed(1)
    head = HEADS[name](16, 2)
    x = torch.randn(256, 5, 16)
    y = torch.randint(0, 2, (256,))
    x[y == 1, :, 0] += 1.0  # class 1 shifted in one hidden direction
    mask = torch.ones(256, 5, dtype=torch.bool)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(head(x, mask), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (head(x, mask).argmax(1) == y).float().mean()
    assert accuracy > 0.9


def test_global_token_head_reads_only_token_zero():
    torch.manual_seed(0)
    head = HEADS["global_token"](8, 3)
    hidden = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    changed = hidden.clone()
    changed[:, 1:] = torch.randn(2, 4, 8)
    torch.testing.assert_close(head(changed, mask), head(hidden, mask))
    torch.testing.assert_close(head(hidden, mask), head.out(hidden[:, 0]))


def test_build_head_names_bad_options():
    from jetfm.models.heads import build_head

    with pytest.raises(ValueError, match="unknown head 'mlp'.*class_attention"):
        build_head("mlp", 8, 2)
    with pytest.raises(ValueError, match=r"unknown options \['depth'\]"):
        build_head("class_attention", 8, 2, {"depth": 3})
    with pytest.raises(ValueError, match="not divisible"):
        build_head("class_attention", 12, 2, {"n_heads": 8})
