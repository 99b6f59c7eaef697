"""Every registered model and distiller on a tiny synthetic graph (DESIGN.md "Testing").

Parametrized over the registries, so a newly registered entry is tested
without editing this file: finite loss, gradients reach the student (and never
the frozen teacher), and a run through the Runner ends with status ok.
"""
import math

import pytest
import torch

from gkd_bench.data import ModelOutput
from gkd_bench.datasets.settings import apply_setting
from gkd_bench.fit import make_batch
from gkd_bench.registry import DISTILLERS, MODELS
from gkd_bench.runner import Runner, build_model
from gkd_bench.spec import expand
from tests.conftest import synthetic_graph

# Students a distiller is specific to: label -> suite model entry (default: a small GCN).
SPECIFIC_STUDENT = {"sa_mlp_smkd": ("sa_mlp", {"model": "sa_mlp"}),
                    "sa_mlp_ind": ("sa_mlp_pred", {"model": "sa_mlp", "unseen": "predictor"})}


def student_for(name: str):
    return SPECIFIC_STUDENT.get(name, ("gcn", {"model": "gcn", "hidden": 8}))


@pytest.mark.parametrize("name", MODELS.names())
def test_model_forward_shapes_and_gradients(name):
    data = synthetic_graph()
    model = build_model({"model": name, "hparams": {}}, data)
    out = model(data.graph, data.x)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (data.num_nodes, data.num_classes)
    assert isinstance(out.hidden, tuple)
    for h in out.hidden:
        assert h.shape[0] == data.num_nodes and h.dim() == 2
    out.logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and sum(g is not None and bool(g.abs().sum() > 0) for g in grads) >= len(grads) // 2


class SyntheticRunner(Runner):
    def __init__(self, *a, multilabel=False, **kw):
        super().__init__(*a, **kw)
        self.multilabel = multilabel

    def load_data(self, spec):
        data = synthetic_graph(seed=spec.seed, multilabel=self.multilabel)
        return apply_setting(data, spec.setting, spec.seed)


def _spec(distiller: str, setting="transductive", epochs=4):
    suite = {"name": "t", "seeds": 0, "settings": [setting], "datasets": {"cora": {"protocol": "planetoid"}},
             "train": {"epochs": epochs, "patience": epochs},
             "models": {"gcn": {"model": "gcn", "hidden": 8}, student_for(distiller)[0]: student_for(distiller)[1]},
             "distillers": {distiller: {}},
             "experiments": [{"teacher": "gcn", "student": student_for(distiller)[0], "distiller": distiller}]}
    return expand(suite)[0]


@pytest.mark.parametrize("name", DISTILLERS.names())
def test_distiller_runs_through_the_runner(name, tmp_path):
    spec = _spec(name)
    rec = SyntheticRunner(tmp_path, timing=False, fail_fast=True).run_one(spec)
    assert rec["status"] == "ok"
    assert math.isfinite(rec["test"]) and 0 <= rec["test"] <= 100
    if DISTILLERS.get(name).needs_teacher:
        assert rec["teacher"] == "gcn" and math.isfinite(rec["teacher_test"])


@pytest.mark.parametrize("name", [n for n in DISTILLERS.names() if not getattr(DISTILLERS.get(n), "online", False)])
def test_distiller_gradients_reach_student_not_teacher(name):
    torch.manual_seed(0)
    data = synthetic_graph()
    dist_cls = DISTILLERS.get(name)
    spec = _spec(name)
    student = build_model(spec.student, data)
    teacher = build_model({"model": "gcn", "hparams": {"hidden": 8}}, data)
    for p in teacher.parameters():
        p.requires_grad_(False)
    t_out = teacher(data.graph, data.x) if dist_cls.needs_teacher else None
    distiller = dist_cls(**spec.distiller["hparams"])
    distiller.setup(data, student, t_out)
    batch = make_batch(data, distiller)
    out = student(data.graph, data.x)
    terms = distiller.loss(batch, out, t_out)
    assert "loss" in terms and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
