"""OmniLearn pre-training and generator training: the Lightning task and ``train_generator``.

    config = OmniLearnConfig(classes=["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"])
    model = train_generator(train_jets, val_jets, config, "runs/omnilearn")
    # writes generator.safetensors and body.safetensors (a ``pet`` backbone file for taggers)

The loss is the seed's joint objective (OmniLearn, Mikuni & Nachman 2024; OmniLearned 0.2.0
``utils.get_loss``), per jet and averaged over the batch:

    L = w_class CE(clean) + w_flow L_flow + w_noisy (1 - t)^2 CE(noised) + w_jet L_jet_flow

(:meth:`jetfm.models.pet_generator.PETGenerator.losses`), all weights 1 by default as in
OmniLearned. A one-class generator, or ``generator.classifier: false``, has no classifier
terms. OmniLearned balances the classes in each batch's cross entropy; here the training
jets are balanced by construction (the built-in source gives equal numbers per class).

Optimiser: AdamW (default; lr 1e-3 suits the CPU presets) or Lion (``optimizer: lion``,
the ``lion-pytorch`` package, betas (0.95, 0.98) and lr 5e-5 in OmniLearned), cosine decay per
step; weights averaged with Lightning's ``EMAWeightAveraging`` (decay ``ema_decay`` = 0.999,
OmniLearned's), whose averaged weights are validated, checkpointed and kept. Fine-tuning
(``init``: a generator file) trains the PET body at ``body_lr_factor`` (0.1) times the
learning rate of the heads and the jet-level flow (the issue's "10x smaller"). Random numbers of
the loss are drawn from a generator seeded by the run seed and the step (validation: by the
batch), so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import EMAWeightAveraging

from jetfm.checks import NON_NEGATIVE, POSITIVE, Rule, check_fields, from_mapping, number
from jetfm.console import Console
from jetfm.data.batch import JetBatch
from jetfm.data.classes import class_index, class_name
from jetfm.models.backbone import save_backbone
from jetfm.models.features import FeatureSpec
from jetfm.models.pet_generator import (
    PETGenerator,
    PETGeneratorConfig,
    check_generator_classes,
    fit_spec,
    load_generator,
)
from jetfm.tasks.training import (
    OPTIMIZERS,
    LossTask,
    TrainConfig,
    adamw_with_cosine,
    fit,
    seed_all,
    tensor_dataset,
)

LOSS_TERMS: tuple[str, ...] = ("class", "flow", "class_noisy", "jet_flow")
"""Terms of the joint loss and the keys of ``OmniLearnConfig.weights``."""
console = Console(soft_wrap=True, emoji=False)


@dataclass
class OmniLearnConfig:
    """What to train and how (plain data; a YAML block fills it).

    ``classes``: jetfm class names the generator (and classifier) knows; ``generator``:
    :class:`~jetfm.models.pet_generator.PETGeneratorConfig` keys (not allowed with ``init``);
    ``weights``: per-term loss weights (:data:`LOSS_TERMS`, default 1 each); ``optimizer``:
    ``adamw`` or ``lion``; ``betas``: the optimiser's (None: AdamW's (0.9, 0.999), Lion's
    (0.95, 0.98)); ``ema_decay``: EMA per step (None: no averaging); ``init``: a generator file
    to fine-tune (its classes may differ: label rows of shared classes are kept, new ones start
    afresh, and so does the classifier head when the classes differ); ``body_lr_factor``: the
    body's learning rate relative to the rest when fine-tuning; ``training``:
    :class:`~jetfm.tasks.training.TrainConfig` keys. ``ValueError`` naming the key otherwise.
    """

    classes: list[str] = field(default_factory=lambda: ["QCD", "Tbqq"])
    generator: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    optimizer: str = "adamw"
    betas: tuple[float, float] | None = None
    ema_decay: float | None = 0.999
    init: str | None = None
    body_lr_factor: float = 0.1
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classes = list(check_generator_classes(self.classes))
        unknown = set(self.weights) - set(LOSS_TERMS)
        if unknown:
            raise ValueError(f"weights: unknown terms {sorted(unknown)}; valid: "
                             f"{list(LOSS_TERMS)}")
        self.weights = {k: number(f"weights.{k}", v, NON_NEGATIVE)
                        for k, v in self.weights.items()}
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: {self.optimizer!r} is not one of {list(OPTIMIZERS)}")
        if self.betas is not None:
            if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
                raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas!r}")
            self.betas = (float(self.betas[0]), float(self.betas[1]))
        check_fields(self, {"ema_decay": Rule(float, low=0, high=1, high_open=True,
                                              optional=True),
                            "body_lr_factor": POSITIVE})
        if self.init is not None and self.generator:
            raise ValueError(f"init is given ({self.init}): its file fixes the generator's "
                             "configuration; remove the generator block")
        self.generator_config()
        TrainConfig.from_overrides(self.training, 1, "training")

    def generator_config(self) -> PETGeneratorConfig:
        return from_mapping(PETGeneratorConfig, self.generator, "generator")

    def weight(self, term: str) -> float:
        return self.weights.get(term, 1.0)


class OmniLearnTask(LossTask):
    """Lightning task training a :class:`PETGenerator` with the joint loss (module docstring).

    ``meta``: the generator's :meth:`~PETGenerator.meta` (plain data, so checkpoints rebuild
    it); ``weights``: loss weights; ``body_lr_factor``: None to train every part at ``lr``.
    """

    def __init__(self, meta: dict[str, Any], weights: dict[str, float] | None = None,
                 lr: float = 1e-3, weight_decay: float = 1e-4, optimizer: str = "adamw",
                 betas: Sequence[float] | None = None, body_lr_factor: float | None = None,
                 seed: int = 1) -> None:
        super().__init__()
        self.save_hyperparameters()
        config = from_mapping(PETGeneratorConfig, meta["config"], "generator")
        self.model = PETGenerator(config, FeatureSpec.from_dict(meta["features"]),
                                  meta["classes"])

    def _loss(self, batch: tuple[torch.Tensor, ...], seed: int, stage: str) -> torch.Tensor:
        features, mask, jet, label = batch
        generator = torch.Generator(device=features.device).manual_seed(seed)
        terms = self.model.losses(features, mask, jet, label, generator)
        weights = self.hparams.weights or {}
        total = sum(weights.get(k, 1.0) * v.mean() for k, v in terms.items())
        size = features.shape[0]
        for k, v in terms.items():
            self.log(f"{stage}/{k}", v.mean(), batch_size=size, sync_dist=stage == "val")
        self.log(f"{stage}/loss", total, prog_bar=True, batch_size=size,
                 sync_dist=stage == "val")
        return total

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        seed = self.hparams.seed * 1_000_003 + self.global_step * 7 + self.global_rank
        return self._loss(batch, seed, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._loss(batch, 2_000_003 + batch_idx, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        body = list(self.model.body.parameters())
        ids = {id(p) for p in body}
        rest = [p for p in self.parameters() if id(p) not in ids]
        factor = hp.body_lr_factor or 1.0
        groups = [{"params": body, "lr": hp.lr * factor}, {"params": rest, "lr": hp.lr}]
        return adamw_with_cosine(self, groups, hp.lr, hp.weight_decay, hp.optimizer, hp.betas)


def generator_inputs(model: PETGenerator, jets: JetBatch, origin: str
                     ) -> torch.utils.data.TensorDataset:
    """(features, mask, jet, label) tensors of ``jets`` for :class:`OmniLearnTask`; prints
    what the particle selection removed. ``ValueError`` naming ``origin`` for no jets."""
    if len(jets) == 0:
        raise ValueError(f"{origin}: no jets")
    inputs, reports = model.encode_reported(jets, origin)
    for report in reports:
        if report.n_removed:
            console.print(f"  {report}")
    return tensor_dataset(inputs.features, inputs.mask, inputs.jet, model.labels(jets, origin))


def _start(config: OmniLearnConfig, train_jets: JetBatch
           ) -> tuple[PETGenerator, tuple[str, ...]]:
    """The generator to train: from ``init`` (classes adapted) or new, standardised on
    ``train_jets``; and the classes it already knows (those of ``init``)."""
    if config.init is None:
        return PETGenerator(config.generator_config(),
                            fit_spec(train_jets, config.generator_config().n_max,
                                     "training jets"),
                            config.classes), ()
    source = load_generator(config.init)
    model = PETGenerator(source.config, source.spec, config.classes)
    state = source.state_dict()
    if tuple(config.classes) != source.classes:
        old = {c: i for i, c in enumerate(source.classes)}
        for key in ("label.weight", "jet_flow.label.weight"):
            rows = model.state_dict()[key].clone()
            for i, c in enumerate(config.classes):
                if c in old:
                    rows[i] = state[key][old[c]]
            rows[-1] = state[key][-1]  # "no label"
            state[key] = rows
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        own = model.state_dict()
        state.update({k: v for k, v in own.items() if k.startswith("classifier.")})
    model.load_state_dict(state)
    return model, source.classes


def train_generator(train_jets: JetBatch, val_jets: JetBatch, config: OmniLearnConfig,
                    out_dir: str | Path, *, seed: int = 1, resume: str | Path | None = None
                    ) -> PETGenerator:
    """Train (or fine-tune) a PET generator; write ``generator.safetensors`` (the model,
    EMA weights of the best validation epoch) and ``body.safetensors`` (its PET body as a
    backbone file, for taggers) to ``out_dir``; return the model (eval mode, CPU).

    Raises :class:`~jetfm.data.batch.JetDataError` naming the sample for jets the generator
    cannot read (labels outside ``classes``, too few jets).
    """
    out_dir = Path(out_dir)
    train_config = TrainConfig.from_overrides(config.training, seed, "training")
    for origin, jets in (("training jets", train_jets), ("validation jets", val_jets)):
        if len(jets) == 0:
            raise ValueError(f"{origin}: no jets")
    seed_all(seed)
    start, known = _start(config, train_jets)
    # a class needs training jets unless the generator fine-tuned from already knows it
    present = {int(v) for v in train_jets.label}
    missing = [c for c in config.classes if class_index(c) not in present and c not in known]
    if missing:
        raise ValueError(f"classes {missing} have no training jets (the jets' labels: "
                         f"{sorted(class_name(v) for v in present if v >= 0)}); remove them "
                         "from classes")
    train = generator_inputs(start, train_jets, "training jets")
    val = generator_inputs(start, val_jets, "validation jets")
    task = OmniLearnTask(start.meta(), config.weights, optimizer=config.optimizer,
                         betas=config.betas,
                         body_lr_factor=config.body_lr_factor if config.init else None,
                         seed=seed)
    task.model.load_state_dict(start.state_dict())
    callbacks = [EMAWeightAveraging(decay=config.ema_decay)] if config.ema_decay else []
    fit(task, train, val, train_config, out_dir, resume=resume, callbacks=callbacks)
    model = task.model.cpu().eval()
    provenance = {"omnilearn": {**asdict(config), "seed": seed,
                                "n_train": len(train_jets), "n_val": len(val_jets)}}
    model.save(out_dir / "generator.safetensors", provenance)
    save_backbone(out_dir / "body.safetensors", model.body, provenance)
    return model


__all__ = ["LOSS_TERMS", "OmniLearnConfig", "OmniLearnTask", "generator_inputs",
           "train_generator"]
