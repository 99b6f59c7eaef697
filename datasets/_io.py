"""Data root and cache resolution, missing-file errors, downloads and sanity checks.

The data root (``--data-dir`` / ``GKD_BENCH_DATA``, default
``~/.cache/gkd-bench/data``) is read-only for the project; loaders stage links
to its files under the cache directory (``GKD_BENCH_CACHE``, default
``~/.cache/gkd-bench/cache``) when a library (DGL, OGB) insists on writing its
processed files next to the raw ones.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import torch

from gkd_bench.data import DatasetError, GraphData, MissingDataError


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
        msg = f"dataset {name!r}: missing file(s) under data root {root}:\n  {lines}"
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
    """
    folder.mkdir(parents=True, exist_ok=True)
    for fname, src in sources.items():
        link = folder / fname
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == src.resolve():
                continue
            link.unlink()
        link.symlink_to(src.resolve())
    return folder


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
    """Check shapes, finiteness and label range of a loaded dataset.

    Raises:
        DatasetError: naming ``where`` (file or folder) and the problem: non-finite
            features, labels out of ``[0, num_classes)``, mismatched lengths,
            split ids out of range.
    """
    n = data.graph.num_nodes()
    if data.x.dim() != 2 or data.x.shape[0] != n:
        raise DatasetError(f"{where}: features have shape {tuple(data.x.shape)}, expected [{n}, F]")
    if not torch.isfinite(data.x).all():
        bad = int((~torch.isfinite(data.x)).any(1).sum())
        raise DatasetError(f"{where}: features contain NaN or inf in {bad} node row(s)")
    if data.y.shape[0] != n:
        raise DatasetError(f"{where}: {data.y.shape[0]} labels for {n} nodes")
    if not data.multilabel:
        if data.y.numel() and (int(data.y.min()) < 0 or int(data.y.max()) >= data.num_classes):
            raise DatasetError(f"{where}: labels out of range [0, {data.num_classes}): "
                               f"min {int(data.y.min())}, max {int(data.y.max())}")
    for key, idx in data.splits.items():
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise DatasetError(f"{where}: split {key!r} has node ids outside [0, {n})")
    return data


def mask_to_index(mask) -> torch.Tensor:
    """Boolean mask ``[N]`` -> sorted int64 node ids."""
    return torch.as_tensor(mask).bool().nonzero(as_tuple=True)[0].long()
