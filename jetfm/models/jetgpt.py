"""JetGPT: an autoregressive transformer that generates objects one at a time with continuous
mixture likelihoods and learns when to stop.

Source: J. Spinner, dissertation "Symmetry-Aware Networks for the LHC" (2025), ch. 4 and 5;
Butter, Heimel, Plehn, Spinner et al., "Jet diffusion versus JetGPT" (arXiv:2305.10475) and
"Extrapolating jet radiation with autoregressive transformers" (arXiv:2412.12074); public code
heidelberg-hepml/jetgpt-splittings. The whole model is in this file (nanoGPT style):

* **Sequence.** An event (or a jet) is a pT-ordered sequence of objects ``x_1 .. x_n``, each a
  vector of ``C`` preprocessed components (event level: ``log(pT - pT_min), phi, eta, log m``,
  thesis Eq. (5.11) and Sec. 5.1.2). A start token carries the condition (e.g. the jet class).
* **Transformer.** A pre-LayerNorm causal transformer (GELU MLPs, thesis Sec. 5.1.4 and
  App. A.2) maps the prefix ``x_(1:i)`` to ``f(x_(1:i)) = (rho_i, v_i)``, Eq. (5.18): the
  split logit ``rho_i`` and the state ``v_i``. There is no absolute position embedding by
  default (``max_positions = 0``): the model must generate more objects than it saw, so a
  learned embedding of an unseen position is not an option; each object carries a learned
  embedding of its *type* (leading muon, second muon, jet), and the state for the next object
  adds the embedding of the next object's type.
* **Kinematics.** ``p_kin(x_(i+1) | v_i)`` factorises over the components, Eq. (5.17), each a
  Gaussian mixture, or a von Mises mixture for a periodic angle
  (:class:`jetfm.nn.mixtures.ComponentwiseLikelihood`). Components that are not generated for
  an object type (a muon's mass, the azimuth of the leading muon, which defines phi = 0) are
  masked from the loss and set to their fixed value when sampling.
* **Multiplicity.** ``p_split(x_(1:i)) = sigmoid(rho_i)`` with a Bernoulli term per step,
  Eqs. (5.15), (5.16) and (5.21): label 1 (another object follows) for ``i < n`` and 0 at
  ``i = n``. The split after the start token and after each of the ``fixed_types`` objects (the
  two muons of Z -> mu mu + jets) is forced to 1, thesis Fig. 5.2 and below Eq. (5.16).
* **Extrapolation** (:meth:`JetGPT.loss`): the truncated loss drops the Bernoulli term at
  ``i = n_max``, Eq. (5.22)/(5.25); the override loss replaces its label by a posterior
  ``y`` in [0, 1] with weight ``lambda``, Eqs. (5.29)-(5.31). Bootstrapping is a training-data
  change (:mod:`jetfm.tasks.jetgpt`).
* **Bayesian last layer** (``bayesian: true``): the output projection to ``(rho, v)`` is a
  :class:`jetfm.nn.bayesian.BayesianLinear`; the loss adds ``KL / n_train``, Eq. (5.23). A
  generated sample uses one weight draw (``jetfm.nn.bayesian.set_bayesian_mode(model,
  "fixed")``), and the spread over draws is the uncertainty of every histogram.

Shapes: ``x`` (B, T, C) float (padded rows arbitrary, even NaN), ``mask`` (B, T) bool with the
``n`` real objects first, ``condition`` (B,) int64 in ``[0, n_conditions)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.checks import POSITIVE_INT, Rule, check_divisible, check_fields, check_flag
from jetfm.models.backbone import Backbone, register_backbone
from jetfm.models.features import FeatureSpec, ParticleInputs
from jetfm.nn.bayesian import BayesianLinear, kl_divergence, set_bayesian_mode
from jetfm.nn.mixtures import (
    N_MIXTURE_DEFAULT,
    ComponentwiseLikelihood,
    GaussianMixture,
    VonMisesMixture,
)
from jetfm.nn.transformer import Block, KVCache

LOSS_MODES = ("full", "truncated", "override")


@dataclass
class JetGPTConfig:
    """Architecture. Defaults follow thesis Table A.2 where it applies (42 mixture elements);
    the size (``dim``, ``n_blocks``, ``n_heads``) is the CPU scale of jetfm's presets.

    ``components``: names of the per-object components in generation order (thesis Eq. (5.17):
    pT, phi, eta, m); ``periodic``: those modelled by von Mises mixtures (angles in radians).
    ``n_types`` object types; the first objects of every sequence have ``fixed_types`` (the
    split before each is forced to 1), all later ones ``free_type``. ``given[t]`` lists, per
    type, the components that are *not* generated (fixed); empty = all generated.
    ``n_conditions``: number of start tokens (classes). ``max_positions > 0`` adds a learned
    position embedding (sequences longer than ``max_positions`` objects are then refused).
    ``bayesian``: Bayesian output layer with prior width ``prior_sigma``.
    """

    components: tuple[str, ...] = ("log_pt", "phi", "eta", "log_m")
    periodic: tuple[str, ...] = ("phi",)
    n_types: int = 1
    fixed_types: tuple[int, ...] = ()
    free_type: int = 0
    given: tuple[tuple[str, ...], ...] = ()
    n_conditions: int = 1
    dim: int = 64
    n_blocks: int = 3
    n_heads: int = 4
    n_mixture: int = N_MIXTURE_DEFAULT
    head_hidden: tuple[int, ...] = ()
    max_positions: int = 0
    dropout: float = 0.0
    bayesian: bool = False
    prior_sigma: float = 1.0

    def __post_init__(self) -> None:
        """Lists become tuples (YAML); ``ValueError`` naming the key for: no or repeated
        components, a periodic or given name that is not a component, a type outside
        ``[0, n_types)``, ``given`` with a number of rows other than ``n_types``, sizes < 1,
        ``dim`` not a multiple of ``n_heads``, ``dropout`` outside [0, 1), ``prior_sigma``
        <= 0."""
        self.components = tuple(self.components)
        self.periodic = tuple(self.periodic)
        self.fixed_types = tuple(int(t) for t in self.fixed_types)
        self.given = tuple(tuple(g) for g in self.given)
        self.head_hidden = tuple(int(h) for h in self.head_hidden)
        check_fields(self, {**dict.fromkeys(("n_types", "n_conditions", "dim", "n_blocks",
                                             "n_heads", "n_mixture"), POSITIVE_INT),
                            "max_positions": Rule(int, low=0),
                            "dropout": Rule(float, low=0, high=1, high_open=True),
                            "prior_sigma": Rule(float, low=0, low_open=True)})
        check_flag("bayesian", self.bayesian)
        check_divisible(self)
        if not self.components or len(set(self.components)) != len(self.components):
            raise ValueError(f"components: need distinct names, got {list(self.components)}")
        for key, names in (("periodic", self.periodic),
                           *((f"given[{t}]", g) for t, g in enumerate(self.given))):
            unknown = [c for c in names if c not in self.components]
            if unknown:
                raise ValueError(f"{key}: {unknown} are not components {list(self.components)}")
        for key, t in (("free_type", self.free_type),
                       *((f"fixed_types[{i}]", t) for i, t in enumerate(self.fixed_types))):
            if not 0 <= t < self.n_types:
                raise ValueError(f"{key}: type {t} outside [0, n_types={self.n_types})")
        if self.given and len(self.given) != self.n_types:
            raise ValueError(f"given: {len(self.given)} rows for n_types={self.n_types}")
        if any(h < 1 for h in self.head_hidden):
            raise ValueError(f"head_hidden: widths must be >= 1, got {list(self.head_hidden)}")

    @property
    def n_fixed(self) -> int:
        """Objects every sequence starts with (their preceding splits are forced to 1)."""
        return len(self.fixed_types)

    @property
    def first_free_split(self) -> int:
        """The first step ``i`` whose split is learned: after the fixed objects, and never
        before the first object (no empty events, thesis Fig. 5.2)."""
        return max(self.n_fixed, 1)


class JetGPTBody(nn.Module):
    """The causal transformer of JetGPT without its heads: object embeddings (the components,
    a learned type embedding, optionally a position embedding), the condition's start token,
    pre-LayerNorm causal blocks and the final LayerNorm. :meth:`hidden` gives the states
    ``h_0 .. h_T`` (B, T+1, dim); :class:`JetGPT` adds the heads, :class:`JetGPTBackbone`
    uses the body as a jetfm backbone."""

    def __init__(self, config: JetGPTConfig) -> None:
        super().__init__()
        self.config = config
        c, d = len(config.components), config.dim
        self.embed = nn.Linear(c, d)
        self.type_embedding = nn.Embedding(config.n_types, d)
        self.start = nn.Embedding(config.n_conditions, d)
        self.position = (nn.Embedding(config.max_positions + 1, d)
                         if config.max_positions else None)
        self.blocks = nn.ModuleList(Block(d, config.n_heads, dropout=config.dropout)
                                    for _ in range(config.n_blocks))
        self.norm = nn.LayerNorm(d)
        given = torch.zeros(config.n_types, c, dtype=torch.bool)
        for t, names in enumerate(config.given):
            for name in names:
                given[t, config.components.index(name)] = True
        self.register_buffer("given", given, persistent=False)

    # ------------------------------------------------------------------ structure
    def types(self, length: int) -> torch.Tensor:
        """Type of the objects at positions 0 .. length-1 (length,) int64."""
        fixed = list(self.config.fixed_types[:length])
        rest = [self.config.free_type] * max(length - len(fixed), 0)
        return torch.tensor(fixed + rest, dtype=torch.long, device=self.given.device)

    def _check(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor) -> None:
        c = len(self.config.components)
        if x.ndim != 3 or x.shape[-1] != c:
            raise ValueError(f"JetGPT: x has shape {tuple(x.shape)}, expected (B, T, {c}) "
                             f"(components {list(self.config.components)})")
        if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
            raise ValueError(f"JetGPT: mask must be bool of shape {tuple(x.shape[:2])}, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        if condition.shape != x.shape[:1]:
            raise ValueError(f"JetGPT: condition has shape {tuple(condition.shape)}, expected "
                             f"({x.shape[0]},)")
        if condition.numel() and (int(condition.min()) < 0
                                  or int(condition.max()) >= self.config.n_conditions):
            raise ValueError(f"JetGPT: condition outside [0, n_conditions="
                             f"{self.config.n_conditions})")
        n = mask.sum(dim=1)
        if not torch.equal(mask, torch.arange(mask.shape[1], device=mask.device) < n[:, None]):
            raise ValueError("JetGPT: mask must hold the real objects first (no holes)")
        if bool((n < self.config.n_fixed).any()):
            raise ValueError(f"JetGPT: a sequence has fewer objects than the "
                             f"{self.config.n_fixed} fixed ones")
        if self.position is not None and x.shape[1] > self.config.max_positions:
            raise ValueError(f"JetGPT: {x.shape[1]} objects exceed max_positions="
                             f"{self.config.max_positions}")

    def _tokens(self, x: torch.Tensor, first: int) -> torch.Tensor:
        """Embeddings of objects at positions ``first .. first + T - 1``; given components are
        zeroed (their values carry no information)."""
        types = self.types(first + x.shape[1])[first:]
        x = torch.where(self.given[types][None], torch.zeros_like(x), x)
        h = self.embed(x) + self.type_embedding(types)[None]
        if self.position is not None:
            h = h + self.position(torch.arange(first + 1, first + 1 + x.shape[1],
                                               device=x.device))[None]
        return h

    def _start(self, condition: torch.Tensor) -> torch.Tensor:
        start = self.start(condition)[:, None]
        return start + self.position.weight[0] if self.position is not None else start

    def hidden(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor
               ) -> torch.Tensor:
        """States ``h_i`` (B, T+1, dim) after the final LayerNorm: entry ``i`` is computed from
        the start token and the first ``i`` objects (causal); entries past a sequence's end
        are computed but meaningless. Padded values (even NaN) never enter."""
        self._check(x, mask, condition)
        x = torch.where(mask[..., None], x, torch.zeros_like(x))
        h = torch.cat([self._start(condition), self._tokens(x, 0)], dim=1)
        keep = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)
        for block in self.blocks:
            h, _ = block(h, keep, causal=True)
        return self.norm(h)


class JetGPT(JetGPTBody):
    """The JetGPT model (see the module docstring): :class:`JetGPTBody` plus the split and
    kinematic heads. ``forward`` gives split logits and states; :meth:`log_likelihood_terms`
    and :meth:`loss` the likelihood of Eq. (5.16)/(5.21); :meth:`sample` generates
    sequences."""

    def __init__(self, config: JetGPTConfig) -> None:
        super().__init__(config)
        d = config.dim
        self.next_type_embedding = nn.Embedding(config.n_types, d)
        self.out: nn.Module = (BayesianLinear(d, 1 + d, prior_sigma=config.prior_sigma)
                               if config.bayesian else nn.Linear(d, 1 + d))
        heads = [(VonMisesMixture if name in config.periodic else GaussianMixture)(
                 d + j, config.n_mixture, config.head_hidden)
                 for j, name in enumerate(config.components)]
        self.likelihood = ComponentwiseLikelihood(d, heads, names=config.components)

    def _head(self, h: torch.Tensor, first: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Split logits and states of normalised hidden states at sequence positions
        ``first ..`` (position i = after i objects), the state plus the embedding of the next
        object's type."""
        o = self.out(h)
        next_types = self.types(first + h.shape[1])[first:]
        return o[..., 0], o[..., 1:] + self.next_type_embedding(next_types)[None]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Split logits ``rho`` (B, T+1) and states ``v`` (B, T+1, dim): entry ``i`` is
        ``f(x_(1:i))`` of Eq. (5.18), computed from the start token and the first ``i``
        objects (causal). Entries past a sequence's end are computed but meaningless."""
        return self._head(self.hidden(x, mask, condition), 0)

    # ------------------------------------------------------------------ likelihood
    def log_likelihood_terms(self, x: torch.Tensor, mask: torch.Tensor,
                             condition: torch.Tensor) -> dict[str, torch.Tensor]:
        """The pieces of Eq. (5.16): ``kin`` (B, T) = log p_kin(x_i | v_(i-1)) per object
        (0 for padding; given components excluded), ``split_logits`` (B, T+1), ``labels``
        (B, T+1) = 1 - delta_(i n), and ``weights`` (B, T+1) = 1 where the Bernoulli term
        exists (``first_free_split <= i <= n``), else 0."""
        logits, states = self(x, mask, condition)
        types = self.types(x.shape[1])
        # given components are 0 in model space (as when sampling): nothing conditions on them
        x = torch.where(self.given[types][None], torch.zeros_like(x), x)
        component = self.likelihood.component_log_prob(states[:, :-1], x, mask)
        kin = (component * (~self.given[types]).to(component.dtype)[None]).sum(dim=-1)
        n = mask.sum(dim=1, keepdim=True)
        steps = torch.arange(x.shape[1] + 1, device=x.device)[None]
        labels = (steps < n).to(logits.dtype)
        weights = ((steps >= self.config.first_free_split) & (steps <= n)).to(logits.dtype)
        return {"kin": kin, "split_logits": logits, "labels": labels, "weights": weights}

    def log_likelihood(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor
                       ) -> torch.Tensor:
        """``log p(x_(1:n))`` (B,) of Eq. (5.16) (full likelihood, current weights)."""
        t = self.log_likelihood_terms(x, mask, condition)
        bernoulli = -F.binary_cross_entropy_with_logits(t["split_logits"], t["labels"],
                                                        reduction="none")
        return t["kin"].sum(dim=1) + (t["weights"] * bernoulli).sum(dim=1)

    def loss(self, x: torch.Tensor, mask: torch.Tensor, condition: torch.Tensor, *,
             mode: str = "full", n_max: int | None = None,
             override_label: torch.Tensor | None = None, override_weight: float = 1.0,
             n_train: int | None = None) -> dict[str, torch.Tensor]:
        """Training loss, mean over the batch of ``-log p(x)`` with the Bernoulli part per
        ``mode``:

        * ``full``: Eq. (5.21);
        * ``truncated``: Eq. (5.22)/(5.25), the term at ``i = n_max`` (objects) removed;
        * ``override``: Eqs. (5.29)-(5.31), the label at ``i = n_max`` replaced by
          ``override_label`` (B,) in [0, 1] (``1 - p_fit(stop at n_max | x_(1:n_max))``, see
          :func:`jetfm.physics.staircase.override_label`) and the term weighted by
          ``override_weight`` (lambda); rows without an object ``n_max`` ignore their label.

        With a Bayesian layer, ``kl / n_train`` is added (Eq. (5.23); ``n_train`` = number of
        training sequences, required then). Returns ``loss``, ``kin`` and ``split`` (per-event
        means of the two negative log-likelihood parts) and ``kl``. ``ValueError`` for an
        unknown mode, a missing ``n_max``/``override_label``/``n_train``, or a label outside
        [0, 1].
        """
        if mode not in LOSS_MODES:
            raise ValueError(f"loss mode {mode!r}: use one of {list(LOSS_MODES)}")
        if mode != "full" and n_max is None:
            raise ValueError(f"loss mode {mode!r} needs n_max (the largest training "
                             "multiplicity, in objects)")
        t = self.log_likelihood_terms(x, mask, condition)
        labels, weights = t["labels"], t["weights"]
        if mode != "full":
            at_max = (torch.arange(labels.shape[1], device=x.device) == n_max)[None]
            if mode == "truncated":
                weights = torch.where(at_max, torch.zeros_like(weights), weights)
            else:
                if override_label is None or override_label.shape != x.shape[:1]:
                    raise ValueError("loss mode 'override' needs override_label of shape "
                                     f"({x.shape[0]},)")
                if bool(((override_label < 0) | (override_label > 1)).any()):
                    raise ValueError("override_label must lie in [0, 1]")
                labels = torch.where(at_max, override_label[:, None].to(labels.dtype), labels)
                weights = torch.where(at_max, weights * override_weight, weights)
        bernoulli = F.binary_cross_entropy_with_logits(t["split_logits"], labels,
                                                       reduction="none")
        kin = -t["kin"].sum(dim=1).mean()
        split = (weights * bernoulli).sum(dim=1).mean()
        kl = kl_divergence(self)
        if self.config.bayesian:
            if not n_train:
                raise ValueError("a Bayesian JetGPT needs n_train (training-set size) in the "
                                 "loss: KL / n_train, Eq. (5.23)")
            kl = kl / n_train
        return {"loss": kin + split + kl, "kin": kin, "split": split, "kl": kl}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, n: int, condition: int | torch.Tensor = 0, max_objects: int = 16,
               seed: int | None = None, batch_size: int = 4096) -> GeneratedSequences:
        """Generate ``n`` sequences (thesis Sec. 5.1.4 "Sampling", Fig. 5.2): from the start
        token, continue with probability ``sigmoid(rho_i)`` (forced for the fixed objects),
        then draw the next object component by component. A sequence that wants more than
        ``max_objects`` objects is cut and flagged in ``overflow`` (the thesis discards such
        events; so do the callers, counting them). ``condition``: one class for all or (n,)
        int. ``seed`` makes the draw reproducible (torch's global RNG is restored after).
        Uses the layers as they are: set a Bayesian model's weights first
        (:func:`jetfm.nn.bayesian.set_bayesian_mode`)."""
        if n < 0 or max_objects < self.config.n_fixed:
            raise ValueError(f"sample: need n >= 0 and max_objects >= {self.config.n_fixed}, "
                             f"got n={n}, max_objects={max_objects}")
        if self.position is not None and max_objects > self.config.max_positions:
            raise ValueError(f"sample: max_objects={max_objects} exceeds max_positions="
                             f"{self.config.max_positions}")
        device = self.given.device
        condition = torch.as_tensor(condition, dtype=torch.long, device=device)
        condition = condition.expand(n) if condition.ndim == 0 else condition
        if condition.shape != (n,):
            raise ValueError(f"sample: condition of shape {tuple(condition.shape)} for n={n}")
        if n and (int(condition.min()) < 0 or int(condition.max()) >= self.config.n_conditions):
            raise ValueError(f"sample: condition outside [0, n_conditions="
                             f"{self.config.n_conditions})")
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                torch.manual_seed(seed)
            parts = [self._sample_batch(condition[i:i + batch_size], max_objects)
                     for i in range(0, n, batch_size)]
        c = len(self.config.components)
        if not parts:
            return GeneratedSequences(torch.zeros(0, max_objects, c),
                                      torch.zeros(0, max_objects, dtype=torch.bool),
                                      torch.zeros(0, dtype=torch.bool))
        return GeneratedSequences(*(torch.cat(p).cpu() for p in zip(*parts, strict=True)))

    def _sample_batch(self, condition: torch.Tensor, max_objects: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, c = len(condition), len(self.config.components)
        x = torch.zeros(b, max_objects, c, device=condition.device)
        mask = torch.zeros(b, max_objects, dtype=torch.bool, device=condition.device)
        overflow = torch.zeros(b, dtype=torch.bool, device=condition.device)
        active = torch.ones(b, dtype=torch.bool, device=condition.device)
        h = self._start(condition)
        caches: list[KVCache | None] = [None] * len(self.blocks)
        types = self.types(max_objects)
        for i in range(max_objects + 1):
            for j, block in enumerate(self.blocks):
                h, caches[j] = block(h, causal=True, cache=caches[j])
            logit, state = self._head(self.norm(h), i)
            if i < self.config.first_free_split:
                go = torch.ones(b, dtype=torch.bool, device=x.device)
            else:
                go = torch.rand(b, device=x.device) < torch.sigmoid(logit[:, 0])
            if i == max_objects:
                overflow |= active & go
                break
            active &= go
            if not bool(active.any()):
                break
            given = self.given[types[i]].expand(b, c)
            xi = self.likelihood.sample(state[:, 0], given, torch.zeros_like(state[:, 0, :c]))
            x[:, i] = torch.where(active[:, None], xi, x[:, i])
            mask[:, i] = active
            h = self._tokens(xi[:, None], i)
        return x, mask, overflow


@dataclass
class GeneratedSequences:
    """Output of :meth:`JetGPT.sample`: ``x`` (n, max_objects, C) preprocessed components
    (0 past each sequence's end), ``mask`` (n, max_objects) bool, ``overflow`` (n,) bool: the
    model wanted more than ``max_objects`` objects (the sequence holds the first ones)."""

    x: torch.Tensor
    mask: torch.Tensor
    overflow: torch.Tensor

    @property
    def n_objects(self) -> torch.Tensor:
        return self.mask.sum(dim=1)


# ---------------------------------------------------------------------- files
def config_from_dict(data: dict[str, Any], where: str = "jetgpt model") -> JetGPTConfig:
    """:class:`JetGPTConfig` from plain data (``ValueError`` naming ``where`` and bad keys)."""
    from jetfm.checks import from_mapping

    return from_mapping(JetGPTConfig, data, where)


def save_jetgpt(path: str | Path, model: JetGPT, meta: dict[str, Any] | None = None) -> Path:
    """Write the model (weights + config + ``meta``, e.g. the preprocessing) to a safetensors
    file atomically (:mod:`jetfm.checkpoint`): rebuilt on CPU by :func:`load_jetgpt` without
    unpickling anything."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.config).items()}
    config["given"] = [list(g) for g in model.config.given]
    return save_model(path, tensors, {"kind": "jetgpt", "config": config, **(meta or {})})


def load_jetgpt(path: str | Path, device: str | torch.device = "cpu"
                ) -> tuple[JetGPT, dict[str, Any]]:
    """(model in eval mode on ``device``, metadata) of a :func:`save_jetgpt` file; a Bayesian
    layer is in ``"mean"`` mode (deterministic; set ``"fixed"`` for one posterior draw per
    sample, :func:`jetfm.nn.bayesian.set_bayesian_mode`). ``FileNotFoundError`` for a missing
    file, ``ValueError`` for another kind of file."""
    tensors, meta = load_model(path, device)
    if meta.get("kind") != "jetgpt":
        raise ValueError(f"{path}: not a JetGPT model file (kind={meta.get('kind')!r})")
    model = JetGPT(config_from_dict(meta["config"], f"{path}: config"))
    model.load_state_dict(prefixed(tensors, "model"))
    set_bayesian_mode(model, "mean")
    return model.to(device).eval(), meta



# ---------------------------------------------------------------------- backbone
@register_backbone
class JetGPTBackbone(Backbone):
    """JetGPT's causal transformer (:class:`JetGPTBody`) as a jetfm backbone
    (``backbone: jetgpt``), so a tagger (any head) or the tagging benchmark can use it.

    The particles are read in descending pT (computed from the four-momenta), whatever the
    order of the slots, as JetGPT generates them; padded slots never enter. Embeddings: the
    start token (position 0, which under causal attention sees no particle) and one state per
    particle, each summarising the particles up to it (the last real one sees the whole jet).
    Config: :class:`JetGPTConfig` size fields (``dim``, ``n_blocks``, ``n_heads``,
    ``max_positions``, ``dropout``); the components are the feature spec's particle
    features, one object type, one condition; the generator-only fields (``n_mixture``,
    ``head_hidden``, ``bayesian``, ``prior_sigma``) are accepted and unused.
    Default features: weaver's ``kin`` set.
    """

    name = "jetgpt"
    config_class = JetGPTConfig
    derived_keys = ("components", "periodic", "n_types", "fixed_types", "free_type", "given",
                    "n_conditions")

    def __init__(self, config: JetGPTConfig, features: FeatureSpec) -> None:
        super().__init__(config, features)
        self.body = JetGPTBody(config)

    @classmethod
    def derived(cls, features: FeatureSpec) -> dict[str, Any]:
        if not features.particle:
            raise ValueError("features: JetGPT embeds per-particle features: give at least one "
                             "(default: weaver's kin set)")
        return {"components": tuple(f.name for f in features.particle), "periodic": (),
                "n_types": 1, "fixed_types": (), "free_type": 0, "given": (),
                "n_conditions": 1}

    @property
    def dim(self) -> int:
        return self.config.dim

    def forward(self, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P + 1, dim) embeddings (start token first, then the particles in descending
        pT) and their mask; padded rows are 0."""
        mask = inputs.mask
        pt = torch.hypot(inputs.p4[..., 1], inputs.p4[..., 2])
        key = torch.where(mask, -pt, torch.full_like(pt, float("inf")))
        order = torch.sort(key, dim=1, stable=True).indices
        x = torch.gather(inputs.features, 1,
                         order[..., None].expand(-1, -1, inputs.features.shape[-1]))
        mask = torch.gather(mask, 1, order)
        h = self.body.hidden(x, mask, torch.zeros(len(x), dtype=torch.long, device=x.device))
        keep = torch.cat([mask.new_ones(len(mask), 1), mask], dim=1)
        return h * keep[..., None].to(h.dtype), keep
