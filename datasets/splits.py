"""Named split protocols (DESIGN.md "Settings and splits").

``planetoid``: the public split stored in the Planetoid files.
``geom-gcn``: the 10 fixed 48/32/20 splits of Pei et al. (ICLR 2020), files
``geom-gcn/splits/<name>_split_0.6_0.2_<k>.npz`` (keys train_mask, val_mask,
test_mask); split ``k = seed % 10``.
"""
from __future__ import annotations

import numpy as np
import torch

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import data_root, ensure_files, mask_to_index

PROTOCOLS = ("planetoid", "geom-gcn", "cpf", "platonov", "ogb", "ppi", "linkx")

GEOM_GCN_URL = "https://raw.githubusercontent.com/graphdml-uiuc-jlu/geom-gcn/master/splits/{file}"


def geom_gcn_split(name: str, k: int, num_nodes: int, root=None):
    """Read fixed split ``k`` (0..9) of the geom-gcn protocol for dataset file stem ``name``.

    Returns:
        dict train/val/test -> int64 node ids.

    Raises:
        DatasetError: missing file, or masks whose length differs from ``num_nodes``.
    """
    root = data_root(root)
    rel = f"geom-gcn/splits/{name}_split_0.6_0.2_{k}.npz"
    (path,) = ensure_files(name, root, [rel], {rel: GEOM_GCN_URL.format(file=rel.rsplit('/', 1)[1])},
                           layout="geom-gcn/splits/<name>_split_0.6_0.2_<k>.npz, k = 0..9",
                           source="Geom-GCN (Pei et al., ICLR 2020), github.com/graphdml-uiuc-jlu/geom-gcn")
    try:
        with np.load(path) as z:
            masks = {key: z[f"{key}_mask"] for key in ("train", "val", "test")}
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{path}: cannot read split masks ({type(e).__name__}: {e})") from e
    for key, m in masks.items():
        if len(m) != num_nodes:
            raise DatasetError(f"{path}: {key}_mask has length {len(m)}, the graph has {num_nodes} nodes")
    return {key: mask_to_index(torch.from_numpy(m.astype(bool))) for key, m in masks.items()}


def apply_protocol(data: GraphData, protocol: str, seed: int, root=None, **kw) -> GraphData:
    """Return ``data`` with the splits of ``protocol`` for ``seed``.

    Raises:
        ValueError: for a protocol this dataset does not support.
    """
    if kw:
        raise ValueError(f"unknown dataset option(s) {sorted(kw)} for {data.name!r}")
    if protocol == "planetoid":
        if data.protocol != "planetoid":
            raise ValueError(f"dataset {data.name!r} has no public planetoid split")
        return data.replace(split_index=0)
    if protocol == "geom-gcn":
        k = seed % 10
        return data.replace(splits=geom_gcn_split(data.name, k, data.num_nodes, root),
                            protocol="geom-gcn", split_index=k)
    raise ValueError(f"protocol {protocol!r} is not available for dataset {data.name!r}; "
                     f"known protocols: {', '.join(PROTOCOLS)}")
