"""Transductive and inductive settings (GLNN's "production" setting; DESIGN.md).

Inductive: a fraction of the test nodes (default 0.2) is held out together
with every edge touching them. Teacher and student train on the observed
graph (:meth:`GraphData.training_view`); at test time the held-out nodes are
predicted with the full graph. The held-out set depends only on
(dataset, split, seed), so every method sees the same one.
"""
from __future__ import annotations

import numpy as np
import torch

from gkd_bench.data import GraphData

SETTINGS = ("transductive", "inductive")


def make_inductive(data: GraphData, seed: int, fraction: float = 0.2) -> GraphData:
    """Hold out ``round(fraction * |test|)`` test nodes, drawn with ``RandomState(seed)``.

    Returns:
        GraphData with ``setting="inductive"``, ``observed`` (node ids training
        may see) and splits ``test_tran`` (observed test nodes) and ``test_ind``
        (held-out test nodes); ``test`` stays the union.

    Raises:
        ValueError: if ``fraction`` is not in (0, 1), or for multi-graph data
            (PPI), whose test graphs are already unseen in training.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"inductive fraction must be in (0, 1), got {fraction}")
    if data.graphs:
        raise ValueError(f"dataset {data.name!r} has separate train/val/test graphs, so it is inductive by "
                         f"construction; the node-level inductive setting does not apply (use transductive)")
    test = data.splits["test"].numpy()
    rng = np.random.RandomState(seed)
    perm = rng.permutation(len(test))
    n_ind = int(round(fraction * len(test)))
    test_ind = torch.from_numpy(np.sort(test[perm[:n_ind]])).long()
    test_tran = torch.from_numpy(np.sort(test[perm[n_ind:]])).long()
    keep = torch.ones(data.num_nodes, dtype=torch.bool)
    keep[test_ind] = False
    observed = keep.nonzero(as_tuple=True)[0]
    splits = {**data.splits, "test_tran": test_tran, "test_ind": test_ind}
    return data.replace(setting="inductive", observed=observed, splits=splits)


def apply_setting(data: GraphData, setting: str, seed: int, fraction: float = 0.2) -> GraphData:
    """``transductive`` -> ``data``; ``inductive`` -> :func:`make_inductive`; else ValueError."""
    if setting == "transductive":
        return data
    if setting == "inductive":
        return make_inductive(data, seed, fraction)
    raise ValueError(f"unknown setting {setting!r}; choose one of {', '.join(SETTINGS)}")
