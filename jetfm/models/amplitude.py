"""Amplitude regressors: networks that predict the standardised log squared amplitude of a
scattering process from the four-momenta of all its external particles (Spinner's thesis,
chapter 6.2; Spinner et al. 2024, arXiv:2405.14806, Sec. 4).

One small API for the three models the study compares, registered by name (as the backbones
of :mod:`jetfm.models.backbone`), so a study swaps the model by one key:

====== =========================================== =========================================
name   class                                       inputs
====== =========================================== =========================================
lgatr  :class:`LGATrAmplitude` (``lgatr`` package) p / units as vectors, type one-hot scalars
transformer :class:`TransformerAmplitude`          standardised (E, px, py, pz) + type one-hot
mlp    :class:`MLPAmplitude`                       standardised momenta, concatenated
====== =========================================== =========================================

    model = build_regressor("lgatr", {"num_blocks": 2}, types=(0, 0, 1, 1, 2))
    model.set_preprocessing(p4_train)        # units and input standardisation from the data
    y = model(p4)                            # (B, N, 4) GeV -> (B,) standardised log A

Inputs, as the reference code (heidelberg-hepml/lorentz-gatr, HEAD 35aca2a,
``experiments/amplitudes/experiment.py::init_data`` and ``preprocessing.py``): the momenta
(E, px, py, pz) [GeV] of all particles divided by one number, ``units`` = the standard
deviation of all components of the training momenta (``particles / particles.std()``), which
keeps Lorentz equivariance; the two baselines then standardise each component separately
(mean and standard deviation over training events and particles, the standard deviation
floored at 1e-2: ``preprocess_particles``). :meth:`AmplitudeRegressor.set_preprocessing` sets
both from the training momenta; they are buffers, stored with the weights.

Particle types (``types``, one per particle, e.g. :attr:`jetfm.physics.amplitudes.Process.types`)
are a one-hot vector per particle for the L-GATr and the transformer, as the reference's
``type_token``; the MLP ignores them, as the reference's ``AmplitudeMLPWrapper`` does (its
input order fixes the particles).

* **L-GATr** (``wrappers.py::AmplitudeGATrWrapper``): each momentum is the grade-1 part of one
  multivector channel (:func:`lgatr.embed_vector`), the type one-hot its scalar channels; a
  global token (zero multivector) is prepended, and the amplitude is the scalar (grade-0)
  component of output multivector channel 0 at the global token (``extract_scalar(...)[...,
  0, :]``). The reference marks the global token by a one-hot dataset index in the type
  channels; here it has an extra scalar channel of its own set to 1 (as
  :class:`jetfm.models.lgatr.LGATrBackbone`), so it cannot be mistaken for a particle. No
  reference multivectors (spurions): the amplitude is fully Lorentz invariant, and so is the
  prediction (under proper orthochronous transformations of all momenta; ``lgatr``'s
  default subgroup equivariance, so parity is not a symmetry). No positional information: the
  prediction is invariant under permutations of particles of one type.
  Defaults (:class:`LGATrAmplitudeConfig`): the thesis' Table A.3 (32 scalar and 32
  multivector channels, 8 heads, 8 blocks) with the reference config's
  ``increase_hidden_channels: 2`` (``attn_ratio=2``), ``head_scale: false`` and the MLP at
  twice the hidden channels (``mlp_ratio=2``; ``config/model/gatr_amplitudes.yaml``):
  2,073,826 parameters for 5 particles of 3 types (counted), the thesis quotes 1.8 x 10^6
  (``attn_ratio=1`` would give 1,582,306; the mapping of the old ``gatr`` options onto
  ``lgatr`` 2.0.0 is not exact).
* **Transformer** (``AmplitudeTransformerWrapper`` with ``experiments/baselines/
  transformer.py``): tokens (standardised momentum, type one-hot, global flag), a global
  token first, a linear embedding, pre-norm blocks (:class:`jetfm.nn.transformer.Block`, MLP
  at twice the width as the reference's baseline block), a final layer norm and a linear map
  of the global token to the output. Defaults: Table A.3 (128 channels, 8 heads, 8 blocks):
  1,061,377 parameters (counted; the thesis quotes 1.3 x 10^6 for its baseline block).
  Permutation invariant within a type, not Lorentz invariant.
* **MLP** (``experiments/baselines/mlp.py``): the concatenated standardised momenta through
  ``n_layers`` linear layers of width ``hidden`` with GELU, then a linear output. Defaults:
  Table A.3 (128 channels, 5 layers: 68,865 parameters for 5 particles, the thesis' "7 x
  10^4").
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from lgatr import LGATr, embed_vector, extract_scalar
from torch import nn

from jetfm.checks import POSITIVE_INT, check_divisible, check_fields, check_flag, from_mapping
from jetfm.nn.transformer import Block

EPS_STD = 1e-2
"""Floor of the per-component standard deviation (the reference's ``eps_std``)."""

_REGISTRY: dict[str, type[AmplitudeRegressor]] = {}


class AmplitudeRegressor(nn.Module, ABC):
    """Base class: a subclass sets ``name``, ``config_class`` (a dataclass) and
    ``lorentz_invariant``, builds its layers in ``__init__(config, types, n_types)`` and
    implements :meth:`predict_standardised` on preprocessed momenta."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    lorentz_invariant: ClassVar[bool] = False

    def __init__(self, config: Any, types: Sequence[int], n_types: int | None = None) -> None:
        """``types``: the type (0, 1, ...) of each particle, in the order of the momenta;
        ``n_types``: length of the one-hot vector (default max(types) + 1). ``ValueError``
        for no particles, negative types or types >= n_types."""
        super().__init__()
        types = [int(t) for t in types]
        if not types or min(types) < 0:
            raise ValueError(f"{self.name} regressor: types must be a non-empty list of "
                             f"whole numbers >= 0, got {types}")
        n_types = max(types) + 1 if n_types is None else int(n_types)
        if max(types) >= n_types:
            raise ValueError(f"{self.name} regressor: type {max(types)} >= n_types {n_types}")
        self.config = config
        self.n_particles = len(types)
        self.n_types = n_types
        self.register_buffer("types", torch.tensor(types, dtype=torch.long))
        self.register_buffer("units", torch.tensor(1.0))
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("std", torch.ones(4))

    def config_dict(self) -> dict[str, Any]:
        """The configuration as plain data (:func:`build_regressor` reads it back)."""
        return asdict(self.config)

    def set_preprocessing(self, p4: np.ndarray | torch.Tensor) -> None:
        """Set ``units`` (the standard deviation of all components of ``p4``, (events,
        particles, 4) [GeV]) and the per-component ``mean`` and ``std`` of ``p4 / units``
        (floored at :data:`EPS_STD`), the reference's preprocessing (module docstring).
        ``ValueError`` for a wrong shape, non-finite values or fewer than 2 events."""
        p4 = torch.as_tensor(np.asarray(p4), dtype=torch.float64)
        self._check(p4)
        if len(p4) < 2:
            raise ValueError(f"{self.name} regressor: preprocessing needs at least 2 events, "
                             f"got {len(p4)}")
        units = p4.std(correction=0)  # numpy's std, as the reference
        scaled = p4 / units
        self.units.copy_(units)
        self.mean.copy_(scaled.mean(dim=(0, 1)))
        self.std.copy_(scaled.std(dim=(0, 1), correction=0).clamp(min=EPS_STD))

    def _check(self, p4: torch.Tensor) -> None:
        if p4.ndim != 3 or tuple(p4.shape[1:]) != (self.n_particles, 4):
            raise ValueError(f"{self.name} regressor: momenta must have shape (batch, "
                             f"{self.n_particles}, 4) (E, px, py, pz), got {tuple(p4.shape)}")
        if not bool(torch.isfinite(p4).all()):
            raise ValueError(f"{self.name} regressor: non-finite momenta")

    def one_hot(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """Type one-hot (batch, particles, n_types)."""
        eye = torch.nn.functional.one_hot(self.types, self.n_types).to(dtype)
        return eye.expand(batch, -1, -1)

    def standardised(self, p4: torch.Tensor) -> torch.Tensor:
        """``p4 / units`` standardised per component (the baselines' inputs)."""
        return (p4 / self.units - self.mean) / self.std

    def forward(self, p4: torch.Tensor) -> torch.Tensor:
        """Standardised log amplitudes (B,) of momenta ``p4`` (B, particles, 4) [GeV].
        ``ValueError`` for a wrong shape or non-finite momenta."""
        self._check(p4)
        return self.predict_standardised(p4.to(self.units.dtype))

    @abstractmethod
    def predict_standardised(self, p4: torch.Tensor) -> torch.Tensor:
        """(B,) from checked momenta (B, particles, 4) [GeV]."""


def register_regressor(cls: type[AmplitudeRegressor]) -> type[AmplitudeRegressor]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


REGRESSORS = ("lgatr", "transformer", "mlp")
"""The registered names (all defined in this module)."""


def regressor_class(name: str) -> type[AmplitudeRegressor]:
    """The regressor class registered as ``name``; ``ValueError`` listing the valid names."""
    importlib.import_module(__name__)
    if name not in _REGISTRY:
        raise ValueError(f"regressor {name!r}: use one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def build_regressor(name: str, config: Mapping[str, Any] | None, types: Sequence[int],
                    n_types: int | None = None, where: str = "model config"
                    ) -> AmplitudeRegressor:
    """A randomly initialised regressor ``name`` with the plain-data ``config`` (fields of its
    config class; missing keys take the defaults). ``ValueError`` naming ``where``, the
    unknown keys or the bad value."""
    cls = regressor_class(name)
    built = from_mapping(cls.config_class, dict(config or {}), f"{where} ({name})")
    return cls(built, types, n_types)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- L-GATr
@dataclass
class LGATrAmplitudeConfig:
    """:class:`LGATrAmplitude` hyper-parameters (module docstring: defaults and sources);
    ``ValueError`` naming a bad field."""

    hidden_mv_channels: int = 32
    hidden_s_channels: int = 32
    num_blocks: int = 8
    num_heads: int = 8
    attn_ratio: int = 2
    head_scale: bool = False
    mlp_ratio: int = 2

    def __post_init__(self) -> None:
        check_fields(self, dict.fromkeys(("hidden_mv_channels", "hidden_s_channels",
                                          "num_blocks", "num_heads", "attn_ratio",
                                          "mlp_ratio"), POSITIVE_INT))
        check_flag("head_scale", self.head_scale)


@register_regressor
class LGATrAmplitude(AmplitudeRegressor):
    """L-GATr amplitude regressor (module docstring): Lorentz invariant by construction."""

    name = "lgatr"
    config_class = LGATrAmplitudeConfig
    lorentz_invariant = True

    def __init__(self, config: LGATrAmplitudeConfig, types: Sequence[int],
                 n_types: int | None = None) -> None:
        super().__init__(config, types, n_types)
        self.net = LGATr(
            num_blocks=config.num_blocks, in_mv_channels=1, out_mv_channels=1,
            hidden_mv_channels=config.hidden_mv_channels,
            in_s_channels=self.n_types + 1, out_s_channels=0,
            hidden_s_channels=config.hidden_s_channels,
            attention=dict(num_heads=config.num_heads, attn_ratio=config.attn_ratio,
                           head_scale=config.head_scale),
            mlp=dict(mlp_ratio=config.mlp_ratio))

    def embed(self, p4: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Multivectors (B, 1 + N, 1, 16) and scalars (B, 1 + N, n_types + 1): the global
        token (zero multivector, last scalar channel 1) then the particles (p / units as a
        vector, type one-hot)."""
        b = p4.shape[0]
        mv = embed_vector(p4 / self.units)  # (B, N, 16)
        mv = torch.cat((mv.new_zeros(b, 1, 16), mv), dim=1)[:, :, None, :]
        scalars = torch.cat((self.one_hot(b, p4.dtype), p4.new_zeros(b, self.n_particles, 1)),
                            dim=-1)
        glob = p4.new_zeros(b, 1, self.n_types + 1)
        glob[..., -1] = 1.0
        return mv, torch.cat((glob, scalars), dim=1)

    def predict_standardised(self, p4: torch.Tensor) -> torch.Tensor:
        mv, scalars = self.embed(p4)
        out_mv, _ = self.net(mv, scalars=scalars)
        return extract_scalar(out_mv)[:, 0, 0, 0]  # global token, channel 0, grade 0


# ----------------------------------------------------------------------------- transformer
@dataclass
class TransformerAmplitudeConfig:
    """:class:`TransformerAmplitude` hyper-parameters (module docstring); ``ValueError``
    naming a bad field (``dim`` a multiple of ``n_heads``)."""

    dim: int = 128
    n_heads: int = 8
    n_blocks: int = 8
    expansion: int = 2

    def __post_init__(self) -> None:
        check_fields(self, dict.fromkeys(("dim", "n_heads", "n_blocks", "expansion"),
                                         POSITIVE_INT))
        check_divisible(self)


@register_regressor
class TransformerAmplitude(AmplitudeRegressor):
    """Standard transformer amplitude regressor (module docstring)."""

    name = "transformer"
    config_class = TransformerAmplitudeConfig

    def __init__(self, config: TransformerAmplitudeConfig, types: Sequence[int],
                 n_types: int | None = None) -> None:
        super().__init__(config, types, n_types)
        self.embed = nn.Linear(4 + self.n_types + 1, config.dim)
        self.blocks = nn.ModuleList(Block(config.dim, config.n_heads, config.expansion)
                                    for _ in range(config.n_blocks))
        self.norm = nn.LayerNorm(config.dim)
        self.out = nn.Linear(config.dim, 1)

    def predict_standardised(self, p4: torch.Tensor) -> torch.Tensor:
        b = p4.shape[0]
        tokens = torch.cat((self.standardised(p4), self.one_hot(b, p4.dtype),
                            p4.new_zeros(b, self.n_particles, 1)), dim=-1)
        glob = p4.new_zeros(b, 1, tokens.shape[-1])
        glob[..., -1] = 1.0
        x = self.embed(torch.cat((glob, tokens), dim=1))
        for block in self.blocks:
            x, _ = block(x)
        return self.out(self.norm(x[:, 0]))[:, 0]


# ----------------------------------------------------------------------------- MLP
@dataclass
class MLPAmplitudeConfig:
    """:class:`MLPAmplitude` hyper-parameters: ``hidden`` width, ``n_layers`` hidden linear
    layers (module docstring); ``ValueError`` naming a bad field."""

    hidden: int = 128
    n_layers: int = 5

    def __post_init__(self) -> None:
        check_fields(self, dict.fromkeys(("hidden", "n_layers"), POSITIVE_INT))


@register_regressor
class MLPAmplitude(AmplitudeRegressor):
    """MLP amplitude regressor on the concatenated standardised momenta (module docstring)."""

    name = "mlp"
    config_class = MLPAmplitudeConfig

    def __init__(self, config: MLPAmplitudeConfig, types: Sequence[int],
                 n_types: int | None = None) -> None:
        super().__init__(config, types, n_types)
        layers: list[nn.Module] = [nn.Linear(4 * self.n_particles, config.hidden)]
        for _ in range(config.n_layers - 1):
            layers += [nn.GELU(), nn.Linear(config.hidden, config.hidden)]
        layers += [nn.GELU(), nn.Linear(config.hidden, 1)]
        self.net = nn.Sequential(*layers)

    def predict_standardised(self, p4: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardised(p4).flatten(1))[:, 0]


__all__ = ["REGRESSORS", "AmplitudeRegressor", "LGATrAmplitude", "LGATrAmplitudeConfig",
           "MLPAmplitude", "MLPAmplitudeConfig", "TransformerAmplitude",
           "TransformerAmplitudeConfig", "build_regressor", "count_parameters",
           "register_regressor", "regressor_class"]
