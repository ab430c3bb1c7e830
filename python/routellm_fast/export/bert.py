"""Convert a Hugging Face BERT sequence classifier (RouteLLM's ``routellm/bert*`` layout: ``config.json``,
weights, tokenizer files) into the directory :class:`routellm_fast.routers.BERTRouter` loads:

* ``model.onnx`` — the classifier, inputs ``input_ids``/``attention_mask``/``token_type_ids`` (int64
  ``[batch, seq]``, dynamic), output ``logits`` (float32 ``[batch, num_labels]``);
* ``tokenizer.json`` — the fast tokenizer, as ``AutoTokenizer`` would load it;
* ``routellm_fast_bert.json`` — the metadata: number of labels, the truncation length RouteLLM's
  ``tokenizer(prompt, truncation=True)`` uses, the source, whether weights are int8.

The exported graph is fused by onnxruntime's transformer optimizer (:func:`optimize_bert`: one
``Attention`` node per layer, ``BiasGelu``, ``EmbedLayerNormalization``; residual + LayerNorm kept
as ``Add`` + ``LayerNormalization``) before the optional int8 quantisation. This module needs torch, transformers and onnx (``pip install
"routellm_fast[export]"``; :func:`optimize_bert` alone needs onnx and sympy); the router that runs the
result needs none of them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from ..errors import require_extra
from ..paths import BERT_METADATA_FILE

__all__ = ["export_bert", "fold_int8_weights", "optimize_bert", "quantize_bert", "store_int8_weights"]

#: Format version of the exported directory.
BERT_FORMAT = 1
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def need_export_deps(command: str = "export-bert") -> tuple:
    """torch and transformers (and onnx, which torch's ONNX exporter needs), or the ``export`` extra's
    error, which also names the command whose output needs none of them."""
    _, torch, transformers = require_extra(
        "export", "onnx", "torch", "transformers", purpose="converting a Hugging Face checkpoint",
        hint=f", or load a directory made by `routellm-fast {command}`")
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
    """Export ``hf_dir`` into ``out_dir`` (created; existing files replaced). The graph is fused
    (:func:`optimize_bert`, checked against the unfused one); with ``int8``, the weights of every
    MatMul are then quantised (:func:`quantize_bert`). Returns ``out_dir``."""
    torch, transformers = need_export_deps()
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
        optimize_bert(onnx_path, onnx_path, num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        if int8:
            quantize_bert(onnx_path, onnx_path)
        os.replace(onnx_path, out_dir / "model.onnx")
    tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    write_metadata(out_dir, num_labels=num_labels, max_length=max_length, int8=int8, dynamic_quantization=int8,
                   source=str(hf_dir.absolute()), model_type=config.model_type, fused=True)
    return out_dir


def write_metadata(out_dir: Path, **fields) -> None:
    meta = {"format": BERT_FORMAT, **fields,
            "win_rate": "1 - (p[-2] + p[-1]) of softmax(logits): label 0 = strong model wins, 1 tie, 2 weak wins"}
    (out_dir / BERT_METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def quantize_bert(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Dynamic int8 quantisation of a BERT classifier's weights, per output channel (weights stored
    as int8, activations quantised per batch at run time): every MatMul, and every fused
    ``Attention`` (which becomes ``QAttention``, its Q/K/V weights in 7-bit range as onnxruntime
    quantises them); embeddings, LayerNorm and the classification head stay float32. Chosen over
    per-tensor and over quantising the embedding gathers by measured win-rate fidelity (docs/routers.md,
    "BERT router"); quantising the fused attention too drifts about as little as MatMul alone
    and is faster, since the Q/K/V projections are a quarter of the matrix products.
    """
    require_extra("export", "onnx", purpose="int8 export")
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"],
                         # onnx's shape inference does not type the outputs of fused (com.microsoft) nodes
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
        shutil.move(str(out), str(dst))


def optimize_bert(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, num_heads: int, hidden_size: int,
    check: bool = True,
) -> dict[str, int]:
    """Fuse a BERT classifier's graph with onnxruntime's transformer optimizer
    (``onnxruntime.transformers``, ``model_type="bert"``): per layer one ``Attention`` node (Q, K and V
    projections, scaled dot product, softmax, context), ``BiasGelu``, and ``EmbedLayerNormalization``
    where the embeddings match its pattern. The ``SkipLayerNormalization`` nodes it fuses are split
    back into ``Add`` + ``LayerNormalization``, which onnxruntime's CPU kernels run faster
    (:func:`_split_skip_layer_norm`). The attention mask stays a raw ``[batch, sequence]`` mask, so
    any padding works.

    Graphs from torch's dynamo exporter, whose attention is ``scaled_dot_product_attention``
    decomposed (scale split between Q and K, a NaN guard after the softmax), which the optimizer does
    not recognise, get their attention fused here first. Weights stored as int8 with a float scale
    (``Cast`` + ``Mul``, the shipped router's encoder) are folded for the fusion and stored as int8
    again afterwards (per column or per row, whichever they were on).

    With ``check``, the fused graph must give the unfused graph's logits on a padded batch (within
    1e-4 absolute, float32 rounding) or this raises. Returns the number of each fused operator."""
    # sympy: the optimizer's symbolic shape inference
    require_extra("export", "onnx", "sympy", purpose="fusing the graph")
    import numpy as np
    import onnx
    from onnxruntime.transformers.fusion_options import (
        AttentionMaskFormat,
        FusionOptions,
    )
    from onnxruntime.transformers.optimizer import optimize_by_fusion

    model = onnx.load(str(src))
    int8_stored = fold_int8_weights(model)
    _fuse_sdpa_attention(model, num_heads)
    options = FusionOptions("bert")
    options.attention_mask_format = AttentionMaskFormat.AttentionMask
    import logging

    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the optimizer logs every fusion it tries
    try:
        optimizer = optimize_by_fusion(model, "bert", num_heads, hidden_size, options)
    finally:
        quiet.setLevel(level)
    fused = {k: int(v) for k, v in optimizer.get_fused_operator_statistics().items() if v}  # in the final graph
    out = optimizer.model
    fused.pop("SkipLayerNormalization", None)
    _split_skip_layer_norm(out)
    _ms_opset(out)
    if int8_stored:
        store_int8_weights(out)
    out.producer_name, out.producer_version = "routellm_fast.export.bert.optimize_bert", str(BERT_FORMAT)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "fused.onnx"
        onnx.save(out, str(tmp_path))
        if check:
            _check_same_logits(src, tmp_path, np)
        shutil.move(str(tmp_path), str(dst))
    return fused


def _split_skip_layer_norm(model) -> int:
    """Replace each fused ``SkipLayerNormalization`` by its parts, ``Add`` (residual, then bias) and
    ``LayerNormalization`` (opset 17): onnxruntime's CPU kernel for the fused node is ~5x slower than
    the two parts (1.75 ms against 0.31 ms on [1, 400, 768], onnxruntime 1.32, one thread), ~11% of
    an int8 bert-base pass. The same arithmetic, so logits move by float32 rounding only. Returns how
    many were split; a node whose mean or inverse-variance outputs are used stays fused."""
    from onnx import helper

    if not any(o.domain in ("", "ai.onnx") and o.version >= 17 for o in model.opset_import):
        return 0
    used = ({name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}) - {""}
    nodes, split = [], 0
    for node in model.graph.node:
        outputs = list(node.output) + [""] * (4 - len(node.output))
        if node.op_type != "SkipLayerNormalization" or outputs[1] in used or outputs[2] in used:
            nodes.append(node)
            continue
        inputs = list(node.input) + [""] * (5 - len(node.input))
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        total = outputs[3] or f"{node.name}_sum"
        residual = f"{node.name}_residual" if inputs[4] else total
        nodes.append(helper.make_node("Add", inputs[:2], [residual], name=f"{node.name}_add"))
        if inputs[4]:
            nodes.append(helper.make_node("Add", [residual, inputs[4]], [total], name=f"{node.name}_add_bias"))
        norm_inputs = [total, inputs[2]] + ([inputs[3]] if inputs[3] else [])
        nodes.append(helper.make_node("LayerNormalization", norm_inputs, [outputs[0]], name=f"{node.name}_norm",
                                      axis=-1, epsilon=eps))
        split += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return split


def _ms_opset(model) -> None:
    """Declare the ``com.microsoft`` domain of the fused operators (onnx's checker and the quantiser need it)."""
    from onnx import helper

    if any(n.domain == "com.microsoft" for n in model.graph.node) and not any(
            o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def _check_same_logits(unfused, fused, np) -> None:
    """The two classifiers' logits on a right-padded batch of three prompts (3 to 17 tokens)."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, size=(3, 17), dtype=np.int64)
    ids[:, 0], mask = 101, np.zeros_like(ids)
    for row, n in enumerate((17, 9, 3)):
        ids[row, n - 1], mask[row, :n] = 102, 1
        ids[row, n:] = 0
    results = []
    for path in (unfused, fused):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        names = {i.name for i in session.get_inputs()}
        results.append(session.run(None, {k: v for k, v in feed.items() if k in names})[0])
    error = float(np.abs(results[0] - results[1]).max())
    if not error <= 1e-4:
        raise RuntimeError(f"the fused graph's logits differ from the unfused graph's by {error:.3g}: not fused")


def fold_int8_weights(model) -> bool:
    """Replace every ``Mul(Cast(int8 initializer), float initializer)`` by its float32 product, so
    that the optimizer sees weights as initializers. True when there was one."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    folded, drop = [], set()
    for node in g.node:
        cast = producer.get(node.input[0]) if node.op_type == "Mul" and len(node.input) == 2 else None
        if (cast is None or cast.op_type != "Cast" or cast.input[0] not in inits or node.input[1] not in inits
                or inits[cast.input[0]].data_type != TensorProto.INT8):
            continue
        q = numpy_helper.to_array(inits[cast.input[0]])
        scale = numpy_helper.to_array(inits[node.input[1]])
        folded.append(numpy_helper.from_array((q.astype(np.float32) * scale).astype(np.float32), node.output[0]))
        drop |= {id(node), id(cast)}
    if not folded:
        return False
    nodes = [n for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(folded)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return True


def store_int8_weights(model) -> int:
    """Store again as int8 (``Cast`` + ``Mul`` by a float scale, which onnxruntime folds at load) every
    float32 matrix of at least 4,096 values that lies on a symmetric int8 grid per column or per row
    (weights folded by :func:`fold_int8_weights`, concatenated or not by the fusion). Returns how many."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    replaced, nodes = [], []
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT or len(t.dims) != 2 or t.dims[0] * t.dims[1] < 4096:
            continue
        w = numpy_helper.to_array(t)
        for axis in (0, 1):  # axis 0 reduced: a scale per column ([1, N]); axis 1: per row ([K, 1])
            scale = (np.abs(w).max(axis=axis, keepdims=True) / np.float32(127)).astype(np.float32)
            scale[scale == 0] = 1
            q = np.rint(w / scale)
            if np.abs(q).max() <= 127 and np.all(np.abs(q.astype(np.float32) * scale - w) <= 1e-3 * scale):
                replaced.append((t, q.astype(np.int8), scale))
                break
    for t, q, scale in replaced:
        name = t.name
        g.initializer.remove(t)
        g.initializer.extend([numpy_helper.from_array(q, f"{name}_q"), numpy_helper.from_array(scale, f"{name}_scale")])
        nodes += [helper.make_node("Cast", [f"{name}_q"], [f"{name}_f"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [f"{name}_f", f"{name}_scale"], [name])]
    if nodes:
        rest = list(g.node)
        del g.node[:]
        g.node.extend(nodes + rest)
    return len(replaced)


def store_embedding_tables_int8(model) -> int:
    """Store the token and position embedding tables (inputs of ``EmbedLayerNormalization`` or
    ``Gather``) as int8 with a float scale per row: a quarter of the file (bert's word table is most
    of a MiniLM's bytes), rows rounded to 1/254 of their largest value. Returns how many tables."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    tables = set()
    for node in model.graph.node:
        if node.op_type == "EmbedLayerNormalization":
            tables.update(node.input[2:4])
        elif node.op_type == "Gather":
            tables.add(node.input[0])
    snapped = 0
    for i, t in enumerate(model.graph.initializer):
        if t.name in tables and t.data_type == TensorProto.FLOAT and len(t.dims) == 2 and t.dims[0] * t.dims[1] >= 4096:
            w = numpy_helper.to_array(t)
            scale = np.abs(w).max(axis=1, keepdims=True) / np.float32(127)
            scale[scale == 0] = 1
            on_grid = (np.rint(w / scale) * scale).astype(np.float32)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(on_grid, t.name))
            snapped += 1
    store_int8_weights(model)
    return snapped


def _fuse_sdpa_attention(model, num_heads: int) -> int:
    """One ``com.microsoft`` ``Attention`` node for each self-attention block in the layout of torch's
    dynamo export of ``scaled_dot_product_attention``::

        q = Transpose(Reshape(Add(MatMul(x, Wq), bq)))                       [b, heads, s, d]
        kT = Reshape(Transpose(Reshape(Transpose(Reshape(Add(MatMul(x, Wk), bk))))))  [b, heads, d, s]
        p = Softmax(Add(MatMul(Mul(q, c), Mul(kT, c)), mask_bias))   (then optionally Where(IsNaN(p), 0, p))
        out = Reshape(Transpose(MatMul(p, v)))                              [b, s, heads * d]

    with ``mask_bias`` from the ``attention_mask`` input (keys only). Returns how many were fused;
    nodes left without consumers are removed."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    if "attention_mask" not in {i.name for i in g.input}:
        return 0
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def parent(node, index, op):
        if node is None or len(node.input) <= index:
            return None
        p = producer.get(node.input[index])
        return p if p is not None and p.op_type == op else None

    def const(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def projection(node):
        """(x, W, b) of Transpose(Reshape(Add(MatMul(x, W), b)))."""
        add = parent(parent(node, 0, "Reshape"), 0, "Add")
        mm = parent(add, 0, "MatMul")
        if mm is None or mm.input[1] not in inits or add.input[1] not in inits:
            return None
        return mm.input[0], const(mm.input[1]), const(add.input[1])

    fused, new_nodes = 0, []
    mask_name = None
    for softmax in [n for n in g.node if n.op_type == "Softmax"]:
        add = parent(softmax, 0, "Add")
        scores = parent(add, 0, "MatMul")
        q_mul, k_mul = parent(scores, 0, "Mul"), parent(scores, 1, "Mul")
        if q_mul is None or k_mul is None or q_mul.input[1] not in inits or k_mul.input[1] not in inits:
            continue
        q_t = parent(q_mul, 0, "Transpose")
        k_t = parent(parent(parent(parent(k_mul, 0, "Reshape"), 0, "Transpose"), 0, "Reshape"), 0, "Transpose")
        probs = softmax.output[0]
        after = consumers.get(probs, [])
        guard = [n for n in after if n.op_type == "IsNaN"]
        if guard:  # Where(IsNaN(p), 0, p)
            where = [n for n in consumers.get(guard[0].output[0], []) if n.op_type == "Where"]
            if not where:
                continue
            probs = where[0].output[0]
        context = [n for n in consumers.get(probs, []) if n.op_type == "MatMul" and n.input[0] == probs]
        if not context:
            continue
        v_t = parent(context[0], 1, "Transpose")
        out_t = [n for n in consumers.get(context[0].output[0], []) if n.op_type == "Transpose"]
        out_r = [n for n in consumers.get(out_t[0].output[0], []) if n.op_type == "Reshape"] if out_t else []
        projections = [projection(n) if n is not None else None for n in (q_t, k_t, v_t)]
        if not out_r or None in projections or len({p[0] for p in projections}) != 1:
            continue
        if any(list(n.attribute[0].ints) != [0, 2, 1, 3] for n in (q_t, k_t, v_t, out_t[0])):
            continue
        (x, wq, bq), (_, wk, bk), (_, wv, bv) = projections
        hidden = wq.shape[1]
        if not (wq.shape == wk.shape == wv.shape and hidden % num_heads == 0):
            continue
        scale = float(np.float32(const(q_mul.input[1])).reshape(-1)[0] * np.float32(const(k_mul.input[1])).reshape(-1)[0])
        name = f"rlf_attention_{fused}"
        g.initializer.extend([
            numpy_helper.from_array(np.concatenate([wq, wk, wv], axis=1).astype(np.float32), f"{name}_qkv_weight"),
            numpy_helper.from_array(np.concatenate([bq, bk, bv]).astype(np.float32), f"{name}_qkv_bias"),
        ])
        if mask_name is None:
            mask_name = "rlf_attention_mask_int32"
            new_nodes.append(helper.make_node("Cast", ["attention_mask"], [mask_name], to=TensorProto.INT32))
        new_nodes.append(helper.make_node(
            "Attention", [x, f"{name}_qkv_weight", f"{name}_qkv_bias", mask_name], [out_r[0].output[0]], name=name,
            domain="com.microsoft", num_heads=num_heads, scale=scale))
        g.node.remove(out_r[0])  # its output is now the Attention node's; the rest is pruned below
        fused += 1
    if not fused:
        return 0
    g.node.extend(new_nodes)
    _ms_opset(model)
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(model)
    wrapped.prune_graph()
    wrapped.topological_sort()
    return fused
