"""What a person would rather look at than read: image grids and text samples per generation, and the Nature
paper's Fig. 1 — histograms of per-sequence perplexity of each generation's training data under the generation-0
model. Built from the arrays metrics keep in ``arrays/`` (see ``metrics/images.py`` and ``metrics/text.py``)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np

from .plots import image_grid_figure, perplexity_figure
from ..rundir.columns import load_arrays
from ..rundir.store import RunStore

NAME = re.compile(r"arm(\d{3})-shard(\d{3})-gen(\d{6})\.npz")


def kept_by_arm(run: RunStore | Path):
    """(arm name, generation, arrays) of every array file the loop kept in ``arrays/`` (first shard only)."""
    store = RunStore.of(run)
    arms = store.read_manifest().get("arms", [])
    for path in sorted((store.root / "arrays").glob("arm*-shard000-gen*.npz")):
        match = NAME.fullmatch(path.name)
        if match and int(match[1]) < len(arms):
            yield arms[int(match[1])], int(match[3]), load_arrays(path)


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


def image_grids(run: RunStore | Path) -> list[Path]:
    """One PNG per arm: rows are generations, columns the first 12 generated images of replicate 0."""
    paths = []
    for arm, by_gen in kept_arrays(run, "sample_grid").items():
        gens = pick_generations(sorted(by_gen))
        path = figure_path(run, "samples", arm)
        image_grid_figure({g: by_gen[g] for g in gens}, arm, path)
        paths.append(path)
    return paths


def perplexity_histograms(run: RunStore | Path) -> list[Path]:
    """Fig. 1 of Shumailov et al.: per arm, the density of log₁₀ perplexity (under the generation-0 model) of each
    generation's training sequences, one line per generation."""
    paths = []
    for arm, by_gen in kept_arrays(run, "gen0_perplexity").items():
        gens = pick_generations(sorted(by_gen))
        path = figure_path(run, "perplexity-hist", arm)
        perplexity_figure({g: by_gen[g] for g in gens}, arm, path)
        paths.append(path)
    return paths


def text_samples(run: RunStore | Path) -> str:
    """HTML: per arm, the first kept sample text of replicate 0 at a few generations, side by side."""
    blocks = []
    for arm, by_gen in kept_arrays(run, "sample_text").items():
        rows = "".join(
            f"<tr><td>gen {g}</td><td style='text-align:left'>{html.escape(str(by_gen[g].ravel()[0]))}</td></tr>"
            for g in pick_generations(sorted(by_gen))
        )
        blocks.append(f"<h4>{html.escape(arm)}</h4><table>{rows}</table>")
    return "".join(blocks)


def gallery_section(run: RunStore | Path, img) -> str:
    """The gallery's HTML (empty when the run kept no arrays). ``img(path)`` embeds a PNG."""
    store = RunStore.of(run)
    if not (store.root / "arrays").exists():
        return ""
    figures = [img(p) for p in image_grids(store) + perplexity_histograms(store)]
    texts = text_samples(store)
    if not figures and not texts:
        return ""
    return f"<h3>Samples by generation</h3><div class='figs'>{''.join(figures)}</div>{texts}"
