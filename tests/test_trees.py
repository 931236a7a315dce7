"""Declustering trees against FastJet (exclusive jets, inclusive jets), slow reference
traversals, E-scheme and WTA recombination, edge cases, validation and the Parquet round trip."""

from __future__ import annotations

from collections import deque

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
from io_jets import random_jets, with_value

from jetfm.data import JetBatch, JetDataError
from jetfm.data.trees_io import read_trees, write_trees
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import MAX_R, cluster, exclusive_jets_up_to, pair_distance
from jetfm.physics.trees import NODE_ARRAYS, JetTrees, build_trees, validate_trees

COUNTS = np.array([1, 2, 3, 0, 7, 25, 40, 12, 2, 60, 33, 18])


@pytest.fixture(scope="module")
def jets() -> JetBatch:
    return random_jets(len(COUNTS), seed=7, counts=COUNTS)


def node_p4(trees: JetTrees, jet: int) -> np.ndarray:
    """(n_nodes, 4) momenta of one jet's nodes."""
    return trees.p4[trees.offsets[jet] : trees.offsets[jet + 1]]


def jet_field(trees: JetTrees, name: str, jet: int) -> np.ndarray:
    return getattr(trees, name)[trees.offsets[jet] : trees.offsets[jet + 1]]


def two_prongs(n_each: int = 6, separation: float = 2.0) -> JetBatch:
    """One 'jet' of two tight prongs (400 and 150 GeV) ``separation`` apart in phi."""
    rng = np.random.default_rng(3)
    pt = np.concatenate([rng.dirichlet(np.ones(n_each)) * p for p in (400, 150)])
    eta = 0.3 + rng.normal(0, 0.02, 2 * n_each)
    phi = np.repeat([0.0, separation], n_each) + rng.normal(0, 0.02, 2 * n_each)
    return JetBatch.from_ptetaphi([pt], [eta], [phi], 0.0)


@pytest.mark.parametrize("algorithm", ["kt", "cambridge", "antikt"])
def test_e_scheme_nodes_are_sums_and_leaves_are_constituents(jets, algorithm):
    trees = build_trees(jets, algorithm)
    assert np.array_equal(trees.n_constituents, COUNTS)
    for j, n in enumerate(COUNTS):
        p4 = node_p4(trees, j)
        assert len(p4) == max(2 * n - 1, 0)
        leaf = jet_field(trees, "constituent", j)
        # leaves first, in constituent order, exactly the input momenta
        assert np.array_equal(leaf[:n], np.arange(n)) and np.all(leaf[n:] == -1)
        particles = np.stack(
            [ak.to_numpy(jets.particles[f][j]) for f in ("px", "py", "pz", "energy")], 1
        )
        assert np.array_equal(p4[:n], particles)
        left, right = jet_field(trees, "left", j), jet_field(trees, "right", j)
        for node in range(n, 2 * n - 1):
            np.testing.assert_allclose(
                p4[node], p4[left[node]] + p4[right[node]], rtol=1e-14, atol=1e-12
            )
            # children before parents, harder child on the left
            assert left[node] < node and right[node] < node
            assert kin.pt(*p4[left[node], :2]) >= kin.pt(*p4[right[node], :2])
        if n:
            np.testing.assert_allclose(p4[-1], particles.sum(axis=0), rtol=1e-12)
            assert jet_field(trees, "parent", j)[-1] == -1
            assert trees.root[j] == 2 * n - 2


def test_parent_and_children_agree(jets):
    trees = build_trees(jets, "cambridge")
    rows = trees.node_jet
    internal = np.flatnonzero(~trees.is_leaf)
    for child in ("left", "right"):
        kids = trees.to_global(getattr(trees, child)[internal], rows[internal])
        assert np.array_equal(trees.to_global(trees.parent[kids], rows[kids]), internal)
    # every non-root node is the child of exactly one node
    assert np.sum(trees.parent == -1) == np.sum(COUNTS > 0)


@pytest.mark.parametrize("algorithm", ["kt", "cambridge"])
@pytest.mark.parametrize("n_subjets", [1, 2, 3, 5])
def test_cut_reproduces_fastjet_exclusive_jets(jets, algorithm, n_subjets):
    trees = build_trees(jets, algorithm)
    filled = COUNTS > 0
    theirs = exclusive_jets_up_to(cluster(jets[filled], algorithm), n_subjets)
    cut = trees.cut(n_subjets)
    assert ak.num(cut)[~filled].tolist() == [0]
    assert ak.num(cut)[filled].tolist() == np.minimum(COUNTS[filled], n_subjets).tolist()
    for j, ref in zip(np.flatnonzero(filled), theirs, strict=True):
        ref = np.array([[p["px"], p["py"], p["pz"], p["E"]] for p in ref.tolist()])
        mine = node_p4(trees, j)[np.asarray(cut[j])]
        # the same pseudojets, bit for bit, in any order
        assert np.array_equal(mine[np.lexsort(mine.T)], ref[np.lexsort(ref.T)])


def reference_orders(left: np.ndarray, right: np.ndarray, root: int) -> tuple[list, list]:
    """Pre-order (node, left subtree, right subtree) by recursion and level order by a queue."""
    pre: list[int] = []

    def visit(node: int) -> None:
        pre.append(node)
        if left[node] >= 0:
            visit(left[node])
            visit(right[node])

    visit(root)
    level, queue = [], deque([root])
    while queue:
        node = queue.popleft()
        level.append(node)
        if left[node] >= 0:
            queue.extend([left[node], right[node]])
    return pre, level


@pytest.mark.parametrize("algorithm", ["kt", "cambridge"])
def test_root_splitting_distance_is_fastjets_last_merge_and_branches_are_ordered(jets,
                                                                               algorithm):
    two = jets[jets.n_particles >= 2]  # a splitting needs two particles
    trees = build_trees(two, algorithm)
    root = trees.to_global(trees.root, np.arange(len(trees)))
    a, b = trees.children(root)
    last_merge = np.asarray(cluster(two, algorithm, MAX_R, "E").exclusive_dmerge(1))
    np.testing.assert_allclose(pair_distance(trees.p4[a], trees.p4[b], algorithm) / MAX_R**2,
                               last_merge, rtol=1e-9)
    internal = np.flatnonzero(~trees.is_leaf & (trees.parent >= 0))
    up = trees.to_global(trees.parent[internal], trees.node_jet[internal])
    d_node = pair_distance(*(trees.p4[c] for c in trees.children(internal)), algorithm)
    d_up = pair_distance(*(trees.p4[c] for c in trees.children(up)), algorithm)
    # the closest pair merges first; merged E-scheme axes move, so C/A's Delta R is not
    # strictly ordered (here 97 %)
    assert np.mean(d_node < d_up) > (0.99 if algorithm == "kt" else 0.95)


@pytest.mark.parametrize("algorithm", ["kt", "antikt"])
def test_depth_and_breadth_first_orders_match_slow_reference(jets, algorithm):
    trees = build_trees(jets, algorithm)
    depth_first, breadth_first = trees.depth_first_order(), trees.breadth_first_order()
    depth = trees.ragged(trees.depth)
    primary = trees.ragged(trees.is_primary)
    for j, n in enumerate(COUNTS):
        if n == 0:
            assert len(depth_first[j]) == len(breadth_first[j]) == 0
            continue
        left, right = jet_field(trees, "left", j), jet_field(trees, "right", j)
        pre, level = reference_orders(left, right, int(trees.root[j]))
        assert depth_first[j].tolist() == pre
        assert breadth_first[j].tolist() == level
        assert sorted(pre) == list(range(2 * n - 1))
        # primary branch: root, its harder child, ... down to a leaf
        walk = [int(trees.root[j])]
        while left[walk[-1]] >= 0:
            walk.append(int(left[walk[-1]]))
        assert np.flatnonzero(np.asarray(primary[j])).tolist() == sorted(walk)
        assert np.asarray(depth[j])[walk].tolist() == list(range(len(walk)))


def test_wta_nodes_take_the_harder_childs_direction(jets):
    trees = build_trees(jets, "cambridge", "WTA_pt")
    internal = np.flatnonzero(~trees.is_leaf)
    left, right = trees.children(internal)
    pt, y, phi = trees.pt, trees.rapidity, trees.phi
    np.testing.assert_allclose(pt[internal], pt[left] + pt[right], rtol=1e-13)
    np.testing.assert_allclose(y[internal], y[left], atol=1e-12)
    np.testing.assert_allclose(kin.delta_phi(phi[internal], phi[left]), 0, atol=1e-12)
    assert np.all(pt[left] >= pt[right])
    # WTA nodes are not four-momentum sums (that would be the E-scheme)
    assert np.abs(trees.p4[internal] - trees.p4[left] - trees.p4[right]).max() > 1e-3


def test_one_and_two_constituents():
    batch = JetBatch.from_ptetaphi([[50.0], [30.0, 120.0], []], [[0.1], [0.2, 0.3], []],
                                   [[0.5], [1.0, 1.2], []], 0.0)
    trees = build_trees(batch)
    assert trees.n_nodes.tolist() == [1, 3, 0]
    assert trees.root.tolist() == [0, 2, -1]
    assert trees.parent.tolist() == [-1, 2, 2, -1]
    # jet 1: the harder child (120 GeV, constituent 1) is the left one
    assert trees.left.tolist() == [-1, -1, -1, 1] and trees.right.tolist() == [-1, -1, -1, 0]
    assert trees.cut(2).tolist() == [[0], [0, 1], []]
    assert trees.depth_first_order().tolist() == [[0], [2, 1, 0], []]
    assert trees.breadth_first_order().tolist() == [[0], [2, 1, 0], []]


def test_several_inclusive_jets_keep_the_hardest_and_are_counted():
    others = random_jets(3, seed=1, counts=np.array([5, 9, 4]))
    others = JetBatch(others.particles[["px", "py", "pz", "energy"]])
    batch = JetBatch.concatenate([two_prongs(), others])
    one = build_trees(batch)  # default R = max_allowable_R: always one tree
    assert one.n_inclusive.tolist() == [1, 1, 1, 1] and one.report.n_removed == 0
    trees = build_trees(batch, "kt", r=0.8)
    assert trees.n_inclusive.tolist() == [2, 1, 1, 1]
    assert trees.n_leaves.tolist() == [6, 5, 9, 4]
    report = trees.report
    assert (report.n_before, report.n_after, report.n_removed) == (30, 24, 6)
    # the kept tree is FastJet's hardest inclusive jet, with the hard prong's constituents
    inclusive = cluster(batch[:1], "kt", r=0.8).inclusive_jets()[0].tolist()
    assert len(inclusive) == 2
    hardest = max(inclusive, key=lambda p: np.hypot(p["px"], p["py"]))
    assert node_p4(trees, 0)[-1].tolist() == [hardest[k] for k in ("px", "py", "pz", "E")]
    assert sorted(jet_field(trees, "constituent", 0)[:6]) == list(range(6))
    assert all(check.passed is not False for check in validate_trees(trees, batch))


def test_validate_trees_passes_and_catches_a_broken_tree(jets):
    trees = build_trees(jets, "kt")
    checks = validate_trees(trees, jets)
    assert {c.name for c in checks if c.passed is False} == set()
    assert any("exclusive_jets(3)" in c.name for c in checks)
    broken = JetTrees(**{**trees.__dict__, "_cache": {}})
    broken.px = trees.px.copy()
    # the harder of the two subjets of the 40-particle jet
    subjet = trees.offsets[6] + jet_field(trees, "left", 6)[trees.root[6]]
    broken.px[subjet] += 1.0
    failed = {c.name for c in validate_trees(broken, jets) if c.passed is False}
    assert "node = sum of children (E-scheme)" in failed
    assert "cut at 2 subjets = FastJet exclusive_jets(2)" in failed


def test_bad_input_is_refused(jets):
    with pytest.raises(JetDataError, match="non-finite px"):
        build_trees(with_value(jets, 5, "px", np.nan))
    with pytest.raises(ValueError, match="unknown jet algorithm"):
        build_trees(jets, "siscone")
    with pytest.raises(ValueError, match="unknown recombination"):
        build_trees(jets, "kt", "pt_scheme")


def test_parquet_round_trip_is_exact(jets, tmp_path):
    trees = build_trees(jets, "cambridge", "WTA_pt")
    path = tmp_path / "trees.parquet"
    write_trees(trees, path)
    back = read_trees(path)
    for name in (*NODE_ARRAYS, "offsets", "jet", "n_constituents", "n_inclusive"):
        mine, theirs = getattr(trees, name), getattr(back, name)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), name
    assert (back.algorithm, back.recombination, back.r) == ("cambridge", "WTA_pt", trees.r)
    assert back.depth_first_order().tolist() == trees.depth_first_order().tolist()


def test_parquet_bad_files(jets, tmp_path):
    trees = build_trees(jets)
    path = tmp_path / "trees.parquet"
    write_trees(trees, path)
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(path.read_bytes()[:200])
    with pytest.raises(JetDataError, match="damaged.parquet: not a readable Parquet"):
        read_trees(damaged)
    table = pq.read_table(path)
    plain = tmp_path / "plain.parquet"
    pq.write_table(table.replace_schema_metadata({}), plain)
    with pytest.raises(JetDataError, match="plain.parquet: no 'jetfm_trees'"):
        read_trees(plain)
    missing = tmp_path / "missing.parquet"
    pq.write_table(table.drop(["parent"]), missing)
    with pytest.raises(JetDataError, match=r"missing.parquet: missing columns \['parent'\]"):
        read_trees(missing)
