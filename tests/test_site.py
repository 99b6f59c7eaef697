"""The static leaderboard site (gkd_bench.site, ``gkd-bench report --format html``).

Records are written by the tests in ``tmp_path`` in the records' own format
(no training). The browser test drives Debian's headless Chromium through
Selenium and chromedriver (``.ci/run`` installs both); it skips with the
reason when either is missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from gkd_bench import site
from gkd_bench.records import record_path, write_record
from gkd_bench.registry import Registry, UnknownNameError

SEED_OFFSETS = [-1.0, 0.0, 1.5]  # test score of seed s = base + SEED_OFFSETS[s]
# (teacher, student, distiller, base test score, student params, online@10 latency ms)
CORA = [
    (None, "gcn", "none", 81.0, 23063, 2.0),
    (None, "sage", "none", 79.0, 46000, 2.5),
    (None, "mlp", "none", 59.0, 92231, 0.4),
    ("gcn", "mlp", "kd", 71.0, 92231, 0.4),
    ("sage", "mlp", "kd", 70.0, 92231, 0.4),
    ("gcn", "mlp", "fitnet", 68.0, 92231, 0.4),
]
CITESEER = [(None, "gcn", "none", 70.0, 59366, 2.1), (None, "mlp", "none", 58.0, 240000, 0.3)]
ENV = {"gkd_bench_version": "0.1.0", "git_sha": "abc1234", "torch_version": "2.13.0+cpu", "dgl_version": "1.1.3",
       "python_version": "3.11.7", "device": "cpu", "hw_id": "hw0test", "cpu_model": "Test CPU", "cpu_cores": 2,
       "threads": 1, "latency_threads": 1}


def _spec(suite, ds, teacher, student, distiller, seed):
    train = {"epochs": 30, "lr": 0.01}
    return {"dataset": ds, "dataset_options": {}, "protocol": "planetoid", "setting": "transductive",
            "seed": seed, "suite": suite, "perturbation": None, "evaluation": {},
            "distiller": {"name": distiller, "label": distiller, "hparams": {"lam": 0.5} if distiller != "none" else {}},
            "student": {"model": student, "label": student, "hparams": {"hidden": 64, "dropout": 0.5}, "train": train},
            "teacher": None if teacher is None else {"model": teacher, "label": teacher,
                                                      "hparams": {"hidden": 16}, "train": train}}


def make_records(results, suite="toy", seeds=3, datasets=None, hw="hw0test"):
    """Write records for ``datasets`` (name -> config list) plus one failed run; returns the record dicts."""
    datasets = datasets or {"cora": CORA, "citeseer": CITESEER}
    out = []
    for ds, configs in datasets.items():
        teacher_score = {s: b for t, s, d, b, *_ in configs if t is None}
        for teacher, student, distiller, base, params, lat in configs:
            for seed in range(seeds):
                spec = _spec(suite, ds, teacher, student, distiller, seed)
                cid = hashlib.sha1(json.dumps({k: v for k, v in spec.items() if k != "seed"},
                                              sort_keys=True).encode()).hexdigest()[:12]
                test = base + SEED_OFFSETS[seed % len(SEED_OFFSETS)]
                rec = {
                    "run_id": f"{cid}-s{seed}", "config_id": cid, "suite": suite, "dataset": ds,
                    "dataset_version": "v1", "split": "planetoid", "split_index": 0, "setting": "transductive",
                    "teacher": teacher, "student": student, "distiller": distiller, "distiller_name": distiller,
                    "hparams": json.dumps({"dataset": {}, "distiller": spec["distiller"]["hparams"],
                                           "student": spec["student"]["hparams"], "train": {"epochs": 30, "lr": 0.01}},
                                          sort_keys=True, separators=(",", ":")),
                    "teacher_hparams": None if teacher is None else '{"hidden":16}',
                    "seed": seed, "metric": "accuracy", "test": test, "val": test - 0.5,
                    "teacher_test": None if teacher is None else teacher_score.get(teacher, 80.0)
                    + SEED_OFFSETS[seed % 3],
                    "best_epoch": 20 + seed, "train_s": 1.0 + seed, "student_params": params,
                    "teacher_params": None if teacher is None else 23063,
                    "latency_online10_ms": lat * (1 + 0.01 * seed), "latency_full_ms": lat * 10,
                    "speedup_online10": None if teacher is None else 2.0 / lat,
                    "robust_feat_0.1": test - 5, "robust_feat_0.5": test - 20,
                    "robust_summary_feat": ((test - 5) / test + (test - 20) / test) / 2,
                    "structure_invariant": student == "mlp", "status": "ok", "error": None,
                    "started_at": f"2026-01-0{seed + 1}T00:00:00+00:00", "perturbation": None,
                    "perturbation_kind": None, "perturbation_level": None,
                    "spec": json.dumps(spec, sort_keys=True, separators=(",", ":")), **ENV, "hw_id": hw,
                }
                write_record(record_path(results, suite, rec["run_id"]), rec)
                out.append(rec)
    bad = {"run_id": "deadbeef0000-s0", "config_id": "deadbeef0000", "suite": suite, "dataset": "pubmed",
           "split": "planetoid", "setting": "transductive", "teacher": None, "student": "gcn", "distiller": "none",
           "seed": 0, "status": "error", "error": "DatasetError: pubmed files missing\ntraceback...", **ENV}
    write_record(record_path(results, suite, bad["run_id"]), bad)
    return out + [bad]


class _Table(HTMLParser):
    """Cells (text, data-v) of the first <table id="leaderboard"> and its header keys."""

    def __init__(self):
        super().__init__()
        self.keys, self.rows, self._in, self._cell, self._row = [], [], False, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "leaderboard":
            self._in = True
        if not self._in:
            return
        if tag == "th":
            self.keys.append(a.get("data-key"))
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = [a.get("data-v"), ""]

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif self._in and tag == "td" and self._cell is not None:
            self._row.append((self._cell[1].strip(), self._cell[0]))
            self._cell = None
        elif self._in and tag == "tr" and self._row:
            self.rows.append(dict(zip(self.keys, self._row)))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def _parse_table(path):
    p = _Table()
    p.feed(Path(path).read_text())
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    recs = make_records(results)
    (results / "reference").mkdir()
    # paper vs ours: cora gcn 81.2 -> ours 81.17 (reproduced); cora mlp 70.0 vs ours 59.17 (differs);
    # pubmed has no ok record (no data here)
    (results / "reference" / "toy.csv").write_text(
        "source,table,dataset,setting,teacher,student,method,metric,value,std,n_seeds,note\n"
        "toy,Table 1,cora,transductive,,GCN,GCN,accuracy,81.2,0.5,10,\n"
        "toy,Table 1,cora,transductive,,MLP,MLP,accuracy,70.0,0.5,10,\n"
        "toy,Table 1,pubmed,transductive,,GCN,GCN,accuracy,79.0,,1,\n")
    # plots beside LEADERBOARD.md (as `gkd-bench report` leaves them) are copied, not redrawn
    (results / "toy").mkdir()
    for kind in ("latency", "noise"):
        (results / "toy" / f"accuracy_vs_{kind}_cora_planetoid_transductive.png").write_bytes(_png())
    out = results / "site"
    index = site.build_site(results, out, plots="copy")
    return results, out, index, recs


def _png(w: int = 4, h: int = 3) -> bytes:
    """A valid RGB PNG (red), written by hand."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_index_lists_suites_tables_and_problems(built):
    results, out, index, _ = built
    html = index.read_text()
    assert 'href="toy/cora_planetoid_transductive.html"' in html
    assert 'href="toy/citeseer_planetoid_transductive.html"' in html
    assert "pubmed" in html and "DatasetError: pubmed files missing" in html  # the failed run, first line only
    assert "traceback..." not in html
    assert 'href="compare/toy.html"' in html
    # the site lies inside the results folder: the table page links the report's PNGs in place, draws none
    page = (out / "toy" / "cora_planetoid_transductive.html").read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert [Path(s).name for s in srcs] == ["accuracy_vs_latency_cora_planetoid_transductive.png",
                                            "accuracy_vs_noise_cora_planetoid_transductive.png"]
    assert all((out / "toy" / s).resolve() == (results / "toy" / Path(s).name).resolve() for s in srcs)
    assert not (out / "toy" / "plots").exists()
    assert "<img" not in (out / "toy" / "citeseer_planetoid_transductive.html").read_text()  # plots="copy": none
    for name in ("static/site.css", "static/site.js"):
        assert (out / name).read_bytes() == (Path(site.__file__).parent / name).read_bytes()


def test_table_values_are_mean_and_sample_std(built):
    _, out, _, recs = built
    t = _parse_table(out / "toy" / "cora_planetoid_transductive.html")
    assert len(t.rows) == len(CORA)
    assert [r["test"][1] for r in t.rows] == sorted((r["test"][1] for r in t.rows), key=float, reverse=True)
    for teacher, student, distiller, *_ in CORA:
        mine = [r for r in recs if r.get("test") is not None and r["dataset"] == "cora"
                and r["student"] == student and r["distiller"] == distiller and r["teacher"] == teacher]
        tests = [r["test"] for r in mine]
        row = next(r for r in t.rows if r["student"][0] == student and r["distiller"][0] == distiller
                   and r["teacher"][0] == (teacher or "-"))
        assert row["test"][0] == f"{statistics.mean(tests):.2f} ± {statistics.stdev(tests):.2f}"
        assert float(row["test"][1]) == pytest.approx(statistics.mean(tests))
        assert row["n"][0] == "3"
        assert row["student_params"][0] == f"{mine[0]['student_params']:,}"
        lat = statistics.median(r["latency_online10_ms"] for r in mine)
        assert row["latency_online10_ms"][0] == f"{lat:.3f}"
        assert row["robust_summary_feat"][0] == f"{statistics.mean(r['robust_summary_feat'] for r in mine):.3f}"
        if distiller == "kd" and teacher == "gcn":  # gain over the same mlp trained by none, paired by seed
            none = {r["seed"]: r["test"] for r in recs if r.get("dataset") == "cora" and r["student"] == "mlp"
                    and r["distiller"] == "none"}
            assert row["gain_vs_none"][0].startswith(f"{statistics.mean(r['test'] - none[r['seed']] for r in mine):+.2f}")
    assert t.rows[0]["config_id"][0] and (out / "toy" / "configs" / f"{t.rows[0]['config_id'][0]}.html").is_file()


def test_config_page_has_hparams_seeds_env_and_records(built):
    results, out, _, recs = built
    kd = [r for r in recs if r.get("distiller") == "kd" and r.get("teacher") == "gcn" and r["dataset"] == "cora"]
    page = (out / "toy" / "configs" / f"{kd[0]['config_id']}.html").read_text()
    assert "gcn → mlp kd" in page
    assert re.search(r"<th>lam</th><td><code>0.5</code>", page)
    assert re.search(r"<th>hidden</th><td><code>64</code>", page)
    # the site lies inside the results folder: pages link the records themselves
    links = re.findall(r'<td><a href="([^"]+\.json)">', page)
    assert len(links) == 3 and not (out / "toy" / "records").exists()
    for r, href in zip(sorted(kd, key=lambda r: r["seed"]), links):
        target = (out / "toy" / "configs" / href).resolve()
        assert target == record_path(results, "toy", r["run_id"]).resolve()
        assert json.loads(target.read_text())["test"] == r["test"]
    assert "Test CPU" in page and "2.13.0+cpu" in page and "abc1234" in page
    fields = re.search(r'<table class="index fields">.*?</table>', page, re.S).group(0)
    assert fields.count("<th>seed ") == 3
    assert re.search(r"<th>best_epoch</th><td>20</td><td>21</td><td>22</td>", fields)


def test_rebuild_removes_config_pages_whose_records_are_gone(built):
    """A config page left by an earlier build whose config has no record any more (a replaced configuration's
    records removed) is deleted on rebuild; the pages of live configs are rewritten."""
    from gkd_bench import site

    results, out, _, recs = built
    stale = out / "toy" / "configs" / "0123456789ab.html"
    stale.write_text("<html>old config</html>")
    site.build_site(results, out, plots="copy")
    assert not stale.exists()
    live = {p.stem for p in (out / "toy" / "configs").glob("*.html")}
    assert live and live <= {r["config_id"] for r in recs}


def test_columns_are_picked_generically():
    lb = pd.DataFrame({
        "teacher": ["gcn", "-"], "student": ["mlp", "mlp"], "distiller": ["kd", "none"], "n": [3, 3],
        "test_mean": [70.0, 60.0], "test_std": [1.0, float("nan")], "val_mean": [69.0, 59.0],
        "latency_online1_ms": [0.1, 0.1], "latency_online64_ms": [0.3, 0.3], "latency_online64_p90_ms": [0.4, 0.4],
        "speedup_online64": [5.0, float("nan")], "robust_summary_poison_add": [0.9, 0.8],
        "mem_full_mb": [2.0, 2.0], "novel_score": [1.0, 2.0], "empty_col": [float("nan")] * 2,
        "test_ensemble_mean": [71.0, float("nan")], "hparams": ["{}", "{}"],
    })
    cols = {c.key: c for c in site.table_columns(lb)}
    assert site.main_online_batch(lb.columns) == 1  # no online@10: the smallest batch measured
    assert site.main_online_batch(["latency_online10_ms", "latency_online1_ms"]) == 10
    assert [k for k in cols][:4] == ["teacher", "student", "distiller", "test"]
    assert cols["teacher"].filter and not cols["test"].filter
    assert cols["test"].headline and not cols["val"].headline and cols["test_ensemble"].headline
    assert cols["robust_summary_poison_add"].headline and cols["latency_online1_ms"].headline
    assert not cols["latency_online64_ms"].headline and not cols["latency_online64_p90_ms"].headline
    assert not cols["mem_full_mb"].headline and not cols["novel_score"].headline  # whatever else exists: hidden
    assert "empty_col" not in cols and "hparams" not in cols and "n" in cols
    r = lb.iloc[1]
    assert cols["test"].cell(r) == ("60.00", 60.0)  # single seed: no std
    assert cols["test"].cell(lb.iloc[0]) == ("70.00 ± 1.00", 70.0)
    assert cols["speedup_online64"].cell(r) == ("", None)
    assert cols["speedup_online64"].cell(lb.iloc[0]) == ("5.0×", 5.0)


def test_compare_pages_match_compare_frame(built):
    results, out, _, _ = built
    from gkd_bench.compare import compare_frame

    df = compare_frame(results, "toy")  # the plain call (rebuilds the leaderboards itself)
    page = (out / "compare" / "toy.html").read_text()
    verdicts = re.findall(r'<td data-v="([a-z ]+)"><span class="badge', page)
    assert verdicts == list(df["verdict"]) == ["reproduced", "differs", "no data here"]
    assert 'href="../toy/cora_planetoid_transductive.html"' in page
    gcn = [81.0 + o for o in SEED_OFFSETS]
    assert f">{statistics.mean(gcn):.2f} ± {statistics.stdev(gcn):.2f} (3)</td>" in page  # ours, cora GCN
    assert ">81.20 ± 0.50 (10)</td>" in page  # the paper's value


def test_site_generation_imports_no_torch(built, tmp_path):
    """``python -m gkd_bench.site`` and ``gkd-bench report --format html`` never import torch or dgl."""
    results = built[0]
    code = ("import sys; from gkd_bench.site import build_site; from gkd_bench.cli import main; "
            f"build_site({str(results)!r}, {str(tmp_path / 'site')!r}, plots='copy'); "
            f"main(['report', '--format', 'html', '--results-dir', {str(results)!r}, '--out', "
            f"{str(tmp_path / 'cli')!r}], standalone_mode=False); "
            "bad = sorted(m for m in ('torch', 'dgl') if m in sys.modules); "
            "assert not bad, bad")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "cli" / "index.html").is_file()
    # outside the results folder the report's PNGs are copied
    copied = tmp_path / "site" / "toy" / "plots" / "accuracy_vs_noise_cora_planetoid_transductive.png"
    assert copied.read_bytes() == _png()


def test_lazy_registry_loads_its_package_on_first_lookup(tmp_path, monkeypatch):
    import types

    reg = Registry("widget", loader="gkd_lazyreg_pkg")
    monkeypatch.setitem(sys.modules, "gkd_lazyreg_holder", types.SimpleNamespace(REG=reg))
    pkg = tmp_path / "gkd_lazyreg_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from gkd_lazyreg_holder import REG\nREG.register('alpha')(lambda: 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg.register("beta")(lambda: 2)  # registering does not load
    assert "gkd_lazyreg_pkg" not in sys.modules
    try:
        assert reg.names() == ["alpha", "beta"] and "gkd_lazyreg_pkg" in sys.modules
        assert len(reg) == 2 and "alpha" in reg and reg.get("alpha")() == 1
        with pytest.raises(UnknownNameError, match="unknown widget 'alpah'; did you mean alpha"):
            reg.get("alpah")
    finally:
        sys.modules.pop("gkd_lazyreg_pkg", None)
    broken = Registry("gadget", loader="no_such_module_for_gkd")
    for _ in range(2):  # a failed load is retried, not remembered as done
        with pytest.raises(ModuleNotFoundError):
            broken.names()


def test_build_errors(tmp_path, built):
    with pytest.raises(FileNotFoundError, match="no records under"):
        site.build_site(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(FileNotFoundError, match=r"suite\(s\) \['nope'\].*suites with records: toy"):
        site.build_site(built[0], tmp_path / "o", suites=["nope"])
    with pytest.raises(ValueError, match="plots must be"):
        site.build_site(built[0], tmp_path / "o", plots="sometimes")


def test_cli_report_html(tmp_path):
    from click.testing import CliRunner

    from gkd_bench.cli import main

    results = tmp_path / "results"
    make_records(results, datasets={"cora": CORA[:3]}, seeds=2)
    r = CliRunner().invoke(main, ["report", "--format", "html", "--out", str(tmp_path / "web"),
                                  "--results-dir", str(results)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "web" / "index.html").is_file()
    # a site outside the results folder carries copies of the records its pages link
    copies = sorted(p.name for p in (tmp_path / "web" / "toy" / "records").glob("*.json"))
    assert copies == sorted(p.name for p in (results / "runs" / "toy").glob("*.json")) and len(copies) == 7
    assert not (tmp_path / "web" / "LEADERBOARD.md").exists() and not (results / "toy").exists()
    # no plots beside a LEADERBOARD.md to copy: the site draws them (gkd_bench.plots)
    assert sorted(p.name for p in (tmp_path / "web" / "toy" / "plots").glob("*.png")) == [
        "accuracy_vs_latency_cora_planetoid_transductive.png", "accuracy_vs_noise_cora_planetoid_transductive.png"]
    # with another format the site goes to <out>/site; the csv path is unchanged
    r = CliRunner().invoke(main, ["report", "--format", "csv", "--format", "html", "--out", str(tmp_path / "both"),
                                  "--results-dir", str(results)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "both" / "leaderboard.csv").is_file() and (tmp_path / "both" / "site" / "index.html").is_file()
    assert not (tmp_path / "both" / "LEADERBOARD.md").exists()


# --------------------------------------------------------------------------- headless Chromium
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]


def _browser_or_skip():
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver")
                                               else None)
    if not chromium or not driver:
        pytest.skip("headless browser test needs Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver; .ci/run installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("headless browser test needs the selenium package (pip install '.[test]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in CHROMIUM_FLAGS + [f"--user-data-dir={tempfile.mkdtemp(prefix='gkd-chromium-')}"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(driver))


@pytest.fixture(scope="module")
def browser():
    d = _browser_or_skip()
    yield d
    d.quit()


def _errors(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_site_in_headless_chromium(built, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, out, index, _ = built
    d = browser
    # the console check can fail: a page with a broken script is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><title>x</title><script>no_such_function_gkd();</script>")
    d.get(bad.as_uri())
    assert any("no_such_function_gkd" in e["message"] for e in _errors(d))

    d.get(index.as_uri())
    assert d.title == "gkd-bench leaderboards"
    d.find_element(By.LINK_TEXT, "cora").click()
    assert d.title.startswith("cora · planetoid · transductive")
    # no network: every script, stylesheet and image is a local file, and they loaded
    urls = d.execute_script("return Array.from(document.querySelectorAll('script[src], link[href], img'))"
                            ".map(e => e.src || e.href)")
    assert len(urls) >= 4 and all(u.startswith(("file://", "data:")) for u in urls), urls
    assert d.execute_script("return getComputedStyle(document.querySelector('header.top')).backgroundColor") \
        == "rgb(23, 50, 77)"  # site.css applied
    assert d.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert len(d.find_elements(By.CSS_SELECTOR, ".plots img")) == 2

    def column(key):
        idx = d.execute_script(
            "return Array.from(document.querySelectorAll('#leaderboard thead th')).findIndex(th => th.dataset.key === arguments[0])",
            key)
        return d.execute_script(
            "return Array.from(document.querySelectorAll('#leaderboard tbody tr')).filter(r => !r.hidden)"
            ".map(r => r.cells[arguments[0]].textContent.trim())", idx)

    def header(key):
        return d.find_element(By.CSS_SELECTOR, f'#leaderboard th[data-key="{key}"]')

    means = [float(t.split(" ")[0]) for t in column("test")]
    assert means == sorted(means, reverse=True) and len(means) == len(CORA)  # initial order: best first
    header("test").click()  # already high to low: the first click on a number sorts high to low
    header("test").click()  # ... the second reverses
    means2 = [float(t.split(" ")[0]) for t in column("test")]
    assert means2 == sorted(means) and means2 != means
    assert header("test").get_attribute("aria-sort") == "ascending"
    header("student").click()
    students = column("student")
    assert students == sorted(students) and students != [s for _, s, *_ in sorted(CORA, key=lambda c: -c[3])]
    header("gain_vs_none").click()  # empty cells (runs without a `none` partner) stay last
    gains = column("gain_vs_none")
    filled = [g for g in gains if g]
    assert gains[: len(filled)] == filled and [float(g.split()[0]) for g in filled] == sorted(
        (float(g.split()[0]) for g in filled), reverse=True)

    count = d.find_element(By.CSS_SELECTOR, "[data-row-count]")
    assert count.text == f"{len(CORA)} of {len(CORA)} configurations"
    Select(d.find_element(By.CSS_SELECTOR, 'select[data-filter-col="distiller"]')).select_by_value("kd")
    assert len(column("test")) == sum(c[2] == "kd" for c in CORA) == 2
    Select(d.find_element(By.CSS_SELECTOR, 'select[data-filter-col="teacher"]')).select_by_value("gcn")
    assert len(column("test")) == 1 and count.text == f"1 of {len(CORA)} configurations"
    assert column("student") == ["mlp"] and column("distiller") == ["kd"]

    extra = d.find_element(By.CSS_SELECTOR, 'th[data-key="val"]')
    assert not extra.is_displayed()
    d.find_element(By.CSS_SELECTOR, "input[data-show-extra]").click()
    assert extra.is_displayed()

    row = [r for r in d.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr") if r.is_displayed()][0]
    row.find_element(By.CSS_SELECTOR, "a.config-link").click()
    assert d.title.startswith("gcn → mlp kd")
    seeds = d.find_elements(By.CSS_SELECTOR, "#seed-table tbody tr")
    assert [s.find_elements(By.TAG_NAME, "td")[0].text for s in seeds] == ["0", "1", "2"]
    seeds[0].find_element(By.TAG_NAME, "a").click()
    assert '"distiller": "kd"' in d.page_source or '"distiller":"kd"' in d.page_source

    d.get((out / "compare" / "toy.html").as_uri())
    assert d.title == "Paper vs ours: toy"
    assert _errors(d) == []
