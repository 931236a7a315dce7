"""OmniJet-alpha throughput: GPT training tokens/s, sampling jets/s with the KV cache vs full
recomputation (same model, same batch), and the tokenizer resolution of a finished run.

    python benchmarks/bench_omnijet.py [--config jetfm/configs/omnijet_cpu.yaml ...]
        [--batch 64] [--steps 5] [--n-jets 64] [--threads N] [--run runs/demo/omnijet]
        [--device cpu|cuda]

Each row is the GPT exactly as the pipeline builds it from a config file
(:func:`gpt_config_from`): the ``gpt`` block, vocabulary = the tokenizer's codes (``vqvae`` or
``codebook`` block) + start and stop, length = ``n_max`` + 2; a GPT that embeds code (and
absolute) coordinates gets random ones of the tokenizer's feature count, which costs the same.
Defaults: the presets jetfm/configs/omnijet_cpu.yaml (the demo: dim 128, 8194 tokens, 64
particles, learned positions, code and absolute coordinates) and jetfm/configs/omnijet_gpu.yaml
(the paper's sizes: dim 256, 8194 tokens, 128 particles, no positions). Prints figures only;
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from jetfm.configs import presets_dir
from jetfm.models.codebook import CodebookConfig
from jetfm.models.gpt import GPT, GPTConfig, NextTokenHead, next_token_loss, sample
from jetfm.models.vqvae import VQVAEConfig
from jetfm.studies.omnijet import OmniJetConfig

CONFIGS = presets_dir()  # the shipped presets
DEFAULT_CONFIGS = [CONFIGS / "omnijet_cpu.yaml", CONFIGS / "omnijet_gpu.yaml"]


def gpt_config_from(path: Path) -> GPTConfig:
    """The GPT of the OmniJet config file ``path``, as
    :class:`jetfm.models.omnijet.OmniJetBackboneConfig` sets it from the trained tokenizer
    (codebook + 2 tokens, n_max + 2 positions)."""
    config = OmniJetConfig.from_yaml(path)
    n_features = len(config.preprocessing().features)
    settings = config.tokenizer_settings
    codebook = (CodebookConfig(**settings, n_features=n_features)
                if config.tokenizer_model == "codebook" else VQVAEConfig(**settings)).codebook_size
    code_dim = n_features if config.gpt.get("code_features") else 0
    return GPTConfig(**{**config.gpt, "vocab_size": codebook + 2, "code_dim": code_dim,
                        "max_length": config.n_max + 2})


def _model(config: GPTConfig, device: str) -> tuple[GPT, NextTokenHead]:
    """A random GPT and head; random code coordinates where it embeds them."""
    torch.manual_seed(0)
    backbone = GPT(config)
    if backbone.codes is not None:
        backbone.codes.set_coordinates(torch.randn(config.vocab_size - 2, config.code_dim))
    return backbone.to(device), NextTokenHead(config.dim, config.vocab_size).to(device)


def _coordinates(config: GPTConfig, tokens: torch.Tensor) -> torch.Tensor | None:
    """Random absolute coordinates for ``tokens`` when the GPT needs them."""
    if not config.absolute_coordinates:
        return None
    return torch.randn(*tokens.shape, config.code_dim, device=tokens.device)


def training_tokens_per_second(config: GPTConfig, device: str, batch: int = 64,
                               steps: int = 5) -> float:
    backbone, head = _model(config, device)
    opt = torch.optim.AdamW([*backbone.parameters(), *head.parameters()], lr=1e-4)
    tokens = torch.randint(1, config.vocab_size, (batch, config.max_length), device=device)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    for step in range(steps + 1):
        if step == 1:  # first step warms up
            _sync(device)
            start = time.perf_counter()
        hidden, _ = backbone(tokens, mask, coordinates=_coordinates(config, tokens))
        loss = next_token_loss(head(hidden), tokens, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return steps * batch * (config.max_length - 1) / (time.perf_counter() - start)


def sampling_jets_per_second(config: GPTConfig, device: str, n_jets: int, use_cache: bool
                             ) -> float:
    backbone, head = _model(config, device)
    backbone.eval(), head.eval()
    with torch.no_grad():  # make the stop token rare so every jet runs all steps
        head.linear.bias[config.stop_token] = -1e4
    _sync(device)
    start = time.perf_counter()
    coordinates_fn = (lambda tokens: _coordinates(config, tokens)) \
        if config.absolute_coordinates else None
    sample(backbone, head, n_jets, config.max_length - 2, use_cache=use_cache,
           generator=torch.Generator(device=device).manual_seed(0),
           coordinates_fn=coordinates_fn)
    _sync(device)
    return n_jets / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, nargs="+", default=DEFAULT_CONFIGS,
                        help="OmniJet config files whose GPT is timed (default: CPU and GPU)")
    parser.add_argument("--run", type=Path, help="omnijet run directory (tokenizer resolution)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64, help="sequences per training step")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--n-jets", type=int, default=64, help="jets per sampling batch")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); on a "
                        "loaded machine 1 thread avoids the threads waiting for each other")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    for path in args.config:
        config = gpt_config_from(path)
        print(f"{path.name}: GPT dim {config.dim}, {config.n_blocks} blocks, {config.n_heads} "
              f"heads, {config.vocab_size} tokens, length {config.max_length}, positions "
              f"{'learned' if config.positional else 'none'}")
        tps = training_tokens_per_second(config, args.device, args.batch, args.steps)
        cached = sampling_jets_per_second(config, args.device, args.n_jets, use_cache=True)
        full = sampling_jets_per_second(config, args.device, args.n_jets, use_cache=False)
        print(f"{path.name}: training {tps:,.0f} tokens/s (batch {args.batch}) | sampling "
              f"{args.n_jets} jets x {config.max_length - 2} particles: KV cache "
              f"{cached:.1f} jets/s, full recomputation {full:.1f} jets/s, ratio "
              f"{cached / full:.1f}x")
    if args.run is not None:
        resolution = json.loads((args.run / "tokenizer" / "resolution.json").read_text())
        print("tokenizer resolution (validation jets):")
        for key, value in resolution.items():
            print(f"  {key:>26}: {value:.4g}")


if __name__ == "__main__":
    main()
