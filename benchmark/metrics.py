"""Evaluation metrics (values in %), chosen per dataset by ``GraphData.metric``.

accuracy: argmax over classes. micro_f1: multi-label, pooled over all nodes
and labels, threshold logits > 0 (scikit-learn ``f1_score(average="micro")``).
roc_auc: binary tasks, score = softmax probability of class 1 (scikit-learn).
"""
from __future__ import annotations

import torch

METRICS = ("accuracy", "micro_f1", "roc_auc")


def score(metric: str, logits: torch.Tensor, y: torch.Tensor) -> float:
    """Score ``logits`` ``[n, C]`` against ``y`` (``[n]`` or ``[n, C]``); returns a percentage.

    Raises:
        ValueError: unknown metric.
    """
    if len(y) == 0:
        return float("nan")
    logits = logits.detach().float().cpu()
    y = y.detach().cpu()
    if metric == "accuracy":
        return 100.0 * float((logits.argmax(-1) == y).float().mean())
    if metric == "micro_f1":
        from sklearn.metrics import f1_score

        return 100.0 * float(f1_score(y.numpy().astype(int), (logits > 0).numpy().astype(int),
                                      average="micro", zero_division=0))
    if metric == "roc_auc":
        from sklearn.metrics import roc_auc_score

        prob = torch.softmax(logits, -1)[:, 1] if logits.shape[-1] == 2 else torch.sigmoid(logits[:, 0])
        if len(torch.unique(y)) < 2:
            return float("nan")
        return 100.0 * float(roc_auc_score(y.numpy(), prob.numpy()))
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
