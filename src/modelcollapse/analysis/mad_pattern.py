"""MAD's published pattern beside ours: a report section for runs with MAD's four loops (Alemohammad et al. 2024;
the arms ``fully-synthetic``, ``fully-synthetic-biased``, ``synthetic-augmentation``, ``fresh-data`` of
``mad-loops`` and the ``mad-diffusion-*`` presets), and, where the run records ``memorisation_share``, Shi et al.'s
(2025) shift from generalisation to memorisation.

Each claim is read off the median across replicates at generation 0 and at the arm's last generation, with a stated
rule; it is a reading of few replicates, not a test. The rules:

* fully synthetic loses quality and diversity: its precision and its recall both end below their generation-0 values;
* λ < 1 keeps precision and loses recall faster: the biased arm's last precision is at least 90% of its first, and its
  recall keeps a smaller share of its first than the unbiased arm's does;
* a fixed real set delays the decline: synthetic augmentation ends with a higher recall than fully synthetic;
* fresh data stabilises: the fresh-data arm's last recall is within 20% of its first;
* (Shi et al.) fully synthetic moves toward memorisation: its memorisation share ends above its first and above the
  fresh-data arm's last.
"""

from __future__ import annotations

ARMS = ("fully-synthetic", "fully-synthetic-biased", "synthetic-augmentation", "fresh-data")
HOLDS_SHARE = 0.9  # the biased arm "keeps" precision when it ends at no less than this share of its first
STABLE = 0.2  # fresh data "stabilises" when its recall ends within this relative distance of its first


def ends(data: dict, arm: str, metric: str) -> tuple[float, float, int]:
    """(median at the first generation, median at the last, the last generation) of one arm's metric."""
    c = data[(arm, metric)]
    return float(c.median[0]), float(c.median[-1]), int(c.generations[-1])


def pattern_rows(data: dict) -> list[dict] | None:
    """The section's rows (``claim``, ``source``, ``ours``, ``holds``): one per claim of the module docstring; None
    unless the run has MAD's four arms with precision and recall. ``data``: {(arm, metric): Curve}."""
    if any((arm, m) not in data for arm in ARMS for m in ("precision", "recall")):
        return None
    p = {arm: ends(data, arm, "precision") for arm in ARMS}
    r = {arm: ends(data, arm, "recall") for arm in ARMS}
    fs, fb, aug, fresh = ARMS
    mad = "Alemohammad et al. 2024 (MAD)"

    def moved(v: tuple[float, float, int]) -> str:
        return f"{v[0]:.3g} → {v[1]:.3g} (gen {v[2]})"

    rows = [
        {
            "claim": "fully synthetic loses quality (precision) and diversity (recall)",
            "source": mad,
            "ours": f"{fs}: precision {moved(p[fs])}, recall {moved(r[fs])}",
            "holds": p[fs][1] < p[fs][0] and r[fs][1] < r[fs][0],
        },
        {
            "claim": "with sampling bias λ < 1, precision holds while recall falls faster",
            "source": mad,
            "ours": f"{fb}: precision {moved(p[fb])}, recall {moved(r[fb])}; {fs}: recall {moved(r[fs])}",
            "holds": p[fb][1] >= HOLDS_SHARE * p[fb][0] and kept(r[fb]) < kept(r[fs]),
        },
        {
            "claim": "a fixed real set delays the decline",
            "source": mad,
            "ours": f"recall at the end: {aug} {r[aug][1]:.3g}, {fs} {r[fs][1]:.3g}",
            "holds": r[aug][1] > r[fs][1],
        },
        {
            "claim": f"fresh data stabilises (recall ends within {STABLE:.0%} of generation 0's)",
            "source": mad,
            "ours": f"{fresh}: recall {moved(r[fresh])}",
            "holds": abs(r[fresh][1] - r[fresh][0]) <= STABLE * abs(r[fresh][0]),
        },
    ]
    if all((arm, "memorisation_share") in data for arm in (fs, fresh)):
        m = {arm: ends(data, arm, "memorisation_share") for arm in (fs, fresh)}
        rows.append(
            {
                "claim": "fully synthetic shifts from generalisation to memorisation",
                "source": "Shi et al. 2025",
                "ours": f"memorisation share: {fs} {moved(m[fs])}; {fresh} {moved(m[fresh])}",
                "holds": m[fs][1] > m[fs][0] and m[fs][1] > m[fresh][1],
            }
        )
    return rows


def kept(v: tuple[float, float, int]) -> float:
    """The share of its first value a metric keeps at the end (its last / its first; inf from 0)."""
    return v[1] / v[0] if v[0] else float("inf")


def section(data: dict) -> dict | None:
    """What ``section_pattern.html.j2`` shows: ``rows`` of formatted cells (claim, source, ours, reading); None unless
    :func:`pattern_rows` applies."""
    rows = pattern_rows(data)
    if rows is None:
        return None
    return {
        "rows": [[r["claim"], r["source"], r["ours"], "holds" if r["holds"] else "does not hold"] for r in rows],
        "held": sum(r["holds"] for r in rows),
        "total": len(rows),
    }
