"""Fixtures of the serve room."""

from __future__ import annotations

import pytest

from tests.serve.echo_llm import EchoLLMServer


@pytest.fixture(scope="module")
def upstream():
    """One EchoLLMServer for a whole test module (its ``requests`` accumulate over the module; a test
    that needs a fresh one takes ``echo_llm``)."""
    with EchoLLMServer() as up:
        yield up
