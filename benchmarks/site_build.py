"""Wall time of building the static site (issue 10 target: under 10 s for the published results).

Usage::

    python benchmarks/site_build.py RESULTS_DIR                 # time the site of RESULTS_DIR
    python benchmarks/site_build.py RESULTS_DIR --replicate 40  # ... of RESULTS_DIR's records copied 40x
                                                                #     under new dataset names (scale test)

The site goes to ``RESULTS_DIR/site`` (the CLI's default; ``--out`` to change),
so pages link the records instead of copying them. The build runs in a fresh interpreter (``python -m gkd_bench.site``), so the
time includes importing pandas and Jinja2, as a user running
``gkd-bench report --format html`` would see it minus the CLI's own imports.
Plots are copied when present beside ``LEADERBOARD.md`` (``--plots`` to change).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def replicate(src: Path, dst: Path, times: int) -> int:
    """Copy every record of ``src/runs`` ``times`` times under dataset names ``<name>-<k>``; returns the count."""
    n = 0
    for f in sorted((src / "runs").glob("*/*.json")):
        rec = json.loads(f.read_text())
        for k in range(times):
            r = dict(rec)
            r["dataset"] = f"{rec.get('dataset')}-{k}"
            if isinstance(r.get("spec"), str):
                spec = json.loads(r["spec"])
                spec["dataset"] = r["dataset"]
                r["spec"] = json.dumps(spec, sort_keys=True, separators=(",", ":"))
            r["config_id"] = f"{rec.get('config_id')}k{k}"
            r["run_id"] = f"{r['config_id']}-s{rec.get('seed')}"
            out = dst / "runs" / f.parent.name / f"{r['run_id']}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(r))
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("--replicate", type=int, default=0, help="copy the records this many times (scale test)")
    ap.add_argument("--plots", default="copy", choices=["auto", "copy", "generate", "none"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="site folder (default RESULTS_DIR/site)")
    a = ap.parse_args()
    results = a.results_dir
    tmp = None
    if a.replicate:
        tmp = Path(tempfile.mkdtemp(prefix="gkd-site-bench-"))
        n = replicate(results, tmp, a.replicate)
        print(f"{n} records ({a.replicate} x those of {results})")
        results = tmp
    else:
        print(f"{len(list((results / 'runs').glob('*/*.json')))} records in {results}")
    out = a.out or results / "site"
    times, cpu = [], []
    for _ in range(a.repeat):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gkd_bench.site", str(results), "--out", str(out), "--plots", a.plots],
                       check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    pages = len(list(out.rglob("*.html")))
    print(f"site build (fresh interpreter, plots={a.plots}): wall min {min(times):.2f} s "
          f"(all {', '.join(f'{t:.2f}' for t in times)}), CPU (user+sys) min {min(cpu):.2f} s; {pages} pages; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
