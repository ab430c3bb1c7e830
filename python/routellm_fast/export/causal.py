"""Convert a Hugging Face Llama checkpoint fine-tuned as RouteLLM's causal classifier (the layout of
``routellm/causal_llm_gpt4_augmented``: ``config.json``, weights, tokenizer files, ``system_ft_v5.txt``,
``classifier_ft_v5.txt``) into the directory :class:`routellm_fast.routers.CausalLLMRouter` loads:

* ``model.onnx`` (and ``model.onnx.data`` for its weights when they pass 2 GB): one decoding step with
  a key/value cache. Inputs ``input_ids`` (int64 ``[batch, new]``), ``attention_mask`` (int64
  ``[batch, past + new]``, 0 on left padding) and ``past.{i}.key`` / ``past.{i}.value`` per layer
  (float32 ``[batch, kv_heads, past, head_dim]``, ``past`` = 0 on the first step); outputs
  ``logits`` (float32 ``[batch, vocab]``, the last position's only) and ``present.{i}.key`` /
  ``present.{i}.value`` (the cache with the new positions appended).
* ``tokenizer.json``: the tokenizer RouteLLM builds (``get_tokenizer``: the base model's, with the
  score tokens ``[[1]]``..``[[5]]`` added as special tokens).
* the system and classifier messages, copied;
* ``routellm_fast_causal.json``: the metadata (score tokens, the vocabulary size before them, the
  end-of-sequence ids greedy decoding stops at, the context length, the weight format).

The decoder is traced from a compact module that reuses the checkpoint's own linear, norm and MLP
layers and its rotary frequencies (so any rope scaling transformers applies comes along), with an
explicit cache and mask; the ONNX graph is checked against transformers' forward pass before it is
written. ``int8`` quantises every MatMul's weights per output channel (dynamic int8, as the BERT
export); ``int4`` stores them as 4-bit blocks of 32 (onnxruntime's ``MatMulNBits``). This module
needs torch, transformers, onnx (and onnx-ir for int4): ``pip install "routellm_fast[export]"``;
the router needs none of them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import require_extra
from ..paths import CAUSAL_MESSAGE_FILES, CAUSAL_METADATA_FILE
from .bert import need_export_deps

__all__ = ["CAUSAL_FORMAT", "export_causal"]

#: Format version of the exported directory.
CAUSAL_FORMAT = 1
#: The base model RouteLLM's causal router was trained from (its ``model_id`` default).
LLAMA3_MODEL_ID = "meta-llama/Meta-Llama-3-8B"
_SPECIAL_TOKENS = tuple(f"[[{i}]]" for i in range(1, 6))
# Generation settings that would change greedy decoding's scores or stopping: refused.
_UNSUPPORTED_GENERATION = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
                           "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                           "forced_bos_token_id": None, "forced_eos_token_id": None, "min_new_tokens": 0,
                           "sequence_bias": None, "renormalize_logits": False, "min_length": 0}


def export_causal(
    hf_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    quantize: str | None = None,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    special_tokens: tuple[str, ...] | list[str] = _SPECIAL_TOKENS,
    opset: int = 17,
) -> Path:
    """Export ``hf_dir`` into ``out_dir`` (created; existing files replaced) and return ``out_dir``.

    ``tokenizer_dir``: where the base tokenizer is (RouteLLM loads it from ``model_id``; default
    ``hf_dir``). ``quantize``: None (float32), ``"int8"`` or ``"int4"``. The graph is checked
    against transformers' logits (first step and one cached step) before quantisation."""
    torch, transformers = need_export_deps("export-causal")
    if quantize not in (None, "int8", "int4"):
        raise ValueError(f"quantize must be None, 'int8' or 'int4', got {quantize!r}")
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not (hf_dir / "config.json").is_file():
        raise FileNotFoundError(f"{hf_dir} is not a Hugging Face model directory (no config.json)")
    for name in CAUSAL_MESSAGE_FILES:
        if not (hf_dir / name).is_file():
            raise FileNotFoundError(f"{hf_dir} has no {name} (RouteLLM's causal router reads its messages from it)")
    config = transformers.AutoConfig.from_pretrained(hf_dir)
    if config.model_type != "llama":
        raise ValueError(f"{hf_dir} is a {config.model_type!r} model; the causal router takes Llama checkpoints")
    tokenizer = _routellm_tokenizer(transformers, Path(tokenizer_dir) if tokenizer_dir else hf_dir, special_tokens)
    vocab = len(tokenizer)
    base_vocab = vocab - len(special_tokens)
    if config.vocab_size < vocab:
        raise ValueError(f"{hf_dir}: the model has {config.vocab_size} output logits, fewer than the tokenizer's "
                         f"{vocab} tokens with the score tokens added")
    eos = _eos_ids(transformers, hf_dir, config)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    decoder = _Decoder.build(torch, model)

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        decoder.export(torch, onnx_path, opset)
        _check_against_transformers(torch, model, decoder, onnx_path, tokenizer)
        del model
        if quantize == "int8":
            onnx_path = _quantize_int8(onnx_path, Path(tmp))
        elif quantize == "int4":
            onnx_path = _quantize_int4(onnx_path, Path(tmp))
        for old in ("model.onnx", "model.onnx.data"):
            (out_dir / old).unlink(missing_ok=True)
        _save_onnx(onnx_path, out_dir / "model.onnx")
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    for name in CAUSAL_MESSAGE_FILES:
        shutil.copyfile(hf_dir / name, out_dir / name)
    meta = {
        "format": CAUSAL_FORMAT,
        "special_tokens": list(special_tokens),
        "num_outputs": len(special_tokens),
        "orig_vocab_size": base_vocab,
        "eos_token_ids": eos,
        "max_positions": int(config.max_position_embeddings),
        "num_layers": decoder.num_layers,
        "num_kv_heads": decoder.kv_heads,
        "head_dim": decoder.head_dim,
        "quantize": quantize,
        "source": str(hf_dir.absolute()),
        "model_type": config.model_type,
        "win_rate": ("1 - sum(softmax(logits[orig_vocab_size:])[score_threshold - 1:]) at the first greedy step "
                     "whose token is a score token; 1 when none comes within max_new_tokens"),
    }
    (out_dir / CAUSAL_METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def _routellm_tokenizer(transformers: Any, directory: Path, special_tokens: Any) -> Any:
    """RouteLLM's ``get_tokenizer``: the base tokenizer (left truncation and padding, pad = eos) with
    the score tokens added as special tokens."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, legacy=True, truncation_side="left",
                                                           padding_side="left")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{directory}: the tokenizer has no fast (tokenizers) version, which the router needs")
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.add_tokens(list(special_tokens), special_tokens=True)
    return tokenizer


def _eos_ids(transformers: Any, hf_dir: Path, config: Any) -> list[int]:
    """The ids greedy decoding stops at (the generation config's, as ``generate`` uses them), after
    refusing generation settings that would change greedy scores."""
    try:
        generation = transformers.GenerationConfig.from_pretrained(hf_dir)
    except OSError:  # no generation_config.json: transformers derives one from config.json
        generation = transformers.GenerationConfig.from_model_config(config)
    for field, neutral in _UNSUPPORTED_GENERATION.items():
        value = getattr(generation, field, neutral)
        if value is not None and value != neutral and not (isinstance(value, (list, tuple)) and not value):
            raise ValueError(f"{hf_dir}: generation_config sets {field}={value!r}, which changes greedy decoding; "
                             "the causal router does not implement it")
    eos = generation.eos_token_id if generation.eos_token_id is not None else config.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


class _Decoder:
    """A traceable decoding step over a transformers Llama model's own layers."""

    def __init__(self, module: Any, num_layers: int, kv_heads: int, head_dim: int) -> None:
        self.module, self.num_layers, self.kv_heads, self.head_dim = module, num_layers, kv_heads, head_dim

    @classmethod
    def build(cls, torch: Any, model: Any) -> _Decoder:
        config = model.config
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        rotary = model.model.rotary_emb
        inv_freq = rotary.inv_freq.detach().float().clone()
        rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        inner, lm_head = model.model, model.lm_head

        def rotate_half(x):
            half = x.shape[-1] // 2
            return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

        class Step(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed, self.layers, self.norm, self.lm_head = inner.embed_tokens, inner.layers, inner.norm, lm_head
                self.register_buffer("inv_freq", inv_freq, persistent=False)

            def forward(self, input_ids, attention_mask, *past):
                batch, new = input_ids.shape
                total = attention_mask.shape[1]
                # Positions count real tokens only (generate's position_ids with left padding).
                positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, total - new:]
                freqs = positions.unsqueeze(-1).float() * self.inv_freq
                angles = torch.cat((freqs, freqs), dim=-1)
                cos = (angles.cos() * rope_scale).unsqueeze(1)
                sin = (angles.sin() * rope_scale).unsqueeze(1)
                key_pos = torch.ones_like(attention_mask[0]).cumsum(0) - 1
                query_pos = key_pos[total - new:]
                visible = (key_pos.unsqueeze(0) <= query_pos.unsqueeze(1)).unsqueeze(0) & attention_mask.bool().unsqueeze(1)
                bias = torch.zeros(visible.shape, dtype=torch.float32).masked_fill(~visible, torch.finfo(torch.float32).min)
                bias = bias.unsqueeze(1)
                hidden = self.embed(input_ids)
                present = []
                for i, layer in enumerate(self.layers):
                    x = layer.input_layernorm(hidden)
                    attn = layer.self_attn
                    q = attn.q_proj(x).reshape(batch, new, heads, head_dim).transpose(1, 2)
                    k = attn.k_proj(x).reshape(batch, new, kv_heads, head_dim).transpose(1, 2)
                    v = attn.v_proj(x).reshape(batch, new, kv_heads, head_dim).transpose(1, 2)
                    q = q * cos + rotate_half(q) * sin
                    k = k * cos + rotate_half(k) * sin
                    k = torch.cat((past[2 * i], k), dim=2)
                    v = torch.cat((past[2 * i + 1], v), dim=2)
                    present += [k, v]
                    if heads != kv_heads:
                        k = k.repeat_interleave(heads // kv_heads, dim=1)
                        v = v.repeat_interleave(heads // kv_heads, dim=1)
                    weights = torch.matmul(q, k.transpose(2, 3)) * head_dim ** -0.5 + bias
                    weights = torch.softmax(weights, dim=-1)
                    out = torch.matmul(weights, v).transpose(1, 2).reshape(batch, new, heads * head_dim)
                    hidden = hidden + attn.o_proj(out)
                    hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
                last = self.norm(hidden[:, -1:, :])  # the norm is per position: only the last one is needed
                return (self.lm_head(last)[:, 0, :], *present)

        return cls(Step().eval(), len(inner.layers), kv_heads, head_dim)

    def names(self) -> tuple[list[str], list[str]]:
        past = [f"past.{i}.{kind}" for i in range(self.num_layers) for kind in ("key", "value")]
        present = [f"present.{i}.{kind}" for i in range(self.num_layers) for kind in ("key", "value")]
        return ["input_ids", "attention_mask", *past], ["logits", *present]

    def empty_cache(self, torch: Any, batch: int, length: int = 0) -> list[Any]:
        shape = (batch, self.kv_heads, length, self.head_dim)
        return [torch.zeros(shape) for _ in range(2 * self.num_layers)]

    def export(self, torch: Any, path: Path, opset: int) -> None:
        inputs, outputs = self.names()
        ids = torch.tensor([[11, 12, 13, 14], [15, 16, 17, 18]])
        mask = torch.ones((2, 7), dtype=torch.int64)
        mask[1, :2] = 0
        past = [torch.randn(2, self.kv_heads, 3, self.head_dim) for _ in range(2 * self.num_layers)]
        axes = {"input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
                "logits": {0: "batch"}}
        axes.update({name: {0: "batch", 2: "past"} for name in inputs[2:]})
        axes.update({name: {0: "batch", 2: "total"} for name in outputs[1:]})
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(self.module, (ids, mask, *past), str(path), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)


def _check_against_transformers(torch: Any, model: Any, decoder: _Decoder, onnx_path: Path, tokenizer: Any) -> None:
    """The exported step's logits equal transformers' forward pass on a real prompt (first step with
    an empty cache, then one cached step), or the export fails."""
    import numpy as np
    import onnxruntime as ort

    ids = tokenizer("Which model should answer: what is the capital of France?")["input_ids"]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    inputs, _ = decoder.names()
    with torch.no_grad():
        want = model(torch.tensor([ids + [ids[1]]])).logits[0, -2:].float().numpy()
    feed = {"input_ids": np.array([ids], np.int64), "attention_mask": np.ones((1, len(ids)), np.int64)}
    feed.update({name: t.numpy() for name, t in zip(inputs[2:], decoder.empty_cache(torch, 1))})
    first = session.run(None, feed)
    feed = {"input_ids": np.array([[ids[1]]], np.int64), "attention_mask": np.ones((1, len(ids) + 1), np.int64)}
    feed.update(dict(zip(inputs[2:], first[1:])))
    second = session.run(None, feed)
    got = np.stack([first[0][0], second[0][0]])
    tolerance = 1e-4 + 1e-3 * float(np.abs(want).max())
    worst = float(np.abs(got - want).max())
    if not worst <= tolerance:
        raise RuntimeError(f"the exported decoder's logits differ from transformers' by {worst:.3g} "
                           f"(tolerance {tolerance:.3g}): this model's architecture is not exported faithfully")


def _save_onnx(src: Path, dst: Path) -> None:
    """Write the model as one file, or with its weights in ``model.onnx.data`` past protobuf's 2 GB."""
    import onnx

    model = onnx.load(str(src))
    weights = sum(t.ByteSize() for t in model.graph.initializer)  # the whole proto may not serialise
    if weights < 1_900_000_000:
        onnx.save_model(model, str(dst))
    else:
        onnx.save_model(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"{dst.name}.data", size_threshold=1024)


def _quantize_int8(src: Path, tmp: Path) -> Path:
    """Dynamic int8 weights per output channel for every MatMul (the embedding gather stays float32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = tmp / "int8.onnx"
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"],
                     use_external_data_format=_has_external_data(src))
    return dst


def _quantize_int4(src: Path, tmp: Path) -> Path:
    """4-bit weights in blocks of 32, symmetric (onnxruntime's ``MatMulNBits``), for every MatMul;
    activations quantised to int8 per block at run time (``accuracy_level`` 4: on an AVX2 CPU the
    float32-activation kernel is slower than int8's)."""
    require_extra("export", "onnx", "onnx_ir", purpose="int4 export")
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), block_size=32, is_symmetric=True, bits=4, accuracy_level=4)
    quantizer.process()
    dst = tmp / "int4.onnx"
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=_has_external_data(src))
    return dst


def _has_external_data(path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return any(uses_external_data(t) for t in model.graph.initializer)
