"""Conditional-flow-matching (CFM) event generator for Z -> mu mu + n jets at a fixed jet
multiplicity, with a pluggable velocity network: the Lorentz-equivariant L-GATr or a standard
transformer (Spinner thesis Sec. 6.4, Brehmer et al. arXiv:2411.00446; reference code
heidelberg-hepml/lorentz-gatr, HEAD 35aca2a, ``experiments/eventgen/{cfm,wrappers,
coordinates,transforms,geometry,distributions}.py``).

**Events.** ``P = 2 + n`` objects, ``mu_1, mu_2, j_1 .. j_n``, each pT-ordered within its kind
(:class:`jetfm.data.events.Events`). Per object the CFM coordinates (thesis Eq. (6.32);
reference ``StandardLogPtPhiEtaLogM2``) are

    x = (log(pT - pT_min), phi, eta, log m),

with ``pT_min`` the jet cut (20 GeV; 0 for the muons, which have no cut here), jet masses raised
to ``mass_floor`` (0.01 GeV, as :class:`jetfm.models.jetgpt_inputs.EventPreprocessing`) before
the log and counted. Every component except ``phi`` is standardised per object position with the
training events' mean and standard deviation (reference ``StandardNormal(dims_fixed=[1])``).
The thesis and the reference use ``log m^2``; standardised, ``log m`` is the same coordinate.
Muon masses are fixed (:data:`jetfm.data.events.MUON_MASS`): their component is held at 0, its
velocity is 0 and it is left out of the loss and the likelihood (reference ``onshell_list``:
``handle_velocity`` sets the mass velocity of on-shell particles to 0).

**Flow.** Data at ``t = 0``, base at ``t = 1`` (thesis Eqs. (6.28)-(6.31); the convention of
:mod:`jetfm.nn.flow`): ``x_t = (1 - t) x_0 + t x_1``, target velocity ``x_1 - x_0``, a
mean-squared-error loss (:func:`jetfm.nn.flow.flow_loss`). ``phi`` is periodic (reference
``SimplePossiblyPeriodicGeometry``): the target is the shortest way round, ``wrap(x_1 - x_0)``,
and ``x_t`` is wrapped into ``[-pi, pi)``, so paths cross ``phi = +-pi`` (thesis Fig. 6.5).
**Base**: standard normal in the standardised coordinates, ``phi`` uniform in ``[-pi, pi)``
(reference base distribution 4, ``StandardLogPtPhiEtaLogM2``), invariant under rotations about
the beam, the symmetry left after the symmetry breaking (thesis: "we have to choose a base
distribution that is invariant under the symmetry group"). The paper's configuration
(``config_paper/ttbar.yaml``: ``base_type: 2``) draws ``(px, py, pz, log m^2)`` instead and
rejects base events that fail the pT and Delta R cuts; here the log(pT - pT_min) coordinate maps
the pT cut onto the whole real line, so no rejection is needed, and the Delta R_jj cut is not
imposed on the base (thesis Tab. 6.6: +- rejection changes the NLL by 0.07 of 32 nats).
**Sampling**: the ODE ``dx/dt = v(x, t)`` from ``t = 1`` to ``t = 0`` on a uniform grid,
classic fourth-order Runge-Kutta (reference: ``torchdiffeq.odeint(method="rk4",
step_size=0.02)``, i.e. 50 steps; torchdiffeq's ``rk4`` is the 3/8-rule variant) or the
explicit midpoint rule (:func:`jetfm.nn.flow.sample_midpoint`'s rule). ``torchcfm`` and
``zuko`` are not used: torchcfm's ``ConditionalFlowMatcher(sigma=0)`` is the same two lines
(``x_t`` and ``x_1 - x_0``) without the periodic ``phi`` path or the fixed muon-mass
components, and a fixed-grid solver (as torchdiffeq's ``rk4`` with ``step_size``) is a few lines
more; writing them out keeps one flow convention with :mod:`jetfm.nn.flow` (the PET generator)
and no new dependency.
**Likelihood** (:meth:`CFMGenerator.log_prob`): the instantaneous change of variables,
``log p_0(x_0) = log p_1(x_1) + int_0^1 div v(x_t, t) dt`` (Chen et al. 2018,
arXiv:1806.07366, Eq. (4)), integrated with the same fixed-step solver from the data to the
base, with the exact divergence (one backward pass per free coordinate) or Hutchinson's
estimator with Rademacher probes (Grathwohl et al. 2018, arXiv:1810.01367; reference
``hutchinson_trace``, used there with ``dopri5``).

**Velocity networks** (``CFMConfig.velocity``), both fed the position of the object (one-hot
over the ``P`` positions: its type and pT rank; reference ``get_type_token``) and the time
through a Gaussian Fourier projection (8 features, scale 30) and a linear layer (reference
``GaussianFourierProjection`` + ``nn.Linear``), as scalars per object:

* ``"lgatr"`` (reference ``GATrCFM``): the state is mapped to four-momenta
  ``p = (E, px, py, pz) / units`` and each object's ``p`` is the vector (grade-1) part of one
  multivector channel (:func:`lgatr.embed_vector`); the reference multivectors of
  :func:`lgatr.get_spurions` (the beam as the x-y-plane bivector, the time direction
  (1, 0, 0, 0)) are extra multivector *channels* of every object (reference ``spurion_token:
  false``; jetfm's tagging backbone :mod:`jetfm.models.lgatr` puts them in extra tokens), which
  break the Lorentz group down to rotations about the beam axis. The velocity is the vector
  part of the output channel, ``v_p``, carried back to the coordinates with the Jacobian,
  ``v_x = (d x / d p) v_p`` (thesis Eq. (6.33)); the ``log pT`` and ``log m`` components are then
  overwritten by two scalar outputs (thesis Sec. 6.4, reference ``scalar_dims: [0, 3]``: the
  Jacobians of the logarithms are large for soft or light objects).
* ``"transformer"`` (reference ``TransformerCFM``): the standardised coordinates ``x``, the
  position one-hot and the time embedding, concatenated per object, through a linear embedding,
  pre-norm blocks (:class:`jetfm.nn.transformer.Block`) and a linear read-out of ``v_x``.

``coordinate_scalars`` (L-GATr only, off by default as in the reference) adds each object's
standardised ``(log pT, eta, log m)`` to its scalar inputs: invariant under rotations about the
beam, so the symmetry kept is the same, and "formally equivalent to the reference
multivectors" (thesis Sec. 6.1.3, where the tagger gets pT, E, Delta R as scalars for the same
reason). Measured here (Z + 1 jet, 1,000 events, 2 blocks, 8 / 16 channels, batch 128, lr
1e-3): the training loss after 400 steps is 7.69 with the reference inputs and 6.86 with
them (a 64-wide transformer: 6.88); without them the small L-GATr must rebuild the
logarithms of the coordinates from the four-momenta, which small CPU-scale networks do slowly.

Defaults (:class:`CFMConfig`) are the paper's (``config_paper/model/gatr_eventgen.yaml``,
thesis Tab. A.5): L-GATr 6 blocks, 16 multivector and 32 scalar channels, 8 heads,
``increase_hidden_channels: 2`` (``attn_ratio=2`` in ``lgatr`` 2.0.0), ``head_scale: false``,
the MLP at twice the channels; 540,174 parameters for Z + 1 jet (thesis: 5.4 x 10^5). The
transformer default (96 channels, 6 blocks, 8 heads, MLP x4: 0.67 M parameters) is near the
paper's 108-channel, 5.7 x 10^5-parameter baseline (jetfm's block splits the width over the
heads, so the width must be a multiple of 8). ``units`` = 100 GeV (the reference's ttbar value
is 206.6 GeV; Z + jets objects are softer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jetfm.checkpoint import load_model, save_model
from jetfm.checks import POSITIVE, POSITIVE_INT, check_divisible, check_fields, check_flag
from jetfm.data.events import MUON_MASS, Events
from jetfm.nn.flow import flow_loss, interpolate, velocity_target
from jetfm.nn.transformer import Block
from jetfm.physics.kinematics import wrap_phi

COMPONENTS = ("log_pt", "phi", "eta", "log_m")
"""The four CFM coordinates of every object, in order (thesis Eq. (6.32), reference order)."""
LOG_PT, PHI, ETA, LOG_M = range(4)
VELOCITIES = ("lgatr", "transformer")
SOLVERS = ("rk4", "midpoint")
DIVERGENCES = ("exact", "hutchinson")
BEAM_REFERENCES = ("xyplane", None)
LOG_CUTOFF = 10.0
"""Largest log value (log pT, log m in GeV) exponentiated when the state is mapped to
four-momenta, and largest |eta| (reference ``CUTOFF = 10``): keeps states far off the data
finite during sampling."""
MODEL_KIND = "jetfm.cfm_generator"


# ----------------------------------------------------------------------------- coordinates
@dataclass
class EventCoordinates:
    """The map between Z + ``n_jets`` jets :class:`Events` and the standardised CFM coordinates
    (module docstring). ``mean``/``std``: (2 + n_jets) x 4 tables from :meth:`fit` (``phi`` and
    the muon masses keep mean 0, std 1); ``jet_pt_min`` [GeV] and ``mass_floor`` [GeV] as in
    :class:`jetfm.models.jetgpt_inputs.EventPreprocessing`. ``ValueError`` naming the field for
    ``n_jets < 0``, a negative cut, a floor <= 0 or tables of the wrong shape / not finite /
    std <= 0."""

    n_jets: int
    jet_pt_min: float = 20.0
    mass_floor: float = 0.01
    mean: list[list[float]] | None = None
    std: list[list[float]] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.n_jets, bool) or int(self.n_jets) != self.n_jets or self.n_jets < 0:
            raise ValueError(f"n_jets: {self.n_jets!r} must be a whole number >= 0")
        self.n_jets = int(self.n_jets)
        if not (np.isfinite(self.jet_pt_min) and self.jet_pt_min >= 0):
            raise ValueError(f"jet_pt_min: {self.jet_pt_min!r} must be >= 0 GeV")
        if not (np.isfinite(self.mass_floor) and self.mass_floor > 0):
            raise ValueError(f"mass_floor: {self.mass_floor!r} must be > 0 GeV")
        shape = (self.n_objects, 4)
        if self.mean is None:
            self.mean = np.zeros(shape).tolist()
        if self.std is None:
            self.std = np.ones(shape).tolist()
        mean, std = np.asarray(self.mean, float), np.asarray(self.std, float)
        if mean.shape != shape or std.shape != shape or not np.isfinite(mean).all() \
                or not (np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"mean and std must be finite {shape[0]} x 4 tables (std > 0) for "
                             f"{self.n_jets} jets, got {mean.shape} and {std.shape}")

    @property
    def n_objects(self) -> int:
        """P = 2 muons + n_jets jets."""
        return 2 + self.n_jets

    @property
    def pt_min(self) -> np.ndarray:
        """(P,) the pT cut of each position [GeV]: 0 for the muons, ``jet_pt_min`` for jets."""
        return np.r_[0.0, 0.0, np.full(self.n_jets, self.jet_pt_min)]

    @property
    def free(self) -> np.ndarray:
        """(P, 4) bool: the components that are generated (all but the muon masses)."""
        free = np.ones((self.n_objects, 4), dtype=bool)
        free[:2, LOG_M] = False
        return free

    def _objects(self, events: Events, what: str) -> np.ndarray:
        if len(events) == 0:
            raise ValueError(f"{what}: no events")
        wrong = events.n_jets != self.n_jets
        if wrong.any():
            raise ValueError(f"{what}: {int(wrong.sum())} of {len(events)} events do not have "
                             f"exactly {self.n_jets} jets (select them first)")
        objects, _ = events.objects()
        objects = objects[:, :self.n_objects]
        low = objects[..., 0] <= self.pt_min[None]
        if low.any():
            raise ValueError(f"{what}: {int(low.sum())} objects at or below their pT cut "
                             f"(jets: {self.jet_pt_min:g} GeV; muons: 0)")
        return objects

    def raw(self, events: Events, what: str = "events") -> tuple[np.ndarray, int]:
        """Unstandardised coordinates (N, P, 4) float64 and the number of jets raised to the
        mass floor. ``ValueError`` naming ``what`` for events of another multiplicity or
        objects at or below their pT cut."""
        objects = self._objects(events, what)
        pt, eta, phi, m = (objects[..., i] for i in range(4))
        floored = int((objects[:, 2:, 3] < self.mass_floor).sum())
        raw = np.stack([np.log(pt - self.pt_min[None]), phi, eta,
                        np.log(np.maximum(m, self.mass_floor))], axis=-1)
        raw[:, :2, LOG_M] = 0.0  # muon masses are fixed
        return raw, floored

    @classmethod
    def fit(cls, events: Events, n_jets: int, jet_pt_min: float = 20.0,
            mass_floor: float = 0.01) -> EventCoordinates:
        """Means and standard deviations per position of the training ``events`` (all with
        ``n_jets`` jets; ``ValueError`` otherwise or for fewer than 2 events)."""
        coords = cls(n_jets, jet_pt_min, mass_floor)
        raw, _ = coords.raw(events, "training events")
        if len(raw) < 2:
            raise ValueError(f"training events: {len(raw)} event(s), need 2 for a standard "
                             "deviation")
        mean, std = raw.mean(axis=0), np.maximum(raw.std(axis=0), 1e-6)
        fixed = ~coords.free
        mean[:, PHI], std[:, PHI] = 0.0, 1.0
        mean[fixed], std[fixed] = 0.0, 1.0
        coords.mean, coords.std = mean.tolist(), std.tolist()
        return coords

    def encode(self, events: Events, what: str = "events") -> tuple[np.ndarray, int]:
        """Standardised coordinates (N, P, 4) float32 and the number of jets raised to the
        mass floor; errors as :meth:`raw`."""
        raw, floored = self.raw(events, what)
        x = (raw - np.asarray(self.mean)[None]) / np.asarray(self.std)[None]
        return x.astype(np.float32), floored

    def decode(self, x: np.ndarray, meta: dict[str, Any] | None = None
               ) -> tuple[Events, int]:
        """Events from standardised coordinates (N, P, 4) (the inverse of :meth:`encode` up
        to the mass floor), muon masses :data:`MUON_MASS`, ``phi`` wrapped, muons and jets each
        re-ordered in pT; returns them and the number of events whose order changed.
        ``ValueError`` for a wrong shape or non-finite values (drop those events first:
        :func:`finite_events`)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[1:] != (self.n_objects, 4):
            raise ValueError(f"decode: x of shape {x.shape}, expected (N, {self.n_objects}, 4)")
        if not np.isfinite(x).all():
            raise ValueError("decode: non-finite coordinates (drop those events first)")
        raw = x * np.asarray(self.std)[None] + np.asarray(self.mean)[None]
        with np.errstate(over="ignore"):
            pt = np.exp(raw[..., LOG_PT]) + self.pt_min[None]
            m = np.exp(raw[..., LOG_M])
        m[:, :2] = MUON_MASS
        objects = np.stack([pt, raw[..., ETA], wrap_phi(raw[..., PHI]), m], axis=-1)
        if not np.isfinite(objects).all():
            raise ValueError("decode: coordinates beyond float range (pT or m overflow); drop "
                             "those events first")
        objects[..., 2] = np.where(objects[..., 2] >= np.pi, -np.pi, objects[..., 2])
        muons, moved_mu = _pt_sorted(objects[:, :2])
        jets, moved_j = _pt_sorted(objects[:, 2:])
        events = Events(muons, jets, np.full(len(x), self.n_jets, dtype=np.int64),
                        dict(meta or {}))
        return events, int((moved_mu | moved_j).sum())

    def log_jacobian(self, events: Events, what: str = "events") -> np.ndarray:
        """(N,) ``log |det d x / d y|`` with ``y`` the physical coordinates of the free
        components, per object ``(pT [GeV], eta, phi, m [GeV])`` (muons without m): add it to a
        log density in ``x`` to get the log density in ``y``. A jet below the mass floor counts
        at the floor. Errors as :meth:`raw`."""
        objects = self._objects(events, what)
        std = np.asarray(self.std)
        jac = -np.log(objects[..., 0] - self.pt_min[None]) - np.log(std[:, LOG_PT])[None]
        jac = jac - np.log(std[:, ETA])[None]
        mass = np.maximum(objects[:, 2:, 3], self.mass_floor)
        jets = -np.log(mass) - np.log(std[2:, LOG_M])[None]
        return jac.sum(axis=1) + jets.sum(axis=1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pt_sorted(objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Objects (N, K, 4) sorted by pT (column 0) descending and (N,) whether the order
    changed."""
    order = np.argsort(-objects[..., 0], axis=1, kind="stable")
    moved = (order != np.arange(objects.shape[1])[None]).any(axis=1)
    return np.take_along_axis(objects, order[..., None], axis=1), moved


def finite_events(x: np.ndarray, coords: EventCoordinates) -> np.ndarray:
    """(N,) bool: generated coordinates ``x`` (N, P, 4) that decode to finite events (finite,
    and pT, m below float overflow)."""
    x = np.asarray(x, dtype=np.float64)
    raw = x * np.asarray(coords.std)[None] + np.asarray(coords.mean)[None]
    limit = math.log(np.finfo(np.float64).max) - 1
    big = (raw[..., LOG_PT] > limit) | (raw[..., LOG_M] > limit)
    return np.isfinite(x).all(axis=(1, 2)) & ~big.any(axis=1)


# ----------------------------------------------------------------------------- the flow
def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """An angle wrapped into ``[-pi, pi)`` [rad] (reference ``ensure_angle``)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def periodic_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
                  periodic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The straight conditional path from data ``x0`` (t = 0) to base ``x1`` (t = 1), (B, ...,
    C) each with ``t`` (B,) and ``periodic`` (C,) bool marking angles: returns ``(x_t, v)`` with
    ``v = x1 - x0`` (:func:`jetfm.nn.flow.velocity_target`), its periodic components the
    shortest way round (wrapped into [-pi, pi)), and ``x_t = x0 + t v`` (periodic components
    wrapped). Reference ``SimplePossiblyPeriodicGeometry.get_trajectory``."""
    v = velocity_target(x0, x1)
    v = torch.where(periodic, wrap_angle(v), v)
    x_t = interpolate(x0, x0 + v, t)  # (1 - t) x0 + t (x0 + v) = x0 + t v
    return torch.where(periodic, wrap_angle(x_t), x_t), v


def cfm_loss(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
             x1: torch.Tensor, t: torch.Tensor, periodic: torch.Tensor) -> torch.Tensor:
    """Per-sample conditional flow-matching loss (B,) (thesis Eq. (6.30); Lipman et al. 2022,
    arXiv:2210.02747, Eq. (9) with sigma_min = 0): ``|velocity(x_t, t) - (x1 - x0)|^2`` summed
    over the components (and averaged over the objects when ``x0`` is (B, P, C):
    :func:`jetfm.nn.flow.flow_loss`), on the path of :func:`periodic_path`. With the coupling
    ``(x0, x1)`` drawn independently, its minimum over velocity fields is not 0 but the average
    conditional variance of ``x1 - x0`` given ``x_t``; it is 0 only when ``x1`` is a function of
    ``x0`` (a deterministic coupling, e.g. a shift)."""
    x_t, target = periodic_path(x0, x1, t, periodic)
    pred = velocity(x_t, t)
    if x0.ndim == 3:
        mask = torch.ones(x0.shape[:2], dtype=torch.bool, device=x0.device)
        return flow_loss(pred, target, mask)
    return flow_loss(pred, target)


State = tuple[torch.Tensor, ...]


def odeint_fixed(f: Callable[[State, torch.Tensor], State], state: State, t0: float,
                 t1: float, steps: int, method: str = "rk4") -> State:
    """Integrate ``d state / dt = f(state, t)`` from ``t0`` to ``t1`` in ``steps`` equal steps
    with the classic fourth-order Runge-Kutta rule (``rk4``, 4 evaluations per step) or the
    explicit midpoint rule (``midpoint``, 2). ``state``: a tuple of tensors, ``t`` is passed as
    a 0-d tensor. ``ValueError`` for an unknown method or ``steps`` < 1."""
    if method not in SOLVERS:
        raise ValueError(f"solver {method!r}: use one of {list(SOLVERS)}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ValueError(f"steps: {steps!r} must be a whole number >= 1")
    h = (t1 - t0) / steps
    device = state[0].device

    def axpy(a: State, scale: float, b: State) -> State:
        return tuple(x + scale * y for x, y in zip(a, b, strict=True))

    for k in range(int(steps)):
        t = torch.tensor(t0 + k * h, device=device)
        half = t + 0.5 * h
        k1 = f(state, t)
        if method == "midpoint":
            state = axpy(state, h, f(axpy(state, 0.5 * h, k1), half))
            continue
        k2 = f(axpy(state, 0.5 * h, k1), half)
        k3 = f(axpy(state, 0.5 * h, k2), half)
        k4 = f(axpy(state, h, k3), t + h)
        state = tuple(s + h / 6 * (a + 2 * b + 2 * c + d)
                      for s, a, b, c, d in zip(state, k1, k2, k3, k4, strict=True))
    return state


def divergence(v: torch.Tensor, x: torch.Tensor, free: torch.Tensor, method: str = "exact",
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) divergence ``sum_i d v_i / d x_i`` over the ``free`` entries (a bool mask of the
    shape of one sample) of a velocity ``v`` computed from ``x`` (B, ...) with autograd:
    ``exact`` takes one backward pass per free entry (reference ``autograd_trace``),
    ``hutchinson`` one pass with a Rademacher probe ``eps``, ``eps^T (dv/dx) eps`` (unbiased;
    reference ``hutchinson_trace``). The graph of ``v`` is kept (callers detach)."""
    if method not in DIVERGENCES:
        raise ValueError(f"divergence {method!r}: use one of {list(DIVERGENCES)}")
    free = free.expand_as(x[0])
    if method == "hutchinson":
        eps = torch.randint(0, 2, x.shape, generator=generator, device="cpu")
        eps = (2 * eps - 1).to(x) * free
        grad = torch.autograd.grad((v * eps).sum(), x, retain_graph=True)[0]
        return (grad * eps).flatten(1).sum(dim=1)
    total = x.new_zeros(len(x))
    flat_v, index = v.flatten(1), free.flatten().nonzero().flatten().tolist()
    for i in index:
        grad = torch.autograd.grad(flat_v[:, i].sum(), x, retain_graph=True)[0]
        total = total + grad.flatten(1)[:, i]
    return total


def ode_log_prob(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 x0: torch.Tensor, base_log_prob: Callable[[torch.Tensor], torch.Tensor],
                 free: torch.Tensor, steps: int, method: str = "rk4",
                 divergence_method: str = "exact", seed: int = 0) -> torch.Tensor:
    """``log p_0(x0)`` (B,) of the flow ``dx/dt = velocity(x, t)`` whose ``t = 1`` density is
    ``base_log_prob``: integrate ``x`` and ``int div v dt`` from 0 to 1 (module docstring,
    Chen et al. 2018 Eq. (4)) and return ``base_log_prob(x_1) + int_0^1 div v dt``, in the
    coordinates of ``x0`` over its ``free`` entries."""
    generator = torch.Generator().manual_seed(seed)

    def f(state: State, t: torch.Tensor) -> State:
        with torch.enable_grad():
            x = state[0].detach().requires_grad_(True)
            v = velocity(x, t.expand(len(x)))
            div = divergence(v, x, free, divergence_method, generator)
        return v.detach(), div.detach()

    x1, integral = odeint_fixed(f, (x0, x0.new_zeros(len(x0))), 0.0, 1.0, steps, method)
    return base_log_prob(x1) + integral


# ----------------------------------------------------------------------------- networks
@dataclass
class CFMConfig:
    """The velocity network (module docstring; defaults: the paper's sizes). ``velocity``:
    ``"lgatr"`` or ``"transformer"``; ``num_blocks``, ``num_heads`` for both; L-GATr:
    ``hidden_mv_channels``, ``hidden_s_channels``, ``attn_ratio`` (the old
    ``increase_hidden_channels``), ``mlp_ratio``, ``head_scale``, ``beam_reference``
    (``"xyplane"`` or None), ``add_time_reference``, ``units`` [GeV per unit of the embedded
    four-momenta], ``scalar_velocity`` (overwrite the log pT and log m velocity by scalar
    outputs), ``coordinate_scalars`` (also feed each object's standardised log pT, eta and
    log m as scalars; module docstring); transformer: ``dim`` (a multiple of
    ``num_heads``), ``expansion`` (MLP width factor); the time embedding: ``embed_t_dim``
    (even) Fourier features of scale ``embed_t_scale``. ``ValueError`` naming the field."""

    velocity: str = "lgatr"
    num_blocks: int = 6
    num_heads: int = 8
    embed_t_dim: int = 8
    embed_t_scale: float = 30.0
    hidden_mv_channels: int = 16
    hidden_s_channels: int = 32
    attn_ratio: int = 2
    mlp_ratio: int = 2
    head_scale: bool = False
    beam_reference: str | None = "xyplane"
    add_time_reference: bool = True
    units: float = 100.0
    scalar_velocity: bool = True
    coordinate_scalars: bool = False
    dim: int = 96
    expansion: int = 4

    def __post_init__(self) -> None:
        if self.velocity not in VELOCITIES:
            raise ValueError(f"velocity: {self.velocity!r} is not one of {list(VELOCITIES)}")
        check_fields(self, {**dict.fromkeys(("num_blocks", "num_heads", "embed_t_dim",
                                             "hidden_mv_channels", "hidden_s_channels",
                                             "attn_ratio", "mlp_ratio", "dim", "expansion"),
                                            POSITIVE_INT),
                            "embed_t_scale": POSITIVE, "units": POSITIVE})
        if self.embed_t_dim % 2:
            raise ValueError(f"embed_t_dim: {self.embed_t_dim} must be even (sin and cos)")
        if self.beam_reference not in BEAM_REFERENCES:
            raise ValueError(f"beam_reference: {self.beam_reference!r} is not one of "
                             f"{list(BEAM_REFERENCES)}")
        for name in ("head_scale", "add_time_reference", "scalar_velocity",
                     "coordinate_scalars"):
            check_flag(name, getattr(self, name))
        if self.velocity == "transformer":
            check_divisible(self, "dim", "num_heads")


class GaussianFourierTime(nn.Module):
    """Time embedding (B,) -> (B, dim): ``[sin(2 pi t w), cos(2 pi t w)]`` with ``dim / 2``
    fixed frequencies ``w ~ N(0, scale^2)`` (a buffer), then a linear layer (reference
    ``GaussianFourierProjection(embed_dim=8, scale=30)`` + ``nn.Linear``; Tancik et al. 2020,
    arXiv:2006.10739)."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("freqs", scale * torch.randn(dim // 2))
        self.linear = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angle = 2 * math.pi * t[:, None].to(self.freqs.dtype) * self.freqs
        return self.linear(torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1))


class LGATrVelocity(nn.Module):
    """L-GATr velocity in Minkowski space (module docstring): four-momenta ``p`` (B, P, 4) in
    ``units`` and per-object scalars (B, P, S) -> ``(v_p (B, P, 4), scalars (B, P, 4))``."""

    def __init__(self, config: CFMConfig, n_scalars: int) -> None:
        super().__init__()
        from lgatr import LGATr, get_spurions

        spurions = get_spurions(config.beam_reference, config.add_time_reference)
        self.register_buffer("spurions", spurions, persistent=False)  # (R, 16)
        self.net = LGATr(
            num_blocks=config.num_blocks, in_mv_channels=1 + len(spurions), out_mv_channels=1,
            hidden_mv_channels=config.hidden_mv_channels, in_s_channels=n_scalars,
            out_s_channels=4, hidden_s_channels=config.hidden_s_channels,
            attention=dict(num_heads=config.num_heads, attn_ratio=config.attn_ratio,
                           head_scale=config.head_scale),
            mlp=dict(mlp_ratio=config.mlp_ratio))

    def forward(self, p: torch.Tensor, scalars: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        from lgatr import embed_vector, extract_vector

        mv = embed_vector(p)[..., None, :]  # (B, P, 1, 16)
        refs = self.spurions.to(p.dtype).expand(*p.shape[:2], -1, -1)
        out_mv, out_s = self.net(torch.cat([mv, refs], dim=-2), scalars=scalars)
        return extract_vector(out_mv[..., 0, :]), out_s


class TransformerVelocity(nn.Module):
    """Transformer velocity (module docstring): coordinates (B, P, 4) and scalars (B, P, S)
    -> ``v_x`` (B, P, 4). No position embedding: the objects are told apart by the position
    one-hot among the scalars only."""

    def __init__(self, config: CFMConfig, n_scalars: int) -> None:
        super().__init__()
        self.embed = nn.Linear(4 + n_scalars, config.dim)
        self.blocks = nn.ModuleList(Block(config.dim, config.num_heads, config.expansion)
                                    for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, 4)

    def forward(self, x: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        h = self.embed(torch.cat([x, scalars], dim=-1))
        for block in self.blocks:
            h, _ = block(h)
        return self.out(self.norm(h))


# ----------------------------------------------------------------------------- generator
class CFMGenerator(nn.Module):
    """The CFM event generator for one multiplicity (module docstring). ``coords`` fixes the
    multiplicity and the standardisation (buffers, saved with the weights)."""

    def __init__(self, config: CFMConfig, coords: EventCoordinates) -> None:
        super().__init__()
        self.config, self.coords = config, coords
        p = coords.n_objects
        self.register_buffer("mean", torch.tensor(coords.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(coords.std, dtype=torch.float32))
        self.register_buffer("pt_min", torch.tensor(coords.pt_min, dtype=torch.float32))
        self.register_buffer("free", torch.tensor(coords.free))
        self.register_buffer("periodic", torch.tensor([c == PHI for c in range(4)]))
        self.time = GaussianFourierTime(config.embed_t_dim, config.embed_t_scale)
        n_scalars = p + config.embed_t_dim
        self.extra_scalars = config.velocity == "lgatr" and config.coordinate_scalars
        self.net = (LGATrVelocity(config, n_scalars + 3 * self.extra_scalars)
                    if config.velocity == "lgatr" else TransformerVelocity(config, n_scalars))

    @property
    def n_objects(self) -> int:
        return self.coords.n_objects

    # ---------------------------------------------------------------- coordinates (torch)
    def to_fourmomenta(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised coordinates (B, P, 4) -> four-momenta ``(E, px, py, pz)`` [GeV]
        (differentiable; log values and |eta| clipped at :data:`LOG_CUTOFF`; muon masses
        :data:`MUON_MASS`)."""
        raw = x * self.std + self.mean
        pt = torch.exp(raw[..., LOG_PT].clamp(max=LOG_CUTOFF)) + self.pt_min
        phi = raw[..., PHI]
        eta = raw[..., ETA].clamp(-LOG_CUTOFF, LOG_CUTOFF)
        mass = torch.exp(raw[..., LOG_M].clamp(max=LOG_CUTOFF))
        muon = torch.arange(self.n_objects, device=x.device) < 2
        mass = torch.where(muon, torch.full_like(mass, MUON_MASS), mass)
        px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
        energy = torch.sqrt(mass**2 + (pt * torch.cosh(eta)) ** 2)
        return torch.stack([energy, px, py, pz], dim=-1)

    def velocity_to_coordinates(self, v_p: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """The velocity in the standardised coordinates, ``(d x / d p) v_p`` (thesis Eq.
        (6.33)), of a Minkowski-space velocity ``v_p`` at ``p`` (both (B, P, 4), in
        ``units``): ``d log(pT - pT_min) = (px dpx + py dpy) / (pT (pT - pT_min))``,
        ``d phi = (px dpy - py dpx) / pT^2``, ``d eta = (dpz - pz (px dpx + py dpy) / pT^2) /
        |p|``, ``d log m = (E dE - p . dp) / m^2``; each divided by its standard deviation.
        """
        energy, px, py, pz = p.unbind(-1)
        de, dpx, dpy, dpz = v_p.unbind(-1)
        d_phi, d_eta = self._angular_velocity(v_p, p)
        pt = torch.sqrt(px**2 + py**2)
        pt_min = self.pt_min / self.config.units
        d_logpt = (px * dpx + py * dpy) / (pt * (pt - pt_min))
        m2 = energy**2 - px**2 - py**2 - pz**2
        d_logm = (energy * de - px * dpx - py * dpy - pz * dpz) / m2
        return torch.stack([d_logpt, d_phi, d_eta, d_logm], dim=-1) / self.std

    @staticmethod
    def _angular_velocity(v_p: torch.Tensor, p: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """(d phi / dt, d eta / dt) (B, P) of :meth:`velocity_to_coordinates`, unstandardised.
        Only these are computed when the log velocities come from scalar outputs: the
        ``log m`` row divides by ``m^2``, which float32 can round to 0 for light, energetic
        objects, and 0 / 0 would spoil the gradients even of an unused row."""
        _, px, py, pz = p.unbind(-1)
        _, dpx, dpy, dpz = v_p.unbind(-1)
        pt2 = px**2 + py**2
        momentum = torch.sqrt(pt2 + pz**2)
        d_phi = (px * dpy - py * dpx) / pt2
        d_eta = (dpz - pz * (px * dpx + py * dpy) / pt2) / momentum
        return d_phi, d_eta

    # ---------------------------------------------------------------- velocity
    def scalars(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        """Per-object scalar inputs (B, P, P + embed_t_dim): position one-hot, time."""
        onehot = torch.eye(self.n_objects, device=t.device, dtype=self.mean.dtype)
        onehot = onehot.expand(batch, -1, -1)
        time = self.time(t.expand(batch)).to(onehot.dtype)[:, None].expand(-1, self.n_objects,
                                                                           -1)
        return torch.cat([onehot, time], dim=-1)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``v(x, t)`` (B, P, 4) in the standardised coordinates for states ``x`` (B, P, 4)
        (``phi`` wrapped first) and times ``t`` (B,) or 0-d; the fixed components' velocity is
        0."""
        x = torch.where(self.periodic, wrap_angle(x), x)
        scalars = self.scalars(t, len(x))
        if self.config.velocity == "lgatr":
            if self.extra_scalars:
                scalars = torch.cat([scalars, x[..., [LOG_PT, ETA, LOG_M]]], dim=-1)
            p = self.to_fourmomenta(x) / self.config.units
            v_p, s = self.net(p, scalars)
            if self.config.scalar_velocity:
                d_phi, d_eta = self._angular_velocity(v_p, p)
                v = torch.stack([s[..., LOG_PT], d_phi / self.std[:, PHI],
                                 d_eta / self.std[:, ETA], s[..., LOG_M]], dim=-1)
            else:
                v = self.velocity_to_coordinates(v_p, p)
        else:
            v = self.net(x, scalars)
        return v * self.free

    # ---------------------------------------------------------------- base, loss, sampling
    def sample_base(self, n: int, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` base states (n, P, 4): standard normal, ``phi`` uniform in [-pi, pi), fixed
        components 0. Drawn on the CPU with ``generator``, then moved."""
        shape = (n, self.n_objects, 4)
        x = torch.randn(shape, generator=generator)
        phi = (2 * torch.rand(shape[:2], generator=generator) - 1) * math.pi
        x[..., PHI] = phi
        x = x * self.free.cpu()
        return x.to(device if device is not None else self.mean.device)

    def base_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) log density of the base at ``x`` (B, P, 4), over the free components."""
        normal = -0.5 * (x**2 + math.log(2 * math.pi))
        per = torch.where(self.periodic, torch.full_like(x, -math.log(2 * math.pi)), normal)
        return (per * self.free).sum(dim=(1, 2))

    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-event CFM loss (B,) of data states ``x0`` (B, P, 4) with base noise and times
        ``t ~ U(0, 1)`` drawn with ``generator`` (CPU; None: torch's global generator):
        :func:`cfm_loss`, summed over components, averaged over objects."""
        x1 = self.sample_base(len(x0), generator, x0.device)
        t = torch.rand(len(x0), generator=generator).to(x0)
        return cfm_loss(self.velocity, x0, x1, t, self.periodic)

    @torch.no_grad()
    def sample(self, n: int, steps: int = 50, solver: str = "rk4", batch_size: int = 4096,
               seed: int | None = None) -> torch.Tensor:
        """``n`` generated states (n, P, 4) on the CPU (``phi`` wrapped), integrating from the
        base (t = 1) to the data (t = 0) with ``steps`` steps of ``solver`` (module docstring);
        ``seed`` fixes the base draw. Map them to events with :meth:`EventCoordinates.decode`
        (after :func:`finite_events`)."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"sample: n must be a whole number >= 0, got {n!r}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        out = []
        for start in range(0, int(n), batch_size):
            x1 = self.sample_base(min(batch_size, n - start), generator)

            def f(state: State, t: torch.Tensor) -> State:
                return (self.velocity(state[0], t),)

            (x0,) = odeint_fixed(f, (x1,), 1.0, 0.0, steps, solver)
            out.append(torch.where(self.periodic, wrap_angle(x0), x0).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.n_objects, 4)

    def log_prob(self, x0: torch.Tensor, steps: int = 50, solver: str = "rk4",
                 divergence_method: str = "exact", batch_size: int = 1024, seed: int = 0
                 ) -> torch.Tensor:
        """(B,) model log density of data states ``x0`` (B, P, 4) in the standardised
        coordinates over the free components (:func:`ode_log_prob`; Hutchinson probes seeded
        by ``seed``). Add :meth:`EventCoordinates.log_jacobian` for the density in physical
        coordinates."""
        parts = []
        device = self.mean.device
        for k, start in enumerate(range(0, len(x0), batch_size)):
            part = x0[start:start + batch_size].to(device)
            parts.append(ode_log_prob(self.velocity, part, self.base_log_prob, self.free,
                                      steps, solver, divergence_method, seed + k).cpu())
        return torch.cat(parts) if parts else torch.zeros(0)


# ----------------------------------------------------------------------------- files
def save_cfm(path: str | Path, model: CFMGenerator, meta: dict[str, Any] | None = None
             ) -> Path:
    """Write the weights, the :class:`CFMConfig`, the :class:`EventCoordinates` and ``meta``
    (JSON-able) to ``path`` (safetensors, atomic)."""
    return save_model(path, model.state_dict(), {
        "kind": MODEL_KIND, "config": asdict(model.config),
        "coordinates": model.coords.to_dict(), "meta": dict(meta or {})})


def load_cfm(path: str | Path, device: str | torch.device = "cpu"
             ) -> tuple[CFMGenerator, dict[str, Any]]:
    """The generator (eval mode) and ``meta`` of a file written by :func:`save_cfm`.
    ``FileNotFoundError`` for a missing file, ``ValueError`` naming the file for another kind
    of file."""
    tensors, header = load_model(path, device)
    if header.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a CFM generator file (kind {header.get('kind')!r})")
    model = CFMGenerator(CFMConfig(**header["config"]),
                         EventCoordinates(**header["coordinates"]))
    model.load_state_dict(tensors)
    return model.to(device).eval(), header["meta"]


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__: Sequence[str] = [
    "CFMConfig", "CFMGenerator", "EventCoordinates", "cfm_loss", "divergence",
    "finite_events", "load_cfm", "ode_log_prob", "odeint_fixed", "parameter_count",
    "periodic_path", "save_cfm", "wrap_angle"]
