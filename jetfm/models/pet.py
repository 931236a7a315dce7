"""PET, the point-edge transformer of OmniLearn (Mikuni & Nachman 2024, arXiv:2404.16091), as a
jetfm backbone (``backbone: pet``).

Written for jetfm after two public implementations (no code copied):

* OmniLearn-TF: ViniciusMikuni/OmniLearn ``scripts/PET.py`` (commit 6e55210), the paper's
  code: ``PET_body``, ``get_neighbors``, ``get_encoding``, ``layers.RandomDrop``/``LayerScale``;
* OmniLearned: ViniciusMikuni/OmniLearned ``src/omnilearned/network.py`` (``PET_body``) and
  ``layers.py`` (``LocalEmbeddingBlock``, ``AttBlock``, ``MLP``) at commit 922355d, and the
  PyPI wheel ``omnilearned==0.2.0`` (size presets in ``utils.get_model_parameters``).

Network, for inputs ``features`` (B, P, F), ``p4`` (B, P, 4) and ``mask`` (B, P):

1. feature drop (:class:`FeatureDrop`, training only): per jet, with probability
   ``feature_drop``, every feature beyond the first ``num_keep`` is set to 0 (OmniLearn-TF
   ``RandomDrop(feature_drop, num_skip=num_keep)``, default ``num_keep = 7``; the paper's way of
   making one model work on data with and without PID/track features). OmniLearn-TF drops them
   only on the embedding path (the kNN block reads the undropped ``input_features``); here both
   paths see the dropped features, so with probability 1 the output does not depend on them.
2. embedding: Linear(F, mlp_ratio*dim) -> GELU -> Linear(mlp_ratio*dim, dim) -> GELU
   (OmniLearn-TF ``get_encoding``, hidden width 2*dim there).
3. local block (:class:`LocalEdgeBlock`): the ``k`` = 10 nearest real neighbours of each real
   particle in (Delta eta, Delta phi) (:func:`knn_indices`), EdgeConv edge features
   ``[x_neighbour - x_centre, x_centre]`` of the (dropped) input features, an MLP on every edge
   (Linear(2F, mlp_ratio*dim) -> GELU -> Linear(., dim) -> GELU) and the mean over the real
   neighbours (OmniLearn-TF ``get_neighbors``, K = 10; OmniLearned's CLI default ``--K 10``).
   The result is added to the embedding.
4. ``num_tokens`` learned class tokens (truncated normal, std 0.02) are prepended (OmniLearned
   ``PET_body.token``, 4 tokens). They take part in every attention block and come first in
   the output, so a head reads them: the shared ``class_attention`` head
   (:class:`jetfm.models.heads.ClassAttentionHead`, a new token attending over the class tokens
   and the particles) plays the part of OmniLearned's ``PET_classifier`` (class attention of the
   4 tokens over the particles, then an MLP on the concatenated tokens); ``global_token`` reads
   token 0 alone. ``num_tokens = 0`` gives particles only (OmniLearn-TF: its class token lives
   in the classifier head).
5. ``num_layers`` pre-norm transformer blocks (:class:`PETBlock`):
   ``x += LS(Attn(LN(x)))``, ``x += LS(MLP(LN(x)))``, every update zeroed on padded rows;
   attention without biases (OmniLearned ``nn.MultiheadAttention(bias=False)``), the MLP
   Linear -> GELU -> LayerNorm -> Linear (OmniLearned ``MLP`` with its norm in the hidden
   layer), LayerScale ``LS`` = a per-channel gain initialised to ``layer_scale_init`` = 1e-5
   (OmniLearn-TF ``LayerScale``, ``layer_scale_init=1e-5``; OmniLearned 0.2.0 defines
   ``LayerScale`` in ``layers.py`` but never uses it: ``layer_scale_init: null`` gives its plain
   residuals).
6. final LayerNorm, padded rows set to 0 (OmniLearned ``PET_body.norm``).

Jet-level features (the spec's ``jet`` list, e.g. OmniLearn's (pT, eta, mass, multiplicity)):
an MLP (``_two_layer``) turns them into one condition token placed after the class tokens
(OmniLearned ``PET_body`` with ``--conditional --num-cond``: "[class tokens] + [condition
token] + particles"; OmniLearn-TF's classifier FiLMs the particle embedding with the same jet
features instead). Without jet features there is no condition token.

Deliberate differences from the references:

* **Padded particles are masked as attention keys.** OmniLearn-TF passes no attention mask
  to Keras ``MultiHeadAttention``, so padded slots act as keys and values and change the
  outputs of real particles (a defect, not copied); OmniLearned masks them with -1e9. Here a
  boolean key mask goes to ``scaled_dot_product_attention``; tests/test_pet.py shows that
  garbage in padded slots changes nothing and that it would without the mask.
* **LayerNorm, not GroupNorm or DynamicTanh.** OmniLearn-TF normalises with
  ``GroupNormalization(groups=1)`` over particles and channels together, padded zeros included,
  so the statistics depend on the padding length and the multiplicity (a defect, not copied);
  OmniLearned uses DynamicTanh (``w * tanh(alpha x)``). LayerNorm per token depends on neither.
* **Neighbours are real particles only.** Both references move padded points 999 away in
  (eta, phi) and take the K + 1 closest (self first). In jets with fewer than K + 1 particles
  padded points then become neighbours: OmniLearn-TF averages over them (zeros), OmniLearned
  masks them out of the mean. Here padded points and the particle itself are excluded from the
  search (so a duplicate position cannot displace the particle from its own first place) and
  the mean runs over the real neighbours only; a particle without one gets 0.
* Coordinates come from the four-momenta, not from the feature columns: Delta eta = difference
  of pseudorapidities, Delta phi wrapped to (-pi, pi]. Neighbour distances depend only on these
  differences, so they equal the references' distances in (eta_rel, phi_rel) (the JetClass
  ``part_deta``/``part_dphi`` columns) for jets narrower than pi in phi, whatever the feature
  spec holds (scaled, clipped or no angular features at all).
* One local block with a static graph: OmniLearn-TF repeats the EdgeConv (``num_local = 2``),
  the second time in the space of the learned features (a dynamic graph); OmniLearned runs 2
  attention blocks inside each neighbourhood instead. Neither is implemented. OmniLearn-TF's
  long skip (``encoded + skip_connection``) is replaced by OmniLearned's final norm.
* Pair-interaction attention bias (OmniLearned ``--interaction``) and PID embeddings are not
  part of this backbone. The generative model's time token (``time_token``) and its kNN in
  the angle features (``knn_from: features``) are: :mod:`jetfm.models.pet_generator` builds
  OmniLearn's generator on this body.

Presets: the default config is OmniLearned's "small" body (8 blocks, 8 heads, base_dim 128,
mlp_ratio 2, 4 tokens; :data:`DEFAULT_PARAMETERS` parameters with the 7 default features; the
2.8M of OmniLearned-s include the pair-interaction MLP, the 2 attention blocks of the local
block and the classifier and generator heads). :data:`CPU_CONFIG` is a small configuration
for CPU runs (``backbone_config`` keys).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from jetfm.checks import NON_NEGATIVE_INT, POSITIVE_INT, Rule, check_fields, check_flag
from jetfm.models.backbone import Backbone, register_backbone
from jetfm.models.features import KIN_FEATURES, FeatureSpec, ParticleInputs
from jetfm.nn.flow import FourierTime
from jetfm.nn.transformer import MLP, SelfAttention

_DROPOUT = Rule(float, low=0, high=1, high_open=True)
_PROBABILITY = Rule(float, low=0, high=1)

KNN_FROM = ("p4", "features")
"""Where :class:`PETBackbone` takes its kNN coordinates from (``PETConfig.knn_from``)."""

DEFAULT_PARAMETERS = 1_134_336
"""Parameters of the default config (OmniLearned "small" body) with 7 particle features."""

CPU_CONFIG: dict[str, int] = {"dim": 64, "num_layers": 3, "num_heads": 4}
"""A small configuration for CPU runs (``backbone_config`` of ``backbone: pet``)."""


@dataclass
class PETConfig:
    """Hyper-parameters of :class:`PETBackbone` (sources in the module docstring).

    * ``input_dim``: number of particle features (set from the feature spec);
    * ``jet_dim``: number of jet-level features (set from the feature spec; 0: no condition
      token);
    * ``dim`` (128), ``num_layers`` (8), ``num_heads`` (8), ``mlp_ratio`` (2): OmniLearned
      "small" (``base_dim``, ``num_transformers``, ``num_heads``, ``mlp_ratio``);
    * ``k`` (10): neighbours of the local block;
    * ``num_tokens`` (4): class tokens prepended (OmniLearned); 0 for none;
    * ``layer_scale_init`` (1e-5, OmniLearn-TF): initial LayerScale gain; None: no LayerScale
      (OmniLearned 0.2.0);
    * ``attn_drop``, ``mlp_drop`` (0, OmniLearned CLI defaults): dropout rates in [0, 1);
    * ``feature_drop`` (0, the OmniLearned CLI default; OmniLearn-TF used 0.1 in its
      pre-training mode ``all``; OmniLearned's pre-training recipe ``--feature-drop 0.1``): per-jet
      probability in [0, 1] of zeroing the features beyond the first ``num_keep`` (7) in
      training. With ``feature_drop > 0`` the spec must have more than ``num_keep`` features;
    * ``time_token`` (False): add a token embedding the flow time t (:class:`jetfm.nn.flow.
      FourierTime`; OmniLearned ``PET_body``'s time token in ``generator``/``pretrain`` modes),
      after the class tokens; ``forward(inputs, time=None)`` takes t (B,), default 0 (clean
      jets, as in OmniLearned's classifier pass);
    * ``knn_from`` ("p4"): coordinates of the kNN search: ``"p4"`` (the four-momenta) or
      ``"features"`` (the spec's ``eta_rel`` and ``phi_rel`` columns, transformed back to
      radians; OmniLearned's ``num_coord = 2`` first feature columns). A generator needs
      ``"features"``: its noised particles have no four-momenta.

    Raises ``ValueError`` naming the field for a bad value.
    """

    input_dim: int = 7
    jet_dim: int = 0
    dim: int = 128
    num_layers: int = 8
    num_heads: int = 8
    mlp_ratio: int = 2
    k: int = 10
    num_tokens: int = 4
    layer_scale_init: float | None = 1e-5
    attn_drop: float = 0.0
    mlp_drop: float = 0.0
    feature_drop: float = 0.0
    num_keep: int = 7
    time_token: bool = False
    knn_from: str = "p4"

    def __post_init__(self) -> None:
        check_fields(self, {
            "input_dim": POSITIVE_INT, "jet_dim": NON_NEGATIVE_INT, "dim": POSITIVE_INT,
            "num_layers": NON_NEGATIVE_INT,
            "num_heads": POSITIVE_INT, "mlp_ratio": POSITIVE_INT, "k": POSITIVE_INT,
            "num_tokens": NON_NEGATIVE_INT,
            "layer_scale_init": Rule(float, low=0, low_open=True, optional=True),
            "attn_drop": _DROPOUT, "mlp_drop": _DROPOUT, "feature_drop": _PROBABILITY,
            "num_keep": NON_NEGATIVE_INT,
        })
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        check_flag("time_token", self.time_token)
        if self.knn_from not in KNN_FROM:
            raise ValueError(f"knn_from: {self.knn_from!r} is not one of {list(KNN_FROM)}")
        if self.feature_drop > 0 and self.num_keep >= self.input_dim:
            raise ValueError(
                f"feature_drop {self.feature_drop:g} would drop nothing: num_keep "
                f"{self.num_keep} >= the {self.input_dim} particle features (keep fewer, add "
                "features such as PID/track ones after the first num_keep, or set "
                "feature_drop to 0)")


# ---------------------------------------------------------------------------- kNN
def knn_indices(p4: torch.Tensor, mask: torch.Tensor, k: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest real neighbours of every particle in (Delta eta, Delta phi).

    Args: ``p4`` (B, P, 4) four-momenta (E, px, py, pz) [GeV]; ``mask`` (B, P) bool, True for
    real particles; ``k`` >= 1.
    Returns ``(index (B, P, k) int64, valid (B, P, k) bool)``: slot indices of the neighbours,
    nearest first, and whether each is a real neighbour. Distances are
    ``(eta_i - eta_j)^2 + dphi_ij^2`` with pseudorapidity ``eta = asinh(pz / pT)`` (pT clamped to
    >= 1e-8 GeV) and dphi wrapped to (-pi, pi]. Padded slots and the particle itself are never
    neighbours; a jet with n < k + 1 real particles has n - 1 valid neighbours per particle;
    rows of padded particles are all invalid (their indices are arbitrary).
    """
    pt = torch.hypot(p4[..., 1], p4[..., 2])
    eta = torch.asinh(p4[..., 3] / pt.clamp(min=1e-8))
    phi = torch.atan2(p4[..., 2], p4[..., 1])
    return knn_from_coordinates(eta, phi, mask, k, wrap_phi=True)


def knn_from_coordinates(eta: torch.Tensor, phi: torch.Tensor, mask: torch.Tensor, k: int,
                         wrap_phi: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`knn_indices`, from coordinates ``eta``, ``phi`` (B, P): distances
    ``(eta_i - eta_j)^2 + dphi_ij^2`` with dphi wrapped to (-pi, pi] if ``wrap_phi`` (off for
    jet-relative angles of noised particles, which may leave (-pi, pi])."""
    b, n = mask.shape
    d_eta = eta[:, :, None] - eta[:, None, :]
    d_phi = phi[:, :, None] - phi[:, None, :]
    if wrap_phi:
        d_phi = torch.atan2(torch.sin(d_phi), torch.cos(d_phi))
    distance = d_eta.square() + d_phi.square()
    eye = torch.eye(n, dtype=torch.bool, device=mask.device)
    distance = distance.masked_fill(~mask[:, None, :] | eye, float("inf"))
    found = min(k, n - 1)
    if found > 0:
        nearest, index = torch.topk(distance, found, dim=-1, largest=False)
    else:
        nearest = distance.new_full((b, n, 0), float("inf"))
        index = torch.zeros((b, n, 0), dtype=torch.long, device=mask.device)
    valid = torch.isfinite(nearest) & mask[:, :, None]
    if found < k:  # fewer slots than k + 1: pad with invalid entries
        index = torch.cat([index, index.new_zeros(b, n, k - found)], dim=-1)
        valid = torch.cat([valid, valid.new_zeros(b, n, k - found)], dim=-1)
    return index, valid


# ---------------------------------------------------------------------------- layers
class FeatureDrop(nn.Module):
    """In training, per jet with probability ``p``, set the features beyond the first
    ``num_keep`` to 0 (OmniLearn-TF ``layers.RandomDrop``); identity in eval. (B, P, F)."""

    def __init__(self, p: float, num_keep: int) -> None:
        super().__init__()
        self.p = p
        self.num_keep = num_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.shape[-1] <= self.num_keep:
            return x
        drop = torch.rand(x.shape[0], 1, 1, device=x.device) < self.p
        tail = x[..., self.num_keep:].masked_fill(drop, 0.0)
        return torch.cat([x[..., :self.num_keep], tail], dim=-1)


def _two_layer(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear -> GELU -> Linear -> GELU (OmniLearn-TF's Dense(gelu) pairs)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim),
                         nn.GELU())


class LocalEdgeBlock(nn.Module):
    """EdgeConv over the kNN graph: mean over real neighbours j of
    MLP([x_j - x_i, x_i]) (OmniLearn-TF ``get_neighbors``). (B, P, F) -> (B, P, dim)."""

    def __init__(self, in_dim: int, hidden: int, dim: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.mlp = _two_layer(2 * in_dim, hidden, dim)

    def forward(self, x: torch.Tensor, neighbours: tuple[torch.Tensor, torch.Tensor]
                ) -> torch.Tensor:
        """``x`` (B, P, F) and ``neighbours`` = (index, valid) of :func:`knn_indices`."""
        index, valid = neighbours
        rows = torch.arange(x.shape[0], device=x.device)[:, None, None]
        neighbours = x[rows, index]  # (B, P, k, F)
        centre = x[:, :, None].expand_as(neighbours)
        edges = self.mlp(torch.cat([neighbours - centre, centre], dim=-1))
        edges = edges.masked_fill(~valid[..., None], 0.0)
        count = valid.sum(dim=-1, keepdim=True).clamp(min=1)
        return edges.sum(dim=2) / count


class LayerScale(nn.Module):
    """Per-channel gain ``gamma * x``, gamma initialised to ``init`` (Touvron et al. 2021,
    CaiT; OmniLearn-TF ``LayerScale``)."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class PETBlock(nn.Module):
    """Pre-norm block: ``x += LS(Attn(LN(x)))``, ``x += LS(MLP(LN(x)))``, updates zeroed on
    padded rows. ``layer_scale_init=None``: plain residuals (OmniLearned 0.2.0)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, layer_scale_init: float | None,
                 attn_drop: float, mlp_drop: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, attn_drop, bias=False)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, mlp_drop, inner_norm=True)
        scale = (lambda: LayerScale(dim, layer_scale_init)) if layer_scale_init else nn.Identity
        self.scale_attn, self.scale_mlp = scale(), scale()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, key_mask: torch.Tensor | None
                ) -> torch.Tensor:
        """``x`` (B, T, dim), ``mask`` (B, T) bool (rows to update), ``key_mask`` the keys
        attention may use (None: all)."""
        rows = mask[..., None]
        update, _ = self.attn(self.norm_attn(x), key_mask)
        x = x + self.scale_attn(update) * rows
        return x + self.scale_mlp(self.mlp(self.norm_mlp(x))) * rows


# ---------------------------------------------------------------------------- backbone
@register_backbone
class PETBackbone(Backbone):
    """PET as a jetfm backbone (``backbone: pet``; architecture, sources and differences from
    the references in the module docstring).

    Config: :class:`PETConfig` less ``input_dim`` (the spec's number of particle features).
    Inputs: the spec's features (default: weaver's ``kin`` set
    :data:`jetfm.models.features.KIN_FEATURES`: log pT, log E, log pT_rel, log E_rel, Delta R,
    Delta eta, Delta phi with weaver's normalisation, clipped to [-5, 5]; it holds OmniLearned's
    four inputs (Delta eta, Delta phi, log pT, log E) and, up to the 1 - x inside two logs,
    the 7 kinematic inputs of OmniLearn-TF, which are what its ``num_keep = 7`` keeps), the
    four-momenta (the kNN coordinates) and the mask.
    Output: ``(B, n_tokens + P', dim)`` embeddings, class tokens (and the condition token)
    first, and the mask (True
    for the tokens and the real particles); padded rows are 0; P' <= P drops the trailing slots
    that no jet fills (a spec pads to ``n_max``).
    """

    name = "pet"
    config_class = PETConfig
    default_features = KIN_FEATURES
    derived_keys = ("input_dim", "jet_dim")
    uses_jet_features = True  # the condition token

    def __init__(self, config: PETConfig, features: FeatureSpec) -> None:
        super().__init__(config, features)
        c = config
        hidden = c.mlp_ratio * c.dim
        self.feature_drop = FeatureDrop(c.feature_drop, c.num_keep)
        self.embed = _two_layer(c.input_dim, hidden, c.dim)
        self.local = LocalEdgeBlock(c.input_dim, hidden, c.dim, c.k)
        self.tokens = nn.Parameter(torch.zeros(1, c.num_tokens, c.dim))
        self.condition = _two_layer(c.jet_dim, hidden, c.dim) if c.jet_dim else None
        self.time = FourierTime(c.dim) if c.time_token else None
        self._angle_columns = self._coordinate_columns(features) if c.knn_from == "features" \
            else None
        self.blocks = nn.ModuleList(
            PETBlock(c.dim, c.num_heads, c.mlp_ratio, c.layer_scale_init, c.attn_drop,
                     c.mlp_drop) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.dim)
        self._mask_padded_keys = True  # False only in tests: the OmniLearn-TF defect
        self._init_weights()

    def _init_weights(self) -> None:
        """OmniLearned ``PET2.initialize_weights``: xavier-uniform Linear weights, zero biases;
        tokens truncated normal, std 0.02 (``PET_body.initialize_weights``)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.tokens, std=0.02, a=-2.0, b=2.0)

    @classmethod
    def derived(cls, features: FeatureSpec) -> dict:
        return {"input_dim": len(features.particle), "jet_dim": len(features.jet)}

    @property
    def has_global_token(self) -> bool:
        return bool(self.config.num_tokens > 0)

    @property
    def n_tokens(self) -> int:
        """Tokens before the particles: class tokens, the time token and the condition token
        if any."""
        return self.config.num_tokens + (self.time is not None) + (self.condition is not None)

    @staticmethod
    def _coordinate_columns(features: FeatureSpec) -> tuple[int, int]:
        """Columns of ``eta_rel`` and ``phi_rel`` (``knn_from: features``); ``ValueError``
        when the spec lacks one."""
        names = features.names
        missing = [n for n in ("eta_rel", "phi_rel") if n not in names]
        if missing:
            raise ValueError(f"pet: knn_from 'features' needs the particle features eta_rel "
                             f"and phi_rel; the spec lacks {missing} (has {list(names)})")
        return names.index("eta_rel"), names.index("phi_rel")

    def neighbours(self, features: torch.Tensor, p4: torch.Tensor, mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """kNN (index, valid) from the four-momenta or the angle features (``knn_from``)."""
        if self._angle_columns is None:
            return knn_indices(p4, mask, self.config.k)
        eta, phi = (features[..., i] / self.features.particle[i].multiply
                    + self.features.particle[i].subtract for i in self._angle_columns)
        return knn_from_coordinates(eta, phi, mask, self.config.k, wrap_phi=False)

    @property
    def dim(self) -> int:
        return self.config.dim

    def _check(self, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validated (features, p4, mask) with padded slots set to 0; ``ValueError`` naming
        the bad input."""
        features, p4, mask = inputs.features, inputs.p4, inputs.mask
        for key, value in (("features", features), ("p4", p4), ("mask", mask)):
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"pet: inputs.{key} must be a torch tensor (use "
                                 f"ParticleInputs.to_torch()), got {type(value).__name__}")
        if mask.dtype != torch.bool or mask.ndim != 2:
            raise ValueError(f"pet: mask must be a (batch, particles) bool tensor, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        b, n = mask.shape
        if tuple(features.shape) != (b, n, self.config.input_dim):
            raise ValueError(f"pet: features must be (batch, particles, "
                             f"{self.config.input_dim}) = {(b, n, self.config.input_dim)}, "
                             f"got {tuple(features.shape)}")
        if tuple(p4.shape) != (b, n, 4):
            raise ValueError(f"pet: p4 must be (batch, particles, 4) = {(b, n, 4)}, got "
                             f"{tuple(p4.shape)}")
        empty = ~mask.any(dim=1)
        if bool(empty.any()):
            raise ValueError(f"pet: jets without real particles at batch positions "
                             f"{empty.nonzero().flatten().tolist()[:10]}")
        rows = mask[..., None]
        features = torch.where(rows, features, 0.0)
        p4 = torch.where(rows, p4, 0.0)
        for key, value in (("features", features), ("p4", p4)):
            bad = ~torch.isfinite(value).all(dim=-1).all(dim=-1)
            if bool(bad.any()):
                raise ValueError(f"pet: non-finite {key} of real particles in jets at batch "
                                 f"positions {bad.nonzero().flatten().tolist()[:10]}")
        if self.condition is not None:
            jet = inputs.jet
            if not isinstance(jet, torch.Tensor) or tuple(jet.shape) != (b, self.config.jet_dim):
                raise ValueError(f"pet: inputs.jet must be a (batch, {self.config.jet_dim}) "
                                 f"tensor of jet features, got "
                                 f"{tuple(jet.shape) if isinstance(jet, torch.Tensor) else jet}")
            if not bool(torch.isfinite(jet).all()):
                raise ValueError("pet: non-finite jet features")
        return features, p4, mask

    def forward(self, inputs: ParticleInputs, time: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(embeddings (B, n_tokens + P', dim), mask (B, n_tokens + P'))``, where
        P' <= P drops the trailing slots that hold no real particle of any jet.

        ``time`` (B,): the flow time of noised inputs for a backbone with ``time_token``
        (None: 0, clean jets); ``ValueError`` when given to a backbone without one.

        Inputs: ``inputs.features`` (B, P, input_dim) float, ``inputs.p4`` (B, P, 4)
        (E, px, py, pz) [GeV], ``inputs.mask`` (B, P) bool; whatever padded slots hold is
        ignored. Raises ``ValueError`` for a wrong shape or dtype, a jet without real
        particles or non-finite values of a real particle.
        """
        features, p4, mask = self._check(inputs)
        used = int(mask.any(dim=0).nonzero().max()) + 1  # drop trailing slots no jet fills
        features, p4, mask = features[:, :used], p4[:, :used], mask[:, :used]
        x = self.feature_drop(features)
        h = (self.embed(x) + self.local(x, self.neighbours(x, p4, mask))) * mask[..., None]
        b = h.shape[0]
        tokens = [self.tokens.expand(b, -1, -1)]
        if self.time is not None:
            t = h.new_zeros(b) if time is None else time.to(h.dtype).reshape(b)
            tokens.append(self.time(t)[:, None])
        elif time is not None:
            raise ValueError("pet: a time was given, but this backbone has no time token "
                             "(time_token: false)")
        if self.condition is not None:
            tokens.append(self.condition(inputs.jet.to(h.dtype))[:, None])
        h = torch.cat([*tokens, h], dim=1)
        full = torch.cat([mask.new_ones(b, self.n_tokens), mask], dim=1)
        keys = full if self._mask_padded_keys else None
        for block in self.blocks:
            h = block(h, full, keys)
        return self.norm(h) * full[..., None], full
