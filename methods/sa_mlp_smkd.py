"""``sa_mlp_smkd``: structure-mixing knowledge distillation into an SA-MLP student
(Chen et al., arXiv 2210.09609; TMLR 2024). METHODS.md "SA-MLP".

**Re-derived** (mixup form; neither the paper text nor released code fixes
these details, so every one of them is a setting): each training step, besides
``kd`` on real nodes, draw node pairs (i, j) uniformly with replacement from
the KD nodes and ``lam_ij ~ Beta(alpha, alpha)`` per pair; mix the adjacency
rows ``a~ = lam a_i + (1 - lam) a_j`` (``mix="structure"``: node i's features
are kept) or rows and features (``mix="both"``: also ``x~ = lam x_i + (1-lam) x_j``);
mix the teacher targets ``p~ = lam p_t(i) + (1 - lam) p_t(j)`` with
``p_t = softmax(z_t / T)``; add ``gamma * T^2 * KL(p~ || softmax(z_s(x~, a~) / T))``.

Because both encoders are linear before their bias, the mixed input is
encoded exactly as the mix of the encoded rows:
``W_A a~ = lam W_A a_i + (1 - lam) W_A a_j`` (likewise ``W_X x~``), so a step
costs one full forward plus one decoder pass over the pairs; no mixed
adjacency row is ever materialised.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch.nn import functional as F

from gkd_bench.methods.kd import KD
from gkd_bench.registry import DISTILLERS

MIX_MODES = ("structure", "both")


def mix_targets(p_i: torch.Tensor, p_j: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Mixed soft targets ``lam * p_i + (1 - lam) * p_j``.

    Args:
        p_i, p_j: teacher probabilities ``[m, C]`` (rows sum to one; or
            per-label probabilities for multi-label).
        lam: mixing weights ``[m]`` in [0, 1].

    Returns:
        ``[m, C]``; each row sums to one when ``p_i``/``p_j`` rows do, and every
        entry lies between the two teachers' entries.
    """
    lam = lam.reshape(-1, 1).to(p_i.dtype)
    return lam * p_i + (1 - lam) * p_j


def mixed_kd_loss(z_mix: torch.Tensor, p_mix: torch.Tensor, T: float = 1.0, reduction: str = "batchmean",
                  multilabel: bool = False) -> torch.Tensor:
    """``T^2 * KL(p_mix || softmax(z_mix / T))`` with probability targets.

    ``reduction``: ``batchmean`` (sum / m) or ``elementwise`` (sum / (m*C)).
    Multi-label: ``T^2 * BCE(z_mix / T, p_mix)`` (mean over m*C).
    """
    p_mix = p_mix.detach()
    if multilabel:
        return T * T * F.binary_cross_entropy_with_logits(z_mix / T, p_mix)
    kl = F.kl_div(F.log_softmax(z_mix / T, dim=-1), p_mix, reduction="sum")
    denom = z_mix.shape[0] if reduction == "batchmean" else z_mix.numel()
    return T * T * kl / max(denom, 1)


@DISTILLERS.register("sa_mlp_smkd")
class SAMLPSMKD(KD):
    """``L = (1-lam) CE[train] + lam T^2 KL(p_t || p_s)[kd nodes] + gamma * T^2 KL(p~ || p_s(x~, a~))[pairs]``.

    The first two terms are :class:`~gkd_bench.methods.kd.KD`'s; the third is
    the structure-mixing term of the module docstring (**re-derived**).

    Args:
        lam, T, kl_reduction, kd_nodes: as for ``kd``.
        alpha: parameter of the symmetric Beta(alpha, alpha) that draws each
            pair's mixing weight (1.0 = uniform).
        gamma: weight of the mixing term (0 = plain ``kd``).
        mix: ``structure`` (mix adjacency rows only) | ``both`` (rows and features).
        pairs: node pairs per step; 0 = as many as there are KD nodes.

    Raises:
        ValueError: bad settings, or (in :meth:`setup`) a student that is not ``sa_mlp``.
    """

    minibatch = False  # the mixing term pairs nodes across the whole graph
    multigraph = False
    multigraph_reason = ("its sa_mlp student has one structure-encoder row per node id of a single "
                         "training graph, and the mixing term pairs nodes across that graph")

    def __init__(self, lam: float = 0.5, T: float = 1.0, kl_reduction: str = "batchmean", kd_nodes: str = "all",
                 alpha: float = 1.0, gamma: float = 1.0, mix: str = "structure", pairs: int = 0):
        super().__init__(lam, T, kl_reduction, kd_nodes)
        if alpha <= 0:
            raise ValueError(f"sa_mlp_smkd: alpha (Beta parameter) must be positive, got {alpha}")
        if gamma < 0:
            raise ValueError(f"sa_mlp_smkd: gamma must be >= 0, got {gamma}")
        if mix not in MIX_MODES:
            raise ValueError(f"sa_mlp_smkd: mix must be one of {MIX_MODES}, got {mix!r}")
        if int(pairs) < 0:
            raise ValueError(f"sa_mlp_smkd: pairs must be >= 0, got {pairs}")
        self.alpha, self.gamma, self.mix, self.pairs = float(alpha), float(gamma), mix, int(pairs)

    def setup(self, data, student, teacher_out) -> None:
        if not (hasattr(student, "forward_parts") and hasattr(student, "decode")):
            raise ValueError(f"{type(self).__name__} needs an sa_mlp student (structure encoder + decoders); "
                             f"got {type(student).__name__}")

    def mixing_term(self, batch, parts: Dict[str, torch.Tensor], student,
                    teacher_logits: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Draw pairs and weights, decode the mixed rows, return ``{"mix": term}``.

        ``parts`` holds the pre-activations ``s`` (``W_A a``) and ``xw``
        (``W_X x``) of every node of the batch graph, ``[N, hidden]``.
        """
        pool = batch.kd_idx
        m = self.pairs or len(pool)
        i = pool[torch.randint(len(pool), (m,))]
        j = pool[torch.randint(len(pool), (m,))]
        lam = torch.distributions.Beta(torch.tensor(self.alpha), torch.tensor(self.alpha)).sample((m,))
        w = lam.reshape(-1, 1)
        s = w * parts["s"][i] + (1 - w) * parts["s"][j]
        xw = parts["xw"][i] if self.mix == "structure" else w * parts["xw"][i] + (1 - w) * parts["xw"][j]
        z_mix = student.decode(s, xw)[0].logits
        zt = teacher_logits.detach() / self.T
        prob = torch.sigmoid if batch.multilabel else (lambda z: torch.softmax(z, dim=-1))
        p_mix = mix_targets(prob(zt[i]), prob(zt[j]), lam)
        return {"mix": mixed_kd_loss(z_mix, p_mix, self.T, self.kl_reduction, batch.multilabel)}

    def train_step(self, batch, student, optimizer, teacher_out) -> Dict[str, float]:
        student.train()
        self.train()
        optimizer.zero_grad(set_to_none=True)
        out, parts = student.forward_parts(batch.graph, batch.x)
        if batch.teacher is not None:
            teacher_out = batch.teacher
        terms = self.loss(batch, out, teacher_out)
        if self.gamma > 0:
            terms.update(self.mixing_term(batch, parts, student, teacher_out.logits))
            terms["loss"] = terms["loss"] + self.gamma * terms["mix"]
        terms["loss"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in terms.items()}
