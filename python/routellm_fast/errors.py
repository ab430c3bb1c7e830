"""Everything routellm_fast raises or warns, in one tree, and the one helper for a missing extra.

    RouteLLMFastError                 catch this for any of the package's own errors
    ├── RoutingError                  a bad router name, threshold, model string or message list
    ├── BadFileError (ValueError)     a file that is unreadable, corrupt, inconsistent or hostile
    ├── EmbeddingError (RuntimeError) an embedding backend failed (HTTP error, timeout, bad answer)
    └── MissingExtraError (ImportError)  an optional extra is not installed; says which to install

    ShippedRouterWarning (UserWarning)   a RouteLLM hub name not available locally: the shipped router
                                         of the same kind is used instead
    ThresholdWarning (UserWarning)       a threshold that sends almost every prompt (over 99%, or under
                                         1%) to one model: probably one meant for another router

The leaves are also the built-in types callers caught before (``ValueError``, ``RuntimeError``,
``ImportError``). Bad arguments are plain ``TypeError`` / ``ValueError`` raised where they are checked.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = [
    "BadFileError",
    "EmbeddingError",
    "MissingExtraError",
    "RouteLLMFastError",
    "RoutingError",
    "ShippedRouterWarning",
    "ThresholdWarning",
    "install_hint",
    "missing_extra",
    "require_extra",
]


class RouteLLMFastError(Exception):
    """The base of every error routellm_fast raises itself."""


class RoutingError(RouteLLMFastError):
    """A bad router name, threshold, ``router-<name>-<threshold>`` model string or message list."""


class BadFileError(RouteLLMFastError, ValueError):
    """A file that cannot be what it should be: unreadable, corrupt, inconsistent or hostile. The
    message names the file and the problem."""


class EmbeddingError(RouteLLMFastError, RuntimeError):
    """An embedding backend failed (HTTP error, timeout, malformed answer)."""


class MissingExtraError(RouteLLMFastError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


class ShippedRouterWarning(UserWarning):
    """A RouteLLM hub checkpoint or dataset is not available locally: the shipped router of the same
    kind is used instead."""


class ThresholdWarning(UserWarning):
    """A routing threshold that sends more than 99% or fewer than 1% of the router's calibration prompts
    to the strong model: thresholds belong to one router (one copied from RouteLLM's docs or another
    router means something else here). The message names the threshold for the share probably meant."""


def install_hint(extra: str) -> str:
    """The command that installs an optional extra."""
    return f'pip install "routellm_fast[{extra}]"'


def missing_extra(extra: str, purpose: str, missing: str, hint: str = "") -> MissingExtraError:
    """The error for ``purpose`` needing module ``missing``, which the optional ``extra`` installs;
    ``hint``, when given, is appended (another way to do without the extra)."""
    return MissingExtraError(f"{purpose} needs {missing}, which is not installed: {install_hint(extra)}{hint}")


def require_extra(extra: str, *modules: str, purpose: str, hint: str = "") -> tuple[ModuleType, ...]:
    """Import ``modules`` (in order) for ``purpose``, or raise :func:`missing_extra` naming the first
    one missing and the extra that installs it."""
    imported = []
    for name in modules:
        try:
            imported.append(importlib.import_module(name))
        except ImportError as exc:
            raise missing_extra(extra, purpose, exc.name or name, hint) from None
    return tuple(imported)
