"""`FeatureCodebook`: a tokenizer quantising each particle directly in its feature space.

The VQ-VAE (:mod:`jetfm.models.vqvae`) encodes a jet's particles with a transformer, quantises
the latent vectors and decodes them with another transformer. This model has no encoder and no
decoder: each particle's standardised features x (OmniJet-alpha's log pT, eta_rel, phi_rel;
:func:`jetfm.data.transforms.omnijet_preprocessing`) are assigned to the nearest of K code
vectors c_k under the weighted distance

    d(x, c_k)^2 = sum_f w_f^2 (x_f - c_kf)^2,       token = argmin_k d(x, c_k),

and a token decodes to its code vector. The code vectors are fitted by mini-batch k-means
(scikit-learn's ``MiniBatchKMeans``, Sculley 2010) on the particles of the training jets,
each weighted by (pT / <pT>)^``pt_power`` so that codes concentrate where the hard particles
are, which set the jet mass and the prong structure.

Two properties follow from the construction (both are tests):

* decoding is a lookup, so decode(encode(decode(encode(x)))) == decode(encode(x)) exactly in
  feature space (a code vector is its own nearest code; :meth:`FeatureCodebook.encode` computes
  the distances in float64);
* every particle is tokenized on its own: a jet's tokens do not depend on the other particles,
  and the decoded multiplicity is the input's (after the preprocessing's cuts).

The price is resolution: K cells tile a 3-dimensional space, so the cell size shrinks only as
K^(-1/3). ``jetfm study tokenizer`` measures it against the VQ-VAE (README).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from jetfm.checks import NON_NEGATIVE, POSITIVE_INT, check_fields

ENCODE_CHUNK = 2048  # particles per distance block in encode (2048 x 8192 float64 = 134 MB)


@dataclass
class CodebookConfig:
    """Size and fit of a :class:`FeatureCodebook`.

    ``codebook_size`` K: tokens; ``pt_power``: fit weight exponent of each particle,
    (pT / <pT>)^pt_power (0: every particle counts the same); ``feature_weights``: w_f of the
    distance, one per feature (None: all 1; e.g. [1, 2, 2] makes angular errors count twice);
    ``max_iter`` / ``batch_size``: passes over the particles and particles per step of the
    mini-batch k-means. ``ValueError`` naming the key for a value out of range.
    """

    n_features: int = 3
    codebook_size: int = 8192
    pt_power: float = 1.0
    feature_weights: list[float] | None = None
    max_iter: int = 30
    batch_size: int = 8192

    def __post_init__(self) -> None:
        check_fields(self, {**dict.fromkeys(("n_features", "codebook_size", "max_iter",
                                             "batch_size"), POSITIVE_INT),
                            "pt_power": NON_NEGATIVE})
        if self.feature_weights is not None:
            weights = self.feature_weights
            if (not isinstance(weights, list | tuple) or len(weights) != self.n_features
                    or not all(isinstance(w, int | float) and not isinstance(w, bool)
                               and np.isfinite(w) and w > 0 for w in weights)):
                raise ValueError(f"feature_weights: {weights!r}; give {self.n_features} "
                                 "finite numbers > 0, one per feature")
            self.feature_weights = [float(w) for w in weights]

    @property
    def weights(self) -> list[float]:
        return self.feature_weights or [1.0] * self.n_features

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureCodebook(nn.Module):
    """K code vectors in standardised feature space; see the module docstring.

    The interface is the VQ-VAE's where a tokenizer uses it: ``config.codebook_size``,
    ``encode(x, mask) -> codes``, ``decode(codes, mask) -> x``.
    """

    def __init__(self, config: CodebookConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("codebook", torch.zeros(config.codebook_size, config.n_features))
        self.register_buffer("weights", torch.tensor(config.weights, dtype=torch.float32))

    def fit(self, x: np.ndarray, pt: np.ndarray, seed: int = 1) -> FeatureCodebook:
        """Fit the code vectors to particles ``x`` (n, n_features) standardised, with pT
        ``pt`` (n,) [GeV], by weighted mini-batch k-means (seeded by ``seed``).

        ``ValueError`` when there are fewer particles than codes, or non-finite inputs.
        """
        from sklearn.cluster import MiniBatchKMeans

        x = np.asarray(x, dtype=np.float64)
        pt = np.asarray(pt, dtype=np.float64)
        c = self.config
        if x.ndim != 2 or x.shape[1] != c.n_features or pt.shape != (len(x),):
            raise ValueError(f"codebook fit: x {x.shape} and pt {pt.shape} must be "
                             f"(n, {c.n_features}) and (n,)")
        if len(x) < c.codebook_size:
            raise ValueError(f"codebook fit: {len(x)} particles for {c.codebook_size} codes; "
                             "give more jets or fewer codes")
        if not (np.isfinite(x).all() and np.isfinite(pt).all() and (pt > 0).all()):
            raise ValueError("codebook fit: non-finite features or pT <= 0 among the particles")
        w = np.asarray(c.weights)
        kmeans = MiniBatchKMeans(c.codebook_size, batch_size=c.batch_size, n_init=1,
                                 max_iter=c.max_iter, random_state=seed)
        kmeans.fit(x * w, sample_weight=(pt / pt.mean()) ** c.pt_power)
        centres = kmeans.cluster_centers_ / w
        self.codebook.copy_(torch.as_tensor(centres, dtype=torch.float32))
        return self

    @torch.no_grad()
    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Codes (batch, n_max) int64 of the particles ``x`` (batch, n_max, n_features); 0
        where ``mask`` (batch, n_max) is False. Distances in float64, so that a code vector
        maps to itself exactly."""
        codes = torch.zeros(mask.shape, dtype=torch.long, device=x.device)
        w = self.weights.double()
        book = self.codebook.double() * w
        book_sq = (book**2).sum(dim=1)
        flat = x[mask].double() * w
        out = torch.empty(len(flat), dtype=torch.long, device=x.device)
        for start in range(0, len(flat), ENCODE_CHUNK):
            chunk = flat[start : start + ENCODE_CHUNK]
            distance = book_sq[None, :] - 2.0 * chunk @ book.T  # + |x|^2, the same for all k
            out[start : start + ENCODE_CHUNK] = distance.argmin(dim=1)
        codes[mask] = out
        return codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Standardised features (batch, n_max, n_features) of ``codes``; 0 where masked."""
        return self.codebook[codes] * mask[..., None]
