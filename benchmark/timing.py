"""Inference latency with ``torch.utils.benchmark`` (DESIGN.md "Inference latency").

``model.eval()``, ``torch.inference_mode()``, a warm-up call, then
``Timer.blocked_autorange``; median and p90 over the measured blocks in
milliseconds; CUDA synchronised by the Timer when on GPU.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch.utils import benchmark


def time_callable(fn: Callable[[], object], min_run_time: float = 0.2) -> Dict[str, float]:
    """Median and p90 of ``fn()`` in ms (``blocked_autorange`` after one warm-up call)."""
    with torch.inference_mode():
        fn()
        m = benchmark.Timer(stmt="fn()", globals={"fn": fn},
                            num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time)
    times = torch.tensor(m.times) * 1e3
    return {"median_ms": float(times.median()), "p90_ms": float(torch.quantile(times, 0.9)),
            "repeats": int(m.number_per_run * len(m.times))}


def full_graph_latency(model: torch.nn.Module, graph, x: torch.Tensor, min_run_time: float = 0.2) -> Dict[str, float]:
    """Latency of one full-graph forward pass (all nodes) of ``model`` in eval mode."""
    model.eval()
    return time_callable(lambda: model(graph, x), min_run_time)
