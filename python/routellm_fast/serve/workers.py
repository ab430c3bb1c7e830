"""The app factory of ``routellm-fast serve --workers N``'s worker processes.

uvicorn's own multi-process path takes the app as an import string, so a worker's settings, and the
keys in them, would have to reach it through the environment, which every process the worker starts
inherits. Instead :func:`~.server.serve` hands each worker a :class:`WorkerApp` holding the settings,
and multiprocessing passes it (to each worker uvicorn starts or restarts) through its pipe.

This module imports nothing of the package: a worker unpickles it before uvicorn's health-check
thread runs, and the server's imports (FastAPI, the routers, the extension) take long enough on a
busy machine for uvicorn to take the starting worker for a hung one and kill it. The factory is
named by its import path, as uvicorn names apps, and imported when the worker calls it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["WorkerApp"]


class WorkerApp:
    """An app factory for uvicorn's workers: ``factory`` (``"module:function"``) called with
    ``kwargs`` in the worker."""

    def __init__(self, factory: str, kwargs: dict[str, Any]) -> None:
        self.factory, self.kwargs = factory, kwargs

    def __call__(self) -> Any:
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)(**self.kwargs)

    def __repr__(self) -> str:  # the arguments hold keys: never shown in a log
        return f"{type(self).__name__}({self.factory!r}, <{len(self.kwargs)} arguments>)"
