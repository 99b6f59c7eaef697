"""Heterophilous graphs of Geom-GCN (Pei et al., ICLR 2020) with their 10 fixed splits, via DGL.

``chameleon``, ``squirrel`` (Wikipedia networks, Rozemberczki et al.),
``actor`` (the ``film`` co-occurrence graph of Tang et al.), ``cornell``,
``texas``, ``wisconsin`` (WebKB). Raw files under the data root, as in the
Geom-GCN repository (github.com/graphdml-uiuc-jlu/geom-gcn):

- ``geom-gcn/new_data/<stem>/out1_node_feature_label.txt`` (node id, features, label)
- ``geom-gcn/new_data/<stem>/out1_graph_edges.txt`` (edge list)
- ``geom-gcn/splits/<stem>_split_0.6_0.2_<k>.npz``, k = 0..9 (48/32/20 % masks)

with ``<stem>`` = the dataset name, ``film`` for ``actor``. They are read by
DGL's ``ChameleonDataset``, ``SquirrelDataset``, ``ActorDataset``,
``CornellDataset``, ``TexasDataset``, ``WisconsinDataset``: links to the
files are staged in the cache in the flat folder DGL expects
(``<name>_<hash of DGL's URL>``, split files renamed ``film_* -> actor_*``).
DGL re-parses the text files on every call (seconds for squirrel), so the
parsed arrays are kept in the cache (``<cache>/dgl/<version>/<name>-processed.pt``).

Protocol ``geom-gcn`` (default): split ``k = seed % 10``, the
masks of the split files as DGL reads them. The graph is made undirected
and loop-free (``dgl.to_bidirected`` after removing self-loops), as in
Platonov et al.'s copies of these graphs (their ``chameleon.npz`` has the
same 31,371 undirected edges); ``directed=True`` keeps DGL's directed edge
list (self-loops included).

Protocol ``platonov`` reads Platonov et al.'s copy ``platonov/<name>.npz``
instead (same graph, undirected and loop-free; the same 10 split masks as
the Geom-GCN files, checked in the tests); see
:mod:`gkd_bench.datasets.platonov`.

A raw file that is byte-for-byte another dataset's official file is refused
(``OFFICIAL_FILES``): the WebKB sets share sizes and feature width, so a
mixed-up copy would otherwise load silently with the wrong labels.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Optional

from gkd_bench.data import DatasetError, GraphData
from gkd_bench.datasets._io import (describe_loader, cache_root, data_root, ensure_files, files_digest, mask_to_index,
                                    processed_cache, quiet, stage_links, validate)
from gkd_bench.registry import DATASETS

STEMS = {"chameleon": "chameleon", "squirrel": "squirrel", "actor": "film", "cornell": "cornell",
         "texas": "texas", "wisconsin": "wisconsin"}
DGL_CLASSES = {"chameleon": "ChameleonDataset", "squirrel": "SquirrelDataset", "actor": "ActorDataset",
               "cornell": "CornellDataset", "texas": "TexasDataset", "wisconsin": "WisconsinDataset"}
RAW_URL = "https://raw.githubusercontent.com/graphdml-uiuc-jlu/geom-gcn/master/{path}"
SOURCE = "Geom-GCN (Pei et al., ICLR 2020), github.com/graphdml-uiuc-jlu/geom-gcn (new_data/, splits/)"
TEXT_FILES = ("out1_node_feature_label.txt", "out1_graph_edges.txt")
# (stem, file) -> (bytes, sha256) of the official Geom-GCN files (commit f1fc0d14), for _check_not_a_copy.
OFFICIAL_FILES = {
    ("chameleon", "out1_graph_edges.txt"): (332448, "45ac593de9207470090230c8fd76beeb2f60b5371a9be088e8bf31e7f0619a4b"),
    ("chameleon", "out1_node_feature_label.txt"):
        (10602901, "5fd29736ff31b43a1bfcf305bc8b4cffc3103fb0957667976b2ea0f78aedcf5b"),
    ("cornell", "out1_graph_edges.txt"): (2001, "c4522a00cc40873c8a04a3a07c49e24a48a507eb284ac9c9f2d3e0590351bbb7"),
    ("film", "out1_graph_edges.txt"): (323820, "997cdce67ea9c29257d3ffe796328391931901cf823830affa453178b60e2c3e"),
    ("film", "out1_node_feature_label.txt"):
        (207718, "1d5cdd094f8b91e770f6decfca85b35cf42f75d1efb51055fd6af16e11820ff8"),
    ("squirrel", "out1_graph_edges.txt"): (2115917, "453d8e96754d68e2ab0a7ebb56f93506b59531d95abaec7a2b46fe1eae7c39cd"),
    ("squirrel", "out1_node_feature_label.txt"):
        (21765097, "ac15ab755983717a187992eef8ce2017aae33ea444fd655b07e4662690dcc03a"),
    ("texas", "out1_graph_edges.txt"): (2172, "0fe85183243a78cbee9b85a684f8240963d04d1020d10e9cd2b8cfb25e33b476"),
    ("texas", "out1_node_feature_label.txt"):
        (624308, "cf5a3ca346cdd1210b8342e22517fcbbdae658065b7a3145f59350e50e6236a3"),
    ("wisconsin", "out1_graph_edges.txt"): (3606, "ebd213511c88fce1eda450c2f920600c4b8cbb38f02384856bcc47c6ec1807ae"),
    ("wisconsin", "out1_node_feature_label.txt"):
        (856324, "a32b0aa38d42f0d36841e8a8cb646d197f0ff33a182ac75a2b4476aeed3c7e4b"),
}


def dgl_folder(name: str) -> str:
    """The raw folder name DGL's built-in dataset ``name`` looks for: ``<name>_<sha1(url)[:8]>``.

    Uses DGL's own URL helper, so it follows ``DGL_REPO`` like DGL does.
    """
    from dgl.data.utils import _get_dgl_url

    url = _get_dgl_url(f"dataset/{name}.zip")
    return f"{name}_{hashlib.sha1(url.encode()).hexdigest()[:8]}"


def geom_gcn_files(name: str, root=None):
    """Paths of the 2 text files and the 10 split files of ``name`` (downloaded if missing and allowed).

    Raises:
        MissingDataError: naming every missing file, the layout and the source.
    """
    root = data_root(root)
    stem = STEMS[name]
    rel = [f"geom-gcn/new_data/{stem}/{f}" for f in TEXT_FILES]
    rel += [f"geom-gcn/splits/{stem}_split_0.6_0.2_{k}.npz" for k in range(10)]
    urls = {r: RAW_URL.format(path=r.split("/", 1)[1]) for r in rel}
    paths = ensure_files(name, root, rel, urls,
                         layout="geom-gcn/new_data/<stem>/{out1_node_feature_label.txt,out1_graph_edges.txt} and "
                                "geom-gcn/splits/<stem>_split_0.6_0.2_<k>.npz, k = 0..9 (stem film for actor)",
                         source=SOURCE)
    return paths


def _check_not_a_copy(name: str, paths) -> None:
    """Refuse a raw file that is byte-identical to the official file of *another* dataset.

    The WebKB sets all have 183-251 nodes and 1703 features, so a mixed-up
    file loads without complaint. Sizes and sha256 of the official files
    (Geom-GCN commit f1fc0d1) are listed in ``OFFICIAL_FILES``; a file whose
    size matches another dataset's official file is hashed and compared.
    """
    for path in paths:
        size = path.stat().st_size
        for (stem, fname), (osize, osha) in OFFICIAL_FILES.items():
            if stem == STEMS[name] or fname != path.name or size != osize:
                continue
            if hashlib.sha256(path.read_bytes()).hexdigest() == osha:
                raise DatasetError(
                    f"{path}: this is the official {stem}/{fname} of Geom-GCN (same sha256), not {name}'s; "
                    f"replace it with {RAW_URL.format(path=f'new_data/{STEMS[name]}/{fname}')}")


def geom_gcn_raw(name: str, root=None, cache=None):
    """Read ``name`` through DGL's class (once; then from the processed cache).

    Returns:
        ``(arrays, version)``: ``arrays`` holds ``src``, ``dst`` (DGL's directed
        edge list), ``x`` float32 ``[N, F]``, ``y`` int64 ``[N]`` and the masks
        ``train``/``val``/``test`` bool ``[N, 10]``.

    Raises:
        MissingDataError: files absent. DatasetError: files DGL cannot parse
            (named), or a file that is another dataset's official file.
    """
    root = data_root(root)
    paths = geom_gcn_files(name, root)
    _check_not_a_copy(name, paths[:2])
    version = "geom-gcn-" + files_digest(paths)
    folder = cache_root(cache) / "dgl" / version / dgl_folder(name)

    def build():
        links = {f: p for f, p in zip(TEXT_FILES, paths[:2])}
        links.update({f"{name}_split_0.6_0.2_{k}.npz": p for k, p in enumerate(paths[2:])})
        stage_links(links, folder)
        import dgl.data

        cls = getattr(dgl.data, DGL_CLASSES[name])
        where = root / "geom-gcn" / "new_data" / STEMS[name]
        try:
            with warnings.catch_warnings(), quiet():
                warnings.simplefilter("ignore")
                g = cls(raw_dir=str(folder.parent), verbose=False)[0]
        except Exception as e:  # noqa: BLE001 - any parse failure is a dataset error naming the files
            raise DatasetError(f"dataset {name!r}: cannot parse the Geom-GCN files in {where} or its split "
                               f"files ({type(e).__name__}: {e}); re-download them") from e
        src, dst = g.edges()
        return {"src": src.long(), "dst": dst.long(), "x": g.ndata["feat"].float(), "y": g.ndata["label"].long(),
                **{k: g.ndata[f"{k}_mask"].bool() for k in ("train", "val", "test")}}

    return processed_cache(folder.parent / f"{name}-processed.pt", build), version


def _loader(name: str):
    def load(*, root=None, cache=None, protocol: Optional[str] = None, seed: int = 0,
             directed: bool = False) -> GraphData:
        import dgl

        protocol = protocol or "geom-gcn"
        if protocol == "platonov":
            from gkd_bench.datasets.platonov import platonov_data

            if directed:
                raise ValueError(f"dataset {name!r}: directed=True needs protocol geom-gcn")

            return platonov_data(name, root, seed)
        if protocol != "geom-gcn":
            raise ValueError(f"protocol {protocol!r} is not available for dataset {name!r}; "
                             f"it has: geom-gcn, platonov")
        arr, version = geom_gcn_raw(name, root, cache)
        k = seed % 10
        x, y = arr["x"], arr["y"]
        splits = {key: mask_to_index(arr[key][:, k]) for key in ("train", "val", "test")}
        graph = dgl.graph((arr["src"], arr["dst"]), num_nodes=len(y))
        if not directed:
            graph = dgl.to_bidirected(dgl.remove_self_loop(graph))
        data = GraphData(name=name, graph=graph, x=x, y=y, splits=splits, num_classes=int(y.max()) + 1,
                         metric="accuracy", version=version + ("-directed" if directed else ""),
                         protocol="geom-gcn", split_index=k)
        return validate(data, str(data_root(root) / "geom-gcn" / "new_data" / STEMS[name]))

    load.__doc__ = (f"Load ``{name}`` (Geom-GCN files, DGL's ``{DGL_CLASSES[name]}``) with geom-gcn split "
                    f"``seed % 10``; undirected without self-loops unless ``directed``.")
    return describe_loader(load, "geom-gcn", ("geom-gcn", "platonov"), "accuracy")


for _name in STEMS:
    DATASETS.register(_name)(_loader(_name))
