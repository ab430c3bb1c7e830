"""A static embedder: a prompt's vector is the L2-normalised mean of its tokens' rows in a table (the
Model2Vec idea), so embedding costs microseconds instead of a transformer pass.

The table ships in the package (``data/minilm-static-256``), distilled from all-MiniLM-L6-v2 by
:mod:`routellm_fast.train.static_distill`. The directory layout is Model2Vec's (``config.json``,
``model.safetensors`` with an ``embeddings`` tensor, ``tokenizer.json``), with int8 rows and a
per-row ``scales`` tensor; float tables (Model2Vec's own files) are stored as int8 at load.

Tokenising and pooling run in the compiled core, batched and GIL-free. ASCII prompts are tokenised
there (the same ids as HF ``tokenizers``, checked by the tests); other prompts, and tokenizers that
are not BERT's uncased WordPiece, go through HF ``tokenizers``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._core import StaticEmbedder as _CoreStaticEmbedder
from ..backends.onnx import token_ids
from ..checks import check_prompts
from ..paths import STATIC_EMBEDDER_DIR

__all__ = ["STATIC_EMBEDDER_NAME", "StaticEmbedder", "quantize_rows", "shared_static_embedder"]

#: Name of the shipped static embedder (and of the routers trained on it).
STATIC_EMBEDDER_NAME = "minilm-static-256"
#: Tokens per prompt; the rest of a longer prompt is not read (Model2Vec's default).
DEFAULT_MAX_TOKENS = 512


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and a float32 scale per row (row ~ scale * q, |q| <= 127), for any float table."""
    table = np.asarray(table, dtype=np.float64)
    peak = np.abs(table).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(np.rint(table / scales[:, None]), -127, 127).astype(np.int8)
    return q, scales.astype(np.float32)


def _is_bert_uncased_wordpiece(spec: dict) -> bool:
    """Whether a tokenizer.json is the one the core's ASCII tokenizer reproduces."""
    model, norm, pre = spec.get("model") or {}, spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
    return (
        model.get("type") == "WordPiece" and model.get("continuing_subword_prefix") == "##"
        and norm.get("type") == "BertNormalizer" and norm.get("lowercase") is True
        and norm.get("clean_text") is True and norm.get("strip_accents") in (None, True)
        and pre.get("type") == "BertPreTokenizer"
    )


class StaticEmbedder:
    """Model2Vec-style static embeddings: tokenise, look each token's row up, average, normalise.

    ``path``: a directory with ``model.safetensors`` (``embeddings`` [vocab, dim]: int8 with a float32
    ``scales`` [vocab], or float16/float32), ``tokenizer.json`` and optionally Model2Vec's
    ``config.json`` (``normalize``, default true). With no ``path``, the shipped table.

    A prompt is read up to ``max_tokens`` tokens. A prompt with no tokens (empty, or whitespace
    only) gets the unknown token's row, as a prompt of one unknown word does. Pickles by its
    settings; copies in one process share one table.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, name: str | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = STATIC_EMBEDDER_DIR if path is None else Path(path)
        self._spec = (None if path is None else os.fspath(directory.absolute()), name, max_tokens)
        if not directory.is_dir():
            raise FileNotFoundError(f"static embedder directory {str(directory)!r} does not exist")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.name = name or (STATIC_EMBEDDER_NAME if path is None else directory.name)
        self.path, self.max_tokens = directory, max_tokens

        config_path = directory / "config.json"
        config = {}
        if config_path.is_file():
            from ..formats.tables import read_json

            config = read_json(config_path)
            if not isinstance(config, dict):
                raise ValueError(f"{config_path}: expected a JSON object")
        normalize = config.get("normalize", True)
        if not isinstance(normalize, bool):
            raise ValueError(f"{config_path}: 'normalize' must be true or false, got {normalize!r}")

        tokenizer_path = directory / "tokenizer.json"
        try:
            spec = json.loads(tokenizer_path.read_text(encoding="utf-8"))
            self._tokenizer = Tokenizer.from_str(json.dumps(spec))
        except FileNotFoundError:
            raise FileNotFoundError(f"no tokenizer.json in {directory}") from None
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot load tokenizer {tokenizer_path}: {exc}") from None
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)

        weights_path = directory / "model.safetensors"
        try:
            tensors = load_file(str(weights_path))
        except FileNotFoundError:
            raise FileNotFoundError(f"no model.safetensors in {directory}") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"cannot read {weights_path}: {exc}") from None
        table = tensors.get("embeddings")
        if table is None or table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
            raise ValueError(f"{weights_path} must hold a non-empty 2-D 'embeddings' tensor [vocab, dim]")
        vocab = self._tokenizer.get_vocab_size(with_added_tokens=True)
        if table.shape[0] != vocab:
            raise ValueError(f"{weights_path}: 'embeddings' has {table.shape[0]} rows but the tokenizer has {vocab} tokens")
        if table.dtype == np.int8:
            scales = tensors.get("scales")
            if scales is None or scales.shape != (vocab,) or scales.dtype != np.float32:
                raise ValueError(f"{weights_path}: int8 'embeddings' need a float32 'scales' tensor [{vocab}]")
        elif table.dtype in (np.float16, np.float32, np.float64):
            if not np.isfinite(table).all():
                raise ValueError(f"{weights_path}: 'embeddings' contains NaN or inf")
            table, scales = quantize_rows(table)
        else:
            raise ValueError(f"{weights_path}: 'embeddings' must be int8, float16 or float32, got {table.dtype}")
        self.dim = int(table.shape[1])
        self.table, self.scales, self.normalize = np.ascontiguousarray(table), np.ascontiguousarray(scales), normalize

        unk = (spec.get("model") or {}).get("unk_token")
        unk_id = self._tokenizer.token_to_id(unk) if isinstance(unk, str) else None
        if unk_id is None:
            raise ValueError(f"{tokenizer_path}: the tokenizer has no unknown token (needed for prompts with no tokens)")
        # The core tokenises ASCII itself where the tokenizer is BERT's uncased WordPiece.
        self.fast_ascii = _is_bert_uncased_wordpiece(spec)
        # HF tokenizers cuts added tokens ("[MASK]", ...) out of the raw text first: prompts holding
        # one go through it.
        self._added = tuple(t["content"] for t in spec.get("added_tokens") or [] if t.get("content"))
        id_to_token = [""] * vocab
        for token, i in self._tokenizer.get_vocab(with_added_tokens=True).items():
            id_to_token[i] = token
        try:
            self._core = _CoreStaticEmbedder(id_to_token, self.table, self.scales, unk_id, max_tokens, normalize,
                                             int((spec.get("model") or {}).get("max_input_chars_per_word", 100)))
        except ValueError as exc:
            raise ValueError(f"{directory}: {exc}") from None

    def token_ids(self, prompts: Sequence[str]) -> list[list[int]]:
        """The ids each prompt is embedded from (through HF ``tokenizers``), at most ``max_tokens``."""
        return token_ids(self._tokenizer, list(prompts), add_special_tokens=False, max_tokens=self.max_tokens)

    def _core_tokenizes(self, prompt: str) -> bool:
        return self.fast_ascii and prompt.isascii() and not any(t in prompt for t in self._added)

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 ``[len(prompts), dim]`` (unit vectors when the table's config says ``normalize``)."""
        prompts = check_prompts(prompts)
        fast = [self._core_tokenizes(p) for p in prompts]
        if all(fast):
            return self._core.embed(prompts)
        out = np.empty((len(prompts), self.dim), dtype=np.float32)
        if any(fast):
            out[np.array(fast)] = self._core.embed([p for p, f in zip(prompts, fast) if f])
        rest = [i for i, f in enumerate(fast) if not f]
        ids = self.token_ids([prompts[i] for i in rest])
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in ids], out=offsets[1:])
        flat = np.fromiter((t for x in ids for t in x), dtype=np.int32, count=int(offsets[-1]))
        out[rest] = self._core.embed_ids(flat, offsets)
        return out

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        return self.embed(prompts)

    def __reduce__(self) -> tuple:
        return (_shared_static_embedder, self._spec)

    def __repr__(self) -> str:
        return f"StaticEmbedder(name={self.name!r}, dim={self.dim}, vocab={self.table.shape[0]}, path={str(self.path)!r})"


_shared: dict[tuple, StaticEmbedder] = {}
_shared_lock = threading.Lock()


def _shared_static_embedder(*spec: object) -> StaticEmbedder:
    """The process's one StaticEmbedder built with ``spec`` (path, name, max_tokens)."""
    with _shared_lock:
        embedder = _shared.get(spec)
        if embedder is None:
            path, name, max_tokens = spec
            embedder = _shared[spec] = StaticEmbedder(path, name=name, max_tokens=max_tokens)  # type: ignore[arg-type]
        return embedder


def shared_static_embedder() -> StaticEmbedder:
    """The process's one shipped static embedder."""
    return _shared_static_embedder(None, None, DEFAULT_MAX_TOKENS)
