"""The curation view of a run whose loop curates its samples (a ``curate`` filter; Ferbach et al. 2024): the curator's
preferred category taking over. Built from the run directory alone.

- **Shares** (categorical and image families): per arm, the share of every category (the categorical fit's ``probs_``
  of replicate 0, kept for the report's pictures) or digit class (the instrument classifier's predicted classes of the
  generation's curated samples, ``class_counts`` kept by ``class_entropy``, averaged over the first shard's
  replicates) at each kept generation; the preferred one drawn thick.
- **Sentiment** (text): the mean sentiment of the fit's raw continuations (``mean_reward``) and of the kept ones
  (``curate_reward_kept``) per arm, beside ``distinct_2``; and a few kept continuations of the first and the last
  generation with their VADER score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..rundir.store import RunStore
from . import plots
from .gallery import kept_by_arm
from .pages import Picture

EXAMPLES = 3  # kept texts shown per arm and generation


def curate_spec(arm: dict) -> dict | None:
    """The ``curate`` filter of an arm's resolved config, or None."""
    return next((f for f in arm.get("loop", {}).get("filters") or [] if f.get("kind") == "curate"), None)


def preferred(spec: dict) -> tuple[int | None, str]:
    """The category the curator of ``spec`` prefers (an index, or None where the reward is not per category) and
    its description."""
    reward = spec["reward"] if isinstance(spec["reward"], dict) else {"kind": spec["reward"]}
    kind = reward["kind"]
    if kind == "table":
        values = np.asarray(reward["values"], float)
        best = int(values.argmax())
        return best, f"category {best} (reward {values[best]:g}, the highest)"
    if kind == "class-probability":
        return int(reward["label"]), f"class {reward['label']}"
    if kind == "sentiment":
        return None, "negative sentiment" if reward.get("scale", 1.0) < 0 else "positive sentiment"
    return None, f"a high {kind} reward"


def category_shares(store: RunStore) -> tuple[dict[str, dict[int, np.ndarray]], str]:
    """{arm: {generation: shares (C,)}} at every kept generation, and what they are the shares of."""
    classes: dict[str, dict[int, np.ndarray]] = {}
    fitted: dict[str, dict[int, np.ndarray]] = {}
    for arm, g, arrays in kept_by_arm(store):
        if "class_counts" in arrays:
            counts = np.asarray(arrays["class_counts"], float)
            classes.setdefault(arm, {})[g] = (counts / counts.sum(1, keepdims=True)).mean(0)
        elif "picture.probs_" in arrays:
            fitted.setdefault(arm, {})[g] = np.asarray(arrays["picture.probs_"], float)[0]
    if classes:
        return classes, "share of each predicted class among the curated samples (mean over replicates)"
    return fitted, "fitted probability of each category (replicate 0)"


def shares_figure(shares: dict[str, dict[int, np.ndarray]], best: dict[str, int | None], what: str, path: Path):
    """One panel per arm: each category's share against generation, the preferred one (``best[arm]``) thick and
    labelled, the others thin. Returns the (closed) Figure."""
    plt = plots.pyplot()
    arms = list(shares)
    cols = min(len(arms), 3)
    rows = -(-len(arms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 0.6, 2.8 * rows + 0.4), dpi=110, squeeze=False)
    for ax in axes.ravel()[len(arms) :]:
        ax.set_visible(False)
    for ax, arm in zip(axes.ravel(), arms):
        gens = sorted(shares[arm])
        table = np.stack([shares[arm][g] for g in gens])  # (generations, categories)
        for c in range(table.shape[1]):
            top = c == best.get(arm)
            ax.plot(
                gens,
                table[:, c],
                color="C3" if top else plots.pyplot().cm.Greys(0.35 + 0.5 * c / max(table.shape[1] - 1, 1)),
                lw=2.2 if top else 0.9,
                marker="o" if top else ".",
                ms=4 if top else 3,
                label=f"preferred: {c}" if top else ("others" if c == (1 if best.get(arm) == 0 else 0) else None),
                zorder=3 if top else 2,
            )
        ax.set_title(arm, fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        plots.generation_axis(ax)
    for ax in axes[:, 0]:
        ax.set_ylabel("share")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle(what, fontsize=9)
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig


def sentiment_figure(data: dict, arms: list[str], path: Path, choosing: tuple[str, ...] = ()):
    """Left: the mean reward of the fit's raw draws (``mean_reward``, solid) per arm against generation, and of the
    kept records (``curate_reward_kept``, dotted) for the arms in ``choosing`` (k > 1: the others keep what they
    draw); right: ``distinct_2`` per arm (where measured). Medians across replicates, interquartile bands. Returns the
    (closed) Figure."""
    panels = [("mean_reward", "curate_reward_kept")] + (
        [("distinct_2",)] if any((a, "distinct_2") in data for a in arms) else []
    )
    fig, axes = plots.pyplot().subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=110, squeeze=False)
    for ax, metrics in zip(axes[0], panels):
        for i, arm in enumerate(arms):
            for metric, style in zip(metrics, ("-", ":")):
                c = data.get((arm, metric))
                if c is None or (metric == "curate_reward_kept" and arm not in choosing):
                    continue
                label = arm if metric == metrics[0] else f"{arm}: kept records"
                ax.plot(c.generations, c.median, color=f"C{i}", ls=style, lw=1.6, marker=".", label=label)
                ax.fill_between(c.generations, c.q25, c.q75, color=f"C{i}", alpha=0.15, lw=0)
        ax.set_ylabel("sentiment (VADER compound)" if metrics[0] == "mean_reward" else metrics[0])
        title = "sentiment: the fit's draws (solid), the kept (dotted)" if metrics[0] == "mean_reward" else "diversity"
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        plots.generation_axis(ax)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    plots.save_figure(fig, path)
    return fig


def example_texts(store: RunStore, most: int = EXAMPLES) -> list[tuple[str, list[tuple[int, str, str]]]]:
    """Per arm, the first ``most`` kept texts of replicate 0 at the first and last kept generation, each with its
    VADER compound score (blank without ``vaderSentiment``): ``[(arm, [(generation, score, text)])]``."""
    texts: dict[str, dict[int, np.ndarray]] = {}
    for arm, g, arrays in kept_by_arm(store):
        if "sample_text" in arrays:
            texts.setdefault(arm, {})[g] = np.asarray(arrays["sample_text"])[0, :most]
    try:
        from ..plugins.metrics.prose import positivity

        positivity("")
    except ImportError:
        positivity = None
    out = []
    for arm, by_gen in texts.items():
        gens = sorted({min(by_gen), max(by_gen)})
        rows = [
            (g, "" if positivity is None else f"{positivity(str(t)):+.2f}", str(t)) for g in gens for t in by_gen[g]
        ]
        out.append((arm, rows))
    return out


def section(store: RunStore, data: dict, arms: dict[str, dict]) -> dict[str, Any] | None:
    """What ``section_curation.html.j2`` shows (``figures``, ``texts``, ``preferred``: a line per arm), writing the
    figures to ``figures/``; None unless some arm curates."""
    specs = {arm: spec for arm, a in arms.items() if (spec := curate_spec(a)) is not None}
    if not specs:
        return None
    best = {arm: preferred(spec) for arm, spec in specs.items()}
    lines = [
        f"{arm}: keeps 1 of k = {spec.get('k', 2)}, β = {spec.get('beta', 1.0):g}, preferring {best[arm][1]}"
        for arm, spec in specs.items()
    ]
    figures = []
    shares, what = category_shares(store)
    if shares:
        path = store.root / "figures" / "curation-shares.png"
        shares_figure(shares, {arm: b[0] for arm, b in best.items()}, what, path)
        figures.append(Picture.of(path))
    texts = []
    if any(spec["reward"].get("kind") == "sentiment" for spec in specs.values() if isinstance(spec["reward"], dict)):
        path = store.root / "figures" / "curation-sentiment.png"
        choosing = tuple(arm for arm, spec in specs.items() if spec.get("k", 2) != 1)
        sentiment_figure(data, list(arms), path, choosing)
        figures.append(Picture.of(path))
        texts = example_texts(store)
    return {"preferred": lines, "figures": figures, "texts": texts}
