#!/usr/bin/env python
"""Property check of the sw_ranking Elo solver against an independent reference.

Builds seeded random arenas of varied size (8 to 12,000 battles), model count (3-16), tier count
(2-12) and outcome mix (position-biased, strength-based, lopsided, tie-heavy, tiny, weights over
2-20 and 20-120 decades, one-sided battles inside tiers, arenas in two halves that never meet),
plus arenas of the tracker's shape (55,400 battles, 12 models, 10 tiers, model_a 45% / model_b 35% /
tie 20%). For every arena it compares the global ratings and, for 4 queries and up to 12 tier pairs,
every win rate with scipy's optimiser on the same likelihood (tests/core/elo_reference.py; mpmath for
queries whose weights span more than 6 decades). It counts:

  refusals      ValueErrors where the reference finds a limit (must be 0)
  missed        answers where the reference finds none (must be 0)
  max diff      the largest win-rate difference (must be <= 1e-8)
  construction  arenas refused at construction, each checked to have no finite model ratings

Run from the repository root with the package importable, e.g.
    PYTHONPATH=python python scripts/elo_property_check.py --arenas 1000 --big 40 --workers 2
Exit status 1 when any check fails. CI runs a sample in tests/core/test_elo_solver.py.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.core


def _check(job):
    seed, big, precise = job
    from tests.core import elo_reference as er

    start = time.perf_counter()
    arena = er.random_arena(seed, big=big)
    try:
        result = er.check_arena(arena, allow_precise=precise)
    except Exception as e:  # a reference failure is reported, not hidden
        result = {"seed": seed, "kind": arena["kind"], "error": repr(e), "messages": [repr(e)]}
    result["battles"] = len(arena["winner"])
    result["seconds"] = time.perf_counter() - start
    return result


def _init_worker():
    import routellm_fast as rf

    rf.set_num_threads(1)  # one process per core


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arenas", type=int, default=1000, help="varied arenas (default 1000)")
    parser.add_argument("--big", type=int, default=40, help="arenas of the 55,400-battle shape (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-mpmath", action="store_true", help="skip queries that need the mpmath reference")
    args = parser.parse_args(argv)

    jobs = [(args.seed + i, True, not args.no_mpmath) for i in range(args.big)]
    jobs += [(args.seed + i, False, not args.no_mpmath) for i in range(args.arenas)]
    start = time.perf_counter()
    by_kind = defaultdict(lambda: defaultdict(float))
    failures = []
    total = defaultdict(float)
    with mp.Pool(args.workers, initializer=_init_worker) as pool:
        for done, r in enumerate(pool.imap_unordered(_check, jobs, chunksize=1), 1):
            k = by_kind[r["kind"]]
            k["arenas"] += 1
            k["seconds"] += r["seconds"]
            bad = "error" in r
            if not bad:
                for key in ("compared", "bad_refusals", "good_refusals", "missed_refusals", "precise"):
                    k[key] += r[key]
                    total[key] += r[key]
                k["construction_refused"] += r["construction_refused"]
                total["construction_refused"] += r["construction_refused"]
                k["max_diff"] = max(k["max_diff"], r["max_diff"])
                total["max_diff"] = max(total["max_diff"], r["max_diff"])
                total["ratings_diff"] = max(total["ratings_diff"], r["ratings_diff"])
                bad = (r["bad_refusals"] or r["missed_refusals"] or r["bad_construction"]
                       or r["max_diff"] > 1e-8 or r["ratings_diff"] > 1e-6)
            if bad:
                failures.append(r)
                print(f"FAIL seed {r['seed']} ({r['kind']}, {r['battles']} battles): "
                      + "; ".join(m[:300] for m in r["messages"][:3]), flush=True)
            if done % 100 == 0:
                print(f"  {done}/{len(jobs)} arenas, {time.perf_counter() - start:.0f} s", flush=True)
    elapsed = time.perf_counter() - start

    print(f"\n{'kind':<16}{'arenas':>7}{'pairs':>9}{'mpmath':>8}{'refused':>9}{'no-limit':>9}{'built?':>7}"
          f"{'max |diff|':>12}{'s/arena':>9}")
    for kind in sorted(by_kind):
        k = by_kind[kind]
        print(f"{kind:<16}{int(k['arenas']):>7}{int(k['compared']):>9}{int(k['precise']):>8}"
              f"{int(k['bad_refusals']):>9}{int(k['good_refusals']):>9}{int(k['construction_refused']):>7}"
              f"{k['max_diff']:>12.2e}{k['seconds'] / k['arenas']:>9.2f}")
    print(f"\narenas: {len(jobs)} ({args.big} of 55,400 battles), win rates compared: {int(total['compared'])}"
          f" ({int(total['precise'])} queries against mpmath)")
    print(f"refusals where a limit exists: {int(total['bad_refusals'])}; answers where none exists: "
          f"{int(total['missed_refusals'])}; correct refusals: {int(total['good_refusals'])}")
    print(f"arenas refused at construction (no finite model ratings, confirmed): {int(total['construction_refused'])}")
    print(f"max win-rate difference: {total['max_diff']:.3e}; max global rating difference: "
          f"{total['ratings_diff']:.3e} Elo")
    print(f"failures: {len(failures)}; time: {elapsed:.0f} s with {args.workers} workers")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
