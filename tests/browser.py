"""Headless Chromium for page tests: render a local HTML file at 1280×800, take a screenshot, say where elements are.

Uses Debian's ``chromium`` at ``/usr/bin/chromium`` (``apt-get install -y chromium``; the ``CHROMIUM`` environment
variable names another binary). A test that uses it carries ``@pytest.mark.browser`` and, where Chromium is missing,
fails saying how to install it: a page test that skips silently would pass on a machine that never drew the page.

Two runs of the browser, each with a fresh profile and no network:

* :func:`screenshot` writes what a 1280×800 window shows at the top of the page (a PNG of exactly that size);
* :func:`boxes` renders a temporary copy of the page with a small script added that, once the page has loaded
  (images included), writes the document-coordinate boxes of the elements matching each CSS selector into the DOM;
  Chromium's ``--dump-dom`` prints the DOM and the boxes are read back from it. Layout is at the window's 1280 px
  width. The fold is the screenshot's 800 px (:func:`above_fold`): with ``--dump-dom``, Chromium 150 reports
  ``innerHeight`` 657 (the window less its frame), which moves no box unless the page sizes itself by the viewport.

Screenshots for the docs: ``python tests/browser.py PAGE.html docs/img/NAME.png``.

>>> Box(top=10, left=0, width=100, height=50).bottom
60
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest

VIEWPORT = (1280, 800)
TIMEOUT = 120  # seconds a render may take on the loaded 2-core machine (about 2 s when idle)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROBE_ATTRIBUTE = "data-browser-boxes"
PROBE = """<script>
addEventListener("load", () => {
  const out = {};
  for (const selector of %s) {
    out[selector] = [...document.querySelectorAll(selector)].map((e) => {
      const r = e.getBoundingClientRect();
      return [r.top + scrollY, r.left + scrollX, r.width, r.height];
    });
  }
  document.documentElement.setAttribute("%s", JSON.stringify({boxes: out, viewport: [innerWidth, innerHeight]}));
});
</script>
"""


class Box(NamedTuple):
    """An element's border box in CSS pixels, from the top left of the document (the page scrolled to its top)."""

    top: float
    left: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.top + self.height


def chromium() -> str:
    """The Chromium binary; fails the calling test, saying how to install it, when there is none."""
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"page tests need Chromium at {path}: install it with `apt-get install -y chromium` "
            "(Debian/Ubuntu), or set CHROMIUM to a Chromium binary.",
            pytrace=False,
        )
    return path


def _render(page: Path, args: list[str], size: tuple[int, int]) -> str:
    """Run Chromium on ``page`` with ``args`` in a fresh profile; its stdout. A failed render raises RuntimeError
    with the end of Chromium's stderr."""
    binary = chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                *args,
                Path(page).resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode} on {page}: {done.stderr[-2000:]}")
    return done.stdout


def screenshot(page: str | os.PathLike, png: str | os.PathLike, size: tuple[int, int] = VIEWPORT) -> Path:
    """Write what a ``size`` window (default 1280×800) shows at the top of local HTML file ``page`` to ``png``."""
    png = Path(png).resolve()
    png.unlink(missing_ok=True)
    _render(Path(page), [f"--screenshot={png}", "--hide-scrollbars"], size)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page} to {png}")
    return png


def boxes(page: str | os.PathLike, selectors: list[str], size: tuple[int, int] = VIEWPORT) -> dict[str, list[Box]]:
    """Per CSS selector, the :class:`Box` of every element of local HTML file ``page`` matching it, in document
    order, once the page has loaded. ``page`` is not modified: a copy with the probe script appended (and a
    ``<base>`` pointing at the page's folder, so its relative links still resolve) is rendered."""
    page = Path(page).resolve()
    with tempfile.TemporaryDirectory(prefix="page-") as tmp:
        copy = Path(tmp) / page.name
        source = page.read_text(encoding="utf-8")
        doctype = re.match(r"\s*<!doctype[^>]*>", source, re.I)  # stays first, or the page renders in quirks mode
        cut = doctype.end() if doctype else 0
        base = f'<base href="{page.parent.as_uri()}/">'
        probe = PROBE % (json.dumps(list(selectors)), PROBE_ATTRIBUTE)
        copy.write_text(source[:cut] + base + source[cut:] + probe, encoding="utf-8")
        dom = _render(copy, ["--dump-dom"], size)
    found = re.search(f'{PROBE_ATTRIBUTE}="([^"]*)"', dom)
    if found is None:
        raise RuntimeError(f"the probe script did not run on {page} (a script error, or the page never loaded)")
    data = json.loads(html.unescape(found.group(1)))
    return {s: [Box(*b) for b in data["boxes"][s]] for s in selectors}


def above_fold(box: Box, height: int = VIEWPORT[1]) -> bool:
    """Whether ``box`` is drawn and wholly within the first ``height`` pixels of the page (the first screen)."""
    return box.width > 0 and box.height > 0 and box.top >= 0 and box.bottom <= height


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python tests/browser.py PAGE.html OUT.png")
    print(screenshot(sys.argv[1], sys.argv[2]))
