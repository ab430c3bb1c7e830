"""Convert a Hugging Face BERT sequence classifier (RouteLLM's ``routellm/bert*`` layout: ``config.json``,
weights, tokenizer files) into the directory :class:`routellm_fast.routers.BERTRouter` loads:

* ``model.onnx`` — the classifier, inputs ``input_ids``/``attention_mask``/``token_type_ids`` (int64
  ``[batch, seq]``, dynamic), output ``logits`` (float32 ``[batch, num_labels]``);
* ``tokenizer.json`` — the fast tokenizer, as ``AutoTokenizer`` would load it;
* ``routellm_fast_bert.json`` — the metadata: number of labels, the truncation length RouteLLM's
  ``tokenizer(prompt, truncation=True)`` uses, the source, whether weights are int8.

This module needs torch, transformers and onnx (``pip install "routellm_fast[export]"``); the router
that runs the result needs none of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

__all__ = ["BERT_METADATA_FILE", "export_bert", "quantize_bert"]

#: The metadata file of an exported BERT router directory.
BERT_METADATA_FILE = "routellm_fast_bert.json"
#: Format version of the exported directory.
BERT_FORMAT = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _need_export_deps():
    try:
        import onnx  # noqa: F401  (torch's ONNX exporter needs it)
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"converting a Hugging Face checkpoint needs torch, transformers and onnx ({exc.name} is missing): "
            'pip install "routellm_fast[export]", or load a directory made by `routellm-fast export-bert`'
        ) from None
    return torch, transformers


def truncation_length(model_max_length: int | None, max_position_embeddings: int) -> int:
    """Where RouteLLM's ``tokenizer(prompt, truncation=True)`` cuts a prompt: the tokenizer's
    ``model_max_length``; a tokenizer without one (transformers' "very large" sentinel) does not
    truncate, and the model then fails past its position embeddings, so that is where we cut."""
    if model_max_length is None or model_max_length > 10**9:
        return int(max_position_embeddings)
    return int(model_max_length)


def export_bert(
    hf_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, int8: bool = False,
    num_labels: int = 3, opset: int = 17,
) -> Path:
    """Export ``hf_dir`` into ``out_dir`` (created; existing files replaced). With ``int8``, the
    weights of every MatMul are quantised (:func:`quantize_bert`). Returns ``out_dir``."""
    torch, transformers = _need_export_deps()
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not (hf_dir / "config.json").is_file():
        raise FileNotFoundError(f"{hf_dir} is not a Hugging Face model directory (no config.json)")
    config = transformers.AutoConfig.from_pretrained(hf_dir)
    if getattr(config, "num_labels", None) != num_labels:
        raise ValueError(f"{hf_dir} is a classifier with {config.num_labels} labels, expected {num_labels}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{hf_dir}: the tokenizer has no fast (tokenizers) version, which the router needs")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        hf_dir, num_labels=num_labels, attn_implementation="eager").eval()
    max_length = truncation_length(getattr(tokenizer, "model_max_length", None), config.max_position_embeddings)

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        ids = torch.tensor([[tokenizer.cls_token_id or 101] + [1000] * 5 + [tokenizer.sep_token_id or 102]] * 2)
        axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(
                model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(onnx_path),
                input_names=list(_INPUTS), output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=opset, dynamo=False,
            )
        if int8:
            quantize_bert(onnx_path, onnx_path)
        os.replace(onnx_path, out_dir / "model.onnx")
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    write_metadata(out_dir, num_labels=num_labels, max_length=max_length, int8=int8,
                   source=str(hf_dir.absolute()), model_type=config.model_type)
    return out_dir


def write_metadata(out_dir: Path, **fields) -> None:
    meta = {"format": BERT_FORMAT, **fields,
            "win_rate": "1 - (p[-2] + p[-1]) of softmax(logits): label 0 = strong model wins, 1 tie, 2 weak wins"}
    (out_dir / BERT_METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def quantize_bert(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Dynamic int8 quantisation of a BERT classifier's MatMul weights, per output channel (weights
    stored as int8, activations quantised per batch at run time); embeddings, LayerNorm and the
    classification head stay float32. Chosen over per-tensor and over quantising the embedding
    gathers by measured win-rate fidelity (see README, "BERT router")."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ImportError(f"int8 export needs onnx ({exc.name} is missing): pip install onnx") from None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        shutil.move(str(out), str(dst))


def hf_cache_key(hf_dir: Path, int8: bool) -> str:
    """A key naming the conversion of ``hf_dir``: its files' names, sizes and modification times."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{hf_dir.absolute()}|int8={int8}|format={BERT_FORMAT}".encode())
    for f in sorted(hf_dir.iterdir()):
        if f.is_file():
            st = f.stat()
            digest.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()
