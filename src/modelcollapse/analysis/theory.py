"""Closed-form expectations for the toy settings, used as reference lines in reports and as test targets.

Each function takes the generation index g (0-based; generation g is the (g+1)-th fit) and returns the expected value
of a metric. :func:`reference` picks the one that applies to a resolved arm config, or None.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
from scipy import special

from ..measures import entropy, heterozygosity, total_variation


def gaussian_w2_sq_replace(samples: int, g: np.ndarray, sigma2: float = 1.0) -> np.ndarray:
    """E[W₂²(fit_g, truth)] ≈ (3/2) σ² (g + 1) / M for 1-D unbiased fits under replace (Shumailov et al., Supp. §3)."""
    return 1.5 * sigma2 * (np.asarray(g) + 1) / samples


def trace_ratio_mle_replace(samples: int, g: np.ndarray) -> np.ndarray:
    """E[tr Σ̂_g / tr Σ₀] = ((n − 1)/n)^(g+1) for MLE covariance fits under replace (Kazdan et al.)."""
    return ((samples - 1) / samples) ** (np.asarray(g) + 1.0)


def median_log_variance(samples: int, ddof: int, g: np.ndarray) -> np.ndarray:
    """Median of log σ̂²_g ≈ its mean, (g + 1)(ψ((M − 1)/2) + log(2/(M − ddof))), for 1-D fits under replace.

    Each generation multiplies σ² by χ²_{M−1}/(M − ddof), whose log has that mean; the sum of g + 1 such logs is near
    normal, so its median is close to its mean.
    """
    step = special.digamma((samples - 1) / 2) + np.log(2 / (samples - ddof))
    return (np.asarray(g) + 1) * step


def heterozygosity_replace(h0: float, samples: int, g: np.ndarray) -> np.ndarray:
    """E[1 − Σ p̂²] = H₀ (1 − 1/N)^(g+1) under replace with N draws per generation (Wright–Fisher)."""
    return h0 * (1 - 1 / samples) ** (np.asarray(g) + 1.0)


def regression_test_mse(regime: str, noise: float, dim: int, samples: int, g: np.ndarray) -> np.ndarray | None:
    """E‖ŵ_g − w*‖² with a fixed isotropic design: replace σ²d/(T−d−1)·(g+1); accumulate σ²d/(T−d−1)·Σ_{k≤g+1} 1/k²
    (Gerstgrasser et al. give it as an upper bound; with the pool's normal equations shared it is exact: PAPER-NUMBERS,
    under row 3). None for other regimes."""
    unit = noise**2 * dim / (samples - dim - 1)
    g = np.asarray(g)
    if regime == "replace":
        return unit * (g + 1)
    if regime == "accumulate":
        return unit * np.cumsum(1.0 / np.arange(1, g.max() + 2) ** 2)[g]
    return None


def strong_collapse_mse(noise: float, dim: int, samples: int, fraction: float, shift_sq: float) -> float:
    """E‖ŵ − w*‖² of OLS on n = ``samples`` isotropic records whose labels come from w* + Δ with probability p =
    ``fraction`` (‖Δ‖² = ``shift_sq``), else from w*, noise σ: writing the label y = x·(w* + pΔ) + (b − p)x·Δ + σε,
    OLS is unbiased for w* + pΔ (bias² p²‖Δ‖²) and its noise has variance σ² + p(1−p)‖Δ‖² per record, so
    E ≈ (σ² + p(1−p)‖Δ‖²)·d/(n−d−1) + p²‖Δ‖² (≈: the second noise term is heteroscedastic, (x·Δ)² for ‖Δ‖²).
    As n → ∞ it tends to p²‖Δ‖² > 0 (PAPER-NUMBERS row 16: 0.1312 for p = 0.1, d = 100, n = 1000, σ² = ‖Δ‖² = 1)."""
    unit = dim / (samples - dim - 1)
    return (noise**2 + fraction * (1 - fraction) * shift_sq) * unit + fraction**2 * shift_sq


def marchenko_pastur_mean(f, gamma: float) -> float:
    """∫ f dμ_γ for the Marchenko–Pastur law of XᵀX/T's eigenvalues (x ~ N(0, I_d), γ = d/T < 1): the d, T → ∞ limit
    of E tr f(XᵀX/T)/d."""
    from scipy import integrate

    a, b = (1 - np.sqrt(gamma)) ** 2, (1 + np.sqrt(gamma)) ** 2
    density = lambda x: np.sqrt(max((b - x) * (x - a), 0.0)) / (2 * np.pi * gamma * x)  # noqa: E731
    return integrate.quad(lambda x: f(x) * density(x), a, b, limit=200)[0]


def ridge_downstream_mse(
    lam: float,
    generations: np.ndarray,
    dim: int,
    samples: int,
    samples0: int,
    noise: float = 1.0,
    noise0: float = 1.0,
    weights_sq: float = 1.0,
) -> np.ndarray:
    """E‖ŵ − w*‖² of the ridge ŵ = (XᵀX/T + λI)⁻¹Xᵀy/T trained on T fresh isotropic inputs labelled by the n-th of a
    chain of OLS fits (each on T₀ fresh inputs, noise σ₀; n = ``generations``), label noise σ ("Model Collapse
    Demystified" setting; derived). The labels' weights are w* + e with e isotropic, E‖e‖² = nσ₀²d/(T₀−d−1), and
    independent of this fit's inputs, so with S = XᵀX/T:
    E = λ²‖w*‖² tr(S+λ)⁻²/d + E‖e‖² tr S²(S+λ)⁻²/d + σ²(d/T) tr S(S+λ)⁻²/d, the traces taken in the Marchenko–Pastur
    limit (γ = d/T). λ = 0 gives σ²d/(T−d−1)-like terms in the limit only; use :func:`regression_test_mse` there.
    PAPER-NUMBERS row 17 (d = 100, T = T₀ = 200, ‖w*‖² = 1): 0.414 at λ = 0.5, n = 0; 0.888 at λ = 7.2, n = 5."""
    gamma = dim / samples
    bias = lam**2 * weights_sq * marchenko_pastur_mean(lambda x: 1 / (x + lam) ** 2, gamma)
    inherited = noise0**2 * dim / (samples0 - dim - 1) * marchenko_pastur_mean(lambda x: x**2 / (x + lam) ** 2, gamma)
    variance = noise**2 * gamma * marchenko_pastur_mean(lambda x: x / (x + lam) ** 2, gamma)
    return bias + variance + inherited * np.asarray(generations, float)


def ridge_optimum(
    generations: int,
    dim: int,
    samples: int,
    samples0: int,
    noise: float = 1.0,
    noise0: float = 1.0,
    weights_sq: float = 1.0,
) -> tuple[float, float]:
    """(λ*, E at λ*) of :func:`ridge_downstream_mse` after n = ``generations`` OLS fits: λ* grows with n (row 17:
    ≈ 0.50 at n = 0, ≈ 7.2 at n = 5)."""
    from scipy.optimize import minimize_scalar

    f = lambda t: float(ridge_downstream_mse(np.exp(t), generations, dim, samples, samples0, noise, noise0, weights_sq))  # noqa: E731
    best = minimize_scalar(f, bounds=(-8.0, 8.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(best.x)), float(best.fun)


def mean_sq_error_replace(trace0: float, samples: int, ddof: int, g: np.ndarray) -> np.ndarray:
    """E‖μ̂_g − μ₀‖² under replace with n = ``samples`` draws a generation: fit k's mean takes a step of covariance
    Σ̂_{k−1}/n (Σ̂_{−1} = Σ₀), and E tr Σ̂_k = tr Σ₀·r^(k+1) with r = (n − 1)/(n − ddof). Summed over k = 0..g:
    tr Σ₀·(1 − ((n−1)/n)^(g+1)) for MLE fits, tr Σ₀·(g+1)/n for unbiased ones (PAPER-NUMBERS, under row 2)."""
    g = np.asarray(g, float)
    if ddof == 1:
        return trace0 * (g + 1) / samples
    return trace0 * (1 - ((samples - 1) / samples) ** (g + 1))


def det_ratio_replace(dim: int, samples: int, ddof: int, g: np.ndarray) -> np.ndarray:
    """E[det Σ̂_g / det Σ₀] under replace: each fit multiplies the determinant by det W/(n − ddof)^d with
    W ~ Wishart(n − 1, I) independent of the past, whose mean is Π_{i=1..d} (n − i)/(n − ddof); raised to g + 1.
    For MLE fits (ddof 0): Π_{i=1..d} (1 − i/n)^(g+1) (PAPER-NUMBERS, under row 2)."""
    step = np.prod([(samples - i) / (samples - ddof) for i in range(1, dim + 1)])
    return step ** (np.asarray(g, float) + 1)


def fresh_categorical_l2(h: float, n_real: int, n_synthetic: int, m0: int, g: np.ndarray) -> np.ndarray:
    """E‖p̂_g − p*‖² when each generation g ≥ 1 fits the MLE to N = ``n_real`` fresh real and n = ``n_synthetic``
    synthetic draws (α = n/(N+n)); generation 0 fits ``m0`` real draws; h = 1 − Σ p*².

    V_{g+1} = h/(N+n) + c·V_g with c = α²(1 − 1/n), V_0 = h/m0; so V_g = V∞ + (V_0 − V∞) c^g and
    V∞ = h / ((N+n)(1 − α²(1 − 1/n))) (PAPER-NUMBERS row 13: 0.005980 for N = n = 100, K = 10 uniform)."""
    alpha = n_synthetic / (n_real + n_synthetic)
    c = alpha**2 * (1 - 1 / n_synthetic)
    stationary = h / ((n_real + n_synthetic) * (1 - c))
    return stationary + (h / m0 - stationary) * c ** np.asarray(g, float)


def mix_known_sigma_mse(sigma2: float, n: int, lam: float, g: np.ndarray) -> np.ndarray:
    """E(μ̂_g − μ)² for a known-σ Gaussian mean refitted on the same n real records plus λn synthetic draws of the
    previous fit. With r the real records' mean error and a = λ/(1+λ), d_g = μ̂_g − μ − r follows
    d_{g+1} = a(d_g + η), η ~ N(0, σ²/(λn)), d_0 = 0: E(μ̂_g − μ)² = σ²/n + D∞(1 − a^(2g)),
    D∞ = λσ²/(n(1 + 2λ)) (PAPER-NUMBERS row 18: 0.02667 at stationarity for n = 50, λ = 1)."""
    a = lam / (1 + lam)
    return sigma2 / n + lam * sigma2 / (n * (1 + 2 * lam)) * (1 - a ** (2 * np.asarray(g, float)))


def tempered_probs(p0: np.ndarray, temperature: float, g: np.ndarray) -> np.ndarray:
    """p_g ∝ p₀^(T^−g): g population fits at temperature T after generation 0, ``(len(g), K)`` (PAPER-NUMBERS row 19:
    T = 1.1, g = 30 gives (0.3425, 0.3326, 0.3249) from (0.5, 0.3, 0.2))."""
    with np.errstate(divide="ignore"):
        logits = np.log(np.asarray(p0, float))[None, :] * (float(temperature) ** -np.asarray(g, float))[:, None]
    w = np.exp(logits - logits.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def bradley_terry_step(p: np.ndarray, reward: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """One K = 2 curation of the population ``p`` ``(..., C)``: p′ = p ⊙ 2(Bp), B_ij = e^{βr_i}/(e^{βr_i} + e^{βr_j}).

    An ordered pair (i, j) is drawn w.p. p_i p_j and i kept w.p. B_ij; i is first or second of its pair, so it is
    kept w.p. 2 Σ_j p_i p_j B_ij = 2 p_i (Bp)_i, and Σ p′ = Σ_ij p_i p_j (B_ij + B_ji) = 1. Exact in expectation for
    one finite generation: E[p̂′ | p̂] = p̂ ⊙ 2(Bp̂) (PAPER-NUMBERS row 21)."""
    r = beta * np.asarray(reward, float)
    b = special.expit(r[:, None] - r[None, :])  # e^{r_i}/(e^{r_i}+e^{r_j}), without overflow
    return 2 * p * (p @ b.T)


def curated_probs(
    p0: np.ndarray, reward: np.ndarray, g: np.ndarray, *, k: int | str = 2, beta: float = 1.0, real_share: float = 0.0
) -> np.ndarray:
    """The infinite-sample population after g curation steps, ``(len(g), C)``: p_{t+1} = λ p₀ + (1 − λ) c(p_t) with
    λ = ``real_share`` (each generation's share of fresh real draws) and c the K = 2 step
    (:func:`bradley_terry_step`) or, for ``k = "inf"``, c(p) ∝ p·e^{βr}; without real data, p_t ∝ p₀e^{tβr}.
    As t grows it tends to the fixed point of that map (λ > 0) or to the reward's argmax (λ = 0).

    >>> r = np.array([0, 0.5, 1, 1.5, 2])
    >>> round(float(curated_probs(np.full(5, 0.2), r, np.array([5]))[0] @ r), 5)  # E[r] after 5 pair choices
    1.77177
    """
    if k not in (2, "inf"):
        raise ValueError(f"curated_probs knows k = 2 and k = 'inf'; got {k!r}.")
    p0 = np.asarray(p0, float) / np.sum(p0)
    tilt = np.exp(beta * (np.asarray(reward, float) - np.max(reward)))
    step = (lambda p: bradley_terry_step(p, reward, beta)) if k == 2 else (lambda p: p * tilt / (p @ tilt))  # noqa: E731
    g = np.asarray(g)
    out, p = np.empty((len(g), len(p0))), p0
    for t in range(int(g.max(initial=0)) + 1):
        out[g == t] = p
        c = step(p)
        p = real_share * p0 + (1 - real_share) * c / c.sum()  # renormalised: no drift of Σp over many steps
    return out


def golden_ratio_mse(
    w: float, n_real: int, n_synthetic: int, g: np.ndarray, n0: int | None = None, sigma2: float = 1.0
) -> np.ndarray:
    """E(μ̂_g − μ)² when each generation g ≥ 1 estimates a known-σ Gaussian mean as μ̂ = w·mean(real) + (1 − w)·mean(
    synthetic), from n_r fresh real draws and n_s draws of N(μ̂_{g−1}, σ²); generation 0 is the mean of n₀ real draws.

    μ̂_{g+1} − μ = w e_r + (1 − w)(μ̂_g − μ + e_s), e_r ~ N(0, σ²/n_r), e_s ~ N(0, σ²/n_s), all independent: so
    V_{g+1} = w²σ²/n_r + (1 − w)²(V_g + σ²/n_s), V_g = V∞ + (V₀ − V∞)(1 − w)^(2g), V₀ = σ²/n₀ and
    V∞ = σ²(w²/n_r + (1 − w)²/n_s) / (1 − (1 − w)²). For n_r = n_s = n, n·V∞ = (w² + (1 − w)²)/(1 − (1 − w)²), least at
    w* = 1/φ with value 1/φ (PAPER-NUMBERS row 22)."""
    c = (1 - w) ** 2
    stationary = sigma2 * (w**2 / n_real + c / n_synthetic) / (1 - c)
    return stationary + (sigma2 / (n0 or n_real) - stationary) * c ** np.asarray(g, float)


def forgetting_g(k: int) -> np.ndarray:
    """g_1..g_k with g_1 = 1, g_{j+1} = 1 − e^(−g_j) (Suresh et al.): P(a Poisson rate fitted k times is still > 0)
    = 1 − exp(−n λ₀ g_k). g_k ≈ 2/k for large k."""
    out = np.empty(k)
    out[0] = 1.0
    for j in range(1, k):
        out[j] = -np.expm1(-out[j - 1])
    return out


def poisson_survival(samples: int, rate: float, g: np.ndarray) -> np.ndarray:
    """P(λ̂_g > 0) = 1 − exp(−n λ₀ g_{g+1}) under replace, generation g being the (g+1)-th fit (generation 0 counts as a
    fit): n λ̂ is a Galton–Watson population with Poisson(1) offspring started from Poisson(n λ₀) (row 14: 0.3676 at
    20 fits, 0.1746 at 50 for n = 10, λ₀ = 0.5)."""
    g = np.asarray(g)
    return -np.expm1(-samples * rate * forgetting_g(int(g.max()) + 1)[g])


def survival_by_count(counts: np.ndarray, g: int) -> np.ndarray:
    """P(a category with generation-0 count c is still present at generation g) = 1 − exp(−c g_g) under replace with
    N draws a generation (1 at g = 0 for c ≥ 1), in the Poisson (rare-word) limit c ≪ N of Suresh et al.: its count is
    then a Galton–Watson population with Poisson(1) offspring started from c, and one line dies out within g
    generations w.p. exp(−g_g). ``counts`` any shape; the same shape back.

    >>> survival_by_count(np.array([1, 10]), 19).round(4).tolist()  # after 19 refits (20 fits)
    [0.0916, 0.6176]
    """
    c = np.asarray(counts, float)
    if g == 0:
        return (c > 0).astype(float)
    return -np.expm1(-c * forgetting_g(int(g))[-1])


def survival_reference(arm: dict[str, Any]) -> str | None:
    """The label of the survival view's closed form (:func:`survival_by_count`) when it applies to a resolved arm:
    the categorical MLE under replace, unbiased finite sampling, the same N draws every generation, no smoothing and no
    filter; else None."""
    model, loop = arm["model"], arm["loop"]
    M = loop["samples"]
    same = (loop.get("real_samples") or M) == M == (loop.get("n_synthetic") or M)
    plain = loop.get("bias", 1.0) == 1.0 and loop.get("fit_to", "samples") == "samples" and not loop.get("filters")
    if (
        model["kind"] == "categorical"
        and not model.get("smoothing")
        and regime_name(loop) == "replace"
        and same
        and plain
    ):
        return "1 − exp(−c g_g) (Poisson limit)"
    return None


def categorical_support_replace(p: np.ndarray, samples: int, g: np.ndarray) -> np.ndarray:
    """E[support size] after g + 1 fits to N = ``samples`` draws under replace, in the Poisson (rare-word) limit of
    Suresh et al.: a category with generation-0 count c survives g more fits w.p. 1 − exp(−c g_{g}) (g_0 = ∞), and c ~
    Binomial(N, p_i), so E = Σ_i [1 − (1 − p_i g_{g+1})^N]. Exact at g = 0; for common categories (which never die in
    practice) the approximation does not matter."""
    g = np.asarray(g)
    step = forgetting_g(int(g.max()) + 1)[g]
    return (1 - np.exp(samples * np.log1p(-np.asarray(p)[None, :] * step[:, None]))).sum(-1)


def memoriser_error(p: np.ndarray, q: np.ndarray, train: int) -> float:
    """E[missing mass] = Σ p_i (1 − q_i)^T of a memoriser trained on T draws from q, tested on p ("A Tale of Tails";
    row 15). Computed as Σ p_i exp(T log1p(−q_i)), accurate for tiny q_i and huge T."""
    q = np.asarray(q, float)
    with np.errstate(divide="ignore"):
        return float(np.sum(np.asarray(p) * np.exp(train * np.log1p(-np.minimum(q, 1.0)))))


def kept_label_error(flip: float, keep_correct: float, keep_wrong: float) -> float:
    """p_eff = pφ₀ / (pφ₀ + (1 − p)φ₁): the share of wrong labels among those a verifier keeps (PAPER-NUMBERS
    row 20)."""
    kept_wrong = flip * keep_wrong
    return kept_wrong / (kept_wrong + (1 - flip) * keep_correct)


def verifier_accuracy(separation: float, dim: int, samples: int, wrong: float, nodes: int = 120) -> float:
    """E Φ(μ·w/‖w‖) for the mean-difference classifier on ``samples`` records x ~ N(t·μ, I) whose labels are wrong
    independently w.p. ``wrong`` (p_eff). Exactly, w = s̄μ + ε/√n with s̄ the mean of ±1 label agreements and
    ε ~ N(0, I_d); so the component along μ̂ is u ~ N(‖μ‖(1 − 2p_eff), (1 + 4p_eff(1 − p_eff)‖μ‖²)/n) (s̄ taken
    Gaussian: its binomial is close to one at these n) and ‖v‖² ~ χ²_{d−1}/n across, and the accuracy is
    Φ(‖μ‖u/√(u² + ‖v‖²)), averaged by Gauss–Hermite (u) and generalised Gauss–Laguerre (‖v‖²) quadrature. As n → ∞
    it tends to Φ(‖μ‖) for p_eff < ½ and Φ(−‖μ‖) for p_eff > ½ (½ at p_eff = ½).

    >>> round(verifier_accuracy(1.0, 2, 10**8, 0.45), 4), round(verifier_accuracy(1.0, 2, 10**8, 0.55), 4)
    (0.8413, 0.1587)
    """
    t, wt = special.roots_hermitenorm(nodes)
    u = separation * (1 - 2 * wrong) + t * np.sqrt((1 + 4 * wrong * (1 - wrong) * separation**2) / samples)
    wt = wt / np.sqrt(2 * np.pi)
    if dim == 1:
        return float(wt @ special.ndtr(separation * np.sign(u)))
    k = dim - 1  # ‖v‖² n / 2 ~ Gamma(k/2): Laguerre weight y^(k/2 − 1) e^(−y)
    y, wy = special.roots_genlaguerre(nodes, k / 2 - 1)
    wy = wy / special.gamma(k / 2)
    margin = separation * u[:, None] / np.sqrt(u[:, None] ** 2 + 2 * y[None, :] / samples)
    return float(wt @ special.ndtr(margin) @ wy)


def built(data: dict[str, Any]):
    """The data source of a resolved ``data`` section, built once per process for the last few sections asked (a
    report asks each arm's reference several times; a Zipf over 10⁶ types or wordfreq's word list takes a while).
    Shared: callers only read it."""
    return _built(json.dumps(data, sort_keys=True, default=str))


@functools.lru_cache(maxsize=8)  # a preset's distinct data sections; a 10⁶-type source holds ~16 MB
def _built(data: str):
    from ..plugins.data import SOURCES

    return SOURCES.build(json.loads(data), "data")


def verifier_reference(arm: dict[str, Any], g: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """Row 20: expected accuracy per generation of the mean-difference classifier under ``labeller: fixed`` and
    ``replace`` (each generation trains on n verified synthetic records; generation 0 on the clean real pool)."""
    data, model, loop = arm["data"], arm["model"], arm["loop"]
    verifiers = [f for f in loop.get("filters") or [] if f.get("kind") == "label-verifier"]
    if model.get("labeller", "fixed") != "fixed" or regime_name(loop) != "replace" or len(verifiers) > 1:
        return None
    if len(verifiers) != len(loop.get("filters") or []) or any(
        f.get("truth", "carried") != "carried" for f in verifiers
    ):
        return None
    flip = model.get("flip", 0.0)
    wrong = (
        kept_label_error(flip, verifiers[0].get("keep_correct", 1.0), verifiers[0].get("keep_wrong", 0.0))
        if verifiers
        else flip
    )
    sep, dim, M = data.get("separation", 1.0), data.get("dim", 2), loop["samples"]
    real = verifier_accuracy(sep, dim, loop.get("real_samples") or M, 0.0)
    later = verifier_accuracy(sep, dim, loop.get("n_synthetic") or M, wrong)
    return np.where(np.asarray(g) == 0, real, later), "E Φ(μ·w/‖w‖), p_eff = pφ₀/(pφ₀+(1−p)φ₁); n → ∞: Φ(±‖μ‖)", "mean"


def curated_reference(metric: str, arm: dict[str, Any], g: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """Row 21: ``mean_reward`` and ``entropy`` of the infinite-sample curated population (:func:`curated_probs`) for a
    categorical fit whose only filter is ``curate`` with k = 2 or inf and a ``table`` reward, under replace or fresh
    real mixing (λ = real records / training records), unbiased finite sampling and no weights; else None."""
    data, model, loop = arm["data"], arm["model"], arm["loop"]
    filters = loop.get("filters") or []
    if metric not in ("mean_reward", "entropy") or model["kind"] != "categorical" or data["kind"] != "categorical":
        return None
    if len(filters) != 1 or filters[0].get("kind") != "curate" or filters[0].get("k", 2) not in (2, "inf"):
        return None
    reward = filters[0].get("reward")
    plain = loop.get("bias", 1.0) == 1.0 and loop.get("fit_to", "samples") == "samples" and not loop.get("weights")
    if not (isinstance(reward, dict) and reward.get("kind") == "table") or not plain or model.get("smoothing"):
        return None
    regime, params = regime_name(loop), loop["regime"] if isinstance(loop["regime"], dict) else {}
    M = loop["samples"]
    if regime == "replace":
        share = 0.0
    elif regime == "fresh":
        n_real = (
            params.get("n_real") if params.get("n_real") is not None else round(params.get("real_fraction", 0.0) * M)
        )
        n_synthetic = loop.get("n_synthetic") or M - n_real
        share = n_real / (n_real + n_synthetic)
    else:
        return None
    values = np.asarray(reward["values"], float)
    p = curated_probs(
        built(data).probs, values, g, k=filters[0].get("k", 2), beta=filters[0].get("beta", 1.0), real_share=share
    )
    label = f"infinite-sample curation (K = {filters[0].get('k', 2)}, λ = {share:g})"
    return (p @ values if metric == "mean_reward" else entropy(p)), label, "mean"


def weighted_reference(metric: str, arm: dict[str, Any], g: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """Row 22: E(μ̂ − μ)² of a known-σ 1-D Gaussian mean fitted to n_r fresh real and n_s synthetic records weighted
    w and 1 − w (``loop.weights.real``; :func:`golden_ratio_mse`); else None."""
    data, model, loop = arm["data"], arm["model"], arm["loop"]
    params = loop["regime"] if isinstance(loop["regime"], dict) else {}
    if model["kind"] != "gaussian-mean" or data["kind"] != "gaussian" or metric != "mean_sq_error" or data["dim"] != 1:
        return None
    sigma2 = float(np.mean(np.square(data["std"])))
    if (
        regime_name(loop) != "fresh"
        or sigma2 != model["std"] ** 2
        or loop.get("bias", 1.0) != 1.0
        or loop.get("filters")
    ):
        return None
    M = loop["samples"]
    n_real = params.get("n_real") if params.get("n_real") is not None else round(params.get("real_fraction", 0.0) * M)
    n_synthetic = loop.get("n_synthetic") or M - n_real
    if not n_real or not n_synthetic:
        return None
    w = loop["weights"]["real"]
    n0 = loop.get("real_samples") or max(M, n_real)
    return golden_ratio_mse(w, n_real, n_synthetic, g, n0, sigma2), "E: V∞ + (V₀ − V∞)(1 − w)^(2g)", "mean"


def derived_reference(metric: str, arm: dict[str, Any], g: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """The closed forms derived for the settings of PAPER-NUMBERS rows 13–22 (curation, weighted and fresh mixing,
    categorical support and temperature, memorisation, known-σ means, regression and ridge, verifiers, Poisson
    survival), or None."""
    data, model, loop = arm["data"], arm["model"], arm["loop"]
    if loop.get("filters"):
        found = curated_reference(metric, arm, g)
        if found is not None or any(f.get("kind") == "curate" for f in loop["filters"]):
            return found
    regime, params = regime_name(loop), loop["regime"] if isinstance(loop["regime"], dict) else {}
    M, bias, exact = loop["samples"], loop.get("bias", 1.0), loop.get("fit_to", "samples") == "population"
    n_synthetic = loop.get("n_synthetic") or M
    n_real = params.get("n_real", loop.get("n_real"))
    if model["kind"] == "categorical" and data["kind"] in ("categorical", "zipf") and bias == 1.0 and not exact:
        probs = built(data).probs
        if metric == "support_size" and regime == "replace" and (loop.get("real_samples") or M) == M == n_synthetic:
            return categorical_support_replace(probs, M, g), "≈ Σ 1 − (1 − p_i g_(g+1))^N", "mean"
        if metric == "l2_sq_to_truth" and regime == "fresh" and n_real:
            m0 = loop.get("real_samples") or max(M, n_real)
            return (
                fresh_categorical_l2(heterozygosity(probs), n_real, n_synthetic, m0, g),
                "E: V∞ + (V₀ − V∞)(α²(1−1/n))^g",
                "mean",
            )
    if model["kind"] == "categorical" and data["kind"] in ("categorical", "zipf") and exact and regime == "replace":
        p0 = built(data).probs
        p = tempered_probs(p0, bias, g)
        if metric == "entropy":
            return entropy(p), "p₀^(T^−g) (population sampling)", "mean"
        if metric == "tv":
            return total_variation(p, p0), "p₀^(T^−g) (population sampling)", "mean"
    if (
        model["kind"] == "categorical"
        and metric == "missing_mass"
        and data["kind"] in ("categorical", "zipf", "tail-cut", "tail-narrow")
    ):
        source = built(data)
        values = np.full(g.shape, np.nan)  # generation 0 only: the memoriser's one fit to T draws
        values[g == 0] = memoriser_error(
            source.probs, getattr(source, "train_probs", source.probs), loop.get("real_samples") or M
        )
        return values, "E: Σ p_i (1 − q_i)^T", "mean"
    if loop.get("weights"):
        return weighted_reference(metric, arm, g)
    if (
        model["kind"] == "gaussian-mean"
        and data["kind"] == "gaussian"
        and metric == "mean_sq_error"
        and regime == "mix"
    ):
        pool = loop.get("real_samples") or M
        sigma2 = float(np.mean(np.square(data["std"])))
        if n_real == pool and data["dim"] == 1 and sigma2 == model["std"] ** 2:
            lam = n_synthetic / pool
            return mix_known_sigma_mse(sigma2, pool, lam, g), "E: σ²/n + λσ²(1 − a^(2g))/(n(1+2λ))", "mean"
    if (
        model["kind"] == "gaussian-mean"
        and data["kind"] == "gaussian"
        and metric == "mean_sq_error"
        and regime == "replace"
    ):
        trace0 = float(np.sum(np.broadcast_to(np.square(data["std"]), (data["dim"],))))
        if (loop.get("real_samples") or M) == M and n_synthetic == M and trace0 == data["dim"] * model["std"] ** 2:
            return trace0 * (g + 1.0) / M, "E: tr Σ₀(g+1)/n", "mean"
    if (
        model["kind"] == "linear-regression"
        and data["kind"] == "regression"
        and metric == "test_mse"
        and data.get("shift_fraction")
    ):
        if regime == "replace" and (loop.get("real_samples") or M) == M and not model.get("ridge"):
            first = strong_collapse_mse(
                data["noise"], data["dim"], M, data["shift_fraction"], data.get("shift_sq_norm", 1.0)
            )
            later = (
                data["noise"] ** 2 * data["dim"] / (M - data["dim"] - 1)
            )  # each refit on regenerated labels adds one
            return (
                first + later * np.asarray(g, float),
                "E ≈ (σ²+p(1−p)‖Δ‖²)d/(n−d−1) + p²‖Δ‖² (+ g σ²d/(n−d−1))",
                "mean",
            )
        return None
    if (
        model["kind"] == "linear-regression"
        and data["kind"] == "regression"
        and metric == "test_mse"
        and model.get("ridge")
    ):
        downstream = model.get("ridge_applies") == "downstream" and model.get("design") == "fresh"
        if (
            downstream
            and regime == "replace"
            and (loop.get("real_samples") or M) == M
            and not data.get("shift_fraction")
        ):
            lam = model["ridge"] * (1.0 if model.get("ridge_scaling", "per-sample") == "per-sample" else 1.0 / M)
            w_sq = float(np.sum(built(data).weights_ ** 2))
            if model.get("noise") not in (None, data["noise"]):
                return None  # generation 0's labels and the later ones' would differ in noise: not this formula
            values = ridge_downstream_mse(lam, g, data["dim"], M, M, data["noise"], data["noise"], w_sq)
            return values, "E (Marchenko–Pastur limit): ridge on labels from g OLS fits", "mean"
        return None
    if model["kind"] == "mean-difference" and data["kind"] == "classification" and metric == "accuracy":
        return verifier_reference(arm, g)
    if model["kind"] == "poisson" and data["kind"] == "poisson" and metric == "nonzero" and regime == "replace":
        rate = np.atleast_1d(data["rate"])
        if len(rate) == 1 and (loop.get("real_samples") or M) == M and n_synthetic == M:
            return poisson_survival(M, float(rate[0]), g), "P: 1 − exp(−nλ₀g_(g+1))", "mean"
    return None


# Published curves without a closed form, per generation 0, 1, ...: (model kind, data kind, metric) under replace.
PUBLISHED = {
    # Shumailov et al. 2024, Supplementary Fig. 7 (conv VAE on MNIST, mean of 5 runs, ± 0.03): std of the
    # generation-0 encoder's latent means on generated images
    ("vae", "mnist", "latent_std"): ((0.67, 0.61, 0.53, 0.47, 0.43), "published (Shumailov et al. 2024)"),
}


#: Published figures at single generations (no curve): (model kind, data kind, metric) -> [(generation, value,
#: tolerance, source)]. The report marks ours against each one the run reaches.
PUBLISHED_POINTS = {
    ("gmm", "gaussian", "component_std"): [
        (0, 0.895, 0.01, "≈ 0.89–0.90 at generation 0 (Shumailov et al. 2024, Supp. Fig. 6)"),
        (2049, 0.01, 0.03, "≈ 0.01 after 2,050 generations (Shumailov et al. 2024, Supp. Fig. 6)"),
    ],
}


def published_points(metric: str, arm: dict[str, Any]) -> list[tuple[int, float, float, str]]:
    """The published single-generation figures for ``metric`` under a resolved arm (replace only), or []."""
    if regime_name(arm["loop"]) != "replace":
        return []
    return PUBLISHED_POINTS.get((arm["model"]["kind"], arm["data"]["kind"], metric), [])


def regime_name(loop: dict[str, Any]) -> str:
    """The regime of a resolved ``loop`` section: ``{kind: NAME, ...}`` (a plain name in run directories written
    before regimes took parameters)."""
    regime = loop["regime"]
    return regime["kind"] if isinstance(regime, dict) else regime


def published(metric: str, arm: dict[str, Any], generations: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """A published curve for ``metric`` under this arm (NaN past the generations it covers), or None."""
    key = (arm["model"]["kind"], arm["data"]["kind"], metric)
    if key not in PUBLISHED or regime_name(arm["loop"]) != "replace":
        return None
    values, label = PUBLISHED[key]
    padded = np.append(values, np.nan)  # generations past the published ones read the NaN
    return padded[np.minimum(np.asarray(generations), len(values))], label, "mean"


def reference(metric: str, arm: dict[str, Any], generations: np.ndarray) -> tuple[np.ndarray, str, str] | None:
    """The closed form (or, failing one, the published curve) for ``metric`` under a resolved arm config: (values,
    label, statistic) where statistic is "mean" or "median" (which across-replicate statistic the values predict), or
    None."""
    data, model, loop = arm["data"], arm["model"], arm["loop"]
    g, M, regime = np.asarray(generations), loop["samples"], regime_name(loop)
    found = published(metric, arm, g)
    if found is None:
        found = derived_reference(metric, arm, g)
    if found is not None:
        return found
    same_size = (loop.get("real_samples") or M) == M
    population = loop.get("fit_to", "samples") == "population" or loop.get("bias", 1.0) != 1.0
    if regime != "replace" and not (model["kind"] == "linear-regression" and regime == "accumulate"):
        return None
    if model["kind"] == "gaussian" and data["kind"] == "gaussian" and same_size:
        sigma2 = float(np.mean(np.square(data["std"])))
        dim = data["dim"]
        if metric == "w2_sq" and dim == 1 and model["variance"] == "unbiased":
            return gaussian_w2_sq_replace(M, g, sigma2), "E: (3/2)σ²(g+1)/M", "mean"
        if metric == "trace_ratio" and model["variance"] == "mle":
            return trace_ratio_mle_replace(M, g), "E: ((n−1)/n)^(g+1)", "mean"
        if metric == "trace_ratio" and model["variance"] == "unbiased":
            return np.ones(g.shape), "E: 1 (martingale)", "mean"
        ddof = 1 if model["variance"] == "unbiased" else 0
        if metric == "mean_sq_error" and not population:
            return (
                mean_sq_error_replace(sigma2 * dim, M, ddof, g),
                "E: tr Σ₀(1−((n−1)/n)^(g+1)) or tr Σ₀(g+1)/n",
                "mean",
            )
        if metric == "det_ratio" and not population:
            return det_ratio_replace(dim, M, ddof, g), "E: Π_i ((n−i)/(n−ddof))^(g+1)", "mean"
        if metric == "variance" and dim == 1:
            ddof = 1 if model["variance"] == "unbiased" else 0
            return (
                sigma2 * np.exp(median_log_variance(M, ddof, g)),
                "median: exp((g+1)(ψ((M−1)/2)+log(2/(M−ddof))))",
                "median",
            )
    if (
        model["kind"] == "categorical"
        and data["kind"] == "categorical"
        and metric == "heterozygosity"
        and same_size
        and not population
    ):
        probs = built(data).probs
        return heterozygosity_replace(heterozygosity(probs), M, g), "E: H₀(1−1/N)^(g+1)", "mean"
    plain_ols = not data.get("shift_fraction") and not model.get("ridge")  # rows 16-17 have their own (or none)
    fixed = model.get("design", "fixed") == "fixed" or regime == "replace"  # fresh inputs keep the replace sum only
    if model["kind"] == "linear-regression" and metric == "test_mse" and same_size and plain_ols and fixed:
        values = regression_test_mse(regime, data["noise"], data["dim"], M, g)
        label = "E: σ²d/(T−d−1)·(g+1)" if regime == "replace" else "E: σ²d/(T−d−1)·Σ1/k²"
        return (values, label, "mean") if values is not None else None
    return None


# ---- Khelifa, Turner and Venkataramanan (ICML 2026): the divergence view's closed forms ------------------------------


def gaussian_kl(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """KL(N(μ₁, Σ₁) ‖ N(μ₂, Σ₂)) in nats: ½ [tr(Σ₂⁻¹Σ₁) + (μ₂ − μ₁)ᵀ Σ₂⁻¹ (μ₂ − μ₁) − d + log(|Σ₂| / |Σ₁|)].

    >>> gaussian_kl(np.zeros(1), np.eye(1), np.ones(1), np.eye(1))
    0.5
    """
    mu1, mu2, cov1, cov2 = (np.atleast_1d(np.asarray(a, float)) for a in (mu1, mu2, cov1, cov2))
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    diff, inv2 = mu2 - mu1, np.linalg.inv(cov2)
    logdet = np.linalg.slogdet(cov2)[1] - np.linalg.slogdet(cov1)[1]
    return float(0.5 * (np.trace(inv2 @ cov1) + diff @ inv2 @ diff - len(mu1) + logdet))


def gaussian_chi2(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Pearson's χ²(N(μ₁, Σ₁) ‖ N(μ₂, Σ₂)) = ∫ p²/q − 1 = |Σ₂|^½ |Σ₁|⁻¹ |2Σ₁⁻¹ − Σ₂⁻¹|^−½
    · exp((μ₁ − μ₂)ᵀ (2Σ₂ − Σ₁)⁻¹ (μ₁ − μ₂)) − 1 (complete the square in ∫ p²/q); ``inf`` unless 2Σ₂ − Σ₁ is positive
    definite (p²/q is then not integrable). Equal covariances σ²: exp(|Δμ|²/σ²) − 1.

    >>> round(gaussian_chi2(np.zeros(1), np.eye(1), np.ones(1), np.eye(1)), 6)  # e − 1
    1.718282
    """
    mu1, mu2, cov1, cov2 = (np.atleast_1d(np.asarray(a, float)) for a in (mu1, mu2, cov1, cov2))
    cov1, cov2 = np.atleast_2d(cov1), np.atleast_2d(cov2)
    if np.linalg.eigvalsh(2 * cov2 - cov1).min() <= 0:
        return float("inf")
    diff = mu1 - mu2
    log_ratio = (
        0.5 * np.linalg.slogdet(cov2)[1]
        - np.linalg.slogdet(cov1)[1]
        - 0.5 * np.linalg.slogdet(2 * np.linalg.inv(cov1) - np.linalg.inv(cov2))[1]
        + diff @ np.linalg.solve(2 * cov2 - cov1, diff)
    )
    return float(np.expm1(log_ratio))


def discounted_sum(terms: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Khelifa et al.'s discounted sum of one-step divergences, per generation m: S_m = Σ_{k≤m} Π_{j=k+1..m} (1 − α_j)²
    · e_k, i.e. S_0 = e_0 and S_m = (1 − α_m)² S_{m−1} + e_m; for a constant share α, Σ_k (1 − α)^{2(m−k)} e_k.
    ``terms`` ``(..., G)`` the one-step divergences e_k (e_0: generation 0's fit against the data), ``shares``
    ``(..., G)`` α_m, the share of real data in generation m's training set (α_0 is not used). Returns ``(..., G)``.

    Why (1 − α)²: generation m trains on q = α·p_data + (1 − α)·p̂_{m−1}, and χ²(q ‖ p_data) = (1 − α)² χ²(p̂_{m−1} ‖
    p_data) exactly (q − p_data = (1 − α)(p̂_{m−1} − p_data)); so where each fit's own error adds to what it inherits
    (their perturbative regime), χ²(p̂_m ‖ p_data) ≈ (1 − α)² χ²(p̂_{m−1} ‖ p_data) + χ²(p̂_m ‖ q), which unrolls to S_m.

    >>> discounted_sum(np.ones(4), np.full(4, 0.5)).tolist()  # 1, 1 + 1/4, 1 + 1/4 + 1/16, ...
    [1.0, 1.25, 1.3125, 1.328125]
    """
    terms, shares = np.broadcast_arrays(np.asarray(terms, float), np.asarray(shares, float))
    out = np.empty(terms.shape)
    out[..., 0] = terms[..., 0]
    for m in range(1, terms.shape[-1]):
        out[..., m] = (1 - shares[..., m]) ** 2 * out[..., m - 1] + terms[..., m]
    return out
