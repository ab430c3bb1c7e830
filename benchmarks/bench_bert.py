"""BERT router speed: RouteLLM's torch BERTRouter vs routellm_fast's BERTRouter (fp32 and int8) in one
run, on a random-weight bert-base-shaped checkpoint (110M parameters: what routellm/bert_gpt4_augmented
is), plus the shipped MiniLM router.

Per-decision medians at ~20 / 100 / 400 tokens: "single" is one prompt per call
(``calculate_strong_win_rate``), "batched" is ``score`` over 64 prompts divided by 64 (RouteLLM has
no batch call, so its batched column is its single one). Needs torch, transformers and
routellm==0.2.0 (the reference) in the environment::

    python benchmarks/bench_bert.py [--repeats 15] [--threads N] [--tokens 20 100 400] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("OPENAI_API_KEY", "unused")  # routellm makes an OpenAI client on import
os.environ["HF_HUB_OFFLINE"] = "1"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: all CPUs)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[20, 100, 400], help="prompt lengths in word pieces")
    parser.add_argument("--json", help="also write the results here (benchmarks/run.py reads them)")
    args = parser.parse_args()

    from pathlib import Path

    import torch
    from routellm.routers.routers import BERTRouter as RouteLLMBERT
    from routellm_fast import BERTRouter
    from routellm_fast.backends.cpu import available_cpus
    from routellm_fast.export.bert import export_bert
    from routellm_fast.routers.shipped import default_bert_router
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        BertTokenizerFast,
    )

    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    tok_file = Path(__file__).resolve().parents[1] / "python" / "routellm_fast" / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"
    words = "the quick brown fox jumps over a lazy dog while routers decide which model answers".split()
    prompts = {n: " ".join(words[i % len(words)] for i in range(n - 2)) for n in args.tokens}
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        BertForSequenceClassification(BertConfig(num_labels=3)).eval().save_pretrained(f"{tmp}/hf")
        BertTokenizerFast(tokenizer_file=str(tok_file), model_max_length=512).save_pretrained(f"{tmp}/hf")
        reference = RouteLLMBERT(f"{tmp}/hf")
        export_bert(f"{tmp}/hf", f"{tmp}/fp32")
        export_bert(f"{tmp}/hf", f"{tmp}/int8", int8=True)
        ours = {"fp32": BERTRouter(f"{tmp}/fp32", threads=threads), "int8": BERTRouter(f"{tmp}/int8", threads=threads)}
        shipped = default_bert_router(threads=threads)
        shipped_1 = default_bert_router(threads=1)
        print(f"{threads} threads; torch {torch.__version__}; per-decision median ms")
        print("| router | tokens | single | batched (64) | speed-up single vs RouteLLM |")
        print("| --- | --- | --- | --- | --- |")
        results: dict = {"threads": threads, "torch": torch.__version__, "repeats": args.repeats, "rows": []}
        for n, p in prompts.items():
            batch = [p] * 64
            ref_ms = median_ms(lambda: reference.calculate_strong_win_rate(p), args.repeats)
            print(f"| RouteLLM BERTRouter (torch, bert-base) | {n} | {ref_ms:.2f} | {ref_ms:.2f} | 1.0x |", flush=True)
            results["rows"].append({"router": "RouteLLM BERTRouter (torch fp32, bert-base)", "tokens": n,
                                    "single_ms": ref_ms, "reference": True})
            for name, router in ours.items():
                single = median_ms(lambda: router.calculate_strong_win_rate(p), args.repeats)
                batched = median_ms(lambda: router.score(batch), max(3, args.repeats // 5)) / 64
                print(f"| routellm_fast BERTRouter {name} (bert-base) | {n} | {single:.2f} | {batched:.2f} | "
                      f"{ref_ms / single:.1f}x |", flush=True)
                results["rows"].append({"router": f"routellm_fast BERTRouter {name} (bert-base)", "tokens": n,
                                        "single_ms": single, "batched_ms": batched, "reference_ms": ref_ms})
            single = median_ms(lambda: shipped.calculate_strong_win_rate(p), args.repeats)
            one = median_ms(lambda: shipped_1.calculate_strong_win_rate(p), args.repeats)
            batched = median_ms(lambda: shipped.score(batch), max(3, args.repeats // 5)) / 64
            print(f"| shipped bert (MiniLM int8) | {n} | {single:.2f} (1 thread: {one:.2f}) | {batched:.2f} | "
                  f"{ref_ms / single:.1f}x |", flush=True)
            results["rows"].append({"router": "shipped bert (MiniLM int8, fine-tuned)", "tokens": n, "single_ms": single,
                                    "single_one_thread_ms": one, "batched_ms": batched, "reference_ms": ref_ms})
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
