"""The backbone interface every jetfm model implements, the registry, and backbone files.

A backbone turns a padded particle batch into per-particle (per-token) embeddings:

    inputs = backbone.prepare(jets)          # JetBatch -> ParticleInputs (numpy), reports
    embeddings, mask = backbone(inputs.to_torch())   # (B, T, dim), (B, T) bool

``prepare`` applies the backbone's declarative :class:`~jetfm.models.features.FeatureSpec`
(stored with the model; a token backbone tokenizes instead). ``T`` may differ from the number
of particle slots: extra tokens (a global token, reference multivectors) come first, and
trailing slots no jet fills may be dropped. Heads (:mod:`jetfm.models.heads`) and tasks
(:mod:`jetfm.tasks.tagging`) take any backbone, so a backbone is swapped by one config key,
its registered name:

====== ============================================= ==========================================
name   class                                          source
====== ============================================= ==========================================
part   :class:`jetfm.models.particle_transformer.ParTBackbone`  Qu et al. 2022 (weaver-core)
lgatr  :class:`jetfm.models.lgatr.LGATrBackbone`      Spinner et al. 2024 (``lgatr`` package)
pet    :class:`jetfm.models.pet.PETBackbone`          Mikuni & Nachman 2024 (OmniLearn)
omnijet :class:`jetfm.models.omnijet.OmniJetBackbone` Birk et al. 2024 (tokens + GPT)
jetgpt :class:`jetfm.models.jetgpt.JetGPTBackbone`  Butter et al. 2023 / Spinner 2025 (JetGPT)
====== ============================================= ==========================================

Backbone files (:func:`save_backbone`, :func:`load_backbone`) are one safetensors file each
(:mod:`jetfm.checkpoint`): weights under ``backbone.``, and JSON metadata with the backbone's
name, configuration and feature spec, so one call rebuilds it on CPU or GPU without unpickling.
Tagger files (:mod:`jetfm.models.tagger`) hold a backbone the same way, so a tagger file can
also start a fine-tuning.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.checks import from_mapping
from jetfm.data.batch import JetBatch, SelectionReport
from jetfm.models.features import KIN_FEATURES, FeatureSpec, ParticleInputs, feature_spec

BACKBONE_MODULES: dict[str, str] = {
    "part": "jetfm.models.particle_transformer",
    "lgatr": "jetfm.models.lgatr",
    "pet": "jetfm.models.pet",
    "omnijet": "jetfm.models.omnijet",
    "jetgpt": "jetfm.models.jetgpt",
}
"""Registered name -> module defining it (imported on first use)."""
_REGISTRY: dict[str, type[Backbone]] = {}


class Backbone(nn.Module, ABC):
    """Base class: a subclass sets ``name``, ``config_class`` (a dataclass), optionally
    ``default_features``, ``default_head`` and ``derived_keys`` (config fields set from the
    feature spec by :meth:`derived`), builds its layers in ``__init__(config, features)``
    and implements :attr:`dim` and :meth:`forward`."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = object
    default_features: ClassVar[FeatureSpec] = KIN_FEATURES
    derived_keys: ClassVar[tuple[str, ...]] = ()
    default_head: ClassVar[str] = "class_attention"  # the head a tagger takes unless told
    uses_jet_features: ClassVar[bool] = False  # True: the network has an input for them

    def __init__(self, config: Any, features: FeatureSpec) -> None:
        """Raises ``ValueError`` for a spec with jet features when the backbone has no input
        for them (:attr:`uses_jet_features`): they would be ignored silently."""
        if features.jet and not self.uses_jet_features:
            raise ValueError(f"{self.name} backbone: jet features "
                             f"{[f.name for f in features.jet]} are not used by this network; "
                             "remove them from the feature spec")
        super().__init__()
        self.config = config
        self.features = features

    # ---------------------------------------------------------------- construction
    @classmethod
    def derived(cls, features: FeatureSpec) -> dict[str, Any]:
        """Config fields that follow from ``features`` (e.g. the input width)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, features: FeatureSpec,
                    where: str = "backbone_config") -> Backbone:
        """Build from plain data: ``config`` holds fields of ``config_class`` other than
        :attr:`derived_keys`. ``ValueError`` naming ``where`` and the unknown keys or the
        bad value."""
        built = from_mapping(cls.config_class, dict(config or {}),
                             f"{where} (backbone {cls.name!r})", fixed=cls.derived(features))
        return cls(built, features)

    def config_dict(self) -> dict[str, Any]:
        """The configuration as plain data, without the derived keys (:meth:`from_config`
        reads it back)."""
        data = asdict(self.config)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()
                if k not in self.derived_keys}

    def meta(self) -> dict[str, Any]:
        """What a model file records about this backbone (plain data)."""
        return {"backbone": self.name, "backbone_config": self.config_dict(),
                "features": self.features.to_dict()}

    def scratch(self) -> Backbone:
        """A randomly initialised backbone of the same architecture and features (training
        "from scratch"); parts that are not trained (a token backbone's tokenizer) are kept."""
        return type(self).from_config(self.config_dict(), self.features)

    # ---------------------------------------------------------------- use
    @property
    def has_global_token(self) -> bool:
        """Whether token 0 of the embeddings summarises the whole jet (a global or class token
        that attends to every particle), so the ``global_token`` head can read it."""
        return False

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of the embeddings :meth:`forward` returns."""

    def prepare(self, batch: JetBatch, origin: str | None = None
                ) -> tuple[ParticleInputs, list[SelectionReport]]:
        """``batch`` as this backbone's inputs (numpy) and the particle-selection reports.
        Raises :class:`~jetfm.data.batch.JetDataError` naming ``origin`` and any feature the
        data lack."""
        return self.features.apply(batch, origin)

    @abstractmethod
    def forward(self, inputs: ParticleInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (B, T, dim), mask (B, T) bool) with padded rows 0."""


def register_backbone(cls: type[Backbone]) -> type[Backbone]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def backbone_class(name: str) -> type[Backbone]:
    """The backbone class registered as ``name``; ``ValueError`` listing the valid names."""
    if name not in _REGISTRY and name in BACKBONE_MODULES:
        importlib.import_module(BACKBONE_MODULES[name])
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; valid: {sorted(BACKBONE_MODULES)}")
    return _REGISTRY[name]


def build_backbone(name: str, config: Mapping[str, Any] | None = None,
                   features: Any = None, where: str = "backbone") -> Backbone:
    """A freshly initialised backbone ``name`` with ``config`` (plain data) and ``features``
    (a :class:`FeatureSpec`, a config value for :func:`~jetfm.models.features.feature_spec`, or
    None for the backbone's default)."""
    cls = backbone_class(name)
    prefix = f"{where}: " if where else ""
    spec = feature_spec(features, cls.default_features, f"{prefix}features")
    return cls.from_config(config, spec, f"{prefix}backbone_config")


def backbone_from_meta(meta: Mapping[str, Any], where: str) -> Backbone:
    """An (untrained) backbone as recorded in a model file's metadata."""
    if "backbone" not in meta:
        raise ValueError(f"{where}: not a backbone or tagger file (kind={meta.get('kind')!r})")
    cls = backbone_class(meta["backbone"])
    return cls.from_config(meta["backbone_config"],
                           FeatureSpec.from_dict(meta["features"], f"{where}: features"), where)


def save_backbone(path: str | Path, backbone: Backbone, meta: Mapping[str, Any] | None = None
                  ) -> Path:
    """Write ``backbone`` (weights, name, config, feature spec and ``meta``) to ``path``
    (safetensors, atomically)."""
    tensors = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    return save_model(path, tensors, {"kind": "backbone", **backbone.meta(), **(meta or {})})


def load_backbone(path: str | Path, expect: str | None = None,
                  device: str | torch.device = "cpu") -> Backbone:
    """The backbone of a backbone or tagger file, in eval mode on ``device``.

    ``expect``: the backbone name the caller's config asks for; a file holding another
    backbone raises ``ValueError`` naming the file and both names. Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` for a file that is not a jetfm
    backbone or tagger file.
    """
    tensors, meta = load_model(path, device)
    backbone = backbone_from_meta(meta, str(path))
    if expect is not None and backbone.name != expect:
        raise ValueError(f"{path} holds a {backbone.name!r} backbone, but the config asks for "
                         f"backbone {expect!r}")
    backbone.load_state_dict(prefixed(tensors, "backbone"))
    return backbone.to(device).eval()
