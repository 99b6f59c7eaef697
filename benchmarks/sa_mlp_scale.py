"""Scale benchmark of the ``sa_mlp`` student (issue 5, acceptance 4).

One full-batch training epoch (forward, backward, Adam step) of ``sa_mlp`` on
a generated graph with 2,000,000 nodes and 50,000,000 random undirected edges
(stored one direction in the DGL graph; the student's adjacency is the
symmetrised one, ~10^8 non-zeros), 128 random features, 10 classes, trained
with ``kd`` (lam = 1, soft labels of random teacher logits on every node).
The structure encoder reads neighbour-id lists (EmbeddingBag, mode 'sum'),
never a dense N x N matrix; the issue's budget is 24 GB.

Prints one JSON line: sizes, seconds for graph generation, adjacency (CSR)
construction, the first epoch (CSR built inside it) and a second epoch, and
memory in GB: resident set after data generation, peak resident set
(``VmHWM``). Run it alone, once (it needs ~12 GB; it refuses to start with
less than ``--need-gb`` available and stops itself past ``--max-rss-gb``)::

    OMP_NUM_THREADS=1 python benchmarks/sa_mlp_scale.py
    python benchmarks/sa_mlp_scale.py --nodes 20000 --edges 500000 --need-gb 1   # quick check
"""
from __future__ import annotations

import argparse
import json
import time

from _memory import mem_available_gb, status_gb, watchdog  # benchmarks/_memory.py


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2_000_000)
    ap.add_argument("--edges", type=int, default=50_000_000, help="random undirected edges")
    ap.add_argument("--features", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed (the first builds the CSR)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-rss-gb", type=float, default=20.0,
                    help="stop (exit 3) if the resident set passes this (shared machines)")
    ap.add_argument("--need-gb", type=float, default=16.0,
                    help="refuse to start unless this much memory is available (MemAvailable)")
    args = ap.parse_args(argv)
    avail = mem_available_gb()
    if avail < args.need_gb:
        raise SystemExit(f"sa_mlp_scale: only {avail:.1f} GB available, --need-gb is {args.need_gb}; not started")
    watchdog(args.max_rss_gb, "sa_mlp_scale")
    try:  # if the machine runs out of memory anyway, the kernel kills this process first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass

    import dgl
    import torch

    from gkd_bench.data import ModelOutput
    from gkd_bench.methods._distiller import Batch
    from gkd_bench.methods.kd import KD
    from gkd_bench.methods.sa_mlp import SAMLP, adjacency_csr

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    n = args.nodes
    src = torch.randint(n, (args.edges,), dtype=torch.int64)
    dst = torch.randint(n, (args.edges,), dtype=torch.int64)
    graph = dgl.graph((src, dst), num_nodes=n)
    del src, dst
    x = torch.randn(n, args.features)
    y = torch.randint(args.classes, (n,))
    teacher = ModelOutput(torch.randn(n, args.classes))
    gen_s = time.perf_counter() - t0
    rss_data = status_gb("VmRSS")

    model = SAMLP(args.features, args.classes, hidden=args.hidden).bind(n)
    distiller = KD(lam=1.0, T=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    idx = torch.arange(n)
    batch = Batch(graph, x, y, idx, idx, False)

    t0 = time.perf_counter()
    indptr, indices = adjacency_csr(graph)
    csr_s = time.perf_counter() - t0
    nnz = int(indptr[-1])
    epochs = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        terms = distiller.train_step(batch, model, opt, teacher)
        epochs.append(time.perf_counter() - t0)
    res = {
        "nodes": n, "undirected_edges_generated": args.edges, "adjacency_nnz": nnz,
        "features": args.features, "hidden": args.hidden, "classes": args.classes,
        "student_params": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "generate_s": round(gen_s, 2), "csr_build_s": round(csr_s, 2),
        "epoch_s": [round(e, 2) for e in epochs], "loss": round(terms["loss"], 4),
        "rss_after_data_gb": round(rss_data, 2), "peak_rss_gb": round(status_gb("VmHWM"), 2),
    }
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
