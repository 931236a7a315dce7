"""Multi-class jet tagging with any backbone: configuration, the Lightning task, training.

    config = TaggingConfig(backbone="part", classes=["QCD", "Tbqq"], training={"max_epochs": 5})
    tagger = train_tagger(train_jets, val_jets, config, "runs/part")  # writes tagger.safetensors

Swapping the backbone is one key (``backbone: part | lgatr | pet | omnijet``). Modes (as in
OmniJet-alpha, Birk et al. 2024, and the ParT fine-tuning of Qu et al. 2022):

* ``scratch``: a randomly initialised backbone; the architecture comes from
  ``backbone_config``/``features``, or from ``init`` when given (a token backbone keeps the
  tokenizer of ``init``: only the transformer starts afresh);
* ``finetune``: the backbone of ``init`` (a backbone or tagger file) trained at
  ``backbone_lr_factor`` times the head's learning rate;
* ``frozen``: the backbone of ``init`` kept fixed (eval mode: no dropout, BatchNorm statistics
  fixed); only the head trains.

The optimiser is AdamW with a cosine decay per step (:func:`jetfm.tasks.training.
adamw_with_cosine`), loss the cross entropy, and :func:`jetfm.tasks.training.fit` keeps the
weights of the best validation epoch; a run resumes from ``<out_dir>/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from jetfm.atomic import file_digest
from jetfm.checks import POSITIVE, check_fields, from_mapping
from jetfm.console import Console
from jetfm.data.batch import JetBatch
from jetfm.models.backbone import backbone_class, build_backbone, load_backbone
from jetfm.models.features import ParticleInputs
from jetfm.models.heads import HEADS
from jetfm.models.tagger import Tagger, check_classes, tagger_from_meta
from jetfm.report import write_json
from jetfm.tasks.training import LossTask, TrainConfig, adamw_with_cosine, fit, seed_all

FINETUNE_MODES = ("finetune", "frozen", "scratch")
console = Console(soft_wrap=True, emoji=False)


@dataclass
class TaggingConfig:
    """What tagger to train and how (plain data; a YAML block fills it).

    ``backbone``: registered name; ``backbone_config``/``features``: its configuration and
    input features (None: the backbone's defaults; not allowed with ``init``, whose file
    fixes them); ``head``/``head_config``: :data:`jetfm.models.heads.HEADS` (None: the
    backbone's ``default_head``, ``global_token`` for L-GATr, else ``class_attention``);
    ``classes``: names
    of :data:`jetfm.data.classes.CLASSES`; ``mode``/``init``/``backbone_lr_factor``: see the
    module docstring; ``training``: :class:`~jetfm.tasks.training.TrainConfig` keys.
    Raises ``ValueError`` naming the key for any bad value.
    """

    backbone: str = "part"
    backbone_config: dict[str, Any] = field(default_factory=dict)
    features: Any = None
    head: str | None = None
    head_config: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=lambda: ["QCD", "Tbqq"])
    mode: str = "scratch"
    init: str | None = None
    backbone_lr_factor: float = 0.1
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cls = backbone_class(self.backbone)  # ValueError listing the valid names
        self.head = self.head or cls.default_head
        self.head_config = self.head_config or {}
        self.classes = list(check_classes(self.classes))
        if self.head not in HEADS:
            raise ValueError(f"head: unknown head {self.head!r}; valid: {sorted(HEADS)}")
        if self.mode not in FINETUNE_MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {list(FINETUNE_MODES)}")
        if self.mode != "scratch" and self.init is None:
            raise ValueError(f"mode {self.mode!r} starts from a saved backbone: give init "
                             "(a backbone or tagger file)")
        if self.init is not None and (self.backbone_config or self.features is not None):
            raise ValueError(f"init is given ({self.init}): its file fixes the backbone's "
                             "configuration and features; remove backbone_config/features")
        check_fields(self, {"backbone_lr_factor": POSITIVE})
        TrainConfig.from_overrides(self.training, 1, "training")
        if self.init is None:  # every backbone and head key checked now, not mid-run
            self.build()

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig.from_overrides(self.training, seed, "training")

    def build(self) -> Tagger:
        """The tagger to train: backbone from ``init`` (weights loaded unless ``scratch``) or
        built afresh, and a new head."""
        if self.init is None:
            backbone = build_backbone(self.backbone, self.backbone_config, self.features,
                                      where="")
        else:
            backbone = load_backbone(self.init, expect=self.backbone).train()
            if self.mode == "scratch":
                backbone = backbone.scratch()
        return Tagger(backbone, self.classes, self.head, self.head_config)


class InputsDataset(Dataset):
    """(:class:`ParticleInputs`, labels) as a map-style dataset of dicts of tensors."""

    def __init__(self, inputs: ParticleInputs, labels: np.ndarray) -> None:
        if len(inputs) != len(labels):
            raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
        self.inputs = inputs.to_torch()
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**self.inputs[i].items(), "label": self.labels[i]}


class TaggingTask(LossTask):
    """Lightning task around a :class:`Tagger` rebuilt from plain-data ``tagger`` metadata
    (:meth:`Tagger.meta`), so checkpoints load with ``weights_only=True``."""

    def __init__(self, tagger: dict[str, Any], mode: str = "scratch", lr: float = 1e-3,
                 backbone_lr_factor: float = 0.1, weight_decay: float = 1e-4) -> None:
        super().__init__()
        if mode not in FINETUNE_MODES:
            raise ValueError(f"mode must be one of {FINETUNE_MODES}, got {mode!r}")
        self.save_hyperparameters()
        self.tagger = tagger_from_meta(tagger, "tagging task")
        if mode == "frozen":
            self.tagger.backbone.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> TaggingTask:
        """As ``nn.Module.train``; a frozen backbone stays in eval mode."""
        super().train(mode)
        if self.hparams.mode == "frozen":
            self.tagger.backbone.eval()
        return self

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning restores the submodules' modes it captured before each validation
        # directly (not through ``train``): keep a frozen backbone in eval mode regardless.
        if self.hparams.mode == "frozen":
            self.tagger.backbone.eval()

    def forward(self, inputs: ParticleInputs) -> torch.Tensor:
        return self.tagger(inputs)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        batch = dict(batch)
        label = batch.pop("label")
        logits = self(ParticleInputs(**batch))
        loss = F.cross_entropy(logits, label)
        accuracy = (logits.argmax(dim=1) == label).float().mean()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/accuracy": accuracy}, prog_bar=True,
                      on_epoch=True, on_step=False, batch_size=len(label),
                      sync_dist=stage == "val")
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = [{"params": self.tagger.head.parameters(), "lr": hp.lr}]
        if hp.mode != "frozen":
            factor = hp.backbone_lr_factor if hp.mode == "finetune" else 1.0
            groups.append({"params": self.tagger.backbone.parameters(), "lr": hp.lr * factor})
        return adamw_with_cosine(self, groups, hp.lr, hp.weight_decay)


def prepared(tagger: Tagger, jets: JetBatch, what: str) -> InputsDataset:
    """``jets`` as the tagger's inputs with their class positions; prints the selection
    reports (particles dropped or truncated) under ``what``."""
    inputs, reports = tagger.prepare(jets)
    for report in reports:
        if report.n_removed:
            console.print(f"  {what}: {report}")
    return InputsDataset(inputs, tagger.labels_of(jets))


def train_tagger(train: JetBatch, val: JetBatch, config: TaggingConfig,
                 out_dir: str | Path, seed: int = 1) -> Tagger:
    """Train the tagger of ``config`` on ``train`` (early stopping and best epoch on ``val``);
    writes ``<out_dir>/tagger.safetensors`` and returns the tagger (eval mode, CPU).

    Resumes from ``<out_dir>/checkpoints/last.ckpt`` only when that run was started with the
    same configuration, tagger, init file and jets (:func:`resumable`); else starts afresh,
    saying what differs. Raises ``ValueError`` for empty training or validation jets;
    :class:`~jetfm.data.batch.JetDataError` when the jets lack the backbone's features or hold
    classes outside ``config.classes``; ``ValueError`` for an ``init`` file of another backbone.
    """
    out_dir = Path(out_dir)
    for name, jets in (("training", train), ("validation", val)):
        if len(jets) == 0:
            raise ValueError(f"no {name} jets: a tagger needs both training jets and "
                             "validation jets (early stopping and the best epoch use them)")
    seed_all(seed)  # before building the weights
    tagger = config.build()
    train_ds, val_ds = prepared(tagger, train, "training jets"), prepared(tagger, val,
                                                                            "validation jets")
    return fit_tagger(tagger, train_ds, val_ds, config, out_dir, seed,
                      {"training": dataset_digest(train_ds), "validation": dataset_digest(val_ds)})


def fit_tagger(tagger: Tagger, train: Any, val: Any, config: TaggingConfig, out_dir: Path,
               seed: int, jets: dict[str, Any]) -> Tagger:
    """Train ``tagger`` (freshly built by ``config.build()`` after ``seed_all(seed)``) on the
    prepared ``train`` / ``val`` data (in-memory datasets or streams), resuming when the run
    record (config, seed, tagger, init file digest and ``jets``, a description of the data)
    matches; writes ``<out_dir>/tagger.safetensors`` on rank 0 and returns the tagger (eval,
    CPU). Shared by :func:`train_tagger` and
    :func:`jetfm.tasks.tagging_stream.train_tagger_stream`."""
    train_config = config.train_config(seed)
    task = TaggingTask(tagger.meta(), mode=config.mode, lr=train_config.lr,
                       backbone_lr_factor=config.backbone_lr_factor)
    task.tagger.load_state_dict(tagger.state_dict())
    record = {"config": json.loads(json.dumps(asdict(config), default=str)), "seed": seed,
              "tagger": json.loads(json.dumps(tagger.meta())),
              "init": file_digest(config.init) if config.init else None,
              "jets": jets}
    resume = resumable(out_dir, record)
    trainer = fit(task, train, val, train_config, out_dir, resume=resume)
    tagger = task.tagger.cpu().eval()
    if trainer.global_rank == 0:
        tagger.save(out_dir / "tagger.safetensors")
    return tagger


RUN_RECORD = "tagging.json"  # what a training run in a folder was started with


def dataset_digest(dataset: InputsDataset) -> str:
    """SHA-256 of a dataset's inputs and labels (which jets a run trains on)."""
    digest = hashlib.sha256()
    for key, value in sorted(dataset.inputs.items().items()):
        digest.update(key.encode())
        digest.update(value.contiguous().numpy().tobytes())
    digest.update(dataset.labels.numpy().tobytes())
    return digest.hexdigest()[:16]


def resumable(out_dir: Path, record: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from: ``<out_dir>/checkpoints/last.ckpt`` when the run that
    wrote it was started with the same ``record`` (configuration, tagger, init file, jets);
    otherwise the earlier run's checkpoints and logs are removed, with a printed line naming
    what differs, and the run starts afresh. Writes the record of the run about to start."""
    path, last = out_dir / RUN_RECORD, out_dir / "checkpoints" / "last.ckpt"
    old = json.loads(path.read_text()) if path.exists() else None
    if last.exists() and old == record:
        console.print(f"  resuming from {last}")
        return last
    if old is not None and old != record or last.exists() and old is None:
        why = ("it has no record of what it was started with" if old is None else
               "these differ: " + ", ".join(k for k in record if old.get(k) != record[k]))
        console.print(f"[yellow]{out_dir} holds an earlier tagger run ({why}); starting "
                      "afresh[/]")
        for folder in ("checkpoints", "logs"):
            shutil.rmtree(out_dir / folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return None


def tagging_config(data: Mapping[str, Any], where: str, also_valid: tuple[str, ...] = ()
                   ) -> TaggingConfig:
    """A :class:`TaggingConfig` from a config block; ``ValueError`` naming ``where`` and the
    unknown keys (listing the valid ones, with ``also_valid``: keys the caller took out of
    ``data`` itself) or the bad value (:func:`jetfm.checks.from_mapping`)."""
    return from_mapping(TaggingConfig, data, where, also_valid=also_valid)
