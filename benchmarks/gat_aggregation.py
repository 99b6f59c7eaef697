"""GAT's weighted sum: ``weighted_sum``'s torch CSR path vs DGL's ``update_all(u_mul_e, sum)``.

For each dataset and GAT configuration: one full-batch training epoch (forward, backward, Adam step)
and one eval forward, switching ``model.fast_aggregation`` between rounds. Timings alternate (dgl,
fast, dgl, ...) in one process so drift hits both; reported: median ms and the ratio dgl / fast. Each
round also checks that both paths give the same eval logits bit for bit (``equal`` column).

Configurations: ``alignahead`` (the alignahead suite's student: 4 layers, 16 x 3 heads, 3 output
heads, residual, no dropout) and ``default`` (the default suite's GAT: 2 layers, 8 x 8 heads, dropout
0.6, l1 input norm).

Usage: GKD_BENCH_DATA=... OMP_NUM_THREADS=1 python benchmarks/gat_aggregation.py [--repeats 5]
           [--dataset cora:planetoid --dataset coauthor-cs:cpf ...] [--config alignahead ...]
"""
from __future__ import annotations

import argparse
import os
import statistics

import torch
from tabulate import tabulate
from _epochs import epoch_ms, eval_ms  # benchmarks/_epochs.py

import gkd_bench  # noqa: F401
from gkd_bench.registry import DATASETS, MODELS, load_all

DEFAULT = ["cora:planetoid", "coauthor-cs:cpf", "amazon-photo:cpf"]
CONFIGS = {
    "alignahead": dict(hidden=16, heads=3, out_heads=3, num_layers=4, dropout=0.0, attn_dropout=0.0,
                       residual=True, act="elu"),
    "default": dict(hidden=8, heads=8, num_layers=2, dropout=0.6, attn_dropout=0.6, input_norm="l1"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dataset", action="append", help="NAME:PROTOCOL (repeatable)")
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS), help="GAT configurations (default: all)")
    args = ap.parse_args()
    load_all()
    rows = []
    for item in args.dataset or DEFAULT:
        name, protocol = item.split(":")
        data = DATASETS.get(name)(root=os.environ.get("GKD_BENCH_DATA"), protocol=protocol, seed=0)
        g, x, y, train = data.graph, data.x, data.y, data.splits["train"]
        for config in args.config or sorted(CONFIGS):
            torch.manual_seed(0)
            model = MODELS.get("gat")(x.shape[1], data.num_classes, **CONFIGS[config])
            opt = torch.optim.Adam(model.parameters(), lr=0.005)
            equal = True
            for case, fn in (("train epoch", epoch_ms), ("eval forward", eval_ms)):
                times = {"dgl": [], "fast": []}
                for r in range(args.repeats + 1):  # the first round warms up (CSR structures, allocator)
                    logits = {}
                    for kind in ("dgl", "fast"):
                        model.fast_aggregation = kind == "fast"
                        ms = fn(model, g, x, y, train, opt)
                        if r:
                            times[kind].append(ms)
                        if case == "eval forward":
                            with torch.no_grad():
                                logits[kind] = model(g, x).logits
                    if logits:
                        equal = equal and torch.equal(logits["dgl"], logits["fast"])
                d, f = statistics.median(times["dgl"]), statistics.median(times["fast"])
                rows.append([name, f"{g.num_edges():,}", f"{config} {case}", f"{d:.1f}", f"{f:.1f}", f"{d / f:.2f}",
                             "" if case == "train epoch" else ("yes" if equal else "NO")])
                print(tabulate([rows[-1]], tablefmt="plain"), flush=True)
    print()
    print(tabulate(rows, headers=["dataset", "edges", "case", "dgl ms", "fast ms", "dgl/fast", "equal"],
                   tablefmt="github"))
    print(f"\ntorch threads: {torch.get_num_threads()}, repeats: {args.repeats} (median)")


if __name__ == "__main__":
    main()
