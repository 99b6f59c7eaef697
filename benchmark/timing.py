"""Inference latency and memory with ``torch.utils.benchmark`` (DESIGN.md "Inference latency").

Every measurement: ``model.eval()``, ``torch.inference_mode()``, one warm-up
call, then ``Timer.blocked_autorange``; median and p90 over the measured
blocks (each block's time is the mean of ``number_per_run`` calls) in
milliseconds; the thread count is ``torch.get_num_threads()`` and recorded
with the result; CUDA is synchronised by the Timer when the inputs live on GPU.

Scenarios:

- ``full``: one forward pass over all nodes, ``model(graph, x)``.
- ``online@B``: predict B random test nodes (seeded, :func:`online_nodes`).
  *End to end* starts from the full graph and feature matrix:
  a message-passing model extracts the k-hop in-neighbourhood of the B nodes
  (``dgl.khop_in_subgraph``; k from :func:`receptive_hops`), gathers its
  feature rows, runs on the subgraph and keeps the B seed rows; with
  ``sampled=True`` it instead samples the neighbourhood with the model's
  ``fan_out`` (``dgl.sampling.sample_neighbors``, one hop per layer); a
  graph-free model (class attribute ``graph_free = True``) gathers B feature
  rows and runs with ``graph=None``. *Model only* times the same computation
  on the already gathered inputs.

Model hooks for the online scenario (optional; checked in this order):

- ``online_gather(graph, x, nodes) -> tuple`` and ``online_compute(*inputs)
  -> logits [B, C]``: the model's own split into data gathering (for SA-MLP
  that would be B feature rows and B adjacency rows) and computation; end to end is
  ``online_compute(*online_gather(...))``, model only is ``online_compute``
  on pre-gathered inputs.
- ``online_forward(graph, x, nodes) -> logits [B, C]``: end to end only; the
  model-only columns are then NaN (not measured).
  (Both hooks may return a ``ModelOutput`` instead of logits; its ``logits``
  are used. ``graph`` and ``x`` are the full graph and feature matrix;
  ``nodes`` int64 ``[B]`` node ids of that graph, repeats allowed.)
- ``num_hops``: overrides the receptive field used by the default
  message-passing path.

Peak memory per scenario: on CPU the growth of the resident set during a few
calls (the kernel's high-water mark ``VmHWM`` after resetting it through
``/proc/self/clear_refs``; where that is unavailable, psutil's RSS after the
calls, a lower bound), measured after glibc's ``malloc_trim(0)`` so that
memory the allocator would reuse from earlier frees is faulted in again and
counted; on CUDA ``torch.cuda.max_memory_allocated`` minus the memory
allocated before.

Speedups (:func:`speedup`) are ratios of timings taken in the same process on
the same input; :func:`latency_columns` measures teacher and student in one
call, scenario by scenario.

Inference time depends on a model's architecture and input, not on its trained
weights (every model here runs the same operations whatever the weights), so
the runner measures each (teacher, student, dataset, split, online nodes)
combination once per process and reuses the columns in runs that share it
(:func:`model_signature`; the record's ``timing_run_id`` names the run that
measured them).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple

import torch
from torch.utils import benchmark

DEFAULT_BATCHES = (1, 10, 1024)


# ---------------------------------------------------------------- timers
def time_callable(fn: Callable[[], object], min_run_time: float = 0.2) -> Dict[str, float]:
    """Median and p90 of ``fn()`` in ms (``blocked_autorange`` after one warm-up call).

    Returns:
        ``{"median_ms", "p90_ms", "repeats", "threads", "pid"}``; ``pid`` is the
        measuring process (see :func:`speedup`).
    """
    with torch.inference_mode():
        fn()
        m = benchmark.Timer(stmt="fn()", globals={"fn": fn},
                            num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time)
    times = torch.tensor(m.times, dtype=torch.float64) * 1e3
    return {"median_ms": float(times.median()), "p90_ms": float(torch.quantile(times, 0.9)),
            "repeats": int(m.number_per_run * len(m.times)), "threads": torch.get_num_threads(),
            "pid": os.getpid()}


def speedup(teacher: Dict[str, float], student: Dict[str, float]) -> float:
    """``teacher["median_ms"] / student["median_ms"]`` for two timings of :func:`time_callable`.

    Raises:
        ValueError: the timings were not both taken in this process with the
            same thread count (a speedup across processes or machines is not a
            speedup), or a timing is missing.
    """
    if not teacher or not student:
        raise ValueError("speedup needs two timings")
    pids = {teacher.get("pid"), student.get("pid")}
    if pids != {os.getpid()}:
        raise ValueError(f"speedup needs both timings from this process (pid {os.getpid()}), got {sorted(map(str, pids))}")
    if teacher.get("threads") != student.get("threads"):
        raise ValueError(f"speedup needs equal thread counts, got {teacher.get('threads')} and {student.get('threads')}")
    return teacher["median_ms"] / student["median_ms"]


def full_graph_latency(model: torch.nn.Module, graph, x: torch.Tensor, min_run_time: float = 0.2) -> Dict[str, float]:
    """Latency of one full-graph forward pass (all nodes) of ``model`` in eval mode."""
    model.eval()
    return time_callable(lambda: model(graph, x), min_run_time)


# ---------------------------------------------------------------- memory
def _vm_hwm_bytes() -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim(0)``) so reused memory shows up in RSS."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory_mb(fn: Callable[[], object], device: torch.device, calls: int = 2) -> float:
    """Peak extra memory in MiB of ``calls`` calls of ``fn`` under ``inference_mode``.

    CUDA: ``max_memory_allocated - memory_allocated`` before the calls. CPU:
    resident-set high-water mark minus the RSS before the calls, after
    glibc's ``malloc_trim(0)`` has handed freed heap pages back to the OS
    (see the module docstring).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            for _ in range(calls):
                fn()
        torch.cuda.synchronize(device)
        return max(torch.cuda.max_memory_allocated(device) - base, 0) / 2**20
    import psutil

    proc = psutil.Process()
    _malloc_trim()
    base = proc.memory_info().rss
    exact = _reset_hwm()
    with torch.inference_mode():
        for _ in range(calls):
            out = fn()
            del out
    peak = _vm_hwm_bytes() if exact else None
    if peak is None:
        peak = proc.memory_info().rss
    return max(peak - base, 0) / 2**20


# ---------------------------------------------------------------- online
def receptive_hops(model) -> int:
    """Hops of input neighbourhood a node's output depends on.

    ``model.num_hops`` when set; else ``len(model.layers)``, plus one when a
    layer is a DGL ``GraphConv`` with ``norm`` ``both`` or ``left``: those
    scale messages by the *source* out-degree, which the k-hop
    in-neighbourhood only gets right with one more hop (exact for symmetric
    graphs; re-derived); the same for a GAT with ``symmetric_norm``.

    Raises:
        ValueError: a message-passing model with neither ``num_hops`` nor ``layers``.
    """
    hops = getattr(model, "num_hops", None)
    if hops is not None:
        return int(hops)
    layers = getattr(model, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: cannot tell its receptive field; set a `num_hops` "
                         "attribute or define online_forward(graph, x, nodes)")
    extra = 1 if getattr(model, "symmetric_norm", False) else 0  # GAT scaled by source out-degrees
    try:
        from dgl.nn import GraphConv

        if any(isinstance(m, GraphConv) and getattr(m, "_norm", None) in ("both", "left") for m in model.modules()):
            extra = 1
    except ImportError:  # pragma: no cover
        pass
    return len(layers) + extra


def _gather_khop(graph, x, nodes, hops):
    import dgl

    uniq, inv = torch.unique(nodes, return_inverse=True)
    sg, pos = dgl.khop_in_subgraph(graph, uniq, hops)
    return sg, x[sg.ndata[dgl.NID]], pos[inv]


def _gather_sampled(graph, x, nodes, fan_out):
    import dgl

    uniq, inv = torch.unique(nodes, return_inverse=True)
    seeds, srcs, dsts = uniq, [], []
    for f in reversed(list(fan_out)):
        frontier = dgl.sampling.sample_neighbors(graph, seeds, int(f), copy_ndata=False, copy_edata=False)
        s, d = frontier.edges()
        srcs.append(s)
        dsts.append(d)
        seeds = torch.unique(torch.cat([seeds, s]))
    src, dst = torch.cat(srcs), torch.cat(dsts)
    all_nodes = torch.unique(torch.cat([uniq, src, dst]))
    sg = dgl.graph((torch.searchsorted(all_nodes, src), torch.searchsorted(all_nodes, dst)),
                   num_nodes=len(all_nodes), idtype=graph.idtype, device=graph.device)
    return sg, x[all_nodes], torch.searchsorted(all_nodes, uniq)[inv]


def _logits(out) -> torch.Tensor:
    return getattr(out, "logits", out)


def online_plan(model, graph, x: torch.Tensor, sampled: bool = False) -> Tuple[Callable, Optional[Callable]]:
    """``(gather, compute)`` of the online scenario for ``model``.

    ``gather(nodes) -> inputs`` (a tuple) and ``compute(*inputs) -> logits
    [B, C]``; ``compute`` is ``None`` for models that only define
    ``online_forward`` (then ``gather`` does everything). See the module
    docstring for the hooks and the default paths.

    Raises:
        ValueError: ``sampled`` for a model without ``fan_out``, or a
            ``fan_out`` whose length is not the number of layers.
    """
    if hasattr(model, "online_gather") and hasattr(model, "online_compute"):
        return (lambda nodes: tuple(model.online_gather(graph, x, nodes))), \
            (lambda *inputs: _logits(model.online_compute(*inputs)))
    if hasattr(model, "online_forward"):
        return (lambda nodes: _logits(model.online_forward(graph, x, nodes))), None
    if getattr(model, "graph_free", False):
        return (lambda nodes: (x[nodes],)), (lambda xb: model(None, xb).logits)
    hops = receptive_hops(model)

    def compute(sg, xs, idx):
        return model(sg, xs).logits[idx]

    if sampled:
        fan_out = getattr(model, "fan_out", None)
        if not fan_out:
            raise ValueError(f"{type(model).__name__} has no fan_out to sample with")
        if len(fan_out) != len(model.layers):
            raise ValueError(f"fan_out {list(fan_out)} must have one entry per layer ({len(model.layers)})")
        return (lambda nodes: _gather_sampled(graph, x, nodes, fan_out)), compute
    return (lambda nodes: _gather_khop(graph, x, nodes, hops)), compute


def online_forward(model, graph, x: torch.Tensor, nodes: torch.Tensor, sampled: bool = False) -> torch.Tensor:
    """Logits ``[B, C]`` of ``nodes`` (int64 ``[B]``, repeats allowed) computed the online way.

    With full neighbourhoods this equals ``model(graph, x).logits[nodes]`` in
    eval mode (up to float rounding) for SAGE, GAT, GCN (symmetric graphs) and
    graph-free models.
    """
    gather, compute = online_plan(model, graph, x, sampled)
    inputs = gather(nodes)
    return inputs if compute is None else compute(*inputs)


def online_nodes(data, batch: int, seed: int) -> torch.Tensor:
    """``batch`` random test nodes (int64 ``[batch]``) drawn with a generator seeded by (dataset, split, batch, seed).

    Without replacement when the test split (all nodes for a graph without
    splits) has at least ``batch`` nodes;
    otherwise every test node once plus the rest drawn with replacement.
    Independent of the global RNG, so teacher and student (and every method)
    get the same nodes.

    Raises:
        ValueError: ``batch < 1`` or an empty test split.
    """
    if int(batch) < 1:
        raise ValueError(f"online batch size must be >= 1, got {batch}")
    test = data.splits.get("test") if data.splits else None
    if test is None:  # a graph without node splits (a multi-graph test graph): all its nodes
        test = torch.arange(data.num_nodes)
    if len(test) == 0:
        raise ValueError(f"dataset {data.name!r} has an empty test split")
    key = f"gkd-bench/online|{data.name}|{data.split_index}|{int(batch)}|{int(seed)}"
    g = torch.Generator()
    g.manual_seed(int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little") & ((1 << 63) - 1))
    perm = test[torch.randperm(len(test), generator=g)]
    if batch <= len(test):
        return perm[:batch].clone()
    extra = test[torch.randint(0, len(test), (batch - len(test),), generator=g)]
    return torch.cat([perm, extra])


# ---------------------------------------------------------------- scenarios
def measure_scenario(model, graph, x: torch.Tensor, nodes: Optional[torch.Tensor] = None, sampled: bool = False,
                     min_run_time: float = 0.2, memory: bool = True) -> Dict[str, Dict[str, float]]:
    """Timings of one scenario: ``{"e2e": timing, "model": timing or None, "mem_mb": float}``.

    ``nodes=None`` is the ``full`` scenario (end to end = model only).
    """
    model.eval()
    if nodes is None:
        fn = lambda: model(graph, x)  # noqa: E731
        e2e = time_callable(fn, min_run_time)
        return {"e2e": e2e, "model": e2e, "mem_mb": peak_memory_mb(fn, x.device) if memory else math.nan}
    gather, compute = online_plan(model, graph, x, sampled)
    if compute is None:
        fn = lambda: gather(nodes)  # noqa: E731
        mdl = None
    else:
        fn = lambda: compute(*gather(nodes))  # noqa: E731
        with torch.inference_mode():
            inputs = gather(nodes)
        mdl = time_callable(lambda: compute(*inputs), min_run_time)
    e2e = time_callable(fn, min_run_time)
    return {"e2e": e2e, "model": mdl, "mem_mb": peak_memory_mb(fn, x.device) if memory else math.nan}


def interleaved_online(models: Dict[str, torch.nn.Module], graph, x: torch.Tensor, nodes: torch.Tensor,
                       calls: int = 1000, warmup: int = 10) -> Dict[str, Dict[str, float]]:
    """End-to-end ``online@B`` latency of several models, timed call by call in turns in this process.

    Every model's prediction of ``nodes`` (``online_forward``'s path, :func:`online_plan`) is called
    ``calls`` times, one call of each model after the other (the order rotating each turn), and each
    call is timed alone (``time.perf_counter``; CUDA synchronised). The medians of the per-call times
    are therefore taken under the same load for every model: a ratio of two of them is the side-by-side
    comparison that a ratio of latencies measured in different runs (minutes or hours apart, under
    different load) is not, and a busy machine slows single calls (the tail) rather than the median.

    Args:
        models: name -> model (put in eval mode here).
        graph, x: the full graph and its feature matrix ``[N, F]``.
        nodes: int64 ``[B]`` node ids (:func:`online_nodes`).
        calls: timed calls per model (>= 1).
        warmup: untimed calls per model first.

    Returns:
        name -> ``{"median_ms", "p90_ms", "calls"}`` (ms per call).

    Raises:
        ValueError: ``calls < 1`` or no models.
    """
    if int(calls) < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    if not models:
        raise ValueError("no models to time")
    fns = []
    for name, model in models.items():
        model.eval()
        gather, compute = online_plan(model, graph, x)
        fns.append((name, (lambda g=gather: g(nodes)) if compute is None
                    else (lambda g=gather, c=compute: c(*g(nodes)))))
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times = {name: [] for name, _ in fns}
    with torch.inference_mode():
        for _ in range(int(warmup)):
            for _, fn in fns:
                fn()
        sync()
        for i in range(int(calls)):
            k = i % len(fns)
            for name, fn in fns[k:] + fns[:k]:
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    out = {}
    for name, t in times.items():
        ms = torch.tensor(t, dtype=torch.float64) * 1e3
        out[name] = {"median_ms": float(ms.quantile(0.5)), "p90_ms": float(ms.quantile(0.9)), "calls": len(t)}
    return out


def _columns(prefix: str, name: str, res: dict) -> dict:
    out = {f"{prefix}latency_{name}_ms": res["e2e"]["median_ms"],
           f"{prefix}latency_{name}_p90_ms": res["e2e"]["p90_ms"],
           f"{prefix}mem_{name}_mb": res["mem_mb"]}
    if name != "full":
        mdl = res["model"]
        out[f"{prefix}latency_{name}_model_ms"] = mdl["median_ms"] if mdl else math.nan
        out[f"{prefix}latency_{name}_model_p90_ms"] = mdl["p90_ms"] if mdl else math.nan
    return out


def latency_columns(student, teacher, data, seed: int, batches: Sequence[int] = DEFAULT_BATCHES,
                    min_run_time: float = 0.2, memory: bool = True, full: bool = True) -> dict:
    """All latency, memory and speedup columns of a run, measured in this process.

    Scenario by scenario, the teacher (when given) and the student are timed
    back to back on the same input (full graph; the same seeded online
    nodes). Columns (student; the teacher's carry the prefix ``teacher_``):

    - ``latency_full_ms``, ``latency_full_p90_ms``, ``mem_full_mb``;
    - per B: ``latency_online<B>_ms`` / ``_p90_ms`` (end to end),
      ``latency_online<B>_model_ms`` / ``_model_p90_ms``, ``mem_online<B>_mb``;
    - for models with a ``fan_out``: the same with ``online<B>_sampled``;
    - ``speedup_full``, ``speedup_online<B>`` (end to end, the teacher with
      its full neighbourhood), ``speedup_online<B>_model``, and, when the
      teacher samples, ``speedup_online<B>_sampled`` (sampled teacher vs
      student);
    - ``latency_threads``.

    Args:
        student, teacher: models (``teacher`` may be ``None``).
        data: GraphData; the full graph and features are used, on their device.
        seed: the run's seed (online nodes are drawn from it).
        batches: the B values.
        min_run_time: seconds per ``blocked_autorange``.
        memory: also measure peak memory per scenario.
        full: include the ``full`` scenario (mini-batch runs leave it out: a
            whole-graph forward pass is what they avoid).
    """
    if getattr(data, "graphs", None):  # multi-graph (PPI): time on the first test graph
        data = (data.graphs.get("test") or [data])[0]
    graph, x = data.graph, data.x
    out: dict = {"latency_threads": torch.get_num_threads()}
    scen = [("full", None)] * bool(full) + [(f"online{int(b)}", online_nodes(data, int(b), seed)) for b in batches]
    for name, nodes in scen:
        s = measure_scenario(student, graph, x, nodes, False, min_run_time, memory)
        out.update(_columns("", name, s))
        if nodes is not None and getattr(student, "fan_out", None):
            out.update(_columns("", f"{name}_sampled",
                                measure_scenario(student, graph, x, nodes, True, min_run_time, memory)))
        if teacher is None:
            continue
        t = measure_scenario(teacher, graph, x, nodes, False, min_run_time, memory)
        out.update(_columns("teacher_", name, t))
        out[f"speedup_{name}"] = speedup(t["e2e"], s["e2e"])
        if nodes is not None:
            out[f"speedup_{name}_model"] = speedup(t["model"], s["model"]) if t["model"] and s["model"] else math.nan
            if getattr(teacher, "fan_out", None):
                ts = measure_scenario(teacher, graph, x, nodes, True, min_run_time, memory)
                out.update(_columns("teacher_", f"{name}_sampled", ts))
                out[f"speedup_{name}_sampled"] = speedup(ts["e2e"], s["e2e"])
    return out


def model_signature(model: Optional[torch.nn.Module]) -> str:
    """What inference time depends on in a model: its module tree (``repr``: layers, dimensions,
    aggregators, activations), the shape, dtype and device of every parameter and buffer, and the
    attributes the online scenarios read (``fan_out``, ``num_hops``, ``graph_free``). The values of
    the weights are left out. ``None`` (no teacher) -> ``""``. Returns a sha1 hex digest."""
    if model is None:
        return ""
    h = hashlib.sha1(repr(model).encode())
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|{t.device};".encode())
    for attr in ("fan_out", "num_hops", "graph_free"):
        h.update(f"{attr}={getattr(model, attr, None)!r};".encode())
    return h.hexdigest()


def parse_batches(value: Iterable) -> Tuple[int, ...]:
    """Validate online batch sizes (positive ints). Raises ValueError naming the bad value."""
    out = []
    for v in value or ():
        try:
            b = int(v)
        except (TypeError, ValueError):
            raise ValueError(f"latency batch size {v!r} is not an integer") from None
        if b < 1 or b != float(v):
            raise ValueError(f"latency batch size must be a positive integer, got {v!r}")
        out.append(b)
    return tuple(sorted(set(out)))
