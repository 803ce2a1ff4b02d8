"""File I/O shared by every module: atomic writes and JSON / JSONL reading with the file named in errors.

A file or directory is written under a temporary name beside its final one, fsync'd, then renamed
into place, so a kill at any moment leaves the old version or the new one, never half of either.
"""
from __future__ import annotations

import codecs
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file below `path` (and the directories) to disk."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; on success it replaces `final` atomically.

    On an exception the temporary directory is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())      # mkdtemp makes it private; a checkpoint should not be
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file through a temporary name + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result should not be
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=False).encode("utf-8"))


def atomic_write_with(path: str | Path, write: Callable[[str], None]) -> None:
    """Atomically create `path` with a writer that takes a file name (e.g. safetensors' save_file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path, error: type[Exception]) -> Any:
    """Parse a JSON file; a file that is not JSON (or not UTF-8) raises `error` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None


def read_text(path: str | Path, error: type[Exception], what: str = "file") -> str:
    """UTF-8 text of a file (a BOM is allowed), or `error` naming the file and the first bad byte."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    raw = path.read_bytes()
    skip = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = skip + e.start
        line = raw[:offset].count(b"\n") + 1
        raise error(f"{path}: not UTF-8 text: byte 0x{raw[offset]:02x} at byte offset {offset} (line {line}) "
                    f"cannot be decoded; re-save the {what} as UTF-8") from None


def parse_jsonl(text: str, where: str, error: type[Exception], skip_torn: bool = False
                ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of JSON-lines text read from `where`.

    A line that is not a JSON object raises `error` naming `where` and the line, unless
    `skip_torn` (a log whose last line a kill cut short), which skips it.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if skip_torn:
                continue
            raise error(f"{where} line {number}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            if skip_torn:
                continue
            raise error(f"{where} line {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def iter_jsonl(path: str | Path, error: type[Exception], skip_torn: bool = False, what: str = "file"
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """`parse_jsonl` of a file's UTF-8 text."""
    return parse_jsonl(read_text(path, error, what), str(path), error, skip_torn)
