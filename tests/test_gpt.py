"""GPT backbone: causal language modelling, KV-cached sampling equals full recomputation."""

import pytest
import torch

from jetfm.models.gpt import GPT, GPTConfig, NextTokenHead, next_token_loss, sample


def small_model(positional: bool = False, code_features: int = 0,
                absolute_coordinates: bool = False) -> tuple[GPT, NextTokenHead]:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=12, dim=32, n_blocks=2, n_heads=4, max_length=16,
                       positional=positional, code_features=code_features,
                       code_dim=2 if code_features else 0,
                       absolute_coordinates=absolute_coordinates)
    gpt = GPT(config)
    if code_features:  # ten codes on a line in 2D
        gpt.codes.set_coordinates(torch.stack([torch.linspace(-1, 1, 10), torch.zeros(10)], 1))
    return gpt.eval(), NextTokenHead.for_backbone(gpt)


@pytest.mark.parametrize("code_features", [0, 6])
def test_cached_and_recomputed_sampling_agree(code_features):
    backbone, head = small_model(positional=True, code_features=code_features)
    runs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(7)
        runs.append(sample(backbone, head, 20, 12, generator=g, use_cache=use_cache))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_sampled_sequences_stop_and_codes_are_in_range():
    backbone, head = small_model()
    codes, mask = sample(backbone, head, 50, 12, generator=torch.Generator().manual_seed(1))
    assert codes.shape == (50, 12)
    assert (codes[mask] >= 0).all() and (codes[mask] < 10).all()  # 12 - start - stop
    # mask is a prefix: once a jet stopped it stays stopped
    assert (mask[:, 1:] <= mask[:, :-1]).all()


def test_learns_a_deterministic_sequence():
    backbone, head = small_model()
    backbone.train()
    tokens = torch.tensor([[0, 3, 5, 7, 9, 11]] * 8)  # start, codes 2,4,6,8, stop (11)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(150):
        hidden, _ = backbone(tokens, mask)
        loss = next_token_loss(head(hidden), tokens, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss < 0.05
    codes, gen_mask = sample(backbone.eval(), head, 4, 10, temperature=0.5,
                             generator=torch.Generator().manual_seed(0))
    assert (gen_mask.sum(1) == 4).all()
    assert (codes[:, :4] == torch.tensor([2, 4, 6, 8])).all()


def test_loss_ignores_padding():
    backbone, head = small_model()
    tokens = torch.tensor([[0, 3, 11, 0, 0], [0, 4, 5, 6, 11]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    hidden, _ = backbone(tokens, mask)
    logits = head(hidden)
    garbage = tokens.clone()
    garbage[0, 3:] = 7
    hidden2, _ = backbone(garbage, mask)
    torch.testing.assert_close(
        next_token_loss(logits, tokens, mask), next_token_loss(head(hidden2), garbage, mask)
    )


def test_grammar_restricts_each_step_to_its_tokens():
    """sample(grammar=...): step k draws only from row min(k, n_rows - 1); here codes 1-3
    (tokens 2-4) at step 0, token 5 at step 1, then codes 6-8 or stop, whatever the model."""
    backbone, head = small_model()
    grammar = torch.zeros(3, 12, dtype=torch.bool)
    grammar[0, 2:5] = True
    grammar[1, 5] = True
    grammar[2, 7:10] = True
    grammar[2, 11] = True
    codes, mask = sample(backbone, head, 200, 10, generator=torch.Generator().manual_seed(2),
                         grammar=grammar)
    assert mask[:, :2].all()  # no stop in the first two steps
    assert set(codes[:, 0].tolist()) == {1, 2, 3} and set(codes[:, 1].tolist()) == {4}
    assert set(codes[:, 2:][mask[:, 2:]].tolist()) <= {6, 7, 8}
    with pytest.raises(ValueError, match="grammar: shape"):
        sample(backbone, head, 2, 4, grammar=grammar[:, :5])


def test_absolute_coordinates_are_fed_step_by_step_when_sampling():
    """absolute_coordinates: the GPT embeds per-token coordinates that may depend on the
    whole prefix (here the running sum of the code positions); the KV-cached sampler feeds
    the newest token's and agrees with full recomputation; a missing input is named."""
    backbone, head = small_model(positional=True, code_features=6, absolute_coordinates=True)
    torch.nn.init.normal_(backbone.absolute_embed.weight, std=1.0)
    table = backbone.codes.coordinates

    def running_sum(tokens: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(table[tokens], dim=1)

    runs = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(5)
        runs.append(sample(backbone, head, 20, 12, generator=g, use_cache=use_cache,
                           coordinates_fn=running_sum))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    plain = sample(backbone, head, 20, 12, generator=torch.Generator().manual_seed(5),
                   coordinates_fn=lambda t: torch.zeros(*t.shape, 2))
    assert not torch.equal(plain[0], runs[0][0])  # the coordinates change what is sampled
    with pytest.raises(ValueError, match="pass coordinates"):
        backbone(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="absolute_coordinates: true needs code_features"):
        GPTConfig(absolute_coordinates=True)
