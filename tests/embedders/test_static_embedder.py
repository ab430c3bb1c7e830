"""The static embedder (Model2Vec layout, pooling and ASCII WordPiece in the compiled core) and the
mf / sw_ranking routers shipped on it: the core's tokens equal HF ``tokenizers``', vectors equal a
NumPy reference of the same table (<= 1e-6), batches change nothing, hostile prompts and files get
clear errors."""

from __future__ import annotations

import json
import pickle
import random
import shutil
import string
import subprocess
import sys

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast import _core
from routellm_fast.embedders import STATIC_EMBEDDER_NAME, StaticEmbedder, embedder_for
from routellm_fast.embedders.static import quantize_rows
from routellm_fast.evals import load_gsm8k, load_mmlu, load_mt_bench
from routellm_fast.formats.tables import read_prompts
from routellm_fast.paths import STATIC_EMBEDDER_DIR
from routellm_fast.routers.shipped import (
    default_mf_router,
    default_threshold,
    shipped_calibration,
)
from routellm_fast.serve.controller import Controller
from safetensors.numpy import load_file, save_file
from tokenizers import Tokenizer

EDGE_PROMPTS = [
    "", " ", "\t\n  \r", "a", "A.", "Hello, World!", "don't stop-believing...", "x" * 150, "supercalifragilistic" * 6,
    "12,345.67 + 8 = ?", "(((nested)))", "[MASK] is a special token", "[UNK] [CLS] [SEP]", "tab\there\x00nul\x7fdel",
    "café naïve résumé", "日本語のテキスト", "emoji 🙂 here", "Ünïcödé and ASCII mixed: 42", "\u2603\u2603",
    "\u0301\u0301", "def f(x):\n    return x ** 2  # square",
]


@pytest.fixture(scope="module")
def embedder() -> StaticEmbedder:
    return embedder_for("static")


@pytest.fixture(scope="module")
def hf_tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(STATIC_EMBEDDER_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def real_prompts() -> list[str]:
    prompts = list(read_prompts())
    for load in (load_mt_bench, load_mmlu, load_gsm8k):
        prompts += list(load().prompts)
    return prompts


def fuzz_strings(n: int, seed: int = 0) -> list[str]:
    """ASCII strings built to stress WordPiece: punctuation runs, control characters, digits, words
    past the 100-character limit, repeated subwords, whitespace of every kind."""
    rng = random.Random(seed)
    pieces = [string.ascii_letters, string.digits, string.punctuation, " \t\n\r\x0b\x0c", "\x00\x01\x1f\x7f",
              "the ing ##s un able tion"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            alphabet = rng.choice(pieces)
            parts.append("".join(rng.choice(alphabet) for _ in range(rng.choice([1, 2, 5, 20, 120]))))
        out.append("".join(parts))
    return out


def reference(embedder: StaticEmbedder, hf_tokenizer: Tokenizer, prompts: list[str]) -> np.ndarray:
    """NumPy, float64: each prompt's first max_tokens HF tokens (no special tokens), the unknown
    token's row for a prompt with none, rows times their scales, mean, L2-normalised."""
    table = embedder.table.astype(np.float64) * embedder.scales.astype(np.float64)[:, None]
    unk = hf_tokenizer.token_to_id("[UNK]")
    out = np.empty((len(prompts), table.shape[1]))
    for i, prompt in enumerate(prompts):
        ids = hf_tokenizer.encode(prompt, add_special_tokens=False).ids[: embedder.max_tokens] or [unk]
        vec = table[ids].mean(axis=0)
        out[i] = vec / np.linalg.norm(vec)
    return out


def test_core_tokenizer_equals_hf_tokenizers(embedder, hf_tokenizer, real_prompts):
    # The core tokenises ASCII prompts holding no added token ("[MASK]", ...: HF cuts those out of the
    # raw text first); the rest go through HF tokenizers, and the vectors test covers them.
    ascii_prompts = [p for p in real_prompts + EDGE_PROMPTS if embedder._core_tokenizes(p)]
    assert len(ascii_prompts) > 4000 and not embedder._core_tokenizes("[MASK] is a special token")
    for prompt in ascii_prompts + fuzz_strings(3000):
        want = hf_tokenizer.encode(prompt, add_special_tokens=False).ids[: embedder.max_tokens]
        assert embedder._core.tokenize(prompt) == want, repr(prompt[:200])


def test_vectors_equal_a_numpy_reference(embedder, hf_tokenizer, real_prompts):
    prompts = real_prompts[::7] + EDGE_PROMPTS + fuzz_strings(200, seed=1)
    got = embedder.embed(prompts)
    assert got.dtype == np.float32 and got.shape == (len(prompts), embedder.dim) and embedder.dim == 256
    np.testing.assert_allclose(got, reference(embedder, hf_tokenizer, prompts), rtol=0, atol=1e-6)


def test_batches_change_nothing(embedder, real_prompts):
    prompts = real_prompts[:300] + EDGE_PROMPTS
    batch = embedder.embed(prompts)
    single = np.vstack([embedder.embed([p]) for p in prompts])
    assert np.array_equal(batch, single)
    order = np.random.default_rng(0).permutation(len(prompts))
    assert np.array_equal(embedder.embed([prompts[i] for i in order]), batch[order])


def test_hostile_prompts(embedder, hf_tokenizer):
    unk_row = embedder.embed(["\u2603"])[0]  # a character outside the vocabulary: one [UNK] token
    assert hf_tokenizer.encode("\u2603", add_special_tokens=False).tokens == ["[UNK]"]
    # A prompt with no tokens (empty, whitespace only) is embedded as one unknown word.
    for prompt in ("", "   ", "\n\t\r", "\u0301"):
        assert np.array_equal(embedder.embed([prompt])[0], unk_row), repr(prompt)
    huge_ascii, huge_unicode = "word " * 200_000, "日本語 " * 250_000  # 1 MB each
    vectors = embedder.embed([huge_ascii, huge_unicode, "[MASK]", "x"])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # Read up to max_tokens: a 1 MB prompt costs what its first 512 tokens cost, and equals them.
    assert np.array_equal(vectors[0], embedder.embed(["word " * embedder.max_tokens])[0])
    with pytest.raises(ValueError, match="lone surrogate"):
        embedder.embed(["bad \ud800 text"])
    with pytest.raises(TypeError, match="single string"):
        embedder.embed("a prompt")
    with pytest.raises(TypeError, match="prompt 1 must be a str"):
        embedder.embed(["ok", 3])
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_core_refuses_bad_ids_and_tables(embedder):
    core = embedder._core
    with pytest.raises(ValueError, match="outside the vocabulary"):
        core.embed_ids(np.array([1, 10**8], dtype=np.int32), np.array([0, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        core.embed_ids(np.array([-1], dtype=np.int32), np.array([0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="never decrease"):
        core.embed_ids(np.array([1, 2], dtype=np.int32), np.array([0, 2, 1, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="end at len"):
        core.embed_ids(np.array([1, 2], dtype=np.int32), np.array([0, 1], dtype=np.int64))
    with pytest.raises((TypeError, ValueError), match="ids"):
        core.embed_ids(np.array([1.0, 2.0]), np.array([0, 2], dtype=np.int64))
    assert core.embed_ids(np.zeros(0, dtype=np.int32), np.zeros(1, dtype=np.int64)).shape == (0, embedder.dim)
    vocab = ["[PAD]", "[UNK]", "a", "b"]
    with pytest.raises(ValueError, match="rows"):
        _core.StaticEmbedder(vocab, np.ones((3, 4), np.int8), np.ones(3, np.float32), 1)
    with pytest.raises(ValueError, match="not finite"):
        _core.StaticEmbedder(vocab, np.ones((4, 4), np.int8), np.array([1, np.nan, 1, 1], np.float32), 1)
    with pytest.raises(TypeError, match="int8"):
        _core.StaticEmbedder(vocab, np.ones((4, 4), np.float32), np.ones(4, np.float32), 1)
    big = _core.StaticEmbedder(vocab, np.full((4, 4), 127, np.int8), np.full(4, 3e38, np.float32), 1)
    with pytest.raises(ValueError, match="overflow"):
        big.embed(["a b a b"])


def _copy_table(tmp_path):
    target = tmp_path / "table"
    shutil.copytree(STATIC_EMBEDDER_DIR, target)
    return target


def test_hostile_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        StaticEmbedder(tmp_path / "nowhere")
    d = _copy_table(tmp_path)
    (d / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        StaticEmbedder(d)
    d = _copy_table(tmp_path / "2")
    (d / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer"):
        StaticEmbedder(d)
    d = _copy_table(tmp_path / "3")
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="model.safetensors"):
        StaticEmbedder(d)
    d = _copy_table(tmp_path / "4")
    tensors = load_file(str(d / "model.safetensors"))
    save_file({"embeddings": tensors["embeddings"][:-5], "scales": tensors["scales"][:-5]}, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="rows but the tokenizer has"):
        StaticEmbedder(d)
    save_file({"embeddings": tensors["embeddings"]}, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="scales"):
        StaticEmbedder(d)
    floats = tensors["embeddings"].astype(np.float32)
    floats[3, 0] = np.nan
    save_file({"embeddings": floats}, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match="NaN"):
        StaticEmbedder(d)
    (d / "config.json").write_text(json.dumps({"normalize": "yes"}))
    with pytest.raises(ValueError, match="normalize"):
        StaticEmbedder(d)
    with pytest.raises(ValueError, match="max_tokens"):
        StaticEmbedder(max_tokens=0)


def test_float_tables_load_as_int8(tmp_path, embedder, hf_tokenizer):
    """Model2Vec's own files hold float tables: stored as int8 rows with a scale each."""
    d = _copy_table(tmp_path)
    floats = embedder.table.astype(np.float32) * embedder.scales[:, None]
    save_file({"embeddings": floats.astype(np.float16)}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"normalize": False}))
    loaded = StaticEmbedder(d, max_tokens=16)
    assert loaded.name == "table" and loaded.max_tokens == 16 and not loaded.normalize
    prompts = ["a short prompt", "résumé", "one two three " * 20]
    table = floats.astype(np.float16).astype(np.float64)
    want = np.stack([table[hf_tokenizer.encode(p, add_special_tokens=False).ids[:16]].mean(axis=0) for p in prompts])
    np.testing.assert_allclose(loaded.embed(prompts), want, rtol=0, atol=np.abs(table).max() / 127)
    q, s = quantize_rows(np.array([[0.0, 0.0], [1.0, -2.0]]))
    assert q.tolist() == [[0, 0], [64, -127]] and s.tolist() == pytest.approx([1.0, 2 / 127])


def test_pickles_to_the_shared_instance(embedder, tmp_path):
    assert pickle.loads(pickle.dumps(embedder)) is embedder
    d = _copy_table(tmp_path)
    other = StaticEmbedder(d)
    clone = pickle.loads(pickle.dumps(other))
    assert clone.path == other.path and np.array_equal(clone.embed(["x y"]), other.embed(["x y"]))


def test_shipped_routers_on_the_static_embedder(embedder, static_mf, static_sw):
    mf, sw = static_mf, static_sw
    prompts = list(read_prompts())[:50] + ["", "日本語"]
    for name, router in (("mf", mf), ("sw_ranking", sw)):
        assert router.embedding_model == STATIC_EMBEDDER_NAME and router.embedder is embedder
        rates = router.score(prompts)
        assert np.isfinite(rates).all() and ((rates >= 0) & (rates <= 1)).all()
        np.testing.assert_array_equal(rates, router.score_embeddings(embedder.embed(prompts)))
        # Calibrated on the bundled sample prompts like the MiniLM ones, and different from them.
        recorded = np.asarray(shipped_calibration(name, "static")["win_rates"])
        np.testing.assert_allclose(router.score(list(read_prompts())), recorded, rtol=0, atol=1e-12)
        assert default_threshold(0.5, name, "static") != default_threshold(0.5, name)
    with pytest.raises(ValueError, match="no shipped routers on embedder 'bert'"):
        default_mf_router(embedder="bert")


def test_controller_and_cli_select_the_static_routers():
    prompt = "Prove that there are infinitely many primes."
    static = Controller(["mf", "sw_ranking"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1", embedder="static")
    mixed = Controller(["mf", "sw_ranking"], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1",
                       config={"mf": {"embedder": "static"}})
    assert static.routers["mf"].embedding_model == mixed.routers["mf"].embedding_model == STATIC_EMBEDDER_NAME
    assert static.routers["sw_ranking"].embedding_model == STATIC_EMBEDDER_NAME
    assert mixed.routers["sw_ranking"].embedding_model == rf.embedders.DEFAULT_EMBEDDER_NAME
    threshold = default_threshold(0.5, "mf", "static")  # a threshold of this router's scale (0.5 sends all strong)
    assert static.decide(prompt, "mf", threshold).win_rate == mixed.decide(prompt, "mf", threshold).win_rate
    with pytest.raises(rf.RoutingError, match="Invalid embedder"):
        Controller(["mf"], "a", "b", embedder="bert")
    out = subprocess.run([sys.executable, "-m", "routellm_fast", "route", prompt, "--router", "mf", "sw_ranking",
                          "--embedder", "static"], capture_output=True, text=True, check=True).stdout.splitlines()
    for line, name in zip(out, ("mf", "sw_ranking")):
        fields = dict(f.split("=") for f in line.split("\t")[1:])
        assert float(fields["win_rate"]) == pytest.approx(static.routers[name].calculate_strong_win_rate(prompt), abs=5e-6)
        assert float(fields["threshold"]) == pytest.approx(default_threshold(0.5, name, "static"), abs=5e-6)


def test_server_routes_on_the_static_routers(static_mf, serve_app):
    import httpx
    from routellm_fast.serve.server import ServerSettings

    prompt = "What is 17 * 23?"
    want = static_mf.calculate_strong_win_rate(prompt)
    running = serve_app(ServerSettings(routers=["mf"], embedder="static").app())
    decision = httpx.post(running.url + "/v1/route", json={"model": "router-mf-50%", "prompt": prompt}).json()
    assert decision["router"] == "mf" and decision["win_rate"] == pytest.approx(want, abs=1e-12)
