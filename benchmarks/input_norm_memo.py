"""Row normalisation of the input inside the model: memoised per input tensor vs recomputed every forward.

One epoch = one full-batch training epoch (forward, cross-entropy on the training nodes, backward, Adam
step) plus one eval forward, as ``fit`` does every epoch. Models: the ``gcrd-available`` suite's
students on the Amazon sets (GCN and SAGE, 2 x 16, dropout 0.5, ``input_norm: l2``; ``--input-norm l1``
for Kipf & Welling's L1 rows), whose dense
bag-of-words (35% non-zero) take the dense first-layer path, where ``normalize_input`` runs on the whole
``[N, F]`` matrix every forward. "recomputed" swaps in ``F.normalize`` (what every forward did before
the memo); the two variants alternate in one process (median of ``--epochs`` per variant), start from
the same weights and draw the same dropout masks; their eval logits are compared with ``torch.equal``.

Usage: GKD_BENCH_DATA=../shared/data OMP_NUM_THREADS=1 \\
    python benchmarks/input_norm_memo.py [--dataset amazon-photo --dataset amazon-computers] [--epochs 20]
        [--input-norm l2]
"""
from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from tabulate import tabulate
from _epochs import epoch_ms, eval_ms  # benchmarks/_epochs.py
from gkd_bench.methods._common import _INPUT_NORM_P  # the kind -> p map normalize_input uses

STUDENT = dict(hidden=16, num_layers=2, dropout=0.5)


def recomputed(x, kind):
    """``normalize_input`` without the memo."""
    return F.normalize(x, p=_INPUT_NORM_P[kind], dim=1) if kind in _INPUT_NORM_P else x


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", default=None)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--input-norm", choices=["l1", "l2"], default="l2")
    args = ap.parse_args(argv)
    import gkd_bench  # noqa: F401
    from gkd_bench.methods import _common, gcn, sage
    from gkd_bench.registry import DATASETS, MODELS

    memoised = _common.normalize_input
    rows = []
    for name in args.dataset or ["amazon-photo", "amazon-computers"]:
        data = DATASETS.get(name)(seed=0)
        g, x, y, train = data.graph, data.x, data.y, data.splits["train"]
        for arch in ("gcn", "sage"):
            runs = {}
            for variant in ("memoised", "recomputed"):
                torch.manual_seed(0)
                model = MODELS.get(arch)(in_dim=data.num_features, num_classes=data.num_classes, **STUDENT,
                                          input_norm=args.input_norm)
                opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)  # the suite's
                runs[variant] = (model, opt, [])
            try:
                for epoch in range(args.epochs + 1):  # epoch 0: warm-up (and the memo's first fill), not timed
                    for variant, (model, opt, times) in runs.items():
                        fn = memoised if variant == "memoised" else recomputed
                        gcn.normalize_input = sage.normalize_input = fn
                        torch.manual_seed(100 + epoch)  # the same dropout masks for both
                        ms = epoch_ms(model, g, x, y, train, opt) + eval_ms(model, g, x)
                        if epoch:
                            times.append(ms)
            finally:
                gcn.normalize_input = sage.normalize_input = memoised
            (m_m, _, t_m), (m_r, _, t_r) = runs.values()
            with torch.no_grad():
                same = torch.equal(m_m.eval()(g, x).logits, m_r.eval()(g, x).logits)
            rows.append([name, arch, f"{100 * float((x != 0).float().mean()):.0f}%",
                         f"{statistics.median(t_r):.1f}", f"{statistics.median(t_m):.1f}",
                         f"{statistics.median(t_r) / statistics.median(t_m):.2f}x", same])
    print(tabulate(rows, headers=["dataset", "student", "x non-zero", "recomputed ms/epoch",
                                  "memoised ms/epoch", "speedup", "logits equal"]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.epochs} timed epochs, "
          f"input_norm {args.input_norm}")


if __name__ == "__main__":
    main()
