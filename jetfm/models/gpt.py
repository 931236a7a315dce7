"""GPT backbone over jet token sequences, its generative head and a KV-cached sampler.

Vocabulary (OmniJet-alpha convention): token 0 = start, tokens 1..K = VQ-VAE codes shifted by
one, token K + 1 = stop, so ``vocab_size = K + 2``. Sequences are (batch, length) int64 with a
(batch, length) bool padding mask (True = real token). By default there is no positional
embedding (as OmniJet-alpha: jets are sets, the pT ordering of the tokens is the only order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jetfm.checks import POSITIVE_INT, Rule, check_divisible, check_fields, check_flag
from jetfm.nn.transformer import Block, KVCache

START_TOKEN = 0


@dataclass
class GPTConfig:
    """Backbone size. OmniJet-alpha: 3 blocks, 8 heads, dim 256, no positional embedding."""

    vocab_size: int = 8194
    dim: int = 256
    n_blocks: int = 3
    n_heads: int = 8
    max_length: int = 130  # start + 128 particles + stop
    dropout: float = 0.0
    positional: bool = False
    code_features: int = 0  # Fourier frequencies of the code coordinates (0: off, the paper's)
    code_scale: float = 1.0  # their standard deviation, cycles per unit of the coordinates
    code_dim: int = 0  # coordinates per code (set from the tokenizer, like vocab_size)
    absolute_coordinates: bool = False  # input also embeds each token's position in the jet

    def __post_init__(self) -> None:
        """Sizes >= 1 (``dim`` a multiple of ``n_heads``; ``vocab_size`` >= 3: start, one
        code, stop; ``max_length`` >= 2), ``dropout`` in [0, 1), ``positional`` a bool,
        ``code_features`` / ``code_dim`` >= 0, ``code_scale`` > 0; ``ValueError`` naming
        the key."""
        check_fields(self, {"vocab_size": Rule(int, low=3), "max_length": Rule(int, low=2),
                            **dict.fromkeys(("dim", "n_blocks", "n_heads"), POSITIVE_INT),
                            "dropout": Rule(float, low=0, high=1, high_open=True),
                            "code_features": Rule(int, low=0), "code_dim": Rule(int, low=0),
                            "code_scale": Rule(float, low=0, low_open=True)})
        check_flag("positional", self.positional)
        check_flag("absolute_coordinates", self.absolute_coordinates)
        if self.absolute_coordinates and not self.code_features:
            raise ValueError("absolute_coordinates: true needs code_features > 0 (they share "
                             "the Fourier frequencies)")
        check_divisible(self)

    @property
    def uses_code_coordinates(self) -> bool:
        return self.code_features > 0

    @property
    def stop_token(self) -> int:
        return self.vocab_size - 1


class CodeCoordinates(nn.Module):
    """Where each token's code sits in the tokenizer's feature space, as Fourier features.

    Buffers: ``coordinates`` (vocab_size, code_dim), row ``t`` = the coordinates of code
    ``t - 1`` (rows of the start and stop tokens are 0 and masked), filled from the tokenizer
    with :meth:`set_coordinates`; ``frequencies`` (code_features, code_dim), drawn once from
    N(0, code_scale^2) with a fixed private generator (seed 0, so building a model draws no
    number from the global stream). :meth:`forward` gives the (vocab_size, 2 code_features)
    table [sin(2 pi c B^T), cos(2 pi c B^T)] (random Fourier features, Tancik et al.,
    arXiv:2006.10739), 0 for the start and stop tokens.

    A learned embedding per code (OmniJet-alpha) must learn from data which codes are close in
    (eta, phi); with a few thousand jets and 8192 codes each code is seen a few dozen times.
    These features give the GPT the geometry of the codes from the start: the input embedding
    adds a linear map of them and the generative head scores every code by a linear map of the
    hidden state dotted with them, so probability moves smoothly between neighbouring codes.
    A jetfm departure from the paper, off by default (``code_features: 0``).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        freqs = torch.randn(config.code_features, config.code_dim, generator=generator)
        self.register_buffer("frequencies", freqs * config.code_scale)
        self.register_buffer("coordinates", torch.zeros(config.vocab_size, config.code_dim))

    def set_coordinates(self, codes: torch.Tensor) -> None:
        """``codes`` (vocab_size - 2, code_dim): the code vectors, in code order."""
        expected = (self.coordinates.shape[0] - 2, self.coordinates.shape[1])
        if tuple(codes.shape) != expected:
            raise ValueError(f"code coordinates: expected shape {expected}, got "
                             f"{tuple(codes.shape)}")
        with torch.no_grad():
            self.coordinates.zero_()
            self.coordinates[1:-1] = codes.to(self.coordinates)

    def forward(self) -> torch.Tensor:
        phase = 2 * torch.pi * self.coordinates @ self.frequencies.T
        table = torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)
        table[0] = 0.0
        table[-1] = 0.0
        return table


class GPT(nn.Module):
    """Token embedding -> causal transformer blocks -> final layer norm.

    ``forward`` returns the hidden states (batch, length, dim), which the generative head and
    the classification heads consume. With ``code_features`` > 0 the embedding adds a linear
    map of the code's Fourier features (:class:`CodeCoordinates`).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.position = nn.Embedding(config.max_length, config.dim) if config.positional else None
        self.codes = self.code_embed = None
        if config.uses_code_coordinates:
            if config.code_dim < 1:
                raise ValueError("code_features > 0 needs code coordinates (code_dim >= 1): "
                                 "a tokenizer whose codes have them (tokenizer_model: codebook)")
            self.codes = CodeCoordinates(config)
            self.code_embed = nn.Linear(2 * config.code_features, config.dim, bias=False)
        self.absolute_embed = nn.Linear(2 * config.code_features, config.dim, bias=False) \
            if config.absolute_coordinates else None
        self.blocks = nn.ModuleList(
            Block(config.dim, config.n_heads, dropout=config.dropout)
            for _ in range(config.n_blocks)
        )
        self.norm = nn.LayerNorm(config.dim)

    def forward(
        self,
        tokens: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        caches: list[KVCache] | None = None,
        causal: bool = True,
        coordinates: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """Hidden states for ``tokens`` (appended after the cached positions, if any).

        ``coordinates`` (batch, length, code_dim): with ``absolute_coordinates``, each
        token's particle in the jet frame in the code coordinates' units (e.g.
        :meth:`jetfm.models.omnijet.OmniJetBackbone.token_coordinates`); its Fourier
        features, with the code frequencies, are embedded and added. ``ValueError`` when
        they are needed and missing."""
        start = caches[0].length if caches else 0
        x = self.embed(tokens)
        if self.codes is not None:
            x = x + self.code_embed(self.code_table()[tokens])
        if self.absolute_embed is not None:
            if coordinates is None:
                raise ValueError("this GPT embeds each token's absolute coordinates: pass "
                                 "coordinates (OmniJetBackbone.token_coordinates)")
            phase = 2 * torch.pi * coordinates.to(x.dtype) @ self.codes.frequencies.T
            x = x + self.absolute_embed(torch.cat([torch.sin(phase), torch.cos(phase)], -1))
        if self.position is not None:
            positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
            x = x + self.position(positions)[None]
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, padding_mask, causal, caches[i] if caches else None)
            new_caches.append(cache)
        return self.norm(x), new_caches

    def code_table(self) -> torch.Tensor | None:
        """The (vocab_size, 2 code_features) Fourier features of the codes
        (:class:`CodeCoordinates`), or None without them. ``RuntimeError`` when the
        coordinates were never set (all 0): a model built without its tokenizer's codes."""
        if self.codes is None:
            return None
        if not bool(self.codes.coordinates.any()):
            raise RuntimeError("the GPT's code coordinates are not set: build it with "
                               "jetfm.models.omnijet.omnijet_backbone or load it from its file")
        return self.codes()


class NextTokenHead(nn.Module):
    """Generative head: logits over the vocabulary for the next token.

    With ``code_features`` > 0 the logit of token t adds W h . phi(c_t), phi the code
    Fourier features of the backbone (:meth:`GPT.code_table`, passed to :meth:`forward`).
    """

    def __init__(self, dim: int, vocab_size: int, code_features: int = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, vocab_size)
        self.code_out = nn.Linear(dim, 2 * code_features, bias=False) if code_features else None

    @classmethod
    def for_backbone(cls, gpt: GPT) -> NextTokenHead:
        """The head matching ``gpt``'s size, vocabulary and code features."""
        return cls(gpt.config.dim, gpt.config.vocab_size, gpt.config.code_features)

    def forward(self, hidden: torch.Tensor, code_table: torch.Tensor | None = None
                ) -> torch.Tensor:
        logits = self.linear(hidden)
        if self.code_out is not None:
            if code_table is None:
                raise ValueError("this head scores codes by their coordinates: pass the "
                                 "backbone's code_table()")
            logits = logits + self.code_out(hidden) @ code_table.T
        return logits


def next_token_loss(
    logits: torch.Tensor, tokens: torch.Tensor, padding_mask: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy of predicting ``tokens[:, 1:]`` from positions ``:-1`` (real only)."""
    target = tokens[:, 1:].masked_fill(~padding_mask[:, 1:], -100)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1))


def _sample_from(logits: torch.Tensor, temperature: float, top_k: int | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    logits = logits / max(temperature, 1e-8)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


@torch.no_grad()
def sample(
    backbone: GPT,
    head: NextTokenHead,
    n_jets: int,
    max_particles: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    forbid_start: bool = True,
    grammar: torch.Tensor | None = None,
    coordinates_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample token sequences autoregressively from the start token.

    Returns (codes, mask): (n_jets, max_particles) int64 VQ codes (vocabulary token - 1; 0 where
    masked) and a bool mask of the particles generated before each jet's stop token. With
    ``use_cache`` each step feeds only the newest token and reuses keys/values; without it every
    step recomputes the whole prefix (OmniJet-alpha's original sampler), for comparison.
    ``grammar`` (n_rows, vocab_size) bool: the tokens allowed at each step (row
    ``min(step, n_rows - 1)``), e.g. :meth:`jetfm.models.tokenizer.Tokenizer.token_grammar`;
    ``ValueError`` when its width is not the vocabulary's. ``coordinates_fn``: tokens so far
    (n_jets, length) -> their coordinates (n_jets, length, code_dim), for a GPT with
    ``absolute_coordinates``.
    """
    device = next(backbone.parameters()).device
    stop = backbone.config.stop_token
    tokens = torch.full((n_jets, 1), START_TOKEN, dtype=torch.long, device=device)
    finished = torch.zeros(n_jets, dtype=torch.bool, device=device)
    caches = None
    table = backbone.code_table()
    if grammar is not None:
        grammar = grammar.to(device=device, dtype=torch.bool)
        if grammar.ndim != 2 or grammar.shape[1] != backbone.config.vocab_size:
            raise ValueError(f"grammar: shape {tuple(grammar.shape)}, expected (n_rows, "
                             f"{backbone.config.vocab_size})")
    for step in range(max_particles):
        coordinates = None if coordinates_fn is None else coordinates_fn(tokens)
        if use_cache:
            hidden, caches = backbone(tokens[:, -1:], caches=caches, coordinates=None
                                      if coordinates is None else coordinates[:, -1:])
        else:
            hidden, _ = backbone(tokens, coordinates=coordinates)
        logits = head(hidden[:, -1], table)
        if forbid_start:
            logits[:, START_TOKEN] = float("-inf")
        if grammar is not None:
            logits = logits.masked_fill(~grammar[min(step, len(grammar) - 1)], float("-inf"))
        nxt = _sample_from(logits, temperature, top_k, generator).squeeze(1)
        nxt = torch.where(finished, torch.full_like(nxt, stop), nxt)
        finished |= nxt == stop
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if finished.all():
            break
    body = tokens[:, 1:]
    mask = torch.cumsum((body == stop).long(), dim=1) == 0
    codes = torch.where(mask, body - 1, torch.zeros_like(body))
    if codes.shape[1] < max_particles:
        pad = max_particles - codes.shape[1]
        codes = F.pad(codes, (0, pad))
        mask = F.pad(mask, (0, pad))
    return codes, mask
