"""Sparse input dropout: ``InputDropout`` (draws on non-zero features only) vs ``nn.Dropout`` (dense mask).

For each dataset: the input-dropout call alone, and one full-batch GCN and GAT training epoch (the default
suite's models: GCN 64 hidden, dropout 0.8; GAT 8 x 8 heads, dropout 0.6, l1 input norm) with the model's
input dropout swapped between the two modules. Timings alternate (dense, sparse, dense, ...) in one process
so drift hits both; reported: median ms per call / per epoch and the ratio dense / sparse.

Usage: GKD_BENCH_DATA=... OMP_NUM_THREADS=1 python benchmarks/input_dropout.py [--repeats 5]
           [--dataset cora:planetoid --dataset coauthor-cs:cpf ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from tabulate import tabulate
from _epochs import epoch_ms  # benchmarks/_epochs.py

import gkd_bench  # noqa: F401
from gkd_bench.methods._common import InputDropout
from gkd_bench.methods.gat import GAT
from gkd_bench.methods.gcn import GCN
from gkd_bench.registry import DATASETS, load_all

DEFAULT = ["cora:planetoid", "citeseer:planetoid", "amazon-computers:cpf", "coauthor-cs:cpf", "squirrel:geom-gcn"]


class DenseDropout(torch.nn.Dropout):
    """nn.Dropout accepting InputDropout's ``support`` keyword (ignored)."""

    def forward(self, x, support=None):
        return super().forward(x)


def call_ms(module, x) -> float:
    t = time.perf_counter()
    module(x)
    return (time.perf_counter() - t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dataset", action="append", help="NAME:PROTOCOL (repeatable)")
    args = ap.parse_args()
    load_all()
    rows = []
    for item in args.dataset or DEFAULT:
        name, protocol = item.split(":")
        data = DATASETS.get(name)(root=os.environ.get("GKD_BENCH_DATA"), protocol=protocol, seed=0)
        g, x, y, train = data.graph, data.x, data.y, data.splits["train"]
        density = (x != 0).float().mean().item()
        cases = {"dropout call": (lambda drop: call_ms(drop.train(), x), 0.8),
                 "GCN epoch": (None, 0.8), "GAT epoch": (None, 0.6)}
        for case, (fn, p) in cases.items():
            times = {"dense": [], "sparse": []}
            if fn is None:
                torch.manual_seed(0)
                model = (GCN(x.shape[1], data.num_classes, 64, 2, p) if case.startswith("GCN")
                         else GAT(x.shape[1], data.num_classes, 8, 2, 8, 1, p, p, input_norm="l1"))
                opt = torch.optim.Adam(model.parameters(), lr=0.01)
            for r in range(args.repeats + 1):  # the first round warms up (nonzero index, allocator)
                for kind, drop in (("dense", DenseDropout(p)), ("sparse", InputDropout(p))):
                    if fn is None:
                        model.input_dropout = drop
                        ms = epoch_ms(model, g, x, y, train, opt)
                    else:
                        ms = fn(drop)
                    if r:
                        times[kind].append(ms)
            d, s = statistics.median(times["dense"]), statistics.median(times["sparse"])
            rows.append([name, f"{tuple(x.shape)}", f"{density:.4f}", case, f"{d:.1f}", f"{s:.1f}", f"{d / s:.2f}"])
            print(tabulate([rows[-1]], tablefmt="plain"), flush=True)
    print()
    print(tabulate(rows, headers=["dataset", "x", "density", "case", "dense ms", "sparse ms", "dense/sparse"],
                   tablefmt="github"))
    print(f"\ntorch threads: {torch.get_num_threads()}, repeats: {args.repeats} (median)")


if __name__ == "__main__":
    main()
