"""Time the parts of ``jetfm study event-generation`` and estimate a preset's run time.

    python benchmarks/bench_event_generation.py [--config event_generation_cpu] [--steps 20]

On synthetic Z + n jets events of the preset's shapes, with one torch thread, measures the CPU
time (``time.process_time``: what one free core would take, whatever else the machine runs)
of: one training step of every generator at every multiplicity (the preset's batch size),
sampling and likelihood per event, the metrics of one cell (W1 with bootstrap, classifier
AUC) and one marginal plot. It prints them and the estimate of the whole preset on 2 free
cores: Pythia at 1,260 events per CPU second (``jetfm.data.zjets`` docstring) on ``workers``
processes, then every cell one after the other (the study trains with ``threads`` = 1) with the
full ``max_steps`` of each entry (early stopping can only shorten it). Prints figures only.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from jetfm.data.events import MUON_MASS, Events
from jetfm.models.cfm_generator import CFMConfig, CFMGenerator, EventCoordinates
from jetfm.models.jetgpt import JetGPT, JetGPTConfig
from jetfm.models.jetgpt_inputs import EventPreprocessing
from jetfm.studies import event_generation as study

PYTHIA_EVENTS_PER_CPU_SECOND = 1260.0


def synthetic(n: int, n_jets: int, seed: int = 0) -> Events:
    """Events with exactly ``n_jets`` jets: pT-ordered jets above 20 GeV, muon pair near the
    Z mass, uniform azimuths."""
    rng = np.random.default_rng(seed)
    jets = np.zeros((n, n_jets, 4))
    jets[..., 0] = -np.sort(-(20.5 + rng.exponential(30, (n, n_jets))), axis=1)
    jets[..., 1] = rng.normal(0, 1.8, (n, n_jets))
    jets[..., 2] = rng.uniform(-np.pi, np.pi, (n, n_jets))
    jets[..., 3] = jets[..., 0] * rng.uniform(0.05, 0.2, (n, n_jets))
    muons = np.zeros((n, 2, 4))
    muons[..., 0] = -np.sort(-rng.uniform(20, 70, (n, 2)), axis=1)
    muons[..., 1] = rng.normal(0, 1.2, (n, 2))
    muons[..., 2] = rng.uniform(-np.pi, np.pi, (n, 2))
    muons[..., 3] = MUON_MASS
    return Events(muons, jets, np.full(n, n_jets))


def cpu(fn, repeat: int = 1) -> float:
    """CPU seconds of one call of ``fn`` (mean of ``repeat`` after one warm-up call)."""
    fn()
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="event_generation_cpu")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = study.load_config(args.config)
    rows, total = [], 0.0
    pythia = config.n_events / PYTHIA_EVENTS_PER_CPU_SECOND / config.workers
    print(f"Pythia: {config.n_events:,} events -> {pythia:.0f} s on {config.workers} workers")
    total += pythia
    n_probe = 256
    for n in config.multiplicities:
        events = synthetic(max(config.n_eval, 2 * n_probe), n)
        for entry in config.generators:
            settings = study._entry_settings(entry)
            training = entry.get("training", {})
            batch = int(training.get("batch_size", 128))
            torch.manual_seed(0)
            if entry["kind"] == "cfm":
                coords = EventCoordinates.fit(events, n)
                x = torch.from_numpy(coords.encode(events)[0])
                model = CFMGenerator(CFMConfig(**settings["model"]), coords)
                optim = torch.optim.AdamW(model.parameters(), lr=1e-3)

                def step(model=model, optim=optim, x=x, batch=batch):
                    loss = model.loss(x[:batch]).mean()
                    optim.zero_grad()
                    loss.backward()
                    optim.step()

                def sample(model=model, settings=settings):
                    model.sample(n_probe, settings["steps"], settings["solver"])

                def nll(model=model, x=x, settings=settings):
                    model.log_prob(x[:n_probe // 4], settings["nll_steps"], settings["solver"],
                                   settings["divergence"])
                nll_events = n_probe // 4
            else:
                prep = EventPreprocessing.fit(events)
                xs, mask, _ = prep.encode(events)
                xs, mask = torch.from_numpy(xs), torch.from_numpy(mask)
                model = JetGPT(JetGPTConfig(**settings["model"]))
                optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
                cond = torch.zeros(len(xs), dtype=torch.long)

                def step(model=model, optim=optim, xs=xs, mask=mask, cond=cond, batch=batch):
                    loss = model.loss(xs[:batch], mask[:batch], cond[:batch])["loss"]
                    optim.zero_grad()
                    loss.backward()
                    optim.step()

                def sample(model=model, n=n):
                    with torch.no_grad():
                        model.sample(n_probe, 0, max_objects=2 + n)

                def nll(model=model, xs=xs, mask=mask, cond=cond):
                    with torch.no_grad():
                        model.log_likelihood(xs[:n_probe], mask[:n_probe], cond[:n_probe])
                nll_events = n_probe
            step_s = cpu(step, args.steps)
            sample_s = cpu(sample) / n_probe
            nll_s = cpu(nll) / nll_events
            cells = 0.0
            for size in config.sizes:
                steps = min(int(training.get("max_steps", 1000)),
                            int(training.get("max_epochs", 20)) * math.ceil(size / batch))
                # the JetGPT sampler draws ~1.1x the events it keeps
                cells += steps * step_s + config.n_eval * sample_s * (
                    1.1 if entry["kind"] == "jetgpt" else 1.0) + config.n_nll * nll_s
            rows.append((n, entry["name"], step_s, sample_s, nll_s, cells))
            total += cells
        reference = synthetic(config.n_eval, n, seed=1)
        generated = synthetic(config.n_eval, n, seed=2)
        floor = {"w1": {k: {"value": 1.0} for k in study.observables(reference, n)},
                 "auc": {"value": 0.5}}
        split = study.Split(n, reference, reference, reference, reference)
        metrics = cpu(lambda g=generated, split=split, floor=floor: study.evaluate(
            g, split, config, floor))
        obs = study.observables(reference, n)
        from jetfm.plots.histograms import plot_distribution

        def plot(obs=obs):
            plot_distribution(obs["pt_mu1"], {g["name"]: obs["pt_mu1"]
                                              for g in config.generators},
                              "/tmp/bench_event_generation.png", xlabel="pT")
        plot_s = cpu(plot)
        n_cells = len(config.sizes) * len(config.generators)
        evaluation = n_cells * metrics + len(config.sizes) * len(obs) * plot_s + metrics
        print(f"{n} jets: metrics of one cell {metrics:.1f} s, one plot {plot_s:.2f} s, "
              f"{len(obs)} marginals -> evaluation and plots {evaluation:.0f} s")
        total += evaluation
    print()
    print(f"{'jets':>4} {'generator':<18} {'s/step':>8} {'ms/event sampled':>17} "
          f"{'ms/event NLL':>13} {'cells s':>8}")
    for n, name, step_s, sample_s, nll_s, cells in rows:
        print(f"{n:>4} {name:<18} {step_s:8.3f} {1e3 * sample_s:17.2f} {1e3 * nll_s:13.2f} "
              f"{cells:8.0f}")
    print(f"\nestimate for {args.config} on 2 free cores: {total / 60:.0f} min "
          "(training at max_steps; Lightning's per-step overhead not included)")


if __name__ == "__main__":
    main()
