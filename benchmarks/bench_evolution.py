"""Throughput of the jet-evolution generator: training nodes/s and generated jets/s.

Generates ``--jets`` top jets with Pythia 8 (particles with pT > 1 GeV, the 40 hardest kept),
builds kt trees, then times (``--threads`` torch threads, an untrained model of the CPU
config's size) training steps (forward + backward + AdamW on batches of 32 trees; nodes/s
counts real, unpadded nodes) and batched generation from the jets' roots with the KV cache and
with full recomputation (jets/s). An untrained model grows trees of random size; pass a trained
model file (``--model runs/evolution/evolution/evolution.safetensors``) for generation figures
with realistic trees. Prints figures only; asserts nothing about timing.

    .venv/bin/python benchmarks/bench_evolution.py [--jets 256] [--threads 1] [--model FILE]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from jetfm.data.pythia import GeneratorConfig, generate
from jetfm.models.jet_evolution import EvolutionConfig, JetEvolution, JetEvolutionModel, encode
from jetfm.physics.trees import build_trees
from jetfm.studies.evolution import cut_particles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jets", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--model", help="trained evolution.safetensors for generation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, _ = generate(GeneratorConfig("top"), args.jets, seed=1, progress=False)
    jets, report = cut_particles(batch, 1.0, "top", n_max=40)
    print(report)
    trees = build_trees(jets)
    encoded = encode(trees)
    net = JetEvolution(EvolutionConfig())
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    arrays = [torch.as_tensor(a) for a in encoded.arrays()]
    nodes, seconds = 0, 0.0
    for step in range(args.steps + 1):
        rows = slice(32 * step % args.jets, 32 * step % args.jets + 32)
        part = [a[rows] for a in arrays]
        start = time.perf_counter()
        loss = net.loss(*part)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step warms up
            seconds += time.perf_counter() - start
            nodes += int(part[-1].sum())
    print(f"training: {nodes / seconds:.0f} nodes/s ({args.threads} thread(s), batches of 32 "
          f"trees, {encoded.mask.sum(1).mean():.0f} nodes per tree on average)")
    model = JetEvolutionModel.load(args.model) if args.model else JetEvolutionModel(net)
    roots = trees.p4[trees.to_global(trees.root, np.arange(len(trees)))]
    for use_cache in (True, False):
        start = time.perf_counter()
        grown = model.generate(roots, seed=1, use_cache=use_cache)
        rate = len(roots) / (time.perf_counter() - start)
        print(f"generation ({'KV cache' if use_cache else 'full recomputation'}): "
              f"{rate:.1f} jets/s, {grown.n_nodes.mean():.0f} nodes per tree; {model.report}")


if __name__ == "__main__":
    main()
