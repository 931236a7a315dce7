"""Cross-check: weaver-core's own ParT trained with jetfm's recipe on the benchmark's jets.

    python benchmarks/crosscheck_weaver_part.py --config jetfm/configs/benchmark_tagging_cpu.yaml \\
        --run runs/benchmark [--model ParT] [--size 10000]

Takes the ParT entry ``--model`` of a tagging-benchmark config and the run folder ``--run``
that ``jetfm benchmark tagging`` wrote (its generated data are reused, its split remade from the
seed: the same training, validation and test jets as the benchmark's cell at D = ``--size``),
and trains the reference ``ParticleTransformer`` (weaver-core at commit aff6531, vendored in
``tests/reference/weaver_particle_transformer.py``: the file the equality tests compare
against) with the same sizes, the same input features (the entry's feature spec, computed by
jetfm), the same optimiser, schedule, batch, step budget, early stopping and seed
(:func:`jetfm.tasks.training.fit`). As weaver's data pipeline does (``pad_mode: wrap``), its
padded slots are filled with copies of the jet's particles (the mask still marks them), since
its BatchNorm layers do not mask; its ``SequenceTrimmer`` augmentation is on in training, as in
weaver. Prints both test numbers (the jetfm cell's from its ``result.json``) and writes
``crosscheck_weaver_part_D{size}.json`` into the run folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from jetfm.metrics.tagging import multiclass_summary
from jetfm.models.features import ParticleInputs
from jetfm.report import write_json
from jetfm.studies.benchmark_tagging import load_config, load_data, make_split, select
from jetfm.tasks.tagging import InputsDataset
from jetfm.tasks.training import LossTask, TrainConfig, adamw_with_cosine, fit, seed_all

REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "reference" / \
    "weaver_particle_transformer.py"


def weaver_module() -> Any:
    spec = importlib.util.spec_from_file_location("weaver_particle_transformer", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def wrap_padding(inputs: ParticleInputs) -> ParticleInputs:
    """Padded slots filled with the jet's particles repeated cyclically (weaver's
    ``pad_mode: wrap``); the mask is unchanged."""
    features, p4, mask = inputs.features.copy(), inputs.p4.copy(), inputs.mask
    counts = mask.sum(axis=1)
    slots = np.arange(mask.shape[1])
    for i, n in enumerate(counts):
        source = slots[n:] % max(n, 1)
        features[i, n:] = features[i, source]
        p4[i, n:] = p4[i, source]
    return ParticleInputs(mask, features, p4)


class WeaverPartTask(LossTask):
    """weaver's ParticleTransformer behind jetfm's training loop (cross entropy, AdamW with
    cosine decay: the loss and optimiser of :class:`jetfm.tasks.tagging.TaggingTask`)."""

    def __init__(self, network: dict[str, Any], lr: float = 1e-3, weight_decay: float = 1e-4
                 ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = weaver_module().ParticleTransformer(**network)

    def forward(self, inputs: ParticleInputs) -> torch.Tensor:
        p4 = inputs.p4[..., [1, 2, 3, 0]]  # (E, px, py, pz) -> weaver's (px, py, pz, E)
        return self.model(inputs.features.transpose(1, 2), p4.transpose(1, 2),
                          inputs.mask[:, None, :].float())

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        batch = dict(batch)
        label = batch.pop("label")
        logits = self(ParticleInputs(**batch))
        loss = F.cross_entropy(logits, label)
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, on_step=False,
                 batch_size=len(label))
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        return adamw_with_cosine(self, [{"params": self.parameters()}], hp.lr, hp.weight_decay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="the benchmark's run folder")
    parser.add_argument("--model", default="ParT", help="the ParT entry's name")
    parser.add_argument("--size", type=int, help="D (default: the config's largest)")
    args = parser.parse_args()
    config = load_config(args.config)
    size = args.size or max(config.sizes)
    entry = next(m for m in config.models if m["name"] == args.model)
    tagging = config.model_config(entry, args.model, size)
    jets, _ = load_data(config, args.run)
    split = make_split(jets, config)
    train = select(jets, split.train, size)
    val = select(jets, split.val, config.n_val(size))
    test = select(jets, split.test)
    tagger = tagging.build()  # jetfm's ParT: its features, labels and sizes
    part = tagger.backbone.config
    head = {"n_heads": 8, "n_blocks": 2, **tagging.head_config}
    if head["n_heads"] != part.num_heads:
        raise SystemExit(f"{args.model}: weaver's ParT uses one head count for all blocks; "
                         f"the entry's class attention has {head['n_heads']}, the backbone "
                         f"{part.num_heads}")
    network = {"input_dim": part.input_dim, "num_classes": len(config.classes),
               "embed_dims": list(part.embed_dims), "pair_embed_dims": list(part.pair_embed_dims),
               "num_heads": part.num_heads, "num_layers": part.num_layers,
               "num_cls_layers": head["n_blocks"], "use_pre_activation_pair": False,
               "block_params": {"dropout": part.dropout, "attn_dropout": part.attn_dropout,
                                "activation_dropout": part.activation_dropout}}

    def dataset(jets_: Any) -> InputsDataset:
        return InputsDataset(wrap_padding(tagger.prepare(jets_)[0]), tagger.labels_of(jets_))

    training = TrainConfig.from_overrides(tagging.training, config.seed, "training")
    seed_all(config.seed)
    task = WeaverPartTask(network, lr=training.lr)
    out = args.run / "crosscheck" / f"weaver_part_D{size}"
    start = time.perf_counter()
    fit(task, dataset(train), dataset(val), training, out)
    seconds = time.perf_counter() - start
    task.eval()
    test_inputs = wrap_padding(tagger.prepare(test)[0])
    probs = []
    with torch.no_grad():
        for first in range(0, len(test_inputs), 512):
            chunk = test_inputs[first:first + 512].to_torch()
            probs.append(torch.softmax(task(chunk), dim=1).numpy())
    labels = tagger.labels_of(test)
    summary = multiclass_summary(labels, np.concatenate(probs), config.classes,
                                 signal_efficiency=config.signal_efficiency,
                                 n_bootstrap=config.n_bootstrap, seed=config.seed)
    weaver = {k: {"value": v.value, "error": v.error} for k, v in summary.items()}
    cell = json.loads((args.run / "cells" / f"D{size}" / args.model / "result.json"
                       ).read_text())
    ours = cell["metrics"]
    n_params = sum(p.numel() for p in task.model.parameters())
    write_json(args.run / f"crosscheck_weaver_part_D{size}.json",
               {"D": size, "model": args.model, "network": network, "parameters": n_params,
                "training_seconds": seconds, "weaver": weaver, "jetfm": ours})
    print(f"D = {size:,} per class, {len(test):,} test jets; parameters: jetfm ParT "
          f"{cell['parameters']:,}, weaver ParT {n_params:,}; training: "
          f"{cell['training_seconds']:.0f} s, {seconds:.0f} s")
    print(f"{'metric':<28} {'jetfm ParT':>18} {'weaver ParT':>18}")
    for key, value in weaver.items():
        if key in ours:
            print(f"{key:<28} {ours[key]['value']:>10.4f} ± {ours[key]['error']:<6.4f}"
                  f" {value['value']:>10.4f} ± {value['error']:<6.4f}")


if __name__ == "__main__":
    main()
