"""The one reader of packaged and user text, shared by the ``wikipedia`` / ``text`` data sources and the telephone
chains' start texts.

* :func:`wikipedia_articles`: ``(title, text)`` of every non-redirect article of gensim's shortened English Wikipedia
  dump (106 articles), in dump order; ``text`` is gensim's ``filter_wiki`` output with bold/italic quotes removed.
* :func:`sentence_paragraphs`: the prose paragraphs of such a text (no headings, captions or template husks).
* :func:`read_user_text`: texts from a user's ``.txt`` / ``.jsonl`` file or a folder of them.
"""

from __future__ import annotations

import bz2
import functools
import json
import re
from pathlib import Path

from ...errors import ConfigError
from ..packaged import need

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


@functools.cache
def wikipedia_articles() -> tuple[tuple[str, str], ...]:
    """``(title, plain text)`` of every non-redirect article in the packaged dump, in dump order (106 articles).

    The text is ``filter_wiki(markup)`` with ``'''`` and ``''`` removed; its lines are the wiki's paragraphs,
    headings and captions. Cached for the process."""
    need("gensim")
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki
    from gensim.test.utils import datapath

    articles = []
    with bz2.BZ2File(datapath(WIKI_DUMP)) as f:
        for title, markup, _ in extract_pages(f):
            if markup.lstrip().lower().startswith("#redirect"):
                continue
            articles.append((title, filter_wiki(markup).replace("'''", "").replace("''", "")))
    return tuple(articles)


def sentence_paragraphs(text: str) -> list[str]:
    """The paragraphs of an article's text (see :func:`wikipedia_articles`) that end a sentence, tidied.

    A wiki paragraph is one line. Headings (``== History ==``) and image captions survive ``filter_wiki`` as lines that
    do not end a sentence, and pronunciation templates leave husks such as ``()`` or ``(; , )``: both are dropped.

    >>> sentence_paragraphs("== Life ==\\nBorn in Rome () in 1900 .\\nA caption")
    ['Born in Rome in 1900.']
    """
    text = re.sub(r"\((?:\s|[;,])*\)", "", text)
    lines = [re.sub(r"\s+([,.;:])", r"\1", re.sub(r"[ \t]+", " ", line)).strip() for line in text.split("\n")]
    return [line for line in lines if SENTENCE_END.search(line) and not line.startswith("=")]


def _read(path: Path, key: str, errors: str) -> str:
    try:
        return path.read_text(encoding="utf-8", errors=errors)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{key} {str(path)!r} cannot be read: {getattr(err, 'strerror', None) or err}.") from None


def jsonl_texts(raw: str, field: str, where: str) -> list[str]:
    """``str(obj[field])`` of every non-blank line of a ``.jsonl`` text; ``where`` names the file in errors."""
    texts = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            texts.append(str(json.loads(line)[field]))
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{where} line {number} must be a JSON object with key {field!r}.") from None
    return texts


def read_user_text(
    path: str | Path,
    *,
    key: str = "data.path",
    field: str = "text",
    paragraphs: bool = False,
    errors: str = "replace",
    strip: bool = True,
) -> list[str]:
    """Texts from a ``.txt`` or ``.jsonl`` file, or (recursively, in sorted order) a folder of them; each stripped
    unless ``strip=False``.

    A ``.txt`` file is one text, or with ``paragraphs`` one text per blank-line-separated paragraph (empty ones
    dropped); a ``.jsonl`` file gives ``field`` of each line's object, empty texts kept in place. ``key`` names the
    config key in errors; ``errors`` is the UTF-8 decoding policy (``strict`` makes undecodable bytes an error).
    ``strip=False`` keeps each text exactly as written (the watermark detector scores leading spaces too): only the
    blank lines between paragraphs and a ``.txt`` file's final line break are not part of a text.
    """
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.suffix.lower() in {".txt", ".jsonl"}) if p.is_dir() else [p]
    texts = []
    for f in files:
        raw = _read(f, key, errors)
        if f.suffix.lower() == ".jsonl":
            texts += jsonl_texts(raw, field, f"{key} {str(f)!r}")
            continue
        if not strip:
            raw = raw.removesuffix("\n")  # the line break editors end a file with
        if paragraphs:
            texts += [t for t in re.split(r"\n\s*\n", raw) if t.strip()]
        else:
            texts.append(raw)
    return [t.strip() for t in texts] if strip else texts
