"""Harness overhead: gkd-bench's ``fit`` vs a bare DGL training loop, same GCN on Cora, one process.

Both loops do the same work per epoch: one full-batch training step (Adam,
cross-entropy on the train nodes) and one eval-mode forward pass scored on the
validation nodes (what DGL's GCN example does). ``fit`` additionally tracks
the best validation score/loss, copies the best weights and logs loss terms.
Runs alternate (bare, fit, bare, fit, ...) so drift hits both; the report is
the median time per epoch of each and their ratio.

Usage: GKD_BENCH_DATA=... python benchmarks/fit_overhead.py [--epochs 200] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import gkd_bench  # noqa: F401
from gkd_bench.fit import TrainConfig, fit
from gkd_bench.methods.gcn import GCN
from gkd_bench.methods.none import Supervised
from gkd_bench.registry import DATASETS


def bare_loop(model, g, x, y, train, val, epochs, lr, wd):
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    for _ in range(epochs):
        model.train()
        logits = model(g, x).logits
        loss = F.cross_entropy(logits[train], y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(g, x).logits[val].argmax(1) == y[val]).float().mean().item()
    return acc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    data = DATASETS.get("cora")(protocol="planetoid")
    cfg = TrainConfig(epochs=args.epochs, lr=0.01, weight_decay=5e-4, patience=10 ** 9)
    bare, harness = [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        m = GCN(data.num_features, data.num_classes, hidden=64, dropout=0.5)
        t = time.perf_counter()
        bare_loop(m, data.graph, data.x, data.y, data.splits["train"], data.splits["val"], args.epochs, 0.01, 5e-4)
        bare.append((time.perf_counter() - t) / args.epochs * 1e3)
        torch.manual_seed(r)
        m = GCN(data.num_features, data.num_classes, hidden=64, dropout=0.5)
        t = time.perf_counter()
        fit(m, Supervised(), data, None, cfg)
        harness.append((time.perf_counter() - t) / args.epochs * 1e3)
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"threads={torch.get_num_threads()} epochs={args.epochs} repeats={args.repeats}")
    print(f"bare DGL loop : {b:.3f} ms/epoch (runs: {', '.join(f'{v:.2f}' for v in bare)})")
    print(f"gkd-bench fit : {h:.3f} ms/epoch (runs: {', '.join(f'{v:.2f}' for v in harness)})")
    print(f"overhead ratio fit/bare = {h / b:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
