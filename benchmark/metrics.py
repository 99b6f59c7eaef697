"""Evaluation metrics (values in %), chosen per dataset by ``GraphData.metric``.

accuracy: argmax over classes. micro_f1: multi-label, pooled over all nodes
and labels, threshold logits > 0 (scikit-learn ``f1_score(average="micro")``).
roc_auc: binary tasks, scikit-learn's ``roc_auc_score`` of the class-1 log-odds ``z_1 - z_0`` (one logit:
``z_0``), a monotone function of the softmax probability of class 1 that does not round to 1.0 in
float32 for confident nodes (logit gaps above ~17), which would tie them and lower the AUC.
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
        return 100.0 * int((logits.argmax(-1) == y).sum()) / len(y)  # exact count, no float32 mean
    if metric == "micro_f1":
        from sklearn.metrics import f1_score

        return 100.0 * float(f1_score(y.numpy().astype(int), (logits > 0).numpy().astype(int),
                                      average="micro", zero_division=0))
    if metric == "roc_auc":
        from sklearn.metrics import roc_auc_score

        logits = logits.double()
        odds = logits[:, 1] - logits[:, 0] if logits.shape[-1] == 2 else logits[:, 0]
        if len(torch.unique(y)) < 2:
            return float("nan")
        return 100.0 * float(roc_auc_score(y.numpy(), odds.numpy()))
    raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
