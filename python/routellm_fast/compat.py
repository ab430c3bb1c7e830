"""One-line acceleration of programs written against the ``routellm`` package."""

from __future__ import annotations

from .routers import ROUTER_CLS

__all__ = ["patch_routellm"]


def patch_routellm() -> None:
    """Make the installed ``routellm`` package build routellm_fast's routers.

    After this call, ``routellm.controller.Controller`` (and RouteLLM's server and evaluation
    scripts, which use it) construct routellm_fast's ``mf``, ``sw_ranking`` and ``random`` routers
    from the same config: same constructor arguments, same answers, compiled scoring. Checkpoints
    and datasets must be local paths (nothing is downloaded). Routers routellm_fast does not
    implement yet stay RouteLLM's.
    """
    try:
        import routellm.routers.routers as rl_routers
    except ImportError:
        raise ImportError("patch_routellm() needs the routellm package installed") from None
    # routellm.controller imported ROUTER_CLS by name: mutate the shared dict in place.
    rl_routers.ROUTER_CLS.update(ROUTER_CLS)
    rl_routers.NAME_TO_CLS.update({cls: name for name, cls in ROUTER_CLS.items()})
