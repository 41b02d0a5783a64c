"""The divergence view of Khelifa, Turner and Venkataramanan (ICML 2026, arXiv 2602.16601): does the accumulated
divergence follow the discounted sum of the one-step divergences?

Generation m is fitted to records of q_{m−1} = α_m·p_data + (1 − α_m)·p̂_{m−1} (α_m its training set's real share;
generation 0 to the data alone). Per replicate and generation, on the grid the ``chi2_to_data`` / ``kl_to_data``
metrics keep (``plugins/metrics/divergence.py``: the first shard's first 64 replicates):

* the accumulated divergence D_m = div(p̂_m ‖ p_data);
* the one-step divergence e_m = div(p̂_m ‖ q_{m−1}) (e_0 = D_0): what generation m's own fit adds;
* the discounted sum S_m = Σ_k Π_{j=k+1..m} (1 − α_j)² e_k (:func:`~.theory.discounted_sum`), which their bound says
  D_m follows (for χ²; KL ≈ χ²/2 near p_data, so the same discount is drawn for it);
* the plain sum Σ_k e_k, what D_m would be if nothing were forgotten.

docs/theory.md states what is compared and why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..measures.grid import grid_chi2, grid_kl
from ..rundir.store import RunStore
from . import plots
from .gallery import kept_by_arm
from .pages import Picture
from .theory import discounted_sum

KERNELS = {"χ²": grid_chi2, "KL": grid_kl}  # the divergences drawn, in the figure's row order


@dataclass
class GridFits:
    """One arm's kept grid densities: ``log_fit`` ``(R, M, G)`` (generations 0..M−1), ``log_data`` ``(G,)``,
    ``cell`` the cell volume, ``shares`` ``(R, M)`` the real share α_m of each training set."""

    log_fit: np.ndarray
    log_data: np.ndarray
    cell: float
    shares: np.ndarray


def grid_fits(run: RunStore | Path) -> dict[str, GridFits]:
    """{arm name: GridFits} of every arm whose metrics kept grid densities, over its generations 0..M−1 with no gap
    (a one-step divergence needs the generation before)."""
    kept: dict[str, dict[int, dict]] = {}
    for arm, generation, arrays in kept_by_arm(run):
        if "grid_log_fit" in arrays:
            kept.setdefault(arm, {})[generation] = arrays
    out = {}
    for arm, by_gen in kept.items():
        gens = list(itertools.takewhile(by_gen.__contains__, itertools.count()))
        if not gens:
            continue
        first = by_gen[0]
        out[arm] = GridFits(
            np.stack([by_gen[g]["grid_log_fit"].astype(float) for g in gens], 1),
            first["grid_log_data"],
            float(first["grid_cell"][0]),
            np.stack([by_gen[g]["grid_real_share"] for g in gens], 1),
        )
    return out


def training_log_density(fits: GridFits) -> np.ndarray:
    """log q_{m−1} ``(R, M, G)``: the log density generation m was trained on, α_m·p_data + (1 − α_m)·p̂_{m−1}
    (p_data for generation 0)."""
    alpha = fits.shares[..., None]
    previous = np.concatenate([np.broadcast_to(fits.log_data, fits.log_fit[:, :1].shape), fits.log_fit[:, :-1]], 1)
    with np.errstate(divide="ignore"):  # log 0 for α = 0 or 1: logaddexp takes −inf
        return np.logaddexp(np.log(alpha) + fits.log_data, np.log1p(-alpha) + previous)


def divergences(fits: GridFits, kernel) -> dict[str, np.ndarray]:
    """``accumulated`` D_m, ``one_step`` e_m, ``discounted`` S_m and ``plain`` Σ_{k≤m} e_k, each ``(R, M)``, with
    ``kernel`` one of :data:`KERNELS`' (module docstring)."""
    one_step = kernel(fits.log_fit, training_log_density(fits), fits.cell)  # e_0 = D_0: α_0 = 1, so q_{−1} = p_data
    return {
        "accumulated": kernel(fits.log_fit, fits.log_data, fits.cell),
        "one_step": one_step,
        "discounted": discounted_sum(one_step, fits.shares),
        "plain": np.cumsum(one_step, 1),
    }


def arm_alpha(fits: GridFits) -> float:
    """The arm's real share α after generation 0 (median over replicates and generations; 0 with one generation)."""
    return float(np.median(fits.shares[:, 1:])) if fits.shares.shape[1] > 1 else 0.0


def table_rows(arm: str, alpha: float, name: str, d: dict[str, np.ndarray]) -> list[str]:
    """One row of the view's table: the last generation's medians of D, S, D / S and Σ e, and the share of
    (replicate, generation ≥ 1) pairs where D_m ≤ S_m."""
    last = {k: v[:, -1] for k, v in d.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = last["accumulated"] / last["discounted"]
    below = (d["accumulated"][:, 1:] <= d["discounted"][:, 1:]).mean() if d["accumulated"].shape[1] > 1 else 1.0
    return [
        arm,
        f"{alpha:g}",
        name,
        str(d["accumulated"].shape[1] - 1),
        f"{np.median(last['one_step']):.3g}",
        f"{np.median(last['accumulated']):.3g}",
        f"{np.median(last['discounted']):.3g}",
        f"{np.median(ratio):.3g}",
        f"{np.median(last['plain']):.3g}",
        f"{below:.0%}",
    ]


def section(run: RunStore | Path) -> dict | None:
    """What ``section_divergence.html.j2`` shows: the ``figure`` (``figures/divergence.png``) and ``rows`` (a row
    per arm and divergence, :func:`table_rows`); None when no arm kept grid densities."""
    store = RunStore.of(run)
    fits = grid_fits(store)
    if not fits:
        return None
    panels, rows = {}, []
    for arm, f in fits.items():
        alpha = arm_alpha(f)
        panels[arm] = (alpha, {name: divergences(f, kernel) for name, kernel in KERNELS.items()})
        rows += [table_rows(arm, alpha, name, d) for name, d in panels[arm][1].items()]
    path = store.root / "figures" / "divergence.png"
    divergence_figure(panels, path)
    return {"figure": Picture.of(path), "rows": rows}


STYLE = {  # what each curve is drawn as: (label, line style, colour)
    "accumulated": ("accumulated D_m = div(p̂_m ‖ p_data)", "-", "C0"),
    "discounted": ("discounted sum S_m = Σ (1−α)^{2(m−k)} e_k", "--", "C3"),
    "plain": ("plain sum Σ e_k (no discount)", ":", "0.5"),
    "one_step": ("one-step e_m = div(p̂_m ‖ α p_data + (1−α) p̂_{m−1})", "-", "0.75"),
}


def divergence_figure(panels: dict, path: Path):
    """The divergence view: a column per arm (``panels[arm]`` = (α, {divergence name: :func:`divergences`})), a row
    per divergence (χ², KL); in each panel the median over replicates of D_m (with its interquartile band), S_m,
    Σ e_k and e_m against the generation, log y. Returns the (closed) Figure."""
    plt = plots.pyplot()
    names = list(KERNELS)
    fig, axes = plt.subplots(
        len(names), len(panels), figsize=(4.6 * len(panels), 3.4 * len(names)), dpi=110, squeeze=False, sharex=True
    )
    for col, (arm, (alpha, by_name)) in enumerate(panels.items()):
        for row, name in enumerate(names):
            ax, d = axes[row, col], by_name[name]
            gens = np.arange(d["accumulated"].shape[1])
            for key, (label, style, colour) in STYLE.items():
                ax.plot(
                    gens,
                    np.median(d[key], 0),
                    ls=style,
                    color=colour,
                    lw=1.6 if key != "one_step" else 1.0,
                    label=label,
                )
            lo, hi = np.percentile(d["accumulated"], [25, 75], 0)
            ax.fill_between(gens, lo, hi, color="C0", alpha=0.2, lw=0)
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.set_title(f"{arm} (α = {alpha:g}): {name}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{name} (median over replicates)")
            if row == len(names) - 1:
                plots.generation_axis(ax)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig
