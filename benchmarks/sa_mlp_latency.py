"""SA-MLP's online@10 latency next to the MLP's, side by side in one process (issue 5, claim 2).

SA-MLP claims inference "close to an MLP". The records of the ``sa-mlp`` suite
each carry an online@10 latency, but the MLP's and SA-MLP's come from different
runs, taken minutes or hours apart under different machine load, so their ratio
moves with the load (citeseer transductive: the MLP alone measured 0.426 ms, the
same MLP architecture as GLNN's student 0.27 ms). This benchmark measures the
ratio the claim needs: for each dataset entry, setting and seed of the suite it
builds the suite's graph-free ``mlp`` student and its structure-aware students
(``sa_mlp``; inductive also ``sa_mlp_lsea``, whose held-out nodes use g(x)) for
that seed's data (setting and held-out nodes applied, as the runner does), and
times their end-to-end ``online@B`` prediction of the same B seeded test nodes
in turns (:func:`gkd_bench.timing.interleaved_online`). Weights are random:
latency does not depend on them (every path runs the same operations).

Output: ``results/<suite>/online_latency.json`` (``--out``), rewritten after
each (dataset, setting, seed) (an interrupted run keeps the finished ones; rows
measured earlier for other datasets or seeds are kept, rows re-measured are
replaced), one row per (dataset, setting, seed, student) with its provenance
(git sha, versions, hardware, threads, arguments): ``latency_ms`` (median
per-call time) and ``ratio`` = latency over the ``mlp`` student's, measured call by call in turns.
``gkd-bench report`` reads the file for the SA-MLP claims section (claim 2); without it the claim falls back
to the records' latencies and says so.

Usage::

    GKD_BENCH_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/sa_mlp_latency.py \\
        [--suite sa-mlp] [--dataset cora --dataset citeseer] [--seeds 0-2] [--batch 10] \\
        [--calls 2000] [--out results/sa-mlp/online_latency.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from tabulate import tabulate

import gkd_bench  # noqa: F401  (fills the registries)
from gkd_bench.data import MissingDataError
from gkd_bench.env import environment
from gkd_bench.runner import Runner, build_model
from gkd_bench.spec import canonical, expand, load_suite, parse_seeds
from gkd_bench.timing import interleaved_online, online_nodes

REFERENCE = "mlp"  # the graph-free student the claim compares with
STRUCTURE_AWARE = ("sa_mlp",)  # model names timed against it


def groups(suite: dict, entries, seeds):
    """``{(entry dataset, protocol, setting, options, seed): {student label: student spec}}`` of the suite's
    unperturbed runs whose student is the reference or a structure-aware model."""
    out: dict = {}
    for spec in expand(suite, datasets=entries, seeds=seeds):
        if spec.perturbation is not None or not (spec.student["label"] == REFERENCE
                                                 or spec.student["model"] in STRUCTURE_AWARE):
            continue
        key = (spec.dataset, spec.protocol, spec.setting, canonical(spec.dataset_options), spec.seed)
        out.setdefault(key, {"spec": spec, "students": {}})["students"][spec.student["label"]] = spec.student
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="sa-mlp")
    ap.add_argument("--dataset", action="append", default=None, help="dataset names (default: all of the suite)")
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--calls", type=int, default=2000, help="timed calls per model")
    ap.add_argument("--out", default=None, help="default: results/<suite>/online_latency.json")
    args = ap.parse_args(argv)
    suite = load_suite(args.suite)
    out = Path(args.out or Path("results") / suite["name"] / "online_latency.json")
    seeds = parse_seeds(args.seeds)
    meta = {"suite": suite["name"], "benchmark": "benchmarks/sa_mlp_latency.py", "reference": REFERENCE}
    prov = {"argv": " ".join(sys.argv[1:]), "batch": args.batch, "calls": args.calls, **environment()}
    key_of = lambda r: (r["dataset"], r["split"], r["setting"], r["options"], r["seed"])  # noqa: E731
    try:  # rows of other datasets and seeds measured earlier are kept, each with its own provenance
        kept = json.loads(out.read_text())["rows"] if out.exists() else []
    except (ValueError, KeyError) as e:
        raise SystemExit(f"{out} is not a file this benchmark wrote ({e}); move it away and run again")
    rows, new = list(kept), 0
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(tmp)  # its data loading only (settings, held-out nodes); writes nothing
        found = groups(suite, args.dataset, seeds)
        for (dataset, protocol, setting, options, seed), grp in sorted(found.items()):
            students = grp["students"]
            if REFERENCE not in students:
                continue
            try:
                data = runner.load_data(grp["spec"])
            except MissingDataError as e:
                print(f"skipped {dataset} ({setting}, seed {seed}): {e}", file=sys.stderr)
                continue
            torch.manual_seed(seed)  # the random weights (latency does not depend on them)
            ordered = sorted(students.items(), key=lambda kv: kv[0] != REFERENCE)  # the reference first
            models = {label: build_model(s, data) for label, s in ordered}
            nodes = online_nodes(data, args.batch, seed)
            res = interleaved_online(models, data.graph, data.x, nodes, args.calls)
            ref = res[REFERENCE]["median_ms"]
            fresh = [{"dataset": dataset, "split": protocol, "setting": setting, "options": options,
                      "seed": seed, "student": label, "model": students[label]["model"],
                      "student_hparams": canonical(students[label]["hparams"]), "latency_ms": r["median_ms"],
                      "p90_ms": r["p90_ms"], "ratio": r["median_ms"] / ref, **prov} for label, r in res.items()]
            rows = [r for r in rows if key_of(r) != key_of(fresh[0])] + fresh
            new += len(fresh)
            print(tabulate([[dataset, setting, seed, r["student"], f"{r['latency_ms']:.3f}", f"{r['ratio']:.2f}x"]
                            for r in fresh], tablefmt="plain"), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    if not new:
        print("no (dataset, setting, seed) with both the reference MLP and an SA-MLP student", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
