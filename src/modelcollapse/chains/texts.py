"""Start texts: the packaged Wikipedia articles, or a user's ``.txt`` / ``.jsonl`` file, read by
:mod:`modelcollapse.plugins.data.corpora` (the reader the data sources use); this module only chooses and clips them.

``builtin:N`` takes gensim's test copy of English Wikipedia (106 real articles), keeps the prose paragraphs and returns
the first ``N`` articles (or paragraphs) of at least ``min_words`` words, in the dump's order. A ``.txt`` file holds one
text per paragraph (texts separated by a blank line); a ``.jsonl`` file one JSON object per line with the text under
``field``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..plugins.data.corpora import SENTENCE_END, read_user_text, sentence_paragraphs, wikipedia_articles
from .config import StartConfig


def clip_words(text: str, max_words: int | None) -> str:
    """The first ``max_words`` words of ``text``, cut back to the last sentence end when there is one.

    >>> clip_words("One two. Three four five.", 4)
    'One two.'
    """
    words = text.split()
    if max_words is None or len(words) <= max_words:
        return " ".join(words)
    head = words[:max_words]
    ends = [i for i, w in enumerate(head) if SENTENCE_END.search(w)]
    return " ".join(head[: ends[-1] + 1] if ends else head)


def builtin_texts(n: int, unit: str, min_words: int) -> list[str]:
    """The first ``n`` articles or paragraphs with at least ``min_words`` words."""
    out = []
    for _, text in wikipedia_articles():
        paragraphs = sentence_paragraphs(text)
        pieces = ["\n\n".join(paragraphs)] if unit == "article" else paragraphs
        out += [p for p in pieces if len(p.split()) >= min_words]
        if len(out) >= n:
            return out[:n]
    raise ConfigError(f"start.source 'builtin:{n}' asks for more {unit}s than the {len(out)} packaged ones.")


def file_texts(path: Path, field: str) -> list[str]:
    """Texts from a ``.txt`` (blank-line separated) or ``.jsonl`` (``field`` of each object) file."""
    return read_user_text(path, key="start.source", field=field, paragraphs=True, errors="strict")


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
