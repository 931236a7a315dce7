"""A jet tagger: any backbone + a head + the class list it separates; tagger files.

    tagger = build_tagger("part", ["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"])
    probs = tagger.predict_proba(jets)          # (n_jets, 5), rows sum to 1
    tagger.save("tagger.safetensors"); load_tagger("tagger.safetensors", device="cuda")

Classes are names of :data:`jetfm.data.classes.CLASSES` in any order and number (>= 2); the
tagger's output ``k`` is the probability of ``classes[k]``. A tagger file is one safetensors file
(:mod:`jetfm.checkpoint`): weights under ``backbone.`` and ``head.``; metadata = the backbone's
name, configuration and feature spec (and tokenizer, for a token backbone), the head and its
options, and the classes. A tagger file can also start a fine-tuning
(:func:`jetfm.models.backbone.load_backbone` reads its backbone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.data.classes import CLASSES, class_index, class_name
from jetfm.models.backbone import Backbone, backbone_from_meta, build_backbone
from jetfm.models.features import ParticleInputs
from jetfm.models.heads import build_head


def check_classes(classes: Sequence[str], where: str = "classes") -> tuple[str, ...]:
    """``classes`` as a tuple of known, distinct class names (at least two); ``ValueError``
    naming ``where`` otherwise."""
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise ValueError(f"{where}: expected a list of class names, got {classes!r}")
    classes = tuple(classes)
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"{where}: unknown classes {unknown}; jetfm classes: {list(CLASSES)}")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ValueError(f"{where}: classes {repeated} appear more than once in "
                         f"{list(classes)}")
    if len(classes) < 2:
        raise ValueError(f"{where}: a tagger separates at least two classes, got "
                         f"{list(classes)}")
    return classes


class Tagger(nn.Module):
    """``backbone`` -> head ``head`` (:data:`jetfm.models.heads.HEADS`) -> logits over
    ``classes``."""

    def __init__(self, backbone: Backbone, classes: Sequence[str], head: str = "class_attention",
                 head_config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.classes = check_classes(classes)
        self.backbone = backbone
        self.head_name = head
        self.head_config = dict(head_config or {})
        if head == "global_token" and not backbone.has_global_token:
            raise ValueError(f"head global_token reads token 0, but backbone {backbone.name!r} "
                             "has no global token there (lgatr with global_token: true, or "
                             "pet with num_tokens >= 1, do); use class_attention or "
                             "pooled_mlp")
        if head == "global_token" and backbone.dim < len(self.classes):
            raise ValueError(f"head global_token: the backbone's embeddings have {backbone.dim} "
                             f"channel(s) for {len(self.classes)} classes (rank-deficient "
                             "logits); give the backbone more output channels (lgatr: "
                             "out_mv_channels >= the number of classes)")
        self.head = build_head(head, backbone.dim, len(self.classes), self.head_config)

    def forward(self, inputs: ParticleInputs) -> torch.Tensor:
        """Logits (B, n_classes) of torch ``inputs`` (:meth:`prepare` then ``to_torch``)."""
        embeddings, mask = self.backbone(inputs)
        return self.head(embeddings, mask)

    def prepare(self, jets: JetBatch, origin: str | None = None
                ) -> tuple[ParticleInputs, list[SelectionReport]]:
        """The backbone's inputs for ``jets`` (numpy) and the particle-selection reports.
        Raises :class:`~jetfm.data.batch.JetDataError` naming ``origin`` and the first bad jet
        for invalid jets (non-finite momenta, negative energy, no particle with pT > 0)."""
        jets.check(origin or ", ".join(jets.source_files) or "<memory>")
        return self.backbone.prepare(jets, origin)

    def labels_of(self, jets: JetBatch, origin: str | None = None) -> np.ndarray:
        """Positions in :attr:`classes` of the jets' labels, (n_jets,) int64.

        Raises :class:`~jetfm.data.batch.JetDataError` naming ``origin`` (default: the source
        files), the classes found in the data with their counts and the tagger's classes, when
        a jet is unlabelled or of a class not in the list."""
        origin = origin or ", ".join(jets.source_files) or "<memory>"
        lookup = np.full(len(CLASSES) + 1, -1, dtype=np.int64)  # last entry: unlabelled (-1)
        for k, name in enumerate(self.classes):
            lookup[class_index(name)] = k
        positions = lookup[jets.label]
        if (positions < 0).any():
            found = {class_name(int(i)): int(n) for i, n in
                     zip(*np.unique(jets.label, return_counts=True), strict=True)}
            raise JetDataError(f"{origin}: jets of classes {found} do not match the class list "
                               f"{list(self.classes)} ({int((positions < 0).sum())} jets are of "
                               "no listed class)")
        return positions

    @torch.no_grad()
    def predict_proba(self, jets: JetBatch | ParticleInputs, batch_size: int = 512,
                      origin: str | None = None) -> np.ndarray:
        """Class probabilities (n_jets, n_classes) (softmax of the logits), computed in eval
        mode on the device of the tagger's weights, ``batch_size`` jets at a time."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        inputs = self.prepare(jets, origin)[0] if isinstance(jets, JetBatch) else jets
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start:start + batch_size].to_torch(device)
            out.append(torch.softmax(self(chunk).float(), dim=1).cpu().numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def meta(self) -> dict[str, Any]:
        """What a tagger file records (plain data)."""
        return {"kind": "tagger", **self.backbone.meta(), "head": self.head_name,
                "head_config": self.head_config, "classes": list(self.classes)}

    def save(self, path: str | Path) -> Path:
        """Write the tagger to ``path`` (safetensors, atomically)."""
        tensors = {f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}
        tensors.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return save_model(path, tensors, self.meta())


def tagger_from_meta(meta: Mapping[str, Any], where: str) -> Tagger:
    """An (untrained) tagger as recorded in tagger-file metadata ``meta``."""
    if meta.get("kind") != "tagger":
        raise ValueError(f"{where}: not a tagger file (kind={meta.get('kind')!r}); a backbone "
                         "file starts a tagger's training (init:)")
    return Tagger(backbone_from_meta(meta, where), meta["classes"], meta["head"],
                  meta.get("head_config"))


def load_tagger(path: str | Path, device: str | torch.device = "cpu") -> Tagger:
    """The tagger in ``path``, in eval mode on ``device``. Raises ``FileNotFoundError`` or
    ``ValueError`` naming the file when it is missing or not a tagger file."""
    tensors, meta = load_model(path, device)
    tagger = tagger_from_meta(meta, str(path))
    tagger.backbone.load_state_dict(prefixed(tensors, "backbone"))
    tagger.head.load_state_dict(prefixed(tensors, "head"))
    return tagger.to(device).eval()


def build_tagger(backbone: str | Backbone, classes: Sequence[str],
                 backbone_config: Mapping[str, Any] | None = None, features: Any = None,
                 head: str = "class_attention", head_config: Mapping[str, Any] | None = None
                 ) -> Tagger:
    """A freshly initialised tagger: ``backbone`` a registered name (built with
    ``backbone_config`` and ``features``, see :func:`jetfm.models.backbone.build_backbone`)
    or a backbone instance."""
    if isinstance(backbone, str):
        backbone = build_backbone(backbone, backbone_config, features)
    return Tagger(backbone, classes, head, head_config)
