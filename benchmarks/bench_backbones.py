"""Training and inference throughput of every backbone's tagger at a fixed batch.

    python benchmarks/bench_backbones.py [--backbones part pet lgatr omnijet] [--preset cpu]
        [--batch 128] [--particles 64] [--steps 5] [--threads N] [--device cpu|cuda]

Each row: a 5-class tagger (backbone + class_attention head; L-GATr with its global_token head)
built through the public API (:func:`jetfm.models.tagger.build_tagger`) with the backbone
configuration of the tagging benchmark's preset (``jetfm/configs/benchmark_tagging_<preset>.yaml``
when it lists the backbone, else the backbone's defaults), on jets of exactly ``--particles``
constituents (random, physical: pT fractions exponential, within R ~ 0.4). Training: forward,
cross entropy, backward and an AdamW step; inference: forward in eval mode without gradients.
Inputs are prepared once (tokenization and feature computation are not timed). The first step
warms up and is not timed. Prints figures only; timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import awkward as ak
import numpy as np
import torch
import torch.nn.functional as F
import yaml

from jetfm.configs import presets_dir
from jetfm.data.batch import JetBatch
from jetfm.data.transforms import omnijet_preprocessing
from jetfm.models.omnijet import omnijet_backbone
from jetfm.models.tagger import Tagger, build_tagger
from jetfm.models.tokenizer import Tokenizer
from jetfm.models.vqvae import VQVAE, VQVAEConfig

CONFIGS = presets_dir()  # the shipped presets
CLASSES = ["QCD", "Tbqq", "Wqq", "Zqq", "Hbb"]
OMNIJET_CPU = {"vqvae": {"dim": 64, "n_blocks": 2, "n_heads": 4, "codebook_size": 1024},
               "gpt": {"dim": 128, "n_blocks": 3, "n_heads": 8, "positional": True}}


def jets(n_jets: int, n_particles: int, seed: int = 0) -> JetBatch:
    """Jets of exactly ``n_particles`` massless constituents, pT ~ 500 GeV, |eta| < 1."""
    rng = np.random.default_rng(seed)
    shape = (n_jets, n_particles)
    z = rng.exponential(1.0, shape)
    pt = 500.0 * z / z.sum(axis=1, keepdims=True)
    eta = rng.uniform(-1, 1, (n_jets, 1)) + rng.normal(0, 0.15, shape)
    phi = rng.uniform(-np.pi, np.pi, (n_jets, 1)) + rng.normal(0, 0.15, shape)
    return JetBatch.from_ptetaphi(ak.Array(pt), ak.Array(eta), ak.Array(phi), 0.0)


def preset_models(preset: str) -> dict[str, dict[str, Any]]:
    """backbone name -> its model entry of the benchmark preset (empty when none)."""
    path = CONFIGS / f"benchmark_tagging_{preset}.yaml"
    if not path.exists():
        return {}
    models = (yaml.safe_load(path.read_text()) or {}).get("models") or []
    entries = models.values() if isinstance(models, dict) else models
    return {m["backbone"]: m for m in entries if isinstance(m, dict) and "backbone" in m}


def tagger_for(name: str, entry: dict[str, Any], n_particles: int) -> Tagger:
    if name == "omnijet":
        torch.manual_seed(0)
        tokenizer = Tokenizer(VQVAE(VQVAEConfig(**OMNIJET_CPU["vqvae"])),
                              omnijet_preprocessing(n_max=n_particles))
        backbone = omnijet_backbone(tokenizer, OMNIJET_CPU["gpt"])
        return Tagger(backbone, CLASSES, entry.get("head", "class_attention"),
                      entry.get("head_config"))
    features = entry.get("features") or {}
    features = {**features, "n_max": n_particles} if isinstance(features, dict) else features
    default_head = "global_token" if name == "lgatr" else "class_attention"
    return build_tagger(name, CLASSES, entry.get("backbone_config"), features,
                        entry.get("head", default_head), entry.get("head_config"))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def throughput(tagger: Tagger, batch: JetBatch, device: str, steps: int) -> tuple[float, float]:
    """(training, inference) jets per second."""
    inputs = tagger.prepare(batch)[0].to_torch(device)
    labels = torch.randint(0, len(CLASSES), (len(batch),), device=device)
    tagger = tagger.to(device)
    opt = torch.optim.AdamW(tagger.parameters(), lr=1e-4)
    tagger.train()
    for step in range(steps + 1):
        if step == 1:
            _sync(device)
            start = time.perf_counter()
        loss = F.cross_entropy(tagger(inputs), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    train = steps * len(batch) / (time.perf_counter() - start)
    tagger.eval()
    with torch.no_grad():
        for step in range(steps + 1):
            if step == 1:
                _sync(device)
                start = time.perf_counter()
            tagger(inputs)
    _sync(device)
    return train, steps * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["part", "pet", "lgatr", "omnijet"])
    parser.add_argument("--preset", default="cpu", help="benchmark preset for the configs")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--particles", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    entries = preset_models(args.preset)
    batch = jets(args.batch, args.particles)
    print(f"device {args.device}, {torch.get_num_threads()} threads, batch {args.batch}, "
          f"{args.particles} particles per jet, preset {args.preset!r}")
    print(f"{'backbone':<9} {'parameters':>11} {'train jets/s':>13} {'inference jets/s':>17}")
    for name in args.backbones:
        tagger = tagger_for(name, entries.get(name, {}), args.particles)
        n_params = sum(p.numel() for p in tagger.parameters() if p.requires_grad)
        train, infer = throughput(tagger, batch, args.device, args.steps)
        print(f"{name:<9} {n_params:>11,} {train:>13,.0f} {infer:>17,.0f}")


if __name__ == "__main__":
    main()
