"""Time per training epoch of ``alignahead`` as the number of students K grows.

Acceptance 4 of issue 6: on coauthor-cs, K = 1..4, the cost of an epoch
(every student one pass, the alternating schedule) should grow about
linearly in K. An epoch costs K forward+backward passes plus at most
2(K-1) gradient-free peer forward passes (peers are cached until they step;
see :mod:`gkd_bench.methods.alignahead`), so ``ms/epoch / K`` should stay
roughly flat. Evaluation is not timed.

Usage::

    GKD_BENCH_DATA=../shared/data OMP_NUM_THREADS=1 \\
        python benchmarks/alignahead_epoch.py [--dataset coauthor-cs] [--ks 1,2,3,4] \\
        [--epochs 5] [--variant alignahead|alignahead++] [--json out.json]

The student is the ``alignahead`` suite's GAT (read from the suite: 4 layers,
3 hidden of 16 x 3 heads, 3 output heads, residual, no dropout). Prints one row per K: median wall-clock and
process-CPU ms per epoch over ``--epochs`` timed epochs after one warm-up
epoch, CPU ms per student, and the CPU ratio to K = 1 (CPU time, single
thread, is robust to other jobs sharing the machine; wall time is not).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from gkd_bench.fit import TrainConfig, make_batches
from gkd_bench.registry import DATASETS, DISTILLERS, MODELS



def suite_student() -> dict:
    """The GAT student's hyperparameters as the ``alignahead`` suite sets them."""
    from gkd_bench.spec import load_suite

    entry = dict(load_suite("alignahead")["models"]["gat"])
    entry.pop("model", None)
    entry.pop("train", None)
    return entry


STUDENT = suite_student()


def load(name: str):
    """The dataset through the registry (protocol cpf / planetoid, seed 0)."""
    return DATASETS.get(name)(seed=0)


def time_epochs(data, K: int, variant: str, epochs: int):
    """Wall-clock and process CPU seconds of each of ``epochs`` timed epochs (after one warm-up)."""
    torch.manual_seed(0)
    make = lambda: MODELS.get("gat")(in_dim=data.num_features, num_classes=data.num_classes, **STUDENT)  # noqa: E731
    dist = DISTILLERS.get(variant)(num_students=K)
    students = dist.build_students(make(), make)
    dist.setup(data, students, None)
    opts = dist.make_optimizers(students, TrainConfig(lr=0.005, weight_decay=0.0))
    batches = make_batches(data, dist)
    dist.train_epoch(batches, students, opts)  # warm-up
    wall, cpu = [], []
    for _ in range(epochs):
        t, c = time.perf_counter(), time.process_time()
        dist.train_epoch(batches, students, opts)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return wall, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="coauthor-cs")
    ap.add_argument("--ks", default="1,2,3,4")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--variant", default="alignahead", choices=["alignahead", "alignahead++"])
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    data = load(args.dataset)
    print(f"{args.dataset}: {data.num_nodes} nodes, {data.graph.num_edges()} edges, {data.num_features} "
          f"features; {args.variant}; torch threads {torch.get_num_threads()}; GAT {STUDENT}")
    rows, base = [], None
    for K in [int(k) for k in args.ks.split(",")]:
        wall, cpu = time_epochs(data, K, args.variant, args.epochs)
        ms, cpu_ms = 1000 * statistics.median(wall), 1000 * statistics.median(cpu)
        base = base or cpu_ms
        rows.append({"K": K, "ms_per_epoch": ms, "cpu_ms_per_epoch": cpu_ms, "cpu_ms_per_student": cpu_ms / K,
                     "cpu_ratio_to_k1": cpu_ms / base, "min_ms": 1000 * min(wall), "max_ms": 1000 * max(wall)})
        print(f"K={K}  wall {ms:9.1f} ms/epoch (min {1000 * min(wall):.1f})  cpu {cpu_ms:9.1f} ms/epoch  "
              f"{cpu_ms / K:8.1f} cpu ms/student  x{cpu_ms / base:4.2f} cpu vs K=1", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dataset": args.dataset, "variant": args.variant, "student": STUDENT, "rows": rows}, f,
                      indent=1)


if __name__ == "__main__":
    main()
