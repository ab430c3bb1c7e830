"""Write the seed corpus of the loaders target: one valid file per (suffix, loader) pair of
``targets.LOADERS``, prefixed by the byte that selects the pair, so the fuzzer starts from inputs
that pass every check and mutates them from there. The core target's seeds (``corpus/core``) are the inputs a
fuzzing run kept. Run from the repository root: ``python -m tests.fuzz.make_corpus``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from tests.fuzz.targets import LOADERS

HERE = Path(__file__).resolve().parent

ROWS = [
    {"prompt": "Prove that there are infinitely many primes.", "model_a": "gpt-4-1106-preview",
     "model_b": "mixtral-8x7b-instruct-v0.1", "winner": "model_a", "weight": 1.0,
     "embeddings": [0.1, 0.2, 0.3, 0.4], "gpt-4-1106-preview": True, "mixtral-8x7b-instruct-v0.1": False},
    {"prompt": "Write a haiku.", "model_a": "mixtral-8x7b-instruct-v0.1", "model_b": "gpt-4-1106-preview",
     "winner": "tie", "weight": 0.5, "embeddings": [0.4, 0.3, 0.2, 0.1], "gpt-4-1106-preview": True,
     "mixtral-8x7b-instruct-v0.1": True},
]


def table_bytes(suffix: str) -> bytes:
    if suffix in (".jsonl", ".json"):
        return "".join(json.dumps(r) + "\n" for r in ROWS).encode()
    table = pa.Table.from_pylist(ROWS)
    buffer = io.BytesIO()
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table.drop_columns(["embeddings"]), buffer)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, buffer)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def arena_bytes() -> bytes:
    return npz_bytes(
        format=np.array("routellm_fast.arena/1"), prompt_embeddings=np.eye(3, 4, dtype=np.float16),
        battle_prompt=np.array([0, 1, 2, 0], dtype=np.int32), model_a=np.array([0, 1, 0, 1], dtype=np.int16),
        model_b=np.array([1, 0, 1, 0], dtype=np.int16), outcome=np.array([0, 1, 2, 0], dtype=np.int8),
        models=np.array(["a", "b"]), metadata=np.array(json.dumps({"embedder": {"name": "fuzz", "dim": 4}})))


def checkpoint_bytes() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    weights = save({"P.weight": rng.standard_normal((64, 4)).astype(np.float32),
                    "text_proj.0.weight": rng.standard_normal((4, 6)).astype(np.float32),
                    "classifier.0.weight": rng.standard_normal((1, 4)).astype(np.float32)})
    config = json.dumps({"dim": 4, "num_models": 64, "text_dim": 6, "num_classes": 1, "use_proj": True}).encode()
    pad = b" " * max(0, len(weights) - len(config))  # the target splits the file in two halves
    return weights + config + pad


def seed(suffix: str, kind: str) -> bytes:
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, np.eye(3, 4, dtype=np.float32))
        return buffer.getvalue()
    if kind == "embedding-cache":
        return npz_bytes(keys=np.zeros((1, 16), np.uint8), vectors=np.ones((1, 4), np.float32),
                         name=np.array("fuzz"), dim=np.array(4))
    if kind == "arena":
        return arena_bytes()
    if kind == "checkpoint":
        return checkpoint_bytes()
    if kind == "bert":  # metadata fuzzed (the first byte's bit 2), the model and tokenizer valid
        meta = json.dumps({"format": 1, "num_labels": 3, "max_length": 16, "int8": False,
                           "calibration": {"win_rates": [0.5]}}).encode()
        return bytes([4]) + b" " * len(meta) * 2 + meta
    if kind == "json":
        return json.dumps({"dim": 4, "num_models": 64, "nested": [[1, 2], {"a": None}]}).encode()
    return table_bytes(suffix)


def main() -> None:
    out = HERE / "corpus" / "loaders"
    out.mkdir(parents=True, exist_ok=True)
    for index, (suffix, kind, _) in enumerate(LOADERS):
        data = bytes([index]) + seed(suffix, kind)
        (out / f"seed-{index:02d}{suffix}").write_bytes(data)
    print(f"wrote {len(LOADERS)} seeds to {out}")


if __name__ == "__main__":
    main()
