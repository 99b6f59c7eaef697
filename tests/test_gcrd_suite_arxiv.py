"""The `gcrd` suite's ogbn-arxiv configuration (G-CRD Table 4) through the CLI, on an OGB-format fixture:
the reference teacher's settings (label inputs and reuse, LogE loss, attention variants), the graph
without self-loops, SIGN's own script values."""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

import gkd_bench  # noqa: F401 - fills the registries
from gkd_bench.cli import main
from gkd_bench.records import read_record
from test_dataset_fixtures import write_ogb


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("GKD_BENCH_OFFLINE", "1")
    monkeypatch.setenv("OUTDATED_IGNORE", "1")


def test_gcrd_suite_arxiv_configuration_through_the_cli(tmp_path):
    write_ogb(tmp_path / "root", "ogbn-arxiv", n=20)
    sets = ["train.epochs=2", "models.gat.hidden=4", "models.gat.train.epochs=2", "models.gcn.hidden=8",
            "models.sign.hidden=8", "models.sign.train.epochs=2", "distillers.gcrd.proj_dim=8",
            "distillers.kd+gsp.proj_dim=8", "robustness=false", "latency.min_run_time=0.001",
            "latency.batches=[10]", "latency.memory=false"]
    args = ["run", "--suite", "gcrd", "--dataset", "ogbn-arxiv", "--student", "gcn", "--student", "sign",
            "--distiller", "gcrd", "--distiller", "kd+gsp", "--seeds", "0", "--data-dir", str(tmp_path / "root"),
            "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "res"), "--no-report",
            "--fail-fast"]  # timing on: the label-reuse teacher and SIGN are timed on k-hop subgraphs
    args += [x for s in sets for x in ("--set", s)]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    recs = [read_record(p) for p in sorted((tmp_path / "res" / "runs" / "gcrd").glob("*.json"))]
    assert recs and all(r["status"] == "ok" and r["dataset"] == "ogbn-arxiv" for r in recs)
    for r in recs:
        assert math.isfinite(r["test"]) and math.isfinite(r["cka"])
        assert r["latency_online10_ms"] > 0 and r["teacher_latency_online10_ms"] > 0
        spec = json.loads(r["spec"])
        assert spec["dataset_options"] == {"self_loops": False}
        t = spec["teacher"]["hparams"]
        assert (t["out_heads"], t["act"], t["norm"], t["residual"], t["residual_bias"]) == (1, "relu", "batch",
                                                                                           "linear", False)
        assert (t["dropout"], t["input_dropout"], t["attn_dropout"]) == (0.75, 0.25, 0.0)
        assert (t["attn_dst"], t["symmetric_norm"], t["edge_drop"], t["conv_bias"]) == (False, True, 0.3, False)
        tt = spec["teacher"]["train"]
        assert (tt["optimizer"], tt["warmup_epochs"], tt["selection"], tt["lr"]) == ("rmsprop", 50, "loss", 0.002)
        assert (tt["task_loss"], tt["label_inputs"], tt["label_iters"]) == ("loge", True, 1)
        assert "label_inputs" not in spec["student"]["train"]  # only the teacher sees labels
        assert "optimizer" not in spec["student"]["train"]  # the students keep Adam
        assert spec["student"]["hparams"]["hidden_after_dropout"] is True  # G-CRD's out_feat
        if r["student"] == "sign":  # arxiv_dgl/sign.py: batches of 50,000 training nodes, eval every 10
            st = spec["student"]["train"]
            assert (st["batching"], st["batch_size"], st["eval_batch_size"], st["eval_every"]) == (
                "minibatch", 50000, 100000, 10)
            assert r["batching"] == "minibatch"  # G-CRD and KD + GSP on SIGN ran in node mini-batches
    grid = {}
    for r in recs:
        hp = json.loads(r["hparams"])["distiller"]
        grid.setdefault((r["student"], r["distiller"]), set()).add(
            (hp["beta"], hp.get("tau"), hp["max_samples"], hp.get("kernel")))
    # GCN: METHODS.md's G-CRD grid plus run_gcn.sh's beta 0.1, M 16384; KD + GSP cosine plus its beta 10
    assert grid[("gcn", "gcrd")] == {(b, t, 16384, None) for b in (0.01, 0.05, 0.1) for t in (0.05, 0.075, 0.1)}
    assert grid[("gcn", "kd+gsp")] == {(b, None, 4096, "cosine") for b in (10.0, 100.0, 1000.0, 10000.0)}
    # SIGN: arxiv_dgl/scripts/run_all.sh G-CRD beta 0.5, M 8196; run_all_kd_and_aux.sh KD + GSP rbf 1e6, M 2048
    assert grid[("sign", "gcrd")] == {(b, t, 8196, None) for b in (0.01, 0.05, 0.5) for t in (0.05, 0.075, 0.1)}
    assert grid[("sign", "kd+gsp")] == {(b, None, 2048, "rbf") for b in (100.0, 1000.0, 10000.0, 1e6)}


def test_gcrd_suite_sign_grids_hold_the_sign_script_values():
    """arxiv_dgl/scripts/run_all.sh and run_all_kd_and_aux.sh: every SIGN script value is a grid point; GCN
    keeps the GCN scripts' grids (AT with run_gcn.sh's 1e5)."""
    from gkd_bench.spec import expand, load_suite

    grid = {}
    for s in expand(load_suite("gcrd"), datasets=["ogbn-arxiv"], all_seeds=True):
        hp = s.distiller["hparams"]
        grid.setdefault((s.student["label"], s.distiller["label"]), set()).add(
            (hp.get("beta"), hp.get("kernel"), hp.get("max_samples")))
    betas = lambda k: sorted(b for b, _, _ in grid[k])  # noqa: E731
    assert betas(("sign", "fitnet")) == betas(("sign", "kd+fitnet")) == [100.0, 1000.0, 10000.0]
    assert betas(("sign", "at")) == betas(("sign", "kd+at")) == [100.0, 1000.0, 10000.0]
    assert betas(("gcn", "at")) == [100.0, 1000.0, 10000.0, 100000.0]
    assert grid[("sign", "gsp")] == {(b, "rbf", 2048) for b in (100.0, 1000.0, 10000.0, 1e7)}
    assert grid[("gcn", "gsp")] == {(b, "cosine", 4096) for b in (100.0, 1000.0, 10000.0)}
    assert ("sign", "lsp") not in grid  # LSP needs message passing: not on SIGN (the paper's "-")


def test_gcrd_suite_models_have_the_reference_parameter_counts():
    """Resolved from the suite itself (overrides are deep-merged, so nothing of the ogbn-arxiv teacher may
    leak into PPI's): ogbn-arxiv teacher 1,441,580 on 128 features + 40 label inputs (arxiv_dgl/gat.py
    prints it); PPI teacher 3,076,766, 5-layer student 176,846, 2-layer student 182,714 (ppi_pyg/gnn.py
    by formula), all trained with Adam on cross-entropy and no label inputs."""
    from gkd_bench.methods._common import count_parameters
    from gkd_bench.registry import MODELS
    from gkd_bench.spec import expand, load_suite

    specs = expand(load_suite("gcrd"))
    models = {}
    for s in specs:
        for m in (s.teacher, s.student):
            if m:
                models[(s.dataset, m["label"])] = m
    arxiv = models[("ogbn-arxiv", "gat")]
    assert arxiv["train"]["label_inputs"] is True
    assert count_parameters(MODELS.get("gat")(128 + 40, 40, **arxiv["hparams"])) == 1_441_580
    # the PPI teacher resolves to exactly ppi_pyg's settings: every arxiv key reset (defaults leave the dicts)
    ppi = models[("ppi", "gat")]
    assert ppi["hparams"] == {"hidden": 256, "num_layers": 3, "heads": 4, "out_heads": 6, "dropout": 0.0,
                              "attn_dropout": 0.0, "negative_slope": 0.2, "residual": "linear", "act": "elu",
                              "input_norm": None}
    assert ppi["train"] == {"epochs": 500, "lr": 0.005, "weight_decay": 0.0, "patience": 500, "eval_every": 1,
                            "max_time_s": 0.0, "graphs_per_batch": 1}
    want = {"gat": 3_076_766, "gat-5l": 176_846, "gat-2l": 182_714}
    for label, n in want.items():
        m = models[("ppi", label)]
        assert count_parameters(MODELS.get("gat")(50, 121, **m["hparams"])) == n, label
        assert m["hparams"]["act"] == "elu" and "norm" not in m["hparams"], label
        assert not {"optimizer", "warmup_epochs", "selection", "task_loss", "label_inputs"} & set(m["train"]), label
