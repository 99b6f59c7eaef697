"""Scale benchmark of mini-batch training (issue 9, acceptance 1): ogbn-products-sized graph in 24 GB.

On a generated graph of ogbn-products' size (2,400,000 nodes, 62,000,000
random directed edges, 100 random features, 47 classes; int64 node ids), one
epoch of each phase of GLNN on products, with the harness's own mini-batch
code (:mod:`gkd_bench.minibatch`, what ``fit`` runs in ``batching:
minibatch``):

1. teacher: SAGE (3 layers, hidden 256, batch norm, dropout 0.5 -- the
   ``glnn`` suite's products teacher) trained for one epoch with neighbour
   sampling (fan-out 5, 10, 15; batches of 1024 seed nodes) over the
   training split (ogbn-products' share: 196,615 nodes = 8.2 %);
2. teacher outputs: layer-wise full-neighbour inference on all nodes
   (chunks of 16,384 destination nodes), logits and hidden layers kept as
   the teacher cache would;
3. student: MLP (3 layers, hidden 256) trained for one epoch with ``kd``
   (lam 0.5) on node mini-batches of 4096 over all nodes, soft labels read
   from the teacher outputs;
4. student inference on all nodes (chunks; logits only, as evaluation).

Prints one JSON line: sizes, seconds per phase (generation, each phase
above), validation accuracy of both models (random labels: chance level,
reported only as a sanity check), and memory in GB: resident set after
generation, after each phase, and the peak resident set (``VmHWM``). It
refuses to start with less than ``--need-gb`` available and stops itself
past ``--max-rss-gb`` (shared machines)::

    python benchmarks/minibatch_scale.py                     # the full size (~10 GB, tens of minutes on 2 cores)
    python benchmarks/minibatch_scale.py --nodes 50000 --edges 1000000 --train-nodes 4000 --val-nodes 1000 --need-gb 1  # quick check
"""
from __future__ import annotations

import argparse
import json
import time

from _memory import mem_available_gb, status_gb, watchdog  # benchmarks/_memory.py


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2_400_000)
    ap.add_argument("--edges", type=int, default=62_000_000, help="random directed edges")
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--classes", type=int, default=47)
    ap.add_argument("--train-nodes", type=int, default=196_615, help="labelled training nodes (products: 196,615)")
    ap.add_argument("--val-nodes", type=int, default=39_323)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--fan-out", default="5,10,15", help="per layer, input layer first")
    ap.add_argument("--batch-size", type=int, default=1024, help="teacher seed nodes per batch")
    ap.add_argument("--student-batch-size", type=int, default=4096)
    ap.add_argument("--eval-batch-size", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-rss-gb", type=float, default=20.0,
                    help="stop (exit 3) if the resident set passes this (shared machines)")
    ap.add_argument("--need-gb", type=float, default=16.0,
                    help="refuse to start unless this much memory is available (MemAvailable)")
    args = ap.parse_args(argv)
    avail = mem_available_gb()
    if avail < args.need_gb:
        raise SystemExit(f"minibatch_scale: only {avail:.1f} GB available, --need-gb is {args.need_gb}; not started")
    watchdog(args.max_rss_gb, "minibatch_scale")
    try:  # if the machine runs out of memory anyway, the kernel kills this process first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass

    import dgl
    import torch

    from gkd_bench.data import GraphData
    from gkd_bench.fit import TrainConfig, predict
    from gkd_bench.methods.kd import KD
    from gkd_bench.methods.mlp import MLP
    from gkd_bench.methods.none import Supervised
    from gkd_bench.methods.sage import SAGE
    from gkd_bench.metrics import score
    from gkd_bench.minibatch import minibatches
    from gkd_bench.runner import seed_everything

    n = args.nodes
    if args.train_nodes + args.val_nodes >= n:
        ap.error(f"--train-nodes + --val-nodes ({args.train_nodes} + {args.val_nodes}) must be below --nodes ({n})")
    seed_everything(args.seed)
    res: dict = {"nodes": n, "edges": args.edges, "features": args.features, "classes": args.classes,
                 "train_nodes": args.train_nodes, "fan_out": [int(f) for f in args.fan_out.split(",")],
                 "batch_size": args.batch_size, "student_batch_size": args.student_batch_size,
                 "torch_threads": torch.get_num_threads(), "seconds": {}, "rss_gb": {}}
    sec, rss = res["seconds"], res["rss_gb"]

    def phase(name, t0):
        sec[name] = round(time.perf_counter() - t0, 1)
        rss[name] = round(status_gb("VmRSS"), 2)
        print(f"minibatch_scale: {name}: {sec[name]} s, resident {rss[name]} GB, "
              f"peak {status_gb('VmHWM'):.2f} GB", flush=True)

    t0 = time.perf_counter()
    src = torch.randint(n, (args.edges,), dtype=torch.int64)
    dst = torch.randint(n, (args.edges,), dtype=torch.int64)
    graph = dgl.graph((src, dst), num_nodes=n, idtype=torch.int64)
    del src, dst
    graph.create_formats_()  # CSC (sampling in-neighbours) once, outside the timed phases
    x = torch.randn(n, args.features)
    y = torch.randint(args.classes, (n,))
    perm = torch.randperm(n)
    splits = {"train": perm[:args.train_nodes].sort().values,
              "val": perm[args.train_nodes:args.train_nodes + args.val_nodes].sort().values,
              "test": perm[args.train_nodes + args.val_nodes:].sort().values}
    del perm
    data = GraphData(name="generated", graph=graph, x=x, y=y, splits=splits, num_classes=args.classes)
    phase("generate", t0)

    cfg = TrainConfig(batching="minibatch", batch_size=args.batch_size, fan_out=tuple(res["fan_out"]),
                      eval_batch_size=args.eval_batch_size, lr=3e-3, weight_decay=0.0)
    teacher = SAGE(args.features, args.classes, hidden=args.hidden, num_layers=len(res["fan_out"]),
                   dropout=0.5, norm="batch")
    none = Supervised()
    opt = torch.optim.Adam(teacher.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    t0 = time.perf_counter()
    batches = 0

    def counted(it):
        nonlocal batches
        for b in it:
            batches += 1
            yield b

    terms = none.train_epoch(counted(minibatches(data, none, teacher, cfg, None)), teacher, opt, None)
    res["teacher_batches"] = batches
    res["teacher_loss"] = round(terms["loss"], 4)
    phase("teacher_train_epoch", t0)

    t0 = time.perf_counter()
    teacher_out = predict(teacher, graph, x, cfg.eval_batch_size).detach()
    phase("teacher_layerwise_inference", t0)
    val = splits["val"]
    res["teacher_val_acc"] = round(score("accuracy", teacher_out.logits[val], y[val]), 2)

    scfg = TrainConfig(batching="minibatch", batch_size=args.student_batch_size, lr=3e-3, weight_decay=0.0)
    student = MLP(args.features, args.classes, hidden=args.hidden, num_layers=3, dropout=0.2)
    kd = KD(lam=0.5)
    opt = torch.optim.Adam(student.parameters(), lr=scfg.lr, weight_decay=scfg.weight_decay)
    t0 = time.perf_counter()
    batches = 0
    terms = kd.train_epoch(counted(minibatches(data, kd, student, scfg, teacher_out)), student, opt, teacher_out)
    res["student_batches"] = batches
    res["student_loss"] = round(terms["loss"], 4)
    phase("student_kd_train_epoch", t0)

    t0 = time.perf_counter()
    s_out = predict(student, graph, x, cfg.eval_batch_size, keep_hidden=False)  # scores need logits only
    phase("student_inference", t0)
    res["student_val_acc"] = round(score("accuracy", s_out.logits[val], y[val]), 2)
    res["peak_rss_gb"] = round(status_gb("VmHWM"), 2)
    res["total_s"] = round(sum(sec.values()), 1)
    print(json.dumps(res), flush=True)
    return res


if __name__ == "__main__":
    main()
