"""LSP training step: the frozen teacher's local structure memoised vs recomputed every step.

One step = one full-batch training step of the student with ``lsp`` (forward, CE + beta * LSP,
backward, Adam step), as ``fit`` does. Setting: the ``gcrd-available`` suite's pair, GAT teacher
(8 heads x 8, random weights: timing does not depend on them) -> GCN student (2 x 16), on a dataset
of the data root (default squirrel, split 0, every node a KD node). The two variants alternate in one
process (median of ``--steps``); "recomputed" clears the memo before every step, which is what every
step did before the memo (commit 129acb3). Both students start from the same weights; their
parameters after the timed steps are compared with ``torch.equal``.

Usage: GKD_BENCH_DATA=../shared/data OMP_NUM_THREADS=1 \\
    python benchmarks/lsp_teacher_memo.py [--dataset squirrel --dataset chameleon] [--steps 10]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from tabulate import tabulate

GAT = dict(hidden=8, heads=8, num_layers=2, dropout=0.6, attn_dropout=0.6)
GCN = dict(hidden=16, num_layers=2, dropout=0.5)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", default=None)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    import gkd_bench  # noqa: F401
    from gkd_bench.fit import make_batch, predict
    from gkd_bench.registry import DATASETS, DISTILLERS, MODELS

    rows = []
    for name in args.dataset or ["squirrel"]:
        data = DATASETS.get(name)(seed=0)
        torch.manual_seed(0)
        teacher = MODELS.get("gat")(in_dim=data.num_features, num_classes=data.num_classes, **GAT)
        t_out = predict(teacher, data.graph, data.x).detach()
        runs = {}
        for variant in ("memoised", "recomputed"):
            torch.manual_seed(1)
            student = MODELS.get("gcn")(in_dim=data.num_features, num_classes=data.num_classes, **GCN)
            dist = DISTILLERS.get("lsp")()
            dist.setup(data, student, t_out)
            opt = torch.optim.Adam(student.parameters(), lr=0.01, weight_decay=5e-4)
            runs[variant] = (student, dist, opt, make_batch(data, dist), [])
        for step in range(args.steps + 1):  # step 0: warm-up (and the memo's first fill), not timed
            for variant, (student, dist, opt, batch, times) in runs.items():
                torch.manual_seed(100 + step)  # the same dropout masks for both
                if variant == "recomputed":
                    dist._teacher_key = None
                t = time.perf_counter()
                dist.train_step(batch, student, opt, t_out)
                if step:
                    times.append((time.perf_counter() - t) * 1e3)
        (s_m, *_, t_m), (s_r, *_, t_r) = runs.values()
        same = all(torch.equal(a, b) for a, b in zip(s_m.parameters(), s_r.parameters()))
        e = runs["memoised"][3].graph.num_edges()
        rows.append([name, data.num_nodes, e, f"{statistics.median(t_r):.0f}", f"{statistics.median(t_m):.0f}",
                     f"{statistics.median(t_r) / statistics.median(t_m):.2f}x", same])
    print(tabulate(rows, headers=["dataset", "nodes", "edges", "recomputed ms/step", "memoised ms/step",
                                  "speedup", "parameters equal"]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.steps} timed steps")


if __name__ == "__main__":
    main()
