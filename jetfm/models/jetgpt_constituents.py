"""JetGPT at jet-constituent level: top and QCD jets <-> JetGPT particle sequences.

The same model as at event level (:mod:`jetfm.models.jetgpt`; Spinner, dissertation ch. 4-5;
"Jet diffusion versus JetGPT", arXiv:2305.10475, which generates jet constituents this way)
generates the particles of a jet one at a time, hardest first, and learns when to stop.

**Frame** (the one of OmniLearn's PET generator, :class:`~jetfm.models.pet_generator.
PETGenerator`, and of OmniJet-alpha's tokens, :func:`jetfm.data.transforms.
omnijet_preprocessing`): per particle ``(log_pt, eta_rel, phi_rel)`` with absolute
``log pT`` [log GeV] (so the jet pT and mass are the particle sum's, as with OmniJet-alpha's
tokens), angles relative to the jet axis (the E-scheme sum of all the jet's constituents,
:class:`~jetfm.data.batch.JetBatch`); particles with pT <= ``pt_min`` or a non-finite feature
dropped (counted), the hardest ``n_max`` kept (the softest beyond truncated, counted), all
massless. With ``pt_min = 0`` and the same ``n_max`` this is exactly PET's frame; OmniJet-alpha
adds its tokenizer's cuts (pT > 0.1 GeV, |angles| < 0.8). Decoding puts the particles around a
jet axis at eta = phi = 0 (or a given axis): the jet four-vector is the particle sum, and a
shift in eta is a longitudinal boost of massless particles, so mass and substructure do not
depend on it.

**Components** ``(log_pt, eta_rel, phi_rel)``, generated in this order (pT first as in thesis
Eq. (5.17)), each standardised to mean 0 and width 1 on the training particles (thesis
Sec. 5.1.2) and modelled by a Gaussian mixture: ``phi_rel`` inside a jet spans about +-1 rad
(R = 0.8 jets), far from +-pi, so it is not periodic in practice and a von Mises mixture would
only cost a wrap-around that never occurs.

**Sequence.** One object type; the start token is the class (``condition`` = position of the
jet's class in ``classes``, ``n_conditions = len(classes)``). A learned position embedding of
the ``n_max`` positions (``max_positions = n_max``): the rank of a particle in the pT order
tells the model where it is in the sequence (and that position ``n_max`` must end it) without
counting; the thesis omits it at event level only because the model there must generate more
objects than it saw, which the constituent frame never needs (it truncates at ``n_max``).

**Multiplicity at ``n_max``.** A truncated jet ends with a stop label at ``n_max`` (the full
loss, Eq. (5.21)): in the frame every jet ends there, so the model learns to stop. A generated
sequence that still wants more (``overflow`` of :meth:`~jetfm.models.jetgpt.JetGPT.sample`)
is *cut* to its first ``n_max`` particles, as the frame cuts the truth, and counted
(:func:`sample_jets`), so every requested jet is returned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from jetfm.checks import NON_NEGATIVE, POSITIVE_INT, check_fields
from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.data.classes import class_index, class_name
from jetfm.data.transforms import FeatureTransform, Preprocessing
from jetfm.models.jetgpt import JetGPT, load_jetgpt

CONSTITUENT_COMPONENTS: tuple[str, ...] = ("log_pt", "eta_rel", "phi_rel")
"""Generated particle components, in generation order."""
META_KEY = "constituents"
"""Key of :meth:`ConstituentPreprocessing.to_dict` in a JetGPT model file's metadata."""
OVERFLOW_POLICY = "cut to the first n_max generated particles"


@dataclass
class ConstituentPreprocessing:
    """The map between :class:`~jetfm.data.batch.JetBatch` jets and JetGPT sequences (module
    docstring).

    ``classes``: class names (:data:`jetfm.data.classes.CLASSES`), the index of a name is the
    start-token condition; ``n_max``: particles per jet (default 64, the CPU presets of PET and
    OmniJet-alpha); ``pt_min`` [GeV]: particles need pT > ``pt_min`` (default 0: PET's frame);
    ``mean``/``std``: per component, from :meth:`fit` on the training jets.
    """

    classes: list[str]
    n_max: int = 64
    pt_min: float = 0.0
    mean: list[float] = field(default_factory=lambda: [0.0] * len(CONSTITUENT_COMPONENTS))
    std: list[float] = field(default_factory=lambda: [1.0] * len(CONSTITUENT_COMPONENTS))

    def __post_init__(self) -> None:
        """``ValueError`` naming the key for: no, unknown or repeated classes, ``n_max`` < 1,
        ``pt_min`` < 0, ``mean``/``std`` not 3 finite numbers (std > 0)."""
        self.classes = list(self.classes)
        check_fields(self, {"n_max": POSITIVE_INT, "pt_min": NON_NEGATIVE})
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes: need distinct class names, got {self.classes!r}")
        for name in self.classes:
            try:
                class_index(name)
            except KeyError as err:
                raise ValueError(f"classes: {err.args[0]}") from None
        c = len(CONSTITUENT_COMPONENTS)
        mean, std = np.asarray(self.mean, float), np.asarray(self.std, float)
        if mean.shape != (c,) or std.shape != (c,) or not np.isfinite(mean).all() \
                or not (np.isfinite(std).all() and (std > 0).all()):
            raise ValueError(f"mean and std: {c} finite numbers each (std > 0), got "
                             f"{self.mean!r} and {self.std!r}")
        self.mean, self.std = mean.tolist(), std.tolist()

    # ------------------------------------------------------------------ model fields
    def model_fields(self) -> dict[str, Any]:
        """The :class:`~jetfm.models.jetgpt.JetGPTConfig` fields this representation fixes
        (the size fields are the caller's)."""
        return {"components": CONSTITUENT_COMPONENTS, "periodic": (), "n_types": 1,
                "fixed_types": (), "free_type": 0, "given": (),
                "n_conditions": len(self.classes), "max_positions": self.n_max}

    # ------------------------------------------------------------------ selection
    def _selection(self) -> Preprocessing:
        # pT first: its window drops pT <= pt_min (and pT = 0, whose angles are undefined)
        # before the other features are looked at
        return Preprocessing([FeatureTransform("pt", min=self.pt_min),
                              *(FeatureTransform(n) for n in CONSTITUENT_COMPONENTS)],
                             self.n_max)

    def raw(self, batch: JetBatch) -> tuple[np.ndarray, np.ndarray, list[SelectionReport]]:
        """Unstandardised ``(log_pt, eta_rel, phi_rel)`` (N, n_max, 3) float32 of the kept
        particles, pT-ordered (0 at padded slots), the mask (N, n_max) bool and the reports of
        the selection (pT <= ``pt_min``, non-finite features, truncation to ``n_max``: each
        counted; jets left empty are kept and reported)."""
        values, mask, reports = self._selection().raw(batch)
        values = np.where(mask[..., None], values[..., 1:], 0.0).astype(np.float32)
        return values, mask, reports

    @classmethod
    def fit(cls, batch: JetBatch, classes: list[str], n_max: int = 64, pt_min: float = 0.0
            ) -> ConstituentPreprocessing:
        """Means and standard deviations of the components over the kept particles of the
        training ``batch``; ``JetDataError`` when fewer than 2 particles are kept."""
        prep = cls(list(classes), n_max, pt_min)
        values, mask, _ = prep.raw(batch)
        kept = values[mask].astype(np.float64)
        if len(kept) < 2:
            raise JetDataError(f"{_origin(batch)}: fitting the JetGPT constituent "
                               f"standardisation needs at least 2 particles, {len(kept)} kept")
        prep.mean = kept.mean(axis=0).tolist()
        prep.std = np.maximum(kept.std(axis=0), 1e-6).tolist()
        return prep

    # ------------------------------------------------------------------ encode / decode
    def conditions(self, batch: JetBatch, origin: str | None = None) -> np.ndarray:
        """Start-token condition (N,) int64: the position of each jet's class in
        :attr:`classes`; ``JetDataError`` naming ``origin`` for other labels."""
        table = {class_index(c): i for i, c in enumerate(self.classes)}
        bad = sorted({int(v) for v in batch.label} - set(table))
        if bad:
            raise JetDataError(f"{origin or _origin(batch)}: labels "
                               f"{[class_name(b) for b in bad]} are not among the model's "
                               f"classes {self.classes}")
        return np.array([table[int(v)] for v in batch.label], dtype=np.int64)

    def encode(self, batch: JetBatch, origin: str | None = None, *, drop_empty: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[SelectionReport]]:
        """Standardised sequences ``x`` (N, n_max, 3) float32 (0 at padded slots), ``mask``
        (N, n_max) bool (the ``n`` kept particles first, pT-ordered), ``condition`` (N,)
        int64 and the selection reports. ``drop_empty``: jets without a kept particle are
        removed (JetGPT generates at least one particle) and counted in a report. Raises
        ``JetDataError`` for labels outside :attr:`classes`."""
        condition = self.conditions(batch, origin)
        values, mask, reports = self.raw(batch)
        x = np.where(mask[..., None], self._standardise(values), 0.0).astype(np.float32)
        if drop_empty:
            keep = mask.any(axis=1)
            reports.append(SelectionReport("jets with a particle", len(keep), int(keep.sum()),
                                           {"no particle kept (dropped)": int((~keep).sum())}))
            x, mask, condition = x[keep], mask[keep], condition[keep]
        return x, mask, condition, reports

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, np.float64) - np.asarray(self.mean)) / np.asarray(self.std)

    def decode(self, x: np.ndarray, mask: np.ndarray, condition: np.ndarray | None = None,
               jet_eta: np.ndarray | None = None, jet_phi: np.ndarray | None = None
               ) -> JetBatch:
        """Massless jets from standardised sequences ``x`` (N, T, 3) and ``mask`` (N, T)
        (padded values are ignored, even NaN): ``pT = exp(log_pt)``, ``eta = eta_rel +
        jet_eta``, ``phi = phi_rel + jet_phi`` (the axis (N,) each, default 0), particles
        ordered by pT; labels from ``condition`` (N,) (indices into :attr:`classes`; default
        unlabelled). The inverse of :meth:`encode` for the kept particles' px, py, pz (up to
        float32) given the original axis. ``ValueError`` for shapes that do not match,
        non-finite values of real particles or a condition outside ``[0, len(classes))``."""
        x, mask = np.asarray(x, np.float64), np.asarray(mask, bool)
        c = len(CONSTITUENT_COMPONENTS)
        if x.ndim != 3 or x.shape[2] != c or mask.shape != x.shape[:2]:
            raise ValueError(f"decode: x {x.shape} and mask {mask.shape}, expected (N, T, {c}) "
                             "and (N, T)")
        if not np.isfinite(x[mask]).all():
            raise ValueError("decode: non-finite values of real particles")
        n = len(x)
        raw = x * np.asarray(self.std) + np.asarray(self.mean)
        axis = [np.zeros(n) if a is None else np.asarray(a, np.float64).reshape(-1)
                for a in (jet_eta, jet_phi)]
        if any(len(a) != n for a in axis):
            raise ValueError(f"decode: jet_eta and jet_phi need {n} entries")
        kwargs: dict[str, Any] = {}
        if condition is not None:
            condition = np.asarray(condition).reshape(-1)
            if len(condition) != n or (n and (condition.min() < 0
                                              or condition.max() >= len(self.classes))):
                raise ValueError(f"decode: condition needs {n} indices in [0, "
                                 f"{len(self.classes)})")
            names = np.array([class_index(c) for c in self.classes], dtype=np.int64)
            kwargs["label"] = names[condition.astype(np.int64)]
        counts = mask.sum(axis=1)

        def ragged(values: np.ndarray) -> ak.Array:
            return ak.unflatten(values[mask], counts)

        with np.errstate(over="ignore"):  # a wild sample's huge pT is kept, not hidden
            pt = np.exp(raw[..., 0])
        jets = JetBatch.from_ptetaphi(ragged(pt), ragged(raw[..., 1] + axis[0][:, None]),
                                      ragged(raw[..., 2] + axis[1][:, None]), 0.0, **kwargs)
        return jets.sort_by_pt()

    def frame(self, batch: JetBatch) -> JetBatch:
        """``batch`` as the model sees it, the reference for generated jets: the selection,
        the truncation to ``n_max`` and massless particles around the axis eta = phi = 0
        (``decode(encode(batch))``, labels kept, empty jets kept)."""
        values, mask, _ = self.raw(batch)
        out = self.decode(self._standardise(values), mask)
        out.label = batch.label.copy()
        return out

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "n_max": self.n_max, "pt_min": self.pt_min,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "constituent preprocessing"
                  ) -> ConstituentPreprocessing:
        """The inverse of :meth:`to_dict` (``ValueError`` naming ``where`` and bad keys)."""
        from jetfm.checks import from_mapping

        return from_mapping(cls, data, where)


def _origin(batch: JetBatch) -> str:
    return ", ".join(map(str, batch.source_files)) or "<memory>"


def load_constituent_model(path: str | Path, device: str | torch.device = "cpu"
                           ) -> tuple[JetGPT, ConstituentPreprocessing]:
    """(model in eval mode on ``device``, its preprocessing) from a JetGPT file written with
    ``meta = {META_KEY: prep.to_dict()}``; ``FileNotFoundError`` for a missing file,
    ``ValueError`` for another kind of file or one without the constituent preprocessing."""
    model, meta = load_jetgpt(path, device)
    if META_KEY not in meta:
        raise ValueError(f"{path}: a JetGPT model without the constituent preprocessing "
                         f"(metadata key {META_KEY!r}; an event-level model?)")
    return model, ConstituentPreprocessing.from_dict(meta[META_KEY], f"{path}: {META_KEY}")


def sample_jets(model: JetGPT, prep: ConstituentPreprocessing, n: int, cls: str,
                seed: int | None = None, batch_size: int = 1024
                ) -> tuple[JetBatch, dict[str, Any]]:
    """``n`` jets of class ``cls`` (a name in ``prep.classes``) from ``model`` (on its device;
    :meth:`~jetfm.models.jetgpt.JetGPT.sample` with ``max_objects = n_max``), decoded by
    ``prep`` (massless, axis at eta = phi = 0). Returns the jets and ``stats``:
    ``n_overflow`` (sequences that wanted more than ``n_max`` particles, cut to the first
    ``n_max``: :data:`OVERFLOW_POLICY`), ``n_not_pt_ordered`` (sequences whose generated pT
    rises somewhere: the training sequences never do; the jets are re-ordered), ``seconds``
    and ``jets_per_second`` (sampling and decoding). ``ValueError`` for an unknown class or
    a model whose conditions or positions do not match ``prep``."""
    if cls not in prep.classes:
        raise ValueError(f"sample_jets: class {cls!r} is not among the model's classes "
                         f"{prep.classes}")
    if model.config.n_conditions != len(prep.classes) or \
            tuple(model.config.components) != CONSTITUENT_COMPONENTS:
        raise ValueError(f"sample_jets: the model (components {list(model.config.components)},"
                         f" {model.config.n_conditions} conditions) does not match the "
                         f"preprocessing ({list(CONSTITUENT_COMPONENTS)}, classes "
                         f"{prep.classes})")
    condition = prep.classes.index(cls)
    begin = time.perf_counter()
    out = model.sample(n, condition, max_objects=prep.n_max, seed=seed, batch_size=batch_size)
    x, mask = out.x.numpy(), out.mask.numpy()
    jets = prep.decode(x, mask, np.full(n, condition))
    seconds = time.perf_counter() - begin
    rises = mask[:, 1:] & (x[:, 1:, 0] > x[:, :-1, 0])
    return jets, {"n_overflow": int(out.overflow.sum()), "overflow": OVERFLOW_POLICY,
                  "n_not_pt_ordered": int(rises.any(axis=1).sum()), "seconds": seconds,
                  "jets_per_second": n / seconds if seconds > 0 else float("inf")}


__all__ = ["CONSTITUENT_COMPONENTS", "ConstituentPreprocessing", "load_constituent_model",
           "sample_jets"]
