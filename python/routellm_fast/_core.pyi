"""Type stubs for the compiled core (csrc/bindings.cpp)."""

from typing import Sequence

import numpy as np
import numpy.typing as npt

def backend_info() -> dict[str, object]:
    """simd, simd_available, threads, threads_source ('affinity', 'hardware_concurrency', 'env' or
    'set_num_threads'), threads_note (only when ROUTELLM_FAST_NUM_THREADS was ignored), compiler."""

def set_simd(name: str) -> None: ...
def set_num_threads(n: int) -> None:
    """Threads batched scoring uses, in [1, 1024] (ValueError otherwise). The default is the number of
    CPUs in the process's affinity mask, or ROUTELLM_FAST_NUM_THREADS when that is in [1, 1024]."""

def get_num_threads() -> int: ...
def dedup_rows(rows: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(group of each row, first row of each group) for identical rows of a C-contiguous matrix."""

class SwArena:
    """An arena of battles. Embedding rows that no battle points at are dropped. Pickles (protocol 2+)
    to its stored rows and fitted parts, and unpickles to an arena that scores bit for bit alike."""

    def __init__(
        self,
        prompt_embeddings: npt.NDArray[np.float32],
        battle_prompt: npt.NDArray[np.int64],
        model_a: npt.NDArray[np.int32],
        model_b: npt.NDArray[np.int32],
        outcome: npt.NDArray[np.int8],
        n_models: int,
        num_tiers: int = 10,
        anchor_model: int = -1,
        anchor_rating: float = 1082.0,
        storage: str = "float32",
        model_names: Sequence[str] = ...,
    ) -> None: ...
    def score(self, embeddings: npt.NDArray[np.float32], strong_model: int, weak_model: int) -> npt.NDArray[np.float64]: ...
    @property
    def dim(self) -> int: ...
    @property
    def n_prompts(self) -> int:
        """Embedding rows kept: those some battle points at."""
    @property
    def n_battles(self) -> int: ...
    @property
    def storage(self) -> str: ...
    @property
    def storage_bytes(self) -> int: ...
    @property
    def model_ratings(self) -> npt.NDArray[np.float64]: ...
    @property
    def model_tier(self) -> npt.NDArray[np.int32]: ...
    def score_ratings(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Each prompt's fitted tier ratings, Elo points, ``[n, n_players]`` (players: the non-empty
        tiers in tier order; ``model_player`` maps models to them). Differences are what matter."""
    @property
    def n_players(self) -> int: ...
    @property
    def model_player(self) -> npt.NDArray[np.int32]: ...

class MfPairScorer:
    """Pickles (protocol 2+) to its pair vector and unpickles to a scorer that scores bit for bit alike."""

    def __init__(
        self,
        model_embeddings: npt.NDArray[np.float32],
        text_projection: npt.NDArray[np.float32] | None,
        classifier: npt.NDArray[np.float32],
        strong_model: int,
        weak_model: int,
    ) -> None: ...
    def score(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]: ...
    @property
    def text_dim(self) -> int: ...

class StaticEmbedder:
    """Mean of int8 table rows (times their scales) over a prompt's WordPiece tokens, L2-normalised.

    Tokenises ASCII text exactly as HF ``tokenizers`` does a BERT uncased WordPiece vocabulary (no
    added special tokens); callers tokenise other text themselves and use ``embed_ids``. Not picklable:
    ``routellm_fast.StaticEmbedder`` pickles by its path and rebuilds this.
    """

    def __init__(
        self,
        vocab: list[str],
        table: npt.NDArray[np.int8],
        scales: npt.NDArray[np.float32],
        unk_id: int,
        max_tokens: int = 512,
        normalize: bool = True,
        max_word_chars: int = 100,
    ) -> None: ...
    def embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """float32 ``[len(texts), dim]``; ASCII texts only. Batches of 8+ release the GIL and use all threads."""
    def embed_ids(self, ids: npt.NDArray[np.int32], offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Vectors of pre-tokenised prompts: prompt i is ``ids[offsets[i]:offsets[i + 1]]``."""
    def tokenize(self, text: str) -> list[int]: ...
    @property
    def dim(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def normalize(self) -> bool: ...

class MfModelScorer:
    """Every model's mf logit at once (routing among many models); not picklable (the router rebuilds it)."""

    def __init__(
        self,
        model_embeddings: npt.NDArray[np.float32],
        text_projection: npt.NDArray[np.float32] | None,
        classifier: npt.NDArray[np.float32],
    ) -> None: ...
    def logits(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """float64 ``[n, num_models]``: logit(a) - logit(b) is the pair scorer's log-odds."""
    @property
    def num_models(self) -> int: ...
    @property
    def text_dim(self) -> int: ...

class KnnIndex:
    """Labelled prompts for the knn router: one stored embedding row each (``storage`` float32,
    float16 or int8, as SwArena keeps its rows) and a label in [0, 1] per model (NaN: none). Scoring
    picks, per query, the k rows of highest cosine similarity among those labelled for every model
    asked about (equal similarities: lower row first), weighted by softmax(sim / temperature).
    Batches release the GIL and use the thread pool. Pickles (protocol 2+) to its stored rows and
    labels, and unpickles to an index that scores bit for bit alike."""

    def __init__(
        self, embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.float32], storage: str = "float32"
    ) -> None: ...
    @staticmethod
    def from_state(state: tuple) -> KnnIndex:
        """The index a pickle state ``(1, storage, rows, row_factor, labels)`` describes (a shipped file's parts)."""
    def n_labelled(self, models: Sequence[int]) -> int:
        """How many rows have a label for every one of ``models``."""
    def topk(
        self, embeddings: npt.NDArray[np.float32], k: int, models: Sequence[int]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(row indices, cosine similarities), each ``[n, k]``, most similar first."""
    def shares(
        self, embeddings: npt.NDArray[np.float32], k: int, temperature: float, models: Sequence[int]
    ) -> npt.NDArray[np.float64]:
        """float64 ``[n, len(models)]``: each model's similarity-weighted mean label among the k neighbours."""
    def win_rates(
        self, embeddings: npt.NDArray[np.float32], k: int, temperature: float, strong_model: int, weak_model: int
    ) -> npt.NDArray[np.float64]:
        """float64 ``[n]``: sigmoid(2 (share_strong - share_weak)) over the k neighbours labelled for both."""
    @property
    def dim(self) -> int: ...
    @property
    def n_rows(self) -> int: ...
    @property
    def n_models(self) -> int: ...
    @property
    def storage(self) -> str: ...
    @property
    def storage_bytes(self) -> int: ...
    @property
    def labels(self) -> npt.NDArray[np.float32]:
        """A copy of the labels, ``[n_rows, n_models]``."""
