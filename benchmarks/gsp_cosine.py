"""Cosine GSP loss: the two M x M kernel matrices vs the d x d Gram products (``cosine_gram_mse``).

Forward + backward of ``MSE(K_s, K_t)`` for M sampled nodes with d = 256 projections (the
``gcrd-available`` suite's GSP: M = min(N, 4096); cora 2708, chameleon 2277, actor and larger 4096),
timed alternately in one process (median of ``--repeats``), and the two values side by side.

Usage: OMP_NUM_THREADS=1 python benchmarks/gsp_cosine.py [--m 2708 --m 4096] [--dim 256] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from tabulate import tabulate
from torch.nn import functional as F

from gkd_bench.methods._kernels import matrix_kernel
from gkd_bench.methods.gsp import cosine_gram_mse


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, action="append", default=None)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    rows = []
    for m in args.m or [2708, 4096]:
        torch.manual_seed(0)
        hs = torch.randn(m, args.dim, requires_grad=True)
        ht = torch.randn(m, args.dim, requires_grad=True)
        paths = {"kernel matrices": lambda: F.mse_loss(matrix_kernel(hs, "cosine"), matrix_kernel(ht, "cosine")),
                 "gram products": lambda: cosine_gram_mse(hs, ht)}
        times = {k: [] for k in paths}
        values = {}
        for _ in range(args.repeats):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                loss = fn()
                loss.backward()
                times[name].append((time.perf_counter() - t0) * 1e3)
                values[name] = float(loss.detach())
        dense, gram = (statistics.median(times[k]) for k in paths)
        rows.append([m, args.dim, f"{dense:.0f}", f"{gram:.0f}", f"{dense / gram:.1f}x",
                     f"{values['kernel matrices']:.9f}", f"{values['gram products']:.9f}"])
    print(tabulate(rows, headers=["M", "d", "matrices ms", "gram ms", "speedup", "loss (matrices)",
                                  "loss (gram)"]))


if __name__ == "__main__":
    main()
