"""The one page builder: every HTML page the project writes goes through ``analysis/pages.py`` (jinja2 templates,
autoescaped), no module under src/ builds HTML itself, and a user's string (a run's name, a text) reaches every page
escaped. Tiny toy runs; the module takes seconds."""

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import modelcollapse as mc  # noqa: E402
from modelcollapse.analysis import pages  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src" / "modelcollapse"
EVIL = "<script>alert(1)"  # no "/": it names files too
TOY = {
    "name": f"toy {EVIL}",
    "seed": 0,
    "replicates": 4,
    "loop": {"generations": 3, "samples": 20},
    "metrics": ["variance"],
}


class Page(HTMLParser):
    """A page as a browser reads it: its elements (tag names), every ``<img>``'s attributes, and its visible text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.images, self.text = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def rendered(monkeypatch):
    """The template of every page written, by file name, recorded as the builder writes it."""
    written = {}
    write = pages.write_page

    def record(path, template, **context):
        written[Path(path).name if Path(path).name != "report.html" else Path(path).parent.name] = template
        return write(path, template, **context)

    for module in ("report", "sweep_report", "chain_report", "detector_report"):
        monkeypatch.setattr(f"modelcollapse.analysis.{module}.write_page", record)
    return written


def check_page(path: Path, *, images: int) -> Page:
    """``path`` parses as one page with at least ``images`` embedded PNGs, and the user's string shows as text, never
    as a tag."""
    text = path.read_text()
    page = Page(text)
    assert page.tags[:3] == ["html", "head", "meta"] and page.tags.count("body") == 1
    assert "script" not in page.tags and EVIL not in text
    assert len(page.images) >= images and all(i["src"].startswith("data:image/png;base64,") for i in page.images)
    assert "&lt;" not in "".join(page.text)  # nothing escaped twice
    return page


def test_every_loop_page_is_built_by_the_one_builder_and_escapes_the_run_name(tmp_path, rendered):
    run = mc.run(TOY, out=tmp_path / "run", report=False)
    sweep = mc.sweep(TOY, grid={"loop.samples": [10, 20]}, out=tmp_path / "sweep")
    small = {"replicates": 4, "loop.generations": 3, "loop.samples": 20, "metrics": ["variance"]}
    members = [{"preset": "gaussian-replace", "set": small}, {"preset": "stability-mix", "set": small}]
    suite = mc.run({"name": "su", "suite": members}, out=tmp_path / "suite", report=False)
    for r in (run, sweep, suite):
        r.report()
    assert rendered == {
        "run": "run.html.j2",
        "sweep": "sweep.html.j2",
        "suite": "run.html.j2",
        "gaussian-replace": "run.html.j2",
        "stability-mix": "run.html.j2",
    }
    page = check_page(run.path / "report.html", images=1)
    assert f"modelcollapse: toy {EVIL}" in page.text  # the <title>, as text
    assert f"toy {EVIL}" in page.text  # the section's heading
    check_page(sweep.path / "report.html", images=1)
    page = check_page(suite.path / "report.html", images=2)
    assert page.tags.count("section") == 2 and "Overview" in page.text
    check_page(suite.path / "stability-mix" / "report.html", images=1)


def test_the_detector_and_audit_pages_escape_their_texts(tmp_path, rendered):
    from modelcollapse.analysis.detector_report import build_detector_report, write_scores

    rng = np.random.default_rng(0)
    scores = {
        (16, "likelihood"): {
            "calibration": rng.normal(0, 1, 50),
            "test": rng.normal(0, 1, 50),
            "machine": rng.normal(1, 1, 50),
        }
    }
    write_scores(tmp_path / "det", scores, [0.1], note=f"scored by {EVIL}")
    page = check_page(build_detector_report(tmp_path / "det"), images=2)
    assert rendered == {"det": "detectors.html.j2"} and f"scored by {EVIL}" in page.text

    words = "river stone cloud light field market winter garden letter bridge".split()
    (tmp_path / "real.txt").write_text("\n\n".join(" ".join(rng.choice(words, 8)) for _ in range(24)))
    (tmp_path / f"{EVIL}.txt").write_text("\n\n".join(" ".join(rng.choice(words[:3], 8)) for _ in range(16)))
    mc.audit(tmp_path / "real.txt", tmp_path / f"{EVIL}.txt", out=tmp_path / "audit", lm="none", repeats=5)
    page = check_page(tmp_path / "audit" / "report.html", images=6)
    assert any(EVIL in t for t in page.text)  # the candidate's name, shown as text (its card and the table)
    alts = [i["alt"] for i in page.images]  # a group's indicator figure, then the data figure that shows it
    assert alts[:2] == ["Tails: each indicator against real data", "Distributions: words per record"]
    assert "Rank-frequency" in alts


def test_the_chain_diff_escapes_the_texts():
    from modelcollapse.analysis.chain_report import word_diff, word_diff_html

    assert word_diff("a <b> c", "a <i> c d") == [
        ("equal", "a"),
        ("delete", "<b>"),
        ("insert", "<i>"),
        ("equal", "c"),
        ("insert", "d"),
    ]
    assert word_diff_html("", EVIL) == "<ins>&lt;script&gt;alert(1)</ins>"


def test_a_template_field_that_is_missing_is_an_error():
    """StrictUndefined: a misspelt field fails the build instead of rendering an empty cell."""
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        pages.render("sweep.html.j2", title="t")


# -- no HTML outside the templates ----------------------------------------------------------------------------------
TAGS = (
    "html|head|body|div|p|h[1-6]|table|tr|td|th|img|ul|ol|li|pre|section|details|summary|del|ins|em|b|nav|figure|style"
)
HTML_IN_PYTHON = re.compile(rf"html\.escape|<({TAGS})[ >/]")


def test_no_module_under_src_builds_html():
    """Every tag lives in a template: no f-string, format string or html.escape builds a page in Python. (Docs may
    name a tag: doctest lines, ``>>>`` and the expected output after them, and ``literals`` in docstrings.)"""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        expected = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(">>>"):
                expected = True
                continue
            if expected and stripped and not stripped.startswith('"""'):
                continue  # a doctest's expected output
            expected = False
            if HTML_IN_PYTHON.search(re.sub(r"``[^`]*``", "", line)):
                found.append(f"{path.relative_to(SRC)}:{n}: {stripped}")
    assert found == []


def test_templates_ship_inside_the_package_and_jinja2_loads_lazily():
    templates = {p.name for p in (SRC / "templates").glob("*.html.j2")}
    assert {
        "base.html.j2",
        "run.html.j2",
        "sweep.html.j2",
        "chain.html.j2",
        "detectors.html.j2",
        "audit.html.j2",
    } <= templates
    assert all(
        '{% extends "base.html.j2" %}' in (SRC / "templates" / t).read_text()
        for t in ("run.html.j2", "sweep.html.j2", "chain.html.j2", "detectors.html.j2", "audit.html.j2")
    )
    code = (
        "import sys, modelcollapse.analysis.report, modelcollapse.analysis.chain_report, "
        "modelcollapse.audit.report; "
        "print(sorted(m for m in ('jinja2', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == []
