"""Binary declustering trees: each jet's constituents reclustered with FastJet, kept as arrays.

One :class:`JetTrees` holds the trees of a batch of jets as flat node arrays with per-jet
offsets (ragged, like an awkward ``ListOffsetArray``). Per jet the nodes are in **clustering
order**: the leaves (constituents, in their order in the jet) first, then the internal nodes in
the order FastJet created them; so children come before parents and the root (the jet) is the
last node. Node indices in ``left``, ``right``, ``parent`` are local to the jet (0 = its first
node, -1 = none). ``left`` is the harder child (larger pT; FastJet's first parent on a tie),
``right`` the softer one. Momenta are FastJet's pseudojets: ``px, py, pz, energy`` [GeV]; with
E-scheme recombination each internal node is the four-momentum sum of its children, with WTA_pt
it has the pT sum and the rapidity, azimuth and mass of the harder child.

How the trees are built, in bulk for a whole batch without a per-node Python loop: fastjet's
awkward ``ClusterSequence`` gives per jet ``jets()`` (all pseudojets: the n constituents, then
one per pairwise merge) and ``unique_history_order()`` (the history indices in post-order:
each tree's nodes after their parents' subtrees, trees one after the other, each closed by its
merge with the beam). Reading that post-order with a stack height (+1 per leaf, -1 otherwise)
identifies the beam merges (height back to 0) and, for each pairwise merge, its two children
(the previous entry and the last earlier entry one level lower).

Several inclusive jets: with a radius ``r`` below the jet's size FastJet may end with several
inclusive jets (~0.3 % of R = 0.8 jets with E-scheme, ~3 % with WTA). The default ``r`` is
FastJet's ``max_allowable_R``, where every jet gives exactly one tree, except that beam-axis
particles (pT = 0, E <= |pz|: rapidity capped at +-(1e5 + |pz|), see
:mod:`jetfm.physics.kinematics`) are out of reach of every real particle and end in inclusive
jets of their own. Otherwise the tree of the hardest inclusive jet is kept; ``n_inclusive``
counts the inclusive jets of every jet and :attr:`JetTrees.report` counts the constituents left
outside the kept trees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import awkward as ak
import fastjet
import numpy as np
from tqdm.auto import tqdm

from jetfm.data.batch import JetBatch, SelectionReport
from jetfm.physics import kinematics as kin
from jetfm.physics.clustering import (
    MAX_R,
    cluster,
    constituents_p4,
    exclusive_jets_up_to,
    jet_definition,
)
from jetfm.physics.observables import CHUNK_JETS

NODE_ARRAYS: tuple[str, ...] = (
    "px",
    "py",
    "pz",
    "energy",
    "left",
    "right",
    "parent",
    "constituent",
)


@dataclass
class JetTrees:
    """Declustering trees of a batch of jets (see the module docstring for conventions).

    Node arrays (all jets' nodes one after the other; jet i owns ``offsets[i]:offsets[i+1]``):
    ``px, py, pz, energy`` [GeV] float64; ``left``, ``right`` (harder, softer child),
    ``parent`` local int64 indices, -1 for none; ``constituent``: index of the leaf's particle
    in its jet, -1 for internal nodes. Per jet: ``jet`` (row in the source :class:`JetBatch`),
    ``n_constituents`` (particles in the jet), ``n_inclusive`` (FastJet inclusive jets; the
    hardest one's tree is kept). Empty jets have no nodes (root -1). Traversal results are
    cached: treat the arrays as read-only.
    """

    offsets: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    left: np.ndarray
    right: np.ndarray
    parent: np.ndarray
    constituent: np.ndarray
    jet: np.ndarray
    n_constituents: np.ndarray
    n_inclusive: np.ndarray
    algorithm: str = "kt"
    recombination: str = "E"
    r: float = MAX_R
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ shape
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_nodes(self) -> np.ndarray:
        """Nodes per jet, (n_jets,) int64."""
        return np.diff(self.offsets)

    @property
    def n_leaves(self) -> np.ndarray:
        """Leaves (constituents in the kept tree) per jet, (n_jets,) int64."""
        return (self.n_nodes + 1) // 2

    @property
    def root(self) -> np.ndarray:
        """Local index of each jet's root, (n_jets,); -1 for jets without constituents."""
        return self.n_nodes - 1

    @property
    def node_jet(self) -> np.ndarray:
        """Jet row (0 .. n_jets-1 in this object) of every node, (n_nodes_total,)."""
        return np.repeat(np.arange(len(self)), self.n_nodes)

    @property
    def local_index(self) -> np.ndarray:
        """Index of every node inside its jet, (n_nodes_total,)."""
        return np.arange(len(self.px)) - np.repeat(self.offsets[:-1], self.n_nodes)

    def to_global(self, local: np.ndarray, jet_row: np.ndarray) -> np.ndarray:
        """Flat node index of local indices ``local`` in jets ``jet_row``; -1 stays -1."""
        return np.where(local >= 0, local + self.offsets[:-1][jet_row], -1)

    def ragged(self, values: np.ndarray) -> ak.Array:
        """A per-node flat array as (n_jets, var) awkward array."""
        return ak.unflatten(values, self.n_nodes)

    @property
    def report(self) -> SelectionReport:
        """Constituents kept in the trees (all unless a jet had several inclusive jets)."""
        n_before = int(self.n_constituents.sum())
        n_after = int(self.n_leaves.sum())
        several = int((self.n_inclusive > 1).sum())
        return SelectionReport(
            f"trees ({self.algorithm}, {self.recombination}, R={self.r:g}): constituents",
            n_before,
            n_after,
            {f"outside the hardest inclusive jet ({several} jets had several)": n_before - n_after},
        )

    # ------------------------------------------------------------------ node kinematics
    @property
    def is_leaf(self) -> np.ndarray:
        return self.constituent >= 0

    @property
    def pt(self) -> np.ndarray:
        """Node pT [GeV]."""
        return kin.pt(self.px, self.py)

    @property
    def rapidity(self) -> np.ndarray:
        """Node rapidity y (FastJet's ``PseudoJet::rap``)."""
        return kin.rapidity(self.energy, self.pz, self.px, self.py)

    @property
    def phi(self) -> np.ndarray:
        """Node azimuth in (-pi, pi] [rad]."""
        return kin.phi(self.px, self.py)

    @property
    def mass(self) -> np.ndarray:
        """Node mass [GeV] (negative m^2 from rounding gives -sqrt|m^2|)."""
        return kin.mass(self.energy, self.px, self.py, self.pz)

    @property
    def p4(self) -> np.ndarray:
        """(n_nodes_total, 4) px, py, pz, E [GeV]."""
        return np.stack([self.px, self.py, self.pz, self.energy], axis=1)

    # ------------------------------------------------------------------ traversal
    def _internal_by_step(self) -> list[np.ndarray]:
        """Flat indices of the internal nodes created at merge step s, for every s (all jets at
        once); children are always created at earlier steps."""
        n_leaves = self.n_leaves
        return [
            self.offsets[:-1][n_leaves > s + 1] + n_leaves[n_leaves > s + 1] + s
            for s in range(int(n_leaves.max(initial=1)) - 1)
        ]

    def children(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of the (harder, softer) children of the flat internal nodes ``nodes``."""
        if "start" not in self._cache:  # first flat index of every node's jet
            self._cache["start"] = np.repeat(self.offsets[:-1], self.n_nodes)
        start = self._cache["start"][nodes]
        return self.left[nodes] + start, self.right[nodes] + start

    @property
    def subtree_size(self) -> np.ndarray:
        """Nodes in the subtree of every node (itself included), (n_nodes_total,)."""
        if "size" not in self._cache:
            size = np.ones(len(self.px), dtype=np.int64)
            for nodes in self._internal_by_step():
                left, right = self.children(nodes)
                size[nodes] = 1 + size[left] + size[right]
            self._cache["size"] = size
        return self._cache["size"]

    def _top_down(self) -> tuple[np.ndarray, np.ndarray]:
        """(depth, pre-order position) of every node; root depth 0, harder child first."""
        if "depth" not in self._cache:
            depth = np.zeros(len(self.px), dtype=np.int64)
            preorder = np.zeros(len(self.px), dtype=np.int64)
            size = self.subtree_size
            for nodes in reversed(self._internal_by_step()):
                left, right = self.children(nodes)
                depth[left] = depth[right] = depth[nodes] + 1
                preorder[left] = preorder[nodes] + 1
                preorder[right] = preorder[nodes] + 1 + size[left]
            self._cache["depth"], self._cache["preorder"] = depth, preorder
        return self._cache["depth"], self._cache["preorder"]

    @property
    def depth(self) -> np.ndarray:
        """Depth of every node (root 0), (n_nodes_total,)."""
        return self._top_down()[0]

    @property
    def is_primary(self) -> np.ndarray:
        """Nodes on the primary branch: the root and, recursively, harder children."""
        depth, preorder = self._top_down()
        return depth == preorder

    def _order(self, *keys: np.ndarray) -> ak.Array:
        order = np.lexsort((*keys, self.node_jet))
        return self.ragged(order - (np.arange(len(self.px)) - self.local_index))

    def depth_first_order(self) -> ak.Array:
        """Local node indices in pre-order (node, harder subtree, softer subtree), (n_jets, var)."""
        return self._order(self._top_down()[1])

    def breadth_first_order(self) -> ak.Array:
        """Local node indices level by level from the root, harder before softer, (n_jets, var)."""
        depth, preorder = self._top_down()
        return self._order(preorder, depth)

    def cut(self, n_subjets: int) -> ak.Array:
        """Local indices of the subjets left after undoing the last ``n_subjets - 1`` merges,
        (n_jets, min(n_subjets, n_leaves)), in clustering order.

        For trees of kt or C/A with ``r = max_allowable_R`` these are FastJet's
        ``exclusive_jets(n_subjets)``; jets with fewer leaves give all their leaves.
        """
        if n_subjets < 1:
            raise ValueError(f"n_subjets must be >= 1, got {n_subjets}")
        local = self.local_index
        first_undone = np.maximum(2 * self.n_leaves - n_subjets, self.n_leaves)
        first_undone = np.repeat(first_undone, self.n_nodes)
        keep = (local < first_undone) & ((self.parent >= first_undone) | (self.parent < 0))
        return ak.unflatten(local[keep], np.bincount(self.node_jet[keep], minlength=len(self)))

    # ------------------------------------------------------------------ construction
    def select(self, rows: np.ndarray) -> JetTrees:
        """The trees of jets ``rows`` (integer indices into this object), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.n_nodes[rows]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        nodes = np.arange(offsets[-1]) + np.repeat(self.offsets[rows] - offsets[:-1], counts)
        return JetTrees(
            offsets=offsets,
            **{k: getattr(self, k)[nodes] for k in NODE_ARRAYS},
            **{k: getattr(self, k)[rows] for k in ("jet", "n_constituents", "n_inclusive")},
            algorithm=self.algorithm,
            recombination=self.recombination,
            r=self.r,
        )

    @staticmethod
    def concatenate(parts: Sequence[JetTrees]) -> JetTrees:
        """Join trees built with the same jet definition; ``jet`` rows are kept as they are."""
        if not parts:
            raise ValueError("concatenate needs at least one JetTrees")
        definition = {(p.algorithm, p.recombination, p.r) for p in parts}
        if len(definition) > 1:
            raise ValueError(f"cannot concatenate trees of different definitions {definition}")
        counts = np.concatenate([p.n_nodes for p in parts])
        per_node = {k: np.concatenate([getattr(p, k) for p in parts]) for k in NODE_ARRAYS}
        per_jet = {
            k: np.concatenate([getattr(p, k) for p in parts])
            for k in ("jet", "n_constituents", "n_inclusive")
        }
        return JetTrees(
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            **per_node,
            **per_jet,
            algorithm=parts[0].algorithm,
            recombination=parts[0].recombination,
            r=parts[0].r,
        )


def _exclusive_cumsum(flags: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per-element count of true ``flags`` before it in its segment (``start``: the index of
    each element's segment start)."""
    total = np.cumsum(flags) - flags
    return total - total[start]


def _trees_of_chunk(
    batch: JetBatch, rows: np.ndarray, algorithm: str, r: float, recombination: str, origin: str
) -> JetTrees:
    """Trees of the jets ``rows`` of ``batch`` from one bulk FastJet clustering.

    Entries of FastJet's history are addressed by their post-order position (``pos``) and by
    their ``slot`` = jet start + history index (leaves first, then merges in clustering order).
    """
    jets = batch[rows]
    n_const = jets.n_particles
    sequence = fastjet.ClusterSequence(
        constituents_p4(jets, origin), jet_definition(algorithm, r, recombination)
    )
    hist = ak.to_numpy(ak.flatten(sequence.unique_history_order())).astype(np.int64)
    all_jets = sequence.jets()
    n_pseudojets = ak.to_numpy(ak.num(all_jets))
    pseudojets = ak.flatten(all_jets)
    if len(hist) != 2 * n_const.sum():
        raise RuntimeError("FastJet's history does not have 2 n entries per jet")
    size = len(hist)
    event = np.repeat(np.arange(len(jets)), 2 * n_const)
    start = np.repeat(np.cumsum(2 * n_const) - 2 * n_const, 2 * n_const)
    slot = start + hist
    leaf = hist < n_const[event]
    # Post-order stack: a leaf pushes, a pairwise merge pops two and pushes one, a beam merge
    # pops the finished tree, so the stack height returns to 0 exactly at the beam merges.
    height = np.cumsum(np.where(leaf, 1, -1))
    beam = ~leaf & (height == 0)
    merge = ~leaf & ~beam
    # Children of the merge at position k: k - 1 and the last earlier position one level lower.
    at = np.flatnonzero(merge)
    by_height = np.argsort(height, kind="stable")
    key = height[by_height] * size + by_height
    lower = height[at - 1] - 1
    left_pos = by_height[np.searchsorted(key, lower * size + at - 1) - 1]
    right_pos = at - 1
    # Index in jets(): constituents keep their own, merges follow in clustering order.
    merge_slot = np.zeros(size, dtype=bool)
    merge_slot[slot[merge]] = True
    jet_local = np.where(leaf, hist, n_const[event] + _exclusive_cumsum(merge_slot, start)[slot])
    jets_start = np.repeat(np.cumsum(n_pseudojets) - n_pseudojets, 2 * n_const)
    pseudojet = np.where(beam, 0, jets_start + jet_local)
    px, py = (ak.to_numpy(pseudojets[f]) for f in ("px", "py"))
    pt2 = px[pseudojet] ** 2 + py[pseudojet] ** 2
    # One tree per beam merge (its root is the entry before it); keep each jet's hardest.
    tree = np.cumsum(beam) - beam
    roots = np.flatnonzero(beam) - 1
    n_inclusive = np.bincount(event[roots], minlength=len(jets))
    by_pt = np.lexsort((-pt2[roots], event[roots]))
    first = np.diff(event[roots][by_pt], prepend=-1) != 0
    hardest = np.full(len(jets), -1)
    hardest[event[roots][by_pt][first]] = by_pt[first]
    kept = ~beam & (tree == hardest[event])
    # New node index: kept entries in slot order (leaves, then merges in clustering order).
    kept_slot = np.zeros(size, dtype=bool)
    kept_slot[slot[kept]] = True
    counts = np.bincount(event[kept], minlength=len(jets))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    local = _exclusive_cumsum(kept_slot, start)[slot]
    node_pos = np.empty(int(counts.sum()), dtype=np.int64)
    node_pos[(offsets[event] + local)[kept]] = np.flatnonzero(kept)
    # Harder child (larger pT) to the left; FastJet's order on a tie.
    swap = pt2[right_pos] > pt2[left_pos]
    left_pos, right_pos = np.where(swap, right_pos, left_pos), np.where(swap, left_pos, right_pos)
    left = np.full(size, -1)
    right = np.full(size, -1)
    parent = np.full(size, -1)
    left[at], right[at] = local[left_pos], local[right_pos]
    parent[left_pos] = parent[right_pos] = local[at]
    row = pseudojet[node_pos]
    trees = JetTrees(
        offsets=offsets,
        px=px[row],
        py=py[row],
        pz=ak.to_numpy(pseudojets["pz"])[row],
        energy=ak.to_numpy(pseudojets["E"])[row],
        left=left[node_pos],
        right=right[node_pos],
        parent=parent[node_pos],
        constituent=np.where(leaf, hist, -1)[node_pos],
        jet=rows.astype(np.int64),
        n_constituents=n_const,
        n_inclusive=n_inclusive.astype(np.int64),
        algorithm=algorithm,
        recombination=recombination,
        r=float(r),
    )
    return _fill_wta_beam_merges(trees)


def _fill_wta_beam_merges(trees: JetTrees) -> JetTrees:
    """FastJet's WTA_pt merge of two pT = 0 (beam-axis) momenta is NaN (pT 0 at rapidity 1e5:
    0 * sinh(1e5)); such a node gets its harder child's four-momentum, which is what WTA_pt
    gives for any merge with a pT = 0 softer child (pT sum, direction and mass of the harder).
    Only jets whose kept tree has two beam-axis particles merged reach this."""
    if trees.recombination != "WTA_pt" or np.isfinite(trees.energy).all():
        return trees
    for nodes in trees._internal_by_step():  # children are filled before their parents
        bad = nodes[~(np.isfinite(trees.energy[nodes]) & np.isfinite(trees.pz[nodes]))]
        harder = trees.children(bad)[0]
        for name in ("px", "py", "pz", "energy"):
            getattr(trees, name)[bad] = getattr(trees, name)[harder]
    return trees


def build_trees(
    batch: JetBatch,
    algorithm: str = "kt",
    recombination: str = "E",
    r: float = MAX_R,
    origin: str = "<memory>",
) -> JetTrees:
    """Recluster every jet's constituents into a binary tree (see the module docstring).

    ``algorithm``: ``"kt"``, ``"cambridge"`` or ``"antikt"``; ``recombination``: ``"E"`` or
    ``"WTA_pt"``; ``r`` in (rapidity, phi). Jets go through FastJet :data:`CHUNK_JETS` at a
    time with a progress bar. Raises :class:`jetfm.data.JetDataError` naming ``origin`` for
    non-finite momenta.
    """
    jet_definition(algorithm, r, recombination)  # validates the names and the radius first
    starts = range(0, max(len(batch), 1), CHUNK_JETS)
    parts = [
        _trees_of_chunk(
            batch, np.arange(s, min(s + CHUNK_JETS, len(batch))), algorithm, r, recombination,
            origin,
        )
        for s in tqdm(starts, desc="trees", unit="chunk", disable=len(starts) < 2)
    ]
    return JetTrees.concatenate(parts)


# ---------------------------------------------------------------------- validation
@dataclass
class TreeCheck:
    """One validation result: ``passed`` is None for a count that is reported, not checked."""

    name: str
    passed: bool | None
    detail: str

    def __str__(self) -> str:
        status = {True: "PASS", False: "FAIL", None: "INFO"}[self.passed]
        return f"[{status}] {self.name}: {self.detail}"


def _sorted_rows(p4: np.ndarray, group: np.ndarray) -> np.ndarray:
    """(n, 4) momenta sorted by (group, E, px): a canonical order for comparing sets."""
    return p4[np.lexsort((p4[:, 0], p4[:, 3], group))]


def validate_trees(
    trees: JetTrees, batch: JetBatch, n_subjets: Sequence[int] = (2, 3), rtol: float = 1e-12
) -> list[TreeCheck]:
    """Check ``trees`` against the jets they were built from; results as data.

    Checks: leaves are the constituents (exact); node count 2n - 1; E-scheme: every internal
    node equals the sum of its children (max |difference| / root energy <= ``rtol``); WTA_pt:
    pT is the children's sum and (y, phi) the harder child's; depth- and breadth-first orders
    visit every node once, parents first; for kt and C/A at ``max_allowable_R``, cutting at n
    subjets gives FastJet's ``exclusive_jets(n)`` (compared on jets with one inclusive jet).
    Also reports the jets with several inclusive jets and the constituents outside the kept
    trees.
    """
    checks: list[TreeCheck] = []
    jets = batch[trees.jet]
    leaf = trees.is_leaf
    constituents = ak.flatten(constituents_p4(jets))
    first = np.repeat(np.concatenate([[0], np.cumsum(jets.n_particles)[:-1]]), trees.n_nodes)
    source = (first + trees.constituent)[leaf]
    expected = np.stack([ak.to_numpy(constituents[f])[source] for f in ("px", "py", "pz", "E")], 1)
    checks.append(
        TreeCheck(
            "leaves are the constituents",
            bool(np.array_equal(trees.p4[leaf], expected)),
            f"{int(leaf.sum())} leaves compared exactly",
        )
    )
    filled = trees.n_nodes > 0
    good = trees.n_nodes[filled] == 2 * trees.n_leaves[filled] - 1
    checks.append(
        TreeCheck("node count = 2n - 1", bool(good.all()), f"{int((~good).sum())} jets differ")
    )
    internal = np.flatnonzero(~leaf)
    left, right = trees.children(internal)
    root_energy = np.full(len(trees), np.nan)
    rows = np.flatnonzero(filled)
    root_energy[rows] = trees.energy[trees.to_global(trees.root[rows], rows)]
    scale = root_energy[trees.node_jet[internal]]
    if trees.recombination == "E":
        diff = np.abs(trees.p4[internal] - trees.p4[left] - trees.p4[right]).max(axis=1, initial=0)
        worst = float((diff / scale).max(initial=0.0))
        checks.append(
            TreeCheck(
                "node = sum of children (E-scheme)",
                worst <= rtol,
                f"max |node - children| / E_jet = {worst:.2e} over {len(internal)} nodes",
            )
        )
    else:
        pt, y, phi = trees.pt, trees.rapidity, trees.phi
        dpt = float((np.abs(pt[internal] - pt[left] - pt[right]) / scale).max(initial=0.0))
        dangle = np.hypot(y[internal] - y[left], kin.delta_phi(phi[internal], phi[left]))
        worst = float(dangle.max(initial=0.0))
        checks.append(
            TreeCheck(
                "WTA: pT sum, harder child's direction",
                dpt <= rtol and worst <= 1e-9,
                f"max |dpT| / E_jet = {dpt:.2e}, max direction offset = {worst:.2e} rad",
            )
        )
    for name, order in (
        ("depth-first", trees.depth_first_order()),
        ("breadth-first", trees.breadth_first_order()),
    ):
        flat = trees.to_global(ak.to_numpy(ak.flatten(order)), trees.node_jet)
        position = np.empty(len(flat), dtype=np.int64)
        position[flat] = np.arange(len(flat))
        has_parent = trees.parent >= 0
        parent = trees.to_global(trees.parent, trees.node_jet)[has_parent]
        once = np.array_equal(np.sort(flat), np.arange(len(trees.px)))
        parents_first = bool(np.all(position[parent] < position[has_parent]))
        checks.append(
            TreeCheck(
                f"{name} order: every node once, parents first",
                once and parents_first,
                f"{len(flat)} nodes",
            )
        )
    if trees.algorithm in ("kt", "cambridge") and trees.r == MAX_R:
        # FastJet's exclusive jets count the other inclusive jets (beam-axis particles) too
        filled = filled & (trees.n_inclusive == 1)
        sequence = cluster(jets[filled], trees.algorithm, MAX_R, trees.recombination)
        for n in n_subjets:
            theirs = exclusive_jets_up_to(sequence, n)
            reference = np.stack(
                [ak.to_numpy(ak.flatten(theirs[f])) for f in ("px", "py", "pz", "E")], 1
            )
            group_ref = np.repeat(np.arange(len(theirs)), ak.to_numpy(ak.num(theirs)))
            cut = trees.cut(n)[filled]
            rows = np.repeat(np.flatnonzero(filled), ak.to_numpy(ak.num(cut)))
            mine = trees.p4[trees.to_global(ak.to_numpy(ak.flatten(cut)), rows)]
            group = np.repeat(np.arange(len(cut)), ak.to_numpy(ak.num(cut)))
            same = len(mine) == len(reference) and np.array_equal(
                _sorted_rows(mine, group), _sorted_rows(reference, group_ref)
            )
            checks.append(
                TreeCheck(
                    f"cut at {n} subjets = FastJet exclusive_jets({n})",
                    bool(same),
                    f"{len(cut)} jets compared exactly",
                )
            )
    several = int((trees.n_inclusive > 1).sum())
    checks.append(
        TreeCheck(
            "jets with several inclusive jets",
            None,
            f"{several} / {len(trees)}; {trees.report}",
        )
    )
    return checks
