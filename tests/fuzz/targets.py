"""Fuzz targets: every ``_core`` entry point and every file loader, driven by arbitrary bytes.

A target may refuse its input only with the exceptions a user is promised: a file loader with
ValueError (BadFileError, naming the file); a compiled entry point with ValueError, TypeError for
wrong argument types or OverflowError for numbers that cannot be C integers. Any other exception, a
crash or a hang is a finding. ``run.py`` feeds them to
atheris (libFuzzer); ``tests/fuzz/test_fuzz.py`` replays the committed corpus and runs a short pass.
"""

from __future__ import annotations

import functools
import pickle
import tempfile
from pathlib import Path

import atheris
import numpy as np
import routellm_fast as rf
from routellm_fast import _core
from routellm_fast.embedders import CachedEmbedder
from routellm_fast.evals import load_golden_file
from routellm_fast.formats.arena import load_arena, load_battles, load_embeddings
from routellm_fast.formats.checkpoints import load_mf_checkpoint
from routellm_fast.formats.preference import load_preference
from routellm_fast.formats.tables import (
    read_json,
    read_jsonl,
    read_npy,
    read_npz,
    read_prompts,
    read_table,
)

#: What a target may raise for bad input.
REFUSALS = (ValueError, TypeError, OverflowError)

_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32, bool,
           np.complex64]
_SPECIAL = [0.0, -0.0, 1.0, -1.0, 1e-45, 1e-38, 3.4e38, 1e300, float("inf"), float("-inf"), float("nan"), 65504.0]


def _number(fdp: atheris.FuzzedDataProvider) -> float:
    return fdp.PickValueInList(_SPECIAL) if fdp.ConsumeBool() else fdp.ConsumeFloatInRange(-4.0, 4.0)


def _array(fdp: atheris.FuzzedDataProvider, shape: tuple[int, ...], dtype=None) -> np.ndarray:
    dtype = dtype or fdp.PickValueInList(_DTYPES)
    n = int(np.prod(shape))
    if np.dtype(dtype).kind in "iub":
        values = np.array(fdp.ConsumeIntListInRange(n, -3, 12), dtype=np.int64)
    else:
        values = np.array([_number(fdp) for _ in range(n)], dtype=np.float64)
    values = np.resize(values, n) if values.size else np.zeros(n)
    with np.errstate(all="ignore"):
        array = values.astype(dtype).reshape(shape)
    if fdp.ConsumeIntInRange(0, 7) == 0 and array.ndim == 2 and array.shape[0] > 1:
        array = array[::-1]  # negative strides
    if fdp.ConsumeIntInRange(0, 7) == 0 and array.ndim == 2 and array.shape[1] > 1:
        array = array[:, ::2]  # non-contiguous rows
    return array


def _shape(fdp: atheris.FuzzedDataProvider, ndim: int, most: int = 9) -> tuple[int, ...]:
    return tuple(fdp.ConsumeIntInRange(0, most) for _ in range(ndim))


def _arena_args(fdp: atheris.FuzzedDataProvider) -> tuple[tuple, dict]:
    n_prompts, dim, n_battles = fdp.ConsumeIntInRange(0, 8), fdp.ConsumeIntInRange(0, 8), fdp.ConsumeIntInRange(0, 24)
    sane = fdp.ConsumeIntInRange(0, 3) != 0  # mostly the right dtypes, so the fuzzer gets past the checks
    args = (
        _array(fdp, (n_prompts, dim) if sane else _shape(fdp, fdp.ConsumeIntInRange(1, 3)), np.float32 if sane else None),
        _array(fdp, (n_battles,), np.int64 if sane else None),
        _array(fdp, (n_battles,), np.int32 if sane else None),
        _array(fdp, (n_battles,), np.int32 if sane else None),
        _array(fdp, (n_battles,), np.int8 if sane else None),
    )
    kwargs = {
        "n_models": fdp.ConsumeIntInRange(-2, 8),
        "num_tiers": fdp.ConsumeIntInRange(-1, 12),
        "anchor_model": fdp.ConsumeIntInRange(-2, 8),
        "anchor_rating": _number(fdp),
        "storage": fdp.PickValueInList(["float32", "float16", "int8", "float64", ""]),
    }
    if fdp.ConsumeBool():
        kwargs["model_names"] = [fdp.ConsumeUnicodeNoSurrogates(4) for _ in range(fdp.ConsumeIntInRange(0, 9))]
    return args, kwargs


def _mutated_state(fdp: atheris.FuzzedDataProvider, state: tuple) -> tuple:
    items = list(state)
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if not items:
            break
        i = fdp.ConsumeIntInRange(0, len(items) - 1)
        old = items[i]
        if isinstance(old, np.ndarray) and fdp.ConsumeBool():
            items[i] = _array(fdp, old.shape if fdp.ConsumeBool() else _shape(fdp, max(old.ndim, 1)),
                              old.dtype if fdp.ConsumeBool() else None)
        else:
            items[i] = fdp.PickValueInList([None, 0, -1, 2**40, "int8", "float32", 1.5, (), b"x"])
    if fdp.ConsumeIntInRange(0, 7) == 0:
        items = items[: fdp.ConsumeIntInRange(0, len(items))]
    return tuple(items)


def fuzz_core(data: bytes) -> None:
    """Every compiled entry point with arrays of any dtype, shape, stride and value."""
    fdp = atheris.FuzzedDataProvider(data)
    what = fdp.ConsumeIntInRange(0, 5)
    try:
        if what == 0:
            args, kwargs = _arena_args(fdp)
            arena = _core.SwArena(*args, **kwargs)
            queries = _array(fdp, (fdp.ConsumeIntInRange(0, 4), arena.dim if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 9)),
                             np.float32 if fdp.ConsumeBool() else None)
            if fdp.ConsumeBool():
                arena.score_ratings(queries)
            arena.score(queries, fdp.ConsumeIntInRange(-1, 8), fdp.ConsumeIntInRange(-1, 8))
            copy = pickle.loads(pickle.dumps(arena))
            copy.score(queries, 0, 0)
            _core.SwArena.__new__(_core.SwArena).__setstate__(_mutated_state(fdp, arena.__getstate__()))
        elif what == 1:
            models, hidden, text = fdp.ConsumeIntInRange(0, 5), fdp.ConsumeIntInRange(0, 6), fdp.ConsumeIntInRange(0, 6)
            proj = None if fdp.ConsumeIntInRange(0, 4) == 0 else _array(fdp, (hidden, text), np.float32 if fdp.ConsumeBool() else None)
            scorer = _core.MfPairScorer(_array(fdp, (models, hidden), np.float32 if fdp.ConsumeBool() else None), proj,
                                        _array(fdp, (hidden,), np.float32 if fdp.ConsumeBool() else None),
                                        fdp.ConsumeIntInRange(-1, 5), fdp.ConsumeIntInRange(-1, 5))
            scorer.score(_array(fdp, (fdp.ConsumeIntInRange(0, 5), scorer.text_dim if fdp.ConsumeBool() else 3),
                                np.float32 if fdp.ConsumeBool() else None))
            _core.MfPairScorer.__new__(_core.MfPairScorer).__setstate__(_mutated_state(fdp, scorer.__getstate__()))
        elif what == 5:
            models, hidden, text = fdp.ConsumeIntInRange(0, 5), fdp.ConsumeIntInRange(0, 6), fdp.ConsumeIntInRange(0, 6)
            proj = None if fdp.ConsumeIntInRange(0, 4) == 0 else _array(fdp, (hidden, text), np.float32 if fdp.ConsumeBool() else None)
            scorer = _core.MfModelScorer(_array(fdp, (models, hidden), np.float32 if fdp.ConsumeBool() else None), proj,
                                         _array(fdp, (hidden,), np.float32 if fdp.ConsumeBool() else None))
            scorer.logits(_array(fdp, (fdp.ConsumeIntInRange(0, 5), scorer.text_dim if fdp.ConsumeBool() else 3),
                                 np.float32 if fdp.ConsumeBool() else None))
        elif what == 2:
            _core.dedup_rows(_array(fdp, _shape(fdp, fdp.ConsumeIntInRange(1, 3)), np.float32 if fdp.ConsumeBool() else None))
        elif what == 3:
            _core.set_simd(fdp.PickValueInList(["generic", "avx2", "avx512", "", "neon", fdp.ConsumeUnicode(6)]))
        else:
            default = _core.get_num_threads()
            try:
                _core.set_num_threads(fdp.PickValueInList([0, -1, 1, 2, 3, 1025, 2**31, -2**40]))
            finally:
                _core.set_num_threads(default)
    except REFUSALS:
        pass
    finally:
        _core.set_simd(_DEFAULT_SIMD)


_DEFAULT_SIMD = _core.backend_info()["simd"]
_WORKDIR = Path(tempfile.mkdtemp(prefix="routellm-fast-fuzz-"))


class _FixedEmbedder:
    name, dim = "fuzz", 4

    def embed(self, prompts):
        return np.ones((len(prompts), 4), dtype=np.float32)


def _load_checkpoint(path: Path, payload: bytes) -> None:
    folder = _WORKDIR / "ckpt"
    folder.mkdir(exist_ok=True)
    cut = len(payload) // 2
    (folder / "model.safetensors").write_bytes(payload[:cut])
    (folder / "config.json").write_bytes(payload[cut:])
    load_mf_checkpoint(folder, None, None, None, 1, True)


@functools.cache
def _valid_bert_parts() -> tuple[bytes, bytes, bytes]:
    """A valid BERT router directory's model.onnx, tokenizer.json and metadata, made once: the model
    a small graph (token embedding, masked sum, a 3-label projection), so that fuzzed metadata and
    tokenizers meet a model that loads; the tokenizer the shipped one."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((30522, 1)).astype(np.float32), "table")
    head = numpy_helper.from_array(rng.standard_normal((1, 3)).astype(np.float32), "head")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["tok"]),  # [b, s, 1]
             helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["m", "axis2"], ["m3"]),
             helper.make_node("Mul", ["tok", "m3"], ["masked"]),
             helper.make_node("ReduceSum", ["masked", "axis1"], ["pooled"], keepdims=0),  # [b, 1]
             helper.make_node("MatMul", ["pooled", "head"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny_bert",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask")],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [table, head, numpy_helper.from_array(np.array([2], np.int64), "axis2"),
         numpy_helper.from_array(np.array([1], np.int64), "axis1")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    tokenizer = (Path(rf.__file__).parent / "data" / "all-MiniLM-L6-v2" / "tokenizer.json").read_bytes()
    return model, tokenizer, b'{"format": 1, "num_labels": 3, "max_length": 16, "int8": false}'


def _load_bert(payload: bytes) -> None:
    """A BERT router directory from fuzzed parts: the first byte says which of model.onnx,
    tokenizer.json and the metadata are fuzzed (the others are valid), the rest is cut in three."""
    folder = _WORKDIR / "bert"
    folder.mkdir(exist_ok=True)
    which, rest = (payload[0] if payload else 0), payload[1:]
    cut1, cut2 = len(rest) // 3, 2 * len(rest) // 3
    parts = rest[:cut1], rest[cut1:cut2], rest[cut2:]
    for bit, (name, fuzzed, default) in enumerate(zip(("model.onnx", "tokenizer.json", "routellm_fast_bert.json"),
                                                      parts, _valid_bert_parts())):
        (folder / name).write_bytes(fuzzed if which >> bit & 1 else default)
    router = rf.BERTRouter(folder, threads=1)
    rates = router.score(["hello world", "", "x" * 40])
    if not np.all((rates >= 0) & (rates <= 1)):
        raise AssertionError(f"win rates out of [0, 1]: {rates}")


#: (file suffix, kind of content, loader): every way a user's file reaches the package.
LOADERS = [
    (".jsonl", "table", read_table), (".json", "table", read_table), (".csv", "table", read_table),
    (".parquet", "table", read_table), (".jsonl", "jsonl", read_jsonl), (".json", "json", read_json),
    (".jsonl", "prompts", read_prompts), (".csv", "prompts", read_prompts),
    (".jsonl", "battles", load_battles), (".csv", "battles", load_battles), (".parquet", "battles", load_battles),
    (".npy", "embeddings", load_embeddings), (".jsonl", "embeddings", load_embeddings),
    (".parquet", "embeddings", load_embeddings), (".npy", "npy", read_npy), (".npz", "arena", read_npz),
    (".npz", "arena", load_arena), (".jsonl", "preference", load_preference), (".csv", "preference", load_preference),
    (".csv", "golden", load_golden_file), (".jsonl", "golden", load_golden_file),
    (".npz", "embedding-cache", lambda p: CachedEmbedder(_FixedEmbedder()).load(p)),
    (".bin", "checkpoint", lambda p: _load_checkpoint(p, p.read_bytes())),
    (".npz", "arena", lambda p: rf.SWRankingRouter.from_arena(p, "a", "b")),
    (".bin", "bert", lambda p: _load_bert(p.read_bytes())),
]


def fuzz_loaders(data: bytes) -> None:
    """Every file loader on arbitrary file contents."""
    if not data:
        return
    suffix, _, loader = LOADERS[data[0] % len(LOADERS)]
    path = _WORKDIR / f"input{suffix}"
    path.write_bytes(data[1:])
    try:
        loader(path)
    except ValueError:  # BadFileError and other content errors: what a bad file must raise
        pass
    except FileNotFoundError:  # a router directory whose metadata names a file that is not there
        if LOADERS[data[0] % len(LOADERS)][1] != "bert":
            raise


_STATIC = None
_HF_TOKENIZER = None


def fuzz_static(data: bytes) -> None:
    """The static embedder: any text, embedded (finite unit vectors or a promised refusal), with the
    core's ASCII WordPiece checked against HF tokenizers token for token; and the compiled
    ``StaticEmbedder`` built from fuzzed vocabularies, tables and token ids."""
    global _STATIC, _HF_TOKENIZER
    if _STATIC is None:
        from routellm_fast.embedders import StaticEmbedder
        from tokenizers import Tokenizer

        _STATIC = StaticEmbedder()
        _HF_TOKENIZER = Tokenizer.from_file(str(_STATIC.path / "tokenizer.json"))
        _HF_TOKENIZER.no_truncation()
        _HF_TOKENIZER.no_padding()
    fdp = atheris.FuzzedDataProvider(data)
    what = fdp.ConsumeIntInRange(0, 2)
    try:
        if what == 0:
            texts = [fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 300)) if fdp.ConsumeBool()
                     else fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)).decode("ascii", "replace").replace("\ufffd", "#")
                     for _ in range(fdp.ConsumeIntInRange(1, 4))]
            vectors = _STATIC.embed(texts)
            if not (np.isfinite(vectors).all() and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)):
                raise AssertionError(f"not finite unit vectors for {texts!r}")
            for text in texts:
                if _STATIC._core_tokenizes(text):
                    want = _HF_TOKENIZER.encode(text, add_special_tokens=False).ids[: _STATIC.max_tokens]
                    if _STATIC._core.tokenize(text) != want:
                        raise AssertionError(f"the core tokenises {text!r} unlike HF tokenizers")
        elif what == 1:
            n = fdp.ConsumeIntInRange(0, 6)
            ids = _array(fdp, (fdp.ConsumeIntInRange(0, 12),), np.int32 if fdp.ConsumeBool() else None)
            offsets = _array(fdp, (n + 1,), np.int64 if fdp.ConsumeBool() else None)
            _STATIC._core.embed_ids(ids, offsets)
        else:
            rows, dim = fdp.ConsumeIntInRange(0, 6), fdp.ConsumeIntInRange(0, 5)
            vocab = [fdp.PickValueInList(["[UNK]", "a", "##a", "b", "##", "", "ab", fdp.ConsumeUnicode(3)])
                     for _ in range(fdp.ConsumeIntInRange(0, 7))]
            core = _core.StaticEmbedder(vocab, _array(fdp, (rows, dim), np.int8 if fdp.ConsumeBool() else None),
                                        _array(fdp, (fdp.ConsumeIntInRange(0, 7),), np.float32 if fdp.ConsumeBool() else None),
                                        fdp.ConsumeIntInRange(-1, 7), fdp.ConsumeIntInRange(0, 3), fdp.ConsumeBool(),
                                        fdp.ConsumeIntInRange(0, 5))
            core.embed([fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)).decode("ascii", "replace")
                        for _ in range(fdp.ConsumeIntInRange(0, 9))])
    except REFUSALS:
        pass


TARGETS = {"core": fuzz_core, "loaders": fuzz_loaders, "static": fuzz_static}
