"""``python -m routellm_fast.patched MODULE [ARGS...]``: RouteLLM's own scripts on routellm_fast's
routers. ``MODULE`` runs as ``python -m MODULE ARGS...`` would, after
:func:`routellm_fast.patch_routellm`:

    python -m routellm_fast.patched routellm.openai_server --routers mf --base-url http://localhost:8000/v1
    python -m routellm_fast.patched routellm.evals.evaluate --routers mf --benchmark mt-bench

``routellm.calibrate_threshold`` reads win rates that RouteLLM's own routers recorded on the
Hugging Face hub, which mean nothing for these routers' scale: it runs as ``routellm-fast
calibrate``, which takes its flags (``--routers``, ``--strong-model-pct``, ``--config``,
``--battles_dataset``, ``--task``) and calibrates these routers.
"""

from __future__ import annotations

import sys

from .cli import main
from .serve.routellm_patch import run_patched

CALIBRATE = "routellm.calibrate_threshold"

if __name__ == "__main__":
    if sys.argv[1:2] == [CALIBRATE]:
        raise SystemExit(main(["calibrate", *sys.argv[2:]]))
    run_patched()
