"""The thesis' jet-evolution baseline: triplets from real kt trees against a slow reference,
the min-over-assignment loss by hand, the right head's dependence on the left, cached
prediction against full recomputation, generation that never expands a stop and respects its
caps, training that lowers the NLL, the model file round trip and bad input."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from io_jets import random_jets

from jetfm.data import JetBatch, JetDataError
from jetfm.models.gpt import START_TOKEN, GPTConfig
from jetfm.models.splitting import trees_to_jets
from jetfm.models.thesis_evolution import (
    STOP,
    ThesisConfig,
    ThesisEvolutionModel,
    ThesisEvolutionNet,
    declustering_triplets,
    load_thesis_model,
    momentum_imbalance,
    select_jets,
    triplet_nll,
    triplet_rank,
)
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.physics.trees import build_trees
from jetfm.tasks.thesis_evolution import fit_thesis_model

COUNTS = np.array([1, 2, 3, 0, 7, 12, 5, 9, 2, 11, 4, 8])
TINY = {
    "vqvae": {"dim": 16, "n_blocks": 1, "n_heads": 2, "codebook_size": 16},
    "gpt": {"dim": 32, "n_blocks": 2, "n_heads": 2},
    "max_leaves": 16,
    "max_depth": 6,
}


@pytest.fixture(scope="module")
def trees():
    return build_trees(random_jets(len(COUNTS), seed=5, counts=COUNTS))


def untrained(seed: int = 0, **overrides) -> ThesisEvolutionModel:
    torch.manual_seed(seed)
    config = ThesisConfig(**{**TINY, **overrides})
    return ThesisEvolutionModel(
        VQVAE(VQVAEConfig(**config.vqvae)), ThesisEvolutionNet(GPTConfig(**config.gpt)), config
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, trees):
    train = random_jets(40, seed=9, n_min=1, n_max=12)
    out = tmp_path_factory.mktemp("thesis")
    config = {
        **TINY,
        "tokenizer_training": {"max_epochs": 5, "batch_size": 8, "progress": False},
        "training": {"max_steps": 150, "max_epochs": 100, "batch_size": 8, "lr": 3e-3,
                     "patience": 100, "progress": False},
    }
    torch.manual_seed(0)
    model = fit_thesis_model(build_trees(train), trees, config, out, seed=3)
    return model, out / "thesis_model.safetensors", build_trees(train)


def reference_triplets(left: np.ndarray, right: np.ndarray, root: int) -> list[tuple]:
    """Slow recursive pre-order: (node, harder, softer) per node, leaves with (-1, -1)."""
    out: list[tuple] = []

    def visit(node: int) -> None:
        out.append((node, int(left[node]), int(right[node])))
        if left[node] >= 0:
            visit(int(left[node]))
            visit(int(right[node]))

    if root >= 0:
        visit(root)
    return out


def test_triplets_of_kt_trees_match_a_slow_reference(trees):
    parent, left, right = declustering_triplets(trees)
    assert len(parent) == len(trees.px)  # every node is a parent exactly once
    assert np.array_equal(np.sort(parent), np.arange(len(trees.px)))
    for j in range(len(trees)):
        start, stop = trees.offsets[j], trees.offsets[j + 1]
        mine = list(zip(parent[start:stop] - start,
                        np.where(left[start:stop] >= 0, left[start:stop] - start, -1),
                        np.where(right[start:stop] >= 0, right[start:stop] - start, -1),
                        strict=True))
        ref = reference_triplets(trees.left[start:stop], trees.right[start:stop],
                                 int(trees.root[j]))
        assert [tuple(map(int, t)) for t in mine] == ref
    leaf = trees.is_leaf[parent]
    assert np.all(left[leaf] == STOP) and np.all(right[leaf] == STOP)
    internal = ~leaf
    # each internal node appears once as a parent with its two children, harder one first
    assert np.array_equal(trees.parent[left[internal]], trees.local_index[parent[internal]])
    assert np.array_equal(trees.parent[right[internal]], trees.local_index[parent[internal]])
    assert np.all(trees.pt[left[internal]] >= trees.pt[right[internal]])
    children = np.concatenate([left[internal], right[internal]])
    assert np.array_equal(np.sort(children), np.flatnonzero(trees.parent != -1))


def test_sequences_hold_the_triplets_of_node_tokens(trees):
    model = untrained()
    codes = model.node_codes(trees)
    tokens, mask = model.sequences(trees, codes)
    stop_token = model.stop_token
    assert np.array_equal(mask.sum(1), 1 + 3 * trees.n_nodes)
    assert np.all(tokens[:, 0] == START_TOKEN)
    parent, left, right = declustering_triplets(trees)
    for j in np.flatnonzero(COUNTS == 1):  # one constituent: [start, leaf, stop, stop]
        leaf = trees.offsets[j]
        assert tokens[j, :4].tolist() == [START_TOKEN, codes[leaf] + 1, stop_token, stop_token]
    j = int(np.argmax(COUNTS))
    body = tokens[j, 1 : mask[j].sum()].reshape(-1, 3)
    sl = slice(trees.offsets[j], trees.offsets[j + 1])
    token = np.append(codes + 1, stop_token)
    expected = np.stack([token[parent[sl]], token[left[sl]], token[right[sl]]], 1)
    assert np.array_equal(body, expected)
    assert tokens[COUNTS == 0, 1:].sum() == 0 and mask[COUNTS == 0].sum() == 1


def test_min_assignment_loss_by_hand_and_symmetric():
    g = torch.Generator().manual_seed(1)
    left_logits, right_logits = torch.randn(2, 3, 4, 7, generator=g)
    a, b = torch.randint(0, 7, (2, 3, 4), generator=g)
    nll = triplet_nll(left_logits, right_logits, a, b)

    def log_softmax(x: torch.Tensor) -> np.ndarray:
        e = np.exp(x.numpy().astype(np.float64))
        return np.log(e / e.sum(-1, keepdims=True))

    lp_l, lp_r = log_softmax(left_logits), log_softmax(right_logits)
    i, k = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    an, bn = a.numpy(), b.numpy()
    straight = -(lp_l[i, k, an] + lp_r[i, k, bn])
    swapped = -(lp_l[i, k, bn] + lp_r[i, k, an])
    np.testing.assert_allclose(nll.numpy(), np.minimum(straight, swapped), rtol=1e-5)
    assert np.any(straight < swapped) and np.any(swapped < straight)  # both branches used
    np.testing.assert_array_equal(nll.numpy(), triplet_nll(left_logits, right_logits, b, a))


def test_right_head_depends_on_the_left_and_never_on_later_tokens(trees):
    model = untrained(seed=2)
    tokens, mask = model.sequences(trees)
    j = int(np.argmax(COUNTS))
    t = torch.as_tensor(tokens[j : j + 1, : mask[j].sum()])
    k = 4
    net = model.net
    with torch.no_grad():
        left0, right0 = net(t, None)
        changed = t.clone()
        changed[0, 2 + 3 * k] = (changed[0, 2 + 3 * k] % model.codebook_size) + 1  # left child
        left1, right1 = net(changed, None)
        later = t.clone()
        later[0, 3 + 3 * k :] = 1 + (later[0, 3 + 3 * k :] % model.codebook_size)
        left2, right2 = net(later, None)
    assert torch.equal(left0[0, : k + 1], left1[0, : k + 1])  # the left head cannot see it
    assert not torch.allclose(right0[0, k], right1[0, k])  # the right head does
    torch.testing.assert_close(right0[0, : k + 1], right2[0, : k + 1])  # causal
    torch.testing.assert_close(left0[0, : k + 1], left2[0, : k + 1])
    # cross-attention: gradient of the right logits w.r.t. left representations of triplets <= k
    hidden, _ = net.backbone(t)
    rep = net.left_rep(hidden[:, 1::3]).detach().requires_grad_(True)
    right = net.right_logits(hidden[:, 2::3].detach(), rep, causal=True)
    (grad,) = torch.autograd.grad(right[0, k].sum(), rep)
    norms = grad[0].norm(dim=1)
    assert torch.all(norms[: k + 1] > 0) and torch.all(norms[k + 1 :] == 0)


def test_cached_prediction_equals_full_recomputation(trees):
    model = untrained(seed=4)
    tokens, mask = model.sequences(trees)
    j = int(np.argmax(COUNTS))
    for k in (0, 3, 7):
        context = tokens[j, 1 : 2 + 3 * k]
        left, right = model.predict(context)
        full = torch.as_tensor(np.concatenate([tokens[j, : 2 + 3 * k], left, [1]]))[None]
        with torch.no_grad():
            lo, ro = model.net(full, None)
        lo[..., START_TOKEN] = ro[..., START_TOKEN] = float("-inf")
        assert left[0] == int(lo[0, k].argmax())
        assert right[0] == int(ro[0, k].argmax())
    with pytest.raises(ValueError, match="triplets"):
        model.predict(tokens[j, 1:3])


def test_generation_never_expands_a_stop_and_respects_caps(trees):
    model = untrained(seed=6)
    with torch.no_grad():  # make stop children common but not certain
        model.net.left_out.bias[model.stop_token] = 1.5
        model.net.right_out.bias[model.stop_token] = 1.5
    roots = trees_to_jets(trees).jet_p4[COUNTS > 0]
    gen = model.generate_batch(roots, seed=2, max_nodes=9, max_depth=3)
    assert np.all(gen.code < model.codebook_size)  # no stop or start token became a node
    for j in range(len(roots)):
        sl = slice(gen.offsets[j], gen.offsets[j + 1])
        parent, depth = gen.parent[sl], gen.depth[sl]
        n_children = np.bincount(parent[1:], minlength=len(parent))
        assert set(n_children.tolist()) <= {0, 2}
        assert len(parent) <= 9 and depth.max() <= 3
        assert np.array_equal(depth[1:], depth[parent[1:]] + 1)
    assert gen.report["made leaves by the node cap"] + gen.report[
        "made leaves by the depth cap"] > 0
    sizes = set(gen.n_nodes.tolist())
    assert len(sizes) > 1  # stops end some trees early: no full 2^depth growth
    free = model.generate_batch(roots, seed=2)
    assert np.all(free.depth <= TINY["max_depth"])
    assert np.all(free.n_nodes <= model.config.max_nodes)


def test_generated_trees_are_binary_trees_without_momentum_conservation(trees):
    model = untrained(seed=7)
    roots = trees_to_jets(trees).jet_p4[COUNTS > 0]
    gen = model.generate(roots, seed=3)
    assert np.array_equal(gen.n_nodes, 2 * gen.n_leaves - 1)
    np.testing.assert_allclose(gen.p4[gen.to_global(gen.root, np.arange(len(gen)))], roots)
    internal = np.flatnonzero(~gen.is_leaf)
    harder, softer = gen.children(internal)
    assert np.all(gen.pt[harder] >= gen.pt[softer])
    assert np.array_equal(gen.parent[harder], gen.local_index[internal])
    assert np.all(gen.local_index[harder] < gen.local_index[internal])  # children first
    order = ak.to_numpy(ak.flatten(gen.depth_first_order()))
    assert len(order) == len(gen.px)
    jets = trees_to_jets(gen)
    assert np.array_equal(jets.n_particles, gen.n_leaves)
    imbalance = momentum_imbalance(gen)
    assert imbalance["root_vs_leaves_median"] > 1e-3  # the thesis' known flaw, reported


def test_sample_children_shapes_order_and_seed(trees):
    model = untrained(seed=8)
    nodes = np.flatnonzero(~trees.is_leaf)[::3]
    harder, softer = model.sample_children(trees, nodes, 4, seed=5)
    assert harder.shape == softer.shape == (len(nodes), 4, 4)
    pt = np.hypot(harder[..., 0], harder[..., 1])
    assert np.all(pt >= np.hypot(softer[..., 0], softer[..., 1]))
    np.testing.assert_array_equal(harder, model.sample_children(trees, nodes, 4, seed=5)[0])
    with pytest.raises(JetDataError, match="leaves"):
        model.sample_children(trees, np.flatnonzero(trees.is_leaf)[:2], 1)


def test_training_lowers_the_nll_and_the_file_round_trips(trained, trees):
    model, path, train = trained
    fresh = ThesisEvolutionModel(model.vqvae, ThesisEvolutionNet(GPTConfig(**model.config.gpt)),
                                 model.config)
    before, after = fresh.splitting_nll(train).mean(), model.splitting_nll(train).mean()
    assert after < 0.8 * before, (before, after)
    loaded = load_thesis_model(path)
    np.testing.assert_array_equal(loaded.splitting_nll(trees), model.splitting_nll(trees))
    roots = trees_to_jets(trees).jet_p4[COUNTS > 0]
    a, b = loaded.generate(roots, seed=4), model.generate(roots, seed=4)
    np.testing.assert_array_equal(a.p4, b.p4)
    metrics = model.evaluate(trees)
    assert metrics["n_internal"] == int((~trees.is_leaf).sum())
    # the thesis' failure, as the README states it: after training, the softer head copies
    # the harder one's token in most greedy predictions (0.55-0.9 on this tiny fixture over
    # training seeds and batch orders); an untrained model rarely does
    assert metrics["predict_same_token_rate"] > 0.5
    assert untrained(seed=1).evaluate(trees)["predict_same_token_rate"] < 0.1
    assert metrics["nll_min_assignment_per_splitting"] <= metrics["nll_ordered_per_splitting"]


def test_model_file_of_another_kind_is_refused(trained, tmp_path):
    from jetfm.checkpoint import save_model

    save_model(tmp_path / "x.safetensors", {"w": torch.zeros(1)}, {"kind": "gpt"})
    with pytest.raises(ValueError, match="not a thesis-model file"):
        load_thesis_model(tmp_path / "x.safetensors")


def test_bad_input_is_counted_or_refused(trees, tmp_path):
    model = untrained()
    kept, report = select_jets(trees, max_leaves=10)
    assert report.removed == {"no constituents": 1, "more than 10 constituents": 2}
    assert len(kept) == len(trees) - 3 and np.all(kept.n_leaves >= 1)
    single = trees.select(np.flatnonzero(COUNTS == 1))
    assert model.splitting_nll(single).shape == (0,)  # a single-constituent jet has no splitting
    with pytest.raises(JetDataError, match="more than 4 constituents"):
        untrained(max_leaves=4).splitting_nll(trees)
    broken = trees.select(np.arange(len(trees)))
    broken.px[5] = np.nan
    with pytest.raises(JetDataError, match="non-finite"):
        model.splitting_nll(broken)
    for roots in (np.zeros((2, 3)), np.array([[0.0, 0, 100, 100]]), np.full((1, 4), np.nan)):
        with pytest.raises(JetDataError, match="root"):
            model.generate(roots)
    empty = build_trees(JetBatch.from_p4([[]], [[]], [[]], [[]]))
    with pytest.raises(JetDataError, match="no jets left"):
        fit_thesis_model(empty, empty, TINY, tmp_path)


def test_splitting_nll_equals_one_jet_at_a_time_recomputation(trees):
    model = untrained(seed=9)
    nll = model.splitting_nll(trees)
    tokens, mask = model.sequences(trees)
    rank = triplet_rank(trees)
    expected = []
    for j in range(len(trees)):
        t = torch.as_tensor(tokens[j : j + 1, : mask[j].sum()])
        with torch.no_grad():
            per_triplet = triplet_nll(*model.net(t, None), t[:, 2::3], t[:, 3::3])[0]
        sl = slice(trees.offsets[j], trees.offsets[j + 1])
        internal = ~trees.is_leaf[sl]
        expected.append(per_triplet.numpy()[rank[sl][internal]])
    np.testing.assert_allclose(nll, np.concatenate(expected), rtol=1e-5)
