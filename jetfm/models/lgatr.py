"""L-GATr backbone: the Lorentz-equivariant geometric-algebra transformer (Spinner et al. 2024,
arXiv:2405.14806; Brehmer et al., arXiv:2411.00446) through the
``lgatr`` package (heidelberg-hepml/lgatr, PyPI ``lgatr==2.0.0``).

Inputs, following the tagging code of heidelberg-hepml/lorentz-gatr (HEAD 35aca2a,
``experiments/tagging/embedding.py::embed_tagging_data_into_ga`` and ``wrappers.py``):

* each particle's four-momentum (E, px, py, pz) [GeV] divided by ``units`` (``UNITS = 20``
  GeV in the reference) is embedded as the grade-1 part of one multivector channel
  (:func:`lgatr.interface.embed_vector`);
* the feature spec's per-particle features (0 by default) are scalar channels alongside;
* reference multivectors ("spurions", which break SO(1,3) to the rotations about the beam) are
  extra tokens (the reference's ``beam_token: true``), made by :func:`lgatr.get_spurions`: the
  x-y plane as a bivector (``beam_reference: xyplane``) and the time direction (1, 0, 0, 0) as a
  vector (``add_time_reference: true``); their scalar channels are 0;
* one global token (zero multivector, one extra scalar channel set to 1 only there) is placed
  first (the reference's ``include_global_token``, prepended before the spurion tokens), so
  :class:`jetfm.models.heads.GlobalTokenHead` (``global_token``, reads token 0) gives the
  logits from it, as the reference reads the scalar component of output channel 0 at the global
  token.

Token order: [global] [beam] [time] particles; the per-jet layout is dense with padding
(trailing slots that no jet of the batch fills are dropped).
The reference packs jets without padding (a block-diagonal xformers mask); here padded slots are
masked out as keys by a boolean attention mask (B, 1, 1, T) given to ``lgatr``'s native
backend (``torch.nn.functional.scaled_dot_product_attention``), and their inputs are zeroed, so
padding (whatever it holds) changes no output of real tokens. This runs on CPU and GPU.

Outputs: the Lorentz-invariant part of the network output only: the scalar (grade-0) component
of each of the ``out_mv_channels`` output multivector channels, then the ``out_s_channels``
output scalars: (B, T, out_mv_channels + out_s_channels). Without reference tokens and scalar
features every output is invariant under proper orthochronous Lorentz transformations of all
four-momenta (``lgatr``'s default ``PrimitivesConfig(subgroup=True)`` equivariance group, the
paper's ``use_fully_connected_subgroup: true``; pseudoscalars may mix into the scalars, so
parity is not a symmetry); with them, under rotations about the beam (z) axis.

Defaults (:class:`LGATrConfig`) = the paper's top-tagging network
(``config_paper/model/gatr_tagging.yaml`` and ``config_paper/default_tagging.yaml``):
12 blocks, 16 hidden multivector and 32 hidden scalar channels, attention with 8 heads,
``increase_hidden_channels: 2`` and ``head_scale: true``, MLP with twice the hidden channels
(the old ``gatr`` base MLP). In ``lgatr`` 2.0.0 these are ``attention=dict(num_heads=8,
attn_ratio=2, head_scale=True)`` and ``mlp=dict(mlp_ratio=2)`` (the 1.3.1 change of the
defaults to (1, 4) is undone explicitly). ``out_mv_channels=1``, ``out_s_channels=0`` as the
reference's binary tagger (its JetClass tagger sets ``out_mv_channels`` to the number of
classes: set it to at least the number of classes for a multi-class ``global_token`` head).
No dropout. With the default features (none) the backbone has **1,077,026** parameters
(counted; ``tests/test_lgatr.py::test_default_parameter_count``); not compared with the paper's
count, which the reference notes do not quote and which could not be read here.

``default_features``: none (:data:`LGATR_FEATURES`, up to 128 particles), as the paper's top
tagger (``config_paper/toptagging.yaml``: ``add_scalar_features: false``), which keeps the
network exactly equivariant apart from the reference tokens. Its JetClass tagger adds weaver's
``kin``-like scalars (``add_scalar_features``): pass ``features`` (e.g. the list of
:data:`jetfm.models.features.KIN_FEATURES` names) to do the same.

A small CPU configuration: ``{"num_blocks": 2, "hidden_mv_channels": 8,
"hidden_s_channels": 16}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lgatr import LGATr, embed_vector, get_spurions

from jetfm.checks import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, check_fields
from jetfm.models.backbone import Backbone, register_backbone
from jetfm.models.features import FeatureSpec, ParticleInputs

BEAM_REFERENCES = ("xyplane", None)
LGATR_FEATURES = FeatureSpec((), n_max=128)
"""L-GATr's default inputs: four-momenta only (no scalar features), up to 128 particles."""


@dataclass
class LGATrConfig:
    """Hyper-parameters of :class:`LGATrBackbone` (see the module docstring for the sources).

    ``beam_reference``: ``"xyplane"`` (beam as the x-y-plane bivector token) or None;
    ``add_time_reference``: add the time direction (1, 0, 0, 0) as a token; ``units``: GeV
    per unit of the embedded four-momenta; ``global_token``: prepend the global token.
    Raises ``ValueError`` naming a bad field.
    """

    hidden_mv_channels: int = 16
    hidden_s_channels: int = 32
    num_blocks: int = 12
    num_heads: int = 8
    attn_ratio: int = 2
    head_scale: bool = True
    mlp_ratio: int = 2
    out_mv_channels: int = 1
    out_s_channels: int = 0
    beam_reference: str | None = "xyplane"
    add_time_reference: bool = True
    units: float = 20.0
    global_token: bool = True

    def __post_init__(self) -> None:
        positive = ("hidden_mv_channels", "hidden_s_channels", "num_blocks", "num_heads",
                    "attn_ratio", "mlp_ratio", "out_mv_channels")
        check_fields(self, {**dict.fromkeys(positive, POSITIVE_INT),
                            "out_s_channels": NON_NEGATIVE_INT, "units": POSITIVE})
        if self.beam_reference not in BEAM_REFERENCES:
            raise ValueError(f"beam_reference: {self.beam_reference!r} is not one of "
                             f"{list(BEAM_REFERENCES)}")
        for name in ("head_scale", "add_time_reference", "global_token"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: {getattr(self, name)!r} is not true or false")

    @property
    def num_reference_tokens(self) -> int:
        """Number of reference-multivector tokens (beam, time)."""
        return (self.beam_reference is not None) + self.add_time_reference

    @property
    def num_extra_tokens(self) -> int:
        """Tokens before the particles: the global token and the reference tokens."""
        return self.global_token + self.num_reference_tokens


def check_particle_inputs(inputs: ParticleInputs, n_features: int, who: str) -> None:
    """Check the shapes of ``inputs`` (torch tensors) for a backbone reading ``mask`` (B, P)
    bool, ``p4`` (B, P, 4) and ``features`` (B, P, ``n_features``; may be None when
    ``n_features`` is 0). Raises ``ValueError`` naming ``who`` and what is wrong: a wrong
    shape or dtype, a jet without real particles, or a non-finite four-momentum of a real
    particle."""
    mask, p4, features = inputs.mask, inputs.p4, inputs.features
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 2:
        raise ValueError(f"{who}: mask must be a bool tensor (batch, particles), got "
                         f"{getattr(mask, 'dtype', type(mask))} "
                         f"{tuple(getattr(mask, 'shape', ()))}")
    b, n = mask.shape
    if not isinstance(p4, torch.Tensor) or tuple(p4.shape) != (b, n, 4):
        raise ValueError(f"{who}: p4 must be a tensor of shape {(b, n, 4)} (batch, particles, "
                         f"(E, px, py, pz)), got {tuple(getattr(p4, 'shape', ())) or p4!r}")
    if features is None and n_features == 0:
        pass
    elif not isinstance(features, torch.Tensor) or tuple(features.shape) != (b, n, n_features):
        raise ValueError(f"{who}: features must be a tensor of shape {(b, n, n_features)} "
                         f"(batch, particles, features of the spec), got "
                         f"{tuple(getattr(features, 'shape', ())) or features!r}")
    empty = ~mask.any(dim=1)
    if bool(empty.any()):
        raise ValueError(f"{who}: jets without real particles at batch positions "
                         f"{empty.nonzero().flatten()[:10].tolist()}")
    bad = (~torch.isfinite(p4).all(dim=-1)) & mask
    if bool(bad.any()):
        raise ValueError(f"{who}: non-finite four-momenta of real particles in jets "
                         f"{bad.any(dim=1).nonzero().flatten()[:10].tolist()}")


@register_backbone
class LGATrBackbone(Backbone):
    """L-GATr on four-momenta (+ scalar features), reference tokens and a global token; see
    the module docstring. ``forward`` returns the invariant outputs (B, T, :attr:`dim`) of
    T = :attr:`LGATrConfig.num_extra_tokens` + P tokens and their mask."""

    name = "lgatr"
    config_class = LGATrConfig
    default_features = LGATR_FEATURES
    default_head = "global_token"  # the reference's logits: its global token's outputs

    def __init__(self, config: LGATrConfig, features: FeatureSpec) -> None:
        """Raises ``ValueError`` for a spec with jet features (the network has no input for
        them: :class:`~jetfm.models.backbone.Backbone`)."""
        super().__init__(config, features)
        self.n_features = len(features.particle)
        in_s = self.n_features + config.global_token
        self.net = LGATr(
            num_blocks=config.num_blocks,
            in_mv_channels=1,
            out_mv_channels=config.out_mv_channels,
            hidden_mv_channels=config.hidden_mv_channels,
            in_s_channels=in_s,
            out_s_channels=config.out_s_channels,
            hidden_s_channels=config.hidden_s_channels,
            attention=dict(num_heads=config.num_heads, attn_ratio=config.attn_ratio,
                           head_scale=config.head_scale),
            mlp=dict(mlp_ratio=config.mlp_ratio),
        )
        # (n_ref, 16): [beam bivector][time vector], lgatr's own construction
        spurions = get_spurions(config.beam_reference, config.add_time_reference)
        self.register_buffer("spurions", spurions, persistent=False)

    @property
    def has_global_token(self) -> bool:
        return bool(self.config.global_token)

    @property
    def dim(self) -> int:
        """out_mv_channels (scalar components) + out_s_channels."""
        return self.config.out_mv_channels + self.config.out_s_channels

    def embed(self, inputs: ParticleInputs
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The network inputs: multivectors (B, T, 1, 16), scalars (B, T, S) or None when
        S = 0, and the token mask (B, T) bool. Padded slots are zeroed."""
        config = self.config
        mask = inputs.mask
        b, n = mask.shape
        real = mask[..., None]
        p4 = torch.where(real, inputs.p4, 0.0) / config.units
        mv = embed_vector(p4)  # (B, P, 16)
        scalars = None
        if self.n_features:
            scalars = torch.where(real, inputs.features.to(p4.dtype), 0.0)
        # reference tokens
        refs = self.spurions.to(p4.dtype).expand(b, -1, -1)
        mv = torch.cat((refs, mv), dim=1)
        if scalars is not None:
            scalars = torch.cat((scalars.new_zeros(b, len(self.spurions), self.n_features),
                                 scalars), dim=1)
        token_mask = torch.cat((mask.new_ones(b, len(self.spurions)), mask), dim=1)
        # global token first: zero multivector, one-hot extra scalar channel
        if config.global_token:
            mv = torch.cat((mv.new_zeros(b, 1, 16), mv), dim=1)
            flag = mv.new_zeros(b, mv.shape[1], 1)
            flag[:, 0] = 1.0
            scalars = flag if scalars is None else torch.cat(
                (torch.cat((scalars.new_zeros(b, 1, self.n_features), scalars), dim=1), flag),
                dim=-1)
            token_mask = torch.cat((mask.new_ones(b, 1), token_mask), dim=1)
        return mv[:, :, None, :], scalars, token_mask

    def forward(self, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (B, T, dim), mask (B, T) bool); T = extra tokens + particle slots up to
        the last one any jet fills (trailing empty slots are dropped, as ParT's ``encode``
        does), padded rows 0. ``inputs``: torch tensors, ``p4`` (E, px, py, pz) in GeV. Raises
        ``ValueError`` for wrong shapes, a jet without particles or non-finite momenta."""
        check_particle_inputs(inputs, self.n_features, "lgatr backbone")
        used = int(inputs.mask.any(dim=0).nonzero().max()) + 1
        if used < inputs.mask.shape[1]:  # drop trailing slots no jet fills
            inputs = ParticleInputs(inputs.mask[:, :used], None if inputs.features is None
                                    else inputs.features[:, :used], inputs.p4[:, :used])
        mv, scalars, token_mask = self.embed(inputs)
        attn_mask = token_mask[:, None, None, :]  # (B, 1, 1, T): True = may be attended to
        out_mv, out_s = self.net(mv, scalars=scalars, attn_mask=attn_mask)
        out = out_mv[..., 0]  # scalar components: (B, T, out_mv_channels)
        if out_s is not None and out_s.shape[-1]:
            out = torch.cat((out, out_s), dim=-1)
        return out.masked_fill(~token_mask[..., None], 0.0), token_mask
