"""The thesis' jet-evolution model (seed 000, sections 3.1-3.2), kept faithful as a baseline.

1. Node tokens. A VQ-VAE (:class:`jetfm.models.vqvae.VQVAE`) is trained on the node sets of the
   declustering trees (:class:`jetfm.physics.trees.JetTrees`): per jet all 2n - 1 nodes
   (constituents, pseudojets, the jet) with the thesis' features log pT [GeV], eta_rel and
   phi_rel [rad] relative to the root (jet) axis, standardised as OmniJet-alpha does
   ((log pT - 1.8), 3 eta_rel, 3 phi_rel). pT below ``pt_floor`` is clipped (counted). As the
   thesis found, the angles of pseudojets near the root crowd around zero.
2. Declustering triplets. A jet becomes ``[start, (parent, harder child, softer child) for every
   node in depth-first pre-order]``; leaves get (stop, stop) children, so the sequence is
   3 (2n - 1) + 1 tokens long. Tokens: 0 = start, code + 1, K + 1 = stop (vocabulary K + 2, as
   in :mod:`jetfm.models.gpt`).
3. Network. GPT backbone with positional embeddings. The left head reads the backbone output at
   the parent's position; the right head reads the output at the left child's position (which
   holds the left child's token, as in the thesis' generation loop) plus cross-attention, causal
   over triplets, to the left head's representations. Loss per triplet: the minimum over the
   two child assignments of the summed cross-entropies [nats].
4. Generation. :meth:`ThesisEvolutionModel.generate_batch` grows trees top-down from the root's
   token (the VQ-VAE code of the root four-momentum alone, a one-node set, instead of the
   thesis' fixed start token), one triplet per jet per step with a stack per jet, so stop
   children are never expanded (the thesis' recommendation instead of full 2^depth growth);
   depth and node caps make nodes leaves and are counted. Tokens decode through the VQ-VAE into
   massless four-momenta, so an internal node is not the sum of its children: the thesis' known
   flaw, measured by :func:`momentum_imbalance`, not fixed.

What the faithful design implies (measured by :meth:`ThesisEvolutionModel.evaluate`): the right
head is given the left child's token, so under the min-over-assignment loss the swapped
assignment lets it copy its input; the loss then prefers copying, and in ``predict`` the two
heads return the same token, the thesis' failure. The min-over-assignment value is therefore no
normalised likelihood; the ordered-pair NLL (left head = harder child) is one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.data.batch import JetDataError, SelectionReport
from jetfm.data.transforms import FeatureTransform
from jetfm.models.gpt import GPT, START_TOKEN, GPTConfig
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.nn.transformer import CrossAttention, KVCache
from jetfm.physics import kinematics as kin
from jetfm.physics.trees import JetTrees

STOP = -1  # child index of a leaf in the triplet arrays
NODE_FEATURES: tuple[FeatureTransform, ...] = (
    FeatureTransform("log_pt", shift=1.8, scale=1.0),
    FeatureTransform("eta_rel", scale=1 / 3),
    FeatureTransform("phi_rel", scale=1 / 3),
)
_SHIFT = np.array([f.shift for f in NODE_FEATURES])
_SCALE = np.array([f.scale for f in NODE_FEATURES])
MODEL_KIND = "thesis_evolution"


# ----------------------------------------------------------------------------- trees -> arrays
def declustering_triplets(trees: JetTrees) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(parent, harder child, softer child) flat node indices, one triplet per node.

    Jets one after the other, each jet's triplets in depth-first pre-order over all its nodes
    (every node is a parent once); leaves have :data:`STOP` children. Shapes (n_nodes_total,).
    """
    order = ak.to_numpy(ak.flatten(trees.depth_first_order())).astype(np.int64)
    parent = trees.to_global(order, trees.node_jet)
    left = np.full(len(parent), STOP, dtype=np.int64)
    right = np.full(len(parent), STOP, dtype=np.int64)
    internal = ~trees.is_leaf[parent]
    left[internal], right[internal] = trees.children(parent[internal])
    return parent, left, right


def triplet_rank(trees: JetTrees) -> np.ndarray:
    """Index of every node's triplet inside its jet's sequence, (n_nodes_total,)."""
    parent, _, _ = declustering_triplets(trees)
    rank = np.empty(len(parent), dtype=np.int64)
    rank[parent] = trees.local_index
    return rank


def node_features(trees: JetTrees, pt_floor: float) -> tuple[np.ndarray, int]:
    """Raw (log pT [GeV], eta_rel, phi_rel [rad]) of every node relative to its jet's root,
    (n_nodes_total, 3), and the number of nodes whose pT was raised to ``pt_floor`` [GeV]."""
    root = trees.to_global(trees.root, np.arange(len(trees)))[trees.node_jet]
    eta = kin.eta(trees.px, trees.py, trees.pz)
    pt = trees.pt
    features = np.stack(
        [
            np.log(np.maximum(pt, pt_floor)),
            eta - eta[root],
            kin.delta_phi(trees.phi, trees.phi[root]),
        ],
        axis=1,
    )
    return features, int((pt < pt_floor).sum())


def check_trees(trees: JetTrees, max_leaves: int, origin: str = "<memory>") -> None:
    """Raise :class:`JetDataError` for non-finite node momenta or jets beyond ``max_leaves``."""
    bad = ~np.isfinite(trees.p4).all(axis=1)
    if bad.any():
        jet = int(trees.node_jet[np.flatnonzero(bad)[0]])
        raise JetDataError(
            f"{origin}: {int(bad.sum())} tree node(s) with non-finite momenta "
            f"(first in jet row {jet}, source row {int(trees.jet[jet])})"
        )
    long = np.flatnonzero(trees.n_leaves > max_leaves)
    if len(long):
        raise JetDataError(
            f"{origin}: {len(long)} jet(s) with more than {max_leaves} constituents (first: jet "
            f"row {int(long[0])} with {int(trees.n_leaves[long[0]])}); the model's sequences "
            "hold at most max_leaves; select jets with trees.n_leaves <= max_leaves"
        )


def select_jets(trees: JetTrees, max_leaves: int, origin: str = "<memory>"
                ) -> tuple[JetTrees, SelectionReport]:
    """The jets a model can train on (1 .. ``max_leaves`` constituents), with a report."""
    empty = trees.n_nodes == 0
    long = trees.n_leaves > max_leaves
    keep = np.flatnonzero(~empty & ~long)
    removed = {"no constituents": int(empty.sum()),
               f"more than {max_leaves} constituents": int(long.sum())}
    report = SelectionReport(f"{origin}: jets for the thesis model", len(trees), len(keep),
                             removed)
    return trees.select(keep), report


def _jet_padded(trees: JetTrees, rows: np.ndarray, values: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per-node ``values`` of the jets ``rows`` as (len(rows), max nodes, ...) + mask, each jet's
    nodes at their local index."""
    counts = trees.n_nodes[rows]
    width = int(counts.max(initial=1))
    out = np.zeros((len(rows), width, *values.shape[1:]), dtype=values.dtype)
    mask = np.arange(width)[None, :] < counts[:, None]
    nodes = (trees.offsets[rows][:, None] + np.arange(width)[None, :])[mask]
    out[mask] = values[nodes]
    return out, mask


# ----------------------------------------------------------------------------- network
class ThesisEvolutionNet(nn.Module):
    """GPT backbone + left head + right head with cross-attention to the left head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not config.positional:
            raise ValueError("the thesis model needs positional embeddings (positional=True)")
        d, v = config.dim, config.vocab_size
        self.backbone = GPT(config)
        self.left_rep = nn.Sequential(nn.Linear(d, d), nn.GELU())
        self.left_out = nn.Linear(d, v)
        self.cross = CrossAttention(d, config.n_heads)
        self.right_norm = nn.LayerNorm(d)
        self.right_out = nn.Linear(d, v)

    def right_logits(self, hidden: torch.Tensor, memory: torch.Tensor, causal: bool
                     ) -> torch.Tensor:
        """Right-head logits from backbone outputs at left-child positions (b, n, dim) and the
        left head's representations ``memory`` (b, m, dim)."""
        x = hidden + self.cross(hidden, memory, causal=causal)
        return self.right_out(self.right_norm(x))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left and right logits (b, n_triplets, vocab) of sequences (b, 1 + 3 n_triplets)."""
        hidden, _ = self.backbone(tokens, mask)
        n = (tokens.shape[1] - 1) // 3
        rep = self.left_rep(hidden[:, 1 : 1 + 3 * n : 3])
        right = self.right_logits(hidden[:, 2 : 2 + 3 * n : 3], rep, causal=True)
        return self.left_out(rep), right


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.transpose(1, 2), target, reduction="none")


def triplet_nll(
    left_logits: torch.Tensor, right_logits: torch.Tensor, left: torch.Tensor, right: torch.Tensor
) -> torch.Tensor:
    """min(CE_L(left) + CE_R(right), CE_L(right) + CE_R(left)) per triplet (b, n) [nats]."""
    straight = _cross_entropy(left_logits, left) + _cross_entropy(right_logits, right)
    swapped = _cross_entropy(left_logits, right) + _cross_entropy(right_logits, left)
    return torch.minimum(straight, swapped)


def sequence_targets(tokens: torch.Tensor, mask: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left and right child tokens (b, n_triplets) and the mask of real triplets."""
    n = (tokens.shape[1] - 1) // 3
    return tokens[:, 2 : 2 + 3 * n : 3], tokens[:, 3 : 3 + 3 * n : 3], mask[:, 1 : 1 + 3 * n : 3]


# ----------------------------------------------------------------------------- model
@dataclass
class ThesisConfig:
    """Model description stored with the weights.

    ``vqvae``, ``gpt``: :class:`VQVAEConfig` / :class:`GPTConfig` fields (the GPT's vocabulary,
    length and positional embedding are set from the codebook and ``max_leaves``);
    ``max_leaves``: most constituents per jet; ``pt_floor`` [GeV]: node pT clipped from below
    for the log; ``max_depth``: depth cap of generated trees.
    """

    vqvae: dict[str, Any] = field(default_factory=dict)
    gpt: dict[str, Any] = field(default_factory=dict)
    max_leaves: int = 160
    pt_floor: float = 0.01
    max_depth: int = 64

    def __post_init__(self) -> None:
        vq = VQVAEConfig(**{**self.vqvae, "n_features": len(NODE_FEATURES)})
        self.vqvae = asdict(vq)
        gpt = {
            **self.gpt,
            "vocab_size": vq.codebook_size + 2,
            "max_length": 1 + 3 * self.max_nodes,
            "positional": True,
        }
        self.gpt = asdict(GPTConfig(**gpt))

    @property
    def max_nodes(self) -> int:
        return 2 * self.max_leaves - 1


@dataclass
class TokenTrees:
    """Generated trees as tokens; per jet the nodes in creation order (root first, a node's two
    children next to each other, the left head's first; parents before children).

    ``offsets`` (n_jets + 1,); per node ``code`` (VQ-VAE code), ``parent`` (local index, -1 for
    the root), ``depth``; ``report``: nodes made leaves by the caps and nodes
    whose two children disagreed on stopping (made leaves).
    """

    offsets: np.ndarray
    code: np.ndarray
    parent: np.ndarray
    depth: np.ndarray
    report: dict[str, int]

    @property
    def n_nodes(self) -> np.ndarray:
        return np.diff(self.offsets)


class ThesisEvolutionModel:
    """VQ-VAE node tokenizer + dual-head GPT; implements
    :class:`jetfm.models.splitting.SplittingModel`."""

    def __init__(self, vqvae: VQVAE, net: ThesisEvolutionNet, config: ThesisConfig) -> None:
        self.vqvae = vqvae.eval()
        self.net = net.eval()
        self.config = config

    @property
    def codebook_size(self) -> int:
        return self.vqvae.config.codebook_size

    @property
    def stop_token(self) -> int:
        return self.codebook_size + 1

    # ------------------------------------------------------------------ tokens
    def standardised_sets(self, trees: JetTrees, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """VQ-VAE inputs of the jets ``rows``: (len(rows), max nodes, 3) float32 and mask."""
        raw, _ = node_features(trees, self.config.pt_floor)
        values, mask = _jet_padded(trees, rows, ((raw - _SHIFT) / _SCALE).astype(np.float32))
        return values, mask

    @torch.no_grad()
    def node_codes(self, trees: JetTrees, batch_size: int = 256) -> np.ndarray:
        """VQ-VAE code of every node, each jet's node set encoded together, (n_nodes_total,)."""
        codes = np.zeros(len(trees.px), dtype=np.int64)
        for start in range(0, len(trees), batch_size):
            rows = np.arange(start, min(start + batch_size, len(trees)))
            rows = rows[trees.n_nodes[rows] > 0]
            if not len(rows):
                continue
            x, mask = self.standardised_sets(trees, rows)
            c = self.vqvae.encode(torch.as_tensor(x), torch.as_tensor(mask)).numpy()
            nodes = (trees.offsets[rows][:, None] + np.arange(mask.shape[1])[None, :])[mask]
            codes[nodes] = c[mask]
        return codes

    def sequences(self, trees: JetTrees, codes: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Token sequences [start, (parent, left, right) ...] (n_jets, 1 + 3 max nodes) int64 and
        mask; ``codes``: the nodes' VQ-VAE codes (computed when not given)."""
        check_trees(trees, self.config.max_leaves)
        if codes is None:
            codes = self.node_codes(trees)
        token = np.append(codes + 1, self.stop_token)  # index -1 (STOP) -> stop token
        parent, left, right = declustering_triplets(trees)
        triplets = np.stack([token[parent], token[left], token[right]], axis=1)
        padded, mask = _jet_padded(trees, np.arange(len(trees)), triplets)
        n = len(trees)
        tokens = np.concatenate(
            [np.full((n, 1), START_TOKEN), padded.reshape(n, -1)], axis=1
        ).astype(np.int64)
        seq_mask = np.concatenate([np.ones((n, 1), bool), np.repeat(mask, 3, axis=1)], axis=1)
        return tokens, seq_mask

    def _decode(self, codes: np.ndarray, mask: np.ndarray, root_eta: np.ndarray,
                root_phi: np.ndarray) -> np.ndarray:
        """Four-momenta (..., 4) [GeV] of code sets (n, m) decoded together, around the roots."""
        with torch.no_grad():
            x = self.vqvae.decode(torch.as_tensor(codes), torch.as_tensor(mask)).numpy()
        raw = x.astype(np.float64) * _SCALE + _SHIFT
        eta = root_eta[:, None] + raw[..., 1]
        phi = kin.wrap_phi(root_phi[:, None] + raw[..., 2])
        return np.stack(kin.ptetaphim_to_p4(np.exp(raw[..., 0]), eta, phi), axis=-1)

    @torch.no_grad()
    def _root_codes(self, roots: np.ndarray) -> np.ndarray:
        """Codes of root four-momenta, each encoded as a set of one node (eta_rel = phi_rel = 0)."""
        pt = kin.pt(roots[:, 0], roots[:, 1])
        raw = np.stack([np.log(np.maximum(pt, self.config.pt_floor)), 0 * pt, 0 * pt], axis=1)
        x = torch.as_tensor(((raw - _SHIFT) / _SCALE)[:, None, :], dtype=torch.float32)
        return self.vqvae.encode(x, torch.ones(len(roots), 1, dtype=torch.bool))[:, 0].numpy()

    # ------------------------------------------------------------------ likelihoods
    def splitting_nll(self, trees: JetTrees) -> np.ndarray:
        """Min-over-assignment NLL [nats] of each internal node's true token pair,
        (n_internal,) in ``np.flatnonzero(~trees.is_leaf)`` order."""
        return self._node_nll(trees)["min_assignment"][~trees.is_leaf]

    @torch.no_grad()
    def _node_nll(self, trees: JetTrees, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Per node, teacher-forced (its triplet): min-over-assignment NLL, ordered-pair NLL
        (left head = true harder child, right head = softer) [nats], the heads' argmax tokens
        and the true child tokens, each (n_nodes_total,)."""
        tokens, mask = self.sequences(trees)
        rank = triplet_rank(trees)
        out = {k: np.zeros(len(trees.px)) for k in ("min_assignment", "ordered")}
        out.update({k: np.zeros(len(trees.px), np.int64) for k in
                    ("left_argmax", "right_argmax", "left_true", "right_true")})
        for s in range(0, len(trees), batch_size):
            rows = np.arange(s, min(s + batch_size, len(trees)))
            nodes = np.arange(trees.offsets[s], trees.offsets[rows[-1] + 1])
            if not len(nodes):
                continue
            width = 1 + 3 * int(trees.n_nodes[rows].max())
            t, m = torch.as_tensor(tokens[rows, :width]), torch.as_tensor(mask[rows, :width])
            left_logits, right_logits = self.net(t, m)
            left, right, _ = sequence_targets(t, m)
            at = (torch.as_tensor(trees.node_jet[nodes] - s), torch.as_tensor(rank[nodes]))
            lp_l = torch.log_softmax(left_logits[at], -1)
            lp_r = torch.log_softmax(right_logits[at], -1)
            a, b = left[at][:, None], right[at][:, None]
            straight = -(lp_l.gather(1, a) + lp_r.gather(1, b))[:, 0]
            swapped = -(lp_l.gather(1, b) + lp_r.gather(1, a))[:, 0]
            out["min_assignment"][nodes] = torch.minimum(straight, swapped).numpy()
            out["ordered"][nodes] = straight.numpy()
            out["left_argmax"][nodes] = lp_l.argmax(1).numpy()
            out["right_argmax"][nodes] = lp_r.argmax(1).numpy()
            out["left_true"][nodes], out["right_true"][nodes] = a[:, 0].numpy(), b[:, 0].numpy()
        return out

    # ------------------------------------------------------------------ children of nodes
    def _choose(self, logits: torch.Tensor, greedy: bool, generator: torch.Generator,
                allow_stop: bool) -> torch.Tensor:
        logits = logits.clone()
        logits[..., START_TOKEN] = float("-inf")
        if not allow_stop:
            logits[..., self.stop_token] = float("-inf")
        if greedy:
            return logits.argmax(-1)
        probs = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=generator).view(logits.shape[:-1])

    @torch.no_grad()
    def _children_tokens(
        self, tokens: torch.Tensor, row: np.ndarray, k: np.ndarray, n_samples: int,
        greedy: bool, generator: torch.Generator, allow_stop: bool,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Child tokens (len(k), n_samples) of triplet ``k[i]`` of sequence ``tokens[row[i]]``:
        the left head sees the sequence before that triplet's parent, the right head the same
        plus the left head's token (the thesis' ``predict``). Each sequence runs once."""
        width = int(2 + 3 * k.max())
        hidden, caches = self.net.backbone(tokens[:, :width])
        rep = self.net.left_rep(hidden[:, 1::3])
        row_t = torch.as_tensor(row)
        left_logits = self.net.left_out(rep[row_t, torch.as_tensor(k)])
        left = self._choose(left_logits[:, None].expand(-1, n_samples, -1), greedy, generator,
                            allow_stop)
        right = torch.zeros_like(left)
        for kk in np.unique(k):
            at = torch.as_tensor(k == kk)
            rows = row_t[at].repeat_interleave(n_samples)
            length = int(2 + 3 * kk)
            sliced = [KVCache(c.keys[rows, :, :length], c.values[rows, :, :length])
                      for c in caches]
            h, _ = self.net.backbone(left[at].reshape(-1, 1), caches=sliced)
            logits = self.net.right_logits(h, rep[rows, : kk + 1], causal=False)[:, 0]
            right[at] = self._choose(logits, greedy, generator, allow_stop).view(-1, n_samples)
        return left.numpy(), right.numpy()

    def _node_children_tokens(self, trees: JetTrees, nodes: np.ndarray, n_samples: int,
                              greedy: bool, seed: int, allow_stop: bool, jets_per_batch: int = 8
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Codes of the nodes and (left, right) child tokens (len(nodes), n_samples)."""
        nodes = np.asarray(nodes, dtype=np.int64)
        if np.any((nodes < 0) | (nodes >= len(trees.px))):
            raise JetDataError(f"node indices outside 0..{len(trees.px) - 1}")
        codes = self.node_codes(trees)
        tokens, _ = self.sequences(trees, codes)
        generator = torch.Generator().manual_seed(seed)
        jet, rank = trees.node_jet[nodes], triplet_rank(trees)[nodes]
        left = np.zeros((len(nodes), n_samples), dtype=np.int64)
        right = np.zeros_like(left)
        jets = np.unique(jet)
        for s in range(0, len(jets), jets_per_batch):
            these = jets[s : s + jets_per_batch]
            pick = np.flatnonzero(np.isin(jet, these))
            left[pick], right[pick] = self._children_tokens(
                torch.as_tensor(tokens[these]), np.searchsorted(these, jet[pick]), rank[pick],
                n_samples, greedy, generator, allow_stop,
            )
        return codes[nodes], left, right

    def sample_children(self, trees: JetTrees, nodes: np.ndarray, n_samples: int, seed: int = 1
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Children of internal ``nodes`` (flat indices) sampled given the true sequence before
        each node's triplet, conditioned on a split (stop excluded); decoded with the VQ-VAE in
        the context of their triplet (parent, left, right), as the thesis' inference did.
        Returns harder, softer child four-momenta (len(nodes), n_samples, 4) px,py,pz,E [GeV]."""
        nodes = np.asarray(nodes, dtype=np.int64)
        n_leaves = int(trees.is_leaf[nodes].sum())
        if n_leaves:
            raise JetDataError(f"sample_children needs internal nodes; {n_leaves} given are leaves")
        parent, left, right = self._node_children_tokens(
            trees, nodes, n_samples, greedy=False, seed=seed, allow_stop=False
        )
        n = len(nodes) * n_samples
        triplet = np.stack([np.repeat(parent, n_samples), left.ravel() - 1, right.ravel() - 1], 1)
        root = trees.to_global(trees.root, np.arange(len(trees)))[trees.node_jet[nodes]]
        eta = np.repeat(kin.eta(trees.px, trees.py, trees.pz)[root], n_samples)
        phi = np.repeat(trees.phi[root], n_samples)
        p4 = self._decode(triplet, np.ones((n, 3), bool), eta, phi)[:, 1:]
        swap = kin.pt(p4[:, 1, 0], p4[:, 1, 1]) > kin.pt(p4[:, 0, 0], p4[:, 0, 1])
        p4[swap] = p4[swap][:, ::-1]
        shape = (len(nodes), n_samples, 4)
        return p4[:, 0].reshape(shape), p4[:, 1].reshape(shape)

    @torch.no_grad()
    def predict(self, context: np.ndarray, sample: bool = False, seed: int = 1
                ) -> tuple[np.ndarray, np.ndarray]:
        """The thesis' ``predict``: child tokens of the last parent of token sequences
        ``context`` (n, 3k + 1) = k complete triplets + a parent (start token prepended here),
        argmax or ``sample``d; returns (left, right) tokens, (n,) each."""
        context = np.atleast_2d(np.asarray(context, dtype=np.int64))
        if context.shape[1] % 3 != 1:
            raise ValueError(f"context of length {context.shape[1]} is not k triplets + a parent")
        if context.min() <= START_TOKEN or context.max() > self.stop_token:
            raise ValueError(f"context tokens must lie in 1..{self.stop_token}")
        tokens = np.concatenate([np.full((len(context), 1), START_TOKEN), context], axis=1)
        k = np.full(len(context), (context.shape[1] - 1) // 3)
        left, right = self._children_tokens(
            torch.as_tensor(tokens), np.arange(len(context)), k, 1, not sample,
            torch.Generator().manual_seed(seed), True,
        )
        return left[:, 0], right[:, 0]

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate_batch(self, roots: np.ndarray, seed: int = 1, max_nodes: int | None = None,
                       max_depth: int | None = None, batch_size: int = 256) -> TokenTrees:
        """Token trees grown top-down from root four-momenta (n_jets, 4) [GeV], one triplet per
        jet and step; stop children are not expanded. Caps default to the model's."""
        roots = check_roots(roots)
        max_nodes = min(max_nodes or self.config.max_nodes, self.config.max_nodes)
        max_depth = max_depth or self.config.max_depth
        generator = torch.Generator().manual_seed(seed)
        root_codes = self._root_codes(roots)
        parts = [
            self._grow(root_codes[s : s + batch_size], max_nodes, max_depth, generator)
            for s in range(0, len(roots), batch_size)
        ]
        counts = np.concatenate([p[0] for p in parts])
        report: dict[str, int] = {}
        for part in parts:
            for key, value in part[4].items():
                report[key] = report.get(key, 0) + value
        return TokenTrees(
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            code=np.concatenate([p[1] for p in parts]),
            parent=np.concatenate([p[2] for p in parts]),
            depth=np.concatenate([p[3] for p in parts]),
            report=report,
        )

    def _grow(self, root_codes: np.ndarray, max_nodes: int, max_depth: int,
              generator: torch.Generator
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
        n = len(root_codes)
        stop = self.stop_token
        code = [[int(c)] for c in root_codes]
        parent = [[-1] for _ in range(n)]
        depth = [[0] for _ in range(n)]
        stacks = [[0] for _ in range(n)]
        report = {"made leaves by the depth cap": 0, "made leaves by the node cap": 0,
                  "one stop child (made leaves)": 0}
        caches = None
        memory: list[torch.Tensor] = []
        previous = torch.full((n, 1), START_TOKEN)
        while any(stacks):
            current = [s.pop() if s else -1 for s in stacks]
            parent_tok = torch.tensor(
                [code[j][c] + 1 if c >= 0 else stop for j, c in enumerate(current)])
            hidden, caches = self.net.backbone(
                torch.cat([previous, parent_tok[:, None]], 1), caches=caches)
            rep = self.net.left_rep(hidden[:, -1:])
            memory.append(rep)
            left = self._choose(self.net.left_out(rep[:, 0]), False, generator, True).tolist()
            capped = {}
            for j, c in enumerate(current):
                if c < 0 or left[j] == stop:
                    continue
                if depth[j][c] >= max_depth:
                    capped[j] = "made leaves by the depth cap"
                elif len(code[j]) + 2 > max_nodes:
                    capped[j] = "made leaves by the node cap"
            for j, reason in capped.items():
                report[reason] += 1
                left[j] = stop
            hidden, caches = self.net.backbone(torch.tensor(left)[:, None], caches=caches)
            logits = self.net.right_logits(hidden, torch.cat(memory, 1), causal=False)[:, 0]
            right = self._choose(logits, False, generator, True).tolist()
            for j, c in enumerate(current):
                if c < 0:
                    continue
                if j in capped:
                    right[j] = stop
                if left[j] == stop or right[j] == stop:
                    if left[j] != right[j]:
                        report["one stop child (made leaves)"] += 1
                    continue
                first = len(code[j])
                for tok in (left[j], right[j]):
                    code[j].append(tok - 1)
                    parent[j].append(c)
                    depth[j].append(depth[j][c] + 1)
                stacks[j] += [first + 1, first]  # left-head child expanded first: pre-order
            previous = torch.tensor(right)[:, None]
        counts = np.array([len(c) for c in code])
        flat = [np.concatenate(x).astype(np.int64) for x in (code, parent, depth)]
        return counts, *flat, report

    def decode_trees(self, token_trees: TokenTrees, roots: np.ndarray) -> JetTrees:
        """:class:`JetTrees` (clustering order: leaves, then internal nodes children first) from
        generated token trees; every node decoded from its token in its tree's token set, except
        the root, which is the given root four-momentum; left = the child of larger pT."""
        roots = check_roots(roots)
        t = token_trees
        n_jets = len(t.offsets) - 1
        node_jet = np.repeat(np.arange(n_jets), t.n_nodes)
        local = np.arange(len(t.code)) - t.offsets[:-1][node_jet]  # creation order
        codes = np.zeros((n_jets, int(t.n_nodes.max(initial=1))), np.int64)
        mask = np.arange(codes.shape[1])[None, :] < t.n_nodes[:, None]
        codes[mask] = t.code
        eta = kin.eta(roots[:, 0], roots[:, 1], roots[:, 2])
        phi = kin.phi(roots[:, 0], roots[:, 1])
        p4 = self._decode(codes, mask, eta, phi)[mask]
        p4[t.offsets[:-1]] = roots
        is_parent = np.zeros(len(t.code), bool)
        has_parent = t.parent >= 0
        parent_flat = t.parent + t.offsets[:-1][node_jet]
        is_parent[parent_flat[has_parent]] = True
        leaf = ~is_parent
        # Clustering order: leaves, then internal nodes in reverse creation order.
        order = np.lexsort((np.where(leaf, local, -local), ~leaf, node_jet))
        new_local = np.empty(len(order), np.int64)
        new_local[order] = np.arange(len(order)) - t.offsets[:-1][node_jet[order]]
        children = np.flatnonzero(has_parent)
        first = children[np.argsort(parent_flat[children], kind="stable")]
        a, b = first[0::2], first[1::2]
        pt = kin.pt(p4[:, 0], p4[:, 1])
        harder = np.where(pt[a] >= pt[b], a, b)
        softer = np.where(pt[a] >= pt[b], b, a)
        left = np.full(len(order), -1, np.int64)
        right = np.full(len(order), -1, np.int64)
        left[parent_flat[a]], right[parent_flat[a]] = new_local[harder], new_local[softer]
        parent = np.where(has_parent, new_local[np.where(has_parent, parent_flat, 0)], -1)
        constituent = np.where(leaf, new_local, -1)
        n_leaves = np.bincount(node_jet[leaf], minlength=n_jets)
        return JetTrees(
            offsets=t.offsets.copy(),
            px=p4[order, 0], py=p4[order, 1], pz=p4[order, 2], energy=p4[order, 3],
            left=left[order], right=right[order], parent=parent[order],
            constituent=constituent[order],
            jet=np.arange(n_jets, dtype=np.int64),
            n_constituents=n_leaves.astype(np.int64),
            n_inclusive=np.ones(n_jets, dtype=np.int64),
        )

    def generate(self, roots: np.ndarray, seed: int = 1) -> JetTrees:
        """Whole trees from root four-momenta (n_jets, 4) px,py,pz,E [GeV] (clustering order)."""
        return self.decode_trees(self.generate_batch(roots, seed), roots)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, trees: JetTrees, n_predict: int = 2000, seed: int = 1) -> dict[str, float]:
        """Token metrics on true trees.

        Teacher-forced (both heads given the true context): accuracy of the argmax children of
        internal nodes under the better assignment (0, 1/2 or 1 per node), stop accuracy at
        leaves, NLL per splitting (min-over-assignment and ordered), how often the right head's
        argmax is the left child's token it was given, how often the swapped assignment wins.
        ``predict`` mode (the right head sees the left head's own argmax, as in the thesis), on up
        to ``n_predict`` random internal nodes: how often the two heads give the same token, stop
        rate, accuracy.
        """
        out = self._node_nll(trees)
        internal = ~trees.is_leaf
        la, ra, lt, rt = (out[k] for k in ("left_argmax", "right_argmax", "left_true",
                                            "right_true"))
        straight = (la == lt).astype(float) + (ra == rt)
        swapped = (la == rt).astype(float) + (ra == lt)
        leaf_ok = (la == self.stop_token) & (ra == self.stop_token)
        nodes = np.flatnonzero(internal)
        nodes = np.random.default_rng(seed).choice(nodes, min(n_predict, len(nodes)), False)
        _, pl, pr = self._node_children_tokens(trees, nodes, 1, True, seed, True)
        pl, pr = pl[:, 0], pr[:, 0]
        harder, softer = trees.children(nodes)
        token = self.node_codes(trees) + 1
        tl, tr = token[harder], token[softer]
        match = np.maximum((pl == tl).astype(float) + (pr == tr), (pl == tr).astype(float)
                           + (pr == tl)) / 2
        n_internal = int(internal.sum())
        return {
            "n_internal": n_internal,
            "n_leaves": int((~internal).sum()),
            "nll_min_assignment_per_splitting": float(out["min_assignment"][internal].mean()),
            "nll_ordered_per_splitting": float(out["ordered"][internal].mean()),
            "nll_per_leaf_triplet": float(out["min_assignment"][~internal].mean()),
            "teacher_forced_child_accuracy": float(
                (np.maximum(straight, swapped)[internal] / 2).mean()),
            "teacher_forced_same_token_rate": float((la == ra)[internal].mean()),
            "teacher_forced_right_copies_left_rate": float((ra == lt)[internal].mean()),
            "swapped_assignment_rate": float(
                (out["min_assignment"] < out["ordered"])[internal].mean()),
            "leaf_stop_accuracy": float(leaf_ok[~internal].mean()),
            "predict_n_nodes": len(nodes),
            "predict_same_token_rate": float((pl == pr).mean()),
            "predict_stop_rate": float(((pl == self.stop_token) | (pr == self.stop_token)).mean()),
            "predict_child_accuracy": float(match.mean()),
        }

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """safetensors file: VQ-VAE and network weights, :class:`ThesisConfig` as JSON."""
        tensors = {f"vqvae.{k}": v for k, v in self.vqvae.state_dict().items()}
        tensors.update({f"net.{k}": v for k, v in self.net.state_dict().items()})
        return save_model(path, tensors, {"kind": MODEL_KIND, "config": asdict(self.config)})


def load_thesis_model(path: str | Path) -> ThesisEvolutionModel:
    """A model written by :meth:`ThesisEvolutionModel.save` (on CPU, eval mode)."""
    tensors, meta = load_model(path)
    if meta.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a thesis-model file (kind={meta.get('kind')!r})")
    config = ThesisConfig(**meta["config"])
    vqvae = VQVAE(VQVAEConfig(**config.vqvae))
    vqvae.load_state_dict(prefixed(tensors, "vqvae"))
    net = ThesisEvolutionNet(GPTConfig(**config.gpt))
    net.load_state_dict(prefixed(tensors, "net"))
    return ThesisEvolutionModel(vqvae, net, config)


def check_roots(roots: np.ndarray) -> np.ndarray:
    """Root four-momenta as (n_jets, 4) float64; :class:`JetDataError` for bad shape, non-finite
    values or pT = 0."""
    roots = np.asarray(roots, dtype=np.float64)
    if roots.ndim != 2 or roots.shape[1] != 4:
        raise JetDataError(f"roots must be (n_jets, 4) px,py,pz,E, got shape {roots.shape}")
    bad = ~np.isfinite(roots).all(axis=1) | (kin.pt(roots[:, 0], roots[:, 1]) <= 0)
    if bad.any():
        raise JetDataError(
            f"{int(bad.sum())} root(s) with non-finite momenta or pT = 0 (first: row "
            f"{int(np.flatnonzero(bad)[0])})"
        )
    return roots


def momentum_imbalance(trees: JetTrees) -> dict[str, float]:
    """How far generated trees are from conserving momentum: |node - children sum| / E_node over
    internal nodes and |root - leaves sum| / E_root over jets (medians, 90 % quantiles)."""
    internal = np.flatnonzero(~trees.is_leaf)
    a, b = trees.children(internal)
    p4 = trees.p4
    node = np.linalg.norm(p4[internal] - p4[a] - p4[b], axis=1) / p4[internal, 3]
    filled = np.flatnonzero(trees.n_nodes > 0)
    root = trees.to_global(trees.root[filled], filled)
    leaves = np.flatnonzero(trees.is_leaf)
    sums = np.zeros((len(trees), 4))
    np.add.at(sums, trees.node_jet[leaves], p4[leaves])
    jet = np.linalg.norm(p4[root] - sums[filled], axis=1) / p4[root, 3]
    return {
        "node_vs_children_median": float(np.median(node)) if len(node) else 0.0,
        "node_vs_children_q90": float(np.quantile(node, 0.9)) if len(node) else 0.0,
        "root_vs_leaves_median": float(np.median(jet)) if len(jet) else 0.0,
        "root_vs_leaves_q90": float(np.quantile(jet, 0.9)) if len(jet) else 0.0,
    }
