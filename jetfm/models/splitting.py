"""The interface every splitting (jet-evolution) model implements, and trees -> jets.

A splitting model describes how a node of a declustering tree (:class:`JetTrees`) splits into
a harder and a softer child. It can

* sample the children of given internal nodes of given (true) trees, conditioned on the tree
  context the model uses (ancestors / nodes earlier in its order): :meth:`sample_children`;
* generate whole trees from root four-momenta: :meth:`generate`;
* give its own negative log-likelihood of every true splitting: :meth:`splitting_nll`.

Four-momenta are ``px, py, pz, E`` [GeV]. :func:`trees_to_jets` turns trees (true or
generated) into jets whose particles are the leaves, for the jet-level evaluation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import awkward as ak
import numpy as np

from jetfm.data.batch import MOMENTUM_FIELDS, JetBatch
from jetfm.physics.trees import JetTrees


@runtime_checkable
class SplittingModel(Protocol):
    """What :mod:`jetfm.metrics.splitting` and :mod:`jetfm.studies.evolution` need of a model."""

    def sample_children(
        self, trees: JetTrees, nodes: np.ndarray, n_samples: int, seed: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Children of internal ``nodes`` (flat node indices into ``trees``) sampled given the
        true tree context (what the model conditions on: ancestors / nodes before it in the
        model's order); returns harder, softer child four-momenta (len(nodes), n_samples, 4)
        px,py,pz,E GeV."""
        ...

    def generate(self, roots: np.ndarray, seed: int = 1) -> JetTrees:
        """Whole trees from root four-momenta (n_jets, 4) px,py,pz,E GeV, clustering-order
        convention of JetTrees (leaves first, children before parents, root last)."""
        ...

    def splitting_nll(self, trees: JetTrees) -> np.ndarray:
        """The model's own negative log-likelihood of each internal node's true splitting
        (nats), (n_internal,) in the order of np.flatnonzero(~trees.is_leaf)."""
        ...


def trees_to_jets(trees: JetTrees, label: int | np.ndarray | None = None) -> JetBatch:
    """Jets whose particles are the trees' leaves, in constituent order (``constituent``).

    ``label``: one class index for all jets, one per jet, or None (unlabelled). Jets without
    nodes give empty jets (flagged by :meth:`JetBatch.problems`, never dropped here). The
    jets' ``entry`` is the trees' ``jet`` row, so truth and generated jets line up.
    """
    leaves = np.flatnonzero(trees.is_leaf)
    jet_of = trees.node_jet[leaves]
    leaves = leaves[np.lexsort((trees.constituent[leaves], jet_of))]
    counts = np.bincount(trees.node_jet[leaves], minlength=len(trees))
    p4 = trees.p4[leaves]
    if label is not None and np.ndim(label) == 0:
        label = np.full(len(trees), int(label))
    columns = {k: ak.unflatten(p4[:, i], counts) for i, k in enumerate(MOMENTUM_FIELDS)}
    return JetBatch(ak.zip(columns), label=label, entry=trees.jet)
