"""Energy-flow polynomials and the jetnet-definition metrics on them: FPD, KPD and W1-EFP.

These are the definitions behind published tables of jet generative models (jetnet library,
``jetnet.evaluation``, version 0.2.5, github.com/jet-net/JetNet, files
``jetnet/evaluation/gen_metrics.py`` and ``jetnet/utils/utils.py``), reimplemented in numpy so
that jetfm does not depend on jetnet or energyflow (both pin numpy < 2). ``tests/test_efp.py``
checks every number against jetnet itself (``tests/fixtures/make_jetnet_reference.py``).

**EFPs** (Komiske, Metodiev, Thaler, arXiv:1712.07124, Eq. 2.8): for a multigraph G with N
vertices and edges E,

    EFP_G = sum_{i_1..i_N} z_{i_1} ... z_{i_N} prod_{(k, l) in E} theta_{i_k i_l},

with energyflow's hadronic measure ``"hadr"`` as jetnet calls it (``EFPSet(*args,
measure="hadr", beta=1, normed=None, coords="ptyphim")`` in ``jetnet.utils.efps``, particles
given as (pt_rel, eta_rel, phi_rel)):

* z_i = pt_rel_i, **not** normalised: ``normed=None`` is falsy, so energyflow uses
  z_i = pT_i^kappa with kappa = 1 (``energyflow/measure.py``, ``_z_unnormed_func``). An EFP of
  a graph with N vertices therefore scales as lambda^N under pt_rel -> lambda pt_rel; the
  graph with no edge (d = 0) is sum_i pt_rel_i, which is 1 only for pt_rel normalised to sum 1;
* theta_ij = (Delta y_ij^2 + Delta phi_ij^2)^(beta / 2), beta = 1, with eta_rel in the place of
  the rapidity y (jetnet passes eta; massless particles) and
  Delta phi = pi - | |phi_i - phi_j| - pi | (energyflow's ``_thetas2_from_yphis``);
* a disconnected graph's EFP is the product of its components' EFPs.

Padded particles (``mask`` False) get z = 0 and contribute nothing; jetnet's zero-padding
(pt_rel = 0) is the same. The graph selections, in energyflow's order:

* :data:`FPD_KPD_GRAPHS`: the 36 EFPs of degree d <= 4 (``EFPSet(("d<=", 4))``), the features
  of ``jetnet.evaluation.get_fpd_kpd_jet_features``, used for FPD and KPD;
* :data:`W1EFP_GRAPHS`: the 5 connected ("prime") EFPs with n = 4 vertices and d = 4 edges
  (``EFPSet(("n==", 4), ("d==", 4), ("p==", 1))``), the default of ``jetnet.utils.efps`` and
  ``jetnet.evaluation.w1efp``; they are entries :data:`W1EFP_INDICES` of the 36.

Computation: vertices of degree 1 are summed out first (a matrix-vector product per jet), a
remaining cycle by a chain of matrix products, anything else by ``numpy.einsum``; jets are
processed in chunks to bound memory (O(chunk * n_particles^2)).

**Metrics** (arXiv:2211.10295 for FPD and KPD; W1-EFP from the MPGAN paper,
arXiv:2106.11535), with jetnet's defaults:

* :func:`jetnet_fpd`: Frechet distance of Gaussians fitted to batches drawn with replacement,
  averaged over 20 batches at each of 10 sizes spaced evenly in 1/N from 20,000 to 50,000,
  extrapolated linearly to 1/N -> 0; features divided by the real sample's max |value|; seed
  42. It is :func:`jetfm.metrics.distances.fpd` with these defaults: that draws the same
  random indices (``Generator.integers(0, n, size)`` is ``Generator.choice(n, size)``);
* :func:`jetnet_kpd`: median over 10 batches of 5,000 of the unbiased MMD^2 with the kernel
  (x . y / d + 1)^4, error half the 16-84 % interquantile range; batch i drawn from
  ``default_rng(seed + 1000 i)``, seed 42 (jetnet's ``_kpd_batches``);
* :func:`w1efp`: Wasserstein-1 of each EFP between batches of 50,000 jets drawn with
  replacement, mean and (population) standard deviation over 5 batches. jetnet draws from an
  unseeded module-level generator; here ``seed`` (an int or a ``numpy.random.Generator``)
  fixes it, and passing the generator jetnet would use reproduces jetnet's numbers.

jetnet recommends 50,000 jets per sample; for smaller samples it still draws batches of its
default sizes (with replacement), as these functions do unless given smaller sizes.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import iqr, wasserstein_distance

from jetfm.metrics.distances import KPD_DEGREE, fpd, mmd_poly_unbiased, normalise_features
from jetfm.metrics.generation import Estimate
from jetfm.metrics.inputs import paired_features

if TYPE_CHECKING:
    from jetfm.data.batch import JetBatch

Graph = tuple[tuple[int, int], ...]
"""A multigraph as its edge list (a repeated pair is a multiple edge), energyflow's form."""

JETNET_BETA: float = 1.0
"""Angular exponent beta of jetnet's EFPs (``jetnet.utils.efps``)."""

FPD_KPD_GRAPHS: tuple[Graph, ...] = (
    (),
    ((0, 1),),
    ((0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 1), (0, 1), (0, 1)),
    ((0, 1), (0, 2)),
    ((0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (0, 2), (0, 2)),
    ((0, 1), (0, 1), (0, 2), (0, 2)),
    ((0, 1), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 2), (1, 2)),
    ((0, 1), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (0, 2), (1, 3)),
    ((0, 1), (0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (1, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3), (2, 3)),
    ((0, 1), (0, 2), (0, 3), (0, 4)),
    ((0, 1), (0, 2), (0, 3), (1, 4)),
    ((0, 1), (0, 2), (1, 3), (2, 4)),
    ((0, 1), (2, 3)),
    ((0, 1), (2, 3), (2, 3)),
    ((0, 1), (2, 3), (2, 3), (2, 3)),
    ((0, 1), (0, 1), (2, 3), (2, 3)),
    ((0, 1), (2, 3), (2, 4)),
    ((0, 1), (0, 1), (2, 3), (2, 4)),
    ((0, 1), (2, 3), (2, 4), (2, 4)),
    ((0, 1), (2, 3), (2, 4), (3, 4)),
    ((0, 1), (2, 3), (4, 5)),
    ((0, 1), (2, 3), (2, 4), (2, 5)),
    ((0, 1), (2, 3), (2, 4), (3, 5)),
    ((0, 1), (0, 2), (3, 4), (3, 5)),
    ((0, 1), (2, 3), (4, 5), (4, 5)),
    ((0, 1), (2, 3), (4, 5), (4, 6)),
    ((0, 1), (2, 3), (4, 5), (6, 7)),
)
"""energyflow's ``EFPSet(("d<=", 4)).graphs()`` (EnergyFlow 1.4.0), in its order: the 36 FPD/KPD
features of ``jetnet.evaluation.get_fpd_kpd_jet_features``."""

W1EFP_GRAPHS: tuple[Graph, ...] = (
    ((0, 1), (0, 2), (0, 2), (0, 3)),
    ((0, 1), (0, 2), (0, 2), (1, 3)),
    ((0, 1), (0, 1), (0, 2), (1, 3)),
    ((0, 1), (0, 2), (1, 2), (0, 3)),
    ((0, 1), (0, 2), (1, 3), (2, 3)),
)
"""energyflow's ``EFPSet(("n==", 4), ("d==", 4), ("p==", 1)).graphs()``: jetnet's W1-EFP set."""

W1EFP_INDICES: tuple[int, ...] = tuple(FPD_KPD_GRAPHS.index(g) for g in W1EFP_GRAPHS)
"""Columns of the :data:`FPD_KPD_GRAPHS` EFPs that are the :data:`W1EFP_GRAPHS` ones."""

JETNET_FPD_DEFAULTS: dict[str, int] = {
    "min_samples": 20_000, "max_samples": 50_000, "num_batches": 20, "num_points": 10,
    "seed": 42,
}
JETNET_KPD_DEFAULTS: dict[str, int] = {"num_batches": 10, "batch_size": 5_000, "seed": 42}
JETNET_W1EFP_DEFAULTS: dict[str, int] = {"num_eval_samples": 50_000, "num_batches": 5}
"""jetnet 0.2.5's defaults of ``fpd``, ``kpd`` and ``w1efp`` (``gen_metrics.py``)."""

_CHUNK_ELEMENTS = 2**19  # jets per chunk * n_particles^2 (4 MiB per float64 matrix stack)


# ---------------------------------------------------------------------------------- EFPs
def _check_graph(graph: Sequence[Sequence[int]], i: int) -> Graph:
    try:
        edges = tuple((int(a), int(b)) for a, b in graph)
    except (TypeError, ValueError) as err:
        raise ValueError(f"graph {i}: edges must be pairs of vertex numbers, got {graph!r}") \
            from err
    bad = [e for e in edges if e[0] == e[1] or min(e) < 0]
    if bad:
        raise ValueError(f"graph {i}: invalid edges {bad} (self-loop or negative vertex)")
    return edges


def _components(graph: Graph) -> list[Graph]:
    """Connected components of a graph with at least one edge (union-find on the vertices)."""
    parent: dict[int, int] = {}

    def root(v: int) -> int:
        parent.setdefault(v, v)
        while parent[v] != v:
            v = parent[v]
        return v

    for a, b in graph:
        parent[root(a)] = root(b)
    groups: dict[int, list[tuple[int, int]]] = {}
    for edge in graph:
        groups.setdefault(root(edge[0]), []).append(edge)
    return [tuple(g) for g in groups.values()]


def _connected_efp(graph: Graph, z: np.ndarray, theta: dict[int, np.ndarray]) -> np.ndarray:
    """EFP (B,) of a connected graph with >= 1 edge; z (B, N), theta[w] (B, N, N) = theta^w."""
    nbrs: dict[int, dict[int, int]] = {}
    for a, b in graph:
        nbrs.setdefault(a, {}).setdefault(b, 0)
        nbrs.setdefault(b, {}).setdefault(a, 0)
        nbrs[a][b] += 1
        nbrs[b][a] += 1
    vec = {v: z for v in nbrs}
    while len(nbrs) > 1:  # sum out vertices of degree 1
        leaf = next((v for v, n in nbrs.items() if len(n) == 1), None)
        if leaf is None:
            break
        ((parent, w),) = nbrs.pop(leaf).items()
        del nbrs[parent][leaf]
        vec[parent] = vec[parent] * np.einsum("bij,bj->bi", theta[w], vec.pop(leaf))
    if len(nbrs) == 1:
        return next(iter(vec.values())).sum(axis=1)
    if all(len(n) == 2 for n in nbrs.values()):  # a cycle: chain of matrix products
        order = [min(nbrs)]
        while len(order) < len(nbrs):
            order.append(next(u for u in nbrs[order[-1]] if u not in order[-2:]))
        first, last = order[0], order[-1]
        chain = vec[first][:, :, None] * theta[nbrs[first][order[1]]]
        for v, nxt in zip(order[1:-1], order[2:], strict=True):
            chain = np.matmul(chain * vec[v][:, None, :], theta[nbrs[v][nxt]])
        return (chain * vec[last][:, None, :] * theta[nbrs[last][first]]).sum(axis=(1, 2))
    letters = {v: string.ascii_letters[i + 1] for i, v in enumerate(sorted(nbrs))}  # not "a"
    terms = [f"a{letters[v]}" for v in nbrs]
    operands = [vec[v] for v in nbrs]
    for v, n in nbrs.items():
        for u, w in n.items():
            if v < u:
                terms.append(f"a{letters[v]}{letters[u]}")
                operands.append(theta[w])
    return np.einsum(",".join(terms) + "->a", *operands, optimize="greedy")


def efps(
    eta_rel: Any,
    phi_rel: Any,
    pt_rel: Any,
    mask: Any = None,
    *,
    graphs: Sequence[Sequence[Sequence[int]]] = W1EFP_GRAPHS,
    beta: float = JETNET_BETA,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Energy-flow polynomials of padded jets with jetnet's measure (module docstring).

    ``eta_rel``, ``phi_rel`` [rad], ``pt_rel``: (n_jets, n_particles) particle coordinates
    relative to the jet axis and pT / jet pT; ``mask``: (n_jets, n_particles) bool, True for
    real particles (default: all real; zero-padded particles with pt_rel = 0 contribute
    nothing either way). Values of masked particles are ignored (may be NaN). ``graphs``:
    multigraphs as edge lists (default :data:`W1EFP_GRAPHS`; :data:`FPD_KPD_GRAPHS` for
    FPD/KPD). ``beta``: angular exponent (> 0). ``chunk_size``: jets per chunk (default: about
    2^21 / n_particles^2).

    Returns (n_jets, n_graphs) float64, EFP values in units of pt_rel^(n_vertices).
    Raises ``ValueError`` for arrays of different or non-2-D shapes, a non-finite value of an
    unmasked particle, beta <= 0, or an invalid graph (self-loop, negative vertex).
    """
    names = ("eta_rel", "phi_rel", "pt_rel")
    arrays = [np.asarray(a, dtype=np.float64) for a in (eta_rel, phi_rel, pt_rel)]
    if arrays[0].ndim != 2 or any(a.shape != arrays[0].shape for a in arrays):
        raise ValueError("eta_rel, phi_rel and pt_rel must be (n_jets, n_particles) arrays of "
                         f"one shape, got {[a.shape for a in arrays]}")
    shape = arrays[0].shape
    real = np.ones(shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if real.shape != shape:
        raise ValueError(f"mask has shape {real.shape}, the particle arrays {shape}")
    for name, a in zip(names, arrays, strict=True):
        n_bad = int((~np.isfinite(a) & real).sum())
        if n_bad:
            raise ValueError(f"{name}: {n_bad} unmasked particle value(s) are not finite")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    checked = [_check_graph(g, i) for i, g in enumerate(graphs)]
    eta, phi, z = (np.where(real, a, 0.0) for a in arrays)
    n_jets, n_particles = shape
    out = np.empty((n_jets, len(checked)))
    if n_jets == 0 or not checked:
        return out
    weights = sorted({w for g in checked for w in _multiplicities(g)})
    step = chunk_size or max(1, _CHUNK_ELEMENTS // max(1, n_particles**2))
    for lo in range(0, n_jets, step):
        sl = slice(lo, lo + step)
        d_phi = np.abs(phi[sl, :, None] - phi[sl, None, :])
        theta2 = (eta[sl, :, None] - eta[sl, None, :]) ** 2 + (np.pi - np.abs(d_phi - np.pi)) ** 2
        theta1 = np.sqrt(theta2) if beta == 1 else theta2 ** (beta / 2)
        theta = {1: theta1}
        for w in range(2, max(weights) + 1):  # products: much faster than ** on arrays
            theta[w] = theta[w - 1] * theta1
        cache: dict[Graph, np.ndarray] = {}
        for j, graph in enumerate(checked):
            if not graph:
                out[sl, j] = z[sl].sum(axis=1)
                continue
            value = np.ones(len(z[sl]))
            for comp in _components(graph):
                key = _relabel(comp)
                if key not in cache:
                    cache[key] = _connected_efp(key, z[sl], theta)
                value = value * cache[key]
            out[sl, j] = value
    return out


def _multiplicities(graph: Graph) -> set[int]:
    counts: dict[tuple[int, int], int] = {}
    for a, b in graph:
        key = (min(a, b), max(a, b))
        counts[key] = counts.get(key, 0) + 1
    return set(counts.values())


def _relabel(graph: Graph) -> Graph:
    """Vertices renumbered 0, 1, ... in order of appearance, edges sorted (a cache key)."""
    labels: dict[int, int] = {}
    for edge in graph:
        for v in edge:
            labels.setdefault(v, len(labels))
    return tuple(sorted(tuple(sorted((labels[a], labels[b]))) for a, b in graph))


def jetnet_efps(
    jets: Any, mask: Any = None, *, graphs: Sequence[Sequence[Sequence[int]]] = W1EFP_GRAPHS
) -> np.ndarray:
    """:func:`efps` of jets in jetnet's format, (n_jets, n_particles, >= 3) with features
    (eta_rel, phi_rel, pt_rel, ...) (``jetnet.utils.efps``; further features such as a mask
    column are ignored). Returns (n_jets, n_graphs). Raises ``ValueError`` for another shape,
    or as :func:`efps`."""
    jets = np.asarray(jets, dtype=np.float64)
    if jets.ndim != 3 or jets.shape[2] < 3:
        raise ValueError(f"jets must be (n_jets, n_particles, >= 3) = (eta_rel, phi_rel, "
                         f"pt_rel, ...), got shape {jets.shape}")
    return efps(jets[..., 0], jets[..., 1], jets[..., 2], mask, graphs=graphs)


def batch_efps(
    batch: JetBatch, graphs: Sequence[Sequence[Sequence[int]]] = FPD_KPD_GRAPHS
) -> np.ndarray:
    """:func:`efps` of a :class:`~jetfm.data.JetBatch` (all constituents, from its eta_rel,
    phi_rel and pt_rel), (n_jets, n_graphs). Jets whose particles have a non-finite
    coordinate (pt_rel of a jet with pT = 0) get a row of NaN, for the caller to remove and
    count."""
    with np.errstate(invalid="ignore", divide="ignore"):  # pt_rel = 0 / 0: flagged below
        padded = batch.to_padded(("eta_rel", "phi_rel", "pt_rel"), sort=False, dtype=np.float64)
    values, mask = padded.values, padded.mask
    good = ~(~np.isfinite(values).all(axis=2) & mask).any(axis=1)
    out = np.full((len(values), len(graphs)), np.nan)
    out[good] = efps(values[good, :, 0], values[good, :, 1], values[good, :, 2], mask[good],
                     graphs=graphs)
    return out


# ---------------------------------------------------------------------------------- metrics
def jetnet_fpd(
    real_features: Any,
    gen_features: Any,
    *,
    min_samples: int = JETNET_FPD_DEFAULTS["min_samples"],
    max_samples: int = JETNET_FPD_DEFAULTS["max_samples"],
    num_batches: int = JETNET_FPD_DEFAULTS["num_batches"],
    num_points: int = JETNET_FPD_DEFAULTS["num_points"],
    normalise: bool = True,
    seed: int = JETNET_FPD_DEFAULTS["seed"],
) -> Estimate:
    """``jetnet.evaluation.fpd`` (value, error of the 1/N -> 0 intercept) of real and
    generated features (n_real, k) and (n_gen, k), e.g. :data:`FPD_KPD_GRAPHS` EFPs, with
    jetnet's defaults (module docstring). Dimensionless. Raises ``ValueError`` for
    non-finite features, fewer than 2 rows, different feature counts or
    min_samples > max_samples."""
    return fpd(real_features, gen_features, min_samples=min_samples, max_samples=max_samples,
               n_batches=num_batches, n_points=num_points, normalise=normalise, seed=seed)


def jetnet_kpd(
    real_features: Any,
    gen_features: Any,
    *,
    num_batches: int = JETNET_KPD_DEFAULTS["num_batches"],
    batch_size: int = JETNET_KPD_DEFAULTS["batch_size"],
    normalise: bool = True,
    seed: int = JETNET_KPD_DEFAULTS["seed"],
) -> Estimate:
    """``jetnet.evaluation.kpd`` (median over ``num_batches`` batches of the unbiased MMD^2,
    polynomial kernel of degree 4; error half the 16-84 % IQR) with jetnet's batch seeding
    ``default_rng(seed + 1000 i)`` (module docstring). Inputs as :func:`jetnet_fpd`; raises
    ``ValueError`` as it, or for batch_size < 2 or num_batches < 1."""
    x, y = paired_features(real_features, gen_features, min_rows=2)
    if normalise:
        x, y = normalise_features(x, y)
    if batch_size < 2 or num_batches < 1:
        raise ValueError(f"need batch_size >= 2 and num_batches >= 1, got {batch_size}, "
                         f"{num_batches}")
    values = []
    for i in range(num_batches):
        rng = np.random.default_rng(seed + i * 1000)
        rand1 = rng.choice(len(x), size=batch_size)
        rand2 = rng.choice(len(y), size=batch_size)
        values.append(mmd_poly_unbiased(x[rand1], y[rand2], KPD_DEGREE))
    return Estimate(float(np.median(values)), float(iqr(values, rng=(16.275, 83.725)) / 2))


@dataclass(frozen=True)
class W1EFP:
    """Result of :func:`w1efp`: per-EFP ``means`` and ``stds`` (k,) over the batches (jetnet's
    return value) and ``per_batch`` (num_batches, k), the W1 of each batch."""

    means: np.ndarray
    stds: np.ndarray
    per_batch: np.ndarray

    def average(self) -> Estimate:
        """The W1 averaged over the k EFPs (the single W1-EFP number of arXiv:2106.11535):
        mean over batches of the per-batch average, error its standard deviation over the
        batches (ddof 0, as jetnet's stds)."""
        per_batch = self.per_batch.mean(axis=1)
        return Estimate(float(per_batch.mean()), float(per_batch.std()))


def w1efp(
    efps1: Any,
    efps2: Any,
    *,
    num_eval_samples: int = JETNET_W1EFP_DEFAULTS["num_eval_samples"],
    num_batches: int = JETNET_W1EFP_DEFAULTS["num_batches"],
    seed: int | np.random.Generator = 0,
) -> W1EFP:
    """``jetnet.evaluation.w1efp`` on precomputed EFPs (n1, k) and (n2, k) (jetnet computes
    :data:`W1EFP_GRAPHS` EFPs of its jets first: :func:`jetnet_efps`), in units of the EFPs.

    Each batch draws ``num_eval_samples`` rows of ``efps1`` then of ``efps2`` with replacement
    (``Generator.choice``) from ``seed``: an int seeds ``default_rng``; a ``Generator`` is used
    as it is (jetnet uses its module's ``rng``). Raises ``ValueError`` as :func:`jetnet_fpd`
    (with >= 1 row), or for num_eval_samples < 1 or num_batches < 1.
    """
    x, y = paired_features(efps1, efps2)
    if num_eval_samples < 1 or num_batches < 1:
        raise ValueError(f"need num_eval_samples >= 1 and num_batches >= 1, got "
                         f"{num_eval_samples}, {num_batches}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    w1s = []
    for _ in range(num_batches):
        rand1 = rng.choice(len(x), size=num_eval_samples)
        rand2 = rng.choice(len(y), size=num_eval_samples)
        a, b = x[rand1], y[rand2]
        w1s.append([wasserstein_distance(a[:, i], b[:, i]) for i in range(x.shape[1])])
    per_batch = np.asarray(w1s, dtype=np.float64)
    return W1EFP(per_batch.mean(axis=0), per_batch.std(axis=0), per_batch)
