"""`Tokenizer`: jets <-> token sequences, i.e. a trained quantising model plus its preprocessing.

The model is a VQ-VAE (:class:`jetfm.models.vqvae.VQVAE`, OmniJet-alpha's) or a feature-space
codebook (:class:`jetfm.models.codebook.FeatureCodebook`); the tokenizer file records which
(the ``vqvae`` or ``codebook`` key of its metadata).

Token conventions (OmniJet-alpha): a jet of n particles (pT-ordered) becomes the sequence
``[0, c_1 + 1, ..., c_n + 1, K + 1]`` with K the codebook size: 0 = start, K + 1 = stop,
padded with zeros to ``n_max + 2`` under a mask. Decoded jets are massless particles around a
jet axis at eta = phi = 0 (see :mod:`jetfm.data.transforms`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch

from jetfm.checkpoint import load_model, prefixed, save_model
from jetfm.data.batch import JetBatch, SelectionReport
from jetfm.data.transforms import FRAME_FEATURES, Preprocessing
from jetfm.models.codebook import CodebookConfig, FeatureCodebook
from jetfm.models.vqvae import VQVAE, VQVAEConfig
from jetfm.physics.observables import jet_observables

log = logging.getLogger("jetfm.tokenizer")

# Limits beyond which a tokenizer's resolution (``Tokenizer.resolution``) counts as poor.
# Measured good values, README (the VQ-VAE demo, preset omnijet_cpu_vqvae, 1024 codes, 64
# constituents): jet-mass error -4.4 % +- 8.0 %, eta_rel/phi_rel errors 0.033/0.034, all codes
# used (perplexity 877). The limits leave a factor 2-3 of headroom over those, and catch what
# an under-trained tokenizer gives (2 epochs on 400 jets: jet mass -86 %).
RESOLUTION_LIMITS: dict[str, tuple[str, float, str]] = {
    # key: (kind, limit, good value): "abs_above" warns when |value| > limit, "below" when
    # value < limit
    "jet_mass_rel_error_mean": ("abs_above", 0.10, "-0.044"),
    "jet_mass_rel_error_std": ("abs_above", 0.20, "0.080"),
    "eta_rel_abs_error_mean": ("abs_above", 0.10, "0.033"),
    "phi_rel_abs_error_mean": ("abs_above", 0.10, "0.034"),
    "codebook_utilisation": ("below", 0.10, "1.0"),
}


TOKEN_MODELS: dict[str, tuple[type, type]] = {
    # metadata key: (model, its config)
    "vqvae": (VQVAE, VQVAEConfig),
    "codebook": (FeatureCodebook, CodebookConfig),
}


def token_model_kind(model: VQVAE | FeatureCodebook) -> str:
    """The metadata key of a tokenizer model (``vqvae`` or ``codebook``)."""
    for key, (cls, _) in TOKEN_MODELS.items():
        if isinstance(model, cls):
            return key
    raise TypeError(f"not a tokenizer model: {type(model).__name__}")


def token_model_config(meta: dict[str, Any]) -> tuple[str, VQVAEConfig | CodebookConfig]:
    """(kind, configuration) of the model a tokenizer's metadata describes, without building
    it (no random numbers drawn); ``ValueError`` unless ``meta`` has exactly one of the keys
    ``vqvae``, ``codebook``."""
    kinds = [key for key in TOKEN_MODELS if key in meta]
    if len(kinds) != 1:
        raise ValueError(f"tokenizer metadata: expected one of the keys {list(TOKEN_MODELS)}, "
                         f"got {sorted(meta)}")
    return kinds[0], TOKEN_MODELS[kinds[0]][1](**meta[kinds[0]])


def build_token_model(meta: dict[str, Any]) -> VQVAE | FeatureCodebook:
    """The (untrained) model a tokenizer's metadata describes (:func:`token_model_config`)."""
    kind, config = token_model_config(meta)
    return TOKEN_MODELS[kind][0](config)


class Tokenizer:
    """A quantising model (VQ-VAE or feature codebook) with the preprocessing it was trained
    on."""

    def __init__(self, model: VQVAE | FeatureCodebook, preprocessing: Preprocessing) -> None:
        self.model = model.eval()
        self.kind = token_model_kind(model)
        self.preprocessing = preprocessing

    @property
    def codebook_size(self) -> int:
        return self.model.config.codebook_size

    @property
    def vocab_size(self) -> int:
        """Codes + start + stop."""
        return self.codebook_size + 2

    @property
    def stop_token(self) -> int:
        return self.codebook_size + 1

    @property
    def n_max(self) -> int:
        return self.preprocessing.n_max

    @property
    def fingerprint(self) -> str:
        """Short hash of weights and configuration: tokenized datasets record it."""
        h = hashlib.sha256(json.dumps(self.meta(), sort_keys=True).encode())
        for key, value in sorted(self.model.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]

    def _device(self) -> torch.device:
        return self.model.codebook.device if self.kind == "codebook" else next(
            self.model.parameters()).device

    def encode_values(self, values: np.ndarray, mask: np.ndarray, batch_size: int = 1024
                      ) -> np.ndarray:
        """Codes (n_jets, n_max) int64 of standardised particle features ``values``
        (n_jets, n_max, n_features) under ``mask`` (n_jets, n_max); 0 where masked."""
        codes = np.zeros(mask.shape, dtype=np.int64)
        device = self._device()
        for start in range(0, len(values), batch_size):
            x = torch.as_tensor(values[start : start + batch_size], device=device)
            m = torch.as_tensor(mask[start : start + batch_size], device=device)
            if self.preprocessing.subjet_frame:
                c = self._encode_in_frame(x, m)
            else:
                c = self.model.encode(x, m)
            codes[start : start + batch_size] = c.cpu().numpy()
        return codes

    def _encode_in_frame(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Subjet frame: codes level by level (Preprocessing.frame_levels). Particles without
        a reference first; then each particle given relative to another is encoded against
        its reference's *decoded* absolute position, so that decoding puts it where it was
        (its own quantisation error only) instead of moving a whole subjet with its leader's
        error. Each particle is encoded once. Decoded values re-encode to themselves, so the
        token round trip stays exact."""
        prep = self.preprocessing
        x_np, m_np = x.cpu().numpy(), m.cpu().numpy()
        levels = prep.frame_levels(prep.subjet_labels(x_np), m_np)
        has_reference = np.logical_or.reduce([dependent for dependent, _ in levels])
        codes = self.model.encode(x, m & torch.as_tensor(~has_reference, device=x.device))
        truth = prep.absolute(x_np, m_np)
        columns = [prep.names.index(name) for name in FRAME_FEATURES]
        for dependent, reference in levels:
            decoded = prep.absolute(self.model.decode(codes, m).cpu().numpy(), m_np)
            ref = np.take_along_axis(decoded[..., columns], reference[..., None], axis=1)
            offset = truth.copy()
            offset[..., columns] -= ref
            target = x_np.copy()
            target[..., columns] = np.where(dependent[..., None],
                                            prep.standardise(offset)[..., columns],
                                            x_np[..., columns])
            chosen = torch.as_tensor(dependent, device=x.device)
            again = self.model.encode(torch.as_tensor(target, dtype=x.dtype, device=x.device),
                                      m & chosen)
            codes = torch.where(chosen, again, codes)
        return codes

    def decode_values(self, codes: np.ndarray, mask: np.ndarray, batch_size: int = 1024
                      ) -> np.ndarray:
        """Standardised particle features (n_jets, n_max, n_features) float32 of ``codes``
        (n_jets, n_max) under ``mask``; 0 where masked. ``ValueError`` when shapes differ or
        an unmasked code is outside [0, codebook_size) (codes, not GPT tokens: token = code +
        1)."""
        codes, mask = np.asarray(codes), np.asarray(mask, dtype=bool)
        if codes.shape != mask.shape or codes.ndim != 2:
            raise ValueError(f"codes {codes.shape} and mask {mask.shape}: give two "
                             f"(n_jets, n_max) arrays of one shape")
        if mask.any() and not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"codes must be integers, got {codes.dtype}")
        bad = mask & ((codes < 0) | (codes >= self.codebook_size))
        if bad.any():
            jet, slot = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(f"{int(bad.sum())} code(s) outside [0, {self.codebook_size}) "
                             f"(first: {int(codes[jet, slot])} at jet {jet}, particle {slot})")
        values = np.zeros((*codes.shape, len(self.preprocessing.features)), dtype=np.float32)
        device = self._device()
        for start in range(0, len(codes), batch_size):
            c = torch.as_tensor(codes[start : start + batch_size], device=device)
            m = torch.as_tensor(mask[start : start + batch_size], device=device)
            values[start : start + batch_size] = self.model.decode(c, m).cpu().numpy()
        return values

    def encode(
        self, batch: JetBatch, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray, list[SelectionReport]]:
        """Codes (n_jets, n_max) int64 and mask; reports of the preprocessing cuts. An empty
        batch gives (0, n_max) arrays."""
        if len(batch) == 0:
            empty = np.zeros((0, self.n_max))
            return empty.astype(np.int64), empty.astype(bool), []
        values, mask, reports = self.preprocessing.apply(batch)
        return self.encode_values(values, mask, batch_size), mask, reports

    def decode(
        self, codes: np.ndarray, mask: np.ndarray, batch_size: int = 1024, **batch_kwargs: Any
    ) -> JetBatch:
        """Jets from codes (n_jets, n_max) and mask."""
        return self.preprocessing.invert(self.decode_values(codes, mask, batch_size), mask,
                                         **batch_kwargs)

    def reconstruct(self, jets: JetBatch) -> JetBatch:
        """``jets`` encoded and decoded again (labels kept): what the tokens keep of them. The
        best a generator over these tokens can do; compare with :meth:`in_frame` of the same
        jets or with independent truth (OmniJet-alpha, arXiv:2403.05618, Fig. 3)."""
        codes, mask, _ = self.encode(jets)
        return self.decode(codes, mask, label=jets.label)

    def in_frame(self, jets: JetBatch) -> JetBatch:
        """``jets`` after this tokenizer's preprocessing and its inverse (particle cuts,
        ``n_max`` truncation, massless particles around the jet axis): the frame that jets
        decoded from its tokens live in, so truth and generated jets compare like for like."""
        values, mask, _ = self.preprocessing.apply(jets)
        return self.preprocessing.invert(values, mask, label=jets.label)

    def token_coordinates(self, tokens: np.ndarray) -> np.ndarray:
        """Vocabulary tokens (n, length) -> each token's particle in the jet frame as
        standardised features (n, length, n_features) float32 (with ``subjet_frame`` the
        angles made absolute by :meth:`Preprocessing.absolute`), 0 for the start, stop and
        padding tokens. Codebook tokenizers only (``ValueError`` otherwise): a VQ-VAE decodes
        a jet's codes together."""
        if self.kind != "codebook":
            raise ValueError("token coordinates need a codebook tokenizer (a VQ-VAE decodes a "
                             "jet's codes together)")
        tokens = np.asarray(tokens)
        valid = (tokens >= 1) & (tokens <= self.codebook_size)
        values = self.decode_values(np.where(valid, tokens - 1, 0), valid)
        absolute = self.preprocessing.standardise(self.preprocessing.absolute(values, valid))
        return np.where(valid[..., None], absolute, 0.0).astype(np.float32)

    def token_grammar(self) -> torch.Tensor | None:
        """The tokens a valid sequence allows at each step, or None (any code, any time).

        Subjet frame (N subjets): step k < N allows only the codes labelled k (the leader of
        subjet k; the sequences this tokenizer writes always start with the leaders); later
        steps allow the follower codes (labels N ... 2N - 1) and the stop token. A jet with
        fewer than N particles (after the cuts) has fewer leaders and cannot be sampled under
        it; count them in the data (rare for top and QCD jets with pT > 0.1 GeV particles).
        Returns (N + 1, vocab_size) bool; ``ValueError`` when a leader label k has no code:
        such a codebook cannot be sampled (follower codes may be missing: stop is allowed)."""
        prep = self.preprocessing
        if not prep.subjet_frame:
            return None
        labels = torch.as_tensor(prep.subjet_labels(self.model.codebook.detach().cpu().numpy()))
        n = prep.subjet_order
        grammar = torch.zeros(n + 1, self.vocab_size, dtype=torch.bool)
        for k in range(n):
            grammar[k, 1:-1] = labels == k
        grammar[n, 1:-1] = labels >= n
        missing = [k for k in range(n) if not grammar[k].any()]  # followers may be absent
        if missing:
            raise ValueError(
                f"this codebook ({self.codebook_size} codes) has no code for the leader(s) of "
                f"subjet(s) {missing} (subjet labels {missing}), so no jet can be sampled under "
                f"its grammar: fit it on jets with at least {n} particles and with "
                f"codebook_size >= {n + 1}")
        grammar[n, self.stop_token] = True
        return grammar

    def to_sequences(self, codes: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[start, codes + 1, stop] sequences (n_jets, n_max + 2) and their mask."""
        n = len(codes)
        counts = mask.sum(axis=1)
        tokens = np.zeros((n, codes.shape[1] + 2), dtype=np.int64)
        tokens[:, 1:-1] = np.where(mask, codes + 1, 0)
        tokens[np.arange(n), counts + 1] = self.stop_token
        seq_mask = np.arange(tokens.shape[1])[None, :] < (counts + 2)[:, None]
        return tokens, seq_mask

    def resolution(self, jets: JetBatch) -> dict[str, float | None]:
        """Reconstruction quality on ``jets`` (held-out ones: the training jets flatter it).

        Keys: ``pt_rel_error_median`` and ``pt_rel_error_68_halfwidth`` (particle pT,
        (reco - true) / true: median and half-width of the central 68 %);
        ``{eta,phi}_rel_abs_error_mean`` (mean absolute error of the coordinates relative to
        the jet axis; phi wrapped); ``jet_mass_rel_error_{mean,std}``; ``tau32_abs_error_mean``;
        ``codebook_utilisation`` (fraction of codes used by ``jets``) and
        ``codebook_perplexity`` (exp of the entropy of the code frequencies); ``codebook_size``.
        The jet-level numbers compare decoded jets with the same jets after this tokenizer's
        preprocessing (cuts, truncation, massless constituents), so they measure the tokenizer
        alone; jets whose preprocessed mass is 0 (one particle) are left out of the mass error,
        jets without tau32 (< 3 particles) out of the tau32 error. ``n_jets``, ``n_jets_massive``
        and ``n_jets_tau32`` count the jets each figure is taken over; a figure over no jet
        (e.g. the mass error when every jet has one particle) is None, never NaN.

        Raises ``ValueError`` when no particle of ``jets`` passes the preprocessing.
        """
        values, mask, _ = self.preprocessing.apply(jets)
        if not mask.any():
            raise ValueError("tokenizer resolution: no particle passes the preprocessing")
        codes, _, _ = self.encode(jets)
        decoded = self.decode(codes, mask)
        truth = self.preprocessing.invert(values, mask)
        pt_true = ak.to_numpy(ak.flatten(truth.pt))
        pt_reco = ak.to_numpy(ak.flatten(decoded.pt))
        q16, q50, q84 = np.percentile((pt_reco - pt_true) / pt_true, [16, 50, 84])
        out: dict[str, float] = {
            "pt_rel_error_median": float(q50),
            "pt_rel_error_68_halfwidth": float(0.5 * (q84 - q16)),
        }
        for name in ("eta", "phi"):
            t = ak.to_numpy(ak.flatten(getattr(truth, name)))
            r = ak.to_numpy(ak.flatten(getattr(decoded, name)))
            diff = r - t if name == "eta" else np.angle(np.exp(1j * (r - t)))
            out[f"{name}_rel_abs_error_mean"] = float(np.mean(np.abs(diff)))
        obs_t, obs_r = jet_observables(truth), jet_observables(decoded)
        massive = obs_t["mass"] > 0
        rel_mass = (obs_r["mass"][massive] - obs_t["mass"][massive]) / obs_t["mass"][massive]
        rel_mass = rel_mass[np.isfinite(rel_mass)]
        tau32 = np.abs(obs_r["tau32"] - obs_t["tau32"])
        tau32 = tau32[np.isfinite(tau32)]
        out["jet_mass_rel_error_mean"] = float(np.mean(rel_mass)) if len(rel_mass) else None
        out["jet_mass_rel_error_std"] = float(np.std(rel_mass)) if len(rel_mass) else None
        out["tau32_abs_error_mean"] = float(np.mean(tau32)) if len(tau32) else None
        out["n_jets"] = len(obs_t["mass"])
        out["n_jets_massive"] = len(rel_mass)
        out["n_jets_tau32"] = len(tau32)
        used = np.bincount(codes[mask], minlength=self.codebook_size)
        p = used[used > 0] / used.sum()
        out["codebook_utilisation"] = float((used > 0).mean())
        out["codebook_perplexity"] = float(np.exp(-(p * np.log(p)).sum()))
        out["codebook_size"] = self.codebook_size
        return out

    def meta(self) -> dict[str, Any]:
        return {
            "kind": "tokenizer",
            self.kind: self.model.config.to_dict(),
            "preprocessing": self.preprocessing.to_dict(),
        }

    def save(self, path: str | Path) -> Path:
        """safetensors file with the model's weights and its configuration + preprocessing."""
        tensors = {f"{self.kind}.{k}": v for k, v in self.model.state_dict().items()}
        return save_model(path, tensors, self.meta())

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Tokenizer:
        tensors, meta = load_model(path, device)
        if meta.get("kind") != "tokenizer":
            raise ValueError(f"{path}: not a tokenizer file (kind={meta.get('kind')!r})")
        model = build_token_model(meta)
        return cls.from_state(prefixed(tensors, token_model_kind(model)), meta)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Tokenizer:
        """The tokenizer of metadata ``meta`` (:meth:`meta`) with the model weights ``state``."""
        model = build_token_model(meta)
        model.load_state_dict(state)
        return cls(model, Preprocessing.from_dict(meta["preprocessing"]))


def _undefined(resolution: dict[str, float | None], key: str) -> str:
    """Why figure ``key`` of a resolution is None: the jets it is taken over."""
    n_jets = resolution.get("n_jets", "?")
    if key.startswith("jet_mass"):
        return f"no jet with mass > 0 among {n_jets} jets"
    return f"no jet with >= 3 particles among {n_jets} jets"


def resolution_warnings(resolution: dict[str, float | None]) -> list[str]:
    """One message per figure of ``resolution`` (:meth:`Tokenizer.resolution`) beyond its
    :data:`RESOLUTION_LIMITS` entry, naming the figure, its value, the limit and a good value;
    a NaN figure counts as beyond; a None figure (no jet to measure it on) gets a message
    saying it was not measured, and why."""
    messages = []
    for key, (kind, limit, good) in RESOLUTION_LIMITS.items():
        if resolution[key] is None:
            messages.append(f"tokenizer resolution: {key} not measured "
                            f"({_undefined(resolution, key)})")
            continue
        value = float(resolution[key])
        poor = abs(value) > limit if kind == "abs_above" else value < limit
        if poor or not np.isfinite(value):
            bound = f"|value| > {limit:g}" if kind == "abs_above" else f"< {limit:g}"
            messages.append(f"poor tokenizer: {key} = {value:.3g} ({bound}; a well trained "
                            f"tokenizer gives {good}): train longer or on more jets")
    return messages


def format_resolution(resolution: dict[str, float | None]) -> str:
    """A few lines summarising :meth:`Tokenizer.resolution`; a figure measured on no jet is
    "n/a" with the reason."""
    r = resolution
    mass = (f"n/a ({_undefined(r, 'jet_mass_rel_error_mean')})"
            if r["jet_mass_rel_error_mean"] is None else
            f"{100 * r['jet_mass_rel_error_mean']:+.1f} % "
            f"+- {100 * r['jet_mass_rel_error_std']:.1f} % (mean +- std)")
    tau32 = (f"n/a ({_undefined(r, 'tau32_abs_error_mean')})"
             if r["tau32_abs_error_mean"] is None else f"{r['tau32_abs_error_mean']:.3f}")
    return "\n".join([
        f"jet mass: relative error {mass}; tau32 mean abs error {tau32}",
        f"particles: pT relative error median {100 * r['pt_rel_error_median']:+.1f} %, "
        f"68 % half-width {100 * r['pt_rel_error_68_halfwidth']:.1f} %; mean abs error "
        f"eta_rel {r['eta_rel_abs_error_mean']:.3f}, phi_rel {r['phi_rel_abs_error_mean']:.3f}",
        f"codebook: {100 * r['codebook_utilisation']:.0f} % of {int(r['codebook_size'])} codes "
        f"used, perplexity {r['codebook_perplexity']:.0f}",
    ])


def check_fingerprint(expected: str, found: str | None, what: str) -> None:
    """Raise ValueError unless ``found`` (the tokenizer fingerprint a backbone or token file
    records) is ``expected`` (that of the tokenizer in use); the message names both and
    ``what`` (the backbone, checkpoint or file)."""
    if found is None:
        raise ValueError(f"{what} records no tokenizer fingerprint (made by an older jetfm?), "
                         f"so it cannot be checked against the tokenizer in use, {expected}")
    if found != expected:
        raise ValueError(f"{what} was made with tokenizer {found}, but the tokenizer in use is "
                         f"{expected}: a backbone only understands its own tokenizer's tokens")
