"""Representation-similarity analysis of G-CRD (Joshi et al., TNNLS 2022, Sec. "Analysis").

How close a student's representation space is to its teacher's, on the
validation nodes (reference: ``chaitjo/efficient-gnns``,
``arxiv_pyg/correlation.py``). Both representations are the last hidden
layer by default (``ModelOutput.hidden[-1]``), rows L2-normalised first, as
in the reference:

- ``cka``: linear CKA (Kornblith et al., ICML 2019) between the two
  ``[n, d]`` matrices: ``||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)``
  with column-centred ``X_c``, ``Y_c`` (equal to the reference's Gram-matrix
  form ``<HKH, HLH> / (||HKH|| ||HLH||)``, computed in feature space so memory
  stays O(n d)).
- ``global_corr``: Pearson correlation between the condensed pairwise
  cosine-distance matrices (``1 - s_i . s_j`` over all pairs i < j).
- ``local_corr``: Pearson correlation between the cosine distances of the
  edges of the graph induced by the nodes (self-loops excluded; the
  reference's ogbn-arxiv graph has none).

Values are in [-1, 1] (CKA in [0, 1]); ``nan`` when undefined (fewer than two
pairs/edges, or a constant distance vector).
"""
from __future__ import annotations

import warnings
from typing import Dict, Optional

import numpy as np
import torch
from torch.nn import functional as F

from gkd_bench.data import ModelOutput


def _normalized(out: ModelOutput, layer: int, idx: torch.Tensor, role: str) -> np.ndarray:
    if not out.hidden:
        raise ValueError(f"the {role} exposes no hidden representation; analysis needs ModelOutput.hidden")
    h = out.hidden[layer].detach()[idx].double()
    return F.normalize(h, p=2, dim=-1).cpu().numpy()


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between ``x`` ``[n, d1]`` and ``y`` ``[n, d2]`` (rows = the same n items).

    Raises:
        ValueError: different row counts.
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"linear_cka: {x.shape[0]} and {y.shape[0]} rows differ")
    xc = x - x.mean(0, keepdims=True)
    yc = y - y.mean(0, keepdims=True)
    hsic = np.linalg.norm(yc.T @ xc) ** 2
    denom = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    return float(hsic / denom) if denom > 0 else float("nan")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import pearsonr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(pearsonr(a, b)[0])


def representation_analysis(teacher_out: ModelOutput, student_out: ModelOutput, graph, idx: torch.Tensor,
                            teacher_layer: int = -1, student_layer: int = -1,
                            max_global_nodes: Optional[int] = 4000, seed: int = 0) -> Dict[str, float]:
    """G-CRD's analysis metrics between teacher and student representations on nodes ``idx``.

    Args:
        teacher_out, student_out: outputs on the same graph (eval mode), with
            ``hidden`` ``[N, d_t]`` / ``[N, d_s]`` entries.
        graph: the DGL graph both ran on (N nodes), for the local correlation.
        idx: int64 node ids (e.g. the validation split).
        teacher_layer, student_layer: which hidden entries (-1 = last).
        max_global_nodes: the global correlation uses n(n-1)/2 pairs; above
            this many nodes a fixed random subset (``seed``) of this size is
            used (``None``: always all). CKA and local correlation use all nodes.
        seed: seed of that subset.

    Returns:
        ``{"cka": float, "global_corr": float, "local_corr": float}``.

    Raises:
        ValueError: a model without hidden representations.
    """
    idx = torch.as_tensor(idx, dtype=torch.long)
    t = _normalized(teacher_out, teacher_layer, idx, "teacher")
    s = _normalized(student_out, student_layer, idx, "student")
    res = {"cka": linear_cka(s, t)}

    sub = np.arange(len(idx))
    if max_global_nodes is not None and len(sub) > max_global_nodes:
        sub = np.sort(np.random.default_rng(seed).choice(len(sub), max_global_nodes, replace=False))
    iu = np.triu_indices(len(sub), k=1)
    ts, ss = t[sub], s[sub]
    res["global_corr"] = _pearson((1.0 - ts @ ts.T)[iu], (1.0 - ss @ ss.T)[iu])

    src, dst = graph.edges()
    local = torch.full((graph.num_nodes(),), -1, dtype=torch.long)
    local[idx] = torch.arange(len(idx))
    a, b = local[src.long()], local[dst.long()]
    keep = (a >= 0) & (b >= 0) & (a != b)
    a, b = a[keep].numpy(), b[keep].numpy()
    res["local_corr"] = _pearson(1.0 - (t[a] * t[b]).sum(-1), 1.0 - (s[a] * s[b]).sum(-1))
    return res


def analysis_columns(teacher_out: Optional[ModelOutput], student, view,
                     batch_size: Optional[int] = None, teacher=None) -> Dict[str, float]:
    """Record columns ``cka``, ``global_corr``, ``local_corr`` for a trained student (Runner.run_one).

    Computed on the validation nodes of the training view ``view`` from the
    teacher's cached eval-mode outputs and the student's eval-mode outputs on
    the same graph, last hidden layer of each. A multi-graph view (PPI) pools
    the nodes of its validation graphs: ``teacher`` and the student run in eval
    mode on each validation graph alone (:func:`gkd_bench.fit.predict_graphs`,
    the way they are evaluated), and the local correlation uses each graph's
    own edges (``dgl.batch`` of the graphs: no edge joins two graphs; the
    global correlation's pairs may). Empty when there is no teacher (or, for a
    multi-graph view, no ``teacher`` model) or either model has no hidden representation.
    ``batch_size``: bounded-memory inference of mini-batch runs (:func:`gkd_bench.fit.predict`).
    """
    if teacher_out is None or not teacher_out.hidden:
        return {}
    from gkd_bench.fit import predict, predict_graphs

    if getattr(view, "graphs", None):
        if teacher is None:
            return {}
        import dgl

        parts = view.graphs["val"]
        student_out = predict_graphs(student, parts)
        teacher_val = predict_graphs(teacher, parts)
        if not student_out.hidden or not teacher_val.hidden:
            return {}
        graph = dgl.batch([p.graph for p in parts])
        return representation_analysis(teacher_val, student_out, graph, torch.arange(graph.num_nodes()))
    student_out = predict(student, view.graph, view.x, batch_size)
    if not student_out.hidden:
        return {}
    return representation_analysis(teacher_out, student_out, view.graph, view.splits["val"])
