"""RouteLLM's causal_llm router (a Llama-3 fine-tuned to answer ``[[1]]``..``[[5]]``: how well the weak
model would do) on onnxruntime and HF ``tokenizers``, greedy decoding with a key/value cache: no torch
or transformers at run time, on the CPU or on CUDA."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.cpu import available_cpus
from ..backends.onnx import CHARS_PER_TOKEN, length_batches, onnx_session, token_ids
from ..checks import check_prompts
from ..formats.hub import converted_once, resolve_checkpoint
from ..paths import CAUSAL_MESSAGE_FILES, CAUSAL_METADATA_FILE
from .base import Router, fingerprint, register

__all__ = ["PROMPT_FORMATS", "CausalLLMRouter", "ScoreStep"]

_DEFAULT_TOKENS = ("[[1]]", "[[2]]", "[[3]]", "[[4]]", "[[5]]")
#: Padded prompt tokens per batch at most: long prompts run in smaller batches than short ones.
_TOKENS_PER_BATCH = 4096

#: RouteLLM's prompt formats by ``model_id``: the system and user turn templates (its
#: ``PROMPT_FORMAT_CONFIGS``; a generation prompt with no trailing assistant header).
PROMPT_FORMATS: dict[str, tuple[str, str]] = {
    "meta-llama/Meta-Llama-3-8B": (
        "<|start_header_id|>system<|end_header_id|>\n\n{instruction}<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\n{instruction}<|eot_id|>",
    ),
}


@dataclass(frozen=True)
class ScoreStep:
    """Where greedy decoding first produced a score token for a prompt: the step (0 = the first new
    token) and the logits of the score tokens there (float32 ``[num_outputs]``)."""

    step: int
    logits: np.ndarray

    def probabilities(self) -> np.ndarray:
        """The softmax over the score tokens' logits (float64)."""
        z = self.logits.astype(np.float64)
        e = np.exp(z - z.max())
        return e / e.sum()


def _convert_hf(hf_dir: Path, quantize: str | None) -> Path:
    """The converted copy of a Hugging Face directory, made once (needs the ``export`` extra)."""
    from ..export.causal import CAUSAL_FORMAT, export_causal

    return converted_once(hf_dir, "causal", f"quantize={quantize}|format={CAUSAL_FORMAT}", CAUSAL_METADATA_FILE,
                          lambda out: export_causal(hf_dir, out, quantize=quantize))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


@register("causal_llm")
class CausalLLMRouter(Router):
    """RouteLLM's ``CausalLLMRouter``: the prompt, wrapped in the checkpoint's system and classifier
    messages (Llama-3 format), is decoded greedily for up to ``max_new_tokens`` tokens; at the first
    step whose token is a score token (``[[1]]``..``[[5]]``), ``binary_prob`` is the softmax mass of
    the score tokens ``>= score_threshold``, and the strong model's win rate is ``1 - binary_prob``.
    When no score token comes (end of sequence first, or none within ``max_new_tokens``) the win rate
    is 1: RouteLLM routes such prompts to the strong model.

    ``checkpoint_path``: a directory made by ``routellm-fast export-causal`` (``model.onnx``,
    ``tokenizer.json``, the two message files, ``routellm_fast_causal.json``); a Hugging Face
    directory in RouteLLM's layout, converted once into ``$ROUTELLM_FAST_CACHE/causal`` (``quantize``
    chooses the weights: None, ``"int8"``, ``"int4"``) when torch, transformers and onnx are
    installed; or ``routellm/causal_llm_gpt4_augmented`` when that checkpoint is in the local Hugging
    Face cache (nothing is downloaded). ``flash_attention_2`` is RouteLLM's and changes nothing here.

    Decoding stops as soon as a prompt's score token (or end of sequence) comes: what RouteLLM
    generates after it does not change the win rate. ``score(prompts)`` decodes prompts of similar
    length together (left padding, a cache per batch, finished prompts leave the batch); a win rate
    depends on its batch only by float rounding (~1e-6). int8 and int4 exports, whose activations
    are quantised per tensor at run time, decode each prompt on its own.

    A prompt longer than the model's context (less ``max_new_tokens``) raises ValueError (RouteLLM
    does not truncate either; it runs the model past its trained positions, which on the CPU would
    take memory quadratic in the length); with ``long_prompts="strong"`` it goes to the strong
    model (win rate 1), as RouteLLM sends every prompt its classifier gives no score for.
    """

    NO_PARALLEL = True  # each call already uses every core

    def __init__(
        self,
        checkpoint_path: str | os.PathLike[str],
        score_threshold: int = 4,
        special_tokens: Sequence[str] = _DEFAULT_TOKENS,
        num_outputs: int = 5,
        model_type: str = "causal",
        model_id: str = "meta-llama/Meta-Llama-3-8B",
        flash_attention_2: bool = False,
        *,
        quantize: str | None = None,
        device: str = "cpu",
        threads: int | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 6,
        long_prompts: str = "error",
    ) -> None:
        from tokenizers import Tokenizer

        if model_type != "causal":
            raise ValueError(f"model_type must be 'causal' (RouteLLM's only type), got {model_type!r}")
        if model_id not in PROMPT_FORMATS:
            raise ValueError(f"no prompt format for model_id {model_id!r}; RouteLLM has one for {', '.join(PROMPT_FORMATS)}")
        num_outputs = _positive_int("num_outputs", num_outputs)
        special_tokens = list(special_tokens) if not isinstance(special_tokens, str) else [special_tokens]
        if len(special_tokens) != num_outputs or any(f"[[{i}]]" not in special_tokens for i in range(1, num_outputs + 1)):
            raise ValueError(f"special_tokens must be [[1]]..[[{num_outputs}]] (num_outputs={num_outputs}), "
                             f"got {special_tokens!r}")
        if isinstance(score_threshold, bool) or not isinstance(score_threshold, int) or not 1 <= score_threshold <= num_outputs:
            raise ValueError(f"score_threshold must be an integer in [1, {num_outputs}], got {score_threshold!r}")
        batch_size = _positive_int("batch_size", batch_size)
        if long_prompts not in ("error", "strong"):
            raise ValueError(f"long_prompts must be 'error' or 'strong', got {long_prompts!r}")
        max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)
        checkpoint_path, _ = resolve_checkpoint(checkpoint_path, "causal_llm", ("config.json", *CAUSAL_MESSAGE_FILES),
                                                None, export_command="export-causal")
        path = Path(checkpoint_path)
        if not path.is_dir():
            raise FileNotFoundError(f"causal checkpoint {str(path)!r} is not a directory (nothing is downloaded)")
        if not (path / CAUSAL_METADATA_FILE).is_file():
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"{path} holds neither an exported causal router ({CAUSAL_METADATA_FILE}) nor a "
                                        "Hugging Face checkpoint (config.json)")
            path = _convert_hf(path, quantize)
        self.path = path.absolute()
        self._settings = (score_threshold, special_tokens, num_outputs, model_type, model_id,
                          quantize, device, threads, batch_size, max_new_tokens, long_prompts)
        meta = self._metadata(path)
        if meta.get("special_tokens") != special_tokens:
            raise ValueError(f"{path} was exported with score tokens {meta.get('special_tokens')!r}, not {special_tokens!r}")
        self.metadata = meta
        self.score_threshold, self.num_outputs, self.model_id = score_threshold, num_outputs, model_id
        self.max_new_tokens, self.batch_size, self.device = max_new_tokens, batch_size, device
        self.long_prompts = long_prompts
        self.threads = threads or available_cpus()
        self.orig_vocab_size: int = meta["orig_vocab_size"]
        self.eos_token_ids = frozenset(meta["eos_token_ids"])
        self.max_prompt_tokens = meta["max_positions"] - max_new_tokens

        files = {"model": path / "model.onnx", "tokenizer": path / "tokenizer.json",
                 **{name: path / name for name in CAUSAL_MESSAGE_FILES}}
        for what, f in files.items():
            if not f.is_file():
                raise FileNotFoundError(f"{path}: the {what} file {f.name} is missing")
        try:
            self._tokenizer = Tokenizer.from_file(str(files["tokenizer"]))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ValueError(f"cannot load tokenizer {files['tokenizer']}: {exc}") from None
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        size = self._tokenizer.get_vocab_size(with_added_tokens=True)
        if size != self.orig_vocab_size + num_outputs:
            raise ValueError(f"{files['tokenizer']} has {size} tokens; the export says {self.orig_vocab_size} plus "
                             f"{num_outputs} score tokens")
        self.system_message, self.classifier_message = (self._read_message(files[n]) for n in CAUSAL_MESSAGE_FILES)
        try:
            self.classifier_message.format(question="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{files[CAUSAL_MESSAGE_FILES[1]]}: not a template with one {{question}} field ({exc!r})") from None

        self._session = onnx_session(files["model"], device=device, intra_op_threads=self.threads)
        layers = meta["num_layers"]
        self._past_names = [f"past.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
        inputs = [i.name for i in self._session.get_inputs()]
        if inputs != ["input_ids", "attention_mask", *self._past_names]:
            raise ValueError(f"{files['model']} is not a {layers}-layer decoding step with a cache: its inputs are "
                             f"{inputs[:4]}{'...' if len(inputs) > 4 else ''}")
        self._cache_shape = (meta["num_kv_heads"], meta["head_dim"])
        probe = self._session.run(None, self._feed(np.zeros((1, 1), np.int64), np.ones((1, 1), np.int64), None))
        if probe[0].shape[-1] < self.orig_vocab_size + num_outputs:
            raise ValueError(f"{files['model']} outputs {probe[0].shape[-1]} logits, fewer than the "
                             f"{self.orig_vocab_size + num_outputs} tokens of its tokenizer")

        digest = hashlib.blake2b(digest_size=16)
        for f in [*files.values(), path / CAUSAL_METADATA_FILE, path / "model.onnx.data"]:
            if f.is_file():
                with open(f, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023
                        digest.update(block)
        self.fingerprint = fingerprint("causal_llm", digest.hexdigest(), score_threshold, max_new_tokens, model_id,
                                       long_prompts)

    @staticmethod
    def _metadata(path: Path) -> dict:
        try:
            meta = json.loads((path / CAUSAL_METADATA_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path / CAUSAL_METADATA_FILE}: {exc}") from None
        ints = ("orig_vocab_size", "max_positions", "num_layers", "num_kv_heads", "head_dim")
        if not isinstance(meta, dict) or meta.get("format") != 1:
            raise ValueError(f"{path / CAUSAL_METADATA_FILE} is not a format-1 causal router export")
        for key in ints:
            if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int) or meta[key] < 1:
                raise ValueError(f"{path / CAUSAL_METADATA_FILE}: {key} must be a positive integer, got {meta.get(key)!r}")
        eos = meta.get("eos_token_ids")
        if not isinstance(eos, list) or not all(isinstance(e, int) and not isinstance(e, bool) for e in eos):
            raise ValueError(f"{path / CAUSAL_METADATA_FILE}: eos_token_ids must be a list of integers, got {eos!r}")
        return meta

    @staticmethod
    def _read_message(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None

    def prompt_text(self, prompt: str) -> str:
        """The text the classifier reads for ``prompt``: RouteLLM's system and classifier messages in
        its Llama-3 prompt format (each turn's content stripped; no system turn when it is empty)."""
        system, user = PROMPT_FORMATS[self.model_id]
        text = system.format(instruction=self.system_message.strip()) if self.system_message else ""
        return text + user.format(instruction=self.classifier_message.format(question=prompt).strip())

    def tokenize(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt's classifier text, as RouteLLM's tokenizer makes them (with the
        beginning-of-text token). A prompt past the model's context is a ValueError, or, with
        ``long_prompts="strong"``, an empty list (the prompt is not decoded)."""
        prompts = check_prompts(prompts)
        # A prompt longer than the context's tokens can cover (CHARS_PER_TOKEN characters each) is
        # past the context without tokenising it, so its length bounds no memory.
        limit = self.max_prompt_tokens * CHARS_PER_TOKEN
        long = [len(p) > limit for p in prompts]
        ids = token_ids(self._tokenizer, [self.prompt_text("" if too else p) for p, too in zip(prompts, long)])
        for i, x in enumerate(ids):
            if long[i]:
                if self.long_prompts == "strong":
                    ids[i] = []
                    continue
                raise ValueError(f"prompt {i} is {len(prompts[i])} characters, more than the {limit} that the "
                                 f"{self.max_prompt_tokens} tokens this model takes at most can cover ({CHARS_PER_TOKEN} "
                                 "per token); long_prompts='strong' routes such prompts to the strong model")
            if len(x) > self.max_prompt_tokens:
                if self.long_prompts == "strong":
                    ids[i] = []
                    continue
                raise ValueError(f"prompt {i} is {len(x)} tokens in the classifier's template; this model takes at "
                                 f"most {self.max_prompt_tokens} ({self.metadata['max_positions']} positions less "
                                 f"{self.max_new_tokens} new tokens); long_prompts='strong' routes such prompts "
                                 "to the strong model")
        return ids

    def classify(self, prompts: Sequence[str]) -> list[ScoreStep | None]:
        """For each prompt, where greedy decoding first produced a score token and the score tokens'
        logits there, or None when it produced none (or, with ``long_prompts="strong"``, the prompt
        was past the context)."""
        ids = self.tokenize(prompts)
        out: list[ScoreStep | None] = [None] * len(ids)
        todo = [i for i, x in enumerate(ids) if x]
        # Quantised models quantise activations per tensor at run time: each prompt decodes on its own,
        # so that its win rate does not depend on its batchmates.
        batch_size = self.batch_size if self.metadata.get("quantize") is None else 1
        for batch in length_batches([len(ids[i]) for i in todo], batch_size, _TOKENS_PER_BATCH):
            rows = [todo[k] for k in batch]
            for i, step in zip(rows, self._decode([ids[i] for i in rows])):
                out[i] = step
        return out

    def score(self, prompts: Sequence[str]) -> np.ndarray:
        steps = self.classify(prompts)
        win = np.ones(len(steps), dtype=np.float64)
        for i, step in enumerate(steps):
            if step is not None:
                win[i] = 1.0 - step.probabilities()[self.score_threshold - 1:].sum()
        return win

    def _feed(self, input_ids: np.ndarray, mask: np.ndarray, past: Sequence[np.ndarray] | None) -> dict[str, np.ndarray]:
        if past is None:
            kv_heads, head_dim = self._cache_shape
            empty = np.zeros((len(input_ids), kv_heads, 0, head_dim), np.float32)
            past = [empty] * len(self._past_names)
        return {"input_ids": input_ids, "attention_mask": mask, **dict(zip(self._past_names, past))}

    def _decode(self, ids: list[list[int]]) -> list[ScoreStep | None]:
        """Greedy decoding of one batch (left-padded), each prompt until its first score token or end
        of sequence, for at most max_new_tokens steps."""
        n, longest = len(ids), max(len(x) for x in ids)
        tokens = np.zeros((n, longest), np.int64)
        mask = np.zeros((n, longest), np.int64)
        for row, x in enumerate(ids):
            tokens[row, longest - len(x):] = x
            mask[row, longest - len(x):] = 1
        out: list[ScoreStep | None] = [None] * n
        active = np.arange(n)
        past: list[np.ndarray] | None = None
        for step in range(self.max_new_tokens):
            logits, *present = self._session.run(None, self._feed(tokens, mask, past))
            chosen = logits.argmax(axis=1)  # greedy: the first of equal maxima, as torch's argmax
            keep = []
            for row, token in enumerate(chosen.tolist()):
                if token >= self.orig_vocab_size:  # a score token: RouteLLM reads logits[orig_vocab_size:]
                    out[active[row]] = ScoreStep(step, logits[row, self.orig_vocab_size:].copy())
                elif token not in self.eos_token_ids:
                    keep.append(row)
            if not keep:
                break
            if len(keep) < len(active):  # finished prompts leave the batch
                active, mask, chosen = active[keep], mask[keep], chosen[keep]
                present = [p[keep] for p in present]
            tokens = chosen[:, None].astype(np.int64)
            mask = np.concatenate([mask, np.ones((len(active), 1), np.int64)], axis=1)
            past = present
        return out

    def __reduce__(self) -> tuple:
        return (_rebuild, (str(self.path), *self._settings))

    def __repr__(self) -> str:
        return (f"CausalLLMRouter({str(self.path)!r}, score_threshold={self.score_threshold}, "
                f"quantize={self.metadata.get('quantize')!r}, device={self.device!r})")


def _rebuild(path: str, score_threshold: int, special_tokens: list[str], num_outputs: int, model_type: str,
             model_id: str, quantize: str | None, device: str, threads: int | None, batch_size: int,
             max_new_tokens: int, long_prompts: str) -> CausalLLMRouter:
    return CausalLLMRouter(path, score_threshold, special_tokens, num_outputs, model_type, model_id,
                           quantize=quantize, device=device, threads=threads, batch_size=batch_size,
                           max_new_tokens=max_new_tokens, long_prompts=long_prompts)
