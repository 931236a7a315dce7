"""Helpers of the streaming tests (not a test module), and the job each DDP process runs:

    python tests/stream_jobs.py OUT_DIR TRAIN_FILE... -- VAL_FILE...

trains a tiny ParT tagger for two epochs on two CPU processes (gloo) from
:class:`~jetfm.data.streaming.JetStream` s and writes, per process and epoch, the
(file, entry) ids of the training jets it took: ``OUT_DIR/ids_rank<r>_epoch<e>.npy``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from tagging_jets import two_class_jets  # noqa: E402

from jetfm.data.batch import JetBatch  # noqa: E402
from jetfm.data.jetclass import write_jetclass  # noqa: E402
from jetfm.tasks.tagging import TaggingConfig, TaggingTask  # noqa: E402
from jetfm.tasks.training import LossTask  # noqa: E402

PART_TINY = {"embed_dims": [16, 16], "pair_embed_dims": [8], "num_heads": 2, "num_layers": 1,
             "dropout": 0.0, "attn_dropout": 0.0, "activation_dropout": 0.0}
HEAD_TINY = {"n_heads": 2, "n_blocks": 1}


def tiny_config(**training: object) -> TaggingConfig:
    """A small ParT QCD-vs-top tagger (as in test_tagging)."""
    return TaggingConfig(backbone="part", backbone_config=PART_TINY, head_config=HEAD_TINY,
                         classes=["QCD", "Tbqq"],
                         training={"progress": False, "accelerator": "cpu", **training})


def write_files(folder: Path, sizes: list[int], seed: int = 0, stem: str = "jets"
                ) -> tuple[list[Path], list[JetBatch]]:
    """JetClass ROOT files of QCD-like and top-like toy jets, ``sizes[i]`` jets in file i;
    returns the paths and the batches written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, batches = [], []
    for i, n in enumerate(sizes):
        jets = two_class_jets((n + 1) // 2, seed=seed + 10 * i)[:n]
        path = folder / f"{stem}{i}.root"
        write_jetclass(jets, path)
        paths.append(path)
        batches.append(jets)
    return paths, batches


class RecordingTagger(TaggingTask):
    """A :class:`TaggingTask` whose batches carry (file, entry) ids (``with_ids``): they are
    taken out before the step and, for training batches, kept per epoch in :attr:`seen`."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.seen: dict[int, list[np.ndarray]] = {}

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        batch = dict(batch)
        ids = torch.stack([batch.pop("file"), batch.pop("entry")], dim=1)
        if stage == "train":
            self.seen.setdefault(self.current_epoch, []).append(ids.numpy().copy())
        return super()._step(batch, stage)


class IdModel(LossTask):
    """The tiniest task: one weight fitted to the particle counts (``n``, from the transform
    :func:`n_particles`) of batches that carry their ids, which it keeps per epoch."""

    def __init__(self, lr: float = 1e-2, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[int, list[np.ndarray]] = {}

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        if stage == "train":
            ids = torch.stack([batch["file"], batch["entry"]], dim=1)
            self.seen.setdefault(self.current_epoch, []).append(ids.numpy().copy())
        loss = ((self.weight * batch["n"].float() / 30 - 1) ** 2).mean()
        self.log(f"{stage}/loss", loss, on_epoch=True, on_step=False, batch_size=len(batch["n"]))
        return loss


def n_particles(jets: JetBatch) -> dict[str, np.ndarray]:
    """A cheap per-jet transform: the particle count of each jet."""
    return {"n": jets.n_particles}


def recording_task(tagger: object, lr: float = 3e-3) -> RecordingTagger:
    """A :class:`RecordingTagger` holding ``tagger``'s weights."""
    task = RecordingTagger(tagger.meta(), mode="scratch", lr=lr)
    task.tagger.load_state_dict(tagger.state_dict())
    return task


def main(argv: list[str]) -> int:
    from jetfm.data.streaming import JetStream, TaggerInputs
    from jetfm.tasks.training import fit, seed_all

    out, rest = Path(argv[0]), argv[1:]
    split = rest.index("--")
    train_files, val_files = rest[:split], rest[split + 1 :]
    config = tiny_config(max_epochs=2, batch_size=8, devices=2, strategy="ddp")
    seed_all(1)
    tagger = config.build()
    transform = TaggerInputs(tagger)
    train = JetStream(train_files, transform, chunk_size=20, buffer_size=12, with_ids=True)
    val = JetStream(val_files, transform, shuffle=False, with_ids=True)
    task = recording_task(tagger)
    trainer = fit(task, train, val, config.train_config(1), out)
    for epoch, ids in task.seen.items():
        np.save(out / f"ids_rank{trainer.global_rank}_epoch{epoch}.npy", np.concatenate(ids))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
