"""Files that are never seen half-written, and checksums that tell a damaged file from a good one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc), else set and
    restored at once."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as status:
            return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode a plain open() or mkdir() would give (0644 / 0755 under umask 0022, group-writable
    under 0002): temporary files (0600) and folders (0700) get it before they take their final name,
    so a colleague reads a shared store."""
    return (0o777 if directory else 0o666) & ~current_umask()


def apply_umask_modes(folder: str | Path) -> None:
    """Give a folder written by a library (safetensors writes 0600, temporary folders are 0700),
    and everything below it, the modes the umask gives, before it takes its final name."""
    file_mode, folder_mode = umask_mode(), umask_mode(directory=True)
    os.chmod(folder, folder_mode)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), folder_mode)
        for name in files:
            os.chmod(os.path.join(root, name), file_mode)


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[BinaryIO]:
    """Write to a temporary file beside `path`, flush it to disk, then rename it into place: a
    reader never sees half a file, and a crash or a full disk leaves the previous version intact.
    The final file has the mode the umask gives, like any file the user writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(handle, umask_mode())
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    with atomic_output(path, "w") as stream:
        stream.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any | None:
    """The JSON document at `path`, or None when it is missing or damaged (truncated, not JSON)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


class HashingWriter:
    """A binary stream that checksums what passes through it (no second read of a large file)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.sha256, self.size = stream, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.stream.write(data)

    def flush(self) -> None:
        self.stream.flush()

    def record(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256.hexdigest()}


def file_record(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of a file, read in chunks."""
    sha256 = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            sha256.update(chunk)
    return {"size": Path(path).stat().st_size, "sha256": sha256.hexdigest()}


def checksum_record_path(path: str | Path) -> Path:
    """Where a large file written with a HashingWriter keeps its record (size, sha256, facts)."""
    return Path(f"{path}.sha256.json")


def record_matches(path: str | Path, record: Any) -> bool:
    """Whether the file at `path` still has the size and checksum recorded for it."""
    path = Path(path)
    if not isinstance(record, dict) or not path.is_file() or path.stat().st_size != record.get("size"):
        return False
    return file_record(path)["sha256"] == record.get("sha256")


def tree_records(folder: str | Path, exclude: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Records of every file below `folder` (relative POSIX paths), except hidden ones (locks,
    unfinished temporary files) and those under `exclude`."""
    folder = Path(folder)
    records = {}
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.is_file() and parts[0] not in exclude and not any(part.startswith(".") for part in parts):
            records[path.relative_to(folder).as_posix()] = file_record(path)
    return records


def replace_folder(staging: Path, final: Path) -> None:
    """Put a fully written folder in place of `final`: files of an earlier version never mix with
    the new ones (the old folder is renamed away first, then removed)."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def human_bytes(count: float) -> str:
    """Bytes in decimal units, as disk quotas and `du --si` count them (XLM-R large: 2.2 GB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def folder_bytes(folder: str | Path, skip: tuple[str, ...] = (), hidden: bool = False) -> int:
    """Bytes of the files below `folder` (0 when it is gone), except hidden ones (unless `hidden`)
    and top-level entries named in `skip`; a file removed while it is counted is not counted."""
    total = 0
    for root, folders, files in os.walk(folder):
        top = Path(root) == Path(folder)
        folders[:] = [name for name in folders if (hidden or not name.startswith(".")) and not (top and name in skip)]
        for name in files:
            if (hidden or not name.startswith(".")) and not (top and name in skip):
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(root, name)).st_size
    return total
