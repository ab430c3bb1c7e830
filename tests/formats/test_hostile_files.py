"""Files from users, broken in every way we found: each is refused with BadFileError (a ValueError)
naming the file and the problem; none crashes the process, hangs, or is silently misread."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import routellm_fast as rf
from routellm_fast.errors import BadFileError
from routellm_fast.formats.arena import (
    ArenaFile,
    load_arena,
    load_battles,
    outcome_codes,
    save_arena,
)
from routellm_fast.formats.tables import (
    read_json,
    read_jsonl,
    read_npy,
    read_npz,
    read_prompts,
    read_table,
)

from tests.helpers import make_arena

DEEP = 30_000


def deep_value(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def small_arena() -> ArenaFile:
    arena = make_arena(np.random.default_rng(1), 60, 8, n_models=4)
    router = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"],
                                             "model-0", "model-1", num_tiers=2, embedding_model="x")
    models = router.models
    index = {m: i for i, m in enumerate(models)}
    return ArenaFile(arena["embeddings"], np.arange(60, dtype=np.int64),
                     np.array([index[m] for m in arena["model_a"]], dtype=np.int32),
                     np.array([index[m] for m in arena["model_b"]], dtype=np.int32),
                     outcome_codes(arena["winner"]), models, {"embedder": {"name": "x", "dim": 8}})


def write_npz(path, **arrays) -> None:
    """An .npz written member by member, so members can carry any header and any bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, payload in arrays.items():
            if isinstance(payload, np.ndarray):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, payload, allow_pickle=False)
                payload = buffer.getvalue()
            z.writestr(name + ".npy", payload)


def npy_header(shape, dtype="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def arena_arrays(arena: ArenaFile) -> dict:
    return {"format": np.array("routellm_fast.arena/1"), "prompt_embeddings": arena.prompt_embeddings,
            "battle_prompt": arena.battle_prompt, "model_a": arena.model_a, "model_b": arena.model_b,
            "outcome": arena.outcome, "models": np.array(arena.models), "metadata": np.array(json.dumps(arena.metadata))}


def test_deeply_nested_json_lines_are_an_error_not_a_crash(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "hi"}) + "\n" + '{"prompt": "x", "x": ' + deep_value() + "}\n")
    battles = tmp_path / "battles.jsonl"
    battles.write_text('{"model_a": "a", "model_b": "b", "winner": "tie", "x": ' + deep_value() + "}\n")
    for reader, path in ((read_table, prompts), (read_jsonl, prompts), (read_prompts, prompts), (load_battles, battles)):
        with pytest.raises(BadFileError, match=r"is not valid JSON at line \d+: nested too deeply"):
            reader(path)
    config = tmp_path / "config.json"
    config.write_text('{"dim": ' + deep_value() + "}")
    with pytest.raises(BadFileError, match="config.json is not valid JSON: nested too deeply"):
        read_json(config)
    # the command line says so in one line, with no traceback
    result = subprocess.run([sys.executable, "-m", "routellm_fast", "score", "--input", str(prompts), "--output",
                             str(tmp_path / "out.jsonl"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "nested too deeply" in result.stderr and "Traceback" not in result.stderr


def test_a_moderately_nested_value_still_reads(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "fine", "meta": ' + deep_value(200) + "}\n")
    assert read_prompts(path) == ["fine"]


def test_an_arena_that_lies_about_its_sizes_is_refused_before_allocating(tmp_path):
    arrays = arena_arrays(small_arena())
    lying = tmp_path / "lying.npz"
    # claims 10^9 x 384 float32 (1.5 TB) backed by a few bytes
    write_npz(lying, **{**arrays, "prompt_embeddings": npy_header((10**9, 384)) + b"\0" * 64})
    with pytest.raises(BadFileError, match=r"prompt_embeddings declares shape \(1000000000, 384\)"):
        load_arena(lying)
    truncated = tmp_path / "npy.npy"
    truncated.write_bytes(npy_header((1000, 384)) + b"\0" * 100)
    with pytest.raises(BadFileError, match="declares shape"):
        read_npy(truncated)


def test_corrupt_archives_raise_one_error_type(tmp_path):
    arena = small_arena()
    good = tmp_path / "good.npz"
    save_arena(good, arena)
    raw = good.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "flipped": raw[:200] + bytes(b ^ 0xFF for b in raw[200:400]) + raw[400:],
        "empty": b"",
        "text": b"not a zip at all",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.npz"
        path.write_bytes(data)
        with pytest.raises(BadFileError, match=f"{name}.npz"):
            load_arena(path)
    bz2 = tmp_path / "bz2.npz"
    with zipfile.ZipFile(bz2, "w", zipfile.ZIP_BZIP2) as z:
        z.writestr("x.npy", npy_header((2,)) + b"\0" * 8)
    with pytest.raises(BadFileError, match="unsupported compression"):
        read_npz(bz2)
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BadFileError, match="only plain numbers are read"):
        read_npz(pickled)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("outcome", np.array([258] * 60, dtype=np.int16), "outcome has values outside the 3 outcome codes"),
    ("outcome", np.full(60, -1, dtype=np.int8), "outcome has values outside"),
    ("model_a", np.zeros(60, dtype=np.float32), "model_a must be a 1-D integer array, got .* float32"),
    ("model_b", np.zeros(60, dtype=bool), "model_b must be a 1-D integer array, got .* bool"),
    ("battle_prompt", np.zeros(60, dtype=np.complex64), "battle_prompt must be a 1-D integer array"),
    ("battle_prompt", np.zeros(59, dtype=np.int32), "battle arrays differ in length"),
    ("models", np.array(["model-0", "model-1", "model-0", "model-3"]), "models must be distinct.*model-0"),
])
def test_silently_accepted_arena_fields_are_refused_by_name(tmp_path, field, value, message):
    path = tmp_path / "arena.npz"
    write_npz(path, **{**arena_arrays(small_arena()), field: value})
    with pytest.raises(BadFileError, match=message):
        load_arena(path)


def test_chatbot_arena_winner_columns_must_be_numbers(tmp_path):
    rows = [{"model_a": "a", "model_b": "b", "prompt": json.dumps(["a prompt long enough to keep"]),
             "winner_model_a": "1", "winner_model_b": "0", "winner_tie": "0"}]
    path = tmp_path / "arena.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(BadFileError, match="winner_model_a must be 0 or 1, got '1'"):
        load_battles(path)
    rows[0].update(winner_model_a=1, winner_model_b=0, winner_tie=0)
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_battles(path).outcome.tolist() == [0]


def test_corrupt_checkpoint_files(tmp_path):
    from routellm_fast.formats.checkpoints import load_mf_checkpoint

    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(BadFileError, match="not a readable safetensors file"):
        load_mf_checkpoint(tmp_path, None, None, None, 1, True)
    (tmp_path / "config.json").write_text('{"dim": ' + deep_value() + "}")
    with pytest.raises(BadFileError, match="nested too deeply"):
        load_mf_checkpoint(tmp_path, None, None, None, 1, True)


def test_arrays_at_the_boundary():
    router = rf.SWRankingRouter.from_arena(small_arena(), "model-0", "model-1", num_tiers=2)
    rng = np.random.default_rng(2)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    expected = router.score_embeddings(queries)
    with_metadata = queries.view(np.dtype(np.float32, metadata={"unit": "cosine"}))
    np.testing.assert_array_equal(router.score_embeddings(with_metadata), expected)
    np.testing.assert_array_equal(router.score_embeddings(queries[::-1]), expected[::-1])  # negative strides: a copy
    np.testing.assert_array_equal(router.score_embeddings(queries.astype(">f4")), expected)


def test_from_battles_checks_names_and_tiers():
    arena = make_arena(np.random.default_rng(3), 40, 8, n_models=3)
    args = (arena["model_a"], arena["model_b"], arena["winner"], arena["embeddings"], "model-0", "model-1")
    with pytest.raises(ValueError, match="model_a of battle 0 must be a non-empty model name, got 7"):
        rf.SWRankingRouter.from_battles([7] + arena["model_a"][1:], *args[1:])
    with pytest.raises(ValueError, match="model_b of battle 1 must be a non-empty model name, got ''"):
        rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"][:1] + [""] + arena["model_b"][2:], *args[2:])
    for bad in (True, 0, 2.5):
        with pytest.raises(ValueError, match="num_tiers must be >= 1"):
            rf.SWRankingRouter.from_battles(*args, num_tiers=bad)
