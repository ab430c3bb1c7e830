"""Load test of the routing server from a second process, over loopback.

Starts the test upstream (``EchoLLMServer``, tests/serve/echo_llm.py: an OpenAI-compatible server that
answers with the model it was asked for) and ``routellm-fast serve`` as separate processes, then drives
``/v1/route`` and ``/v1/chat/completions`` from this process with as many concurrent clients as
asked, for ``--seconds``; reports throughput, p50/p99 latency and every failed request.

Then the fault phase: the upstream is killed while requests are in flight. Every chat request must
get a JSON 502/504 (never a hang, a dropped connection or a 500), ``/v1/route`` keeps answering,
and after the upstream comes back the server recovers with no restart.

    python benchmarks/load_test.py --seconds 60 --concurrency 32

Exit status 1 when any request failed in the steady phase or the fault phase misbehaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def echo_llm_process(delay: float, port: int = 0) -> subprocess.Popen:
    """The test upstream (tests/serve/echo_llm.py's EchoLLMServer) in a child process run from the
    checkout's root, so that ``tests`` imports; it prints its URL once it listens."""
    code = (
        "import time\n"
        "from tests.serve.echo_llm import EchoLLMServer\n"
        f"with EchoLLMServer(delay={delay}, port={port}) as up:\n"
        "    print(up.url, flush=True)\n"
        "    while True:\n"
        "        time.sleep(3600)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def start_upstream(delay: float) -> tuple[subprocess.Popen, str]:
    proc = echo_llm_process(delay)
    url = proc.stdout.readline().strip()
    if not url:
        raise RuntimeError("the test upstream did not start")
    return proc, url


def start_upstream_at(url: str, delay: float) -> subprocess.Popen:
    """The test upstream again, on the port it had before (the server keeps its base URL)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    proc = echo_llm_process(delay, port)
    proc.stdout.readline()
    return proc


PROMPTS = [
    "Prove that there are infinitely many primes.", "Write a haiku about the sea.", "What is 2 + 2?",
    "Implement a thread-safe LRU cache in C++.", "Summarise the causes of the French revolution.",
    "Translate 'good morning' into Japanese.", "Explain the CAP theorem with an example.",
    "Give me three names for a bakery.", "Solve x^2 - 5x + 6 = 0.", "hi",
]


async def client_loop(client: httpx.AsyncClient, base: str, router: str, stop: float, results: list, kinds: list) -> None:
    i = 0
    while time.perf_counter() < stop:
        prompt = PROMPTS[i % len(PROMPTS)] + f" (variant {i % 50})"
        kind = kinds[i % len(kinds)]
        i += 1
        start = time.perf_counter()
        try:
            if kind == "route":
                r = await client.post(f"{base}/v1/route", json={"model": f"router-{router}-0.5", "prompt": prompt})
            else:
                r = await client.post(f"{base}/v1/chat/completions", json={
                    "model": f"router-{router}-0.5", "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 8})
            status = r.status_code
            ok = status == 200 and isinstance(r.json(), dict)
            error = None if ok else f"HTTP {status}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            status, ok, error = None, False, f"{type(exc).__name__}: {exc}"
        results.append((kind, time.perf_counter() - start, ok, status, error))


async def drive(base: str, router: str, seconds: float, concurrency: int, kinds: list) -> list:
    results: list = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(client_loop(client, base, router, stop, results, kinds) for _ in range(concurrency)))
    return results


def summarise(results: list, seconds: float) -> dict:
    out = {}
    for kind in sorted({r[0] for r in results}):
        rows = [r for r in results if r[0] == kind]
        latencies = np.array([r[1] for r in rows if r[2]]) * 1e3
        failed = [r for r in rows if not r[2]]
        out[kind] = {
            "requests": len(rows), "failed": len(failed), "per_second": len(rows) / seconds,
            "p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else None,
            "failures": sorted({r[4] for r in failed})[:5],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the steady phase")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent client connections")
    parser.add_argument("--router", default="mf", help="router to serve (default: the shipped mf)")
    parser.add_argument("--fault-seconds", type=float, default=10.0, help="length of the fault phase")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    upstream, upstream_url = start_upstream(delay=0.0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "routellm_fast", "serve", "--routers", args.router,
                               "--base-url", upstream_url, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    report: dict = {"cpus": len(os.sched_getaffinity(0)), "router": args.router, "concurrency": args.concurrency}
    failed = False
    try:
        wait_for(f"{base}/health")
        asyncio.run(drive(base, args.router, 3.0, args.concurrency, ["route", "chat"]))  # warm-up: caches, pools
        results = asyncio.run(drive(base, args.router, args.seconds, args.concurrency, ["route", "chat"]))
        report["steady"] = summarise(results, args.seconds)
        failed |= any(v["failed"] for v in report["steady"].values())

        # fault phase: kill the upstream a third of the way in, bring it back two thirds in
        async def fault_phase() -> list:
            async def chaos() -> None:
                await asyncio.sleep(args.fault_seconds / 3)
                upstream.send_signal(signal.SIGKILL)
                await asyncio.sleep(args.fault_seconds / 3)
                nonlocal_restart.append(start_upstream_at(upstream_url, delay=0.0))

            task = asyncio.create_task(chaos())
            out = await drive(base, args.router, args.fault_seconds, args.concurrency, ["route", "chat"])
            await task
            return out

        nonlocal_restart: list = []
        results = asyncio.run(fault_phase())
        statuses: dict[str, dict] = {}
        for kind, _, _, status, error in results:
            key = str(status) if status is not None else (error or "?").split(":")[0]
            statuses.setdefault(kind, {}).setdefault(key, 0)
            statuses[kind][key] += 1
        report["fault"] = statuses
        bad = [r for r in results if r[3] is None or r[3] >= 500 and r[3] not in (502, 504)]
        bad += [r for r in results if r[0] == "route" and r[3] != 200]
        failed |= bool(bad)
        report["fault_bad"] = sorted({str(r[4]) for r in bad})[:5]
        after = asyncio.run(drive(base, args.router, 3.0, 4, ["chat"]))
        report["recovered"] = all(r[2] for r in after) and len(after) > 0
        failed |= not report["recovered"]
        report["server_alive"] = server.poll() is None
        failed |= not report["server_alive"]
        for proc in nonlocal_restart:
            proc.kill()
    finally:
        server.terminate()
        upstream.kill()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
