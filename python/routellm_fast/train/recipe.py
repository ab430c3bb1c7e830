"""The recipe that trains the routers shipped in the package (:mod:`routellm_fast.routers.shipped` loads them).

Both shipped routers (mf and sw_ranking, pair ``gpt-4-1106-preview`` / ``mixtral-8x7b-instruct-v0.1``)
are trained on battles from the shared data, embedded with a local embedder (``--embedder minilm``:
all-MiniLM-L6-v2, the default; ``--embedder static``: the static embedder distilled from it, whose
routers ship next to the MiniLM ones), so that ``pip install`` + one command routes a prompt with no
key and no network:

* ``preference/alpaca_eval``: 130,049 judge battles over AlpacaEval's 805 instructions (Apache-2.0);
* ``preference/arena_bench_v1``: 30,966 battles from GPT-4 grades of 15 models on 300 hard
  Chatbot Arena prompts (Apache-2.0);
* golden-label battles (gpt-4-1106-preview vs Mixtral: one right, the other wrong = a win, else a
  tie) from the *training half* of MMLU and GSM8K (``routellm_fast.formats.preference.training_split``,
  50% by a hash of the question). The other half is never trained on: the routers record the
  prompts they saw, and ``routellm_fast.evals`` leaves those out of every evaluation.

mf trains on all four sources, each weighted to the same total weight, ties as half a win; sw_ranking (no per-battle
weights) on arena-bench and the golden-label battles only: AlpacaEval's judges prefer GPT-4-Turbo
on open-ended writing where MT Bench scores both models alike, and measured, its battles make the
routers worse on MT Bench, MMLU and GSM8K unless down-weighted.

5% of the prompts (by a hash of the text, :func:`routellm_fast.train.fit.validation_prompts`) are
held out: they stop mf's training early and measure both routers' pairwise accuracy. Both routers
record their win rates on the bundled sample prompts (``data/sample_prompts.jsonl``, the default
prompts of ``routellm-fast calibrate``): the thresholds for any share of strong-model calls.
``--calibrate-only`` recomputes just that, leaving the weights and arena byte for byte. Model names are mapped to RouteLLM's spelling (:mod:`routellm_fast.formats.model_names`).

The shipped knn router (``--knn``) learns from labelled prompts instead: the pair's correctness on
the training halves of MMLU and GSM8K, every ZeroEval model's correctness on the training halves of
CRUXEval-O and MATH level 5 (:func:`routellm_fast.evals.zeroeval.zeroeval_training_half`; ZeroEval
has no gpt-4-1106-preview, so gpt-4-turbo-2024-04-09's labels stand in for it), and the pair's share
of the battles won per prompt in arena-bench and AlpacaEval. k and the softmax temperature are
chosen on 20% of those prompts (by a hash of the text), the rows are stored as int8.

Rebuild with ``python -m routellm_fast.train.recipe --data-dir ../shared/data [--embedder static] [--knn]``:
the same data and embedder give the same files (the knn file byte for byte).
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..decision.calibration import sample_prompts_digest, share_threshold
from ..embedders import EMBEDDER_ALIASES, Embedder, embedder_for
from ..evals import load_gsm8k, load_mmlu
from ..evals.zeroeval import (
    ZEROEVAL_SETS,
    ZEROEVAL_STRONG_MODEL,
    zeroeval_training_half,
)
from ..formats.arena import load_arena
from ..formats.knn import load_knn, save_knn
from ..formats.model_names import (
    DEFAULT_STRONG_MODEL,
    DEFAULT_WEAK_MODEL,
    canonical_model_name,
)
from ..formats.preference import (
    LabelledPrompts,
    PreferenceData,
    benchmark_labels,
    golden_label_battles,
    load_preference,
    pair_battle_labels,
)
from ..formats.tables import read_prompts
from ..paths import (
    BERT_METADATA_FILE,
    DATA_DIR,
    DEFAULT_BERT,
    DEFAULT_SHARED_DATA,
    MF_METADATA_FILE,
    SAMPLE_PROMPTS,
    SHIPPED_EMBEDDERS,
    require_shared_data,
    shared_folder,
    shipped_files,
    shipped_knn_file,
)
from ..routers import (
    BERTRouter,
    KNNRouter,
    MatrixFactorizationRouter,
    Router,
    SWRankingRouter,
)
from .fit import MFTrainConfig, train_knn_router, train_mf_router, train_sw_router

__all__ = [
    "build_defaults",
    "build_knn",
    "calibration",
    "default_training_data",
    "knn_training_data",
    "mf_training_data",
    "sw_training_data",
    "write_calibrations",
]

#: Held-out share of prompts (validation and accuracy).
VAL_SHARE = 0.05
#: The shipped mf's training settings: RouteLLM's (dim 128, Adam 3e-4, weight decay 1e-5, noise
#: 0.1 on prompt embeddings) with early stopping on the held-out prompts.
MF_CONFIG = MFTrainConfig()
#: Ties train as half a win each (RouteLLM drops them): a golden-label tie says the strong model
#: gains nothing on that question, which is what routing needs to know.
MF_TIES = "half"


def default_training_data(data_dir: Path) -> dict[str, PreferenceData]:
    """The battles the shipped routers are trained on, per source (see the module docstring)."""
    return {
        "alpaca_eval": load_preference(shared_folder(data_dir, "alpaca_eval")),
        "arena_bench_v1": load_preference(shared_folder(data_dir, "arena_bench_v1")),
        "mmlu_train": golden_label_battles(load_mmlu(data_dir)),
        "gsm8k_train": golden_label_battles(load_gsm8k(data_dir)),
    }


def knn_training_data(data_dir: Path, pair: tuple[str, str] = (DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL)
                      ) -> dict[str, LabelledPrompts]:
    """The labelled prompts the shipped knn router holds, per source (see the module docstring)."""
    stand_in = canonical_model_name(pair[0])
    sources = {"mmlu_train": benchmark_labels(load_mmlu(data_dir)), "gsm8k_train": benchmark_labels(load_gsm8k(data_dir))}
    for name in ZEROEVAL_SETS:
        half = zeroeval_training_half(name, data_dir)
        labels = LabelledPrompts(list(half.prompts), [canonical_model_name(m) for m in half.models],
                                 half.correct.astype(np.float32))
        sources[f"{name}_train"] = labels.with_copy(ZEROEVAL_STRONG_MODEL, stand_in)
    for name in ("arena_bench_v1", "alpaca_eval"):
        sources[name] = pair_battle_labels(load_preference(shared_folder(data_dir, name)), *pair)
    return sources


def mf_training_data(sources: dict[str, PreferenceData]) -> PreferenceData:
    """All sources, each carrying the same total weight (per battle: n(arena_bench_v1) / n(source)),
    so AlpacaEval's 130,049 style-driven judge battles do not drown the correctness signal."""
    unit = len(sources["arena_bench_v1"])
    return PreferenceData.concat([
        PreferenceData(d.prompts, d.prompt_index, d.model_a, d.model_b, d.outcome, d.weight * (unit / len(d)))
        for d in sources.values()
    ])


def sw_training_data(sources: dict[str, PreferenceData]) -> PreferenceData:
    """arena-bench and the golden-label battles: sw_ranking has no per-battle weights, and with
    AlpacaEval's battles in its arena it routes worse on all three benchmarks (docs/evaluation.md)."""
    return PreferenceData.concat([sources["arena_bench_v1"], sources["mmlu_train"], sources["gsm8k_train"]])


def calibration(router: Router, embeddings: np.ndarray | None = None) -> dict:
    """What a router records as its calibration: its win rates on the bundled sample prompts
    (``data/sample_prompts.jsonl``, the default prompts of ``routellm-fast calibrate``), so that any
    share of strong-model calls has its threshold (:func:`routellm_fast.decision.calibration.share_threshold`)
    and ``route --strong-model-pct`` and ``calibrate`` give the same one. ``embeddings``: the
    prompts' embeddings, if already made."""
    prompts = read_prompts()
    rates = router.score(prompts) if embeddings is None else router.score_embeddings(embeddings)
    return {
        "prompts": f"{SAMPLE_PROMPTS.name}: the {len(prompts)} bundled sample prompts (AlpacaEval's instructions), "
                   "the default prompts of routellm-fast calibrate",
        "prompts_sha256": sample_prompts_digest(),
        "pair": {"strong": getattr(router, "strong_model", DEFAULT_STRONG_MODEL),
                 "weak": getattr(router, "weak_model", DEFAULT_WEAK_MODEL)},
        "win_rates": [float(r) for r in rates],
    }


def _replace_npz_member(path: Path, name: str, value: np.ndarray) -> None:
    """Rewrite one array of an ``.npz`` file, copying every other member's compressed bytes as they are."""
    member = f"{name}.npy"
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == member:
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, value, allow_pickle=False)
                dst.writestr(info, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
            else:
                dst.writestr(info, src.read(info.filename), compress_type=info.compress_type)
    tmp.replace(path)


def local_embedder(embedder: str) -> Embedder:
    """The local embedder a shipped router is trained on: ``"minilm"`` or ``"static"``."""
    if embedder not in SHIPPED_EMBEDDERS:
        raise ValueError(f"no local embedder {embedder!r}: choose one of {', '.join(SHIPPED_EMBEDDERS)}")
    return embedder_for(EMBEDDER_ALIASES[embedder])


def write_calibrations(out_dir: Path = DATA_DIR, embedder: str = "minilm", bert: bool = True) -> dict[str, dict]:
    """(Re)write the calibration of the shipped mf and sw_ranking on ``embedder`` in ``out_dir`` (and
    of bert when it is there and ``bert``), and nothing else: the weights and arena arrays stay
    byte for byte as they are."""
    pair = (DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL)
    mf_dir, arena_path = shipped_files(embedder, out_dir)
    embedder_name, embedder = embedder, local_embedder(embedder)
    embeddings = embedder.embed(read_prompts())
    mf = MatrixFactorizationRouter(mf_dir, *pair, embed=embedder)
    meta_path = mf_dir / MF_METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["calibration"] = calibration(mf, embeddings)
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    arena = load_arena(arena_path)
    sw = SWRankingRouter.from_arena(arena, *pair, embed=embedder)
    metadata = {**arena.metadata, "calibration": calibration(sw, embeddings)}
    _replace_npz_member(arena_path, "metadata", np.array(json.dumps(metadata)))
    calibrations = {"mf": meta["calibration"], "sw_ranking": metadata["calibration"]}
    knn_path = shipped_knn_file(embedder_name, out_dir)
    if knn_path.is_file():  # the shipped knn router (build_knn)
        calibrations["knn"] = _calibrate_knn(knn_path, embedder, embeddings)
    bert_dir = out_dir / DEFAULT_BERT.name
    if bert and (bert_dir / BERT_METADATA_FILE).is_file():  # the shipped bert router (routellm_fast.train.bert_recipe)
        bert_meta = json.loads((bert_dir / BERT_METADATA_FILE).read_text())
        bert_meta["calibration"] = calibrations["bert"] = calibration(BERTRouter(bert_dir))
        (bert_dir / BERT_METADATA_FILE).write_text(json.dumps(bert_meta, indent=2) + "\n")
    return calibrations


def _calibrate_knn(path: Path, embedder: Embedder, embeddings: np.ndarray) -> dict:
    """Rewrite the knn file at ``path`` with its calibration (nothing else changes); returns it."""
    knn = load_knn(path)
    pair = knn.metadata.get("pair", {})
    router = KNNRouter(knn, pair.get("strong", DEFAULT_STRONG_MODEL), pair.get("weak", DEFAULT_WEAK_MODEL), embed=embedder)
    knn.metadata["calibration"] = calibration(router, embeddings)
    save_knn(path, knn)
    return knn.metadata["calibration"]


def build_knn(
    data_dir: Path, out_dir: Path = DATA_DIR, embedder: str = "minilm",
    embedding_cache: Path | None = None, progress: bool = True,
) -> dict:
    """Train the shipped knn router on local ``embedder`` from ``data_dir`` (the shared data folder)
    into ``out_dir`` and calibrate it; returns its training report."""
    path = shipped_knn_file(embedder, out_dir)
    model = local_embedder(embedder)
    pair = (DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL)
    report = train_knn_router(knn_training_data(data_dir, pair), path, model, pair=pair,
                              embedding_cache=embedding_cache, progress=progress)
    _calibrate_knn(path, model, model.embed(read_prompts()))
    return report


def build_defaults(
    data_dir: Path, out_dir: Path = DATA_DIR, embedder: str = "minilm",
    embedding_cache: Path | None = None, progress: bool = True,
) -> dict[str, dict]:
    """Train both shipped routers on local ``embedder`` (``"minilm"`` or ``"static"``) from
    ``data_dir`` (the shared data folder) into ``out_dir`` and calibrate them
    (:func:`write_calibrations`); returns their training reports."""
    mf_dir, arena_path = shipped_files(embedder, out_dir)
    model = local_embedder(embedder)
    sources = default_training_data(data_dir)
    mf_data, sw_data = mf_training_data(sources), sw_training_data(sources)
    pair = (DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL)
    reports = {
        "mf": train_mf_router(mf_data, mf_dir, model, config=MF_CONFIG, ties=MF_TIES,
                              val_share=VAL_SHARE, pair=pair, embedding_cache=embedding_cache, progress=progress),
        "sw_ranking": train_sw_router(sw_data, arena_path, model, val_share=VAL_SHARE,
                                      pair=pair, embedding_cache=embedding_cache, progress=progress),
    }
    write_calibrations(out_dir, embedder, bert=False)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.train.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_SHARED_DATA, help="the shared data folder")
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR,
                        help="where to write default_mf[_static]/, default_sw_arena[_static].npz, default_knn[_static].npz")
    parser.add_argument("--embedder", choices=list(SHIPPED_EMBEDDERS), default="minilm",
                        help="the local embedder to train on (default minilm)")
    parser.add_argument("--embedding-cache", type=Path, help="reuse/keep prompt embeddings in this .npz")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="only recompute the calibration of the routers in --out-dir (no training, no --data-dir)")
    parser.add_argument("--knn", action="store_true",
                        help="train only the shipped knn router (default_knn[_static].npz) from the labelled prompts")
    args = parser.parse_args(argv)
    if not args.calibrate_only:
        try:
            require_shared_data(args.data_dir, "alpaca_eval", "arena_bench_v1")
        except FileNotFoundError as exc:
            parser.error(str(exc))
    if args.knn and not args.calibrate_only:
        report = build_knn(args.data_dir, args.out_dir, args.embedder, embedding_cache=args.embedding_cache)
        val = report["validation"]
        print(f"knn: {report['data']['all']}; chose {val['chosen']} (mean validation APGR {val['apgr']['mean']:.4f})")
        return 0
    if args.calibrate_only:
        for name, cal in write_calibrations(args.out_dir, args.embedder).items():
            print(f"{name}: threshold for 50% strong calls {share_threshold(cal['win_rates'], 0.5):.5f} "
                  f"({cal['prompts']})")
        return 0
    reports = build_defaults(args.data_dir, args.out_dir, args.embedder, embedding_cache=args.embedding_cache)
    for name, report in reports.items():
        val = report["validation"]
        print(f"{name}: {report['data']}; held-out pairwise accuracy {val['pairwise_accuracy']:.4f} "
              f"on {val['prompts']} prompts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
