"""Sparse first layer of GCN, GAT, SAGE, MLP and SA-MLP (``sparse_input_matmul``) vs the dense path.

For each dataset: one full-batch training epoch (forward, backward, Adam step) and one eval forward of
the default suite's models (GCN 64 hidden, dropout 0.8; GAT 8 x 8 heads, dropout 0.6, l1 input norm;
SAGE 128 hidden, mean aggregator; SAGE-gcn: GLNN's teacher, aggregator gcn; MLP 2 x 128, dropout
0.6; SA-MLP hidden 128, dropout 0.5, whose feature encoder W_X x is the sparse product; SA-MLP-LSEA:
the same with unseen="predictor" in sa_mlp_ind's stage 2, every node unseen and only g trainable, where
g's first layer is the sparse product too),
switching ``model.sparse_first_layer`` between epochs. Timings alternate (dense, sparse, dense, ...) in
one process so drift hits both; reported: median ms and the ratio dense / sparse. Inputs denser than
``SPARSE_MATMUL_MAX_DENSITY`` (amazon-computers, 35%) take the dense path either way (ratio ~1).

Usage: GKD_BENCH_DATA=... OMP_NUM_THREADS=1 python benchmarks/sparse_first_layer.py [--repeats 5]
           [--dataset cora:planetoid --dataset coauthor-cs:cpf ...] [--arch GCN --arch MLP ...]
"""
from __future__ import annotations

import argparse
import os
import statistics

import torch
from tabulate import tabulate
from _epochs import epoch_ms, eval_ms  # benchmarks/_epochs.py

import gkd_bench  # noqa: F401
from gkd_bench.methods._common import SPARSE_MATMUL_MAX_DENSITY
from gkd_bench.methods.gat import GAT
from gkd_bench.methods.gcn import GCN
from gkd_bench.methods.mlp import MLP
from gkd_bench.methods.sa_mlp import SAMLP
from gkd_bench.methods.sage import SAGE
from gkd_bench.registry import DATASETS, load_all

DEFAULT = ["cora:planetoid", "citeseer:planetoid", "coauthor-cs:cpf", "amazon-computers:cpf"]
ARCHS = ("GCN", "GAT", "SAGE", "SAGE-gcn", "MLP", "SA-MLP", "SA-MLP-LSEA")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dataset", action="append", help="NAME:PROTOCOL (repeatable)")
    ap.add_argument("--arch", action="append", choices=ARCHS, help="models to time (default: all)")
    args = ap.parse_args()
    load_all()
    rows = []
    for item in args.dataset or DEFAULT:
        name, protocol = item.split(":")
        data = DATASETS.get(name)(root=os.environ.get("GKD_BENCH_DATA"), protocol=protocol, seed=0)
        g, x, y, train = data.graph, data.x, data.y, data.splits["train"]
        density = (x != 0).float().mean().item()
        for arch in args.arch or ARCHS:
            torch.manual_seed(0)
            model = {"GCN": lambda: GCN(x.shape[1], data.num_classes, 64, 2, 0.8),
                     "GAT": lambda: GAT(x.shape[1], data.num_classes, 8, 2, 8, 1, 0.6, 0.6, input_norm="l1"),
                     "SAGE": lambda: SAGE(x.shape[1], data.num_classes, 128, 2, 0.0),
                     "SAGE-gcn": lambda: SAGE(x.shape[1], data.num_classes, 128, 2, 0.0, aggregator="gcn"),
                     "MLP": lambda: MLP(x.shape[1], data.num_classes, 128, 2, 0.6),
                     "SA-MLP": lambda: SAMLP(x.shape[1], data.num_classes, 128, 0.5),
                     "SA-MLP-LSEA": lambda: SAMLP(x.shape[1], data.num_classes, 128, 0.5, unseen="predictor"),
                     }[arch]()
            opt = torch.optim.Adam(model.parameters(), lr=0.01)
            if arch == "SA-MLP-LSEA":  # stage 2 of sa_mlp_ind: g alone trains, every node unseen
                with torch.no_grad():
                    model(g, x)  # binds the graph
                for pname, p in model.named_parameters():
                    p.requires_grad_(pname.startswith("predictor."))
                model.all_unseen = True  # what treat_all_as_unseen() sets for the stage
            for case, fn in (("train epoch", epoch_ms), ("eval forward", eval_ms)):
                times = {"dense": [], "sparse": []}
                for r in range(args.repeats + 1):  # the first round warms up (non-zero index, allocator)
                    for kind in ("dense", "sparse"):
                        model.sparse_first_layer = kind == "sparse"
                        ms = fn(model, g, x, y, train, opt)
                        if r:
                            times[kind].append(ms)
                d, s = statistics.median(times["dense"]), statistics.median(times["sparse"])
                rows.append([name, f"{tuple(x.shape)}", f"{density:.4f}", f"{arch} {case}", f"{d:.1f}",
                             f"{s:.1f}", f"{d / s:.2f}"])
                print(tabulate([rows[-1]], tablefmt="plain"), flush=True)
    print()
    print(tabulate(rows, headers=["dataset", "x", "density", "case", "dense ms", "sparse ms", "dense/sparse"],
                   tablefmt="github"))
    print(f"\ntorch threads: {torch.get_num_threads()}, repeats: {args.repeats} (median), "
          f"SPARSE_MATMUL_MAX_DENSITY={SPARSE_MATMUL_MAX_DENSITY}")


if __name__ == "__main__":
    main()
