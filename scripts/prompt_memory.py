"""Peak memory of embedding (MiniLM) or scoring (the shipped bert) 1 MB non-ASCII prompts, with the cut
before tokenising and, for comparison, without it (``--no-cut``: the whole text tokenised, as before).

Prints the peak resident memory of the process and its growth over the loaded, warmed-up model.
"""

from __future__ import annotations

import argparse
import resource

import routellm_fast.backends.onnx as onnx_backend

#: About 1,000,000 characters (2.1 MB of UTF-8): CJK, accented Latin, emoji, Cyrillic.
BIG = ("日本語の文章を読みます。" + "café naïve résumé " + "😀🎉 " + "Привет мир " + "长文本测试，") * 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=["minilm", "bert"], default="minilm")
    parser.add_argument("--prompts", type=int, default=1, help="how many 1 MB prompts in one call")
    parser.add_argument("--no-cut", action="store_true", help="tokenise the whole text (the behaviour before the cut)")
    args = parser.parse_args()
    if args.no_cut:
        onnx_backend.CHARS_PER_TOKEN = 10**9
    if args.what == "minilm":
        from routellm_fast.embedders.onnx import OnnxEmbedder

        model = OnnxEmbedder()
        run = model.embed
    else:
        from routellm_fast.routers.shipped import default_bert_router

        model = default_bert_router()
        run = model.score
    run(["warm up"])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run([BIG[:-1] + str(i) for i in range(args.prompts)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.what}, {args.prompts} x {len(BIG):,} characters ({len(BIG.encode()) / 1e6:.1f} MB UTF-8), "
          f"{'whole text tokenised' if args.no_cut else 'cut before tokenising'}: peak RSS {peak / 1024:.0f} MB, "
          f"+{(peak - base) / 1024:.0f} MB over the loaded model")


if __name__ == "__main__":
    main()
