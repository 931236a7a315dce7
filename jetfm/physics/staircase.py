"""Jet-multiplicity (staircase) scaling and the transverse-momentum-balance stop posterior.

Source: Spinner thesis, chapter 5 (JetGPT for Z + n jets; also Butter et al.,
arXiv:2412.12074). Event format (numpy, float64): ``muons`` (N, M, 4) and ``jets`` (N, J, 4)
with columns ``(pT [GeV], eta, phi [rad], m [GeV])``, pT-descending, jet rows ``>= n_jets``
zero; ``n_jets`` (N,) int. M = 2 for Z -> mu mu; any number of hard particles is accepted.
"The first k jets" are the first k jet rows, i.e. the k hardest.

* :func:`staircase_ratios`: exclusive jet counts N_n and ratios R_(n+1)/n = N_(n+1)/N_n
  (thesis Eq. (5.2); staircase scaling Eq. (5.4) is R = const), with Gaussian-propagated
  statistical errors (thesis Fig. 5.1 caption).
* :func:`vector_sum_pt`, :func:`pt_balance_widths`, :func:`fit_pt_balance`: the widths
  sigma(n; k) of p_(x,Sigma), the x component of the vector sum of the muons and the first k
  jets in n-jet events (thesis Fig. 5.10), and their linear model, thesis Eq. (5.27)::

      sigma(n; k) = (n - k) m_k + sigma(k; k),  sigma(k; k) = a k + b,  1/m_k = c k + d

  (thesis: a = 3.14 GeV, b = 9.97 GeV, c = 0.0088 / GeV, d = 0.056 / GeV for its MadGraph
  sample; jetfm fits its own).
* :func:`stop_posterior`, :func:`override_label`: the posterior that an event whose first k
  jets are seen stops at k, thesis Eqs. (5.26) and (5.28), with the staircase prior of
  Sec. 5.2.4, and the override label y = 1 - p_fit(stop at n_max | x_(1:n_max)) of Eq. (5.30).

Reference code: heidelberg-hepml/jetgpt-splittings ``src/eventgen/jetgptphysicsloss.py``
(file version 04971df) builds the same posterior from a table of measured widths
(``ZMUMU_TABLE``, rows n = 0..5, columns k) with a uniform prior; the thesis text uses the
fitted Eq. (5.27), extrapolated to n = 8, and a staircase prior, as here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "PtBalanceFit",
    "fit_pt_balance",
    "override_label",
    "pt_balance_widths",
    "staircase_prior",
    "staircase_ratios",
    "stop_posterior",
    "vector_sum_pt",
]

#: Staircase ratio and cap of the thesis' posterior prior (Sec. 5.2.4: "we take
#: R_(n+1)/n = 0.225 and cap the probabilities for n < 3").
SEED_RATIO = 0.225
SEED_CAP_BELOW = 3
#: Highest multiplicity of the thesis' override posterior (Sec. 5.2.4: "up to 8 jets").
SEED_N_EXTRAPOLATE = 8


# ----------------------------------------------------------------------------- input checks
def _int_array(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must be integer-valued")
        arr = arr.astype(np.int64)
    return arr.astype(np.int64, copy=False)


def _n_jets_array(n_jets: object) -> np.ndarray:
    n = _int_array(n_jets, "n_jets")
    if n.ndim != 1:
        raise ValueError(f"n_jets must have shape (N,), got {n.shape}")
    if n.size and n.min() < 0:
        raise ValueError(f"n_jets must be >= 0; {int(np.sum(n < 0))} events have n_jets < 0")
    return n


def _check_events(
    muons: np.ndarray, jets: np.ndarray, n_jets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    muons = np.asarray(muons, dtype=np.float64)
    jets = np.asarray(jets, dtype=np.float64)
    n = _n_jets_array(n_jets)
    if muons.ndim != 3 or muons.shape[2] != 4:
        raise ValueError(f"muons must have shape (N, M, 4) (pt, eta, phi, m), got {muons.shape}")
    if jets.ndim != 3 or jets.shape[2] != 4:
        raise ValueError(f"jets must have shape (N, J, 4) (pt, eta, phi, m), got {jets.shape}")
    if not (muons.shape[0] == jets.shape[0] == n.shape[0]):
        raise ValueError(
            f"inconsistent event counts: muons {muons.shape[0]}, jets {jets.shape[0]}, "
            f"n_jets {n.shape[0]}"
        )
    if n.size and n.max() > jets.shape[1]:
        raise ValueError(
            f"n_jets exceeds the {jets.shape[1]} jet rows in {int(np.sum(n > jets.shape[1]))} "
            "events"
        )
    for name, arr in (("muons", muons), ("jets", jets)):
        bad = ~np.isfinite(arr[..., [0, 2]]).all(axis=(1, 2))
        if bad.any():
            raise ValueError(f"{name}: non-finite pt or phi in {int(bad.sum())} events")
    return muons, jets, n


# -------------------------------------------------------------------------- staircase ratios
def staircase_ratios(
    n_jets: np.ndarray, n_max: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exclusive jet counts and staircase ratios R_(n+1)/n with statistical errors.

    Args:
        n_jets: (N,) jet multiplicity per event (integers >= 0).
        n_max: highest multiplicity shown (default ``n_jets.max()``); events with more jets lie
            outside the returned range and enter no count (a histogram range, not a cut).

    Returns:
        ``counts`` (n_max + 1,) int64, N_n for n = 0..n_max;
        ``ratios`` (n_max,) float64, R_(n+1)/n = N_(n+1) / N_n (thesis Eq. (5.2));
        ``errors`` (n_max,) float64, Gaussian-propagated Poisson errors
        R sqrt(1/N_(n+1) + 1/N_n) (thesis Fig. 5.1 caption).
        Ratio and error are NaN where N_n = 0 or N_(n+1) = 0 (the Gaussian error is undefined
        there); no division warning is emitted.

    Raises:
        ValueError: n_jets not 1-D non-negative integers, empty with ``n_max=None``, or
            ``n_max < 0``.
    """
    n = _n_jets_array(n_jets)
    if n_max is None:
        if n.size == 0:
            raise ValueError("staircase_ratios: n_jets is empty and n_max is not given")
        n_max = int(n.max())
    if int(n_max) < 0 or int(n_max) != n_max:
        raise ValueError(f"staircase_ratios: n_max must be an integer >= 0, got {n_max}")
    n_max = int(n_max)
    counts = np.bincount(n[n <= n_max], minlength=n_max + 1).astype(np.int64)
    lo = counts[:-1].astype(np.float64)
    hi = counts[1:].astype(np.float64)
    ok = (lo > 0) & (hi > 0)
    ratios = np.full(n_max, np.nan)
    errors = np.full(n_max, np.nan)
    np.divide(hi, lo, out=ratios, where=ok)
    rel = np.sqrt(
        np.divide(1.0, hi, out=np.zeros(n_max), where=ok)
        + np.divide(1.0, lo, out=np.zeros(n_max), where=ok)
    )
    errors[ok] = ratios[ok] * rel[ok]
    return counts, ratios, errors


# --------------------------------------------------------------------------- pT balance
def _cumulative_pxy(
    muons: np.ndarray, jets: np.ndarray, n_jets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N, J + 1) px, py of the muons plus the first k jets, k = 0..J (jets >= n_jets masked)."""
    real = np.arange(jets.shape[1])[None, :] < n_jets[:, None]
    jpt = np.where(real, jets[..., 0], 0.0)
    jphi = jets[..., 2]
    px0 = np.sum(muons[..., 0] * np.cos(muons[..., 2]), axis=1)
    py0 = np.sum(muons[..., 0] * np.sin(muons[..., 2]), axis=1)
    zeros = np.zeros((jets.shape[0], 1))
    cpx = px0[:, None] + np.concatenate([zeros, np.cumsum(jpt * np.cos(jphi), axis=1)], axis=1)
    cpy = py0[:, None] + np.concatenate([zeros, np.cumsum(jpt * np.sin(jphi), axis=1)], axis=1)
    return cpx, cpy


def vector_sum_pt(
    muons: np.ndarray,
    jets: np.ndarray,
    n_jets: np.ndarray,
    k: int | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """p_x and p_y [GeV] of the vector sum of the muons and the first k jets of each event.

    p_(x,Sigma) = sum_i pT_i cos(phi_i), p_(y,Sigma) = sum_i pT_i sin(phi_i) over the muons and
    jet rows 0..k-1 (thesis Sec. 5.2.4; with all jets, the p_(T,Sigma) of Sec. 5.2.1). Jet rows
    ``>= n_jets`` are ignored whatever they hold.

    Args:
        muons: (N, M, 4), jets: (N, J, 4) (pt, eta, phi, m); n_jets: (N,) int.
        k: None (all jets of each event), an int, or an (N,) int array; 0 <= k <= n_jets.

    Returns:
        ``(px, py)``, each (N,) float64.

    Raises:
        ValueError: inconsistent shapes, n_jets > J, non-finite pt/phi, k < 0 or k > n_jets.
    """
    muons, jets, n = _check_events(muons, jets, n_jets)
    if k is None:
        kk = n
    else:
        kk = _int_array(k, "k")
        if kk.ndim not in (0, 1) or (kk.ndim == 1 and kk.shape != n.shape):
            raise ValueError(f"k must be an int or have shape {n.shape}, got {kk.shape}")
        kk = np.broadcast_to(kk, n.shape)
        if np.any(kk < 0):
            raise ValueError(f"k must be >= 0; {int(np.sum(kk < 0))} events have k < 0")
        if np.any(kk > n):
            raise ValueError(
                f"k exceeds n_jets in {int(np.sum(kk > n))} events (an event has no k-th jet)"
            )
    cpx, cpy = _cumulative_pxy(muons, jets, n)
    rows = np.arange(n.shape[0])
    return cpx[rows, kk], cpy[rows, kk]


def pt_balance_widths(
    muons: np.ndarray, jets: np.ndarray, n_jets: np.ndarray, n_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """Widths sigma(n; k) of p_(x,Sigma) (muons + first k jets) in events with exactly n jets.

    Thesis Fig. 5.10 and Eq. (5.27). sigma is the sample standard deviation (``ddof=1``, mean
    not assumed 0) of p_(x,Sigma) over the events with ``n_jets == n``; events with more than
    n_max jets are not used.

    Args:
        muons, jets, n_jets: the event arrays (module docstring).
        n_max: highest multiplicity (>= 0).

    Returns:
        ``widths`` (n_max + 1, n_max + 1) float64 [GeV], ``widths[n, k]`` for 0 <= k <= n,
        NaN for k > n and where fewer than 2 events have n jets;
        ``counts`` (n_max + 1,) int64, number of events with n jets.

    Raises:
        ValueError: as :func:`vector_sum_pt`, or n_max < 0.
    """
    muons, jets, n = _check_events(muons, jets, n_jets)
    if int(n_max) != n_max or n_max < 0:
        raise ValueError(f"pt_balance_widths: n_max must be an integer >= 0, got {n_max}")
    n_max = int(n_max)
    cpx, _ = _cumulative_pxy(muons, jets, n)
    widths = np.full((n_max + 1, n_max + 1), np.nan)
    counts = np.zeros(n_max + 1, dtype=np.int64)
    for nj in range(n_max + 1):
        sel = n == nj
        counts[nj] = int(sel.sum())
        if counts[nj] >= 2:  # nj <= J holds, since n_jets <= J is checked
            widths[nj, : nj + 1] = np.std(cpx[sel, : nj + 1], axis=0, ddof=1)
    return widths, counts


@dataclass
class PtBalanceFit:
    """Linear model of the p_(x,Sigma) widths, thesis Eq. (5.27) [GeV]::

        sigma(n; k) = (n - k) m_k + sigma(k; k),  sigma(k; k) = a k + b,  1/m_k = c k + d

    Construct directly (e.g. the thesis' ``PtBalanceFit(3.14, 9.97, 0.0088, 0.056)``) or with
    :func:`fit_pt_balance`, which also fills the errors and the points used.

    Attributes:
        a, b: complete-event width line [GeV]; c, d: inverse slope line [1/GeV].
        a_err, b_err, c_err, d_err: 1-sigma fit errors (NaN when not fitted).
        k_complete: k values of the complete-event points (k = n) used for a, b.
        k_slope, slopes, slope_errs: k values, measured m_k [GeV] and errors used for c, d.
        n_fit_complete, n_fit_slope, weighted: the fit settings (-1/None when not fitted).
    """

    a: float
    b: float
    c: float
    d: float
    a_err: float = float("nan")
    b_err: float = float("nan")
    c_err: float = float("nan")
    d_err: float = float("nan")
    k_complete: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    k_slope: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slopes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slope_errs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_fit_complete: int = -1
    n_fit_slope: int = -1
    weighted: bool | None = None

    def slope(self, k: int | np.ndarray) -> np.ndarray:
        """m_k = 1 / (c k + d) [GeV per missing jet]; ValueError where c k + d <= 0."""
        kk = _int_array(k, "k")
        inv = self.c * kk + self.d
        if np.any(inv <= 0):
            raise ValueError(
                f"PtBalanceFit: 1/m_k = c k + d <= 0 for k = {np.unique(kk[inv <= 0]).tolist()} "
                f"(c={self.c}, d={self.d}); the slope model does not hold there"
            )
        return 1.0 / inv

    def sigma(self, n: int | np.ndarray, k: int | np.ndarray) -> np.ndarray:
        """sigma(n; k) [GeV], vectorised with numpy broadcasting of n and k.

        Raises:
            ValueError: non-integer n or k, k < 0, n < k, c k + d <= 0, or a width <= 0.
        """
        nn = _int_array(n, "n")
        kk = _int_array(k, "k")
        if np.any(kk < 0):
            raise ValueError("PtBalanceFit.sigma: k must be >= 0")
        nb, kb = np.broadcast_arrays(nn, kk)
        if np.any(nb < kb):
            raise ValueError("PtBalanceFit.sigma: needs n >= k (k jets seen out of n)")
        out = (nb - kb) * self.slope(kb) + self.a * kb + self.b
        if np.any(out <= 0):
            raise ValueError(
                f"PtBalanceFit.sigma: non-positive width for some (n, k) "
                f"(a={self.a}, b={self.b}, c={self.c}, d={self.d})"
            )
        return out


def _line_fit(
    x: np.ndarray, y: np.ndarray, var: np.ndarray | None
) -> tuple[float, float, np.ndarray]:
    """Least-squares line y = slope x + intercept; returns (slope, intercept, cov 2x2).

    ``var`` given: weights 1/var, covariance from the stated variances (not rescaled).
    ``var`` None: unweighted, covariance scaled by the residual variance (NaN for 2 points).
    """
    design = np.stack([x, np.ones_like(x)], axis=1)
    w = np.ones_like(y) if var is None else 1.0 / var
    normal = design.T @ (design * w[:, None])
    cov = np.linalg.inv(normal)
    slope, intercept = cov @ (design.T @ (w * y))
    if var is None:
        dof = len(x) - 2
        resid = y - (slope * x + intercept)
        scale = float(resid @ resid) / dof if dof > 0 else float("nan")
        cov = cov * scale
    return float(slope), float(intercept), cov


def fit_pt_balance(
    widths: np.ndarray,
    counts: np.ndarray,
    n_fit_complete: int = 6,
    n_fit_slope: int = 5,
    weighted: bool = True,
) -> PtBalanceFit:
    """Fit thesis Eq. (5.27) to the widths of :func:`pt_balance_widths`.

    Procedure (thesis Sec. 5.2.4 and Fig. 5.10):

    1. ``sigma(k; k) = a k + b`` through the complete-event points (k = n) for
       n = 0..n_fit_complete (thesis: "fit from the bottom row of filled circles up to n = 6").
    2. For each k, m_k = slope of a straight line (free intercept) in n through the incomplete
       points sigma(n; k), k < n <= n_fit_slope (thesis: "the gradients m_k of lines with
       constant k are fit using events up to n = 5"); needs >= 2 such points, so
       k <= n_fit_slope - 2.
    3. ``1/m_k = c k + d`` through those m_k.

    Using the incomplete points only, with a free intercept, was checked against the
    reference's measured widths (``ZMUMU_TABLE`` of jetgpt-splittings ``jetgptphysicsloss.py``,
    n <= 5): it gives c = 0.0093, d = 0.057, close to the thesis' 0.0088, 0.056 (see
    ``tests/test_staircase.py``).

    Weights (``weighted=True``): the variance of a Gaussian sample standard deviation,
    sigma^2 / (2 (N_n - 1)), for steps 1 and 2; for step 3 the propagated
    var(1/m_k) = var(m_k) / m_k^4. ``weighted=False``: plain least squares, errors from the
    residual scatter (NaN with 2 points). Points with NaN width or fewer than 2 events are
    skipped; the points used are recorded in the result.

    Args:
        widths: (M, M) sigma[n, k] [GeV]; counts: (M,) events per n.
        n_fit_complete: highest n of step 1 (thesis 6); n_fit_slope: highest n of step 2
            (thesis 5, >= 2).

    Raises:
        ValueError: bad shapes, n_fit_complete < 1, n_fit_slope < 2, fewer than 2 usable
            points in step 1 or fewer than 2 fitted slopes for step 3, or a non-positive slope.
    """
    widths = np.asarray(widths, dtype=np.float64)
    counts = _int_array(counts, "counts")
    if widths.ndim != 2 or widths.shape[0] != widths.shape[1]:
        raise ValueError(f"fit_pt_balance: widths must be square (M, M), got {widths.shape}")
    if counts.shape != (widths.shape[0],):
        raise ValueError(
            f"fit_pt_balance: counts must have shape ({widths.shape[0]},), got {counts.shape}"
        )
    if n_fit_complete < 1:
        raise ValueError(f"fit_pt_balance: n_fit_complete must be >= 1, got {n_fit_complete}")
    if n_fit_slope < 2:
        raise ValueError(f"fit_pt_balance: n_fit_slope must be >= 2, got {n_fit_slope}")
    m = widths.shape[0]

    def usable(nj: int, kj: int) -> bool:
        w = widths[nj, kj]
        return bool(np.isfinite(w) and w > 0 and counts[nj] >= 2)

    def variance(nj: int, kj: int) -> float:
        return widths[nj, kj] ** 2 / (2.0 * (counts[nj] - 1))

    # 1. complete events
    k_c = np.array([k for k in range(min(n_fit_complete, m - 1) + 1) if usable(k, k)], dtype=int)
    if len(k_c) < 2:
        raise ValueError(
            f"fit_pt_balance: need >= 2 complete-event widths (k = n <= {n_fit_complete}) with "
            f">= 2 events each, found {len(k_c)} (k = {k_c.tolist()})"
        )
    y_c = widths[k_c, k_c]
    var_c = np.array([variance(k, k) for k in k_c]) if weighted else None
    a, b, cov_ab = _line_fit(k_c.astype(float), y_c, var_c)

    # 2. slopes m_k from incomplete events
    k_s, slopes, slope_errs = [], [], []
    for k in range(min(n_fit_slope, m - 1) - 1):
        ns = np.array([nj for nj in range(k + 1, min(n_fit_slope, m - 1) + 1) if usable(nj, k)])
        if len(ns) < 2:
            continue
        var_s = np.array([variance(nj, k) for nj in ns]) if weighted else None
        mk, _, cov_m = _line_fit(ns.astype(float), widths[ns, k], var_s)
        k_s.append(k)
        slopes.append(mk)
        slope_errs.append(float(np.sqrt(cov_m[0, 0])))
    k_s_arr = np.array(k_s, dtype=int)
    slopes_arr = np.array(slopes)
    slope_errs_arr = np.array(slope_errs)
    if len(k_s_arr) < 2:
        raise ValueError(
            f"fit_pt_balance: need slopes m_k for >= 2 values of k (each from >= 2 incomplete "
            f"widths with k < n <= {n_fit_slope}), found {len(k_s_arr)} (k = {k_s_arr.tolist()})"
        )
    if np.any(slopes_arr <= 0):
        raise ValueError(
            f"fit_pt_balance: non-positive fitted slopes m_k for k = "
            f"{k_s_arr[slopes_arr <= 0].tolist()}; the widths do not grow with missing jets"
        )

    # 3. inverse slopes
    var_inv = slope_errs_arr**2 / slopes_arr**4 if weighted else None
    c, d, cov_cd = _line_fit(k_s_arr.astype(float), 1.0 / slopes_arr, var_inv)
    return PtBalanceFit(
        a=a,
        b=b,
        c=c,
        d=d,
        a_err=float(np.sqrt(cov_ab[0, 0])),
        b_err=float(np.sqrt(cov_ab[1, 1])),
        c_err=float(np.sqrt(cov_cd[0, 0])),
        d_err=float(np.sqrt(cov_cd[1, 1])),
        k_complete=k_c,
        k_slope=k_s_arr,
        slopes=slopes_arr,
        slope_errs=slope_errs_arr,
        n_fit_complete=int(n_fit_complete),
        n_fit_slope=int(n_fit_slope),
        weighted=bool(weighted),
    )


# ------------------------------------------------------------------------ stop posterior
def _check_prior_args(ratio: float, cap_below: int, n_extrapolate: int) -> None:
    if not (np.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be finite and > 0, got {ratio}")
    if int(cap_below) != cap_below or cap_below < 0:
        raise ValueError(f"cap_below must be an integer >= 0, got {cap_below}")
    if int(n_extrapolate) != n_extrapolate or n_extrapolate < 0:
        raise ValueError(f"n_extrapolate must be an integer >= 0, got {n_extrapolate}")


def staircase_prior(
    n_extrapolate: int = SEED_N_EXTRAPOLATE,
    ratio: float = SEED_RATIO,
    cap_below: int = SEED_CAP_BELOW,
) -> np.ndarray:
    """Staircase prior P(n) proportional to ratio^max(n, cap_below), n = 0..n_extrapolate.

    Thesis Sec. 5.2.4: "we include a staircase scaling prior ... we take R_(n+1)/n = 0.225 and
    cap the probabilities for n < 3". jetfm reads "cap" as P(n < cap_below) = P(cap_below),
    matching the training set, whose n = 0, 1, 2 subsets are capped to the size of the n = 3
    subset (thesis Tab. 5.1). ``ratio = 1`` (or ``cap_below > n_extrapolate``) is the uniform
    prior of Eq. (5.26) as written. Returns (n_extrapolate + 1,) float64 summing to 1.
    """
    _check_prior_args(ratio, cap_below, n_extrapolate)
    ns = np.arange(int(n_extrapolate) + 1)
    logp = np.maximum(ns, int(cap_below)) * np.log(ratio)
    return np.exp(logp - logsumexp(logp))


def stop_posterior(
    px: np.ndarray,
    py: np.ndarray,
    k: int | np.ndarray,
    fit: PtBalanceFit,
    n_extrapolate: int = SEED_N_EXTRAPOLATE,
    ratio: float = SEED_RATIO,
    cap_below: int = SEED_CAP_BELOW,
) -> np.ndarray:
    """p_fit(stop at k | x_(1:k)): posterior that an event with k jets seen has no more jets.

    Thesis Eqs. (5.26) and (5.28) with the staircase prior P(n) of :func:`staircase_prior`::

        p(stop at k | x) = P(k) L_k / sum_(n=k)^(n_extrapolate) P(n) L_n,
        L_n = N(p_(x,Sigma); 0, sigma(n; k)) N(p_(y,Sigma); 0, sigma(n; k))

    with (p_(x,Sigma), p_(y,Sigma)) of the muons + first k jets (:func:`vector_sum_pt`) and
    sigma(n; k) from ``fit`` (Eq. (5.27)). Evaluated in log space (stable for any imbalance).

    Args:
        px, py: p_(x,Sigma), p_(y,Sigma) [GeV], arrays of one shape S (e.g. (N,)).
        k: jets seen, an int or an integer array of shape S, 0 <= k <= n_extrapolate.
        fit: the width model; n_extrapolate: highest multiplicity in the sum (thesis 8);
        ratio, cap_below: the staircase prior (thesis 0.225 and 3).

    Returns:
        Array of shape S in [0, 1]; exactly 1 where k == n_extrapolate.

    Raises:
        ValueError: px/py shapes differ or are non-finite, k of another shape, k < 0,
            k > n_extrapolate, bad prior arguments, or a width model invalid for some (n, k).
    """
    _check_prior_args(ratio, cap_below, n_extrapolate)
    n_extrapolate = int(n_extrapolate)
    px = np.asarray(px, dtype=np.float64)
    py = np.asarray(py, dtype=np.float64)
    if px.shape != py.shape:
        raise ValueError(f"stop_posterior: px and py shapes differ: {px.shape} vs {py.shape}")
    if not (np.all(np.isfinite(px)) and np.all(np.isfinite(py))):
        raise ValueError("stop_posterior: px and py must be finite")
    kk = _int_array(k, "k")
    if kk.ndim and kk.shape != px.shape:
        raise ValueError(
            f"stop_posterior: k must be an int or have shape {px.shape}, got {kk.shape}"
        )
    kk = np.broadcast_to(kk, px.shape)
    if np.any(kk < 0):
        raise ValueError("stop_posterior: k must be >= 0")
    if np.any(kk > n_extrapolate):
        n_bad = int(np.sum(kk > n_extrapolate))
        raise ValueError(
            f"stop_posterior: k > n_extrapolate={n_extrapolate} in {n_bad} entries "
            "(the posterior sums over n = k..n_extrapolate)"
        )
    ns = np.arange(n_extrapolate + 1)
    k_e = kk[..., None]
    n_e = np.maximum(ns, k_e)  # n < k terms are masked below; keep sigma(n; k) defined
    sig = fit.sigma(n_e, k_e)
    r2 = (px**2 + py**2)[..., None]
    log_prior = np.maximum(ns, int(cap_below)) * np.log(ratio)
    log_w = log_prior - 0.5 * r2 / sig**2 - 2.0 * np.log(sig) - np.log(2.0 * np.pi)
    log_w = np.where(ns >= k_e, log_w, -np.inf)
    log_num = np.take_along_axis(log_w, k_e, axis=-1)[..., 0]
    post = np.exp(log_num - logsumexp(log_w, axis=-1))
    return np.clip(post, 0.0, 1.0)


def override_label(
    px: np.ndarray,
    py: np.ndarray,
    k: int | np.ndarray,
    fit: PtBalanceFit,
    n_extrapolate: int = SEED_N_EXTRAPOLATE,
    ratio: float = SEED_RATIO,
    cap_below: int = SEED_CAP_BELOW,
) -> np.ndarray:
    """Override split label y = 1 - p_fit(stop at k | x_(1:k)), thesis Eq. (5.30) at i = n_max.

    For the splitting Bernoulli of the last training position k = n_max (1 = another jet
    follows); the loss weights it by lambda (Eq. (5.31); thesis lambda = 0.2). Same arguments,
    shape and errors as :func:`stop_posterior`.
    """
    return 1.0 - stop_posterior(px, py, k, fit, n_extrapolate, ratio, cap_below)
