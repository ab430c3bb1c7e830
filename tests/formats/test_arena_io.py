"""Loading battles and embeddings from files in RouteLLM's dataset formats, and arena errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import routellm_fast as rf

from tests.helpers import make_arena


def arena55k_rows(arena, short_every=7):
    """The lmsys-arena-human-preference-55k columns, with some first turns too short to keep."""
    rows, kept = [], []
    for i, (a, b, w) in enumerate(zip(arena["model_a"], arena["model_b"], arena["winner"])):
        first = "hi  " if i % short_every == 3 else f"  question number {i}: explain something ü  "
        rows.append({
            "id": i, "model_a": a, "model_b": b,
            "prompt": json.dumps([first, "second turn"]),
            "response_a": json.dumps(["x"]), "response_b": json.dumps(["y"]),
            "winner_model_a": int(w == "model_a"), "winner_model_b": int(w == "model_b"), "winner_tie": int(w == "tie"),
        })
        if i % short_every != 3:
            kept.append(i)
    return rows, kept


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_arena55k_format_with_routellm_filter(tmp_path, fmt):
    rng = np.random.default_rng(0)
    arena = make_arena(rng, n_battles=700, dim=8, n_models=6)
    rows, kept = arena55k_rows(arena)
    table = pa.Table.from_pylist(rows)
    battles_dir = tmp_path / "battles"
    battles_dir.mkdir()
    if fmt == "parquet":
        pq.write_table(table, battles_dir / "train-00000-of-00001.parquet")
    elif fmt == "csv":
        pcsv.write_csv(table, battles_dir / "train.csv")
    else:
        (battles_dir / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    emb = arena["embeddings"][kept]
    pq.write_table(pa.table({"embeddings": [list(map(float, e)) for e in emb]}), tmp_path / "emb.parquet")

    battles = rf.load_battles(battles_dir)
    assert len(battles) == len(kept)
    assert list(battles.model_a) == [arena["model_a"][i] for i in kept]
    assert [("model_a", "model_b", "tie")[c] for c in battles.outcome] == [arena["winner"][i] for i in kept]

    router = rf.SWRankingRouter([battles_dir], [tmp_path / "emb.parquet"], "model-0", "model-1")
    direct = rf.SWRankingRouter.from_battles(
        [arena["model_a"][i] for i in kept], [arena["model_b"][i] for i in kept],
        [arena["winner"][i] for i in kept], emb, "model-0", "model-1",
    )
    assert router.model2tier == direct.model2tier
    np.testing.assert_array_equal(router.score_embeddings(arena["queries"]), direct.score_embeddings(arena["queries"]))


def test_plain_format_and_npy_embeddings_in_several_files(tmp_path):
    rng = np.random.default_rng(1)
    arena = make_arena(rng, n_battles=400, dim=8, n_models=5)
    half = 250
    for part, sl in (("a", slice(0, half)), ("b", slice(half, None))):
        pcsv.write_csv(pa.table({"model_a": arena["model_a"][sl], "model_b": arena["model_b"][sl],
                                 "winner": arena["winner"][sl]}), tmp_path / f"battles_{part}.csv")
        np.save(tmp_path / f"emb_{part}.npy", arena["embeddings"][sl].astype(np.float64))
    router = rf.SWRankingRouter(
        [tmp_path / "battles_a.csv", tmp_path / "battles_b.csv"], [tmp_path / "emb_a.npy", tmp_path / "emb_b.npy"],
        "model-0", "model-1",
    )
    direct = rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], arena["winner"],
                                             arena["embeddings"], "model-0", "model-1")
    np.testing.assert_array_equal(router.score_embeddings(arena["queries"]), direct.score_embeddings(arena["queries"]))
    assert router.num_battles == 400


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        rf.load_battles("lmsys/lmsys-arena-human-preference-55k")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet"):
        rf.load_battles(tmp_path / "empty")
    pcsv.write_csv(pa.table({"model_a": ["x"], "model_b": ["y"], "winner": ["model_c"]}), tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="row 0: winner 'model_c'"):
        rf.load_battles(tmp_path / "bad.csv")
    pcsv.write_csv(pa.table({"a": [1]}), tmp_path / "cols.csv")
    with pytest.raises(ValueError, match="no column 'model_a'"):
        rf.load_battles(tmp_path / "cols.csv")
    rows = [{"model_a": "x", "model_b": "y", "prompt": "not json", "winner_model_a": 1, "winner_model_b": 0, "winner_tie": 0}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "p.parquet")
    with pytest.raises(ValueError, match="JSON list of turns"):
        rf.load_battles(tmp_path / "p.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="cannot read"):
        rf.load_battles(tmp_path / "corrupt.parquet")
    pq.write_table(pa.table({"embeddings": [[1.0, 2.0], [1.0]]}), tmp_path / "ragged.parquet")
    with pytest.raises(ValueError, match="differ in length"):
        rf.load_embeddings(tmp_path / "ragged.parquet")
    pq.write_table(pa.table({"vectors": [[1.0]]}), tmp_path / "novec.parquet")
    with pytest.raises(ValueError, match="no 'embeddings' column"):
        rf.load_embeddings(tmp_path / "novec.parquet")


def test_arena_errors():
    rng = np.random.default_rng(2)
    arena = make_arena(rng, n_battles=300, dim=8, n_models=5)
    args = (arena["model_a"], arena["model_b"], arena["winner"])
    with pytest.raises(ValueError, match="number of battle embeddings \\(299\\) does not match the number of battles \\(300\\)"):
        rf.SWRankingRouter.from_battles(*args, arena["embeddings"][:-1], "model-0", "model-1")
    with pytest.raises(ValueError, match="unknown strong_model 'model-9'.*did you mean"):
        rf.SWRankingRouter.from_battles(*args, arena["embeddings"], "model-9", "model-1")
    with pytest.raises(ValueError, match="battle 0: winner 'a' is not one of"):
        rf.SWRankingRouter.from_battles(arena["model_a"], arena["model_b"], ["a"] * 300, arena["embeddings"], "model-0", "model-1")
    bad = arena["embeddings"].copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="arena embedding row 5 contains NaN"):
        rf.SWRankingRouter.from_battles(*args, bad, "model-0", "model-1")
    bad[5] = 0.0
    with pytest.raises(ValueError, match="arena embedding row 5 is a zero vector"):
        rf.SWRankingRouter.from_battles(*args, bad, "model-0", "model-1")
    with pytest.raises(ValueError, match="storage must be"):
        rf.SWRankingRouter.from_battles(*args, arena["embeddings"], "model-0", "model-1", storage="bf16")
    with pytest.raises(ValueError, match="num_tiers must be >= 1"):
        rf.SWRankingRouter.from_battles(*args, arena["embeddings"], "model-0", "model-1", num_tiers=0)
    with pytest.raises(ValueError, match="no battles"):
        rf.SWRankingRouter.from_battles([], [], [], np.zeros((0, 8), np.float32), "model-0", "model-1")


def test_arena_without_finite_ratings_is_refused():
    # model-2 never loses: its maximum-likelihood rating is infinite.
    model_a = ["model-0", "model-1", "model-2", "model-2", "model-0"]
    model_b = ["model-1", "model-0", "model-0", "model-1", "model-1"]
    winner = ["model_a", "model_a", "model_a", "model_a", "tie"]
    emb = np.eye(5, dtype=np.float32)
    with pytest.raises(ValueError, match="no finite maximum-likelihood solution.*models that never lose: model-2"):
        rf.SWRankingRouter.from_battles(model_a, model_b, winner, emb, "model-0", "model-1")
