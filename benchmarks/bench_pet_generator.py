"""OmniLearn's PET generator on top jets: training time, then quality vs sampler steps with
sampling jets/s (every metric next to its like-for-like floor).

    python benchmarks/bench_pet_generator.py --data runs/gpt_curve_cpu/data/top.root \
        --out runs/bench_pet [--n-train 10000] [--max-steps 3000] [--sampler-steps 8 16 32 64]
        [--n-eval 1000] [--threads 1] [--device cpu|cuda]

Without ``--data``, ``--n-train`` + 5,000 top jets of the built-in Pythia8 source are made
first (minutes). Split (seeded): training, 1,000 validation, ``--n-eval`` held-out truth and
``--n-eval`` floor jets, disjoint; the generator (one class, Tbqq; body dim 64 x 3 blocks,
``n_max`` 64) generates ``--n-eval`` jets from nothing but the class. Evaluation:
:func:`jetfm.metrics.evaluate.evaluate_batches` in the generator's frame
(:meth:`~jetfm.models.pet_generator.PETGenerator.frame`) with the floor sample. A finished
model in ``--out`` is reused. Prints figures only; timings depend on the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from jetfm.data.generated import generated_files
from jetfm.data.io import read_jets
from jetfm.metrics.evaluate import evaluate_batches
from jetfm.models.pet_generator import load_generator
from jetfm.tasks.omnilearn import OmniLearnConfig, train_generator

GENERATOR = {"body": {"dim": 64, "num_layers": 3, "num_heads": 4}, "head_blocks": 1,
             "n_max": 64, "jet_hidden": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="*", help="top-jet files (default: generate them)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_pet"))
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--sampler-steps", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_needed = args.n_train + 1000 + 2 * args.n_eval
    files = args.data or generated_files(["top"], n_needed + 2000, args.out / "data")
    top = read_jets(files)
    if len(top) < n_needed:
        raise SystemExit(f"{len(top)} jets in {files}; need {n_needed}")
    order = np.random.default_rng(0).permutation(len(top))
    cut = np.cumsum([args.n_train, 1000, args.n_eval, args.n_eval])
    train, val, truth, floor = (top[order[a:b]] for a, b in zip([0, *cut[:-1]], cut,
                                                                 strict=True))
    path = args.out / "generator.safetensors"
    if path.exists():
        model = load_generator(path, args.device)
        print(f"reusing {path}")
    else:
        config = OmniLearnConfig(
            classes=["Tbqq"], generator=GENERATOR,
            training={"max_steps": args.max_steps, "max_epochs": 10_000, "batch_size": 64,
                      "lr": 1e-3, "patience": 10_000, "progress": True,
                      "accelerator": "gpu" if args.device.startswith("cuda") else "cpu"})
        start = time.perf_counter()
        model = train_generator(train, val, config, args.out)
        print(f"training: {time.perf_counter() - start:.0f} s for {args.max_steps} steps of "
              f"batch 64 on {args.n_train} top jets")
        model = model.to(args.device)
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
    for steps in args.sampler_steps:
        start = time.perf_counter()
        generated = model.generate(args.n_eval, "Tbqq", steps=steps, seed=1)
        rate = args.n_eval / (time.perf_counter() - start)
        result = evaluate_batches(truth, generated, args.out / f"eval_steps{steps}",
                                  n_bootstrap=10, frame=model.frame, frame_name="PET frame",
                                  floor_sample=floor, plots=steps == max(args.sampler_steps))
        print(f"\n== {steps} midpoint steps ({2 * steps} evaluations): "
              f"{rate:.1f} jets/s on {args.device}")
        for row in result.rows:
            if row.metric == "W1" or row.metric.startswith(("FPD", "KPD", "C2ST")):
                print(f"{row.metric:>9} {row.observable:>12}  {row.value.value:10.4g}  "
                      f"(floor {row.floor.value if row.floor else float('nan'):.4g})")


if __name__ == "__main__":
    main()
