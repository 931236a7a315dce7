"""Which part of a trained PET generator limits it: the jet-level flow, or the particles given
the jet.

    python benchmarks/diagnose_pet_generator.py \
        --config jetfm/configs/benchmark_generation_cpu.yaml \
        --run runs/benchmark_generation_cpu [--name PET] [--class Tbqq] [--steps 32]

Uses the benchmark run's split (:func:`jetfm.studies.benchmark_generation.load_data`) and its
PET cell's model. Prints 10/50/90 % quantiles, in the generator's frame, of

1. the jet-level flow's samples (pT, mass, multiplicity) vs the held-out reference jets;
2. the jets it generates from nothing but the class (jet-level flow, then particles);
3. the jets whose particles it generates given the *true* kinematics of the ``roots`` jets
   (held out, never trained on), vs those roots themselves.

If (1) matches and (3) does not, the particle flow limits. Prints figures only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from jetfm.models.pet_generator import JET_FEATURES, load_generator
from jetfm.physics.observables import jet_observables
from jetfm.studies.benchmark_generation import load_config, load_data


def quantiles(values: np.ndarray) -> str:
    return " / ".join(f"{v:.3g}" for v in np.nanpercentile(values, [10, 50, 90]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--name", default="PET")
    parser.add_argument("--class", dest="cls", default="Tbqq")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    config = load_config(args.config)
    split, _ = load_data(config, args.run)
    model = load_generator(args.run / "cells" / args.name / "generator.safetensors")
    parts = split.parts[args.cls]
    reference = jet_observables(model.frame(parts["reference"]))
    roots = parts["roots"][: args.n]
    truth_roots = jet_observables(model.frame(roots))

    label = torch.full((args.n,), model.classes.index(args.cls))
    with torch.no_grad():
        jet = model.sample_jets(label, args.steps, generator=torch.Generator().manual_seed(0))
    sampled = {f.name: (jet[:, i] / f.multiply + f.subtract).numpy()
               for i, f in enumerate(model.spec.jet)}
    free = jet_observables(model.generate(args.n, args.cls, steps=args.steps, seed=1))
    given = jet_observables(model.generate(args.n, args.cls, steps=args.steps, seed=1,
                                           jet=model.encode(roots).jet))
    print(f"{args.name}, class {args.cls}, {args.steps} midpoint steps, {args.n} jets; "
          "10 / 50 / 90 % quantiles in the generator's frame")
    rows = (("pt", "jet_pt"), ("mass", "jet_mass"), ("n_particles", "n_particles"))
    print("1. jet-level flow vs reference")
    for obs, feature in rows:
        assert feature in JET_FEATURES
        print(f"   {obs:>12}: {quantiles(sampled[feature])}  vs  {quantiles(reference[obs])}")
    print("2. generated from the class alone vs reference")
    for obs in ("pt", "mass", "tau32", "n_particles"):
        print(f"   {obs:>12}: {quantiles(free[obs])}  vs  {quantiles(reference[obs])}")
    print("3. particles given the true kinematics of held-out jets vs those jets")
    for obs in ("pt", "mass", "tau32", "n_particles"):
        print(f"   {obs:>12}: {quantiles(given[obs])}  vs  {quantiles(truth_roots[obs])}")


if __name__ == "__main__":
    main()
