"""The ``routellm-fast`` command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import routellm_fast as rf

from .checks import check_share, check_threshold
from .decision.router_names import StrongShare, parse_threshold
from .errors import RouteLLMFastError, RoutingError, require_extra
from .formats.model_names import DEFAULT_STRONG_MODEL as STRONG
from .formats.model_names import DEFAULT_WEAK_MODEL as WEAK
from .paths import SHIPPED_EMBEDDERS, eval_cache_dir, eval_data_dir
from .routers import ROUTER_CLS, unknown_router
from .routers.shipped import DEFAULT_ROUTER

#: The ways to write ``route``'s prompt, shown when it is missing or split.
_ROUTE_FORMS = ('routellm-fast route "PROMPT" --router mf, routellm-fast route --router mf "PROMPT" or '
                'routellm-fast route --router mf -- "PROMPT"')


def _threshold_or_share(text: str) -> float | StrongShare:
    """``--threshold``: a number, or a share of strong calls such as ``50%``."""
    try:
        return parse_threshold(text)
    except RoutingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _info(args: argparse.Namespace) -> int:
    """Print the version, the SIMD path the CPU runs and the threads batched scoring uses."""
    info = rf.backend_info()
    print(f"routellm_fast {rf.__version__}: simd={info['simd']} (available: {', '.join(info['simd_available'])}), "
          f"threads={info['threads']}, {info.get('compiler', '')}")
    if args.json:
        print(json.dumps(info))
    return 0


def _controller(args: argparse.Namespace, progress_bar: bool = False, **kwargs):
    from .serve.controller import Controller

    return Controller(args.routers, args.strong_model, args.weak_model, config=args.config,
                      progress_bar=progress_bar, embedder=args.embedder, **kwargs)


def _share_threshold(controller, name: str, pct: float) -> float:
    """The threshold that sends ``pct`` of the bundled sample prompts to the strong model: the
    win rates recorded with a shipped router or kept in the calibration cache, else scored now and
    kept there (what ``calibrate`` prints)."""
    from .decision.calibration import known_win_rates
    from .paths import SAMPLE_PROMPTS

    router = controller.routers[name]
    if known_win_rates(router) is None and not isinstance(router, rf.RandomRouter):
        print(f"calibrating {name} on the sample prompts ({SAMPLE_PROMPTS.name}; kept in the calibration cache) ...",
              file=sys.stderr)
    return controller.share_threshold(name, pct)


def _parse_models(items: Sequence[str] | None) -> dict[str, float] | None:
    """``["gpt-4-1106-preview=10", "mixtral-8x7b-instruct-v0.1=0.6"]`` -> ``{name: cost}``."""
    if not items:
        return None
    models = {}
    for item in items:
        name, sep, cost = item.rpartition("=")
        try:
            models[name] = float(cost)
        except ValueError:
            name = ""
        if not sep or not name:
            raise ValueError(f"--models takes NAME=COST entries (cost per 1M tokens or any relative cost), got {item!r}")
    return models


def _models_rule(args: argparse.Namespace, need_rule: bool) -> tuple[dict[str, float] | None, Any]:
    """``--models`` and its rule (``--threshold`` or ``--cost-weight``), checked together."""
    from .decision.rule import CostWeight

    models = _parse_models(args.models)
    if models is None:
        if args.cost_weight is not None:
            raise ValueError("--cost-weight routes among many models: give --models NAME=COST ...")
        return None, None
    if args.threshold is not None and args.cost_weight is not None:
        raise ValueError("give --threshold or --cost-weight, not both")
    if need_rule and args.threshold is None and args.cost_weight is None:
        raise ValueError("--models needs --threshold T (the N-model threshold rule) or --cost-weight LAMBDA")
    if args.cost_weight is not None:
        if not (math.isfinite(args.cost_weight) and args.cost_weight >= 0):
            raise ValueError(f"--cost-weight must be a finite number >= 0, got {args.cost_weight}")
        return models, CostWeight(args.cost_weight)
    if isinstance(args.threshold, StrongShare):
        raise ValueError(f"--threshold {args.threshold} (a share of strong calls) is for the model pair; among many "
                         "models give a threshold T, or find one with calibrate --models ... --target-cost")
    if args.threshold is not None:
        check_threshold(args.threshold)
    return models, args.threshold


def _route(args: argparse.Namespace) -> int:
    """Route one prompt with each router (default: the shipped knn on the static embedder; local, no key)."""
    models, rule = _models_rule(args, need_rule=True)
    if models is not None:  # among many models: a threshold or a cost weight, and every model's score
        controller = _controller(args, models=models)
        for name in args.routers:
            d = controller.decide(args.prompt, name, rule, count=False)
            scores = " ".join(f"{m}={s:.5f}" for m, s in d.scores.items())  # type: ignore[union-attr]
            print(f"{d.model}\twin_rate_vs_best={d.win_rate:.5f}\trule={d.threshold}\trouter={name}\tscores: {scores}")
        return 0
    if args.threshold is None:
        check_share(args.strong_model_pct)
    controller = _controller(args)
    for name in args.routers:
        if args.threshold is None or isinstance(args.threshold, StrongShare):
            pct = args.strong_model_pct if args.threshold is None else args.threshold.value
            threshold = _share_threshold(controller, name, pct)
        else:
            threshold = args.threshold
        decision = controller.decide(args.prompt, name, threshold, count=False)
        print(f"{decision.model}\twin_rate={decision.win_rate:.5f}\tthreshold={threshold:.5f}\trouter={name}")
    return 0


def _score(args: argparse.Namespace) -> int:
    """Win rates for every prompt of a file, written next to the file's own columns; the file is
    read, scored and written in chunks, so memory does not grow with it. The output is written whole
    or not at all (:func:`routellm_fast.serve.batch.write_chunks`): an error, a bad row or a signal
    leaves the previous output as it was."""
    from .formats.tables import check_output, table_rows
    from .serve.batch import Interrupted

    source = Path(args.input)
    if not source.is_file():
        raise FileNotFoundError(f"input file {args.input!r} does not exist")
    out = check_output(args.output, source)  # before any work
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    models, rule = _models_rule(args, need_rule=False)
    try:
        if args.engine == "ray":
            return _score_ray(args, source, out, models, rule)
        controller = _controller(args, models=models)
        from tqdm import tqdm

        from .serve.batch import scored_chunks, write_chunks

        with tqdm(total=table_rows(source), unit="prompt", disable=args.quiet,
                  desc=f"scoring with {', '.join(args.routers)}") as bar:
            done = write_chunks(out, scored_chunks(source, controller.routers, args.chunk_size, models, rule), bar)
    except Interrupted as stop:
        what = "after it was written whole" if stop.committed else "was left as it was"
        print(f"routellm-fast: {stop}: {args.output} {what}", file=sys.stderr)
        return 128 + stop.signum
    except OSError as exc:  # a full disk, a folder that is not writable, ... (a missing file: main's error)
        if isinstance(exc, FileNotFoundError):
            raise
        print(f"routellm-fast: error: {exc}: {args.output} was left as it was", file=sys.stderr)
        return 1
    print(f"scored {done} prompts with {', '.join(args.routers)} -> {args.output}", file=sys.stderr)
    return 0


def _score_ray(args: argparse.Namespace, source: Path, out: Path, models: dict[str, float] | None, rule: Any) -> int:
    """``score --engine ray``: the file is read here as the local engine reads it (in chunks, into
    Ray's object store), scored by Ray Data actors that unpickle the routers built here once each,
    and written here in input order, the same file the local engine writes."""
    import logging

    from .formats.tables import iter_tables
    from .serve.batch import prompt_rows, write_chunks
    from .serve.ray import import_ray, score_dataset

    ray = import_ray()
    if args.ray_actors is not None and args.ray_actors < 1:
        raise ValueError(f"--ray-actors must be >= 1, got {args.ray_actors}")
    if not args.ray_cpus_per_actor > 0:
        raise ValueError(f"--ray-cpus-per-actor must be > 0, got {args.ray_cpus_per_actor}")
    if not args.ray_gpus_per_actor >= 0:
        raise ValueError(f"--ray-gpus-per-actor must be >= 0, got {args.ray_gpus_per_actor}")
    controller = _controller(args, models=models)  # router and config errors surface here, before Ray starts
    from tqdm import tqdm

    data_logger = logging.getLogger("ray.data")
    data_level = data_logger.level
    data_context = ray.data.DataContext.get_current()
    progress_bars = data_context.enable_progress_bars
    started = not ray.is_initialized()
    if started:
        if args.ray_address in (None, "local"):
            ray.init(address=args.ray_address, include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=args.ray_address, logging_level=logging.WARNING)
    done = 0
    try:
        data_logger.setLevel(logging.ERROR if args.quiet else logging.WARNING)
        data_context.enable_progress_bars = False  # the bar below counts rows
        refs, total = [], 0
        for chunk in iter_tables(source, args.chunk_size):
            prompt_rows(chunk, source, total)  # the local engine's errors, before Ray runs
            if chunk.num_rows:
                refs.append(ray.put(chunk))
                total += chunk.num_rows
        with tqdm(total=total, unit="prompt", disable=args.quiet,
                  desc=f"scoring with {', '.join(args.routers)} on Ray") as bar:
            scored: Any = ()
            if refs:
                # no more actors than chunks: an actor without a chunk would only be started
                actors = None if args.ray_actors is None else min(args.ray_actors, len(refs))
                scored = score_dataset(ray.data.from_arrow_refs(refs), controller.routers,
                                       models=models, rule=rule, batch_size=args.chunk_size, concurrency=actors,
                                       num_cpus_per_actor=args.ray_cpus_per_actor,
                                       num_gpus_per_actor=args.ray_gpus_per_actor
                                       ).iter_batches(batch_size=None, batch_format="pyarrow")
            done = write_chunks(out, scored, bar)
    finally:
        data_logger.setLevel(data_level)
        data_context.enable_progress_bars = progress_bars
        if started:
            ray.shutdown()
    print(f"scored {done} prompts with {', '.join(args.routers)} on Ray -> {args.output}", file=sys.stderr)
    return 0


def _battle_prompts(path: str) -> list[str]:
    """``--battles_dataset``: the prompts of a local battles file (jsonl/csv/parquet with a 'prompt'
    column). Chatbot Arena's prompts are JSON lists of turns: the first turn is taken, as RouteLLM's
    calibrate_threshold takes it; plain strings are taken as they are."""
    from .formats.tables import column, read_table

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"--battles_dataset {path!r} is not a file: it takes a local battles file (jsonl, csv "
                                "or parquet with a 'prompt' column); hub datasets are not downloaded")
    prompts = []
    for i, value in enumerate(column(read_table(source), "prompt", source)):
        if isinstance(value, str) and value.lstrip().startswith("["):
            try:
                turns = json.loads(value)
            except ValueError:
                turns = None
            if isinstance(turns, list) and turns and isinstance(turns[0], str):
                value = turns[0]
        if not isinstance(value, str):
            raise ValueError(f"{source} row {i}: 'prompt' must be a string or a JSON list of turns")
        prompts.append(value)
    return prompts


def _overwrites(args: argparse.Namespace, name: str) -> bool:
    """``--overwrite-cache [ROUTER...]``: these routers' cached win rates are computed again (all of
    them when none is named)."""
    return args.overwrite_cache is not None and (not args.overwrite_cache or name in args.overwrite_cache)


def _set_parallel(args: argparse.Namespace) -> None:
    """``--parallel N`` (RouteLLM's: cores to use): the threads batched scoring uses."""
    if args.parallel is not None:
        if args.parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {args.parallel}")
        rf.set_num_threads(args.parallel)


def _calibrate(args: argparse.Namespace) -> int:
    """RouteLLM's calibrate_threshold: the win-rate quantile that gives --strong-model-pct strong calls,
    per router (default prompts: the bundled sample, whose win rates the shipped routers record;
    --prompts or --battles_dataset: a file's, scored once and kept in the calibration cache);
    ``--task generate`` scores and keeps them only. With --models and --target-cost, the N-model
    threshold or cost weight for that average cost."""
    from .decision.calibration import share_threshold, win_rates_on
    from .formats.tables import read_prompts

    if args.prompts and args.battles_dataset:
        raise ValueError("give --prompts or --battles_dataset, not both")
    models = _parse_models(args.models)
    if (models is None) != (args.target_cost is None):
        raise ValueError("--target-cost calibrates routing among many models: give it with --models NAME=COST ...")
    if args.task == "generate":
        if models is not None:
            raise ValueError("--task generate scores win rates for the model pair; --models calibrates directly")
    elif models is None:
        if args.strong_model_pct is None:
            raise ValueError("calibrate needs --strong-model-pct P (or --target-cost with --models, or --task generate)")
        check_share(args.strong_model_pct)
    _set_parallel(args)
    prompts = (read_prompts(args.prompts) if args.prompts else
               _battle_prompts(args.battles_dataset) if args.battles_dataset else None)
    if models is not None:
        return _calibrate_models(args, models, prompts)
    controller = _controller(args)
    columns = {}
    for name in args.routers:
        router = controller.routers[name]
        if prompts is None and args.task == "calibrate" and not _overwrites(args, name):
            threshold = _share_threshold(controller, name, args.strong_model_pct)
        else:
            rates = win_rates_on(router, prompts, overwrite=_overwrites(args, name))
            columns[name] = rates
            if args.task == "generate":
                print(f"scored {len(rates)} prompts with {name} (kept in the calibration cache)", file=sys.stderr)
                continue
            threshold = share_threshold(rates, args.strong_model_pct)
        print(f"For {args.strong_model_pct * 100}% strong model calls for {name}, threshold = {round(threshold, 5)}")
    if args.task == "generate" and args.output:
        _write_win_rate_table(args, prompts, columns)
    return 0


def _write_win_rate_table(args: argparse.Namespace, prompts: list[str] | None, columns: dict) -> None:
    """``--task generate --output FILE``: the prompts with one win-rate column per router, the table
    RouteLLM's generate task publishes (its thresholds dataset)."""
    import pyarrow as pa

    from .formats.tables import TableWriter, check_table_suffix, read_prompts

    out = check_table_suffix(args.output)
    table = pa.table({"prompt": prompts if prompts is not None else read_prompts(),
                      **{name: pa.array(rates) for name, rates in columns.items()}})
    with TableWriter(out) as writer:
        writer.write(table)
    print(f"wrote {out}", file=sys.stderr)


def _round_up(x: float, digits: int = 6) -> float:
    """x rounded up to ``digits`` significant digits."""
    from decimal import ROUND_CEILING, Decimal

    exact = Decimal(x)
    if not exact:
        return x
    return float(exact.quantize(Decimal(1).scaleb(exact.adjusted() - digits + 1), rounding=ROUND_CEILING))


def _calibrate_models(args: argparse.Namespace, models: dict[str, float], prompts: list[str] | None) -> int:
    """Per router: the rule whose choices on the prompts cost at most --target-cost on average, and
    the model string that routes with it."""
    from .decision.calibration import calibrate_models
    from .decision.rule import CostWeight, choose_models
    from .formats.tables import read_prompts
    from .paths import SAMPLE_PROMPTS

    if prompts is None:
        prompts = read_prompts(SAMPLE_PROMPTS)
    controller = _controller(args, models=models)
    costs = list(models.values())
    for name in args.routers:
        scores = controller.routers[name].score_models(prompts, list(models))
        rule = calibrate_models(scores, costs, args.target_cost, args.rule)
        # Spending falls as t and lambda rise: the value printed is rounded up, so it still fits.
        rule = CostWeight(_round_up(rule.value)) if isinstance(rule, CostWeight) else _round_up(rule)
        picks = choose_models(scores, costs, rule)
        spent = float(np.asarray(costs)[picks].mean())
        shares = ", ".join(f"{m} {np.mean(picks == j):.1%}" for j, m in enumerate(models))
        if isinstance(rule, CostWeight):
            value, model = f"cost weight = {rule.value!r}", f"router-{name}-cost-{rule.value!r}"
        else:
            value, model = f"threshold = {rule!r}", f"router-{name}-{rule!r}"
        print(f"For an average cost of {args.target_cost:g} per prompt for {name} among {len(models)} models, "
              f"{value} (model {model}): spends {spent:.6g} on {len(prompts)} prompts; {shares}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """The OpenAI-compatible routing server."""
    require_extra("serve", "fastapi", "uvicorn", "prometheus_client", purpose="routellm-fast serve")
    from .serve.server import ServerSettings, check_client_api_key, serve

    try:
        check_client_api_key(args.client_api_key)
    except ValueError as exc:
        raise ValueError(f"{exc} (--client-api-key or ${_CLIENT_KEY_ENV})") from None
    # Read: out of the environment, so that no process the server starts (its workers) inherits it.
    os.environ.pop(_CLIENT_KEY_ENV, None)
    settings = ServerSettings(
        routers=args.routers, strong_model=args.strong_model, weak_model=args.weak_model, config=args.config,
        base_url=args.base_url, api_key=args.api_key, client_api_key=args.client_api_key,
        max_body_bytes=args.max_body_bytes, max_messages=args.max_messages, max_prompt_chars=args.max_prompt_chars,
        body_timeout=args.body_timeout, target_strong_pct=args.target_strong_pct, window=args.window,
        upstream_timeout=args.upstream_timeout, verbose=args.verbose, embedder=args.embedder,
        models=_parse_models(args.models),
    )
    serve(settings, host=args.host, port=args.port, workers=args.workers, limit_concurrency=args.limit_concurrency,
          timeout_keep_alive=args.timeout_keep_alive)
    return 0


def _export_bert(args: argparse.Namespace) -> int:
    """Convert a Hugging Face BERT classifier into the directory BERTRouter loads (needs the export extra)."""
    from .export.bert import export_bert

    out = export_bert(args.hf_dir, args.out_dir, int8=args.int8, num_labels=args.num_labels)
    print(f"exported {args.hf_dir} -> {out}{' (int8)' if args.int8 else ''}", file=sys.stderr)
    return 0


def _export_causal(args: argparse.Namespace) -> int:
    """Convert a Hugging Face Llama classifier into the directory CausalLLMRouter loads (needs the export extra)."""
    from .export.causal import export_causal

    quantize = "int8" if args.int8 else "int4" if args.int4 else None
    out = export_causal(args.hf_dir, args.out_dir, quantize=quantize, tokenizer_dir=args.tokenizer)
    print(f"exported {args.hf_dir} -> {out}{f' ({quantize})' if quantize else ''}", file=sys.stderr)
    return 0


def _score_embeddings(args: argparse.Namespace) -> int:
    """Win rates for a .npy matrix of prompt embeddings with an mf checkpoint."""
    router = rf.MatrixFactorizationRouter(args.checkpoint, args.strong_model, args.weak_model,
                                          hidden_size=args.hidden_size, text_dim=args.text_dim)
    from .formats.tables import read_npy

    emb = read_npy(args.input)
    start = time.perf_counter()
    scores = router.score_embeddings(emb)
    elapsed = time.perf_counter() - start
    np.save(args.output, scores)
    print(f"scored {len(scores)} prompts in {elapsed * 1e3:.2f} ms -> {args.output}", file=sys.stderr)
    return 0


def _eval(args: argparse.Namespace) -> int:
    """RouteLLM's evaluation of routers on a benchmark: metrics table, curves and plot in --output."""
    from .evals import load_benchmark, markdown_table, run_eval, write_report
    from .serve.controller import Controller, load_config

    _check_output_folder(args.output, args.overwrite_committed)
    _set_parallel(args)
    config = load_config(args.config)
    config.setdefault("random", {"seed": 0})  # reproducible random baseline, as RouteLLM's random.seed(0)
    controller = Controller(args.routers, args.strong_model, args.weak_model, config=config, embedder=args.embedder)
    benchmarks = [load_benchmark(b, args.data_dir, args.strong_model, args.weak_model) for b in args.benchmark]
    tables = []
    for benchmark in benchmarks:
        print(benchmark.describe(), file=sys.stderr)
        result = run_eval(controller.routers, benchmark, num_results=args.num_results, random_iters=args.random_iters,
                          exclude_training_prompts=not args.include_training_prompts, cache_dir=args.cache_dir,
                          overwrite_cache=_eval_overwrites(args, controller.routers), progress=not args.quiet,
                          length_baseline=not args.no_length_baseline, bootstrap=args.bootstrap, seed=args.seed)
        paths = write_report(result, args.output)
        tables.append(markdown_table(result))
        print(tables[-1])
        print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    if len(tables) > 1:
        (args.output / "summary.md").write_text("\n".join(tables))
    return 0


def _eval_overwrites(args: argparse.Namespace, routers) -> bool | list[str]:
    """``--overwrite-cache``: False (use the cache), True (every router) or the routers named."""
    if args.overwrite_cache is None:
        return False
    return [name for name in routers if _overwrites(args, name)] if args.overwrite_cache else True


def _committed_folders() -> list[Path]:
    """Folders whose files are the package's or the repository's committed ones: the installed
    package, and in a source checkout its docs/ (docs/eval holds the published reports)."""
    from .paths import PACKAGE_DIR

    folders = [PACKAGE_DIR]
    checkout = PACKAGE_DIR.parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "docs").is_dir():
        folders.append(checkout / "docs")
    return folders


def _check_output_folder(output: Path, overwrite_committed: bool) -> None:
    """``eval --output`` never writes over committed files unless ``--overwrite-committed`` says so."""
    target = Path(output).resolve()
    for folder in _committed_folders():
        if not overwrite_committed and (target == folder or folder in target.parents):
            raise ValueError(f"--output {output} is inside {folder}, whose files are committed (the package's data or "
                             "the published reports): write elsewhere, or add --overwrite-committed to regenerate them")


def _train(args: argparse.Namespace) -> int:
    """Train an mf checkpoint or an sw_ranking arena from battle files (and golden-label battles)."""
    from .embedders import embedder_for
    from .evals import BENCHMARKS
    from .formats.preference import (
        PreferenceData,
        golden_label_battles,
        load_preference,
    )
    from .train.fit import MFTrainConfig, train_mf_router, train_sw_router

    parts = [load_preference(args.battles)] if args.battles else []
    for name in args.golden or ():
        parts.append(golden_label_battles(BENCHMARKS[name](args.data_dir, args.strong_model, args.weak_model)))
    if not parts:
        raise ValueError("nothing to train on: give --battles FILE... and/or --golden mmlu gsm8k")
    data = PreferenceData.concat(parts)
    print(f"training {args.kind} on {data.summary()}", file=sys.stderr)
    embedder = embedder_for(args.embedder)
    pair = (args.strong_model, args.weak_model)
    common = {"val_share": args.val_share, "embedding_cache": args.embedding_cache, "pair": pair,
              "progress": not args.quiet}
    if args.kind == "mf":
        config = MFTrainConfig(dim=args.dim, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                               alpha=args.alpha, max_epochs=args.epochs, patience=args.patience, seed=args.seed)
        report = train_mf_router(data, args.out, embedder, config=config, ties=args.ties, **common)
    else:
        report = train_sw_router(data, args.out, embedder, storage=args.storage, **common)
    val = report.get("validation", {})
    accuracy = f"; held-out pairwise accuracy {val['pairwise_accuracy']:.4f} on {val['prompts']} prompts" if val else ""
    print(f"wrote {args.out}{accuracy}")
    return 0


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value!r}")
    return number


def _whole_number(low: int, high: int | None = None):
    """An argparse type: a whole number in [low, high] (no upper bound for None)."""
    span = f"from {low} to {high}" if high is not None else f">= {low}"

    def whole_number(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {value!r}") from None
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {value!r}")
        return number

    return whole_number


def _seconds(value: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {value!r}")
    return number


#: The environment variable ``serve --client-api-key`` defaults to.
_CLIENT_KEY_ENV = "ROUTELLM_FAST_CLIENT_API_KEY"


def _router_name(value: str) -> str:
    if value not in ROUTER_CLS:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r}: {unknown_router(value)}")
    return value


class _RouterNames(argparse.Action):
    """``--router/--routers NAME...``: it takes several values, so a prompt written after it
    (``route --router mf "PROMPT"``) arrives here too. Values from the first one that is not a router
    name on are kept aside as ``_after_routers`` for ``route`` to take as its prompt; other commands
    refuse them as router names."""

    def __call__(self, parser, namespace, values, option_string=None):
        names = list(values)
        first_other = next((i for i, v in enumerate(names) if v not in ROUTER_CLS), len(names))
        if first_other == 0:
            raise argparse.ArgumentError(self, f"invalid choice: {names[0]!r}: {unknown_router(names[0])}")
        setattr(namespace, self.dest, names[:first_other])
        rest = names[first_other:]
        if rest and not getattr(namespace, "_takes_prompt", False):
            raise argparse.ArgumentError(self, f"invalid choice: {rest[0]!r}: {unknown_router(rest[0])}")
        namespace._after_routers = rest


def _add_router_args(p: argparse.ArgumentParser, default: Sequence[str] = (DEFAULT_ROUTER,)) -> None:
    p.add_argument("--router", "--routers", dest="routers", nargs="+", action=_RouterNames, default=list(default),
                   metavar="ROUTER", help=f"one or more of {', '.join(sorted(ROUTER_CLS))} "
                   f"(default: {' '.join(default)}; the shipped routers unless --config says otherwise)")
    p.add_argument("--config", help="YAML file mapping router names to constructor arguments (RouteLLM's format)")
    p.add_argument("--strong-model", default=STRONG, help=f"the strong model's name (default {STRONG})")
    p.add_argument("--weak-model", default=WEAK, help=f"the weak model's name (default {WEAK})")
    p.add_argument("--embedder", choices=list(SHIPPED_EMBEDDERS),
                   help="which shipped mf, sw_ranking and knn: on all-MiniLM-L6-v2 (minilm) or on the static embedder "
                        "distilled from it (static: microseconds per prompt); default: each on the one it routes "
                        "best on (knn static, mf and sw_ranking minilm; see docs/routers.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routellm-fast", description="A compiled LLM router with RouteLLM's routers.")
    parser.add_argument("--version", action="version", version=f"routellm-fast {rf.__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="show the compiled backend (SIMD path, threads)")
    info.add_argument("--json", action="store_true", help="also print the backend info as JSON")
    info.set_defaults(func=_info)

    route = sub.add_parser("route", help="route one prompt: prints the chosen model, the win rate and the threshold",
                           epilog=f"The prompt may come before or after the options, or after --: {_ROUTE_FORMS}")
    route.add_argument("prompt", nargs="?", help="the prompt to route (quote it)")
    route.set_defaults(_takes_prompt=True, _after_routers=[], _route_parser=route)
    _add_router_args(route)
    group = route.add_mutually_exclusive_group()
    group.add_argument("--threshold", type=_threshold_or_share,
                       help="route to the strong model when its win rate is >= this; or a share such as 50%% "
                            "(the router's calibrated threshold for that share of strong calls)")
    group.add_argument("--strong-model-pct", type=float, default=0.5,
                       help="use the threshold that sends this share of the sample prompts to the strong model, "
                            "as calibrate prints it (default 0.5)")
    group.add_argument("--cost-weight", type=float, help="with --models: the cost-aware rule with this lambda >= 0")
    route.add_argument("--models", nargs="+", metavar="NAME=COST",
                       help="route among these models with their costs instead of the pair (mf, sw_ranking): "
                            "--threshold T picks the cheapest model no dearer one beats with win rate >= T, "
                            "--cost-weight L trades win rate against relative cost")
    route.set_defaults(func=_route)

    score = sub.add_parser("score", help="win rates for every prompt of a file (jsonl/csv/parquet with 'prompt')")
    score.add_argument("--input", required=True, help="jsonl, csv or parquet file with a 'prompt' column")
    score.add_argument("--output", required=True,
                       help=".jsonl, .csv or .parquet: the input's columns plus win_rate_<router> per router "
                            "(with --models: score_<router>_<model> per model, and model_<router> with a rule)")
    score.add_argument("--chunk-size", type=int, default=4096, help="rows read, scored and written at a time")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: this process, every core (default); ray: actors on a Ray cluster, each "
                            "building the routers once (needs the 'ray' extra; output in input order, as local)")
    score.add_argument("--ray-address", help="with --engine ray: 'auto' (the running cluster: ray start, "
                       "$RAY_ADDRESS), 'local' (a new Ray instance on this machine) or a cluster address "
                       "(default, as ray.init(): $RAY_ADDRESS, else the cluster `ray start` last started on this "
                       "machine, else a new local instance)")
    score.add_argument("--ray-actors", type=int, help="with --engine ray: scoring actors (default: the "
                       "cluster's CPUs over --ray-cpus-per-actor)")
    score.add_argument("--ray-cpus-per-actor", type=float, default=1.0,
                       help="with --engine ray: CPUs (scoring threads) per actor (default 1)")
    score.add_argument("--ray-gpus-per-actor", type=float, default=0.0,
                       help="with --engine ray: GPUs per actor, for routers that score on one (default 0)")
    score.add_argument("--models", nargs="+", metavar="NAME=COST",
                       help="score every prompt against these models (mf, sw_ranking): a score_<router>_<model> "
                            "column per model, on one logit scale")
    rule = score.add_mutually_exclusive_group()
    rule.add_argument("--threshold", type=float, help="with --models: also write the model the N-model threshold "
                                                      "rule chooses (model_<router>)")
    rule.add_argument("--cost-weight", type=float, help="with --models: also write the model the cost-aware rule "
                                                        "with this lambda >= 0 chooses (model_<router>)")
    _add_router_args(score)
    score.set_defaults(func=_score)

    calibrate = sub.add_parser("calibrate", help="the threshold for a share of strong-model calls, or among many "
                                                 "models the threshold or cost weight for a target average cost")
    target = calibrate.add_mutually_exclusive_group()
    target.add_argument("--strong-model-pct", type=float, help="any share in [0, 1] (needed by --task calibrate)")
    target.add_argument("--target-cost", type=float,
                        help="with --models: the average cost per prompt (in the units of the models' costs) to "
                             "spend at most, as close as the rule allows")
    calibrate.add_argument("--models", nargs="+", metavar="NAME=COST", help="calibrate the N-model rule among these")
    calibrate.add_argument("--rule", choices=["threshold", "cost"], default="threshold",
                           help="with --models: calibrate the threshold rule (router-<name>-<t>, default) or the "
                                "cost weight (router-<name>-cost-<lambda>)")
    calibrate.add_argument("--prompts", help="jsonl/csv/parquet with a 'prompt' column (default: the 805 bundled "
                                             "sample prompts, whose win rates the shipped routers record)")
    calibrate.add_argument("--battles-dataset", "--battles_dataset", dest="battles_dataset", metavar="FILE",
                           help="RouteLLM's flag: calibrate on the prompts of this local battles file (jsonl/csv/"
                                "parquet; Chatbot Arena's JSON lists of turns: the first turn), scored once and kept "
                                "in the calibration cache (hub datasets are not downloaded)")
    calibrate.add_argument("--task", choices=["generate", "calibrate"], default="calibrate",
                           help="RouteLLM's flag: generate scores the prompts and keeps their win rates in the "
                                "calibration cache (and --output); calibrate (default) prints the thresholds, "
                                "from the cache when generate ran first")
    calibrate.add_argument("--output", help="with --task generate: also write the prompts and one win-rate column "
                                            "per router to this .jsonl/.csv/.parquet file")
    calibrate.add_argument("--parallel", type=int, metavar="N",
                           help="RouteLLM's flag: threads used to score (default: all cores)")
    calibrate.add_argument("--overwrite-cache", "--overwrite_cache", dest="overwrite_cache", nargs="*",
                           type=_router_name, metavar="ROUTER",
                           help="score these routers' calibration prompts again instead of using the calibration "
                                "cache (no name: every router)")
    _add_router_args(calibrate)
    calibrate.set_defaults(func=_calibrate)

    serve = sub.add_parser("serve", help="the OpenAI-compatible routing server (RouteLLM's openai_server flags)")
    _add_router_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=_whole_number(0, 65535), default=6060,
                       help="port to listen on, 0 to 65535 (default 6060, RouteLLM's)")
    serve.add_argument("--base-url", help="the upstream OpenAI-compatible endpoint for all LLM requests")
    serve.add_argument("--api-key", help="API key for the upstream LLM requests, as RouteLLM's "
                                         "(default: $OPENAI_API_KEY)")
    serve.add_argument("--client-api-key", default=os.environ.get(_CLIENT_KEY_ENV),
                       help=f"require 'Authorization: Bearer <key>' from clients on every route but /health "
                            f"(default: ${_CLIENT_KEY_ENV}, which keeps the key out of the process list and is "
                            f"removed from the environment once read; none: no client authentication; an empty or "
                            f"blank key refuses to start)")
    serve.add_argument("--workers", type=_whole_number(0), default=1,
                       help="server processes (RouteLLM's flag; 0 means 1). Each loads the routers and keeps its own "
                            "metrics and online threshold; keys reach them through multiprocessing's pipe, not the "
                            "environment")
    serve.add_argument("--verbose", action="store_true", help="log every routing decision and the model counts")
    serve.add_argument("--target-strong-pct", type=float,
                       help="online mode: 'router-<name>-auto' keeps this share of strong calls over a sliding window, "
                            "starting from the calibrated threshold")
    serve.add_argument("--window", type=_whole_number(1), default=1000,
                       help="online mode: decisions in the sliding window")
    serve.add_argument("--models", nargs="+", metavar="NAME=COST",
                       help="route among these models with their costs (mf, sw_ranking): 'router-<name>-<t>' picks the "
                            "cheapest model no dearer one beats with win rate >= t, 'router-<name>-cost-<lambda>' trades "
                            "win rate against relative cost; /v1/route also returns every model's score")
    serve.add_argument("--max-body-bytes", type=_whole_number(1), default=1 << 20,
                       help="largest request body accepted, in bytes (default 1048576, 1 MiB; larger ones get 413 "
                            "and the connection closed)")
    serve.add_argument("--max-messages", type=_whole_number(1), default=1000,
                       help="most messages in a chat request (default 1000; more get 413)")
    serve.add_argument("--max-prompt-chars", type=_whole_number(1), default=1_000_000,
                       help="longest text a request is routed on (its last message, or /v1/route's prompt), in "
                            "characters (default 1000000; longer gets 413)")
    serve.add_argument("--body-timeout", type=_seconds, default=30.0,
                       help="seconds a client has to send its whole request body once its headers are in "
                            "(default 30); a slower one gets 408 and its connection closed (slow-loris clients)")
    serve.add_argument("--limit-concurrency", type=_whole_number(1),
                       help="uvicorn's limit: connections and requests at once per process, beyond which requests get "
                            "503 (default: no limit; set it under the process's open-file limit)")
    serve.add_argument("--timeout-keep-alive", type=_seconds, default=75.0,
                       help="seconds an idle keep-alive connection stays open (default 75: longer than clients keep "
                            "pooled connections)")
    serve.add_argument("--upstream-timeout", type=_seconds, default=60.0,
                       help="seconds before an upstream call is a 504 (default 60)")
    serve.set_defaults(func=_serve)

    evaluate = sub.add_parser("eval", help="RouteLLM's evaluation (MT Bench, MMLU, GSM8K, CRUX or your file): "
                              "CPT, AUC, APGR with bootstrap intervals, a length baseline, curves and plot")
    evaluate.add_argument("--benchmark", nargs="+", required=True,
                          help="mt-bench, mmlu, gsm8k, crux, math-l5 (needs --weak-model), or files with 'prompt' and "
                               "per-model correctness/score columns")
    evaluate.add_argument("--output", type=Path, default=Path("eval-results"), help="folder for the tables and plot")
    evaluate.add_argument("--data-dir", type=Path, default=eval_data_dir(),
                          help="RouteLLM's evaluation files (a folder holding routellm-evals/); default: "
                               "$ROUTELLM_FAST_DATA, else the copy bundled in the package")
    _add_router_args(evaluate, default=("random", "mf", "sw_ranking"))
    evaluate.add_argument("--num-results", type=int, default=10, help="quantile thresholds per router (default 10)")
    evaluate.add_argument("--random-iters", type=int, default=10, help="runs of the random router averaged (default 10)")
    evaluate.add_argument("--cache-dir", type=Path, default=eval_cache_dir(),
                          help="win rates and embeddings cached per router configuration (default ~/.cache/routellm_fast/eval)")
    evaluate.add_argument("--overwrite-cache", "--overwrite_cache", dest="overwrite_cache", nargs="*",
                          type=_router_name, metavar="ROUTER",
                          help="recompute these routers' cached win rates (RouteLLM's flag; no name: every router)")
    evaluate.add_argument("--parallel", type=int, metavar="N",
                          help="RouteLLM's flag: threads used to score (default: all cores)")
    evaluate.add_argument("--overwrite-committed", action="store_true",
                          help="allow --output inside the package or the repository's docs/ (the committed reports "
                               "in docs/eval are regenerated this way); refused otherwise")
    evaluate.add_argument("--include-training-prompts", action="store_true",
                          help="keep benchmark prompts the routers were trained on, and the training half of "
                               "MMLU, GSM8K and the ZeroEval sets (dropped by default)")
    evaluate.add_argument("--bootstrap", type=_non_negative_int, default=1000, metavar="N",
                          help="bootstrap resamples of the items for the 95%% APGR intervals and the paired test "
                               "against the length baseline (default 1000; 0: none)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    evaluate.add_argument("--no-length-baseline", action="store_true",
                          help="leave out the prompt-length baseline (fitted on the training half; see docs/evaluation.md)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=_eval)

    train = sub.add_parser("train", help="train a router (mf or sw) from preference battles")
    train_sub = train.add_subparsers(dest="kind", required=True)
    for kind, what in (("mf", "an mf checkpoint directory (RouteLLM's layout)"), ("sw", "an sw_ranking arena file (.npz)")):
        t = train_sub.add_parser(kind, help=f"write {what}")
        t.add_argument("--battles", nargs="+", default=[],
                       help="battle files (prompt, model_a, model_b, winner[, weight]) or folders with battles.csv + prompts.jsonl")
        t.add_argument("--golden", nargs="+", choices=["mmlu", "gsm8k"],
                       help="add golden-label battles from the training half of these benchmarks (--data-dir)")
        t.add_argument("--data-dir", type=Path, default=eval_data_dir(),
                       help="RouteLLM's evaluation files for --golden (default: $ROUTELLM_FAST_DATA, else the bundled copy)")
        t.add_argument("--out", type=Path, required=True, help=f"where to write {what}")
        t.add_argument("--embedder", default="default",
                       help="'default' or 'minilm' (local all-MiniLM-L6-v2), 'static' (the local static embedder "
                            "distilled from it) or an OpenAI embedding model")
        t.add_argument("--embedding-cache", type=Path, help="reuse/keep prompt embeddings in this .npz")
        t.add_argument("--val-share", type=float, default=0.05, help="prompts held out for validation (default 0.05)")
        t.add_argument("--strong-model", default=STRONG, help="must have battles in the data")
        t.add_argument("--weak-model", default=WEAK, help="must have battles in the data")
        t.add_argument("--quiet", action="store_true", help="no progress bars")
        t.set_defaults(func=_train)
        if kind == "mf":
            t.add_argument("--dim", type=int, default=128, help="size of the model and prompt vectors (default 128)")
            t.add_argument("--epochs", type=int, default=100, help="at most this many (early stopping)")
            t.add_argument("--patience", type=int, default=5, help="epochs without held-out improvement before stopping")
            t.add_argument("--batch-size", type=int, default=64, help="battles per optimiser step (default 64)")
            t.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate (default 3e-4)")
            t.add_argument("--weight-decay", type=float, default=1e-5, help="Adam weight decay (default 1e-5)")
            t.add_argument("--alpha", type=float, default=0.1, help="noise on prompt embeddings while training")
            t.add_argument("--seed", type=int, default=42, help="seed of the initial weights, noise and shuffling "
                                                                  "(default 42)")
            t.add_argument("--ties", choices=["drop", "half"], default="drop",
                           help="drop ties (RouteLLM) or train them as half a win each")
        else:
            t.add_argument("--storage", choices=["float16", "float32"], default="float16",
                           help="precision of the stored prompt embeddings (default float16: half the file)")

    score_emb = sub.add_parser("score-embeddings", help="score precomputed prompt embeddings with an mf checkpoint")
    score_emb.add_argument("--checkpoint", required=True, help="directory written by RouteLLM's MFModel.save_pretrained")
    score_emb.add_argument("--input", required=True, help=".npy float matrix [n, text_dim]")
    score_emb.add_argument("--output", required=True, help=".npy file for the float64 win rates")
    score_emb.add_argument("--strong-model", default=STRONG, help=f"the strong model's name (default {STRONG})")
    score_emb.add_argument("--weak-model", default=WEAK, help=f"the weak model's name (default {WEAK})")
    score_emb.add_argument("--hidden-size", type=int, help="default: the checkpoint's config.json, else 128")
    score_emb.add_argument("--text-dim", type=int, help="default: the checkpoint's config.json, else 1536")
    score_emb.set_defaults(func=_score_embeddings)

    export = sub.add_parser("export-bert", help="convert a Hugging Face BERT classifier (RouteLLM's layout) for "
                            "the bert router (needs torch, transformers, onnx: the 'export' extra)")
    export.add_argument("hf_dir", type=Path, help="config.json + weights + tokenizer files")
    export.add_argument("out_dir", type=Path, help="written: model.onnx, tokenizer.json, routellm_fast_bert.json")
    export.add_argument("--int8", action="store_true", help="int8 MatMul weights (dynamic quantisation, per channel)")
    export.add_argument("--num-labels", type=int, default=3,
                        help="the classifier's labels (default 3: strong wins, tie, weak wins, as RouteLLM's)")
    export.set_defaults(func=_export_bert)

    causal = sub.add_parser("export-causal", help="convert a Hugging Face Llama classifier (RouteLLM's causal_llm "
                            "layout) for the causal_llm router (needs torch, transformers, onnx: the 'export' extra)")
    causal.add_argument("hf_dir", type=Path, help="config.json + weights + tokenizer files + system_ft_v5.txt + "
                                                  "classifier_ft_v5.txt")
    causal.add_argument("out_dir", type=Path, help="written: model.onnx, tokenizer.json, the message files, "
                                                   "routellm_fast_causal.json")
    weights = causal.add_mutually_exclusive_group()
    weights.add_argument("--int8", action="store_true", help="int8 MatMul weights (dynamic quantisation, per channel)")
    weights.add_argument("--int4", action="store_true", help="4-bit MatMul weights in blocks of 32 (MatMulNBits; "
                                                             "needs onnx-ir)")
    causal.add_argument("--tokenizer", type=Path, help="the base model's tokenizer directory, where RouteLLM loads it "
                                                       "from model_id (default: hf_dir)")
    causal.set_defaults(func=_export_causal)
    return parser


def _route_prompt(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``route``'s prompt, wherever it was written: before or after ``--router NAME...``, or after
    ``--``; else a usage error that shows the forms that work."""
    if args.command != "route":
        return
    parser, after = args._route_parser, args._after_routers
    if args.prompt is not None and after:
        parser.error(f"argument --router/--routers: invalid choice: {after[0]!r}: {unknown_router(after[0])}")
    if len(after) > 1:
        parser.error(f"route takes one prompt, got {len(after)} words after the router names; quote the prompt: "
                     f"{_ROUTE_FORMS}")
    if after:
        args.prompt = after[0]
    if args.prompt is None:
        parser.error(f"route needs a prompt: {_ROUTE_FORMS}")


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning on the command line: one line, no source location."""
    return f"routellm-fast: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _route_prompt(parser, args)
    warnings.formatwarning = _format_warning
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, RouteLLMFastError) as exc:
        # A user's mistake (a bad value or file, a missing extra, an embedding service that refused):
        # one line, no traceback. Bugs (anything else) keep theirs.
        print(f"routellm-fast: error: {exc}", file=sys.stderr)
        return 2
