"""Plain-words checks of published claims against a leaderboard (``gkd_bench.report.leaderboard``).

:func:`alignahead_claims` checks the two claims of Alignahead (Guo et al.,
IJCNN 2022) and Alignahead++ (arXiv 2210.13743), per dataset:

1. every online student beats the same model trained alone;
2. the gain grows with the number of students K.

:func:`sa_mlp_claims` checks SA-MLP's (Chen et al., arXiv 2210.09609) per
dataset and setting: SA-MLP (+SMKD) matches or beats its GNN teacher, at an
online latency within 2x of the MLP's.

Whatever the answer, it is what the records show: nothing here is tuned.
"""
from __future__ import annotations

import json
import math
import re
from typing import List, Optional

import pandas as pd

ONLINE = ("alignahead", "alignahead++")


def _num(v) -> Optional[float]:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _pm(mean, std=None) -> str:
    mean, std = _num(mean), _num(std)
    if mean is None:
        return ""
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def variant_name(distiller_hparams: dict) -> str:
    """``Alignahead`` (structure only), ``Alignahead++`` (+ features + deep supervision) or the
    switched-on parts, with the pairing and initialisation when they are not the defaults."""
    fa, ds = bool(distiller_hparams.get("feature_align")), bool(distiller_hparams.get("deep_supervision"))
    name = {(False, False): "Alignahead", (True, True): "Alignahead++",
            (True, False): "Alignahead + features", (False, True): "Alignahead + deep supervision"}[(fa, ds)]
    extras = []
    if distiller_hparams.get("pairing", "ahead-code") != "ahead-code":
        extras.append(f"pairing {distiller_hparams['pairing']}")
    if distiller_hparams.get("identical_init"):
        extras.append("identical init")
    if _num(distiller_hparams.get("a", 1.0)) != 1.0:
        extras.append(f"a={distiller_hparams['a']}")
    return name + (f" ({', '.join(extras)})" if extras else "")


def _student_cols(row: pd.Series) -> List[str]:
    cols = [c for c in row.index if re.fullmatch(r"test_s\d+_mean", c) and _num(row[c]) is not None]
    return sorted(cols, key=lambda c: int(c[6:-5]))


def _gain(row) -> str:
    g = _num(row.get("gain_vs_none"))
    if g is None:
        return ""
    return f"{g:+.2f}" + (" ~" if bool(row.get("gain_within_std")) else "")


def _clean_rows(lb: pd.DataFrame) -> pd.DataFrame:
    """The rows of models trained on clean data: a leaderboard made with ``include_perturbed=True`` also
    holds train-time robustness configs (``perturbation_kind`` set), which no claim compares."""
    return lb[lb["perturbation_kind"].isna()] if "perturbation_kind" in lb else lb


def alignahead_claims(lb: pd.DataFrame) -> str:
    """Markdown section: per dataset, the student alone and every Alignahead variant by K, and the
    papers' two claims checked in plain words.

    Args:
        lb: a leaderboard (``gkd_bench.report.leaderboard``) with the columns
            ``dataset, split, setting, student, distiller_name, hparams,
            test_mean, test_std, n`` and, for online runs, ``test_s<k>_mean``,
            ``test_min_student_mean``, ``test_best_student_mean``,
            ``test_ensemble_mean``, ``gain_vs_none``, ``gain_vs_none_std``,
            ``gain_within_std``.

    Returns:
        Markdown text ("" when ``lb`` has no alignahead rows).

    Claim 1 holds for a (variant, K) when the mean over seeds of every
    student index (``test_s<k>_mean``) is above the mean of the student
    alone on the same seeds (``none_paired_mean``; the alone row's mean when
    absent, and the same once every seed has run); claim 2 holds for a
    variant when its gain over the student alone grows strictly from each K
    to the next (K = 1 is the student alone, gain 0). Differences within one
    std of the paired differences are called so.
    """
    lb = _clean_rows(lb)
    if lb.empty or "distiller_name" not in lb or not lb["distiller_name"].isin(ONLINE).any():
        return ""
    out = ["## Alignahead claims\n",
           "Per dataset: the student alone (K = 1, `none`) and each online variant with K peer students. "
           "`students` = mean over the K students (mean ± std over seeds), `worst` / `best (val)` = the "
           "worst student and the student with the best validation score (means over seeds), `ensemble` = "
           "mean logits of the K students, `gain` = paired gain of the mean student over the student alone "
           "('~': within one std). Claim 1: every online student beats the same model trained alone "
           "(each student index, mean over seeds, above the alone mean on the same seeds). Claim 2: the gain "
           "grows with K.\n"]
    keys = ["dataset", "split", "setting", "student"]
    for key, g in lb.groupby(keys, sort=True):
        online = g[g["distiller_name"].isin(ONLINE)]
        if online.empty:
            continue
        ds, split, setting, student = key
        alone = g[g["distiller_name"] == "none"]
        alone_row = alone.iloc[0] if not alone.empty else None
        alone_mean = _num(alone_row["test_mean"]) if alone_row is not None else None
        out.append(f"### {ds} — {split} split, {setting}, student `{student}`\n")
        rows = []
        if alone_row is not None:
            rows.append({"method": "alone", "K": 1, "students": _pm(alone_row["test_mean"], alone_row.get("test_std")),
                         "worst": "", "best (val)": "", "ensemble": "", "gain": "", "n": int(alone_row["n"])})
        variants = {}
        for _, r in online.iterrows():
            hp = json.loads(r["hparams"])["distiller"]
            K = int(hp.get("num_students", 2))
            variants.setdefault(variant_name(hp), []).append((K, r))
        for name in sorted(variants):
            for K, r in sorted(variants[name], key=lambda t: t[0]):
                rows.append({"method": name, "K": K, "students": _pm(r["test_mean"], r.get("test_std")),
                             "worst": _pm(r.get("test_min_student_mean")),
                             "best (val)": _pm(r.get("test_best_student_mean")),
                             "ensemble": _pm(r.get("test_ensemble_mean")), "gain": _gain(r), "n": int(r["n"])})
        out.append(pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True))
        out.append("")
        if alone_mean is None:
            out.append(f"- No `none` run of `{student}` on {ds}: the claims cannot be checked.\n")
            continue
        for name in sorted(variants):
            runs = [(K, r) for K, r in sorted(variants[name], key=lambda t: t[0]) if K >= 2]
            if not runs:
                continue
            # claim 1: every student index above the student alone
            verdicts = []
            for K, r in runs:
                cols = _student_cols(r)
                if not cols:
                    continue
                lowest = min(_num(r[c]) for c in cols)
                ref = _num(r.get("none_paired_mean"))  # the student alone on this row's seeds
                ref = alone_mean if ref is None else ref
                ok = lowest > ref
                note = ", gain within one std" if ok and bool(r.get("gain_within_std")) else ""
                if abs(ref - alone_mean) >= 0.005:  # seeds not yet all run: compare on the shared ones
                    note += f"; alone {ref:.2f} on its {int(r['n'])} seed{'s' if int(r['n']) != 1 else ''}"
                verdicts.append((ok, f"K={K} {'yes' if ok else 'no'} (lowest student {lowest:.2f}{note})"))
            overall = ("yes" if all(v for v, _ in verdicts) else
                       "no" if not any(v for v, _ in verdicts) else "partly")
            c1 = f"{overall} (alone {alone_mean:.2f}): " + "; ".join(t for _, t in verdicts)
            # claim 2
            gains = [(1, 0.0, None)] + [(K, _num(r.get("gain_vs_none")), r) for K, r in runs]  # K=1: alone
            gains = [t for t in gains if t[1] is not None]
            seq = ", ".join(f"{g:+.2f} (K={K})" for K, g, _ in gains)
            if len(gains) < 3:
                c2 = f"not checkable (gains {seq}: fewer than two online K)"
            else:
                steps = [(a, b) for a, b in zip(gains, gains[1:])]
                grows = all(b[1] > a[1] for a, b in steps)
                within = [f"K={a[0]}->{b[0]}" for a, b in steps
                          if b[2] is not None and _num(b[2].get("gain_vs_none_std")) is not None
                          and abs(b[1] - a[1]) <= _num(b[2].get("gain_vs_none_std"))]
                c2 = ("yes" if grows else "no") + f": gains {seq}"
                if not grows:
                    drops = [f"K={a[0]}->{b[0]}" for a, b in steps if b[1] <= a[1]]
                    c2 += f"; no growth at {', '.join(drops)}"
                if within:
                    c2 += f"; steps within one std of the paired differences: {', '.join(within)}"
            out.append(f"- **{name}** — claim 1 (every online student beats the same model alone): {c1}.")
            out.append(f"  Claim 2 (the gain grows with K): {c2}.")
        out.append("")
    return "\n".join(out) + "\n"


SA_MLP_DISTILLERS = ("sa_mlp_smkd", "sa_mlp_ind")
LATENCY_FACTOR = 2.0  # SA-MLP's claim: inference latency close to the MLP's; checked as "within 2x"


def _sa_mlp_method(row: pd.Series) -> Optional[str]:
    """The row's part in the SA-MLP comparison, or None: ``teacher``, ``MLP``, ``GLNN``, ``SA-MLP``,
    ``SA-MLP+SMKD``; inductive: ``SA-MLP`` / ``SA-MLP+SMKD`` are the latent-structure students
    (``sa_mlp_ind``), ``SA-MLP (observed edges)`` the KD-trained SA-MLP whose held-out nodes use their
    edges to observed nodes. Graph-free students are told apart by ``structure_invariant``."""
    name, free = row.get("distiller_name"), bool(row.get("structure_invariant"))
    teacher = row.get("teacher")
    if teacher in (None, "-") or (isinstance(teacher, float) and math.isnan(teacher)):
        return ("MLP" if free else "teacher") if name == "none" else None
    if name == "kd":
        return "GLNN" if free else ("SA-MLP (observed edges)" if row.get("setting") == "inductive" else "SA-MLP")
    if name == "sa_mlp_smkd":
        return "SA-MLP+SMKD"
    if name == "sa_mlp_ind":
        gamma = _num(json.loads(row["hparams"]).get("distiller", {}).get("gamma"))
        return "SA-MLP+SMKD" if gamma else "SA-MLP"
    return None


def _side_by_side(rows: Optional[pd.DataFrame], dataset, split, setting, student) -> Optional[tuple]:
    """``(mean ratio over seeds, number of seeds)`` of ``student``'s side-by-side rows, or None."""
    if rows is None or rows.empty:
        return None
    sub = rows[(rows["dataset"] == dataset) & (rows["split"] == split) & (rows["setting"] == setting)
               & (rows["student"] == student)]
    return (float(sub["ratio"].mean()), int(sub["seed"].nunique())) if len(sub) else None


def sa_mlp_claims(lb: pd.DataFrame, side_by_side: Optional[pd.DataFrame] = None) -> str:
    """Markdown section: per dataset, setting and teacher, the teacher, MLP, GLNN, SA-MLP and
    SA-MLP+SMKD side by side, and SA-MLP's claims checked in plain words.

    Args:
        lb: a leaderboard (``gkd_bench.report.leaderboard``) with ``dataset, split, setting, teacher,
            student, distiller_name, hparams, test_mean, test_std, n, student_params,
            latency_online10_ms, structure_invariant`` and, where measured, ``test_ind_mean``,
            ``speedup_online10``.
        side_by_side: rows of ``results/<suite>/online_latency.json`` (``benchmarks/sa_mlp_latency.py``:
            ``dataset, split, setting, seed, student, latency_ms, ratio``) or ``None``.

    Returns:
        Markdown text ("" when ``lb`` has no SA-MLP distillation rows).

    Claim 1 (SA-MLP and SA-MLP+SMKD match or beat the teacher they are distilled from): "beats" when
    the student's mean test score is at least the teacher's (both means over seeds, the teacher row
    being the same configuration trained alone), "matches" when it is below by at most the student's
    std over seeds, "no" otherwise. In the inductive setting ``test`` is the production score (all
    test nodes, held-out ones included); the held-out-node score is shown beside it. Claim 2 (online
    latency within 2x of the MLP's): "yes" when SA-MLP's online@10 latency over the MLP's is at most
    :data:`LATENCY_FACTOR`. The ratio is the mean over seeds of ``side_by_side``'s ratios (the two
    models timed call by call in turns in one process) where it has rows for the dataset, setting and
    student; otherwise the ratio of the two rows' latencies, each a mean over seeds of its own runs,
    taken at different times under different load, which the text then says. ``speedup`` is the
    teacher's online@10 latency over the row's, measured back to back in the distilled run
    (``speedup_online10``), or from the two rows' means for the MLP.
    """
    lb = _clean_rows(lb)
    if lb.empty or "distiller_name" not in lb or not lb["distiller_name"].isin(SA_MLP_DISTILLERS).any():
        return ""
    out = ["## SA-MLP claims\n",
           "Per dataset, setting and teacher: the GNN teacher trained alone, the MLP alone, GLNN (MLP + KD), "
           "SA-MLP (+ KD) and SA-MLP + structure-mixing KD; inductive: SA-MLP = the two-stage latent "
           "structure approximation (held-out nodes use g(x)), `SA-MLP (observed edges)` = SA-MLP + KD "
           "whose held-out nodes use their edges to observed nodes. `test` = mean ± std over seeds "
           "(inductive: production score), `held-out` = inductive held-out nodes, `online@10 ms` = median "
           "latency to predict 10 random test nodes (mean over seeds), `speedup` = teacher latency / "
           "this latency, `vs MLP, side by side` = online@10 latency over the MLP's, the two timed call by call "
           "in turns in one process (`benchmarks/sa_mlp_latency.py`, `online_latency.json`; mean over its "
           "seeds). Claim 1: SA-MLP(+SMKD) matches (within one std) or beats its teacher. Claim 2: "
           f"its online@10 latency is within {LATENCY_FACTOR:g}x of the MLP's.\n"]
    order = {"teacher": 0, "MLP": 1, "GLNN": 2, "SA-MLP": 3, "SA-MLP (observed edges)": 4, "SA-MLP+SMKD": 5}
    lb = lb.assign(_method=[_sa_mlp_method(r) for _, r in lb.iterrows()])
    for (ds, split, setting), g in lb.groupby(["dataset", "split", "setting"], sort=True):
        if not g["distiller_name"].isin(SA_MLP_DISTILLERS).any():
            continue
        out.append(f"### {ds} — {split} split, {setting}\n")
        mlp = g[g["_method"] == "MLP"]
        mlp_row = mlp.iloc[0] if not mlp.empty else None
        mlp_lat = _num(mlp_row.get("latency_online10_ms")) if mlp_row is not None else None
        teachers = sorted(t for t in g["teacher"].dropna().unique() if t != "-")
        rows, claims = [], []
        for t in teachers:
            alone = g[(g["_method"] == "teacher") & (g["student"] == t)]
            t_row = alone.iloc[0] if not alone.empty else None
            t_lat = _num(t_row.get("latency_online10_ms")) if t_row is not None else None
            t_mean = _num(t_row["test_mean"]) if t_row is not None else None
            members = [("teacher", t_row)] + ([("MLP", mlp_row)] if mlp_row is not None else [])
            members += sorted(((m, r) for _, r in g[g["teacher"] == t].iterrows()
                               for m in [r["_method"]] if m), key=lambda mr: order[mr[0]])
            for method, r in members:
                if r is None:
                    continue
                lat = _num(r.get("latency_online10_ms"))
                speed = _num(r.get("speedup_online10")) if method not in ("teacher", "MLP") else None
                if speed is None and t_lat is not None and lat:
                    speed = t_lat / lat
                row = {"teacher": t, "method": method, "student": r["student"],
                       "test": _pm(r["test_mean"], r.get("test_std"))}
                if setting == "inductive":
                    row["held-out"] = _pm(r.get("test_ind_mean"), r.get("test_ind_std"))
                sbs = _side_by_side(side_by_side, ds, split, setting, r["student"])
                row.update({"params": f"{int(r['student_params']):,}" if _num(r.get("student_params")) else "",
                            "online@10 ms": f"{lat:.3f}" if lat is not None else "",
                            "vs MLP, side by side": f"{sbs[0]:.2f}x" if sbs is not None else "",
                            "speedup": f"{speed:.1f}x" if speed is not None else "", "n": int(r["n"])})
                rows.append(row)
            if t_mean is None:
                claims.append(f"- teacher `{t}`: no `none` run of the teacher: claim 1 cannot be checked.")
                continue
            for method in ("SA-MLP", "SA-MLP+SMKD"):
                sub = g[(g["teacher"] == t) & (g["_method"] == method)]
                if sub.empty:
                    continue
                r = sub.iloc[0]
                mean, std = _num(r["test_mean"]), _num(r.get("test_std"))
                diff = mean - t_mean
                verdict = ("beats" if diff >= 0 else
                           "matches (within one std)" if std is not None and -diff <= std else "no")
                text = (f"- teacher `{t}`, **{method}**: claim 1 {verdict}: {mean:.2f} vs teacher {t_mean:.2f} "
                        f"({diff:+.2f}, n = {int(r['n'])})")
                lat = _num(r.get("latency_online10_ms"))
                sbs = _side_by_side(side_by_side, ds, split, setting, r["student"])
                if sbs is not None:
                    ratio, n_sbs = sbs
                    text += (f"; claim 2 {'yes' if ratio <= LATENCY_FACTOR else 'no'}: online@10 "
                             f"{ratio:.2f}x the MLP's (timed side by side in one process, mean over {n_sbs} seed(s))")
                elif lat is not None and mlp_lat:
                    ratio = lat / mlp_lat
                    text += (f"; claim 2 {'yes' if ratio <= LATENCY_FACTOR else 'no'}: online@10 "
                             f"{lat:.3f} ms = {ratio:.1f}x the MLP's {mlp_lat:.3f} ms (separate runs: "
                             "machine load moves this ratio; `benchmarks/sa_mlp_latency.py` times both side by side)")
                else:
                    text += "; claim 2 not checkable (no MLP latency)"
                claims.append(text + ".")
        table = pd.DataFrame(rows)
        if not table.empty and not table["vs MLP, side by side"].astype(bool).any():  # no benchmark rows
            table = table.drop(columns=["vs MLP, side by side"])
        out.append(table.to_markdown(index=False, disable_numparse=True))
        out.append("")
        out += claims
        out.append("")
    return "\n".join(out) + "\n"
