"""Batch scoring on Ray Data: the win rates of a ``ray.data.Dataset`` of prompts, scored by actors
spread over a Ray cluster (the ``ray`` extra: ``pip install "routellm_fast[ray]"``).

:func:`score_dataset` adds a ``win_rate_<router>`` column per router with ``map_batches`` and a
pool of actors (:class:`RouterScorer`). Each actor builds its routers once, when it starts (from
their names, as :class:`~routellm_fast.serve.controller.Controller` builds them, or from router objects
pickled in the driver: routers pickle by their settings and weights), sets the compiled core's
threads (and the local embedders') to the CPUs Ray gives it, and scores every batch with one
batched ``router.score(prompts)`` call. Rows come back in input order.

``routellm-fast score --engine ray`` runs this over a parquet, JSON-lines or CSV file and writes the
same file the local engine writes. Ray is imported only here, when it is used; ``import
routellm_fast`` never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import require_extra
from ..formats.model_names import DEFAULT_STRONG_MODEL, DEFAULT_WEAK_MODEL

__all__ = ["RouterScorer", "assigned_cpus", "import_ray", "score_dataset"]

#: Rows per batch an actor scores with one ``router.score`` call.
DEFAULT_BATCH_SIZE = 4096


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or the ``ray`` extra's error."""
    ray, _ = require_extra("ray", "ray", "ray.data", purpose="batch scoring on Ray")
    return ray


def assigned_cpus() -> int:
    """Whole CPUs Ray assigned to the calling actor or task (at least 1); outside Ray, the CPUs this
    process may use."""
    try:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    except ImportError:
        pass
    from ..backends.cpu import available_cpus

    return available_cpus()


def _cap_threads(obj: Any, threads: int) -> None:
    """Lower an object's worker-thread count (``threads``: the ONNX embedder, the bert router) to
    ``threads``; their pools are made on first use, after this."""
    current = getattr(obj, "threads", None)
    if isinstance(current, int) and not isinstance(current, bool) and current > threads:
        obj.threads = threads


class RouterScorer:
    """The callable class ``map_batches`` runs in each actor: built once per actor, called per batch.

    ``routers``: router names (built here as :class:`~routellm_fast.serve.controller.Controller` builds
    them, with ``strong_model``, ``weak_model``, ``config`` and ``embedder``) or a mapping of names
    to router objects (unpickled here). ``threads``: the threads scoring uses (default: the CPUs Ray
    assigned this actor). A batch is a ``pyarrow.Table``; the same table comes back with a float64
    ``win_rate_<name>`` column per router.
    """

    def __init__(
        self,
        routers: Iterable[str] | Mapping[str, Any],
        strong_model: str = DEFAULT_STRONG_MODEL,
        weak_model: str = DEFAULT_WEAK_MODEL,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        embedder: str | None = None,
        prompt_column: str = "prompt",
        threads: int | None = None,
        models: Mapping[str, float] | None = None,
        rule: Any = None,
    ) -> None:
        import routellm_fast as rf

        self.threads = threads or assigned_cpus()
        # HF tokenizers (prompts the core does not tokenise itself) sizes its pool on first use.
        os.environ.setdefault("RAYON_NUM_THREADS", str(self.threads))
        rf.set_num_threads(self.threads)
        if isinstance(routers, Mapping):
            self.routers = dict(routers)
        else:
            from .controller import Controller

            self.routers = Controller(list(routers), strong_model, weak_model, config=config,
                                      embedder=embedder).routers
        for router in self.routers.values():
            _cap_threads(router, self.threads)
            if hasattr(router, "embedding_model"):  # embedding routers: load the embedder now, once
                _cap_threads(router.embedder, self.threads)
        self.prompt_column = prompt_column
        self.models, self.rule = (dict(models) if models is not None else None), rule

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from ..formats.tables import column
        from .batch import score_columns

        prompts = column(batch, self.prompt_column, "the dataset")
        for name, values in score_columns(self.routers, prompts, self.models, self.rule).items():
            batch = batch.append_column(name, pa.array(values))
        return batch


def _check_routers(routers: Any, config: Any, embedder: str | None) -> tuple[Any, Any]:
    from ..paths import SHIPPED_EMBEDDERS
    from ..routers import ROUTER_CLS, unknown_router
    from .controller import load_config

    if embedder is not None and embedder not in SHIPPED_EMBEDDERS:
        raise ValueError(f"invalid embedder {embedder!r}: the shipped routers come on {', '.join(SHIPPED_EMBEDDERS)}")
    if isinstance(routers, Mapping):
        if not routers:
            raise ValueError("routers must name at least one router")
        for name, router in routers.items():
            if not isinstance(name, str) or not callable(getattr(router, "score", None)):
                raise TypeError(f"routers must map names to router objects, got {name!r}: {type(router).__name__}")
        return dict(routers), None
    if isinstance(routers, str):
        routers = [routers]
    names = list(routers)
    if not names:
        raise ValueError("routers must name at least one router")
    for name in names:
        if name not in ROUTER_CLS:
            raise ValueError(f"invalid router {name!r}: {unknown_router(name)}")
    return names, load_config(config) or None  # a config file is read here, in the driver


def score_dataset(
    ds: Any,
    routers: Iterable[str] | Mapping[str, Any],
    *,
    prompt_column: str = "prompt",
    strong_model: str = DEFAULT_STRONG_MODEL,
    weak_model: str = DEFAULT_WEAK_MODEL,
    config: Mapping[str, Mapping[str, Any]] | str | os.PathLike[str] | None = None,
    embedder: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int | None = None,
    num_cpus_per_actor: float = 1,
    num_gpus_per_actor: float = 0,
    models: Mapping[str, float] | None = None,
    rule: Any = None,
) -> Any:
    """``ds`` with a float64 ``win_rate_<router>`` column per router, scored on Ray (lazily: the
    returned ``ray.data.Dataset`` runs when it is consumed or written), rows in input order.

    ``routers``: router names, built once in each actor as :class:`~routellm_fast.serve.controller.Controller`
    builds them (``strong_model``, ``weak_model``, ``config``: a dict or a YAML file read here,
    ``embedder``: ``"minilm"`` or ``"static"`` for the shipped mf, sw_ranking and knn; None: each on
    its own, as the Controller), or a mapping of
    names to router objects, pickled here and unpickled once in each actor (a router built from
    files only the driver has). ``prompt_column`` holds the prompts (strings).

    ``concurrency`` actors, each with ``num_cpus_per_actor`` CPUs: scoring in an actor runs on that
    many threads. By default the pool starts with one actor and grows up to the cluster's CPUs over
    ``num_cpus_per_actor`` as Ray Data sees fit; a fixed ``concurrency`` that takes every CPU of the
    cluster leaves none for the tasks that read ``ds`` (``read_parquet``, ...), and Ray waits for
    ever (an in-memory dataset, ``from_arrow``/``from_arrow_refs``, has no such tasks).
    ``num_gpus_per_actor`` gives each actor GPUs for routers that score on one (mf and sw_ranking,
    with the ``cuda`` extra, take the GPU Ray assigns with ``device="auto"``, also when unpickled;
    bert with ``{"bert": {"device": "cuda", ...}}`` in ``config``). Each actor scores ``batch_size``
    rows per ``router.score`` call.

    ``models`` (``{name: cost}``) scores every prompt against those models instead (mf and
    sw_ranking): a float64 ``score_<router>_<model>`` column per model and, with ``rule`` (a
    threshold in [0, 1] or a :class:`~routellm_fast.decision.rule.CostWeight`), the chosen model in
    ``model_<router>`` (:func:`routellm_fast.serve.batch.score_columns`, as ``routellm-fast score --models``).

    The returned dataset's context keeps the input order (``execution_options.preserve_order``).
    Ray must be installed (the ``ray`` extra); it is started (``ray.init()``) if it is not yet.
    """
    ray = import_ray()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not num_cpus_per_actor > 0:
        raise ValueError(f"num_cpus_per_actor must be > 0, got {num_cpus_per_actor!r}")
    if not num_gpus_per_actor >= 0:
        raise ValueError(f"num_gpus_per_actor must be >= 0, got {num_gpus_per_actor!r}")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or concurrency < 1):
        raise ValueError(f"concurrency must be a positive integer, got {concurrency!r}")
    spec, config = _check_routers(routers, config, embedder)
    if models is not None:
        from ..checks import check_threshold as check_threshold_value
        from ..decision.rule import CostWeight, check_models

        models = check_models(models)
        if rule is not None and not isinstance(rule, CostWeight):
            check_threshold_value(rule)
    elif rule is not None:
        raise ValueError("rule chooses among models: give models={name: cost, ...} with it")
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None and prompt_column not in schema.names:
        raise ValueError(f"the dataset has no column {prompt_column!r} (columns: {', '.join(schema.names)})")
    if concurrency is None:
        if not ray.is_initialized():
            ray.init()
        cpus = ray.cluster_resources().get("CPU", 1)
        pool = ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(cpus // num_cpus_per_actor)))
    else:
        pool = ray.data.ActorPoolStrategy(size=concurrency)
    out = ds.map_batches(
        RouterScorer,
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=pool,
        fn_constructor_args=(spec, strong_model, weak_model, config, embedder, prompt_column),
        fn_constructor_kwargs={"models": models, "rule": rule},
        num_cpus=num_cpus_per_actor,
        num_gpus=num_gpus_per_actor or None,
        zero_copy_batch=True,
    )
    context = getattr(out, "context", None)  # the dataset's own context (Ray >= 2.10)
    if context is None:
        context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    return out
