"""Time per training epoch and peak memory of ``gcrd`` with M = 16384 on coauthor-cs (issue 4, acceptance 4).

One epoch = one full-batch training step of the student (forward, loss,
backward, Adam step), as ``fit`` does; validation is not timed. Setting: the
``gcrd-available`` suite's pair, GAT teacher (8 heads x 8) -> GCN student
(2 x 16), coauthor-cs under the cpf protocol (seed 0), every node a KD node,
so G-CRD samples M = min(N, 16384) = 16384 anchors per step and scores
M x M pairs through projection heads of size p = 256.

Each variant runs in its own subprocess so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

- ``none``: the student trained alone (baseline: data, models, one epoch);
- ``gcrd``: the student trained with ``gcrd`` (chunked scores, ``--chunk``
  rows at a time; default 1024);
- ``gcrd-unchunked`` (only with ``--unchunked``): ``chunk_size=0``, the full
  M x M matrix through ``F.cross_entropy`` (several GB).

Extra memory of G-CRD = peak(gcrd) - peak(none). The teacher's weights are
random (timing and memory do not depend on them), so nothing is trained
before the timed epochs.

Usage::

    GKD_BENCH_DATA=../shared/data OMP_NUM_THREADS=1 \\
        python benchmarks/gcrd_epoch.py [--epochs 5] [--chunk 1024] [--samples 16384] [--unchunked] \\
        [--json out.json]

If the ``coauthor-cs`` loader cannot be used, the script reads
``$GKD_BENCH_DATA/gnn-benchmark/ms_academic_cs.npz`` directly (symmetrised,
self-loops removed, all nodes; a random 20/30-per-class split).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

GAT = dict(hidden=8, heads=8, num_layers=2, dropout=0.6, attn_dropout=0.6)
GCN = dict(hidden=16, num_layers=2, dropout=0.5)


def load_coauthor_cs():
    """coauthor-cs through the registry (cpf, seed 0); falls back to reading the npz directly."""
    import gkd_bench  # noqa: F401
    from gkd_bench.registry import DATASETS

    try:
        return DATASETS.get("coauthor-cs")(seed=0), "registry coauthor-cs (cpf, seed 0)"
    except Exception as e:  # noqa: BLE001 - fall back to the raw file
        reason = f"{type(e).__name__}: {e}"
    import dgl
    import numpy as np
    import scipy.sparse as sp

    from gkd_bench.data import GraphData

    path = os.path.join(os.environ.get("GKD_BENCH_DATA", "."), "gnn-benchmark", "ms_academic_cs.npz")
    z = np.load(path)
    n = int(z["adj_shape"][0])
    a = sp.csr_matrix((z["adj_data"], z["adj_indices"], z["adj_indptr"]), shape=(n, n))
    a = ((a + a.T) > 0).astype(np.float32).tocoo()
    keep = a.row != a.col
    g = dgl.graph((torch.from_numpy(a.row[keep]).long(), torch.from_numpy(a.col[keep]).long()), num_nodes=n)
    x = torch.from_numpy(sp.csr_matrix((z["attr_data"], z["attr_indices"], z["attr_indptr"]),
                                       shape=tuple(z["attr_shape"])).toarray().astype(np.float32))
    y = torch.from_numpy(z["labels"].astype(np.int64))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    c = int(y.max()) + 1
    splits = {"train": torch.cat([perm[y[perm] == k][:20] for k in range(c)]),
              "val": torch.cat([perm[y[perm] == k][20:50] for k in range(c)])}
    splits["test"] = perm[~torch.isin(perm, torch.cat([splits["train"], splits["val"]]))]
    return GraphData("coauthor-cs", g, x, y, splits, c), f"raw npz {path} (registry failed: {reason})"


def worker(variant: str, epochs: int, chunk: int, samples: int) -> dict:
    """Time ``epochs`` training epochs of one variant after one warm-up epoch; report its peak RSS."""
    from gkd_bench.fit import TrainConfig, make_batch, predict
    from gkd_bench.registry import DISTILLERS, MODELS

    data, source = load_coauthor_cs()
    torch.manual_seed(0)
    teacher = MODELS.get("gat")(in_dim=data.num_features, num_classes=data.num_classes, **GAT)
    t_out = predict(teacher, data.graph, data.x).detach()
    student = MODELS.get("gcn")(in_dim=data.num_features, num_classes=data.num_classes, **GCN)
    if variant == "none":
        dist = DISTILLERS.get("none")()
        t_out = None
    else:
        dist = DISTILLERS.get("gcrd")(max_samples=samples, chunk_size=0 if variant == "gcrd-unchunked" else chunk)
    dist.setup(data, student, t_out)
    cfg = TrainConfig(lr=0.01, weight_decay=5e-4)
    params = list(student.parameters()) + [p for p in dist.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = make_batch(data, dist)
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    terms = dist.train_step(batch, student, opt, t_out)  # warm-up
    wall, cpu = [], []
    for _ in range(epochs):
        t, c = time.perf_counter(), time.process_time()
        terms = dist.train_step(batch, student, opt, t_out)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"variant": variant, "source": source, "nodes": data.num_nodes, "edges": data.graph.num_edges(),
            "features": data.num_features, "kd_nodes": len(batch.kd_idx),
            "M": min(len(batch.kd_idx), samples) if variant != "none" else 0,
            "chunk": chunk if variant == "gcrd" else 0, "epochs": epochs, "threads": torch.get_num_threads(),
            "s_per_epoch": statistics.median(wall), "cpu_s_per_epoch": statistics.median(cpu),
            "min_s": min(wall), "max_s": max(wall),
            "peak_rss_before_training_mb": rss_before_mb,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "loss_terms": terms}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--samples", type=int, default=16384)
    ap.add_argument("--unchunked", action="store_true", help="also run chunk_size=0 (needs several GB)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.chunk, args.samples)))
        return
    variants = ["none", "gcrd"] + (["gcrd-unchunked"] if args.unchunked else [])
    rows = []
    for v in variants:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", v, "--epochs", str(args.epochs),
               "--chunk", str(args.chunk), "--samples", str(args.samples)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{v:15s} {r['s_per_epoch']:8.3f} s/epoch (cpu {r['cpu_s_per_epoch']:.3f}, min {r['min_s']:.3f}, "
              f"max {r['max_s']:.3f})  peak RSS {r['peak_rss_mb']:8.0f} MB (before training "
              f"{r['peak_rss_before_training_mb']:.0f} MB)  M={r['M']} chunk={r['chunk']}", flush=True)
    base = rows[0]
    print(f"data: {base['source']}; {base['nodes']} nodes, {base['edges']} edges, {base['features']} features; "
          f"threads {base['threads']}")
    for r in rows[1:]:
        r["extra_peak_rss_mb"] = r["peak_rss_mb"] - base["peak_rss_mb"]
        r["extra_s_per_epoch"] = r["s_per_epoch"] - base["s_per_epoch"]
        print(f"{r['variant']}: +{r['extra_s_per_epoch']:.3f} s/epoch and +{r['extra_peak_rss_mb']:.0f} MB peak "
              f"RSS over `none`")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
