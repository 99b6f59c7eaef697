"""Data root and cache resolution, missing-file errors, downloads and sanity checks.

The data root (``--data-dir`` / ``GKD_BENCH_DATA``, default
``~/.cache/gkd-bench/data``) is read-only for the project; loaders stage links
to its files under the cache directory (``GKD_BENCH_CACHE``, default
``~/.cache/gkd-bench/cache``) when a library (DGL, OGB) insists on writing its
processed files next to the raw ones.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from gkd_bench.data import DatasetError, GraphData, MissingDataError
from gkd_bench.records import atomic_replace


def data_root(root=None) -> Path:
    """The data root: ``root`` if given, else ``$GKD_BENCH_DATA``, else ``~/.cache/gkd-bench/data``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("GKD_BENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gkd-bench" / "data"


def cache_root(cache=None) -> Path:
    """The processed-cache directory: ``cache``, ``$GKD_BENCH_CACHE`` or ``~/.cache/gkd-bench/cache``."""
    if cache:
        return Path(cache).expanduser()
    env = os.environ.get("GKD_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gkd-bench" / "cache"


def network_allowed() -> bool:
    """Downloads are attempted unless ``GKD_BENCH_OFFLINE=1``."""
    return os.environ.get("GKD_BENCH_OFFLINE", "0") not in ("1", "true", "yes")


def ensure_files(name: str, root: Path, rel_paths: Iterable[str], urls: Optional[Dict[str, str]] = None,
                 layout: str = "", source: str = "") -> List[Path]:
    """Return the absolute paths of ``rel_paths`` under ``root``, downloading missing ones.

    Args:
        name: dataset name for messages.
        root: the data root.
        rel_paths: files the loader needs, relative to the root.
        urls: optional ``{rel_path: official URL}``; used when a file is missing
            and the network allows.
        layout: a short description of the expected layout for the message.
        source: where the files come from (paper / repository) for the message.

    Raises:
        MissingDataError: naming every missing file, the expected layout and the
            source, when files are missing and cannot be downloaded.
    """
    paths = [root / p for p in rel_paths]
    missing = [p for p in paths if not p.exists()]
    if missing and urls and network_allowed():
        for p in missing:
            url = urls.get(str(p.relative_to(root)))
            if url:
                try:
                    download(url, p)
                except Exception:  # noqa: BLE001 - reported below as missing
                    pass
        missing = [p for p in paths if not p.exists()]
    if missing:
        lines = "\n  ".join(str(p) for p in missing)
        first = str(missing[0].relative_to(root)) + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        msg = f"dataset {name!r}: missing {first} under data root {root}:\n  {lines}"
        if layout:
            msg += f"\nexpected layout: {layout}"
        if source:
            msg += f"\nsource: {source}"
        msg += "\nset --data-dir or GKD_BENCH_DATA to the folder that holds them"
        raise MissingDataError(msg)
    return paths


def download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Download ``url`` to ``dest`` atomically (temporary file, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    os.replace(tmp, dest)


def stage_links(sources: Dict[str, Path], folder: Path) -> Path:
    """Create ``folder`` (in the cache) holding symlinks ``name -> source`` and return it.

    Lets DGL/OGB classes read raw files of the read-only data root while
    writing their processed files into the cache. A stale link is replaced.
    Safe when parallel workers (Ray tasks on a shared cache) stage the same
    folder at once: each link is made under a private name and renamed into
    place, so a link another worker created in between is replaced, never an
    error.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for fname, src in sources.items():
        link, target = folder / fname, src.resolve()
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        atomic_replace(link, lambda tmp: os.symlink(target, tmp))
    return folder


@contextlib.contextmanager
def stage_lock(folder: Path):
    """Hold an exclusive inter-process lock (``fcntl.flock`` on ``.<name>.lock`` next to ``folder``) while a
    library prepares ``folder``: DGL's and OGB's dataset classes write their processed files there without
    a temporary name, so a second worker could read a half-written file. Where ``fcntl`` does not exist
    (Windows) the block runs unlocked."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    with open(folder.parent / f".{folder.name}.lock", "a") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def files_digest(paths: Iterable[Path]) -> str:
    """Short digest of file sizes and modification-independent content heads, for version strings."""
    h = hashlib.sha1()
    for p in sorted(paths, key=str):
        st = p.stat()
        h.update(p.name.encode())
        h.update(str(st.st_size).encode())
        with open(p, "rb") as f:
            h.update(f.read(1 << 16))
    return h.hexdigest()[:8]


def validate(data: GraphData, where: str) -> GraphData:
    """Check shapes, finiteness, label range and splits of a loaded dataset.

    Multi-graph datasets (``data.graphs``) are checked graph by graph.

    Raises:
        DatasetError: naming ``where`` (file or folder) and the problem: non-finite
            features, labels out of ``[0, num_classes)`` (multi-class) or not
            0/1 of shape ``[N, C]`` (multi-label), mismatched lengths, split ids
            out of range, overlapping train/val/test splits.
    """
    n = data.graph.num_nodes()
    if data.x.dim() != 2 or data.x.shape[0] != n:
        raise DatasetError(f"{where}: features have shape {tuple(data.x.shape)}, expected [{n}, F]")
    # a sum is non-finite if any entry is (or if it overflows): only then scan entry by entry
    if not torch.isfinite(data.x.sum()) and not torch.isfinite(data.x).all():
        bad = int((~torch.isfinite(data.x)).any(1).sum())
        raise DatasetError(f"{where}: features contain NaN or inf in {bad} node row(s)")
    if data.y.shape[0] != n:
        raise DatasetError(f"{where}: {data.y.shape[0]} labels for {n} nodes")
    if data.multilabel:
        if data.y.dim() != 2 or data.y.shape[1] != data.num_classes:
            raise DatasetError(f"{where}: multi-label targets have shape {tuple(data.y.shape)}, "
                               f"expected [{n}, {data.num_classes}]")
        if data.y.numel() and not ((data.y == 0) | (data.y == 1)).all():
            raise DatasetError(f"{where}: multi-label targets must be 0 or 1")
    else:
        if data.y.dim() != 1:
            raise DatasetError(f"{where}: labels have shape {tuple(data.y.shape)}, expected [{n}]")
        if data.y.numel() and (int(data.y.min()) < 0 or int(data.y.max()) >= data.num_classes):
            raise DatasetError(f"{where}: labels out of range [0, {data.num_classes}): "
                               f"min {int(data.y.min())}, max {int(data.y.max())}")
    for key, idx in data.splits.items():
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise DatasetError(f"{where}: split {key!r} has node ids outside [0, {n})")
    check_disjoint(data.splits, where)
    for role, parts in (data.graphs or {}).items():
        for i, part in enumerate(parts):
            if part is not data:
                validate(part, f"{where} ({role} graph {i})")
    return data


def check_disjoint(splits: Dict[str, torch.Tensor], where: str) -> None:
    """Raise DatasetError if any two of the ``train``/``val``/``test`` node sets overlap."""
    keys = [k for k in ("train", "val", "test") if k in splits]
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            both = int(torch.isin(splits[a], splits[b]).sum()) if len(splits[a]) and len(splits[b]) else 0
            if both:
                raise DatasetError(f"{where}: splits {a!r} and {b!r} share {both} node(s)")


def read_npz(path: Path, keys: Iterable[str], optional: Iterable[str] = (),
             allow_pickle: bool = False) -> Dict[str, np.ndarray]:
    """Read the arrays ``keys`` (and ``optional`` ones, when present) of an ``.npz`` archive.

    Only the named arrays are decompressed, so unrelated pickled entries (e.g.
    ``class_names`` stored as objects) are never unpickled.

    Raises:
        DatasetError: naming ``path`` when the file is truncated or not an npz
            archive, an array cannot be decoded, or a required key is missing
            (listing the keys the file has).
    """
    try:
        with np.load(path, allow_pickle=allow_pickle) as z:
            have = set(z.files)
            missing = [k for k in keys if k not in have]
            if missing:
                raise DatasetError(f"{path}: missing array(s) {missing}; the file has {sorted(have)}")
            out = {k: z[k] for k in list(keys) + [k for k in optional if k in have]}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib.error) as e:
        raise DatasetError(f"{path}: truncated or not a valid npz archive "
                           f"({type(e).__name__}: {e}); re-download it") from e
    return out


def check_shape(arr: np.ndarray, shape: Tuple[Optional[int], ...], what: str, where) -> np.ndarray:
    """Raise DatasetError naming ``where`` unless ``arr`` has ``shape`` (``None`` = any size)."""
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise DatasetError(f"{where}: {what} has shape {tuple(arr.shape)}, expected [{want}]")
    return arr


def check_edges(src, dst, num_nodes: int, where) -> None:
    """Raise DatasetError naming ``where`` if an edge endpoint is outside ``[0, num_nodes)``."""
    for name, ids in (("source", src), ("target", dst)):
        ids = torch.as_tensor(ids)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_nodes):
            raise DatasetError(f"{where}: edge {name} ids span [{int(ids.min())}, {int(ids.max())}], "
                               f"outside the {num_nodes} nodes")


def quiet():
    """Context manager silencing stdout (OGB and DGL print progress while processing)."""
    return contextlib.redirect_stdout(io.StringIO())


def mask_to_index(mask) -> torch.Tensor:
    """Boolean mask ``[N]`` -> sorted int64 node ids."""
    return torch.as_tensor(mask).bool().nonzero(as_tuple=True)[0].long()


def processed_cache(path: Path, build):
    """``torch.load(path)`` if it exists, else ``build()`` (a dict of tensors) saved atomically to ``path``.

    For loaders whose library parses slowly on every call (DGL's Geom-GCN
    classes re-read the text files each time). ``path`` must be under the
    cache directory and its name must include the dataset version, so a
    changed file gives a new entry. An unreadable entry is rebuilt.
    """
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a corrupted cache entry is rebuilt
            pass
    out = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_replace(path, lambda tmp: torch.save(out, tmp))
    return out


def describe_loader(load, default_protocol: str, protocols: tuple, metric: str):
    """Attach the attributes every registered loader exposes and return ``load``.

    ``default_protocol`` is used when a suite names none; ``protocols`` lists the
    accepted ones; ``metric`` is what the dataset is evaluated by (``gkd-bench datasets``).
    """
    load.default_protocol = default_protocol
    load.protocols = tuple(protocols)
    load.metric = metric
    return load
