"""Prompts are cut before they are tokenised: a 1 MB non-ASCII prompt is cut to what the token
limit can cover (CHARS_PER_TOKEN characters per token) at a word boundary, so the tokenizer never
sees the whole text, and the answer is the one the whole text gives (the same token ids after
truncation, so the same embedding and win rate) in every tokenising path: the MiniLM embedder, the
static embedder's tokenizer path, the bert router and the causal_llm router."""

from __future__ import annotations

import numpy as np
import pytest
from routellm_fast.backends.onnx import CHARS_PER_TOKEN, cut_prompt
from routellm_fast.embedders.onnx import OnnxEmbedder
from routellm_fast.embedders.static import StaticEmbedder
from routellm_fast.routers import BERTRouter, CausalLLMRouter

from tests.helpers import FIXTURES

#: About 1 MB (in characters) of CJK, accented Latin, emoji and Cyrillic: text whose whole
#: tokenisation takes ~200 bytes per character inside the tokenizer.
BIG = ("日本語の文章を読みます。" + "café naïve résumé " + "😀🎉 " + "Привет мир " + "长文本测试，") * 20_000


class RecordingTokenizer:
    """The real tokenizer, recording how many characters each text passed to it has."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer, self.lengths = tokenizer, []

    def encode_batch(self, texts, *args, **kwargs):
        self.lengths.extend(len(t) for t in texts)
        return self._tokenizer.encode_batch(texts, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def test_cut_prompt_keeps_short_text_and_cuts_at_a_word_boundary():
    assert len(BIG) >= 1_000_000
    text = "word " * 100
    assert cut_prompt(text, 256) is text
    long = "alpha beta " * 5000
    cut = cut_prompt(long, 8)
    assert len(cut) <= 8 * CHARS_PER_TOKEN and long.startswith(cut) and long[len(cut)].isspace()
    unbroken = "x" * 10_000  # no whitespace near the cut: cut at the bound
    assert cut_prompt(unbroken, 8) == "x" * (8 * CHARS_PER_TOKEN)


@pytest.fixture(scope="module")
def minilm():
    return OnnxEmbedder()


def test_minilm_never_tokenises_the_whole_prompt_and_keeps_its_answer(minilm):
    # what it gave before the cut: the whole text tokenised, then truncated by the tokenizer
    whole = minilm._tokenizer.encode(BIG).ids
    assert len(whole) == minilm.max_tokens
    recorder = RecordingTokenizer(minilm._tokenizer)
    minilm._tokenizer = recorder
    try:
        got = minilm.embed([BIG, "a short prompt"])
        assert minilm._encode([BIG])[0] == whole
    finally:
        minilm._tokenizer = recorder._tokenizer
    assert max(recorder.lengths) <= minilm.max_tokens * CHARS_PER_TOKEN < len(BIG) / 100
    np.testing.assert_array_equal(got[0], minilm._run([whole])[0])
    np.testing.assert_allclose(got[1], minilm.embed(["a short prompt"])[0], rtol=0, atol=1e-6)


def test_static_embedder_tokenizer_path_is_cut_too():
    static = StaticEmbedder()
    whole = static._tokenizer.encode(BIG, add_special_tokens=False).ids
    recorder = RecordingTokenizer(static._tokenizer)
    static._tokenizer = recorder
    try:
        got = static.embed([BIG])
        assert static.token_ids([BIG])[0] == whole
    finally:
        static._tokenizer = recorder._tokenizer
    assert max(recorder.lengths) <= static.max_tokens * CHARS_PER_TOKEN
    offsets = np.array([0, len(whole)], dtype=np.int64)
    np.testing.assert_array_equal(got, static._core.embed_ids(np.array(whole, dtype=np.int32), offsets))


def test_bert_router_never_tokenises_the_whole_prompt_and_keeps_its_win_rate():
    router = BERTRouter(FIXTURES / "bert")
    whole = router._tokenizer.encode(BIG).ids
    assert len(whole) == router.max_length
    recorder = RecordingTokenizer(router._tokenizer)
    router._tokenizer = recorder
    try:
        got = router.score([BIG])
    finally:
        router._tokenizer = recorder._tokenizer
    assert max(recorder.lengths) <= router.max_length * CHARS_PER_TOKEN
    logits = router._run([whole], router._session).astype(np.float64)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert got[0] == pytest.approx(1.0 - probs[0, -2:].sum(), abs=1e-12)


def test_causal_router_refuses_a_prompt_past_its_context_without_tokenising_it():
    strict = CausalLLMRouter(str(FIXTURES / "causal" / "fp32"))
    lenient = CausalLLMRouter(str(FIXTURES / "causal" / "fp32"), long_prompts="strong")
    recorder = RecordingTokenizer(strict._tokenizer)
    strict._tokenizer = recorder
    with pytest.raises(ValueError, match=r"prompt 1 is \d+ characters, more than the \d+ that the 1018 tokens"):
        strict.score(["hi", BIG])
    assert max(recorder.lengths) < 1000  # only the templates of "hi" and of an empty prompt
    got = lenient.score(["hi", BIG])
    assert got[1] == 1.0 and got[0] == pytest.approx(lenient.score(["hi"])[0], abs=1e-6)
