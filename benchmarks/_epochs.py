"""Wall-clock of one full-batch training epoch and one eval forward, shared by the benchmark scripts."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def epoch_ms(model, g, x, y, train, opt) -> float:
    """One training epoch in ms: forward on the whole graph, cross-entropy on ``train`` nodes, backward,
    optimiser step."""
    t = time.perf_counter()
    model.train()
    loss = F.cross_entropy(model(g, x).logits[train], y[train])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return (time.perf_counter() - t) * 1000


def eval_ms(model, g, x, *_) -> float:
    """One eval-mode forward without gradients, in ms."""
    t = time.perf_counter()
    model.eval()
    with torch.no_grad():
        model(g, x)
    return (time.perf_counter() - t) * 1000
