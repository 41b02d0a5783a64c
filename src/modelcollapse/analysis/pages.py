"""The one page builder: every HTML page the project writes (a run's or suite's report, a sweep's, a telephone
run's, the detectors' page, an audit's) is a jinja2 template under ``modelcollapse/templates/`` rendered here, with
autoescaping on, so every string that reaches a page (a run's name, a text, an error) is escaped exactly once.

``base.html.j2`` holds the head, the CSS and the navigation; each page extends it. ``macros.html.j2`` holds what
pages share: embedded figures (``img``, a PNG as a :func:`data_uri`), tables, a section index. A report section
(the scaling view, in a run's and a sweep's report) is a macro in its own ``section_*.html.j2``. jinja2 is imported on
first use (``import modelcollapse`` stays light).
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from pathlib import Path

from ..rundir.atomic import atomic_write


@functools.cache
def environment():
    """The jinja2 environment of every page: templates shipped with the package, autoescaped, undefined names an
    error (a misspelt field must not render as an empty cell)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelcollapse", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["data_uri"] = data_uri
    return env


@dataclass(frozen=True)
class Picture:
    """A figure as a page embeds it: its ``alt`` text and its PNG bytes. Made when the figure is drawn
    (:meth:`of` its file), since a later figure of the same report may reuse the file name (the ``survival`` metric's
    curve and the survival view are both ``figures/survival.png``)."""

    alt: str
    png: bytes

    @classmethod
    def of(cls, path: Path) -> Picture:
        """The PNG file at ``path``, named by its file name without ``.png``."""
        return cls(Path(path).stem, Path(path).read_bytes())


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, so a page is one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def render(template: str, **context) -> str:
    """The page ``template`` (a file name under ``templates/``) rendered with ``context``."""
    return environment().get_template(template).render(**context)


def write_page(path: Path, template: str, **context) -> Path:
    """Render ``template`` with ``context`` and write it to ``path`` atomically; return ``path``."""
    atomic_write(Path(path), render(template, **context))
    return Path(path)


def macro(template: str, name: str):
    """The macro ``name`` of ``template``, as a function returning escaped markup (e.g. one table cell's diff)."""
    return getattr(environment().get_template(template).module, name)
