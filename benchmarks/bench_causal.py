"""causal_llm router speed on the CPU: RouteLLM's CausalLLMRouter (torch, float32 on the CPU: the
patches of tests/fixtures/make_causal_fixture.py, since RouteLLM hard-codes CUDA) vs routellm_fast's
CausalLLMRouter (onnxruntime, float32 / int8 / int4) in one run, on random-weight Llama checkpoints
of a few sizes.

Sizes (``--sizes``): ``tiny`` (the test fixture's shape: 2 layers, hidden 64), ``160m`` (12 layers,
hidden 768, 12 heads / 4 key-value heads) and ``1b`` (Llama-3.2-1B's shape: 16 layers, hidden 2048,
32 / 8 heads, FFN 8192), all with Llama-3's 128,256-token vocabulary plus the 5 score tokens (so the
output layer costs what it costs in RouteLLM's 8B router). Llama-3-8B itself (32 GB in float32) does
not fit this machine's memory to export. The prompt text is tokenised by the fixture's small
Llama-3-layout tokenizer (the real one is gated), so the classifier's template is ~110 tokens.

A trained router answers with its score token first; random weights rarely produce one. So that
the checkpoints answer as a trained one does, the score tokens' output rows are scaled by
``--score-rows-scale`` (default 8: the first new token is a score token); with 1 (the plain random
init) no score token comes and ours decodes all 6 new tokens, its worst case. Ours stops at the first
score token; RouteLLM generates 6 tokens whatever they are (with transformers 5, ``generate`` keeps
a key/value cache although RouteLLM loads the model with ``use_cache=False``). Per-decision medians, one prompt
per call, "batched" = ``score`` over 8 prompts / 8; "steps" is the mean number of decoding steps ours
ran. Needs torch, transformers, onnx, onnx-ir and routellm==0.2.0::

    python benchmarks/bench_causal.py [--sizes tiny 160m 1b] [--weights fp32 int8 int4] [--prompt-words 20 200]
        [--score-rows-scale 8] [--repeats 5] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENAI_API_KEY", "unused")  # routellm makes an OpenAI client on import
os.environ["HF_HUB_OFFLINE"] = "1"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

SIZES = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab=None),
    "160m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=4, vocab=128256),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab=128256),
}


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls after one warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def build(size: str, tokenizer, out: Path, score_rows_scale: float) -> int:
    """A random-weight checkpoint of ``size`` in RouteLLM's layout; returns its parameter count."""
    import torch
    from make_causal_fixture import CLASSIFIER, SPECIALS, SYSTEM
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    shape = dict(SIZES[size])
    shape.pop("vocab")
    vocab = len(tokenizer) + 5
    eos = tokenizer.convert_tokens_to_ids(SPECIALS[1])
    eot = tokenizer.convert_tokens_to_ids(SPECIALS[9])
    config = LlamaConfig(vocab_size=vocab, max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, **shape)
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight[vocab - 5:] *= score_rows_scale
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=[eos, eot]).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "system_ft_v5.txt").write_text(SYSTEM)
    (out / "classifier_ft_v5.txt").write_text(CLASSIFIER)
    params = sum(p.numel() for p in model.parameters())
    del model
    gc.collect()
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["tiny", "160m", "1b"])
    parser.add_argument("--weights", nargs="+", choices=["fp32", "int8", "int4"], default=["fp32", "int8", "int4"])
    parser.add_argument("--prompt-words", type=int, nargs="+", default=[20, 200], help="prompt lengths in words")
    parser.add_argument("--json", help="also write the results here (benchmarks/run.py reads them)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=2, help="RouteLLM decisions timed per prompt")
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: all CPUs)")
    parser.add_argument("--score-rows-scale", type=float, default=8.0,
                        help="scale of the score tokens' output rows: 8 answers at step 0 as a trained router, "
                             "1 is the plain random init (no score token: all 6 steps)")
    args = parser.parse_args()

    import torch
    from make_causal_fixture import build_tokenizer, routellm_router
    from routellm_fast import CausalLLMRouter
    from routellm_fast.backends.cpu import available_cpus
    from routellm_fast.export.causal import export_causal

    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    words = "the quick brown fox jumps over a lazy dog while routers decide which model answers".split()
    prompts = {n: " ".join(words[i % len(words)] for i in range(n)) for n in args.prompt_words}
    results: dict = {"threads": threads, "torch": torch.__version__, "score_rows_scale": args.score_rows_scale,
                     "rows": []}
    batch = [" ".join(words[(i + k) % len(words)] for i in range(20 + 3 * k)) for k in range(8)]
    print(f"threads={threads}, torch {torch.__version__}")
    print(f"score rows scaled by {args.score_rows_scale:g}")
    print("| size | params | weights | prompt tokens | steps | RouteLLM torch fp32 (ms) | ours (ms) | speed-up | "
          "batched, per prompt (ms) | export (s) | win-rate diff vs RouteLLM |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            # The fixture's tokenizer, its vocabulary padded with reserved special tokens to Llama-3's
            # 128,256 as Llama-3 pads its own (so that every output row is a token RouteLLM can decode).
            base = Path(tmp) / f"tokenizer-{size}"
            tokenizer = build_tokenizer(base)
            if SIZES[size]["vocab"]:
                reserved = range(5, 5 + SIZES[size]["vocab"] - len(tokenizer))
                tokenizer.add_tokens([f"<|reserved_special_token_{k}|>" for k in reserved], special_tokens=True)
                tokenizer.save_pretrained(base)
            hf = Path(tmp) / size
            params = build(size, tokenizer, hf, args.score_rows_scale)
            reference, restore = routellm_router(hf, base)
            ref_ms, ref_win = {}, {}
            for n, prompt in prompts.items():
                seconds, ref_win[n] = timed(lambda p=prompt, r=reference: r.calculate_strong_win_rate(p),
                                            args.reference_repeats)
                ref_ms[n] = seconds * 1e3
            restore()
            del reference
            gc.collect()
            for quantize in [None if w == "fp32" else w for w in args.weights]:
                out = Path(tmp) / f"{size}-{quantize or 'fp32'}"
                t = time.perf_counter()
                export_causal(hf, out, quantize=quantize, tokenizer_dir=base)
                export_s = time.perf_counter() - t
                ours = CausalLLMRouter(str(out), threads=threads)
                batch_s, _ = timed(lambda r=ours: r.score(batch), max(1, args.repeats // 2))
                for n, prompt in prompts.items():
                    seconds, win = timed(lambda p=prompt, r=ours: r.calculate_strong_win_rate(p), args.repeats)
                    tokens = len(ours.tokenize([prompt])[0])
                    step = ours.classify([prompt])[0]
                    steps = ours.max_new_tokens if step is None else step.step + 1
                    print(f"| {size} | {params / 1e6:,.0f}M | {quantize or 'fp32'} | {tokens} | {steps} | {ref_ms[n]:,.1f} | "
                          f"{seconds * 1e3:,.1f} | {ref_ms[n] / (seconds * 1e3):.1f}x | "
                          f"{batch_s * 1e3 / len(batch):,.1f} | {export_s:.0f} | {abs(win - ref_win[n]):.1e} |",
                          flush=True)
                    results["rows"].append({"size": size, "params": params, "weights": quantize or "fp32",
                                            "prompt_tokens": tokens, "steps": int(steps), "reference_ms": float(ref_ms[n]),
                                            "single_ms": seconds * 1e3, "batched_ms": batch_s * 1e3 / len(batch),
                                            "export_s": export_s, "win_rate_diff": float(abs(win - ref_win[n]))})
                del ours
                gc.collect()
                shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(hf, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
