"""Shared fixtures: a tiny synthetic graph, the real data root, an isolated cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gkd_bench.registry import load_all

load_all()  # fill the registries (they are lazy) before parametrized tests read them
from gkd_bench.data import GraphData

DATA_ROOT = os.environ.get("GKD_BENCH_DATA")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test writes processed data and teachers into its own temporary cache."""
    monkeypatch.setenv("GKD_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    torch.set_num_threads(1)


def have_data(*rel: str) -> bool:
    return bool(DATA_ROOT) and all((Path(DATA_ROOT) / r).exists() for r in rel)


def requires_data(*rel: str):
    """Skip unless GKD_BENCH_DATA is set and holds ``rel``."""
    return pytest.mark.skipif(not have_data(*rel), reason=f"needs GKD_BENCH_DATA with {', '.join(rel)}")


def synthetic_graph(n: int = 60, f: int = 12, c: int = 3, seed: int = 0, multilabel: bool = False) -> GraphData:
    """A small random graph with class-correlated features (homophilous), symmetric edges."""
    import dgl

    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    src, dst = [], []
    for i in range(n):
        for j in torch.randint(0, n, (4,), generator=g).tolist():
            if i != j and (y[i] == y[j] or torch.rand(1, generator=g).item() < 0.2):
                src += [i, j]
                dst += [j, i]
    graph = dgl.to_simple(dgl.graph((torch.tensor(src), torch.tensor(dst)), num_nodes=n))
    x = torch.randn(n, f, generator=g) + torch.nn.functional.one_hot(y, f).float() * 2
    labels = torch.nn.functional.one_hot(y, c).float() if multilabel else y
    perm = torch.randperm(n, generator=g)
    splits = {"train": perm[: n // 3].sort().values, "val": perm[n // 3: n // 2].sort().values,
              "test": perm[n // 2:].sort().values}
    return GraphData(name="synthetic", graph=graph, x=x, y=labels, splits=splits, num_classes=c,
                     multilabel=multilabel, metric="micro_f1" if multilabel else "accuracy",
                     version="synthetic-1", protocol="synthetic")


@pytest.fixture
def tiny():
    return synthetic_graph()
