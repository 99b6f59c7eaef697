"""``gkd-bench datasets``: the statistics people check first, per registered dataset.

Per dataset: nodes, undirected edges (self-loops excluded), features,
classes, metric, default split protocol, edge homophily, adjusted homophily
and whether its files are under the data root.

Homophily is computed on the loaded graph without self-loops:

- edge homophily (Zhu et al., NeurIPS 2020): the fraction of edges whose
  endpoints share a label, ``h_edge = |{(u,v) in E : y_u = y_v}| / |E|``
  (``dgl.edge_homophily``);
- adjusted homophily (Platonov et al., "Characterizing graph datasets for
  node classification: homophily-heterophily dichotomy and beyond",
  NeurIPS 2023, their definition of adjusted homophily; the formula as
  stated in DGL 2.x's ``dgl.adjusted_homophily`` docs):
  ``h_adj = (h_edge - sum_k p_k^2) / (1 - sum_k p_k^2)`` with
  ``p_k = D_k / (2|E|)``, ``D_k`` the sum of the degrees of the nodes of class
  k. ``dgl.adjusted_homophily`` (DGL >= 2.0) is used when present; DGL 1.1.3
  lacks it, so :func:`adjusted_homophily` implements the formula, with
  degrees = in-degrees of the directed edge list (= degrees for an
  undirected graph stored in both directions, as DGL 2.x does).

Both are undefined for multi-label targets (PPI) and reported as NaN.
"""
from __future__ import annotations

import math
from typing import Iterable, List

import click
import torch

from gkd_bench.data import DatasetError, GraphData, MissingDataError
from gkd_bench.registry import DATASETS

COLUMNS = ["dataset", "nodes", "edges", "features", "classes", "metric", "protocol", "edge_homophily",
           "adjusted_homophily", "files"]


def _simple(graph):
    import dgl

    return dgl.remove_self_loop(graph)


def edge_homophily(graph, y: torch.Tensor) -> float:
    """Fraction of (directed) edges joining same-label nodes, self-loops excluded; NaN without edges.

    Args:
        graph: DGL graph with N nodes. y: int labels ``[N]``.
    """
    import dgl

    g = _simple(graph)
    if g.num_edges() == 0:
        return float("nan")
    return float(dgl.edge_homophily(g, y))


def adjusted_homophily(graph, y: torch.Tensor) -> float:
    """Adjusted homophily (Platonov et al. 2023, module docstring), self-loops excluded.

    Args:
        graph: DGL graph with N nodes (an undirected graph stored in both directions).
        y: int labels ``[N]`` in ``[0, C)``.

    Returns:
        ``(h_edge - sum_k p_k^2) / (1 - sum_k p_k^2)``, ``p_k = D_k / |E_directed|``;
        NaN without edges or when ``sum_k p_k^2 = 1`` (one class).
    """
    import dgl

    g = _simple(graph)
    if g.num_edges() == 0:
        return float("nan")
    if hasattr(dgl, "adjusted_homophily"):  # DGL >= 2.0
        return float(dgl.adjusted_homophily(g, y))
    deg = g.in_degrees().double()
    d_k = torch.zeros(int(y.max()) + 1, dtype=torch.float64).index_add_(0, y.long(), deg)
    p2 = float(((d_k / g.num_edges()) ** 2).sum())
    if p2 >= 1.0:
        return float("nan")
    return (edge_homophily(g, y) - p2) / (1.0 - p2)


def undirected_edges(graph) -> int:
    """Number of distinct unordered node pairs {u, v}, u != v, joined by an edge (either direction)."""
    src, dst = graph.edges()
    keep = src != dst
    lo, hi = torch.minimum(src[keep], dst[keep]), torch.maximum(src[keep], dst[keep])
    return int(torch.unique(lo.long() * graph.num_nodes() + hi.long()).numel())


def _parts(data: GraphData) -> List[GraphData]:
    if data.graphs:
        return [p for parts in data.graphs.values() for p in parts]
    return [data]


def dataset_stats(name: str, root=None, cache=None) -> dict:
    """Statistics of dataset ``name`` under its default protocol (split 0 / seed 0).

    Multi-graph datasets (PPI) sum nodes and edges over all graphs.

    Returns:
        dict with the keys of ``COLUMNS``: counts are ints (None when the
        files are absent), homophily floats (NaN when undefined), ``files``
        ``"yes"``, ``"no"`` (missing; ``error`` holds the message) or
        ``"bad"`` (present but unreadable; ``error`` holds the problem).

    Raises:
        UnknownNameError: for a name no loader has.
    """
    loader = DATASETS.get(name)
    row = {c: None for c in COLUMNS}
    row.update(dataset=name, metric=getattr(loader, "metric", None),
               protocol=getattr(loader, "default_protocol", None), edge_homophily=float("nan"),
               adjusted_homophily=float("nan"), error=None)
    try:
        data = loader(root=root, cache=cache, seed=0)
    except MissingDataError as e:
        row.update(files="no", error=str(e))
        return row
    except DatasetError as e:
        row.update(files="bad", error=str(e))
        return row
    parts = _parts(data)
    row.update(files="yes", metric=data.metric, protocol=data.protocol,
               nodes=sum(p.num_nodes for p in parts), edges=sum(undirected_edges(p.graph) for p in parts),
               features=data.num_features, classes=data.num_classes)
    if not data.multilabel:
        row.update(edge_homophily=edge_homophily(data.graph, data.y),
                   adjusted_homophily=adjusted_homophily(data.graph, data.y))
    return row


def stats_table(names: Iterable[str], root=None, cache=None, progress: bool = False):
    """A pandas DataFrame with one :func:`dataset_stats` row per name (columns ``COLUMNS``)."""
    import pandas as pd

    rows = []
    for n in names:
        if progress:
            click.echo(f"loading {n} ...", err=True)
        rows.append(dataset_stats(n, root, cache))
    return pd.DataFrame(rows, columns=COLUMNS + ["error"], dtype=object)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3f}"
    return str(v)


@click.command("datasets")
@click.option("--dataset", "names", multiple=True, help="only these datasets (repeat or comma-separate)")
@click.option("--data-dir", envvar="GKD_BENCH_DATA", type=click.Path(file_okay=False), default=None,
              help="dataset root (default $GKD_BENCH_DATA or ~/.cache/gkd-bench/data)")
@click.option("--cache-dir", envvar="GKD_BENCH_CACHE", type=click.Path(file_okay=False), default=None)
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown", show_default=True)
@click.option("--errors/--no-errors", default=True, show_default=True,
              help="list why files are missing or unreadable below the table")
def datasets_cmd(names, data_dir, cache_dir, fmt, errors):
    """Print nodes, edges, features, classes, metric, protocol, homophily and file status per dataset."""
    chosen: List[str] = []
    for v in names:
        chosen += [p for p in v.split(",") if p]
    for n in chosen:
        DATASETS.get(n)
    df = stats_table(chosen or DATASETS.names(), data_dir, cache_dir, progress=True)
    if fmt == "csv":
        click.echo(df.drop(columns=["error"]).to_csv(index=False), nl=False)
    else:
        shown = df.drop(columns=["error"]).map(_fmt)
        click.echo(shown.to_markdown(index=False, disable_numparse=True))
    if errors and fmt == "markdown":
        for _, r in df[df["files"] != "yes"].iterrows():
            lines = (r["error"] or "").splitlines()
            if r["files"] == "no":  # MissingDataError: a header, then one indented line per missing file
                paths = [ln.strip() for ln in lines if ln.startswith("  ")]
                more = f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""
                click.echo(f"{r['dataset']}: missing {paths[0] if paths else ''}{more}")
            else:
                click.echo(f"{r['dataset']}: unreadable: {' '.join(ln.strip() for ln in lines)}")
