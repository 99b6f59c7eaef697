"""Online@10 inference latency of GNN teachers vs the MLP student (issue 7, acceptance 3).

On ``coauthor-cs`` and ``amazon-computers`` (GLNN's CPF pipeline, seed 0),
measures with :mod:`gkd_bench.timing` (``torch.utils.benchmark``, median and
p90) the end-to-end latency of predicting B = 10 random test nodes from the
full graph and feature matrix:

- ``sage``: GraphSAGE teacher (2 x 128, mean), full 2-hop in-neighbourhood
  extracted with ``dgl.khop_in_subgraph``;
- ``sage-sampled``: the same with GLNN's fan-out 5,5 (``sample_neighbors``);
- ``gat``: GAT teacher (2 layers, 8 heads x 8), full 2-hop neighbourhood;
- ``mlp``: the MLP student (2 x 128), gathers 10 feature rows.

All four are timed back to back in this one process on the same nodes;
ratios are :func:`gkd_bench.timing.speedup` (teacher / MLP). Weights are
random: latency does not depend on them. The acceptance target is
``sage / mlp >= 20`` with full-neighbourhood fetching; the script exits 1
when a dataset misses it.

Usage::

    GKD_BENCH_DATA=../shared/data OMP_NUM_THREADS=1 \\
        python benchmarks/latency.py [--datasets coauthor-cs amazon-computers] [--batch 10] \\
        [--min-run-time 1.0] [--json out.json]

If the ``coauthor-cs`` / ``amazon-computers`` loaders are not available, the
script reads ``$GKD_BENCH_DATA/gnn-benchmark/*.npz`` directly (symmetrised,
no self-loops, all nodes, every node a test node).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

import gkd_bench  # noqa: F401  (fills the registries)
from gkd_bench.data import GraphData
from gkd_bench.registry import DATASETS, MODELS
from gkd_bench.timing import measure_scenario, online_nodes, speedup

NPZ = {"coauthor-cs": "ms_academic_cs", "amazon-computers": "amazon_electronics_computers"}
TARGET = 20.0


def load_npz(name: str) -> GraphData:
    """Fallback loader: the gnn-benchmark npz read with scipy (symmetrised, self-loops removed)."""
    import dgl
    import numpy as np
    import scipy.sparse as sp

    path = Path(os.environ.get("GKD_BENCH_DATA", "")) / "gnn-benchmark" / f"{NPZ[name]}.npz"
    z = np.load(path, allow_pickle=True)
    adj = sp.csr_matrix((z["adj_data"], z["adj_indices"], z["adj_indptr"]), shape=tuple(z["adj_shape"]))
    adj = ((adj + adj.T) > 0).astype(np.float32).tocoo()
    keep = adj.row != adj.col
    g = dgl.graph((torch.from_numpy(adj.row[keep]).long(), torch.from_numpy(adj.col[keep]).long()),
                  num_nodes=adj.shape[0])
    if "attr_data" in z:
        x = sp.csr_matrix((z["attr_data"], z["attr_indices"], z["attr_indptr"]), shape=tuple(z["attr_shape"]))
        x = torch.from_numpy(x.toarray()).float()
    else:
        x = torch.from_numpy(z["attr_matrix"]).float()
    y = torch.from_numpy(z["labels"]).long()
    n = g.num_nodes()
    return GraphData(name=name, graph=g, x=x, y=y, splits={"test": torch.arange(n)},
                     num_classes=int(y.max()) + 1, version="npz")


def load(name: str) -> GraphData:
    try:
        return DATASETS.get(name)(protocol="cpf", seed=0)
    except Exception as e:  # noqa: BLE001 - fall back to the raw file
        print(f"[{name}] registry loader unavailable ({type(e).__name__}: {e}); reading the npz directly",
              file=sys.stderr)
        return load_npz(name)


def models(data: GraphData) -> dict:
    torch.manual_seed(0)
    kw = dict(in_dim=data.num_features, num_classes=data.num_classes)
    return {"sage": (MODELS.get("sage")(hidden=128, num_layers=2, **kw), False),
            "sage-sampled": (MODELS.get("sage")(hidden=128, num_layers=2, fan_out=[5, 5], **kw), True),
            "gat": (MODELS.get("gat")(hidden=8, heads=8, num_layers=2, **kw), False),
            "mlp": (MODELS.get("mlp")(hidden=128, num_layers=2, **kw), False)}


def run(name: str, batch: int, min_run_time: float) -> dict:
    import dgl

    data = load(name)
    nodes = online_nodes(data, batch, 0)
    sub, _ = dgl.khop_in_subgraph(data.graph, torch.unique(nodes), 2)
    res = {"dataset": name, "nodes": data.num_nodes, "edges": data.graph.num_edges(),
           "features": data.num_features, "batch": batch, "khop2_nodes": sub.num_nodes(),
           "khop2_edges": sub.num_edges(), "threads": torch.get_num_threads()}
    timings = {}
    for label, (model, sampled) in models(data).items():
        model.eval()
        m = measure_scenario(model, data.graph, data.x, nodes, sampled, min_run_time, memory=True)
        timings[label] = m
        res[f"{label}_e2e_ms"] = m["e2e"]["median_ms"]
        res[f"{label}_e2e_p90_ms"] = m["e2e"]["p90_ms"]
        res[f"{label}_model_ms"] = m["model"]["median_ms"]
        res[f"{label}_mem_mb"] = m["mem_mb"]
    for label in ("sage", "sage-sampled", "gat"):
        res[f"ratio_{label}_vs_mlp"] = speedup(timings[label]["e2e"], timings["mlp"]["e2e"])
    res["meets_target"] = res["ratio_sage_vs_mlp"] >= TARGET
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["coauthor-cs", "amazon-computers"])
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--min-run-time", type=float, default=1.0, help="seconds per blocked_autorange")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    results = [run(d, args.batch, args.min_run_time) for d in args.datasets]
    b = args.batch
    for r in results:
        print(f"\n{r['dataset']}: {r['nodes']} nodes, {r['edges']} directed edges, {r['features']} features; "
              f"online@{b}: 2-hop neighbourhood {r['khop2_nodes']} nodes / {r['khop2_edges']} edges; "
              f"{r['threads']} thread(s)")
        print(f"  {'model':<13} {'end-to-end median':>18} {'p90':>10} {'model-only':>11} {'peak mem':>9}")
        for label in ("sage", "sage-sampled", "gat", "mlp"):
            print(f"  {label:<13} {r[label + '_e2e_ms']:>15.3f} ms {r[label + '_e2e_p90_ms']:>7.3f} ms "
                  f"{r[label + '_model_ms']:>8.3f} ms {r[label + '_mem_mb']:>6.1f} MB")
        print(f"  ratios (teacher / mlp, end to end): sage {r['ratio_sage_vs_mlp']:.1f}x, "
              f"sage fan-out 5,5 {r['ratio_sage-sampled_vs_mlp']:.1f}x, gat {r['ratio_gat_vs_mlp']:.1f}x  "
              f"-> target sage >= {TARGET:.0f}x: {'PASS' if r['meets_target'] else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["meets_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
