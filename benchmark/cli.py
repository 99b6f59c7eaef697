"""The ``gkd-bench`` command line (click).

Commands: ``list``, ``run``, ``report``, ``datasets``. Bad input (unknown
names, malformed suites, missing data) exits non-zero with a one-line reason;
Ctrl-C during ``run`` keeps every finished record and exits 130.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from gkd_bench.registry import DATASETS, DISTILLERS, MODELS, UnknownNameError

data_dir_opt = click.option("--data-dir", envvar="GKD_BENCH_DATA", type=click.Path(file_okay=False),
                            default=None, help="dataset root (default $GKD_BENCH_DATA or ~/.cache/gkd-bench/data)")
results_dir_opt = click.option("--results-dir", type=click.Path(file_okay=False), default="results",
                               show_default=True, help="where records and leaderboards are written")


def _split(values):
    out = []
    for v in values or ():
        out += [p for p in v.split(",") if p]
    return out or None


def _config_errors() -> tuple:
    """Error classes shown as one-line exits. ``DatasetError``/``SuiteError`` live in modules that import
    torch; a class can only have been raised once its module was imported, so unimported ones are skipped
    (``report`` and the site then run without importing torch)."""
    errors = [UnknownNameError, OSError, ValueError]
    for module, name in (("gkd_bench.data", "DatasetError"), ("gkd_bench.spec", "SuiteError"),
                         ("gkd_bench.executors", "ExecutorUnavailable")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


class _Errors(click.Group):
    """Turns configuration errors into clean non-zero exits; imports heavy commands on first use."""

    LAZY = {"datasets": ("gkd_bench.dataset_stats", "datasets_cmd")}  # name -> (module, command) importing torch

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.LAZY))

    def get_command(self, ctx, name):
        if name in self.LAZY and name not in self.commands:
            module, attr = self.LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _config_errors() as e:
            raise click.ClickException(str(e)) from None


def suite_options(all_help: str):
    """The options that pick and narrow a suite (``run`` and ``status`` share them)."""
    opts = [click.option("--all", "run_all", is_flag=True, help=all_help),
            click.option("--suite", default=None, help="a shipped suite name or a YAML file"),
            click.option("--dataset", multiple=True, help="only these datasets (repeat or comma-separate)"),
            click.option("--teacher", multiple=True, help="only these teachers (suite model labels)"),
            click.option("--student", multiple=True, help="only these students"),
            click.option("--distiller", multiple=True, help="only these distillers"),
            click.option("--setting", multiple=True, type=click.Choice(["transductive", "inductive"])),
            click.option("--seeds", default=None, help="e.g. 0-9 or 0,1,2 (default: the suite's)"),
            click.option("--set", "sets", multiple=True, help="override a suite key: models.gcn.hidden=32")]

    def apply(f):
        for opt in reversed(opts):
            f = opt(f)
        return f

    return apply


@click.group(cls=_Errors)
@click.version_option(package_name="gkd-bench")
def main():
    """gkd-bench: a benchmark suite for knowledge distillation on graph neural networks."""


@main.command("list")
@click.argument("what", required=False, type=click.Choice(["datasets", "models", "distillers", "suites"]))
def list_cmd(what):
    """List registered datasets, models, distillers and shipped suites."""
    from gkd_bench.spec import list_suites

    tables = {"datasets": DATASETS.names(), "models": MODELS.names(), "distillers": DISTILLERS.names(),
              "suites": list_suites()}
    for key, names in tables.items():
        if what in (None, key):
            click.echo(f"{key}: {', '.join(names)}")


@main.command()
@suite_options("the default suite")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown", show_default=True)
@results_dir_opt
def status(run_all, suite, dataset, teacher, student, distiller, setting, seeds, sets, fmt, results_dir):
    """How far a suite's sweep has come: runs done, failed, skipped and to do per dataset and setting,
    training hours spent and an estimate of the hours left (gkd_bench.progress)."""
    from gkd_bench.progress import status_table
    from gkd_bench.spec import expand, load_suite

    if run_all and suite:
        raise click.UsageError("give --all or --suite, not both")
    suite_dict = load_suite(suite or "default")
    specs = expand(suite_dict, datasets=_split(dataset), teachers=_split(teacher), students=_split(student),
                   distillers=_split(distiller), seeds=seeds, settings=list(setting) or None, sets=sets,
                   all_seeds=True)
    table = status_table(results_dir, specs)
    if fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
        return
    click.echo(f"suite {suite_dict['name']}: {results_dir}/runs/{suite_dict['name']}\n")
    click.echo(table.to_markdown(index=False))
    click.echo("\nest_h_to_do: per run to do, the median train_s (wall time) of the finished runs of the same "
               "student and distiller on that dataset and setting; stage2_undecided: runs of two-stage "
               "searches that stage 1 decides; unestimated: runs of a kind with no finished run yet")


@main.command()
@suite_options("run the default suite (every method x dataset)")
@click.option("--rerun", is_flag=True, help="run even when an ok record exists")
@click.option("--fail-fast", is_flag=True, help="raise on the first failure instead of recording it")
@click.option("--no-timing", is_flag=True, help="skip inference-latency measurements")
@click.option("--dry-run", is_flag=True, help="list the runs, train nothing")
@click.option("--report/--no-report", default=True, show_default=True, help="write the leaderboard afterwards")
@click.option("--cache-dir", envvar="GKD_BENCH_CACHE", default=None, type=click.Path(file_okay=False))
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one run after another in this process; ray: one Ray task per run "
                   "(needs pip install gkd-bench[ray]; results/cache/data dirs on shared storage)")
@click.option("--address", default=None,
              help="Ray cluster address (auto, ray://HOST:10001, HOST:6379); default: start a local Ray")
@click.option("--cpus-per-task", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ray: CPUs each run reserves (torch threads inside the task)")
@click.option("--max-retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Ray: retries of a run whose worker process died")
@data_dir_opt
@results_dir_opt
def run(run_all, suite, dataset, teacher, student, distiller, setting, seeds, sets, rerun, fail_fast, no_timing,
        dry_run, report, cache_dir, executor, address, cpus_per_task, max_retries, data_dir, results_dir):
    """Run a suite (or a narrowed part of it); finished runs are skipped."""
    from gkd_bench.records import record_path, read_record
    from gkd_bench.runner import Runner
    from gkd_bench.spec import expand, load_suite

    if run_all and suite:
        raise click.UsageError("give --all or --suite, not both")
    if address and executor != "ray":
        raise click.UsageError("--address needs --executor ray")
    if executor == "ray" and not dry_run:  # before any work: a clear error when the extra is missing
        from gkd_bench.executors import import_ray

        import_ray()
    suite_dict = load_suite(suite or "default")
    all_specs = expand(suite_dict, datasets=_split(dataset), teachers=_split(teacher), students=_split(student),
                       distillers=_split(distiller), seeds=seeds, settings=list(setting) or None, sets=sets,
                       all_seeds=True)
    from gkd_bench.search import is_stage2, stage2_specs, sync_records

    # two-stage searches (search: {..., seeds: ...}): stage 1 now, stage 2 once stage 1's records decide it
    specs = [s for s in all_specs if not is_stage2(s)]
    name = suite_dict["name"]
    if dry_run:
        def show(s, note=""):
            done = (read_record(record_path(Path(results_dir), s.suite, s.run_id)) or {}).get("status")
            method = f"{s.student['label']:<8} {s.search['label'] if s.search else s.distiller['label']:<10}"
            click.echo(f"{s.run_id}  {s.dataset:<12} {s.setting:<12} "
                       f"{(s.teacher or {}).get('label', '-'):>6} -> {method} seed {s.seed}  {done or ''}{note}")

        for s in specs:
            show(s)
        decided, pending = stage2_specs(results_dir, all_specs)
        for s in decided:
            show(s, "  (stage 2: selected on the search seeds)")
        click.echo(f"{len(specs) + len(decided)} runs" + (f" ({len(decided)} of them stage 2)" if decided else ""))
        if pending:
            n_later = sum(1 for s in pending if s.search["index"] == 0)
            n_groups = len({(s.dataset, s.setting, s.student["label"], s.distiller["label"],
                             s.search["group"]) for s in pending})
            click.echo(f"stage 2: {n_later} more runs (the selected grid point of {n_groups} two-stage search "
                       f"group(s) on the remaining seeds) are decided after stage 1")
        return
    from gkd_bench.executors import make_executor

    # grid points equal to configurations run before: their records are reused, tagged with the search;
    # every seed's record (stage-2 seeds too), so a grown grid leaves no record tagged with the old one
    sync_records(results_dir, all_specs)
    runner = Runner(results_dir, data_root=data_dir, cache_dir=cache_dir, rerun=rerun, fail_fast=fail_fast,
                    timing=not no_timing)
    counts, ex = {}, make_executor(executor, address, cpus_per_task, max_retries)
    try:
        for stage in (1, 2):
            if stage == 2:
                specs, pending = stage2_specs(results_dir, all_specs)
                if pending:
                    click.echo(f"stage 2: {len({s.search['group'] for s in pending})} search group(s) wait for "
                               f"an incomplete stage 1 (see the provisional selections in the report)", err=True)
                if not specs:
                    break  # (their records, if any, were re-tagged with all_specs above)
            got = runner.run(specs, progress=sys.stderr.isatty() or True, executor=ex)
            for k, v in got.items():
                counts[k] = counts.get(k, 0) + v
    except KeyboardInterrupt:
        click.echo("\ninterrupted: every finished run is recorded; run the same command again to resume",
                   err=True)
        sys.exit(130)
    n_runs = sum(counts.values()) if counts else len(specs)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()) if v)
    click.echo(f"suite {name}: {n_runs} runs ({summary})")
    if report:
        from gkd_bench.report import write_report

        for p in write_report(results_dir, name):
            click.echo(f"wrote {p}")
    if counts.get("error") or counts.get("oom"):
        click.echo("some runs failed; their records hold the error (see LEADERBOARD.md)", err=True)


@main.command()
@click.option("--suite", "suites", multiple=True, help="suite(s) to report (default: every suite with records)")
@click.option("--format", "formats", multiple=True, type=click.Choice(["markdown", "csv", "html"]),
              help="default: markdown and csv; html: a static site (open index.html, works offline)")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="output folder (default results/<suite>; html: results/site, or <out>/site next to other formats)")
@click.option("--compare", default=None, help="print 'paper vs ours' for a reference source (results/reference); "
                   "also written to <results-dir>/compare/SOURCE.md")
@results_dir_opt
def report(suites, formats, out, compare, results_dir):
    """Write leaderboards (runs.csv, leaderboard.csv, LEADERBOARD.md; html: a static site) from the records."""
    from gkd_bench.report import write_report

    root = Path(results_dir) / "runs"
    names = list(suites) or (sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    if not names:
        raise click.ClickException(f"no records under {root}; run `gkd-bench run` first")
    tabular = [f for f in (formats or ("markdown", "csv")) if f != "html"]
    for name in names if tabular else []:
        dest = Path(out) / name if out and len(names) > 1 else out
        for p in write_report(results_dir, name, dest, tabular):
            click.echo(f"wrote {p}")
    if "html" in formats:  # after markdown: the site copies the plots in results/<suite>/, draws missing ones
        from gkd_bench.site import build_site

        site = (Path(out) / "site" if tabular else Path(out)) if out else Path(results_dir) / "site"
        click.echo(f"wrote {build_site(results_dir, site, names)}")
    if compare:
        from gkd_bench.compare import compare_table

        text = compare_table(results_dir, compare, suites=list(suites) or None)
        click.echo(text)
        dest = Path(results_dir) / "compare" / f"{compare}.md"
        dest.parent.mkdir(parents=True, exist_ok=True)
        cmd = " ".join(["gkd-bench report", *(f"--suite {s}" for s in suites), f"--compare {compare}"])
        dest.write_text(f"<!-- generated by `{cmd}` from the records in runs/; do not edit by hand -->\n" + text)
        click.echo(f"wrote {dest}")


@main.command("import")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--suite", required=True, help="the suite whose records to import (its plan decides what belongs)")
@click.option("--dataset", multiple=True, help="only these datasets (repeat or comma-separate)")
@click.option("--replace", is_flag=True, help="overwrite ok records already present whose content differs")
@click.option("--dry-run", is_flag=True, help="say what would be imported, write nothing")
@results_dir_opt
def import_cmd(source, suite, dataset, replace, dry_run, results_dir):
    """Import finished records of a suite from SOURCE (another results folder: a sweep in another checkout
    or on another machine) into --results-dir, checking each record's identity, its commit (a clean
    ancestor of this checkout's HEAD) and that the suite's current plan has its run."""
    from gkd_bench.publish import import_records

    try:
        res = import_records(source, results_dir, suite, datasets=_split(dataset), replace=replace,
                             dry_run=dry_run)
    except (FileNotFoundError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    reasons: dict = {}
    for rid, why in res.refused.items():
        reasons.setdefault(why, []).append(rid)
    for why, ids in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        more = f" (+{len(ids) - 3} more)" if len(ids) > 3 else ""
        click.echo(f"refused {len(ids)}: {why}: {', '.join(ids[:3])}{more}", err=True)
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {len(res.imported)} new and {len(res.replaced)} replacing records; "
               f"{len(res.identical)} already identical; {len(res.refused)} refused"
               + (f"; {len(res.other_datasets)} of other datasets left alone" if res.other_datasets else ""))
    if res.imported or res.replaced:
        click.echo(f"then: gkd-bench report --suite {suite}" + (" (not written: dry run)" if dry_run else ""))


from gkd_bench.ci_checks import check as _check_cmd  # noqa: E402

main.add_command(_check_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
