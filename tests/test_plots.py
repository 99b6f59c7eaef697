"""Report plots (gkd_bench.plots) and the robustness / latency columns of the report, end to end."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import synthetic_graph
from gkd_bench.plots import DPI, latency_figure_size, noise_figure_size, pareto_front, write_plots


def png_size(path):
    """(width, height) in pixels from the PNG header (IHDR), read independently of matplotlib."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


def test_pareto_front_by_hand():
    lat = np.array([1.0, 2.0, 3.0, 0.5, 2.0, 10.0, np.nan])
    acc = np.array([50.0, 60.0, 55.0, 40.0, 58.0, 61.0, 99.0])
    # 0.5/40 fastest; 1/50 beats nothing faster; 2/60 best so far; 3/55 and 2/58 dominated by 2/60;
    # 10/61 most accurate; NaN latency never on the front
    assert pareto_front(lat, acc).tolist() == [True, True, False, True, False, True, False]


def fake_leaderboard(hw=("hwA",)):
    rows = []
    methods = [("-", "gcn", "none", 80.0, 20.0), ("-", "mlp", "none", 60.0, 0.1),
               ("gcn", "mlp", "kd", 70.0, 0.12), ("-", "gat", "none", 79.0, 30.0)]
    for i, (t, s, d, acc, lat) in enumerate(methods):
        row = {"dataset": "cora", "split": "planetoid", "setting": "transductive", "teacher": t, "student": s,
               "distiller": d, "test_mean": acc, "test_std": 1.0, "n": 2, "clean_key": f"k{i}",
               "perturbation_kind": None, "perturbation_level": None}
        for h in hw:
            row["latency_online10_ms" if len(hw) == 1 else f"latency_online10_ms@{h}"] = lat * (1 + hw.index(h))
        for a in (0.1, 0.5, 0.9):
            row[f"robust_feat_{a:g}"] = acc * (1 - a / 2)
        for p in (0.1, 0.5):
            row[f"robust_drop_{p:g}"] = acc if s == "mlp" else acc * (1 - p / 3)
        rows.append(row)
        for a in (0.3, 0.7):
            rows.append({**{k: row[k] for k in ("dataset", "split", "setting", "teacher", "student", "distiller")},
                         "test_mean": acc * (1 - a / 3), "n": 2, "clean_key": f"k{i}",
                         "perturbation_kind": "train_noise", "perturbation_level": a})
    return pd.DataFrame(rows)


def test_plots_render_with_known_sizes(tmp_path):
    paths = write_plots(fake_leaderboard(), tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["accuracy_vs_latency_cora_planetoid_transductive.png",
                     "accuracy_vs_noise_cora_planetoid_transductive.png"]
    for p in paths:
        assert p.exists() and p.stat().st_size > 10_000
    w, h = latency_figure_size()
    assert png_size(tmp_path / names[0]) == (int(w * DPI), int(h * DPI))
    w, h = noise_figure_size(3)  # test-time feat, test-time drop, train-time noise
    assert png_size(tmp_path / names[1]) == (int(w * DPI), int(h * DPI))


def test_one_latency_plot_per_hardware(tmp_path):
    paths = write_plots(fake_leaderboard(hw=("hwA", "hwB")), tmp_path)
    lat = sorted(p.name for p in paths if p.name.startswith("accuracy_vs_latency"))
    assert lat == ["accuracy_vs_latency_cora_planetoid_transductive_hwA.png",
                   "accuracy_vs_latency_cora_planetoid_transductive_hwB.png"]


def test_plots_of_an_earlier_report_that_this_one_does_not_write_are_removed(tmp_path):
    """One machine, then a second: the unsuffixed latency plot gives way to one per hardware id; a
    dataset gone from the records loses its plots; other files stay."""
    write_plots(fake_leaderboard(), tmp_path)
    gone = fake_leaderboard().assign(dataset="citeseer")
    write_plots(gone, tmp_path)
    (tmp_path / "LEADERBOARD.md").write_text("x")
    (tmp_path / "notes.png").write_bytes(b"x")
    assert len(list(tmp_path.glob("accuracy_vs_*_citeseer_*.png"))) == 2
    paths = write_plots(fake_leaderboard(hw=("hwA", "hwB")), tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted([p.name for p in paths] + ["notes.png"])
    assert sorted(p.name for p in paths) == ["accuracy_vs_latency_cora_planetoid_transductive_hwA.png",
                                             "accuracy_vs_latency_cora_planetoid_transductive_hwB.png",
                                             "accuracy_vs_noise_cora_planetoid_transductive.png"]
    assert (tmp_path / "LEADERBOARD.md").exists()


def test_no_columns_no_plots(tmp_path):
    lb = fake_leaderboard().drop(columns=[c for c in fake_leaderboard().columns
                                          if c.startswith(("latency", "robust"))])
    lb = lb[lb["perturbation_kind"].isna()]
    assert write_plots(lb, tmp_path) == []
    assert write_plots(pd.DataFrame(), tmp_path) == []


class _Datasets:
    def get(self, name):
        return lambda **kw: synthetic_graph(n=60, seed=3)


def test_report_has_robustness_latency_columns_and_plots(tmp_path, monkeypatch):
    """A small suite end to end on a synthetic graph: records -> leaderboard -> LEADERBOARD.md with plots."""
    import gkd_bench.runner as runner_mod
    from gkd_bench.report import load_runs, write_report
    from gkd_bench.spec import expand

    monkeypatch.setattr(runner_mod, "DATASETS", _Datasets())
    suite = {"name": "tiny", "seeds": "0-1", "datasets": {"cora": {}}, "train": {"epochs": 3, "patience": 3},
             "models": {"gcn": {"model": "gcn", "hidden": 8}, "mlp": {"model": "mlp", "hidden": 8}},
             "distillers": {"none": {}, "kd": {}},
             "experiments": [{"student": ["gcn", "mlp"], "distiller": "none"},
                             {"teacher": "gcn", "student": "mlp", "distiller": "kd"}],
             "robustness": {"feature_noise": [0.5], "edge_drop": [0.2], "edge_add": [0.2], "train_noise": [0.5],
                            "train_seeds": [0, 1]},
             "latency": {"batches": [10], "min_run_time": 0.002, "memory": False}}
    specs = expand(suite)
    assert len(specs) == 12
    counts = runner_mod.Runner(tmp_path, fail_fast=True).run(specs, progress=False)
    assert counts["ok"] == 12
    runs = load_runs(tmp_path, ["tiny"])
    clean = runs[runs["perturbation_kind"].isna()]
    assert clean["robust_summary_feat"].notna().all() and clean["latency_online10_ms"].notna().all()
    assert runs.loc[runs["perturbation_kind"].notna(), "latency_online10_ms"].isna().all()
    kd = clean[clean["distiller"] == "kd"]
    assert (kd["speedup_online10"] == kd["teacher_latency_online10_ms"] / kd["latency_online10_ms"]).all()
    mlp = clean[clean["student"] == "mlp"]
    assert mlp["structure_invariant"].all() and (mlp["robust_drop_0.2"] == mlp["test"]).all()

    paths = write_report(tmp_path, "tiny")
    out = tmp_path / "tiny"
    lb = pd.read_csv(out / "leaderboard.csv")
    main = lb[lb["perturbation_kind"].isna()]
    assert len(main) == 3
    for col in ("robust_summary_feat", "robust_summary_drop", "robust_summary_add", "robust_summary_train_noise",
                "latency_online10_ms"):
        assert main[col].notna().all(), col
    # the train-time summary is the paired ratio: recompute it from the records
    gcn_clean = clean[(clean["student"] == "gcn")].set_index("seed")["test"]
    gcn_noisy = runs[(runs["student"] == "gcn") & runs["perturbation_kind"].notna()].set_index("seed")["test"]
    expect = (gcn_noisy / gcn_clean).mean()
    got = main.loc[main["student"] == "gcn", "robust_summary_train_noise"].item()
    assert got == pytest.approx(expect)
    md = (out / "LEADERBOARD.md").read_text()
    pngs = [p for p in paths if p.suffix == ".png"]
    assert len(pngs) == 2
    for p in pngs:
        assert f"]({p.name})" in md and p.stat().st_size > 0
    assert "robust_summary_feat" in md and "speedup_online10" in md and "†" in md
    assert "Train-time perturbation" in md and "train_noise 0.5" in md
    table = md.split("### cora")[1].split("Train-time")[0]
    assert table.count("\n| ") == 4  # header + 3 clean configs; perturbed configs are not rows

    # records from a second machine: latency, speedup and memory columns split per hw_id, never mixed
    from gkd_bench.report import leaderboard, markdown_table

    other = runs.copy()
    other["hw_id"] = "otherhw"
    other["run_id"] = other["run_id"] + "-b"
    other["latency_online10_ms"] = other["latency_online10_ms"] * 100
    both = leaderboard(pd.concat([runs, other], ignore_index=True))
    hw = runs["hw_id"].iloc[0]
    for col in ("latency_online10_ms", "speedup_online10", "teacher_latency_online10_ms"):
        assert col not in both and f"{col}@{hw}" in both and f"{col}@otherhw" in both
    row = both[both["student"] == "gcn"].iloc[0]
    assert row["latency_online10_ms@otherhw"] == pytest.approx(100 * row[f"latency_online10_ms@{hw}"])
    assert "robust_summary_feat" in both  # hardware-independent columns are still pooled
    assert f"latency_online10_ms@{hw}" in markdown_table(both)
