"""Start texts: the packaged Wikipedia articles, or a user's ``.txt`` / ``.jsonl`` file.

``builtin:N`` reads gensim's test copy of English Wikipedia (106 real articles), cleans the markup and returns the
first ``N`` articles (or paragraphs) of at least ``min_words`` words, in the dump's order. A ``.txt`` file holds one
text per paragraph (texts separated by a blank line); a ``.jsonl`` file one JSON object per line with the text under
``field``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import ConfigError
from .config import StartConfig

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


def clip_words(text: str, max_words: int | None) -> str:
    """The first ``max_words`` words of ``text``, cut back to the last sentence end when there is one.

    >>> clip_words("One two. Three four five.", 4)
    'One two.'
    """
    words = text.split()
    if max_words is None or len(words) <= max_words:
        return " ".join(words)
    head = words[:max_words]
    ends = [i for i, w in enumerate(head) if _SENTENCE_END.search(w)]
    return " ".join(head[: ends[-1] + 1] if ends else head)


def clean_wiki(markup: str) -> str:
    """Plain text from one article's wiki markup: gensim's ``filter_wiki``, bold/italic quotes removed."""
    from gensim.corpora.wikicorpus import filter_wiki

    text = filter_wiki(markup).replace("'''", "").replace("''", "")
    # Pronunciation and foreign-script templates leave husks such as "()" or "(; , )" behind.
    text = re.sub(r"\((?:\s|[;,])*\)", "", text)
    lines = [re.sub(r"\s+([,.;:])", r"\1", re.sub(r"[ \t]+", " ", line)).strip() for line in text.split("\n")]
    # A wiki paragraph is one line. Headings ("== History ==") and image captions survive filter_wiki as lines
    # that do not end a sentence: keep only the lines that do.
    return "\n\n".join(line for line in lines if _SENTENCE_END.search(line) and not line.startswith("="))


def wikipedia_articles() -> list[tuple[str, str]]:
    """``(title, plain text)`` of every non-redirect article in the packaged dump, in dump order."""
    import bz2

    from gensim.corpora.wikicorpus import extract_pages
    from gensim.test.utils import datapath

    articles = []
    with bz2.BZ2File(datapath(WIKI_DUMP)) as f:
        for title, markup, _ in extract_pages(f):
            if markup.lstrip().lower().startswith("#redirect"):
                continue
            articles.append((title, clean_wiki(markup)))
    return articles


def builtin_texts(n: int, unit: str, min_words: int) -> list[str]:
    """The first ``n`` articles or paragraphs with at least ``min_words`` words."""
    out = []
    for _, text in wikipedia_articles():
        pieces = [text] if unit == "article" else text.split("\n\n")
        out += [p for p in pieces if len(p.split()) >= min_words]
        if len(out) >= n:
            return out[:n]
    raise ConfigError(f"start.source 'builtin:{n}' asks for more {unit}s than the {len(out)} packaged ones.")


def file_texts(path: Path, field: str) -> list[str]:
    """Texts from a ``.txt`` (blank-line separated) or ``.jsonl`` (``field`` of each object) file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"start.source {str(path)!r} cannot be read: {err}.") from None
    if path.suffix == ".txt":
        return [p.strip() for p in re.split(r"\n\s*\n", raw) if p.strip()]
    texts = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            texts.append(str(obj[field]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                f"start.source {str(path)!r} line {number} must be a JSON object with key {field!r}."
            ) from None
    return texts


def start_texts(start: StartConfig) -> list[str]:
    """The start texts of a run, each clipped to ``start.max_words``."""
    source = start.source
    if source.startswith("builtin:"):
        count = source.removeprefix("builtin:")
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"start.source 'builtin:N' needs a positive integer N; got {source!r}.")
        texts = builtin_texts(int(count), start.unit, start.min_words)
    else:
        path = Path(source)
        if path.suffix not in {".txt", ".jsonl"}:
            raise ConfigError(f"start.source must be 'builtin:N' or a .txt or .jsonl file; got {source!r}.")
        if not path.is_file():
            raise ConfigError(f"start.source must be an existing file; got {source!r}.")
        texts = file_texts(path, start.field)
    texts = [clip_words(t, start.max_words) for t in texts]
    if not texts or not all(texts):
        raise ConfigError(f"start.source {source!r} holds an empty text; every start text needs words.")
    return texts
