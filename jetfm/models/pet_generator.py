"""OmniLearn's generative PET: a particle flow on the PET body, a jet-level flow, and the
classifier head of joint pre-training (Mikuni & Nachman 2024, arXiv:2404.16091; the seed's
OmniLearn chapter; OmniLearned 0.2.0 ``network.py`` ``PET_generator``, ``diffusion.py``).

    model = PETGenerator.from_jets(train_jets, classes=["QCD", "Tbqq"])  # fits the standardisation
    jets = model.generate(1000, "Tbqq", steps=64)                          # JetBatch, massless

**What is generated.** Per particle (``log_pt`` [log GeV], ``eta_rel``, ``phi_rel``), per jet
(``jet_pt`` [GeV], ``jet_eta``, ``jet_mass`` [GeV], ``n_particles``), each standardised to zero
mean and unit width on the training jets (the :class:`~jetfm.models.features.FeatureSpec` of
the body, stored with the model). Particles are massless, around the jet axis at phi = 0 and at
the generated jet eta (a shift in eta is a longitudinal boost for massless particles, so the
mass and substructure do not depend on it). Compare generated jets with truth passed through
:meth:`PETGenerator.frame` (the same cuts, ``n_max`` truncation and massless particles).

**The flow** (:mod:`jetfm.nn.flow`): rectified flow, ``z = (1 - t) x + t eps``, target
``v = eps - x``, loss summed over features and real particles and divided by the particle count,
midpoint sampler from t = 1 to 0 (OmniLearned 0.2.0; the cosine log-SNR v-prediction of
OmniLearn-TF is not implemented, see :mod:`jetfm.nn.flow`).

**The network.** The velocity of the particles is
``head(body(z, t, jet kinematics), class label)``:

* body: :class:`~jetfm.models.pet.PETBackbone` with a time token (``time_token``), the jet
  kinematics as its condition token, and kNN in the (noised) angle features
  (``knn_from: features``);
* head (OmniLearned ``PET_generator``): a class-label token (``Embedding(n_classes + 1, dim)``,
  the last row the "no label" of classifier-free guidance) prepended to the body's output,
  ``head_blocks`` PET blocks (OmniLearned ``num_transformers_head`` = 2 for "small"), the tokens
  dropped, then Linear -> GELU -> Linear to the particle features, padded rows 0;
* the label is replaced by "no label" with probability ``label_drop`` = 0.1 in training
  (the issue's and OmniLearned's choice), so :meth:`PETGenerator.velocity` with
  ``guidance`` w gives ``(1 + w) v(label) - w v(no label)``;
* classifier (joint pre-training): jetfm's ``class_attention`` head on the body's output (as in
  :class:`~jetfm.models.tagger.Tagger`; OmniLearned's ``PET_classifier`` is class attention of
  its 4 tokens);
* jet-level flow (:class:`JetFlow`): an MLP velocity field on the 4 standardised jet features,
  conditioned on the time and the class label (same dropout), so whole jets come from a class
  alone (OmniLearn-TF's separate jet-level diffusion model; OmniLearned's ``train_hl``
  ``MLPGEN``). Generated multiplicities are rounded and clipped to [1, ``n_max``].

Files: :meth:`PETGenerator.save` / :func:`load_generator`, one safetensors file (no pickle) with
the configuration, classes and feature spec in its metadata; the body can be written as a
``pet`` backbone file (:func:`jetfm.models.backbone.save_backbone`) to start a tagger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jetfm.checkpoint import load_model, save_model
from jetfm.checks import (
    NON_NEGATIVE,
    POSITIVE_INT,
    Rule,
    check_fields,
    check_flag,
    from_mapping,
    number,
)
from jetfm.data.batch import JetBatch, JetDataError, SelectionReport
from jetfm.data.classes import CLASSES, class_index
from jetfm.models.features import FeatureSpec, InputFeature, ParticleInputs
from jetfm.models.heads import ClassAttentionHead
from jetfm.models.pet import PETBackbone, PETBlock, PETConfig
from jetfm.nn.flow import (
    FourierTime,
    flow_loss,
    guided,
    interpolate,
    sample_midpoint,
    velocity_target,
)

PARTICLE_FEATURES: tuple[str, ...] = ("log_pt", "eta_rel", "phi_rel")
"""Generated particle features (massless particles in the jet frame)."""
JET_FEATURES: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_mass", "n_particles")
"""Generated jet features (OmniLearn's jet-level model: pT, eta, mass, multiplicity)."""
N_PARTICLES = JET_FEATURES.index("n_particles")
BODY_FIXED = ("time_token", "knn_from", "feature_drop")


@dataclass
class PETGeneratorConfig:
    """Hyper-parameters of :class:`PETGenerator`.

    * ``body``: :class:`~jetfm.models.pet.PETConfig` keys of the body (default OmniLearned
      "small"; ``time_token``, ``knn_from`` and ``feature_drop`` are fixed by the generator);
    * ``head_blocks`` (2): PET blocks of the generator head (OmniLearned "small");
    * ``label_drop`` (0.1): probability of "no label" in training (classifier-free guidance);
    * ``classifier`` (True): a ``class_attention`` head for joint pre-training;
    * ``jet_hidden`` (128), ``jet_layers`` (3): width and residual blocks of :class:`JetFlow`;
    * ``n_max`` (128): particles per jet (softest beyond dropped, counted).

    Raises ``ValueError`` naming the key for a bad value.
    """

    body: dict[str, Any] = field(default_factory=dict)
    head_blocks: int = 2
    label_drop: float = 0.1
    classifier: bool = True
    jet_hidden: int = 128
    jet_layers: int = 3
    n_max: int = 128

    def __post_init__(self) -> None:
        check_fields(self, {"head_blocks": POSITIVE_INT, "jet_hidden": POSITIVE_INT,
                            "jet_layers": POSITIVE_INT, "n_max": POSITIVE_INT,
                            "label_drop": Rule(float, low=0, high=1, high_open=True)})
        check_flag("classifier", self.classifier)
        if not isinstance(self.body, dict):
            raise ValueError(f"body: expected a mapping of PET keys, got {self.body!r}")
        fixed = sorted(set(self.body) & set(BODY_FIXED))
        if fixed:
            raise ValueError(f"body: {fixed} are set by the generator; remove them")
        self.body_config()  # every body key checked now

    def body_config(self) -> dict[str, Any]:
        """The body's ``backbone_config``: ``body`` plus the generator's fixed keys."""
        out = {**self.body, "time_token": True, "knn_from": "features"}
        from_mapping(PETConfig, {**out, "input_dim": len(PARTICLE_FEATURES),
                                 "jet_dim": len(JET_FEATURES)}, "body")
        return out


def fit_spec(batch: JetBatch, n_max: int, origin: str | None = None) -> FeatureSpec:
    """The standardisation of :data:`PARTICLE_FEATURES` and :data:`JET_FEATURES` on ``batch``
    (mean 0, width 1; real particles only, after the pT > 0 and ``n_max`` selection). A
    feature without spread (the multiplicity when every jet fills ``n_max``) is only shifted.
    ``JetDataError`` naming ``origin`` (default: the batch's files) for fewer than 2 jets or
    data the spec cannot read."""
    if len(batch) < 2:
        raise JetDataError(f"{origin or 'jets'}: fitting the generator's standardisation "
                           f"needs at least 2 jets, got {len(batch)}")
    raw = FeatureSpec(tuple(InputFeature(n) for n in PARTICLE_FEATURES),
                      tuple(InputFeature(n) for n in JET_FEATURES), n_max)
    inputs, _ = raw.apply(batch, origin)
    inputs.jet[:, N_PARTICLES] = inputs.mask.sum(axis=1)

    def standardise(name: str, values: np.ndarray) -> InputFeature:
        mean, std = float(np.mean(values)), float(np.std(values))
        return InputFeature(name, mean, 1.0 / std if std > 0 else 1.0)

    particle = tuple(standardise(n, inputs.features[..., i][inputs.mask])
                     for i, n in enumerate(PARTICLE_FEATURES))
    jet = tuple(standardise(n, inputs.jet[:, i]) for i, n in enumerate(JET_FEATURES))
    return FeatureSpec(particle, jet, n_max)


class JetFlow(nn.Module):
    """Velocity field of the jet-level flow: ``(x (B, J), t (B,), label (B,)) -> (B, J)``.

    Linear(J -> hidden) + time embedding + label embedding, ``layers`` residual blocks
    (LayerNorm -> Linear -> SiLU -> Linear), LayerNorm -> Linear(hidden -> J).
    """

    def __init__(self, jet_dim: int, n_labels: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.inp = nn.Linear(jet_dim, hidden)
        self.time = FourierTime(hidden)
        self.label = nn.Embedding(n_labels, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                          nn.Linear(hidden, hidden)) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, jet_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.time(t) + self.label(label)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class PETGenerator(nn.Module):
    """OmniLearn's PET generator and jet-level flow (module docstring).

    ``classes``: names of :data:`jetfm.data.classes.CLASSES` the generator is conditioned on
    (one or more); ``spec``: the standardisation (:func:`fit_spec`).
    """

    def __init__(self, config: PETGeneratorConfig, spec: FeatureSpec,
                 classes: Sequence[str]) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.classes = check_generator_classes(classes)
        if spec.names != PARTICLE_FEATURES or tuple(f.name for f in spec.jet) != JET_FEATURES:
            raise ValueError(f"generator spec must hold particle features {PARTICLE_FEATURES} "
                             f"and jet features {JET_FEATURES}")
        self.body = PETBackbone.from_config(config.body_config(), spec, "body")
        dim = self.body.dim
        n_labels = len(self.classes) + 1  # the last: no label
        self.label = nn.Embedding(n_labels, dim)
        body = self.body.config
        self.head = nn.ModuleList(
            PETBlock(dim, body.num_heads, body.mlp_ratio, body.layer_scale_init, 0.0, 0.0)
            for _ in range(config.head_blocks))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, body.mlp_ratio * dim),
                                 nn.GELU(), nn.Linear(body.mlp_ratio * dim, len(PARTICLE_FEATURES)))
        self.classifier = (ClassAttentionHead(dim, len(self.classes))
                           if config.classifier and len(self.classes) > 1 else None)
        self.jet_flow = JetFlow(len(JET_FEATURES), n_labels, config.jet_hidden, config.jet_layers)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_jets(cls, jets: JetBatch, classes: Sequence[str],
                  config: PETGeneratorConfig | None = None) -> PETGenerator:
        """A new generator whose standardisation is fitted on ``jets``."""
        config = config or PETGeneratorConfig()
        return cls(config, fit_spec(jets, config.n_max), classes)

    @property
    def no_label(self) -> int:
        """The label index meaning "no label" (classifier-free guidance)."""
        return len(self.classes)

    @property
    def n_features(self) -> int:
        return len(PARTICLE_FEATURES)

    # ------------------------------------------------------------------ data
    def labels(self, batch: JetBatch, origin: str = "jets") -> np.ndarray:
        """Indices into :attr:`classes` of the jets' labels; ``JetDataError`` naming ``origin``
        for a label outside the generator's classes."""
        table = {class_index(c): i for i, c in enumerate(self.classes)}
        bad = sorted({int(v) for v in batch.label if int(v) not in table})
        if bad:
            names = [CLASSES[b] if 0 <= b < len(CLASSES) else "unlabelled" for b in bad]
            raise JetDataError(f"{origin}: labels {names} are not among the generator's "
                               f"classes {list(self.classes)}")
        return np.array([table[int(v)] for v in batch.label], dtype=np.int64)

    def encode(self, batch: JetBatch, origin: str | None = None) -> ParticleInputs:
        """Standardised particle and jet features of ``batch`` (numpy; ``n_particles`` is the
        number of particles kept). Raises :class:`JetDataError` for data the spec cannot
        read."""
        return self.encode_reported(batch, origin)[0]

    def encode_reported(self, batch: JetBatch, origin: str | None = None
                        ) -> tuple[ParticleInputs, list[SelectionReport]]:
        """:meth:`encode` and the reports of the particle selection (pT = 0 and non-finite
        particles dropped, the softest beyond ``n_max`` truncated; counted)."""
        inputs, reports = self.spec.apply(batch, origin)
        n = self.spec.jet[N_PARTICLES]
        inputs.jet[:, N_PARTICLES] = n.transform(inputs.mask.sum(axis=1))
        return inputs, reports

    def decode(self, features: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor,
               jet: np.ndarray | torch.Tensor, label: Sequence[int] | np.ndarray | None = None
               ) -> JetBatch:
        """Massless jets from standardised ``features`` (B, P, 3), ``mask`` (B, P) and
        ``jet`` (B, 4) (the jet eta places them; phi of the axis 0); ``label``: indices into
        :attr:`classes`."""
        features, mask, jet = (np.asarray(torch.as_tensor(a).detach().cpu(), dtype=np.float64)
                               for a in (features, mask, jet))
        mask = mask.astype(bool)
        values = {f.name: features[..., i] / f.multiply + f.subtract
                  for i, f in enumerate(self.spec.particle)}
        eta_jet = jet[:, 1] / self.spec.jet[1].multiply + self.spec.jet[1].subtract
        counts = mask.sum(axis=1)

        def ragged(x: np.ndarray) -> Any:
            import awkward as ak
            return ak.unflatten(x[mask], counts)

        kwargs: dict[str, Any] = {}
        if label is not None:
            kwargs["label"] = np.array([class_index(self.classes[int(i)]) for i in label])
        return JetBatch.from_ptetaphi(ragged(np.exp(values["log_pt"])),
                                      ragged(values["eta_rel"] + eta_jet[:, None]),
                                      ragged(values["phi_rel"]), 0.0, **kwargs)

    def frame(self, batch: JetBatch) -> JetBatch:
        """``batch`` as the generator sees it: decode(encode(batch)) (the reference for
        generated jets: same selection, truncation and massless particles)."""
        inputs = self.encode(batch)
        out = self.decode(inputs.features, inputs.mask, inputs.jet)
        out.label = batch.label.copy()
        return out

    # ------------------------------------------------------------------ network
    def _body(self, features: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor,
              t: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = ParticleInputs(mask=mask, features=features,
                                p4=features.new_zeros(*mask.shape, 4), jet=jet)
        return self.body(inputs, time=t)

    def _head(self, hidden: torch.Tensor, full: torch.Tensor, label: torch.Tensor,
              n_slots: int) -> torch.Tensor:
        """Generator head on the body's output -> (B, n_slots, F) velocities."""
        b = hidden.shape[0]
        h = torch.cat([self.label(label)[:, None], hidden], dim=1)
        m = torch.cat([full.new_ones(b, 1), full], dim=1)
        for block in self.head:
            h = block(h, m, m)
        skip = 1 + self.body.n_tokens
        v = self.out(h[:, skip:]) * m[:, skip:, None]
        return F.pad(v, (0, 0, 0, n_slots - v.shape[1]))

    def velocity(self, z: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor,
                 label: torch.Tensor, guidance: float = 0.0) -> torch.Tensor:
        """The particle velocity field (B, P, 3) at noised features ``z`` (B, P, 3), times
        ``t`` (B,), real-particle ``mask`` (B, P), standardised jet features ``jet`` (B, 4)
        and ``label`` (B,) (indices; :attr:`no_label` for none); ``guidance`` w: classifier-free
        guidance ``(1 + w) v(label) - w v(no label)`` (:func:`jetfm.nn.flow.guided`)."""
        hidden, full = self._body(z, mask, jet, t)
        v = self._head(hidden, full, label, z.shape[1])
        if guidance == 0:
            return v
        v_free = self._head(hidden, full, torch.full_like(label, self.no_label), z.shape[1])
        return guided(v, v_free, guidance)

    def jet_velocity(self, z: torch.Tensor, t: torch.Tensor, label: torch.Tensor,
                     guidance: float = 0.0) -> torch.Tensor:
        """The jet-level velocity field (B, 4), with guidance as :meth:`velocity`."""
        v = self.jet_flow(z, t, label)
        if guidance == 0:
            return v
        return guided(v, self.jet_flow(z, t, torch.full_like(label, self.no_label)), guidance)

    def classify(self, features: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor,
                 t: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, n_classes) of the classifier head on (noised at ``t``) jets.
        ``RuntimeError`` for a generator without one."""
        if self.classifier is None:
            raise RuntimeError("this generator has no classifier head (classifier: false or "
                               "one class)")
        hidden, full = self._body(features, mask, jet, t)
        return self.classifier(hidden, full)

    # ------------------------------------------------------------------ training
    def _particle_noise(self, rand: _random, b: int, slots: int) -> torch.Tensor:
        """Noise (b, slots, 3) drawn for all ``n_max`` slots and cut to ``slots``, so a jet's
        noise does not depend on how many slots its batch pads to."""
        if slots > self.config.n_max:
            raise ValueError(f"{slots} particle slots, more than the generator's n_max "
                             f"{self.config.n_max}")
        return rand.normal((b, self.config.n_max, self.n_features))[:, :slots]

    def losses(self, features: torch.Tensor, mask: torch.Tensor, jet: torch.Tensor,
               label: torch.Tensor, generator: torch.Generator | None = None
               ) -> dict[str, torch.Tensor]:
        """Per-jet loss terms of joint pre-training (B,) each:

        * ``flow``: particle flow matching (:func:`jetfm.nn.flow.flow_loss`);
        * ``jet_flow``: the jet-level flow;
        * with a classifier head, ``class``: cross entropy on clean jets, and
          ``class_noisy``: cross entropy on the noised jets weighted by ``(1 - t)^2``
          (OmniLearned ``get_loss``; OmniLearn-TF weights it by alpha^2 of its schedule).

        Random numbers (t, noise, label dropout) come from ``generator`` (seeded by the
        caller so that a resumed run draws the same ones).
        """
        b = features.shape[0]
        rand = _random(generator, features.device)
        t = rand.uniform(b)
        noise = self._particle_noise(rand, b, features.shape[1]) * mask[..., None]
        z = interpolate(features, noise, t)
        dropped = rand.uniform(b) < self.config.label_drop
        free_label = torch.where(dropped, torch.full_like(label, self.no_label), label)
        hidden, full = self._body(z, mask, jet, t)
        out = {"flow": flow_loss(self._head(hidden, full, free_label, z.shape[1]),
                                 velocity_target(features, noise), mask)}
        t_jet = rand.uniform(b)
        noise_jet = rand.normal(jet.shape)
        out["jet_flow"] = flow_loss(self.jet_flow(interpolate(jet, noise_jet, t_jet), t_jet,
                                                  free_label), velocity_target(jet, noise_jet))
        if self.classifier is not None:
            out["class_noisy"] = (1 - t).square() * F.cross_entropy(
                self.classifier(hidden, full), label, reduction="none")
            out["class"] = F.cross_entropy(self.classify(features, mask, jet), label,
                                           reduction="none")
        return out

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_jets(self, label: torch.Tensor, steps: int = 64, guidance: float = 0.0,
                    generator: torch.Generator | None = None,
                    noise: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised jet features (B, 4) from the jet-level flow for class indices
        ``label`` (B,), with ``n_particles`` rounded and clipped to [1, ``n_max``]; starting
        ``noise`` (B, 4) or drawn from ``generator``."""
        if noise is None:
            noise = _random(generator, label.device).normal((label.shape[0], len(JET_FEATURES)))
        jet = sample_midpoint(lambda z, t: self.jet_velocity(z, t, label, guidance),
                              noise, steps)
        return self._round_multiplicity(jet)

    def _round_multiplicity(self, jet: torch.Tensor) -> torch.Tensor:
        n = self.spec.jet[N_PARTICLES]
        jet = jet.clone()
        jet[:, N_PARTICLES] = (self.multiplicity(jet) - n.subtract) * n.multiply
        return jet

    def multiplicity(self, jet: torch.Tensor) -> torch.Tensor:
        """Particle counts (B,) int64 encoded in standardised jet features."""
        n = self.spec.jet[N_PARTICLES]
        count = (jet[:, N_PARTICLES] / n.multiply + n.subtract).round()
        return count.clamp(1, self.config.n_max).long()

    @torch.no_grad()
    def sample_particles(self, jet: torch.Tensor, label: torch.Tensor, steps: int = 64,
                         guidance: float = 0.0, generator: torch.Generator | None = None,
                         noise: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised particles ``(features (B, P, 3), mask (B, P))`` for standardised jet
        features ``jet`` (B, 4) (the multiplicity sets the mask; P = the largest) and class
        indices ``label`` (B,); starting ``noise`` (B, >= P, 3) or drawn from ``generator``
        for all ``n_max`` slots (so a jet's noise does not depend on its batch)."""
        counts = self.multiplicity(jet)
        slots = int(counts.max())
        mask = torch.arange(slots, device=jet.device)[None, :] < counts[:, None]
        if noise is None:
            noise = self._particle_noise(_random(generator, jet.device), jet.shape[0], slots)
        noise = noise[:, :slots].to(jet.device)
        z = sample_midpoint(lambda z, t: self.velocity(z, t, mask, jet, label, guidance),
                            noise, steps, mask)
        return z, mask

    @torch.no_grad()
    def generate(self, n_jets: int, cls: str, steps: int = 64, guidance: float = 0.0,
                 batch_size: int = 256, seed: int = 0, jet: np.ndarray | None = None
                 ) -> JetBatch:
        """``n_jets`` jets of class ``cls`` (a name in :attr:`classes`): jet features from the
        jet-level flow (or the given standardised ``jet`` (n_jets, 4), e.g. ``encode(truth).
        jet`` to condition on true kinematics), then particles. Seeded; eval mode; on the
        model's device. The noise is drawn on the CPU for all jets at once (n_jets x n_max x 3
        floats), so a seed gives the same jets whatever ``batch_size`` and device.

        Raises ``ValueError`` for an unknown class, ``n_jets``, ``steps`` or ``batch_size``
        not a whole number >= 1, ``guidance`` not a finite number >= 0, or ``jet`` of the
        wrong shape or with non-finite values.
        """
        if cls not in self.classes:
            raise ValueError(f"class {cls!r} is not one of the generator's classes "
                             f"{list(self.classes)}")
        for name, value in (("n_jets", n_jets), ("steps", steps), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        guidance = number("guidance", guidance, NON_NEGATIVE)
        if jet is not None:
            if np.shape(jet) != (n_jets, len(JET_FEATURES)):
                raise ValueError(f"jet must be (n_jets, {len(JET_FEATURES)}) = "
                                 f"{(n_jets, len(JET_FEATURES))}, got {np.shape(jet)}")
            if not np.isfinite(np.asarray(jet, dtype=np.float64)).all():
                raise ValueError("jet (the standardised jet features to condition on) holds "
                                 "non-finite values")
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        cpu = torch.Generator().manual_seed(seed)
        jet_noise = torch.randn(n_jets, len(JET_FEATURES), generator=cpu)
        particle_noise = torch.randn(n_jets, self.config.n_max, self.n_features, generator=cpu)
        index = self.classes.index(cls)
        parts = []
        for start in range(0, n_jets, batch_size):
            size = min(batch_size, n_jets - start)
            label = torch.full((size,), index, dtype=torch.long, device=device)
            if jet is None:
                jet_part = self.sample_jets(label, steps, guidance,
                                            noise=jet_noise[start:start + size].to(device))
            else:
                jet_part = self._round_multiplicity(
                    torch.as_tensor(jet[start:start + size], dtype=torch.float32, device=device))
            features, mask = self.sample_particles(
                jet_part, label, steps, guidance, noise=particle_noise[start:start + size])
            parts.append(self.decode(features, mask, jet_part, label.cpu().numpy()))
        self.train(was_training)
        return JetBatch.concatenate(parts) if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------------ files
    def meta(self) -> dict[str, Any]:
        return {"kind": "pet_generator", "config": asdict(self.config),
                "features": self.spec.to_dict(), "classes": list(self.classes)}

    def save(self, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """Write weights, configuration, classes and standardisation to ``path`` (one
        safetensors file, atomically)."""
        return save_model(path, dict(self.state_dict()), {**self.meta(), **(meta or {})})


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> PETGenerator:
    """A :class:`PETGenerator` file, in eval mode on ``device``. ``FileNotFoundError`` for a
    missing file, ``ValueError`` naming it for another kind of jetfm file."""
    tensors, meta = load_model(path, device)
    if meta.get("kind") != "pet_generator":
        raise ValueError(f"{path} is not a PET generator file (kind={meta.get('kind')!r})")
    config = from_mapping(PETGeneratorConfig, meta["config"], f"{path}: config")
    model = PETGenerator(config, FeatureSpec.from_dict(meta["features"], f"{path}: features"),
                         meta["classes"])
    model.load_state_dict(tensors)
    return model.to(device).eval()


def check_generator_classes(classes: Sequence[str], where: str = "classes"
                            ) -> tuple[str, ...]:
    """``classes`` as a tuple of known, distinct jetfm class names (one or more);
    ``ValueError`` naming ``where`` otherwise."""
    if isinstance(classes, str) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"{where}: expected a non-empty list of class names, got {classes!r}")
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        raise ValueError(f"{where}: unknown classes {unknown}; jetfm classes: {list(CLASSES)}")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{where}: {list(classes)} has repeats")
    return tuple(classes)


class _random:
    """Uniform and normal draws from an optional generator, on ``device``."""

    def __init__(self, generator: torch.Generator | None, device: torch.device) -> None:
        self.generator = generator
        self.device = device

    def uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self._where()).to(self.device)

    def normal(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator,
                           device=self._where()).to(self.device)

    def _where(self) -> torch.device | str:
        return self.generator.device if self.generator is not None else self.device


__all__ = ["JET_FEATURES", "PARTICLE_FEATURES", "JetFlow", "PETGenerator", "PETGeneratorConfig",
           "fit_spec", "load_generator"]
