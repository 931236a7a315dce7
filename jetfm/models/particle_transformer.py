"""Particle Transformer (ParT; Qu, Li, Qian, arXiv:2202.03772), the original 2022 architecture.

A port of ``weaver/nn/model/ParticleTransformer.py`` of hqucms/weaver-core at commit aff6531
(2022-12-15; the same file ships in the PyPI releases weaver-core 0.4.1 to 0.4.17), written
for jetfm. With the same weights it gives the reference's logits in eval mode
(tests/test_particle_transformer.py compares against a vendored copy of that file);
:func:`load_weaver_state_dict` maps a weaver state dict (e.g. ``ParT_kin.pt``) onto this module.

Network (defaults = the JetClass example config of jet-universe/particle_transformer,
``networks/example_ParticleTransformer.py``):

* particle embedding: BatchNorm over the input features, then [LayerNorm -> Linear -> GELU]
  for ``embed_dims`` (128, 512, 128); padded slots are set to 0;
* pair embedding: the pairwise features (ln kT, ln z, ln Delta, ln m^2) of every particle pair
  (:func:`pairwise_features`), BatchNorm, then [Linear -> BatchNorm -> GELU] for
  ``pair_embed_dims`` (64, 64, 64) and a last one to ``num_heads`` channels: one attention bias
  per head and pair, added to the attention logits (the last GELU is kept:
  ``use_pre_activation_pair=False``, as in the example config);
* ``num_layers`` (8) particle-attention blocks, NormFormer-style (:class:`ParTBlock`);
* ``num_cls_layers`` (2) class-attention blocks (CaiT, arXiv:2103.17239): a learned class
  token attends over [class token; particles], dropouts 0; then LayerNorm and, when
  ``num_classes`` is set, one Linear layer to the logits.

Inputs (jetfm's layout is channel-last; the reference takes channel-first tensors
``x (batch, features, particles)``, ``v (batch, 4, particles)`` ordered (px, py, pz, E) and
``mask (batch, 1, particles)``):

* ``features``: (batch, particles, input_dim) float, already transformed as the data config
  says (e.g. ``(x - subtract) * multiply``, clipped);
* ``p4``: (batch, particles, 4) float four-momenta **(E, px, py, pz) in GeV** (the GeV unit
  matters for ln kT and ln m^2 of pre-trained weights);
* ``mask``: (batch, particles) bool, True for real particles (any positions; padding need not
  be at the end). Every jet needs at least one real particle.

Differences from the reference, none of which changes eval-mode outputs for inputs the
reference handles:

* BatchNorm statistics in training are taken over real particles (and pairs of real
  particles) only, so zero padding does not bias them and padded slots change nothing in
  training either; the reference normalises every slot and relies on ``pad_mode: wrap``
  (padding filled with copies of real particles) in its data pipeline.
* Rapidity is ``sign(pz) * 0.5 * ln(1 + 2|pz| / (E - |pz|))`` (weaver-core PR #15): equal to
  the reference's ``0.5 * ln(1 + 2 pz / (E - pz))`` for pz >= 0, and free of its cancellation
  (and -inf) for pz < 0.
* The reference's ``SequenceTrimmer`` training augmentation (random particle order and
  truncation to a random quantile of the multiplicity) is not part of the module; in eval the
  reference trims to the longest jet, which :meth:`ParticleTransformer.encode` also does (only
  when no real particle lies beyond it). ``for_inference`` (softmax outputs, ONNX paths) and
  AMP are left out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jetfm.checks import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Rule, check_flag, number
from jetfm.models.backbone import Backbone, register_backbone
from jetfm.models.features import FeatureSpec, ParticleInputs
from jetfm.nn.normformer import ParTBlock

PAIR_FEATURES = ("ln_kt", "ln_z", "ln_delta", "ln_m2")
"""Names of the pairwise features, in the reference's order."""


@dataclass(frozen=True)
class ParticleTransformerConfig:
    """Hyper-parameters of :class:`ParticleTransformer` (defaults: JetClass "full", 2,143,486
    parameters with 17 input features and 10 classes).

    ``num_classes=None`` builds the backbone without the final Linear layer (the forward pass
    then returns the class-token embedding). ``pair_input_dim`` is 4 (ln kT, ln z, ln Delta,
    ln m^2) or 0 (no pair bias). ``eps`` is the reference's log guard: every log argument is
    clamped to >= eps. The dropouts apply to the particle blocks; the class-attention blocks
    have none (as in the reference's ``cls_block_params``).
    """

    input_dim: int = 17
    num_classes: int | None = 10
    embed_dims: tuple[int, ...] = (128, 512, 128)
    pair_input_dim: int = 4
    pair_embed_dims: tuple[int, ...] = (64, 64, 64)
    num_heads: int = 8
    num_layers: int = 8
    num_cls_layers: int = 2
    ffn_ratio: int = 4
    dropout: float = 0.1
    attn_dropout: float = 0.1
    activation_dropout: float = 0.1
    use_pre_activation_pair: bool = False
    eps: float = 1e-8

    def __post_init__(self) -> None:
        """Sizes integers >= 1 (``num_cls_layers`` >= 0), dropouts in [0, 1), ``eps`` > 0;
        ``ValueError`` naming the key otherwise."""
        rules = {**dict.fromkeys(("input_dim", "num_heads", "num_layers", "ffn_ratio"),
                                 POSITIVE_INT),
                 "num_cls_layers": NON_NEGATIVE_INT, "eps": POSITIVE,
                 "num_classes": Rule(int, low=1, optional=True)}
        for key, rule in rules.items():
            object.__setattr__(self, key, number(key, getattr(self, key), rule))
        for key in ("embed_dims", "pair_embed_dims"):
            value = getattr(self, key)
            if isinstance(value, str) or not hasattr(value, "__iter__"):
                raise ValueError(f"{key}: expected a list of sizes, got {value!r}")
            object.__setattr__(self, key, tuple(number(key, d, POSITIVE_INT) for d in value))
        if not self.embed_dims:
            raise ValueError("embed_dims: at least one size")
        check_flag("use_pre_activation_pair", self.use_pre_activation_pair)
        if self.pair_input_dim not in (0, len(PAIR_FEATURES)) or isinstance(
                self.pair_input_dim, bool):
            raise ValueError(f"pair_input_dim must be 0 or 4, got {self.pair_input_dim}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embedding size {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        for name in ("dropout", "attn_dropout", "activation_dropout"):
            object.__setattr__(self, name, number(name, getattr(self, name), Rule(
                float, low=0, high=1, high_open=True)))

    @property
    def embed_dim(self) -> int:
        """Width of the particle embeddings (the last of ``embed_dims``)."""
        return self.embed_dims[-1]

    def to_dict(self) -> dict:
        """Plain-type dictionary (lists for the tuples), e.g. for saving with the weights."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------- pair features
def rapidity(p4: torch.Tensor) -> torch.Tensor:
    """Rapidity y of four-momenta ``p4`` (..., 4) = (E, px, py, pz) -> (...).

    ``sign(pz) * 0.5 * ln(1 + 2|pz| / (E - |pz|))`` with E - |pz| clamped to >= 1e-20 (the
    reference's guard); equal to 0.5 ln((E + pz) / (E - pz)).
    """
    energy, pz = p4[..., 0], p4[..., 3]
    apz = pz.abs()
    return torch.sign(pz) * 0.5 * torch.log(1 + 2 * apz / (energy - apz).clamp(min=1e-20))


def _delta_phi(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a - b wrapped to [-pi, pi)."""
    return (a - b + math.pi) % (2 * math.pi) - math.pi


def pairwise_features(p4_i: torch.Tensor, p4_j: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """ParT's pairwise features of particle pairs: (..., 4) x (..., 4) -> (..., 4).

    Inputs are (E, px, py, pz) in GeV. Outputs, in the reference's order
    (``pairwise_lv_fts`` of weaver-core aff6531):

    * ln kT = ln(min(pT_i, pT_j) * Delta),
    * ln z = ln(min(pT_i, pT_j) / (pT_i + pT_j)),
    * ln Delta, Delta = sqrt((y_i - y_j)^2 + dphi^2) with rapidity y and dphi wrapped to
      [-pi, pi),
    * ln m^2, m^2 = (E_i + E_j)^2 - |p_i + p_j|^2,

    every log argument (and pT_i + pT_j) clamped to >= ``eps`` as in the reference, so pairs
    with a padded (zero) particle give finite values.
    """
    pt_i = torch.hypot(p4_i[..., 1], p4_i[..., 2])
    pt_j = torch.hypot(p4_j[..., 1], p4_j[..., 2])
    phi_i = torch.atan2(p4_i[..., 2], p4_i[..., 1])
    phi_j = torch.atan2(p4_j[..., 2], p4_j[..., 1])
    delta = torch.sqrt((rapidity(p4_i) - rapidity(p4_j)) ** 2 + _delta_phi(phi_i, phi_j) ** 2)
    pt_min = torch.minimum(pt_i, pt_j)
    ln_kt = torch.log((pt_min * delta).clamp(min=eps))
    ln_z = torch.log((pt_min / (pt_i + pt_j).clamp(min=eps)).clamp(min=eps))
    ln_delta = torch.log(delta.clamp(min=eps))
    p = p4_i + p4_j
    m2 = p[..., 0].square() - p[..., 1:].square().sum(dim=-1)
    ln_m2 = torch.log(m2.clamp(min=eps))
    return torch.stack((ln_kt, ln_z, ln_delta, ln_m2), dim=-1)


# ---------------------------------------------------------------------------- layers
class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the last axis of (..., C) inputs whose training statistics use only the
    entries where ``mask`` is True (padded entries come out as 0).

    In eval mode (running statistics) it is ``nn.BatchNorm1d`` applied to every entry, so its
    state dict and eval outputs are those of the reference's ``nn.BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        shape = x.shape
        if not self.training or mask is None:
            return super().forward(x.reshape(-1, shape[-1])).reshape(shape)
        out = x.new_zeros(shape)
        out[mask] = super().forward(x[mask])
        return out


class _LinearNormAct(nn.Module):
    """One layer of the particle embedding: LayerNorm -> Linear -> GELU."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.linear(self.norm(x)))


class ParticleEmbedding(nn.Module):
    """(batch, particles, input_dim) -> (batch, particles, embed_dims[-1]); padded rows = 0."""

    def __init__(self, input_dim: int, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.input_norm = MaskedBatchNorm1d(input_dim)
        sizes = (input_dim, *dims)
        pairs = zip(sizes, sizes[1:], strict=False)
        self.layers = nn.ModuleList(_LinearNormAct(a, b) for a, b in pairs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.input_norm(x, mask)
        for layer in self.layers:
            x = layer(x)
        return x.masked_fill(~mask[..., None], 0.0)


class PairEmbedding(nn.Module):
    """Pairwise features -> one attention bias per head: (batch, heads, particles, particles).

    The features are symmetric in (i, j), so, as in the reference, only the pairs i >= j are
    computed and embedded and the result is mirrored.
    """

    def __init__(
        self, dims: tuple[int, ...], num_heads: int, pre_activation: bool, eps: float
    ) -> None:
        super().__init__()
        self.eps = eps
        self.pre_activation = pre_activation
        self.input_norm = MaskedBatchNorm1d(len(PAIR_FEATURES))
        sizes = (len(PAIR_FEATURES), *dims, num_heads)
        pairs = zip(sizes, sizes[1:], strict=False)
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)
        self.norms = nn.ModuleList(MaskedBatchNorm1d(b) for b in sizes[1:])

    def forward(self, p4: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = p4.shape
        i, j = torch.tril_indices(n, n, device=p4.device)
        with torch.no_grad():
            u = pairwise_features(p4[:, i], p4[:, j], self.eps)  # (batch, pairs, 4)
        pair_mask = mask[:, i] & mask[:, j]
        u = self.input_norm(u, pair_mask)
        last = len(self.linears) - 1
        for k, (linear, norm) in enumerate(zip(self.linears, self.norms, strict=True)):
            u = norm(linear(u), pair_mask)
            if k < last or not self.pre_activation:
                u = F.gelu(u)
        out = u.new_zeros(b, n, n, u.shape[-1])
        out[:, i, j] = u
        out[:, j, i] = u
        return out.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------- network
class ParticleTransformer(nn.Module):
    """ParT backbone and tagger (see the module docstring for the architecture and inputs)."""

    def __init__(self, config: ParticleTransformerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.particle_embed = ParticleEmbedding(config.input_dim, config.embed_dims)
        self.pair_embed = (
            PairEmbedding(
                config.pair_embed_dims,
                config.num_heads,
                config.use_pre_activation_pair,
                config.eps,
            )
            if config.pair_input_dim
            else None
        )
        block = (dim, config.num_heads, config.ffn_ratio)
        drops = (config.dropout, config.attn_dropout, config.activation_dropout)
        self.blocks = nn.ModuleList(ParTBlock(*block, *drops) for _ in range(config.num_layers))
        self.cls_blocks = nn.ModuleList(
            ParTBlock(*block, 0.0, 0.0, 0.0) for _ in range(config.num_cls_layers)
        )
        self.cls_token = self.norm = None
        if config.num_cls_layers:  # none: the backbone of jetfm's tasks (heads pool instead)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02, a=-2.0, b=2.0)
            self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.num_classes) if config.num_classes else None

    def _check(self, features: torch.Tensor, p4: torch.Tensor, mask: torch.Tensor) -> None:
        if features.ndim != 3 or features.shape[-1] != self.config.input_dim:
            raise ValueError(
                f"features must be (batch, particles, {self.config.input_dim}), "
                f"got {tuple(features.shape)}"
            )
        b, n = features.shape[:2]
        if tuple(p4.shape) != (b, n, 4):
            raise ValueError(f"p4 must be {(b, n, 4)} (batch, particles, 4), got {tuple(p4.shape)}")
        if mask.dtype != torch.bool or tuple(mask.shape) != (b, n):
            raise ValueError(
                f"mask must be a bool tensor of shape {(b, n)}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        empty = ~mask.any(dim=1)
        if bool(empty.any()):
            where = empty.nonzero().flatten().tolist()
            raise ValueError(f"jets without real particles at batch positions {where}")

    def encode(
        self, features: torch.Tensor, p4: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-particle embeddings after the particle-attention blocks (the backbone output).

        Args: ``features`` (B, P, input_dim), ``p4`` (B, P, 4) = (E, px, py, pz) in GeV,
        ``mask`` (B, P) bool, True for real particles.
        Returns ``(embeddings (B, P', embed_dim), mask (B, P'))`` with padded rows set to 0;
        P' <= P drops the trailing slots that hold no real particle of any jet.
        Raises ValueError for wrong shapes, a non-bool mask or a jet without particles.
        """
        self._check(features, p4, mask)
        n = int(mask.sum(dim=1).max())
        if n < mask.shape[1] and not bool(mask[:, n:].any()):
            features, p4, mask = features[:, :n], p4[:, :n], mask[:, :n]
        x = self.particle_embed(features, mask)
        bias = self.pair_embed(p4, mask) if self.pair_embed is not None else None
        for block in self.blocks:
            x = block(x, mask, bias)
        return x.masked_fill(~mask[..., None], 0.0), mask

    def pool(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class-attention blocks and the final LayerNorm: (B, P, D), (B, P) -> (B, D).
        Raises ValueError when the config has no class-attention blocks."""
        if self.cls_token is None:
            raise ValueError("this ParticleTransformer has num_cls_layers = 0: pool its "
                             "embeddings with a head (jetfm.models.heads)")
        cls = self.cls_token.expand(embeddings.shape[0], 1, -1)
        for block in self.cls_blocks:
            cls = block(embeddings, mask, cls=cls)
        return self.norm(cls).squeeze(1)

    def forward(
        self, features: torch.Tensor, p4: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, num_classes); with ``num_classes=None`` the class-token embedding (B, D).

        Inputs as in :meth:`encode`.
        """
        pooled = self.pool(*self.encode(features, p4, mask))
        return self.head(pooled) if self.head is not None else pooled


# ---------------------------------------------------------------------------- backbone
@register_backbone
class ParTBackbone(Backbone):
    """ParT as a jetfm backbone (``backbone: part``): the particle and pair embeddings and the
    particle-attention blocks of :class:`ParticleTransformer`; a head pools the embeddings
    (:class:`jetfm.models.heads.ClassAttentionHead` is ParT's own class attention, so
    ParT backbone + class_attention head = the reference tagger, see
    ``tests/test_backbones.py``).

    Config: :class:`ParticleTransformerConfig` less ``input_dim`` (the number of particle
    features of the spec), ``num_classes`` and ``num_cls_layers`` (the head's). Inputs: the
    spec's features, four-momenta (E, px, py, pz) [GeV] for the pair features, the mask.
    Default features: weaver's ``kin`` set (:data:`jetfm.models.features.KIN_FEATURES`).
    """

    name = "part"
    config_class = ParticleTransformerConfig
    derived_keys = ("input_dim", "num_classes", "num_cls_layers")

    def __init__(self, config: ParticleTransformerConfig, features: FeatureSpec) -> None:
        super().__init__(config, features)
        self.model = ParticleTransformer(config)

    @classmethod
    def derived(cls, features: FeatureSpec) -> dict:
        if not features.particle:
            raise ValueError("features: ParT embeds per-particle features: give at least one "
                             "(default: weaver's kin set)")
        return {"input_dim": len(features.particle), "num_classes": None, "num_cls_layers": 0}

    @property
    def dim(self) -> int:
        return self.config.embed_dim

    def forward(self, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P', embed_dim) embeddings and mask (:meth:`ParticleTransformer.encode`)."""
        return self.model.encode(inputs.features, inputs.p4, inputs.mask)


# ---------------------------------------------------------------------------- weaver weights
def weaver_name_map(config: ParticleTransformerConfig) -> dict[str, str]:
    """jetfm state-dict name -> weaver-core (aff6531) ``ParticleTransformer`` name.

    Reference module layout: ``embed.input_bn``, ``embed.embed`` = Sequential of
    [LayerNorm, Linear, GELU] per size; ``pair_embed.embed`` = Sequential of BatchNorm(4) then
    [Conv1d(k=1), BatchNorm1d, GELU] per size (the last GELU dropped when
    ``use_pre_activation_pair``); ``blocks.N`` / ``cls_blocks.N`` with ``pre_attn_norm``,
    ``attn`` (``nn.MultiheadAttention``: ``in_proj_*``, ``out_proj``), ``post_attn_norm``,
    ``pre_fc_norm``, ``fc1``, ``post_fc_norm``, ``fc2``, ``c_attn``, ``w_resid``;
    ``cls_token``, ``norm``, ``fc.0`` (``fc_params=[]``).
    Conv1d weights (out, in, 1) map to Linear weights (out, in) (see
    :func:`load_weaver_state_dict`).
    """
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    wb = ("weight", "bias")
    names: dict[str, str] = {}
    for p in bn:
        names[f"particle_embed.input_norm.{p}"] = f"embed.input_bn.{p}"
    for k in range(len(config.embed_dims)):
        for p in wb:
            names[f"particle_embed.layers.{k}.norm.{p}"] = f"embed.embed.{3 * k}.{p}"
            names[f"particle_embed.layers.{k}.linear.{p}"] = f"embed.embed.{3 * k + 1}.{p}"
    if config.pair_input_dim:
        for p in bn:
            names[f"pair_embed.input_norm.{p}"] = f"pair_embed.embed.0.{p}"
        for k in range(len(config.pair_embed_dims) + 1):
            for p in wb:
                names[f"pair_embed.linears.{k}.{p}"] = f"pair_embed.embed.{3 * k + 1}.{p}"
            for p in bn:
                names[f"pair_embed.norms.{k}.{p}"] = f"pair_embed.embed.{3 * k + 2}.{p}"
    block = {
        "attn_norm": "pre_attn_norm",
        "attn_out_norm": "post_attn_norm",
        "mlp_norm": "pre_fc_norm",
        "fc1": "fc1",
        "mlp_inner_norm": "post_fc_norm",
        "fc2": "fc2",
        "attn.proj": "attn.out_proj",
    }
    for group, count in (("blocks", config.num_layers), ("cls_blocks", config.num_cls_layers)):
        for n in range(count):
            ours, theirs = f"{group}.{n}.", f"{group}.{n}."
            for a, b in block.items():
                for p in wb:
                    names[f"{ours}{a}.{p}"] = f"{theirs}{b}.{p}"
            names[f"{ours}attn.qkv.weight"] = f"{theirs}attn.in_proj_weight"
            names[f"{ours}attn.qkv.bias"] = f"{theirs}attn.in_proj_bias"
            names[f"{ours}head_scale"] = f"{theirs}c_attn"
            names[f"{ours}resid_scale"] = f"{theirs}w_resid"
    if config.num_cls_layers:
        names["cls_token"] = "cls_token"
    for p in wb:
        if config.num_cls_layers:
            names[f"norm.{p}"] = f"norm.{p}"
        if config.num_classes:
            names[f"head.{p}"] = f"fc.0.{p}"
    return names


def load_weaver_state_dict(
    model: ParticleTransformer, state_dict: dict[str, torch.Tensor], prefix: str = ""
) -> None:
    """Load a weaver-core (aff6531) ``ParticleTransformer`` state dict into ``model``.

    ``prefix`` is stripped from the weaver names (``"mod."`` for the checkpoints of
    jet-universe/particle_transformer, whose wrapper holds the network as ``mod``).
    Raises ValueError naming the missing, unexpected or mis-shaped entries.
    """
    names = weaver_name_map(model.config)
    theirs = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    missing = sorted(set(names.values()) - set(theirs))
    unexpected = sorted(set(theirs) - set(names.values()))
    if missing or unexpected:
        raise ValueError(
            f"weaver state dict does not match the config: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    own = model.state_dict()
    converted = {}
    for ours, name in names.items():
        value = theirs[name]
        if ours.startswith("pair_embed.linears.") and ours.endswith(".weight"):
            value = value.squeeze(-1)  # Conv1d (out, in, 1) -> Linear (out, in)
        if value.shape != own[ours].shape:
            raise ValueError(
                f"weaver {name} has shape {tuple(value.shape)}, jetfm {ours} needs "
                f"{tuple(own[ours].shape)}"
            )
        converted[ours] = value
    model.load_state_dict(converted, strict=True)
