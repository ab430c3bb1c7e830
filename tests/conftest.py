"""Fixtures shared by several test rooms. A room's own fixtures are in its conftest.py; plain helpers
(synthetic arenas, paths, the model pair) are in tests/helpers.py.

tests/ and every room in it are packages (``__init__.py``): pytest imports the test modules as
``tests.<room>.<module>`` from the repository root (its rootdir-based import), so helpers import as
``from tests.helpers import ...`` or ``from tests.serve.echo_llm import ...``, never by changing the
import path."""

from __future__ import annotations

import contextlib

import pytest
import routellm_fast as rf
from routellm_fast.routers.shipped import (
    default_bert_router,
    default_mf_router,
    default_sw_router,
)

from tests.helpers import FIXTURES, SHARED_DATA


@pytest.fixture(params=rf.backend_info()["simd_available"])
def simd(request):
    """Runs a test once per SIMD path this CPU supports, restoring the default afterwards."""
    default = rf.backend_info()["simd"]
    rf.set_simd(request.param)
    yield request.param
    rf.set_simd(default)


@pytest.fixture(scope="session")
def fixtures_dir():
    """tests/fixtures: the committed goldens (tests/fixtures/make_*.py regenerate them)."""
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data beside the checkout (may be absent: tests that need it skip)."""
    return SHARED_DATA


# The shipped routers, loaded once per run. Tests only score with them; a test that changes a router
# (an embedding cache, a threshold) works on its own copy.
@pytest.fixture(scope="session")
def shipped_mf():
    """The shipped mf router on all-MiniLM-L6-v2 (``default_mf_router()``)."""
    return default_mf_router()


@pytest.fixture(scope="session")
def shipped_sw():
    """The shipped sw_ranking router on all-MiniLM-L6-v2 (``default_sw_router()``)."""
    return default_sw_router()


@pytest.fixture(scope="session")
def default_router():
    """The router used when none is named (``SHIPPED_ROUTERS[DEFAULT_ROUTER]()``: knn on the static embedder)."""
    from routellm_fast.routers.shipped import DEFAULT_ROUTER, SHIPPED_ROUTERS

    return SHIPPED_ROUTERS[DEFAULT_ROUTER]()


@pytest.fixture(scope="session")
def shipped_bert():
    """The shipped BERT router (``default_bert_router()``)."""
    return default_bert_router()


@pytest.fixture(scope="session")
def static_mf():
    """The shipped mf router on the static embedder (``default_mf_router(embedder="static")``)."""
    return default_mf_router(embedder="static")


@pytest.fixture(scope="session")
def static_sw():
    """The shipped sw_ranking router on the static embedder (``default_sw_router(embedder="static")``)."""
    return default_sw_router(embedder="static")


@pytest.fixture
def echo_llm():
    """A fresh EchoLLMServer (tests/serve/echo_llm.py) for one test: the OpenAI-compatible upstream
    that answers with the model it was asked for; ``.url`` to point a Controller or server at it."""
    from tests.serve.echo_llm import EchoLLMServer

    with EchoLLMServer() as server:
        yield server


@pytest.fixture
def serve_app():
    """Starts an app under uvicorn on loopback for the rest of the test: ``running = serve_app(app)``,
    then ``running.url``. Skips where uvicorn is not installed."""
    pytest.importorskip("uvicorn")
    from tests.serve.live import Running

    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(Running(app))
