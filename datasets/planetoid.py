"""Planetoid citation graphs Cora, CiteSeer, PubMed (Yang et al., ICML 2016), via DGL.

Raw files: ``<data root>/planetoid/ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}``
from the official Planetoid repository. They are read through DGL's
``CitationGraphDataset`` (links staged in the cache, since DGL writes its
processed files beside the raw ones): row-normalised features, both edge
directions, CiteSeer's 15 isolated test nodes padded with zero rows (Kipf's
standard fix). Protocol ``planetoid``: the public split (20 labelled nodes per
class, 500 validation, 1000 test). ``geom-gcn`` (10 fixed 48/32/20 splits) is
provided by :mod:`gkd_bench.datasets.splits`; ``cpf`` reads the CPF ``.npz``
copy of Cora/CiteSeer/PubMed instead (:mod:`gkd_bench.datasets.cpf`, GLNN's
pipeline: largest connected component, raw binary features).
"""
from __future__ import annotations

import warnings
from typing import Optional

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import (describe_loader, cache_root, data_root, ensure_files, files_digest, mask_to_index,
                                    stage_links, stage_lock, validate)
from gkd_bench.registry import DATASETS

SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
URL = "https://github.com/kimiyoung/planetoid/raw/master/data/ind.{name}.{suffix}"
# DGL's folder and file names for its own copy of each dataset (DGL 1.x / 2.x, default DGL_REPO).
DGL_NAMES = {"cora": ("cora_v2", "cora_v2_d697a464"), "citeseer": ("citeseer", "citeseer_d6836239"),
             "pubmed": ("pubmed", "pubmed_35464cad")}


def planetoid_raw(name: str, root=None, cache=None) -> GraphData:
    """Load ``name`` with the public Planetoid split.

    Returns:
        GraphData with ``splits`` train/val/test, metric accuracy.

    Raises:
        DatasetError: missing files (named, with the layout and the source) or
            files that cannot be parsed.
    """
    root = data_root(root)
    rel = [f"planetoid/ind.{name}.{s}" for s in SUFFIXES]
    urls = {r: URL.format(name=name, suffix=s) for r, s in zip(rel, SUFFIXES)}
    paths = ensure_files(name, root, rel, urls,
                         layout="planetoid/ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}",
                         source="Planetoid (Yang et al., 2016), github.com/kimiyoung/planetoid/data")
    version = "planetoid-" + files_digest(paths)
    dgl_name, dgl_folder = DGL_NAMES[name]
    stage = cache_root(cache) / "dgl" / version
    from dgl.data import CitationGraphDataset

    with stage_lock(stage):  # DGL writes its processed graph into the stage: one worker at a time
        stage_links({f"ind.{dgl_name}.{s}": p for s, p in zip(SUFFIXES, paths)}, stage / dgl_folder)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = CitationGraphDataset(name, raw_dir=str(stage), verbose=False)
            g = ds[0]
        except Exception as e:  # noqa: BLE001 - any parse failure is a dataset error
            raise DatasetError(f"dataset {name!r}: cannot parse the Planetoid files in {root / 'planetoid'} "
                               f"({type(e).__name__}: {e}); re-download them") from e
    x = g.ndata.pop("feat").float()
    y = g.ndata.pop("label").long()
    splits = {k: mask_to_index(g.ndata.pop(f"{k}_mask")) for k in ("train", "val", "test")}
    data = GraphData(name=name, graph=g, x=x, y=y, splits=splits, num_classes=int(ds.num_classes),
                     metric="accuracy", version=version, protocol="planetoid")
    return validate(data, str(root / "planetoid" / f"ind.{name}.*"))


FEATURES = ("normalized", "binary")


def with_features(data: GraphData, features: str) -> GraphData:
    """Feature variant of a Planetoid dataset.

    ``normalized``: DGL's row-normalised bag-of-words (Kipf & Welling's
    preprocessing; the default). ``binary``: the raw 0/1 bag-of-words of the
    Planetoid files, recovered exactly as ``x > 0`` (Cora and CiteSeer features
    are binary), which is what GLNN/CPF feed their models; METHODS.md shows
    GLNN-style KD collapses on row-normalised features. The version string
    records the variant.

    Raises:
        ValueError: unknown variant, or ``binary`` for PubMed (TF-IDF, not binary).
    """
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    if features == "normalized":
        return data
    if data.name == "pubmed":
        raise ValueError("pubmed's Planetoid features are TF-IDF values, not binary: use features=normalized")
    return data.replace(x=(data.x > 0).float(), version=data.version + "-binary")


def _loader(name):
    def load(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0, **kw) -> GraphData:
        from gkd_bench.datasets.splits import apply_protocol

        protocol = protocol or "planetoid"
        if protocol == "cpf":
            from gkd_bench.datasets.cpf import load_cpf

            return load_cpf(name, root=root, cache=cache, seed=seed, **kw)
        features = kw.pop("features", "normalized")
        data = with_features(planetoid_raw(name, root, cache), features)
        return apply_protocol(data, protocol, seed, root=root, **kw)

    load.__doc__ = (f"Load ``{name}`` under ``protocol`` planetoid (default; Planetoid files) | geom-gcn "
                    f"(option ``features``: normalized (default) | binary, see :func:`with_features`) | "
                    f"(Planetoid files + geom-gcn split k = seed % 10) | cpf (``cpf/{name}.npz``, GLNN's "
                    f"pipeline, see :mod:`gkd_bench.datasets.cpf`).")
    return describe_loader(load, "planetoid", ("planetoid", "geom-gcn", "cpf"), "accuracy")


for _name in ("cora", "citeseer", "pubmed"):
    DATASETS.register(_name)(_loader(_name))
