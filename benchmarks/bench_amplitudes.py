"""CPU cost of the amplitude-regression study (:mod:`jetfm.studies.amplitudes`) and an estimate
of a preset's run time.

    python benchmarks/bench_amplitudes.py [--config amplitudes_cpu] [--steps 10] [--threads 1]

For each process and model of the preset, times ``--steps`` optimiser steps (forward,
backward, AdamW) at the preset's batch size and the forward pass alone, in **process CPU
seconds** (``time.process_time``, so a loaded machine inflates the figures less than wall
time), with ``--threads`` torch threads. Then, per cell (process, D, model, seed), the upper
bound of its optimiser steps (``max_steps``, or ``max_epochs`` epochs when that is smaller),
one validation pass per epoch and the two test passes (plain and boosted), and prints the
estimated CPU time of the whole preset, with :data:`OVERHEAD` added for what the networks do
not account for; with ``threads: 1`` (the CPU preset) that is the wall time on one free core.
Early stopping can only shorten a run. Prints figures only; timings depend on the machine and
its load.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from jetfm.models.amplitude import build_regressor, count_parameters
from jetfm.physics.amplitudes import N_TYPES, generate, get_process
from jetfm.studies.amplitudes import load_config

OVERHEAD = 0.11
"""CPU time beyond the networks' steps (Lightning's loop, imports, data generation), as a
fraction of the estimate: measured on a run of the CPU preset with sizes [1000, 10000],
n_test 2000 and a fifth of its steps (478 CPU s measured, 431 estimated, one thread)."""


def time_steps(model: torch.nn.Module, p4: np.ndarray, batch: int, steps: int
               ) -> tuple[float, float]:
    """(CPU seconds per training step, per forward pass) at batch size ``batch``."""
    x = torch.as_tensor(p4[:batch], dtype=torch.float32)
    y = torch.randn(len(x))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(2):  # warm-up: lgatr's basis caches, allocator
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    start = time.process_time()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    train = (time.process_time() - start) / steps
    start = time.process_time()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return train, (time.process_time() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="amplitudes_cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    total = 0.0
    print(f"{args.config}: sizes {config.sizes}, seeds {config.seeds}, test {config.n_test}")
    for process in config.processes:
        proc = get_process(process)
        p4, _, _ = generate(process, 4096, config.sqrt_s, config.y_cut, seed=1)
        for name in config.models:
            training = config.train_config(name, 1)
            model = build_regressor(name, {k: v for k, v in
                                           vars(config.model_config(name)).items()},
                                    proc.types, N_TYPES)
            model.set_preprocessing(p4)
            b = training.batch_size
            step, forward = time_steps(model, p4, b, args.steps)
            cells = 0.0
            for d in config.sizes:
                per_epoch = math.ceil(d / b)
                steps = training.max_steps if training.max_steps > 0 else math.inf
                steps = min(steps, training.max_epochs * per_epoch)
                epochs = math.ceil(steps / per_epoch)
                val = epochs * math.ceil(config.n_val(d) / b) * forward
                test = 2 * math.ceil(config.n_test / b) * forward
                cells += steps * step + val + test
            cells *= len(config.seeds)
            total += cells
            print(f"  {process:8s} {name:12s} {count_parameters(model):>9,d} parameters, "
                  f"batch {b}: {step * 1e3:8.1f} ms/step, {forward * 1e3:7.1f} ms/forward "
                  f"(CPU); its {len(config.sizes) * len(config.seeds)} cells: {cells:7.0f} "
                  "CPU s")
    overhead = OVERHEAD * total
    print(f"estimated total {total:.0f} CPU s in the networks, {total + overhead:.0f} CPU s "
          f"with Lightning, imports and data (x {1 + OVERHEAD:.2f}); the preset runs torch "
          f"with {config.threads or 'its default number of'} thread(s): about "
          f"{(total + overhead) / 60:.0f} min of wall time on one free core")


if __name__ == "__main__":
    main()
