"""What a person would rather look at than read: image grids and text samples per generation, and the Nature
paper's Fig. 1 — histograms of per-sequence perplexity of each generation's training data under the generation-0
model. Built from the arrays metrics keep in ``arrays/`` (see ``metrics/images.py`` and ``metrics/text.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..rundir.store import RunStore
from . import plots
from .pages import Picture

NAME = re.compile(r"arm(\d{3})-shard(\d{3})-gen(\d{6})\.npz")


def kept_by_arm(run: RunStore | Path):
    """(arm name, generation, arrays) of every array file the loop kept in ``arrays/`` (first shard only)."""
    store = RunStore.of(run)
    arms = store.read_manifest().get("arms", [])
    for path in sorted((store.root / "arrays").glob("arm*-shard000-gen*.npz")):
        match = NAME.fullmatch(path.name)
        if match and int(match[1]) < len(arms):
            yield arms[int(match[1])], int(match[3]), store.load_extra(int(match[1]), 0, int(match[3]))


def kept_arrays(run: RunStore | Path, key: str) -> dict[str, dict[int, np.ndarray]]:
    """{arm name: {generation: array}} of one kept array (first shard only), from ``arrays/``."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for arm, generation, arrays in kept_by_arm(run):
        if key in arrays:
            out.setdefault(arm, {})[generation] = arrays[key]
    return out


def figure_path(run: RunStore | Path, prefix: str, arm: str) -> Path:
    """``figures/PREFIX-ARM.png``, the arm's name made safe for a file name."""
    return RunStore.of(run).root / "figures" / f"{prefix}-{re.sub(r'[^A-Za-z0-9._-]', '_', arm)}.png"


def pick_generations(generations: list[int], most: int = 6) -> list[int]:
    """At most ``most`` generations, evenly spread, first and last included."""
    if len(generations) <= most:
        return generations
    return [generations[i] for i in np.unique(np.linspace(0, len(generations) - 1, most).round().astype(int))]


def per_arm_figures(run: RunStore | Path, key: str, name: str, draw) -> list[Path]:
    """One PNG per arm, ``figures/NAME-ARM.png``: ``draw({generation: array}, arm, path)`` of the kept arrays
    ``key`` at a few generations (:func:`pick_generations`)."""
    paths = []
    for arm, by_gen in kept_arrays(run, key).items():
        gens = pick_generations(sorted(by_gen))
        path = figure_path(run, name, arm)
        draw({g: by_gen[g] for g in gens}, arm, path)
        paths.append(path)
    return paths


def image_grids(run: RunStore | Path) -> list[Path]:
    """One PNG per arm: rows are generations, columns the first 12 generated images of replicate 0."""
    return per_arm_figures(run, "sample_grid", "samples", image_grid_figure)


def perplexity_histograms(run: RunStore | Path) -> list[Path]:
    """Fig. 1 of Shumailov et al.: per arm, the density of log₁₀ perplexity (under the generation-0 model) of each
    generation's training sequences, one line per generation."""
    return per_arm_figures(run, "gen0_perplexity", "perplexity-hist", perplexity_figure)


def text_samples(run: RunStore | Path) -> list[tuple[str, list[tuple[int, str]]]]:
    """Per arm, the first kept sample text of replicate 0 at a few generations: ``[(arm, [(generation, text)])]``."""
    return [
        (arm, [(g, str(by_gen[g].ravel()[0])) for g in pick_generations(sorted(by_gen))])
        for arm, by_gen in kept_arrays(run, "sample_text").items()
    ]


def gallery_section(run: RunStore | Path) -> dict | None:
    """What ``section_gallery.html.j2`` shows: ``figures`` (image grids, perplexity histograms) and ``texts`` (see
    :func:`text_samples`); None when the run kept no arrays to show."""
    store = RunStore.of(run)
    if not (store.root / "arrays").exists():
        return None
    figures = [Picture.of(p) for p in image_grids(store) + perplexity_histograms(store)]
    texts = text_samples(store)
    return {"figures": figures, "texts": texts} if figures or texts else None


def image_grid_figure(by_gen: dict, arm: str, path: Path):
    """Rows are generations, columns the first 12 images of replicate 0 (``by_gen[g]``: ``(R, m, h, w)`` in [0, 1]).
    Returns the (closed) Figure."""
    plt = plots.pyplot()
    gens = list(by_gen)
    cols = min(12, min(by_gen[g].shape[1] for g in gens))
    fig, axes = plt.subplots(len(gens), cols, figsize=(cols * 0.7, len(gens) * 0.8), squeeze=False)
    for row, g in enumerate(gens):
        for col in range(cols):
            ax = axes[row, col]
            ax.imshow(np.asarray(by_gen[g][0, col], float), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"gen {g}", fontsize=7)
    fig.suptitle(f"samples by generation: {arm}", fontsize=9)
    plots.save_figure(fig, path, dpi=90, bbox_inches="tight")
    return fig


def perplexity_figure(by_gen: dict, arm: str, path: Path):
    """Density of log₁₀ per-sequence perplexity, one line per generation (``by_gen[g]``: perplexities, any shape).
    Returns the (closed) Figure."""
    plt = plots.pyplot()
    gens = list(by_gen)
    values = {g: np.log10(np.clip(np.asarray(by_gen[g], float).ravel(), 1, None)) for g in gens}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    bins = np.linspace(finite.min(), finite.max(), 40) if finite.size else 10
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for i, g in enumerate(gens):
        ax.hist(
            values[g][np.isfinite(values[g])],
            bins=bins,
            density=True,
            histtype="step",
            color=plots.generation_color(i, len(gens)),
            label=f"generation {g}",
        )
    ax.set_xlabel("log10 perplexity under the generation-0 model (per sequence)")
    ax.set_ylabel("density")
    ax.set_title(f"training data by generation: {arm}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig
