""".npz files are bounded before they are read: a zip bomb (a small file whose members declare
gigabytes, or whose directory points many members at one deflate stream) and members with names the
format does not have are refused from the archive's directory alone, before any member is opened."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
from routellm_fast.embedders import CallableEmbedder
from routellm_fast.embedders.cache import CachedEmbedder
from routellm_fast.errors import BadFileError
from routellm_fast.formats.arena import load_arena, save_arena
from routellm_fast.formats.tables import read_npz

from tests.formats.test_hostile_files import small_arena

_CENTRAL = b"PK\x01\x02"


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def zeros_zip(names: list[str], rows: int = 1 << 14) -> bytes:
    """A deflated .npz whose members each hold ``rows`` x 64 float32 zeros (4 MB each at the
    default, a few KB compressed)."""
    buffer = io.BytesIO()
    payload = npy_bytes(np.zeros((rows, 64), np.float32))
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.writestr(name + ".npy", payload)
    return buffer.getvalue()


def central_entries(raw: bytes) -> list[int]:
    """Offsets of the central-directory entries of a zip held in ``raw``."""
    out, at = [], raw.find(_CENTRAL)
    while at != -1:
        out.append(at)
        at = raw.find(_CENTRAL, at + 4)
    return out


def forbid_member_reads(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a member was opened before the archive's directory was checked")

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


def test_a_member_declaring_gigabytes_is_refused_before_decompression(tmp_path, monkeypatch):
    raw = bytearray(zeros_zip(["vectors"]))
    (entry,) = central_entries(bytes(raw))
    struct.pack_into("<I", raw, entry + 24, 0xFFFF_FFF0)  # uncompressed size: 4.29 GB, from a file of a few KB
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(bytes(raw))
    assert bomb.stat().st_size < 64 * 1024
    forbid_member_reads(monkeypatch)
    with pytest.raises(BadFileError, match=r"vectors declares 4294967280 bytes, more than its \d+ compressed"):
        read_npz(bomb)


def test_members_that_share_one_deflate_stream_are_refused(tmp_path, monkeypatch):
    """The overlapping zip bomb: every directory entry points at the first member's bytes, so a
    file of a few KB would inflate to members x 4 MB. Each entry alone looks fine."""
    names = [f"m{i:03d}" for i in range(200)]
    raw = bytearray(zeros_zip(names))
    entries = central_entries(bytes(raw))
    first_offset = struct.unpack_from("<I", raw, entries[0] + 42)[0]
    compressed = struct.unpack_from("<I", raw, entries[0] + 20)[0]
    for entry in entries[1:]:
        struct.pack_into("<I", raw, entry + 42, first_offset)
    # keep only the shared stream and the directory: the file shrinks, the declared sizes do not
    directory = raw.index(_CENTRAL)
    local_end = 30 + len("m000.npy") + compressed
    shrunk = bytes(raw[:local_end]) + bytes(raw[directory:])
    cd_offset = len(shrunk) - (len(raw) - directory)
    eocd = shrunk.rindex(b"PK\x05\x06")
    shrunk = shrunk[:eocd + 16] + struct.pack("<I", local_end) + shrunk[eocd + 20:]
    assert cd_offset == local_end
    bomb = tmp_path / "overlap.npz"
    bomb.write_bytes(shrunk)
    declared = sum(i.file_size for i in zipfile.ZipFile(bomb).infolist())
    assert declared > 500 * bomb.stat().st_size  # ~800 MB declared by a file of ~50 KB
    forbid_member_reads(monkeypatch)
    with pytest.raises(BadFileError, match="overlaps the member before it"):
        read_npz(bomb)


def test_an_arena_out_of_proportion_to_its_file_is_refused(tmp_path, monkeypatch):
    """A well-formed archive (no lies in its directory) whose members inflate 1000 times: deflate
    allows it, but no arena does (real ones inflate about 1.2 times)."""
    arena = small_arena()
    path = tmp_path / "zeros-arena.npz"
    save_arena(path, arena)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:  # 64 MB of zeros as training prompt keys
        z.writestr("training_prompt_keys.npy", npy_bytes(np.zeros((1 << 22, 16), np.uint8)))
    assert path.stat().st_size < 200_000
    forbid_member_reads(monkeypatch)
    with pytest.raises(BadFileError, match=r"members declare \d+ bytes in all, \d+ times the file.s \d+ bytes \(at most 100 times"):
        load_arena(path)


def test_unknown_member_names_are_refused_before_anything_is_read(tmp_path, monkeypatch):
    arena = tmp_path / "arena.npz"
    save_arena(arena, small_arena())
    with zipfile.ZipFile(arena, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("payload.npy", npy_bytes(np.zeros(4, np.float32)))
    cache = tmp_path / "cache.npz"
    np.savez(cache, keys=np.zeros((1, 16), np.uint8), vectors=np.zeros((1, 4), np.float32), name=np.array("e"),
             dim=np.array(4), extra=np.zeros(3))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("a member was read"))
    with pytest.raises(BadFileError, match=r"arena.npz is not a routellm_fast.arena/1 file: unexpected member 'payload.npy'"):
        load_arena(arena)
    with pytest.raises(BadFileError, match=r"cache.npz is not a routellm_fast embedding cache: unexpected member 'extra.npy'"):
        CachedEmbedder(CallableEmbedder(lambda p: np.zeros((len(p), 4), np.float32), "e", 4), 10).load(cache)


def test_a_member_named_twice_is_refused(tmp_path):
    path = tmp_path / "twice.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("keys.npy", npy_bytes(np.zeros((1, 16), np.uint8)))
        with pytest.warns(UserWarning, match="Duplicate name"):
            z.writestr("keys.npy", npy_bytes(np.zeros((2, 16), np.uint8)))
    with pytest.raises(BadFileError, match="'keys' appears twice"):
        read_npz(path)


def test_good_files_still_read(tmp_path):
    arena = tmp_path / "arena.npz"
    save_arena(arena, small_arena())
    assert load_arena(arena).prompt_embeddings.shape == small_arena().prompt_embeddings.shape
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, x=np.zeros((1 << 16, 64), np.float32))  # 16 MB of zeros: about 1000:1, allowed
    assert read_npz(path, {"x"})["x"].shape == (1 << 16, 64)
