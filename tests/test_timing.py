"""Latency scenarios, online prediction paths, memory and speedups (gkd_bench.timing)."""
from __future__ import annotations

import math
import os

import pytest
import torch

from conftest import synthetic_graph
from gkd_bench import timing
from gkd_bench.data import ModelOutput
from gkd_bench.registry import MODELS
from gkd_bench.timing import (latency_columns, online_forward, online_nodes, online_plan, parse_batches,
                              peak_memory_mb, receptive_hops, speedup, time_callable)

FAST = 0.002  # seconds per blocked_autorange in tests


def build(name, data, **kw):
    torch.manual_seed(0)
    return MODELS.get(name)(in_dim=data.num_features, num_classes=data.num_classes, **kw).eval()


@pytest.fixture(scope="module")
def data():
    return synthetic_graph(n=120, f=10, c=3, seed=2)


# ------------------------------------------------------------------ online paths
@pytest.mark.parametrize("name, kw", [("gcn", {}), ("gcn", {"num_layers": 3}), ("sage", {}), ("gat", {}),
                                      ("mlp", {}), ("gat", {"symmetric_norm": True, "attn_dst": False}),
                                      ("sign", {"hidden": 8, "num_hops": 2})])
def test_online_forward_equals_full_graph_rows(data, name, kw):
    model = build(name, data, **kw)
    nodes = torch.tensor([5, 17, 5, 99, 0, 64])  # a repeat included
    with torch.no_grad():
        full = model(data.graph, data.x).logits[nodes]
        online = online_forward(model, data.graph, data.x, nodes)
    torch.testing.assert_close(online, full, rtol=1e-5, atol=1e-6)


def test_gcn_needs_one_more_hop_than_layers(data):
    gcn, sage, gat = build("gcn", data), build("sage", data), build("gat", data, num_layers=3)
    assert receptive_hops(gcn) == 3 and receptive_hops(sage) == 2 and receptive_hops(gat) == 3
    nodes = torch.arange(0, 120, 7)
    with torch.no_grad():
        full = gcn(data.graph, data.x).logits[nodes]
        gcn.num_hops = 2  # what a layer count alone would give: source degrees wrong at the boundary
        short = online_forward(gcn, data.graph, data.x, nodes)
    assert not torch.allclose(short, full, atol=1e-5)


def test_symmetric_norm_gat_needs_one_more_hop_than_layers(data):
    """Its messages are scaled by source out-degrees (G-CRD's ogbn-arxiv GAT), as GCN's."""
    gat = build("gat", data, symmetric_norm=True)
    assert receptive_hops(gat) == 3
    nodes = torch.arange(0, 120, 7)
    with torch.no_grad():
        full = gat(data.graph, data.x).logits[nodes]
        torch.testing.assert_close(online_forward(gat, data.graph, data.x, nodes), full, rtol=1e-5, atol=1e-6)
        gat.num_hops = 2
        short = online_forward(gat, data.graph, data.x, nodes)
    assert not torch.allclose(short, full, atol=1e-5)


def test_label_reuse_receptive_field_is_exact(monkeypatch):
    """A LabelReuse GAT (2 layers, symmetric norm, one reuse pass): 2 + 2 + 1 = 5 hops give the full-graph
    rows; 4 do not (a sparse graph, so that 4 hops do not already cover it)."""
    from gkd_bench.label_reuse import LabelReuse

    data = synthetic_graph(n=1500, f=10, c=3, seed=3)
    torch.manual_seed(0)
    base = MODELS.get("gat")(data.num_features + data.num_classes, data.num_classes, symmetric_norm=True)
    model = LabelReuse(base, data.num_classes, 0.5, 1).bind_data(data).eval()
    assert model.num_hops == 5
    nodes = torch.tensor([3, 500, 1200])
    with torch.no_grad():
        full = model(data.graph, data.x).logits[nodes]
        torch.testing.assert_close(online_forward(model, data.graph, data.x, nodes), full, rtol=1e-5, atol=1e-6)
        monkeypatch.setattr(LabelReuse, "num_hops", 4)
        short = online_forward(model, data.graph, data.x, nodes)
    assert not torch.allclose(short, full, atol=1e-5)


def test_sign_latency_is_measured_on_inference_tensors(data):
    """Latency scenarios gather their inputs under torch.inference_mode; SIGN's diffusion memo must not read
    their (absent) version counter."""
    sign = build("sign", data, hidden=8, num_hops=2)
    cols = latency_columns(sign, None, data, 0, batches=[10], min_run_time=FAST, memory=False)
    assert cols["latency_online10_ms"] > 0 and cols["latency_full_ms"] > 0


def test_sampled_neighbourhood(data):
    sage = build("sage", data, fan_out=[1000, 1000])  # fan-out above every degree = full neighbourhood
    nodes = torch.tensor([3, 40, 41])
    with torch.no_grad():
        full = sage(data.graph, data.x).logits[nodes]
        torch.testing.assert_close(online_forward(sage, data.graph, data.x, nodes, sampled=True), full)
        small = build("sage", data, fan_out=[1, 1])
        assert online_forward(small, data.graph, data.x, nodes, sampled=True).shape == (3, data.num_classes)
    with pytest.raises(ValueError, match="one entry per layer"):
        online_plan(build("sage", data, fan_out=[5]), data.graph, data.x, sampled=True)
    with pytest.raises(ValueError, match="has no fan_out"):
        online_plan(build("gcn", data), data.graph, data.x, sampled=True)


class HookModel(torch.nn.Module):
    """A model with its own online path (like SA-MLP): only online_forward."""

    def __init__(self, c):
        super().__init__()
        self.lin = torch.nn.Linear(10, c)
        self.calls = 0

    def forward(self, graph, x):
        return ModelOutput(self.lin(x))

    def online_forward(self, graph, x, nodes):
        self.calls += 1
        return ModelOutput(self.lin(x[nodes]))


class SplitHookModel(HookModel):
    def online_gather(self, graph, x, nodes):
        return (x[nodes],)

    def online_compute(self, xb):
        self.calls += 1
        return self.lin(xb)


def test_online_forward_hook_is_used(data):
    m = HookModel(data.num_classes).eval()
    cols = latency_columns(m, None, data, 0, batches=[10], min_run_time=FAST, memory=False)
    assert m.calls > 0
    assert cols["latency_online10_ms"] > 0 and math.isnan(cols["latency_online10_model_ms"])
    s = SplitHookModel(data.num_classes).eval()
    cols = latency_columns(s, None, data, 0, batches=[10], min_run_time=FAST, memory=False)
    assert s.calls > 0 and cols["latency_online10_model_ms"] > 0
    nodes = torch.tensor([1, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(online_forward(s, data.graph, data.x, nodes), s.lin(data.x[nodes]))


def test_message_passing_model_without_layers_is_an_error(data):
    class Odd(torch.nn.Module):
        def forward(self, graph, x):
            return ModelOutput(x)

    with pytest.raises(ValueError, match="num_hops"):
        online_plan(Odd(), data.graph, data.x)


# ------------------------------------------------------------------ online nodes
def test_online_nodes_are_seeded_test_nodes(data):
    test = set(data.splits["test"].tolist())
    a = online_nodes(data, 10, 3)
    torch.manual_seed(123)  # the global RNG does not matter
    b = online_nodes(data, 10, 3)
    assert torch.equal(a, b) and len(a) == 10 and len(set(a.tolist())) == 10 and set(a.tolist()) <= test
    assert not torch.equal(a, online_nodes(data, 10, 4))
    big = online_nodes(data, 1024, 0)  # more than the 60 test nodes: each once, the rest with replacement
    assert len(big) == 1024 and set(big.tolist()) == test
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        online_nodes(data, 0, 0)


def test_parse_batches():
    assert parse_batches([10, 1, 1024, 10]) == (1, 10, 1024)
    for bad in ([0], [2.5], ["x"]):
        with pytest.raises(ValueError):
            parse_batches(bad)


# ------------------------------------------------------------------ speedup
def test_speedup_is_a_ratio_of_timings_from_this_process():
    t = time_callable(lambda: sum(range(2000)), FAST)
    s = time_callable(lambda: sum(range(20)), FAST)
    assert t["pid"] == s["pid"] == os.getpid() and t["threads"] == torch.get_num_threads()
    assert speedup(t, s) == t["median_ms"] / s["median_ms"]
    assert speedup(t, s) > 1
    with pytest.raises(ValueError, match="both timings from this process"):
        speedup({**t, "pid": os.getpid() + 1}, s)
    with pytest.raises(ValueError, match="equal thread counts"):
        speedup({**t, "threads": t["threads"] + 1}, s)


def test_latency_columns_measure_teacher_and_student_together(data, monkeypatch):
    calls = []
    real = timing.speedup

    def spy(t, s):
        calls.append((t["pid"], s["pid"]))
        return real(t, s)

    monkeypatch.setattr(timing, "speedup", spy)
    teacher, student = build("sage", data, fan_out=[3, 3]), build("mlp", data)
    cols = latency_columns(student, teacher, data, 0, batches=[1, 10], min_run_time=FAST, memory=True)
    assert calls and all(p == (os.getpid(), os.getpid()) for p in calls)
    for name in ("full", "online1", "online10"):
        assert cols[f"speedup_{name}"] == cols[f"teacher_latency_{name}_ms"] / cols[f"latency_{name}_ms"]
        assert cols[f"latency_{name}_ms"] > 0 and cols[f"latency_{name}_p90_ms"] >= cols[f"latency_{name}_ms"]
        assert cols[f"mem_{name}_mb"] >= 0 and cols[f"teacher_mem_{name}_mb"] >= 0
    for b in (1, 10):
        assert cols[f"speedup_online{b}_model"] == (cols[f"teacher_latency_online{b}_model_ms"]
                                                    / cols[f"latency_online{b}_model_ms"])
        assert cols[f"speedup_online{b}_sampled"] == (cols[f"teacher_latency_online{b}_sampled_ms"]
                                                      / cols[f"latency_online{b}_ms"])
    assert "latency_online1024_ms" not in cols and cols["latency_threads"] == torch.get_num_threads()


@pytest.mark.parametrize("trained_first", [False, True])
@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_latency_columns_of_row_normalised_students(data, kind, trained_first):
    """Students with input_norm (the gcrd-available Amazon students) through the latency scenarios, with
    the row-normalisation memo empty or filled by a training forward (regression: at d32de29 every
    amazon-photo run with timing failed, "Inference tensors do not track version counter")."""
    teacher = build("gat", data)
    students = [build("gcn", data, input_norm=kind), build("sage", data, input_norm=kind)]
    for student in students:
        if trained_first:
            student.train()
            student(data.graph, data.x).logits.sum().backward()
            student.eval()
        cols = latency_columns(student, teacher, data, 0, batches=[1], min_run_time=FAST, memory=False)
        assert cols["latency_full_ms"] > 0 and cols["latency_online1_ms"] > 0


# ------------------------------------------------------------------ memory
@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs /proc/self/clear_refs (Linux)")
def test_peak_memory_sees_a_64_mib_allocation():
    big = peak_memory_mb(lambda: torch.ones(16 * 2**20), torch.device("cpu"))  # 64 MiB of float32
    small = peak_memory_mb(lambda: torch.ones(16), torch.device("cpu"))
    assert 60 <= big <= 200
    assert small < 8


# ------------------------------------------------------------------ runner: one timing per architecture
def test_runner_times_each_architecture_once_per_process(tmp_path, monkeypatch):
    """Runs that differ only in the distiller or its weights reuse one latency measurement (the record
    names the run that took it); another student architecture, teacher or seed is timed again."""
    from gkd_bench.records import read_record, record_path
    from gkd_bench.registry import DATASETS
    from gkd_bench.runner import Runner
    from gkd_bench.spec import expand

    monkeypatch.setitem(DATASETS._entries, "tiny-latency", lambda **kw: synthetic_graph(n=80, f=8, c=3, seed=1))
    calls = []
    real = timing.latency_columns

    def spy(student, teacher, *a, **kw):
        calls.append((type(student).__name__, type(teacher).__name__ if teacher is not None else None))
        return real(student, teacher, *a, **kw)

    monkeypatch.setattr("gkd_bench.runner.latency_columns", spy)
    suite = {"name": "lat-test", "seeds": "0-1", "datasets": {"tiny-latency": {"protocol": "synthetic"}},
             "train": {"epochs": 3, "lr": 0.01, "weight_decay": 0.0, "patience": 100},
             "latency": {"batches": [1], "min_run_time": FAST, "memory": False},
             "robustness": {"edge_add": [], "edge_drop": [], "feature_noise": []},
             "models": {"gcn": {"model": "gcn", "hidden": 8}, "mlp": {"model": "mlp", "hidden": 8},
                        "wide": {"model": "mlp", "hidden": 16}},
             "distillers": {"none": {}, "kd5": {"distiller": "kd", "lam": 0.5}, "kd9": {"distiller": "kd", "lam": 0.9}},
             "experiments": [{"student": ["gcn", "mlp"], "distiller": "none"},
                             {"teacher": "gcn", "student": ["mlp", "wide"], "distiller": ["kd5", "kd9"]}]}
    specs = expand(suite)
    assert len(specs) == 12
    counts = Runner(tmp_path, cache_dir=tmp_path / "cache", fail_fast=True).run(specs, progress=False)
    assert counts["ok"] == 12
    # per seed: gcn alone, mlp alone, gcn -> mlp (kd5 and kd9 share), gcn -> wide (kd5 and kd9 share)
    assert len(calls) == 8 and calls.count(("MLP", "GCN")) == 4
    rec = {(s.student["label"], s.distiller["label"], s.seed): read_record(record_path(tmp_path, s.suite, s.run_id))
           for s in specs}
    for seed in (0, 1):
        first, second = rec[("mlp", "kd5", seed)], rec[("mlp", "kd9", seed)]
        assert second["timing_run_id"] == first["run_id"] == first["timing_run_id"]
        assert second["speedup_online1"] == first["speedup_online1"]
        assert second["latency_online1_ms"] == first["latency_online1_ms"]
        assert rec[("wide", "kd9", seed)]["timing_run_id"] == rec[("wide", "kd5", seed)]["run_id"]
        assert rec[("mlp", "none", seed)]["timing_run_id"] == rec[("mlp", "none", seed)]["run_id"]
    assert rec[("mlp", "kd5", 1)]["timing_run_id"] != rec[("mlp", "kd5", 0)]["run_id"]


def test_model_signature_ignores_weights_not_architecture(data):
    a, b = build("sage", data), build("sage", data)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    assert timing.model_signature(a) == timing.model_signature(b)
    assert timing.model_signature(a) != timing.model_signature(build("sage", data, hidden=32))
    assert timing.model_signature(a) != timing.model_signature(build("sage", data, aggregator="gcn"))
    assert timing.model_signature(a) != timing.model_signature(build("sage", data, fan_out=[5, 5]))
    assert timing.model_signature(None) == ""


def test_interleaved_online_times_every_model_in_turns():
    """Each model gets `calls` timed calls; a model that does more work per call has the larger median;
    bad arguments raise."""
    import time

    from gkd_bench.timing import interleaved_online

    class Slow(torch.nn.Module):
        graph_free = True

        def forward(self, graph, x):
            time.sleep(0.002)
            return ModelOutput(x, ())

    class Fast(Slow):
        def forward(self, graph, x):
            return ModelOutput(x, ())

    x = torch.randn(50, 4)
    res = interleaved_online({"fast": Fast(), "slow": Slow()}, None, x, torch.arange(10), calls=20, warmup=1)
    assert [res[k]["calls"] for k in ("fast", "slow")] == [20, 20]
    assert res["slow"]["median_ms"] >= 2.0 > res["fast"]["median_ms"]
    assert res["slow"]["p90_ms"] >= res["slow"]["median_ms"]
    with pytest.raises(ValueError, match="calls must be >= 1"):
        interleaved_online({"fast": Fast()}, None, x, torch.arange(10), calls=0)
    with pytest.raises(ValueError, match="no models"):
        interleaved_online({}, None, x, torch.arange(10))


# ------------------------------------------------------------------ report: one measurement per workload
def _timed_record(run_id, distiller, seed, student_ms, teacher_ms, timing_run_id, hw="hwA", threads=1,
                  student_params=100):
    import json
    spec = {"dataset": "cora", "dataset_options": None, "protocol": "planetoid", "setting": "transductive",
            "seed": seed, "student": {"label": "gcn", "model": "gcn", "hparams": {"hidden": 16}},
            "teacher": {"label": "gat", "model": "gat", "hparams": {"hidden": 8}}, "evaluation": None,
            "distiller": {"name": distiller}}
    return {"run_id": run_id, "distiller": distiller, "seed": seed, "spec": json.dumps(spec), "hw_id": hw,
            "device": "cpu", "latency_threads": threads, "dataset_version": "v1", "student_params": student_params,
            "teacher_params": 900, "latency_full_ms": student_ms, "teacher_latency_full_ms": teacher_ms,
            "speedup_full": teacher_ms / student_ms, "mem_full_mb": student_ms * 10,
            "latency_online10_ms": student_ms / 2, "timing_run_id": timing_run_id}


def test_report_gives_each_workload_its_least_disturbed_measurement():
    import pandas as pd
    from gkd_bench.report import least_disturbed_timings
    runs = pd.DataFrame([
        _timed_record("a-s0", "kd", 0, 2.0, 10.0, "a-s0"),      # process 1 measured
        _timed_record("b-s0", "fitnet", 0, 2.0, 10.0, "a-s0"),  # process 1 reused it
        _timed_record("c-s0", "kd-ref", 0, 0.8, 30.0, "c-s0"),  # process 2: student faster, teacher disturbed
        _timed_record("d-s0", "gcrd", 0, 1.5, 6.0, "d-s0"),     # process 3: least disturbed (log sum)
        _timed_record("a-s1", "kd", 1, 9.0, 9.0, "a-s1"),       # another seed: its own workload
        _timed_record("e-s0", "kd", 0, 0.1, 0.5, "e-s0", hw="hwB"),            # other hardware
        _timed_record("f-s0", "kd", 0, 0.1, 0.5, "f-s0", threads=2),           # other thread count
        _timed_record("g-s0", "lsp", 0, 0.1, 0.5, "g-s0", student_params=101),  # other architecture
        {**_timed_record("h-s0", "at", 0, 1.0, 1.0, "h-s0"), "latency_full_ms": float("nan"),
         "teacher_latency_full_ms": float("nan"), "latency_online10_ms": float("nan"), "speedup_full": float("nan")},
    ])
    out = least_disturbed_timings(runs).set_index("run_id")
    for rid in ("a-s0", "b-s0", "c-s0", "d-s0"):
        assert out.loc[rid, "timing_run_id"] == "d-s0"
        assert (out.loc[rid, "latency_full_ms"], out.loc[rid, "teacher_latency_full_ms"]) == (1.5, 6.0)
        assert out.loc[rid, "speedup_full"] == 4.0 and out.loc[rid, "mem_full_mb"] == 15.0  # one coherent set
    for rid, ms in (("a-s1", 9.0), ("e-s0", 0.1), ("f-s0", 0.1), ("g-s0", 0.1)):
        assert out.loc[rid, "latency_full_ms"] == ms and out.loc[rid, "timing_run_id"] == rid
    assert math.isnan(out.loc["h-s0", "latency_full_ms"])  # a run that measured nothing gets nothing
    assert runs.set_index("run_id").loc["c-s0", "teacher_latency_full_ms"] == 30.0  # the input is not changed


def test_least_disturbed_ranks_on_shared_scenarios_and_keeps_batching_apart():
    import pandas as pd
    from gkd_bench.report import least_disturbed_timings
    nan = float("nan")
    old = {**_timed_record("o-s0", "kd", 0, 0.5, 2.0, None), "latency_online10_ms": nan}  # no online scenario
    new = _timed_record("n-s0", "fitnet", 0, 1.0, 4.0, "n-s0")
    # mini-batch evaluation leaves out the full-graph scenario: never the same workload as full batch
    mb = {**_timed_record("m-s0", "lsp", 0, nan, nan, "m-s0"), "latency_online10_ms": 0.01, "batching": "minibatch"}
    out = least_disturbed_timings(pd.DataFrame([{**old, "batching": "full"}, {**new, "batching": "full"}, mb]))
    out = out.set_index("run_id")
    # ranked on the full-graph columns both have: the older record's measurement wins and names itself
    assert out.loc["n-s0", "latency_full_ms"] == 0.5 and out.loc["n-s0", "timing_run_id"] == "o-s0"
    assert math.isnan(out.loc["n-s0", "latency_online10_ms"])  # one coherent measurement, gaps included
    assert out.loc["m-s0", "latency_online10_ms"] == 0.01 and math.isnan(out.loc["m-s0", "latency_full_ms"])
    assert out.loc["o-s0", "timing_run_id"] == "o-s0"


def test_leaderboard_rows_of_one_workload_share_its_timing():
    import pandas as pd
    from gkd_bench.report import leaderboard
    recs = []
    for i, (distiller, seed, s_ms, t_ms) in enumerate([("kd", 0, 2.0, 10.0), ("kd-ref", 0, 2.5, 30.0),
                                                       ("kd", 1, 1.0, 5.0), ("kd-ref", 1, 3.0, 40.0)]):
        r = _timed_record(f"r{i}", distiller, seed, s_ms, t_ms, f"r{i}")
        r.update(config_id=distiller, status="ok", test=80.0 + i, val=80.0, dataset="cora", split="planetoid",
                 setting="transductive", teacher="gat", student="gcn", distiller_name="kd", metric="accuracy",
                 hparams="{}")
        recs.append(r)
    lb = leaderboard(pd.DataFrame(recs)).set_index("distiller")
    # per seed the smaller measurement (seed 0: 2 / 10, seed 1: 1 / 5), then the median over seeds
    for d in ("kd", "kd-ref"):
        assert lb.loc[d, "latency_full_ms"] == pytest.approx(1.5)
        assert lb.loc[d, "teacher_latency_full_ms"] == pytest.approx(7.5)
        assert lb.loc[d, "speedup_full"] == pytest.approx(5.0)
