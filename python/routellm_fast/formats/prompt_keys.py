"""The key that identifies a prompt's exact text: embedding caches, the training prompts a router
records, and the evaluation's exclusion of them all use it."""

from __future__ import annotations

import hashlib

__all__ = ["prompt_key"]


def prompt_key(text: str) -> bytes:
    """A 16-byte hash of a prompt's exact text: the key of embedding caches and of the training
    prompts a router records (so an evaluation can leave them out)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

