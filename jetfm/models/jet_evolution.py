r"""A jet-evolution generator: declustering trees grown top-down, depth-first, one node at a time.

A jet's kt (or C/A, anti-kt; E-scheme) tree is read in depth-first pre-order (node, harder
subtree, softer subtree). Every node enters a causal transformer (:mod:`jetfm.nn.transformer`)
as its kinematics relative to the root and its parent plus its tree position (depth, harder
or softer child), so the context of a node is the root and everything generated before it:
its ancestors, its ancestors' harder subtrees and their kinematics. From the node's context
the model gives

* a split probability (Bernoulli; a node that does not split is a leaf, a particle);
* if it splits, the density of its splitting in the unconstrained coordinates of
  :mod:`jetfm.physics.splitting` (``logit r1, logit r2, logit (1 + cos theta*)/2, phi*``),
  autoregressively: a Gaussian mixture for each of the first three given the context and the
  previous coordinates, a von Mises mixture for ``phi*`` (as JetGPT, arXiv:2305.10475).

The children follow from the parent's four-momentum and mass exactly
(:func:`jetfm.physics.splitting.split`): four-momentum is conserved at every node, children
masses are physical, and the generated jet's four-momentum is the root's. Child 1 of the
parametrisation is the harder child of the tree; a sampled splitting whose child 1 comes out
softer (in pT) is relabelled and counted.

Clustering order (``EvolutionConfig.ordered``): a kt or C/A tree merges the closest pair first,
so along every branch a splitting's distance (:func:`jetfm.physics.clustering.pair_distance`)
lies below its parent's (kt trees of generated top jets: all but ~0.2 % of splittings; C/A's
Delta R, with E-scheme axes moving as they merge, ~97 % in the tests' random jets). The
network alone breaks this in ~11 % of its splittings, and reclustering such jets regroups the
particles (the W-like subjet of a top jet loses mass to its sibling). With ``ordered`` a
splitting at or above its parent's distance is redrawn from the model (at most MAX_REDRAWS
times, else the node stays a leaf, counted): the splitting density is the network's restricted
to the ordered region, the same in generation and in :meth:`JetEvolutionModel.sample_children`.

Generation is batched: a stack per jet, one node per jet per step, a KV cache; the caps on
nodes and depth (forced leaves) and massless nodes that cannot split are counted in
:class:`GenerationReport`.

The model implements :class:`jetfm.models.splitting.SplittingModel`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from jetfm.checkpoint import load_model, save_model
from jetfm.data.batch import JetDataError
from jetfm.nn.transformer import MLP, Block, KVCache
from jetfm.physics import kinematics as kin
from jetfm.physics import splitting as sp
from jetfm.physics.clustering import pair_distance
from jetfm.physics.trees import JetTrees

N_FEATURES = 13
MODEL_KIND = "jet_evolution"
SIGMA_MIN = 0.02  # smallest Gaussian width in the unconstrained coordinates
MASS_MIN = 1e-6  # GeV; a lighter node cannot split (its rest frame is ill-defined)
MAX_REDRAWS = 20  # draws of a splitting that breaks the clustering order before giving up


@dataclass
class EvolutionConfig:
    """Size of the model and the generation caps."""

    dim: int = 64
    n_blocks: int = 3
    n_heads: int = 4
    n_components: int = 8  # mixture components per splitting coordinate
    max_depth: int = 48  # depth embedding size; generation caps the depth here (forced leaf)
    max_nodes: int = 511  # node cap per generated tree (forced leaves beyond)
    dropout: float = 0.0
    ordered: bool = True  # splittings respect the clustering order (module docstring)


@dataclass
class Encoded:
    """Trees as padded pre-order sequences (n_jets, length): ``features`` (..., N_FEATURES),
    ``depth``, ``soft`` (1 for the softer child), ``split`` (1 for internal nodes), ``u``
    (..., 4) unconstrained splitting coordinates (0 for leaves), ``mask`` (real nodes), and
    ``node`` (flat node index into the trees, -1 for padding)."""

    features: np.ndarray
    depth: np.ndarray
    soft: np.ndarray
    split: np.ndarray
    u: np.ndarray
    mask: np.ndarray
    node: np.ndarray
    n_clipped: int = 0  # unconstrained coordinates clipped into [EPS, 1 - EPS]
    n_negative_m2: int = 0  # children with m^2 < 0 from float32 rounding, taken as massless

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The training tensors' arrays, in the order :meth:`JetEvolution.loss` takes them."""
        return self.features, self.depth, self.soft, self.split, self.u, self.mask


@dataclass
class GenerationReport:
    """What generation forced or changed, counted over all generated trees."""

    n_jets: int = 0
    n_nodes: int = 0
    forced_leaves_node_cap: int = 0
    forced_leaves_depth_cap: int = 0
    forced_leaves_ordering: int = 0  # every draw broke the clustering order
    massless_leaves: int = 0  # nodes lighter than MASS_MIN, which cannot split
    relabelled: int = 0  # splittings whose child 1 came out softer, children swapped
    redrawn: int = 0  # draws rejected for breaking the clustering order
    steps: int = 0

    def __str__(self) -> str:
        return (f"generated {self.n_jets} trees, {self.n_nodes} nodes in {self.steps} steps; "
                f"forced leaves: node cap {self.forced_leaves_node_cap}, depth cap "
                f"{self.forced_leaves_depth_cap}, clustering order "
                f"{self.forced_leaves_ordering}; massless nodes {self.massless_leaves}; "
                f"children relabelled by pT {self.relabelled}; draws redrawn for the "
                f"clustering order {self.redrawn}")


def node_features(p4: np.ndarray, mass: np.ndarray, root: np.ndarray, parent: np.ndarray,
                  sibling: np.ndarray) -> np.ndarray:
    """(n, N_FEATURES) inputs of nodes ``p4`` (n, 4) with masses [GeV], given their root's,
    parent's and sibling's four-momenta (n, 4; a root is its own parent and sibling):
    log E/E_root, log pT/pT_root, y - y_root, phi - phi_root, log(m/E_root + 1e-4),
    log(m/pT + 1e-4) (the node's own angular scale), log E/E_parent, the root's log m/pT and
    log(pT / 500 GeV), and where the sibling lies (0 for the root): log Delta R to it, the
    direction (cos, sin) to it in the (y, phi) plane, and log pT_sibling/pT. Particles that
    the clustering would give to the sibling's subtree must not be emitted in this one."""
    def pt(p: np.ndarray) -> np.ndarray:
        return kin.pt(p[:, 0], p[:, 1])

    def rap(p: np.ndarray) -> np.ndarray:
        return kin.rapidity(p[:, 3], p[:, 2], p[:, 0], p[:, 1])

    def phi(p: np.ndarray) -> np.ndarray:
        return kin.phi(p[:, 0], p[:, 1])

    root_mass = sp.mass_of(root)
    dy, dphi = rap(sibling) - rap(p4), kin.delta_phi(phi(sibling), phi(p4))
    delta_r = np.hypot(dy, dphi)
    has = delta_r > 0
    safe = np.where(has, delta_r, 1.0)
    return np.stack([
        np.log(p4[:, 3] / root[:, 3]),
        np.log(pt(p4) / pt(root)),
        rap(p4) - rap(root),
        kin.delta_phi(phi(p4), phi(root)),
        np.log(mass / root[:, 3] + 1e-4),
        np.log(mass / pt(p4) + 1e-4),
        np.log(p4[:, 3] / parent[:, 3]),
        np.log(root_mass / pt(root) + 1e-4),
        np.log(pt(root) / 500.0),
        np.where(has, np.log(safe), 0.0),
        dy / safe,
        dphi / safe,
        np.log(pt(sibling) / pt(p4)),
    ], axis=1)


def encode(trees: JetTrees) -> Encoded:
    """Pre-order sequences of ``trees`` (E-scheme trees only: children must sum to parents)."""
    if trees.recombination != "E":
        raise JetDataError(f"jet evolution needs E-scheme trees, got {trees.recombination!r}")
    if np.any(trees.n_nodes == 0):
        raise JetDataError(f"{int((trees.n_nodes == 0).sum())} empty tree(s) (jets without "
                           "constituents); remove them first")
    order = ak.to_numpy(ak.flatten(trees.depth_first_order()))
    node = trees.to_global(order, trees.node_jet)
    jet = trees.node_jet[node]
    root = trees.to_global(trees.root, np.arange(len(trees)))[jet]
    parent = trees.to_global(trees.parent[node], jet)
    parent = np.where(parent >= 0, parent, node)
    internal = ~trees.is_leaf[node]
    a, b = trees.children(node[internal])
    params = sp.parameters(trees.p4[a], trees.p4[b])
    # node masses: internal ones from their children (no E^2 - p^2 cancellation)
    mass = sp.mass_of(trees.p4[node])
    mass[internal] = params.mass
    u = np.zeros((len(node), 4))
    u[internal], n_clipped = sp.to_unconstrained(params)
    p4 = trees.p4
    soft = (trees.parent[node] >= 0) & (trees.right[parent] == trees.local_index[node])
    sibling = np.where(trees.parent[node] >= 0,
                       trees.to_global(np.where(soft, trees.left[parent], trees.right[parent]),
                                       jet), node)
    features = node_features(p4[node], mass, p4[root], p4[parent], p4[sibling])
    length = int(trees.n_nodes.max())
    position = np.arange(len(node)) - np.repeat(trees.offsets[:-1], trees.n_nodes)
    mask = np.zeros((len(trees), length), dtype=bool)
    mask[jet, position] = True

    def padded(values: np.ndarray, fill: float = 0) -> np.ndarray:
        out = np.full((len(trees), length, *values.shape[1:]), fill, dtype=values.dtype)
        out[jet, position] = values
        return out

    return Encoded(
        features=padded(features.astype(np.float32)),
        depth=padded(trees.depth[node]),
        soft=padded(soft.astype(np.int64)),
        split=padded(internal.astype(np.float32)),
        u=padded(u.astype(np.float32)),
        mask=mask,
        node=padded(node, -1),
        n_clipped=n_clipped,
        n_negative_m2=params.n_negative_m2,
    )


# ------------------------------------------------------------------------------ mixtures
def gaussian_mixture_nll(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x) of Gaussian mixtures ``params`` (..., 3K: logits, means, log widths)."""
    logits, mean, log_sigma = params.chunk(3, dim=-1)
    log_sigma = log_sigma.clamp(min=math.log(SIGMA_MIN), max=5.0)
    z = (x[..., None] - mean) / log_sigma.exp()
    log_p = -0.5 * z**2 - log_sigma - 0.5 * math.log(2 * math.pi)
    return -torch.logsumexp(F.log_softmax(logits, dim=-1) + log_p, dim=-1)


def _von_mises_parts(params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    logits, a, b, log_kappa = params.chunk(4, dim=-1)
    return logits, torch.atan2(b, a), log_kappa.clamp(min=-5.0, max=8.0).exp()


def von_mises_mixture_nll(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x) of von Mises mixtures ``params`` (..., 4K: logits, mu as (cos, sin)-like
    pair, log concentrations) for angles ``x`` [rad]."""
    logits, mu, kappa = _von_mises_parts(params)
    # log I0(kappa) = log(i0e(kappa)) + kappa
    log_p = (kappa * (torch.cos(x[..., None] - mu) - 1) - math.log(2 * math.pi)
             - torch.log(torch.special.i0e(kappa)))
    return -torch.logsumexp(F.log_softmax(logits, dim=-1) + log_p, dim=-1)


def _component(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    pick = (rng.random(len(logits))[:, None] > cdf).sum(axis=-1)
    return np.minimum(pick, logits.shape[-1] - 1)


def sample_gaussian_mixture(params: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    logits, mean, log_sigma = (t.double().numpy() for t in params.chunk(3, dim=-1))
    k = _component(logits, rng)
    rows = np.arange(len(k))
    sigma = np.exp(np.clip(log_sigma[rows, k], math.log(SIGMA_MIN), 5.0))
    return mean[rows, k] + sigma * rng.standard_normal(len(k))


def sample_von_mises_mixture(params: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
    logits, mu, kappa = (t.double().numpy() for t in _von_mises_parts(params))
    k = _component(logits, rng)
    rows = np.arange(len(k))
    return rng.vonmises(mu[rows, k], kappa[rows, k])


# ------------------------------------------------------------------------------ the model
class JetEvolution(nn.Module):
    """Causal transformer over pre-order tree nodes with split and splitting heads."""

    def __init__(self, config: EvolutionConfig) -> None:
        super().__init__()
        self.config = config
        d, k = config.dim, config.n_components
        self.embed = nn.Linear(N_FEATURES, d)
        self.depth_embedding = nn.Embedding(config.max_depth + 1, d)
        self.soft_embedding = nn.Embedding(2, d)
        self.blocks = nn.ModuleList(
            Block(d, config.n_heads, dropout=config.dropout) for _ in range(config.n_blocks)
        )
        self.norm = nn.LayerNorm(d)
        self.split_head = nn.Linear(d, 1)
        # coordinate i sees the context and the coordinates before it (scaled by 1/5)
        self.inputs = nn.ModuleList(nn.Linear(d + i, d) for i in range(4))
        self.mlps = nn.ModuleList(MLP(d, expansion=2) for _ in range(4))
        self.outputs = nn.ModuleList(
            nn.Linear(d, (3 if i < 3 else 4) * k) for i in range(4)
        )

    def forward(
        self,
        features: torch.Tensor,
        depth: torch.Tensor,
        soft: torch.Tensor,
        mask: torch.Tensor,
        caches: list[KVCache] | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Context (batch, n, dim) of every node; with ``caches`` the inputs are the newest
        nodes and ``mask`` covers cached + new positions."""
        depth = depth.clamp(max=self.config.max_depth)
        x = self.embed(features) + self.depth_embedding(depth) + self.soft_embedding(soft)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, mask, causal=True, cache=None if caches is None else caches[i])
            new_caches.append(cache)
        return self.norm(x), new_caches

    def mixture(self, i: int, context: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """Mixture parameters of coordinate ``i`` given the context and coordinates < i."""
        h = self.inputs[i](torch.cat([context, previous[..., :i] / 5.0], dim=-1))
        return self.outputs[i](h + self.mlps[i](h))

    def splitting_nll(self, context: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """-log p(u | context) [nats], summed over the four coordinates, (...,)."""
        nll = sum(gaussian_mixture_nll(self.mixture(i, context, u), u[..., i]) for i in range(3))
        return nll + von_mises_mixture_nll(self.mixture(3, context, u), u[..., 3])

    def loss(self, features: torch.Tensor, depth: torch.Tensor, soft: torch.Tensor,
             split: torch.Tensor, u: torch.Tensor, mask: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        """Per-node Bernoulli NLL + per-node splitting NLL [nats], averaged over real nodes."""
        context, _ = self(features, depth, soft, mask)
        logit = self.split_head(context).squeeze(-1)
        bce = F.binary_cross_entropy_with_logits(logit[mask], split[mask], reduction="sum")
        internal = mask & (split > 0)
        mixture = self.splitting_nll(context[internal], u[internal]).sum()
        n_nodes = mask.sum().clamp(min=1)
        return {"loss": (bce + mixture) / n_nodes, "split_nll": bce / n_nodes,
                "splitting_nll": mixture / internal.sum().clamp(min=1)}

    @torch.no_grad()
    def sample_u(self, context: torch.Tensor, rng: np.random.Generator) -> np.ndarray:
        """(n, 4) unconstrained splitting coordinates sampled given contexts (n, dim)."""
        u = torch.zeros(len(context), 4)
        for i in range(4):
            params = self.mixture(i, context, u)
            sampler = sample_gaussian_mixture if i < 3 else sample_von_mises_mixture
            u[:, i] = torch.as_tensor(sampler(params, rng), dtype=torch.float32)
        return u.double().numpy()


class JetEvolutionModel:
    """A trained :class:`JetEvolution` network as a :class:`SplittingModel` (numpy in/out)."""

    def __init__(self, net: JetEvolution, algorithm: str = "kt", batch_size: int = 256) -> None:
        self.net = net.eval()
        self.algorithm = algorithm
        self.batch_size = batch_size
        self.report = GenerationReport()

    @property
    def config(self) -> EvolutionConfig:
        return self.net.config

    # ---------------------------------------------------------------- files
    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        return save_model(path, self.net.state_dict(), {
            "kind": MODEL_KIND, "config": asdict(self.config), "algorithm": self.algorithm,
            "n_features": N_FEATURES, **(meta or {}),
        })

    @classmethod
    def load(cls, path: str | Path) -> JetEvolutionModel:
        tensors, meta = load_model(path)
        if meta.get("kind") != MODEL_KIND:
            raise ValueError(f"{path}: not a jet-evolution model (kind={meta.get('kind')!r})")
        if meta.get("n_features") != N_FEATURES:
            raise ValueError(f"{path}: made with {meta.get('n_features')} node features, this "
                             f"version uses {N_FEATURES}; retrain the model")
        net = JetEvolution(EvolutionConfig(**meta["config"]))
        net.load_state_dict(tensors)
        return cls(net, meta["algorithm"])

    # ---------------------------------------------------------------- true trees
    def _contexts(self, encoded: Encoded) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(flat node index, context, split logit) of every real node, in chunks of jets."""
        nodes, contexts, logits = [], [], []
        for s in range(0, len(encoded.mask), self.batch_size):
            part = slice(s, s + self.batch_size)
            mask = torch.as_tensor(encoded.mask[part])
            with torch.no_grad():
                context, _ = self.net(torch.as_tensor(encoded.features[part]),
                                      torch.as_tensor(encoded.depth[part]),
                                      torch.as_tensor(encoded.soft[part]), mask)
                logits.append(self.net.split_head(context[mask]).squeeze(-1))
            contexts.append(context[mask])
            nodes.append(encoded.node[part][encoded.mask[part]])
        return np.concatenate(nodes), torch.cat(contexts), torch.cat(logits)

    def splitting_nll(self, trees: JetTrees) -> np.ndarray:
        """-log p(split) - log p(r1, r2, cos theta*, phi* | context) [nats] of every internal
        node, (n_internal,) in the order of ``np.flatnonzero(~trees.is_leaf)``."""
        encoded = encode(trees)
        nodes, context, logit = self._contexts(encoded)
        u = torch.as_tensor(encoded.u[encoded.mask])
        internal = ~trees.is_leaf[nodes]
        with torch.no_grad():
            nll = self.net.splitting_nll(context[internal], u[internal])
            nll = nll + F.softplus(-logit[internal])  # -log sigmoid(logit)
        total = nll.double().numpy() + sp.log_jacobian(u[internal].double().numpy())
        out = np.empty(int(internal.sum()))
        out[np.searchsorted(np.flatnonzero(~trees.is_leaf), nodes[internal])] = total
        return out

    def sample_children(self, trees: JetTrees, nodes: np.ndarray, n_samples: int, seed: int = 1
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Harder, softer children (len(nodes), n_samples, 4) [GeV] of the internal ``nodes``
        sampled given the true tree before each node (its ancestors and earlier subtrees); with
        ``config.ordered`` below the true parent's clustering distance as in generation (a draw
        still violating it after MAX_REDRAWS is kept; ``report`` counts the redraws)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        if np.any(trees.is_leaf[nodes]):
            raise ValueError(f"{int(trees.is_leaf[nodes].sum())} of the nodes are leaves")
        encoded = encode(trees)
        flat, context_all, _ = self._contexts(encoded)
        where = np.empty(len(trees.px), dtype=np.int64)
        where[flat] = np.arange(len(flat))
        row = where[nodes]
        a, b = trees.children(nodes)
        mass = sp.parameters(trees.p4[a], trees.p4[b]).mass  # the parent's mass, no cancellation
        # the clustering order: each node's splitting stays below its parent's distance
        jet = trees.node_jet[nodes]
        has_parent = trees.parent[nodes] >= 0
        up = trees.to_global(np.where(has_parent, trees.parent[nodes], 0), jet)
        up_a, up_b = trees.children(up)
        scale = np.where(has_parent,
                         pair_distance(trees.p4[up_a], trees.p4[up_b], self.algorithm), np.inf)
        rng = np.random.default_rng(seed)
        chunk = max(1, 2**16 // n_samples)  # nodes per call: bounded memory
        self.report = GenerationReport()
        harder, softer = [], []
        for s in range(0, len(row), chunk):
            context = context_all[row[s:s + chunk]].repeat_interleave(n_samples, dim=0)
            part = slice(s, s + chunk)
            h, w, *_ = self._split(np.repeat(trees.p4[nodes[part]], n_samples, axis=0),
                                   np.repeat(mass[part], n_samples),
                                   np.repeat(scale[part], n_samples), context,
                                   self.net.sample_u(context, rng), rng, self.report)
            harder.append(h)
            softer.append(w)
        shape = (len(nodes), n_samples, 4)
        return np.concatenate(harder).reshape(shape), np.concatenate(softer).reshape(shape)

    def _split(self, parents: np.ndarray, mass: np.ndarray, scale: np.ndarray,
               context: torch.Tensor, u: np.ndarray, rng: np.random.Generator,
               report: GenerationReport) -> tuple[np.ndarray, ...]:
        """Harder and softer children (n, 4) [GeV] of ``parents`` (n, 4) of masses ``mass``
        from splitting coordinates ``u`` (n, 4), their masses, their clustering distance, and
        ``accepted``: with ``config.ordered``, whether the distance lies below ``scale`` (the
        parent's own splitting's) after redrawing violating splittings from ``context``
        (MAX_REDRAWS times at most); all True otherwise."""
        def children(rows: np.ndarray) -> tuple[np.ndarray, ...]:
            params = sp.from_unconstrained(u[rows], mass[rows])
            c1, c2 = sp.split(parents[rows], params.m1, params.m2, params.cos_theta,
                              params.phi, mass=params.mass)
            swap = kin.pt(c2[:, 0], c2[:, 1]) > kin.pt(c1[:, 0], c1[:, 1])
            report.relabelled += int(swap.sum())
            return (np.where(swap[:, None], c2, c1), np.where(swap[:, None], c1, c2),
                    np.where(swap, params.m2, params.m1), np.where(swap, params.m1, params.m2))

        hard, soft, m_hard, m_soft = children(np.arange(len(parents)))
        distance = pair_distance(hard, soft, self.algorithm)
        if not self.config.ordered:
            return hard, soft, m_hard, m_soft, distance, np.ones(len(parents), dtype=bool)
        accepted = distance < scale
        for _ in range(MAX_REDRAWS):
            redo = np.flatnonzero(~accepted)
            if len(redo) == 0:
                break
            report.redrawn += len(redo)
            u[redo] = self.net.sample_u(context[torch.as_tensor(redo)], rng)
            hard[redo], soft[redo], m_hard[redo], m_soft[redo] = children(redo)
            distance[redo] = pair_distance(hard[redo], soft[redo], self.algorithm)
            accepted[redo] = distance[redo] < scale[redo]
        return hard, soft, m_hard, m_soft, distance, accepted

    # ---------------------------------------------------------------- generation
    def generate(self, roots: np.ndarray, seed: int = 1, use_cache: bool = True) -> JetTrees:
        """Trees grown from root four-momenta (n_jets, 4) [GeV]; clustering-order node
        convention of :class:`JetTrees`. ``report`` counts what the caps forced in this call."""
        roots = np.asarray(roots, dtype=np.float64)
        if roots.ndim != 2 or roots.shape[1] != 4:
            raise JetDataError(f"roots must be (n_jets, 4) px, py, pz, E, got {roots.shape}")
        bad = ~np.all(np.isfinite(roots), axis=1) | (roots[:, 3] <= 0)
        bad |= kin.pt(roots[:, 0], roots[:, 1]) <= 0
        if np.any(bad):
            raise JetDataError(f"roots: {int(bad.sum())} jet(s) with non-finite momenta, E <= 0 "
                               f"or pT = 0 (first: row {int(np.flatnonzero(bad)[0])})")
        rng = np.random.default_rng(seed)
        self.report = GenerationReport()
        parts = [self._generate(roots[s:s + self.batch_size], rng, use_cache)
                 for s in tqdm(range(0, len(roots), self.batch_size), desc="generate",
                               unit="batch", disable=len(roots) <= self.batch_size)]
        trees = JetTrees.concatenate(parts)
        trees.jet = np.arange(len(roots))
        return trees

    def _generate(self, roots: np.ndarray, rng: np.random.Generator, use_cache: bool
                  ) -> JetTrees:
        cfg = self.config
        n, cap = len(roots), cfg.max_nodes
        p4 = np.zeros((n, cap, 4))
        mass = np.zeros((n, cap))
        depth = np.zeros((n, cap), dtype=np.int64)
        soft = np.zeros((n, cap), dtype=np.int64)
        parent = np.full((n, cap), -1)
        left = np.full((n, cap), -1)
        right = np.full((n, cap), -1)
        visit = np.full((n, cap), -1)  # pre-order position of every created node
        scale = np.full((n, cap), np.inf)  # clustering distance of each node's parent splitting
        p4[:, 0], mass[:, 0] = roots, sp.mass_of(roots)
        count = np.ones(n, dtype=np.int64)  # nodes created per jet
        stack = np.zeros((n, cap), dtype=np.int64)  # pending nodes; root first
        height = np.ones(n, dtype=np.int64)
        rows = np.arange(n)
        report = GenerationReport(n_jets=n)
        features, depths, softs, masks = [], [], [], []
        caches = None
        for step in range(cap):
            active = height > 0
            if not active.any():
                break
            report.steps += 1
            node = np.where(active, stack[rows, np.maximum(height - 1, 0)], 0)
            height = height - active
            visit[rows[active], node[active]] = step
            par = np.where(parent[rows, node] >= 0, parent[rows, node], node)
            sib = np.where(soft[rows, node] == 1, left[rows, par], right[rows, par])
            sib = np.where(parent[rows, node] >= 0, sib, node)
            x = node_features(p4[rows, node], mass[rows, node], roots, p4[rows, par],
                              p4[rows, sib])
            features.append(torch.as_tensor(x, dtype=torch.float32)[:, None])
            depths.append(torch.as_tensor(depth[rows, node])[:, None])
            softs.append(torch.as_tensor(soft[rows, node])[:, None])
            masks.append(torch.as_tensor(active)[:, None])
            mask = torch.cat(masks, dim=1)
            with torch.no_grad():
                if use_cache:
                    context, caches = self.net(features[-1], depths[-1], softs[-1], mask, caches)
                else:
                    context, _ = self.net(torch.cat(features, 1), torch.cat(depths, 1),
                                          torch.cat(softs, 1), mask)
                context = context[:, -1]
                p_split = torch.sigmoid(self.net.split_head(context).squeeze(-1)).double().numpy()
            # the same draws whatever is active, so cached and full runs see the same numbers
            wants = rng.random(n) < p_split
            u = self.net.sample_u(context, rng)
            light = mass[rows, node] < MASS_MIN
            node_cap = count + 2 > cap
            depth_cap = depth[rows, node] >= cfg.max_depth
            splits = active & wants & ~light & ~node_cap & ~depth_cap
            report.massless_leaves += int((active & wants & light).sum())
            report.forced_leaves_node_cap += int((active & wants & ~light & node_cap).sum())
            report.forced_leaves_depth_cap += int(
                (active & wants & ~light & ~node_cap & depth_cap).sum())
            if not splits.any():
                continue
            j, k = rows[splits], node[splits]
            p_hard, p_soft, m_hard, m_soft, distance, accepted = self._split(
                p4[j, k], mass[j, k], scale[j, k], context[torch.as_tensor(splits)],
                u[splits], rng, report)
            report.forced_leaves_ordering += int((~accepted).sum())
            j, k = j[accepted], k[accepted]
            hard, light_child = count[j], count[j] + 1
            p4[j, hard], p4[j, light_child] = p_hard[accepted], p_soft[accepted]
            mass[j, hard], mass[j, light_child] = m_hard[accepted], m_soft[accepted]
            scale[j, hard] = scale[j, light_child] = distance[accepted]
            depth[j, hard] = depth[j, light_child] = depth[j, k] + 1
            soft[j, light_child] = 1
            parent[j, hard] = parent[j, light_child] = k
            left[j, k], right[j, k] = hard, light_child
            count[j] += 2
            # push the softer child, then the harder one (popped next: pre-order)
            stack[j, height[j]], stack[j, height[j] + 1] = light_child, hard
            height[j] += 2
        report.n_nodes = int(count.sum())
        self.report = _merge(self.report, report)
        return _to_trees(p4, left, right, parent, visit, count, self.algorithm)


def _merge(a: GenerationReport, b: GenerationReport) -> GenerationReport:
    """Counts of two generation reports added (steps: the longest)."""
    out = GenerationReport(**{k: getattr(a, k) + getattr(b, k) for k in asdict(a)})
    out.steps = max(a.steps, b.steps)
    return out


def _to_trees(p4: np.ndarray, left: np.ndarray, right: np.ndarray, parent: np.ndarray,
              visit: np.ndarray, count: np.ndarray, algorithm: str) -> JetTrees:
    """Generated nodes (n_jets, cap) in creation order -> :class:`JetTrees` in clustering
    order: leaves in visiting order, then internal nodes in reverse visiting order."""
    n, cap = visit.shape
    created = np.arange(cap)[None, :] < count[:, None]
    jet, slot = np.nonzero(created)
    internal = left[jet, slot] >= 0
    key = np.where(internal, 2 * cap - visit[jet, slot], visit[jet, slot])
    order = np.lexsort((key, jet))
    jet, slot, internal = jet[order], slot[order], internal[order]
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int64)
    new = np.full((n, cap), -1)
    new[jet, slot] = np.arange(len(jet)) - offsets[jet]

    def remap(index: np.ndarray) -> np.ndarray:
        return np.where(index >= 0, new[jet, np.maximum(index, 0)], -1)

    n_leaves = (count + 1) // 2
    local = np.arange(len(jet)) - offsets[jet]
    momenta = p4[jet, slot]
    return JetTrees(
        offsets=offsets,
        px=momenta[:, 0], py=momenta[:, 1], pz=momenta[:, 2], energy=momenta[:, 3],
        left=remap(left[jet, slot]), right=remap(right[jet, slot]),
        parent=remap(parent[jet, slot]),
        constituent=np.where(internal, -1, local),
        jet=np.arange(n, dtype=np.int64),
        n_constituents=n_leaves.astype(np.int64),
        n_inclusive=np.ones(n, dtype=np.int64),
        algorithm=algorithm,
    )

