"""``none``: supervised training only; also what trains every teacher."""
from __future__ import annotations

from gkd_bench.methods._distiller import Distiller, task_loss
from gkd_bench.registry import DISTILLERS


@DISTILLERS.register("none")
class Supervised(Distiller):
    """``L = CE(y, z_s)`` on training nodes (BCE with logits for multi-label).

    Shapes: logits ``[N, C]``; labels ``[N]`` or ``[N, C]``. No hyperparameters.
    """

    needs_teacher = False
    minibatch = True

    def __init__(self):
        super().__init__()

    def loss(self, batch, student_out, teacher_out=None):
        ce = task_loss(student_out.logits, batch.y, batch.train_idx, batch.multilabel,
                       batch.task_loss)
        return {"loss": ce, "task": ce}
