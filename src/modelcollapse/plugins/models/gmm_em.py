"""Array programs of batched EM for Gaussian mixtures (the ``gmm`` family's inner loops), each on all replicates at
once: quadratic features, E-steps, k-means initialisation, closed-form small-matrix inverses.

Shapes: records ``(R, n, d)``, features ``(R, F, n)`` with F = d(d+1)/2 + d + 1, coefficients ``(R, k, F)``,
responsibilities ``(R, k, n)``, sufficient statistics ``(R, k, F)``. Costs on this scale are of two kinds, and the
functions here are written against both: passes over the ``(R, n)`` records (an ``exp`` costs ~20 arithmetic passes,
a ``log`` ~30), and numpy calls (a few µs each, which is the whole cost once only a few replicates are left
iterating).
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.cache
def triu(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major upper-triangle indices ``(iu, ju)`` of a d×d matrix, and each entry's weight in a symmetric quadratic
    form (1 on the diagonal, 2 off it). Cached: EM asks for them every iteration."""
    iu, ju = np.triu_indices(d)
    return iu, ju, np.where(iu == ju, 1.0, 2.0)


@functools.cache
def square_layout(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices between a symmetric d×d matrix flattened row-major (d² entries) and its upper triangle in the
    order of :func:`triu`: ``upper`` ``(d(d+1)/2,)`` picks the triangle out of the flat matrix, ``full`` ``(d²,)``
    every entry of the matrix out of the triangle. One ``take`` each way: a pair of fancy indices costs 2-3x more."""
    iu, ju, _ = triu(d)
    position = np.empty((d, d), np.int64)
    position[iu, ju] = position[ju, iu] = np.arange(len(iu))
    return iu * d + ju, position.ravel()


def cholesky(cov: np.ndarray, floor: float) -> np.ndarray:
    """Lower Cholesky factors of ``cov`` ``(..., d, d)``; if any matrix is not numerically positive definite (rounding
    in a collapsed component), the eigenvalues of all are clipped at ``floor`` first."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return np.linalg.cholesky((v * np.clip(w, floor, None)[..., None, :]) @ np.swapaxes(v, -1, -2))


ADJUGATE_SIGN = np.array([[1.0, -1.0], [-1.0, 1.0]])  # 2×2 adjugate: the matrix flipped on both axes, times these


def precision(cov: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverses ``(..., d, d)`` and log-determinants ``(...)`` of covariances ``cov`` ``(..., d, d)``; if any matrix is
    not numerically positive definite, the eigenvalues of all are clipped at ``floor`` first (as :func:`cholesky`).
    d ≤ 2 in closed form (Σ⁻¹ = adj Σ / det Σ): at EM's batch sizes LAPACK's per-matrix cost exceeds the arithmetic."""
    d = cov.shape[-1]
    if d == 1 and (cov > 0).all():
        return 1.0 / cov, np.log(cov[..., 0, 0])
    if d == 2:
        det = cov[..., 0, 0] * cov[..., 1, 1] - cov[..., 0, 1] * cov[..., 1, 0]
        if np.minimum(cov[..., 0, 0], det).min(initial=np.inf) > 0:  # positive definite: one test, not two
            return cov[..., ::-1, ::-1] * ADJUGATE_SIGN / det[..., None, None], np.log(det)
    lower = cholesky(cov, floor)
    inv = np.linalg.inv(lower)
    return np.swapaxes(inv, -1, -2) @ inv, 2 * np.log(np.diagonal(lower, axis1=-2, axis2=-1)).sum(-1)


def lower_apply(lower: np.ndarray, z, pick=lambda a: a) -> list[np.ndarray]:
    """``y_i = Σ_j L_ij z_j`` for lower-triangular ``lower`` ``(..., d, d)`` and coordinates ``z`` (d arrays).

    ``pick(lower[..., i, j])`` must broadcast against each ``z[j]`` (it gathers per-record entries in sampling);
    returns the d coordinates of ``y`` as a list. Explicit arithmetic: faster than matmul on tiny matrices.
    """
    d = lower.shape[-1]
    out = []
    for i in range(d):
        y = pick(lower[..., i, 0]) * z[0]
        for j in range(1, i + 1):
            y += pick(lower[..., i, j]) * z[j]
        out.append(y)
    return out


def features(x: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """Quadratic features φ(y) = [yᵢyⱼ (i ≤ j, row-major upper triangle), y₁..y_d, 1] of the records y = x − shift,
    for ``x`` ``(R, n, d)`` and ``shift`` ``(R, d)`` (default none); shape ``(R, F, n)`` with F = d(d+1)/2 + d + 1. A
    Gaussian's log density is linear in them. The shift is applied after the transpose (numpy broadcasts slowly over
    a last axis of length d), in the same pass; the transpose is a plain copy when ``x`` is the ``(R, n, d)`` view of
    an ``(R, d, n)`` array (as :meth:`GMM.sample` returns)."""
    R, n, d = x.shape
    q = d * (d + 1) // 2
    out = np.empty((R, q + d + 1, n))
    if shift is None:
        out[:, q:-1] = np.swapaxes(x, 1, 2)
    else:
        np.subtract(np.swapaxes(x, 1, 2), shift[..., None], out=out[:, q:-1])
    for row, (i, j) in enumerate(zip(*triu(d)[:2])):  # plain row products: fancy indexing here is 10x slower
        np.multiply(out[:, q + i], out[:, q + j], out=out[:, row])
    out[:, -1] = 1.0
    return out


@functools.cache
def feature_dim(F: int) -> int:
    """The d with d(d+1)/2 + d + 1 = F."""
    return int(round((-3 + np.sqrt(9 - 8 * (1 - F))) / 2))


def rows_times(coef: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """``Σ_f coef[r, c, f] phi[r, f, n]``: ``(R, c, n)`` from coefficients ``coef`` ``(R, c, F)`` and features ``phi``
    ``(R, F, n)``. One matrix-vector product per row c, written in place: numpy's batched matmul with several rows
    takes a slow generic path. Features shared by every replicate (``phi`` ``(1, F, n)``) take one matrix product."""
    R, c, F = coef.shape
    if phi.shape[0] == 1 and R > 1:
        return (coef.reshape(R * c, F) @ phi[0]).reshape(R, c, -1)
    if c == 1:
        return coef @ phi
    out = np.empty((R, c, phi.shape[-1]))
    for j in range(c):
        np.matmul(coef[:, j : j + 1], phi, out=out[:, j : j + 1])
    return out


def component_stats(phi: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """Sufficient statistics Σₙ r_cn φ(xₙ) ``(R, c, F)`` — Σ r xᵢxⱼ, Σ r xᵢ, Σ r — of responsibilities ``resp``
    ``(R, c, n)`` and features ``phi`` ``(R, F, n)``, one matrix-vector product per component."""
    return np.stack([(phi @ resp[:, j, :, None])[..., 0] for j in range(resp.shape[1])], axis=1)


def sum_log(factors: np.ndarray, top: float) -> np.ndarray:
    """Σ log(factors) over the last axis of ``factors`` ``(R, n)``, whose entries lie in [1, ``top``], as the logs of
    block products: one log per block instead of one per entry (a log costs about 30 multiplies). Blocks are short
    enough that a product stays below 2^1000."""
    block = max(1, int(1000 / math.log2(max(top, 2.0))))
    if factors.shape[-1] <= block:
        return np.log(np.prod(factors, axis=-1))
    return sum(np.log(np.prod(factors[:, i : i + block], axis=-1)) for i in range(0, factors.shape[-1], block))


SATURATED = 40.0  # for t ≥ 40, exp(−t) < 2⁻⁵³ (half an ulp of 1): 1 + exp(−t) rounds to exactly 1.0 in float64
SPARSE_BELOW = 0.5  # computing only the records that need an exp pays off below this share of them (measured)


def one_plus_exp_neg(t: np.ndarray) -> np.ndarray:
    """1 + exp(−t) for t ≥ 0 (C-contiguous, any shape), written over ``t`` and returned; bit-identical to the direct
    formula.

    Without AVX-512, numpy's float64 ``exp`` is libm's, one record at a time: ~6 ns each, ~5x that where the result
    underflows (t > 745). Well-separated components (a collapsing chain) put most records' log-odds there, and for
    t ≥ ``SATURATED`` the sum is exactly 1 anyway. So when few records are below ``SATURATED``, only theirs are
    gathered and computed; otherwise t is clipped there (no underflow) and all are computed.
    """
    flat = t.reshape(-1)
    near = np.logical_not(flat >= SATURATED)  # not `flat < SATURATED`: a NaN is computed, and stays NaN
    if np.count_nonzero(near) >= SPARSE_BELOW * flat.size:
        np.minimum(flat, SATURATED, out=flat)
        np.negative(flat, out=flat)
        np.exp(flat, out=flat)
        flat += 1.0
        return t
    near = np.flatnonzero(near)
    e = flat[near]
    np.negative(e, out=e)
    np.exp(e, out=e)
    e += 1.0
    flat.fill(1.0)
    flat[near] = e
    return t


def two_component_evidence(coef: np.ndarray, phi: np.ndarray, total: np.ndarray):
    """Log-odds, u and log-likelihood of two-component mixtures, from the log-joint coefficients ``coef``
    ``(R, 2, F)`` (c·φ(x) = log wₖ + log N(x; μₖ, Σₖ)), features ``phi`` ``(R, F, n)`` (or ``(1, F, n)``, shared)
    and their sums over records ``total`` ``(R, F)`` (or ``(F,)``).

    With a, b the two log joints, the log-odds g = a − b and u = 1 + exp(−|g|) ∈ (1, 2] (never overflows),
    log p = max(a, b) + log u = (a + b)/2 + |g|/2 + log u. So the sum over records costs one matrix-vector product
    (for g), one ``exp`` per record and a few passes: Σ(a + b) is a coefficient · ``total`` product and Σ log u the
    logs of block products (:func:`sum_log`). Returns g ``(R, 1, n)``, u ``(R, 1, n)``, Σₙ log p(xₙ) ``(R,)``.
    """
    g = rows_times(coef[:, :1] - coef[:, 1:], phi)  # (R, 1, n)
    u = np.abs(g)
    ll = u.sum(-1)[:, 0] + ((coef[:, 0] + coef[:, 1]) * total).sum(-1)  # Σ|g| + Σ(a + b)
    one_plus_exp_neg(u)
    return g, u, 0.5 * ll + sum_log(u[:, 0], 2.0)


def two_component_estep(coef: np.ndarray, phi: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E-step of two-component mixtures: sufficient statistics of the responsibilities ``(R, 2, F)`` and the mean
    log-likelihood per record ``(R,)`` (arguments and log-likelihood as :func:`two_component_evidence`).

    r₀ − ½ = sign(g)·(1/u − ½) and r₁ = 1 − r₀, so the statistics are ½·total ± one matrix-vector product with
    r₀ − ½. Few numpy calls: when only a few replicates are left iterating, their cost is the call overhead.
    """
    R, F, n = phi.shape
    g, u, ll = two_component_evidence(coef, phi, total)
    np.reciprocal(u, out=u)
    u -= 0.5
    np.copysign(u, g, out=u)  # r₀ − ½
    tilt = (phi @ np.swapaxes(u, 1, 2))[..., 0]  # (R, F): Σ (r₀ − ½) φ
    half, sums = 0.5 * total, np.empty((R, 2, F))
    np.add(half, tilt, out=sums[:, 0])
    np.subtract(half, tilt, out=sums[:, 1])
    return sums, ll / n


def normalise(joint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities ``(R, k, n)`` and log p(x) ``(R, n)`` from the log joint ``(R, k, n)``.

    Two components: with e = exp(−|a − b|), the responsibilities are 1/(1 + e) and e/(1 + e), each to full relative
    precision (population EM relies on it), and log p = max(a, b) + log(1 + e).
    """
    if joint.shape[1] == 2:
        a, b = joint[:, 0], joint[:, 1]
        top, gap = np.maximum(a, b), a - b
        e = np.exp(-np.abs(gap))
        big = 1.0 / (1.0 + e)
        small = e * big
        resp = np.empty(joint.shape)
        ahead = gap >= 0
        resp[:, 0] = np.where(ahead, big, small)
        resp[:, 1] = np.where(ahead, small, big)
        return resp, top + np.log1p(e)
    top = joint.max(1)
    e = np.exp(joint - top[:, None, :])
    total = e.sum(1)
    return e / total[:, None, :], top + np.log(total)


def mixture_estep(coef: np.ndarray, phi: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E-step for any number of components: statistics ``(R, k, F)`` and mean log-likelihood per record ``(R,)``
    (arguments as :func:`two_component_estep`; ``total`` is unused)."""
    resp, log_p = normalise(rows_times(coef, phi))
    return component_stats(phi, resp), log_p.mean(1)


def log_evidence(joint: np.ndarray) -> np.ndarray:
    """log Σₖ exp(joint) ``(R, n)`` of the log joint ``(R, k, n)``; two components: max(a, b) + log(1 + e^−|a−b|)
    (``log`` of 1 + e, not ``log1p``: the absolute error stays below 1.2e-16, at two thirds of the cost)."""
    if joint.shape[1] == 2:
        a, b = joint[:, 0], joint[:, 1]
        u = one_plus_exp_neg(np.abs(a - b))
        np.log(u, out=u)
        return np.maximum(a, b) + u
    top = joint.max(1)
    return top + np.log(np.exp(joint - top[:, None, :]).sum(1))


def nearest(dist: np.ndarray) -> np.ndarray:
    """``dist.argmin(1)`` for ``(R, k, n)``, as k vectorised comparisons (argmin over a short middle axis is slow)."""
    if dist.shape[1] == 2:
        return np.less(dist[:, 1], dist[:, 0]).astype(np.int64)
    best, label = dist[:, 0], np.zeros(dist[:, 0].shape, np.int64)
    for c in range(1, dist.shape[1]):
        closer = dist[:, c] < best
        best, label = np.where(closer, dist[:, c], best), np.where(closer, c, label)
    return label


def distinct_records(R: int, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct record indices in [0, n) per replicate, ``(R, k)``: a uniformly random subset (Floyd's
    algorithm, vectorised over replicates: k small draws instead of sorting n random keys)."""
    pick = np.empty((R, k), np.int64)
    for i, top in enumerate(range(n - k, n)):
        t = rng.integers(0, top + 1, R)
        pick[:, i] = np.where((pick[:, :i] == t[:, None]).any(1), top, t)
    return pick


def plus_plus_centres(coords: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with the greedy trials scikit-learn's ``KMeans`` uses),
    batched over replicates: records as coordinate rows ``coords`` ``(R, d, n)`` -> centres ``(R, k, d)``.

    The first centre is a uniformly random record; each next one is the best of ``2 + ⌊ln k⌋`` candidates drawn with
    probability ∝ D² (squared distance to the nearest centre so far), "best" meaning the smallest total D² after
    adding it. Separated modes then get a centre each with high probability, where ``k`` random records often put two
    centres in one mode. Distances are summed coordinate by coordinate (d is small; no ``(R, trials, n, d)`` array).
    """
    R, d, n = coords.shape
    trials = 2 + int(np.log(k))
    rows = np.arange(R)
    centres = [coords[rows, :, rng.integers(0, n, R)]]  # (R, d)
    closest = sum((coords[:, j] - centres[0][:, j, None]) ** 2 for j in range(d))  # (R, n)
    for _ in range(1, k):
        cum = np.cumsum(closest, axis=1)
        u = rng.random((R, trials)) * cum[:, -1:]
        pick = (cum[:, None, :] >= u[..., None]).argmax(-1)  # (R, trials): inverse-CDF draws (the first cum >= u)
        cand = np.stack([np.take_along_axis(coords[:, j], pick, axis=1) for j in range(d)], axis=-1)  # (R, trials, d)
        d2 = sum((coords[:, None, j, :] - cand[:, :, j, None]) ** 2 for j in range(d))  # (R, trials, n)
        np.minimum(d2, closest[:, None, :], out=d2)
        best = d2.sum(-1).argmin(1)  # (R,)
        centres.append(cand[rows, best])
        closest = d2[rows, best]
    return np.stack(centres, axis=1)


def kmeans_labels(
    linear: np.ndarray, k: int, steps: int, rng: np.random.Generator, seeding: str = "random", tol: float = 0.0
) -> np.ndarray:
    """Lloyd's k-means cluster labels ``(R, n)`` (int) of the records whose coordinate rows x₁..x_d, followed by a row
    of ones, are ``linear`` ``(R, d + 1, n)``.

    ``seeding``: ``"random"``, ``k`` distinct records per replicate are the first centres; ``"k-means++"``, the
    greedy k-means++ centres of :func:`plus_plus_centres`. ``tol``: a replicate is also done once its centres move by
    at most ``tol`` × the mean per-coordinate variance of its records in total squared distance (scikit-learn's
    ``KMeans`` rule; 0: only when they stop moving). Then up to ``steps`` rounds (at least one) of
    assign-to-nearest and recentre. A cluster that empties keeps its centre. A replicate whose centres no longer move
    is done (its next assignment would repeat the last); the batch sheds its finished replicates once they are half
    of it (most replicates use every step, and each shedding copies the records). Two clusters: one margin per record,
    and the first cluster's sums are the totals minus the second's.
    """
    R, _, n = linear.shape
    if seeding == "k-means++":
        centres = plus_plus_centres(linear[:, :-1], k, rng)
    else:
        pick = distinct_records(R, n, k, rng)
        centres = np.swapaxes(np.take_along_axis(linear[:, :-1], pick[:, None, :], axis=2), 1, 2)  # (R, k, d)
    total = linear.sum(-1)  # (R, d + 1)
    labels, idx, live = np.empty((R, n), np.int64), np.arange(R), np.ones(R, bool)
    bound = None
    if tol > 0:  # (R,): tol × mean variance of the coordinates
        mean = total[:, :-1] / n
        bound = tol * ((linear[:, :-1] ** 2).sum(-1) / n - mean**2).mean(-1)
    for step in range(max(steps, 1)):
        coef = np.concatenate(
            [-2 * centres, (centres**2).sum(-1, keepdims=True)], axis=-1
        )  # ‖x − c‖² − ‖x‖² = coef·[x, 1]
        if k == 2:  # one margin per record: new (R, n) is 1.0 where closer to centre 1, else 0.0
            new = (rows_times(coef[:, 1:] - coef[:, :1], linear)[:, 0] < 0).astype(float)
            second = component_stats(linear, new[:, None, :])[:, 0]
            sums = np.stack([total - second, second], axis=1)  # (R, 2, d + 1)
        else:
            new = nearest(rows_times(coef, linear))
            sums = component_stats(linear, (new[:, None, :] == np.arange(k)[:, None]).astype(float))
        counts = sums[..., -1:]
        moved = np.where(counts > 0, sums[..., :-1] / np.maximum(counts, 1), centres)
        still = (moved == centres).all((1, 2)) if tol == 0 else ((moved - centres) ** 2).sum((1, 2)) <= bound
        settled = live & (still | (step == max(steps, 1) - 1))
        labels[idx[settled]] = new[settled]
        live &= ~settled
        if not live.any():
            break
        centres = moved
        if 2 * live.sum() <= len(idx):
            if tol > 0:
                bound = bound[live]
            idx, linear, total, centres, live = idx[live], linear[live], total[live], centres[live], live[live]
    return labels
