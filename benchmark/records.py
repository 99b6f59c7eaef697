"""Per-run JSON records: atomic writes, reading, status checks (DESIGN.md "Records")."""
from __future__ import annotations

import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator, List, Optional

STATUSES = ("ok", "error", "oom", "timeout", "skipped")


def record_path(results_dir: Path, suite: str, run_id: str) -> Path:
    """Where the record of ``run_id`` lives: ``<results_dir>/runs/<suite>/<run_id>.json`` (may not exist)."""
    return Path(results_dir) / "runs" / suite / f"{run_id}.json"


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_record(path: Path, record: dict) -> None:
    """Write ``record`` as JSON to a temporary file in the same folder, then rename into place.

    Readers and parallel writers never see a partial file. NaN/inf become null.

    Raises:
        OSError: the folder cannot be created or written (message names it).
    """
    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "x") as f:
            json.dump({k: _clean(v) for k, v in record.items()}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_replace(path, write)
    except OSError as e:
        raise OSError(f"cannot write records into {path.parent}: {e.strerror or e}") from e


def atomic_replace(path: Path, write: Callable[[Path], None]) -> None:
    """Create ``path`` through ``write(tmp)`` on a private temporary name (``.<name>.<random>.tmp``) in the
    same folder, then rename it into place (``os.replace``), so readers and parallel writers see the old
    entry or the new one, never a partial one; on any failure the temporary entry is removed and the
    error re-raised. ``write`` may make a file or a symlink at ``tmp``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        raise


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and check a file can be written in it.

    Raises:
        OSError: naming the folder, before any run starts.
    """
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe", suffix=".tmp"):
            pass
    except OSError as e:
        raise OSError(f"cannot write records into {folder}: {e.strerror or e}") from None


def read_record(path: Path) -> Optional[dict]:
    """The record at ``path``, or ``None`` if absent or unreadable (a corrupted file is ignored)."""
    try:
        with open(path) as f:
            rec = json.load(f)
        return rec if isinstance(rec, dict) else None
    except (OSError, ValueError):
        return None


def is_done(results_dir: Path, suite: str, run_id: str) -> bool:
    """Whether ``run_id`` has a readable record with status ``ok`` (what ``run`` skips; other statuses rerun)."""
    rec = read_record(record_path(results_dir, suite, run_id))
    return rec is not None and rec.get("status") == "ok"


def iter_records(results_dir: Path, suites: Optional[List[str]] = None) -> Iterator[dict]:
    """Every readable record under ``results_dir/runs/<suite>/``."""
    root = Path(results_dir) / "runs"
    if not root.is_dir():
        return
    for sdir in sorted(p for p in root.iterdir() if p.is_dir()):
        if suites and sdir.name not in suites:
            continue
        for f in sorted(sdir.glob("*.json")):
            rec = read_record(f)
            if rec is not None:
                yield rec
