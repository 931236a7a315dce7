"""The jet-evolution generator: encoding, mixture densities against scipy, exact conservation
in generated trees, KV cache = full recomputation, causality, training, model files, errors."""

from __future__ import annotations

import types

import awkward as ak
import numpy as np
import pytest
import torch
from io_jets import random_jets
from scipy import stats

from jetfm.configs import preset
from jetfm.data import JetDataError
from jetfm.data.trees_io import read_trees, write_trees
from jetfm.metrics.splitting import binned_splitting_nll
from jetfm.models.jet_evolution import (
    N_FEATURES,
    EvolutionConfig,
    JetEvolution,
    JetEvolutionModel,
    encode,
    gaussian_mixture_nll,
    sample_gaussian_mixture,
    sample_von_mises_mixture,
    von_mises_mixture_nll,
)
from jetfm.models.splitting import SplittingModel, trees_to_jets
from jetfm.physics import splitting as sp
from jetfm.physics.clustering import pair_distance
from jetfm.physics.trees import NODE_ARRAYS, JetTrees, build_trees
from jetfm.report import json_safe
from jetfm.studies import evolution
from jetfm.studies.evolution import (
    EvolutionStudyConfig,
    compare,
    generate_from_roots,
    make_splits,
    run,
    trees_stage,
)
from jetfm.tasks.jet_evolution import MODEL_FILE

COUNTS = np.array([1, 2, 3, 9, 14, 20, 5, 11])


@pytest.fixture(scope="module")
def trees() -> JetTrees:
    return build_trees(random_jets(len(COUNTS), seed=3, counts=COUNTS))


def small_model(seed: int = 0, **kwargs) -> JetEvolutionModel:
    torch.manual_seed(seed)
    config = EvolutionConfig(dim=16, n_blocks=2, n_heads=2, n_components=3, **kwargs)
    return JetEvolutionModel(JetEvolution(config))


def roots_of(trees: JetTrees) -> np.ndarray:
    return trees.p4[trees.to_global(trees.root, np.arange(len(trees)))]


# ----------------------------------------------------------------------------- encoding
def test_encoding_is_pre_order_and_its_coordinates_rebuild_the_children(trees):
    enc = encode(trees)
    assert enc.features.shape == (len(COUNTS), 2 * COUNTS.max() - 1, N_FEATURES)
    np.testing.assert_array_equal(enc.mask.sum(axis=1), 2 * COUNTS - 1)
    for j in range(len(COUNTS)):
        nodes = enc.node[j][enc.mask[j]]
        local = nodes - trees.offsets[j]
        np.testing.assert_array_equal(local, ak.to_numpy(trees.depth_first_order()[j]))
        assert local[0] == trees.root[j]
        np.testing.assert_array_equal(enc.depth[j][enc.mask[j]], trees.depth[nodes])
    real = enc.node[enc.mask]
    internal = ~trees.is_leaf[real]
    np.testing.assert_array_equal(enc.split[enc.mask], internal)
    soft = enc.soft[enc.mask].astype(bool)
    parent = trees.to_global(trees.parent[real], trees.node_jet[real])
    assert np.all(trees.right[parent[soft]] == trees.local_index[real[soft]])
    assert not soft[trees.parent[real] < 0].any()
    # u -> parameters -> children gives back the true children (float64 jets: no clipping)
    nodes = real[internal]
    a, b = trees.children(nodes)
    mass = sp.parameters(trees.p4[a], trees.p4[b]).mass
    params = sp.from_unconstrained(enc.u[enc.mask][internal].astype(np.float64), mass)
    c1, _ = sp.split(trees.p4[nodes], params.m1, params.m2, params.cos_theta, params.phi,
                     mass=mass)
    scale = trees.energy[nodes][:, None]
    # u is stored as float32 (the training tensors): agreement to float32 precision
    np.testing.assert_array_less(np.abs(c1 - trees.p4[a]) / scale, 1e-4)


def test_select_equals_rebuilding_the_selected_jets(trees):
    rows = np.array([5, 0, 3])
    picked = trees.select(rows)
    rebuilt = build_trees(random_jets(len(COUNTS), seed=3, counts=COUNTS)[rows])
    for name in NODE_ARRAYS:
        np.testing.assert_array_equal(getattr(picked, name), getattr(rebuilt, name))
    np.testing.assert_array_equal(picked.n_nodes, rebuilt.n_nodes)
    np.testing.assert_array_equal(picked.jet, rows)


# ----------------------------------------------------------------------------- mixtures
def test_mixture_densities_match_scipy():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(0, 2, 200))
    logits, mean, log_sigma = np.log([0.3, 0.7]), np.array([-1.0, 2.0]), np.log([0.5, 1.5])
    params = torch.as_tensor(np.concatenate([logits, mean, log_sigma])).expand(200, 6)
    expected = -np.log(0.3 * stats.norm.pdf(x, -1, 0.5) + 0.7 * stats.norm.pdf(x, 2, 1.5))
    np.testing.assert_allclose(gaussian_mixture_nll(params, x).numpy(), expected, rtol=1e-10)
    phi = torch.as_tensor(rng.uniform(-np.pi, np.pi, 200))
    mu, kappa = np.array([0.5, -2.0]), np.array([4.0, 0.7])
    vm = np.concatenate([logits, np.cos(mu), np.sin(mu), np.log(kappa)])
    vm_params = torch.as_tensor(vm).expand(200, 8)
    expected = -np.log(0.3 * stats.vonmises.pdf(phi, 4.0, loc=0.5)
                       + 0.7 * stats.vonmises.pdf(phi, 0.7, loc=-2.0))
    np.testing.assert_allclose(von_mises_mixture_nll(vm_params, phi).numpy(), expected,
                               rtol=1e-8)


def test_mixture_samplers_follow_their_densities():
    rng = np.random.default_rng(2)
    n = 20000
    gm = torch.as_tensor(np.array([np.log(0.25), np.log(0.75), -3.0, 1.0, np.log(0.4), 0.0]))
    draws = sample_gaussian_mixture(gm.expand(n, 6), rng)

    def gm_cdf(v):
        return 0.25 * stats.norm.cdf(v, -3, 0.4) + 0.75 * stats.norm.cdf(v, 1, 1)

    assert stats.kstest(draws, gm_cdf).pvalue > 1e-3
    vm = torch.as_tensor(np.array([0.0, 0.0, np.cos(2.5), np.cos(-1.0), np.sin(2.5),
                                   np.sin(-1.0), np.log(3.0), np.log(8.0)]))
    angles = sample_von_mises_mixture(vm.expand(n, 8), rng)

    grid = np.linspace(-np.pi, np.pi, 20001)  # the mixture's CDF on (-pi, pi] by quadrature
    pdf = 0.5 * (stats.vonmises.pdf(grid, 3.0, loc=2.5) + stats.vonmises.pdf(grid, 8.0, loc=-1.0))
    cdf = np.concatenate([[0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(grid))])
    assert cdf[-1] == pytest.approx(1.0, abs=1e-6)

    def vm_cdf(v):
        return np.interp(v, grid, cdf)

    assert stats.kstest(angles, vm_cdf).pvalue > 1e-3


# ----------------------------------------------------------------------------- generation
def check_tree_structure(grown: JetTrees, roots: np.ndarray) -> None:
    """Clustering order, 2n - 1 nodes, exact conservation, harder child left, roots kept."""
    assert isinstance(grown, JetTrees) and len(grown) == len(roots)
    np.testing.assert_array_equal(grown.n_nodes, 2 * grown.n_leaves - 1)
    root = grown.to_global(grown.root, np.arange(len(grown)))
    np.testing.assert_array_equal(grown.p4[root], roots)
    leaf = grown.is_leaf
    local = grown.local_index
    assert np.all(local[leaf] < np.repeat(grown.n_leaves, grown.n_nodes)[leaf])  # leaves first
    np.testing.assert_array_equal(grown.constituent[leaf], local[leaf])
    internal = np.flatnonzero(~leaf)
    a, b = grown.children(internal)
    assert np.all(grown.left[internal] < local[internal])  # children before parents
    assert np.all(grown.right[internal] < local[internal])
    scale = grown.energy[root][grown.node_jet[internal]][:, None]
    np.testing.assert_array_less(np.abs(grown.p4[a] + grown.p4[b] - grown.p4[internal]) / scale,
                                 1e-12)
    assert np.all(grown.pt[a] >= grown.pt[b])
    assert np.all(sp.mass_of(grown.p4) >= 0)
    parent = grown.to_global(grown.parent, grown.node_jet)
    has_parent = grown.parent != -1  # roots have parent -1
    assert np.all((grown.left[parent[has_parent]] == local[has_parent])
                  | (grown.right[parent[has_parent]] == local[has_parent]))
    jets = trees_to_jets(grown)
    np.testing.assert_allclose(jets.jet_p4, roots, rtol=1e-9, atol=1e-9)


def test_generated_trees_conserve_momentum_and_count_the_caps(trees):
    model = small_model(max_nodes=15, max_depth=4)
    with torch.no_grad():
        model.net.split_head.bias.fill_(4.0)  # splits nearly always: the caps must stop it
    roots = roots_of(trees)
    grown = model.generate(roots, seed=4)
    check_tree_structure(grown, roots)
    assert grown.n_nodes.max() <= 15 and grown.depth.max() <= 4
    report = model.report
    assert report.n_jets == len(roots) and report.n_nodes == int(grown.n_nodes.sum())
    assert report.forced_leaves_depth_cap > 0 and report.forced_leaves_node_cap > 0
    assert isinstance(model, SplittingModel)
    again = model.generate(roots, seed=4)
    np.testing.assert_array_equal(again.p4, grown.p4)
    assert not np.allclose(model.generate(roots, seed=5).p4, grown.p4)


def test_kv_cache_generation_equals_full_recomputation(trees):
    model = small_model(1, max_nodes=63)
    roots = roots_of(trees)
    cached = model.generate(roots, seed=7, use_cache=True)
    full = model.generate(roots, seed=7, use_cache=False)
    np.testing.assert_array_equal(cached.n_nodes, full.n_nodes)
    for name in ("left", "right", "parent", "constituent"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(full, name))
    # float32 attention sums in another order: ~1e-7 in the context, ~1e-6 in the momenta
    np.testing.assert_allclose(cached.p4, full.p4, rtol=1e-5, atol=1e-5)


def test_generation_feeds_the_network_the_encoding_of_the_grown_trees(trees):
    """Node features (siblings included) are built twice: while growing and in ``encode``."""
    model = small_model(3, max_nodes=31)
    seen, forward = [], model.net.forward

    def spy(features, *args, **kwargs):
        seen.append(features[:, -1].clone())
        return forward(features, *args, **kwargs)

    model.net.forward = spy
    with torch.no_grad():
        model.net.split_head.bias.fill_(2.0)  # deep trees: siblings at every depth
    grown = model.generate(roots_of(trees), seed=2)
    enc = encode(grown)
    fed = torch.stack(seen, dim=1).numpy()
    assert grown.depth.max() >= 4
    for i, n in enumerate(grown.n_nodes):
        np.testing.assert_allclose(fed[i, :n], enc.features[i, :n], rtol=1e-4, atol=1e-4)


def test_ordered_generation_keeps_the_clustering_order(trees):
    """With ``ordered`` every splitting's kt distance lies below its parent's, as in FastJet's
    kt trees; without it the untrained network breaks the order."""
    def violations(grown: JetTrees) -> int:
        internal = np.flatnonzero(~grown.is_leaf)
        a, b = grown.children(internal)
        distance = np.full(len(grown.px), np.inf)
        distance[internal] = pair_distance(grown.p4[a], grown.p4[b], "kt")
        jet = grown.node_jet[internal]
        up = grown.to_global(np.maximum(grown.parent[internal], 0), jet)
        has = grown.parent[internal] != -1
        return int(np.sum(distance[internal][has] >= distance[up][has]))

    assert violations(trees) <= 0.01 * int((~trees.is_leaf).sum())  # FastJet's own trees
    free = small_model(5, max_nodes=31, ordered=False).generate(roots_of(trees), seed=3)
    assert violations(free) > 0
    model = small_model(5, max_nodes=31)
    grown = model.generate(roots_of(trees), seed=3)
    assert violations(grown) == 0 and model.report.redrawn > 0
    check_tree_structure(grown, roots_of(trees))


def test_contexts_are_causal_and_independent_of_other_jets(trees):
    model = small_model(2)
    enc = encode(trees)
    args = [torch.as_tensor(a) for a in (enc.features, enc.depth, enc.soft)]
    mask = torch.as_tensor(enc.mask)
    with torch.no_grad():
        context, _ = model.net(*args, mask)
        changed = args[0].clone()
        changed[:, 5:] += 3.0  # alter every node from position 5 on
        after, _ = model.net(changed, args[1], args[2], mask)
        alone, _ = model.net(*(a[4:5] for a in args), mask[4:5])
    torch.testing.assert_close(after[:, :5], context[:, :5], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after[:, 5:][mask[:, 5:]], context[:, 5:][mask[:, 5:]])
    torch.testing.assert_close(alone[0][mask[4]], context[4][mask[4]], rtol=1e-5, atol=1e-5)
    # the NLL of each splitting follows its jet when jets are reordered
    order = np.array([7, 6, 5, 4, 3, 2, 1, 0])
    nll = model.splitting_nll(trees)
    reordered = model.splitting_nll(trees.select(order))
    per_jet = np.split(nll, np.cumsum(trees.n_leaves - 1)[:-1])
    np.testing.assert_allclose(reordered, np.concatenate([per_jet[j] for j in order]),
                               rtol=1e-5)


def test_sampled_children_conserve_the_parent(trees):
    model = small_model(3)
    nodes = np.flatnonzero(~trees.is_leaf)[::3]
    harder, softer = model.sample_children(trees, nodes, n_samples=6, seed=2)
    assert harder.shape == softer.shape == (len(nodes), 6, 4)
    parent = trees.p4[nodes][:, None]
    np.testing.assert_array_less(np.abs(harder + softer - parent) / parent[..., 3:], 1e-12)
    assert np.all(np.hypot(harder[..., 0], harder[..., 1])
                  >= np.hypot(softer[..., 0], softer[..., 1]))
    with pytest.raises(ValueError, match="leaves"):
        model.sample_children(trees, np.flatnonzero(trees.is_leaf)[:2], 3)
    nll = model.splitting_nll(trees)
    assert nll.shape == (int((~trees.is_leaf).sum()),) and np.all(np.isfinite(nll))


# ----------------------------------------------------------------------------- training
def test_loss_decreases_on_a_tiny_dataset(trees):
    model = small_model(4)
    batch = [torch.as_tensor(a) for a in encode(trees).arrays()]
    optimizer = torch.optim.Adam(model.net.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.net.loss(*batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


def test_study_trains_evaluates_and_resumes(tmp_path):
    """The study on small stored trees: model file round trip, likelihoods between the oracle
    and uniform values, generated trees that keep their roots, and a resume that redoes
    nothing."""
    for name, seed in (("top", 1), ("qcd", 2)):
        path = tmp_path / "trees" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_trees(build_trees(random_jets(40, seed=seed, n_min=3, n_max=12)), path)
    (tmp_path / "trees" / "notes.json").write_text('["stored test trees"]')
    config = EvolutionStudyConfig(
        model=dict(dim=16, n_blocks=1, n_heads=2, n_components=2),
        training=dict(max_epochs=1, batch_size=8, progress=False),
        nll_jets=4, nll_samples=20, n_generate=4, n_bootstrap=2, evaluation_plots=False,
        example_trees=[0],
    )
    trees_stage(config, tmp_path).finish()  # the stored trees stand for this config's
    summary = run(config, tmp_path)
    model_file = tmp_path / "evolution" / MODEL_FILE
    model = JetEvolutionModel.load(model_file)
    held = read_trees([str(tmp_path / "trees" / "top.parquet")])
    held_out = make_splits({"top": held, "qcd": held}, config)["top"]["held_out"]
    nll_trees = held.select(held_out[:4])
    own = model.splitting_nll(nll_trees)
    assert summary["nll"]["evolution/top"]["own_nll"] == pytest.approx(own.mean(), rel=1e-6)
    # the binned NLL is that of the first nll_jets held-out jets' splittings, every one
    nodes = np.flatnonzero(~nll_trees.is_leaf)
    binned = binned_splitting_nll(model, nll_trees, nodes, 20, alpha=0.5, seed=config.seed)
    r = summary["nll"]["evolution/top"]
    assert r["n_splittings"] == len(nodes) == int((nll_trees.n_leaves - 1).sum())
    assert r["nll"] == pytest.approx(binned["nll"], rel=1e-9)
    top_levels = nll_trees.depth[nodes] < 3
    assert r["n_depth_lt_3"] == int(top_levels.sum())
    assert r["nll_depth_lt_3"] == pytest.approx(binned["per_splitting"][top_levels].mean())
    grown = read_trees([str(tmp_path / "generated" / "evolution_top.parquet")])
    assert len(grown) == 4
    check_tree_structure(grown, grown.p4[grown.to_global(grown.root, np.arange(4))])
    np.testing.assert_array_equal(grown.p4[grown.to_global(grown.root, np.arange(4))],
                                  roots_of(held.select(held_out[:4])))
    assert (tmp_path / "plots" / "lund_evolution_top.png").exists()
    assert (tmp_path / "plots" / "trees_qcd.png").exists()
    assert "binned NLL" in (tmp_path / "summary.md").read_text()
    (budget,) = summary["training"]  # no thesis baseline configured: one row
    n_train = sum(len(s["train"]) for s in make_splits({"top": held, "qcd": held},
                                                       config).values())
    assert (budget["model"], budget["training trees"], budget["max epochs"]) == (
        "evolution", n_train, 1)
    assert budget["epochs"] == 1 and budget["steps"] == -(-n_train // 8)  # batches of 8
    assert "## Training budgets" in (tmp_path / "summary.md").read_text()
    stamp = model_file.stat().st_mtime_ns
    again = run(config, tmp_path)
    assert model_file.stat().st_mtime_ns == stamp
    assert again["nll"] == summary["nll"]
    # as written: n/a numbers (a C2ST without a split on a few jets) are null in both
    assert json_safe(again["generation"]) == json_safe(summary["generation"])


def test_bad_inputs_raise_clear_errors(trees, tmp_path):
    model = small_model()
    roots = roots_of(trees)
    roots[2, 1] = np.nan
    with pytest.raises(JetDataError, match="non-finite.*row 2"):
        model.generate(roots)
    with pytest.raises(JetDataError, match=r"\(n_jets, 4\)"):
        model.generate(roots[:, :3])
    wta = build_trees(random_jets(3, seed=1), recombination="WTA_pt")
    with pytest.raises(JetDataError, match="E-scheme"):
        encode(wta)
    empty = build_trees(random_jets(2, seed=1, counts=np.array([0, 3])))
    with pytest.raises(JetDataError, match="empty tree"):
        encode(empty)
    model.save(tmp_path / "m.safetensors")
    from jetfm.checkpoint import save_model

    save_model(tmp_path / "other.safetensors", {"w": torch.zeros(1)}, {"kind": "gpt"})
    with pytest.raises(ValueError, match="not a jet-evolution model"):
        JetEvolutionModel.load(tmp_path / "other.safetensors")
    old_inputs = {"kind": "jet_evolution", "config": {}, "algorithm": "kt", "n_features": 8}
    save_model(tmp_path / "old.safetensors", model.net.state_dict(), old_inputs)
    with pytest.raises(ValueError, match="8 node features"):
        JetEvolutionModel.load(tmp_path / "old.safetensors")


class Replay:
    """A "generator" that returns the true trees of the roots it is given."""

    report = "replays the true trees"

    def __init__(self, trees: dict[str, JetTrees]):
        self.trees = trees

    def generate(self, roots: np.ndarray, seed: int = 1) -> JetTrees:
        for t in self.trees.values():
            rows = {r.tobytes(): i for i, r in enumerate(roots_of(t))}
            if roots[0].tobytes() in rows:
                return t.select(np.array([rows[r.tobytes()] for r in roots]))
        raise AssertionError("unknown roots")


def test_roots_reference_and_floor_are_disjoint_and_the_floor_is_like_for_like(tmp_path,
                                                                               monkeypatch):
    """Generated jets are grown from roots that are in neither the reference nor the floor
    sample; the floor sample is as large as the generated one. A generator that returns its
    roots' true jets is then exchangeable with the floor sample: swapping the roots and floor
    parts swaps value and floor exactly, for every metric and the Lund-plane distance, so its
    value is distributed as the floor. Before the fix the reference was all held-out jets
    (half of it the roots' own jets) and the floor a random split of it: the spy fails, and
    so does the exchange (the replayed truth "beat" its floor, W1(mass) 0.9 vs 1.7 GeV)."""
    trees = {name: build_trees(random_jets(100, seed=seed, n_min=3, n_max=15))
             for name, seed in (("top", 11), ("qcd", 12))}
    config = EvolutionStudyConfig(train_fraction=0.2, val_fraction=0.05, n_generate=25,
                                  n_bootstrap=2, evaluation_plots=False, example_trees=[0])
    splits = make_splits(trees, config)
    for s in splits.values():
        roots, floor, reference = (set(s[p].tolist()) for p in ("roots", "floor", "reference"))
        assert len(roots) == len(floor) == 25 and len(reference) == 25
        assert not (roots & floor or roots & reference or floor & reference)
        assert roots | floor | reference == set(s["held_out"].tolist())
        assert not set(s["held_out"].tolist()) & set(np.concatenate([s["train"], s["val"]]))
    seen = []
    real = evolution.evaluate_batches

    def spy(reference, generated, out_dir, **kwargs):
        seen.append({"reference": reference.entry, "generated": generated.entry,
                     "floor": kwargs["floor_sample"].entry})
        return real(reference, generated, out_dir, **kwargs)

    monkeypatch.setattr(evolution, "evaluate_batches", spy)
    for plot in ("plot_lund_planes", "plot_trees"):  # drawn in the study test; slow here
        monkeypatch.setattr(evolution, plot, lambda *args, **kwargs: None)
    model = {"replay": Replay(trees)}
    # the trees and the replay model of this test stand for the study's trees and model stages
    monkeypatch.setattr(evolution, "_inputs", lambda *args, **kwargs: {"trees": "this test's"})
    monkeypatch.setattr(evolution, "trees_stage",
                        lambda *args: types.SimpleNamespace(digest="this test's trees"))
    results = compare(generate_from_roots(model, trees, splits, config, tmp_path / "a"), trees,
                      splits, config, tmp_path / "a")
    for name, used in zip(evolution.CLASSES, seen, strict=True):
        np.testing.assert_array_equal(used["generated"], splits[name]["roots"])
        np.testing.assert_array_equal(used["floor"], splits[name]["floor"])
        np.testing.assert_array_equal(used["reference"], splits[name]["reference"])

    swapped = {n: {**s, "roots": s["floor"], "floor": s["roots"]} for n, s in splits.items()}
    again = compare(generate_from_roots(model, trees, swapped, config, tmp_path / "b"), trees,
                    swapped, config, tmp_path / "b")
    for key, r in results.items():
        for row, other in zip(r["table"], again[key]["table"], strict=True):
            assert row["value"] == pytest.approx(other["floor"], rel=1e-12, nan_ok=True)
            assert row["floor"] == pytest.approx(other["value"], rel=1e-12, nan_ok=True)
        lund, lund_swapped = r["lund_plane"], again[key]["lund_plane"]
        assert lund["distance"] == pytest.approx(lund_swapped["floor"], rel=1e-12)
        assert lund["floor"] == pytest.approx(lund_swapped["distance"], rel=1e-12)


def test_too_few_held_out_jets_for_roots_floor_and_reference_are_refused():
    trees = {"top": build_trees(random_jets(30, seed=1, n_min=2, n_max=5))}
    config = EvolutionStudyConfig(train_fraction=0.5, val_fraction=0.1, n_generate=4)
    assert len(make_splits(trees, config)["top"]["reference"]) == 4  # 12 held out
    with pytest.raises(ValueError, match=r"top: 12 held-out jets cannot give n_generate = 5 "
                                         r"roots.*n_generate <= 4"):
        make_splits(trees, EvolutionStudyConfig(train_fraction=0.5, val_fraction=0.1,
                                                n_generate=5))


def test_cpu_config_gives_the_thesis_baseline_the_evolution_models_budget():
    """The compared sequence models train on the same trees with the same epoch cap, batch
    size (so the same optimiser-step cap) and early-stopping patience (the thesis GPT had 3
    epochs against 40)."""
    config = EvolutionStudyConfig.from_yaml(preset("evolution_cpu"))
    keys = ("max_epochs", "max_steps", "batch_size", "patience")
    evolution_budget = {k: config.training.get(k) for k in keys}
    assert {k: config.thesis["training"].get(k) for k in keys} == evolution_budget
