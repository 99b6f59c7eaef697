"""``sa_mlp_ind``: SA-MLP for the inductive setting by latent structure embedding approximation
with two-stage distillation (Chen et al., arXiv 2210.09609 v1). METHODS.md "SA-MLP".

**Re-derived** (arXiv v1 states the idea, not these details; each is a setting):

- Stage 1 trains the ``sa_mlp`` student on the observed graph exactly as
  ``sa_mlp_smkd`` does (``gamma=0``, the default here, is plain ``kd``),
  with the usual early stopping; the best-validation weights are restored.
- Stage 2 starts from those weights, freezes everything but the predictor
  ``g`` (2-layer MLP ``F -> hidden -> hidden``, built by the student when
  ``unseen="predictor"``) and trains ``g`` on the observed nodes with
  ``mse_weight * MSE(target, pred) + stage2_kd_weight * T^2 KL(p_t || p_s^g)[kd nodes]``
  where ``p_s^g`` is the student's output with ``g(x_i)`` in place of ``W_A a_i``
  for every node. ``target="post"`` (the default, METHODS.md's wording): ``pred = ReLU(g(x_i) + b_A)``,
  target the stage-1 ``H_A``; ``target="pre"``: ``pred = g(x_i)``, target the stage-1
  ``W_A a_i`` (no dead-ReLU gradients; what the published ``sa-mlp`` suite ran). Targets are
  computed once in eval mode (no dropout). Stage 2 has its own early stopping
  on the validation score of the ``g`` path (validation nodes treated as
  unseen), through the same :func:`gkd_bench.fit.fit` loop, called from
  :meth:`SAMLPInd.after_fit` (the hook ``fit`` calls after restoring stage 1's
  best weights). A single loop with a stage switch inside ``train_step``
  would not work: ``fit`` keeps the best-validation weights, and stage 2
  does not change the validation score of the seen-node path, so the
  restored weights would always be stage 1's with ``g`` untrained.
- At test time, nodes without a row in the student's table (held-out nodes,
  predicted with the full graph) use ``g(x_i)``; their adjacency rows are
  never read, in training or at test time. Training only ever sees the
  observed graph (``GraphData.training_view``), which has no held-out node.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional

import torch
from torch.nn import functional as F

from gkd_bench.methods._distiller import Distiller
from gkd_bench.methods.kd import kd_loss
from gkd_bench.methods.sa_mlp_smkd import SAMLPSMKD
from gkd_bench.registry import DISTILLERS

TARGETS = ("pre", "post")


@DISTILLERS.register("sa_mlp_ind")
class SAMLPInd(SAMLPSMKD):
    """Two-stage distillation into ``sa_mlp(unseen="predictor")`` (module docstring).

    Args:
        lam, T, kl_reduction, kd_nodes, alpha, gamma, mix, pairs: stage 1, as
            for ``sa_mlp_smkd`` (default ``gamma=0``: plain ``kd``).
        stage2_epochs: maximum epochs of stage 2 (0 = the run's ``epochs``).
        stage2_lr: Adam learning rate of stage 2 (0 = the run's ``lr``).
        mse_weight: weight of the regression term.
        stage2_kd_weight: weight of the output KD term of the ``g`` path.
        target: ``pre`` | ``post`` (what ``g`` regresses; see module docstring).

    Attributes:
        stage2: the :class:`gkd_bench.fit.FitResult` of stage 2 after training.

    Raises:
        ValueError: bad settings; in :meth:`setup`, a student that is not
            ``sa_mlp`` with ``unseen="predictor"``.
    """

    def __init__(self, lam: float = 0.5, T: float = 1.0, kl_reduction: str = "batchmean", kd_nodes: str = "all",
                 alpha: float = 1.0, gamma: float = 0.0, mix: str = "structure", pairs: int = 0,
                 stage2_epochs: int = 0, stage2_lr: float = 0.0, mse_weight: float = 1.0,
                 stage2_kd_weight: float = 1.0, target: str = "post"):
        super().__init__(lam, T, kl_reduction, kd_nodes, alpha, gamma, mix, pairs)
        if target not in TARGETS:
            raise ValueError(f"sa_mlp_ind: target must be one of {TARGETS}, got {target!r}")
        if int(stage2_epochs) < 0 or stage2_lr < 0 or mse_weight < 0 or stage2_kd_weight < 0:
            raise ValueError("sa_mlp_ind: stage2_epochs, stage2_lr, mse_weight and stage2_kd_weight must be >= 0")
        if mse_weight == 0 and stage2_kd_weight == 0:
            raise ValueError("sa_mlp_ind: mse_weight and stage2_kd_weight cannot both be 0")
        self.stage2_epochs, self.stage2_lr = int(stage2_epochs), float(stage2_lr)
        self.mse_weight, self.stage2_kd_weight, self.target = float(mse_weight), float(stage2_kd_weight), target
        self.stage2 = None

    def setup(self, data, student, teacher_out) -> None:
        super().setup(data, student, teacher_out)
        if getattr(student, "unseen", None) != "predictor" or getattr(student, "predictor", None) is None:
            raise ValueError("sa_mlp_ind needs an sa_mlp student with unseen='predictor' "
                             f"(got unseen={getattr(student, 'unseen', None)!r})")

    def after_fit(self, student, view, teacher_out, cfg) -> None:
        """Stage 2: train ``g`` from the restored stage-1 weights with the same fit loop."""
        from gkd_bench.fit import fit

        student.eval()
        with torch.no_grad():
            parts = student.encode(view.graph, view.x)
            target = parts["s"] if self.target == "pre" else (parts["s"] + student.struct_bias).relu()
        stage2 = _Stage2(self, target.detach())
        cfg2 = dataclasses.replace(cfg, epochs=self.stage2_epochs or cfg.epochs, lr=self.stage2_lr or cfg.lr)
        # only g is trained: the other parameters leave autograd for the stage (their gradients were
        # discarded anyway), so backward stops at g; same updates, same RNG stream
        frozen = [p for name, p in student.named_parameters() if not name.startswith("predictor.") and p.requires_grad]
        try:
            for p in frozen:
                p.requires_grad_(False)
            with student.treat_all_as_unseen():
                self.stage2 = fit(student, stage2, view, teacher_out, cfg2)
        finally:
            for p in frozen:
                p.requires_grad_(True)


class _Stage2(Distiller):
    """Stage 2 of :class:`SAMLPInd` (not registered): only ``student.predictor`` is updated."""

    def __init__(self, parent: SAMLPInd, target: torch.Tensor):
        super().__init__(parent.kd_nodes)
        self.cfg = (parent.T, parent.kl_reduction, parent.mse_weight, parent.stage2_kd_weight, parent.target)
        self.register_buffer("target", target)

    def train_step(self, batch, student, optimizer, teacher_out) -> Dict[str, float]:
        T, reduction, w_mse, w_kd, target_kind = self.cfg
        student.train()
        optimizer.zero_grad(set_to_none=True)
        out, parts = student.forward_parts(batch.graph, batch.x)  # g(x) for every node (all unseen)
        pred = parts["s"] if target_kind == "pre" else (parts["s"] + student.struct_bias).relu()
        mse = F.mse_loss(pred, self.target)
        kd = kd_loss(out.logits[batch.kd_idx], teacher_out.logits[batch.kd_idx], T, reduction, batch.multilabel)
        loss = w_mse * mse + w_kd * kd
        loss.backward()
        g_params = {id(p) for p in student.predictor.parameters()}
        for p in student.parameters():
            if id(p) not in g_params:
                p.grad = None  # frozen: Adam skips parameters without a gradient (weight decay included)
        optimizer.step()
        return {"loss": float(loss.detach()), "mse": float(mse.detach()), "kd": float(kd.detach())}
