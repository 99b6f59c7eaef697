"""Memory helpers shared by the scale benchmarks (Linux ``/proc``): resident set, available memory, a watchdog."""
from __future__ import annotations

import os
import threading
import time


def status_gb(key: str) -> float:
    """``/proc/self/status`` field ``key`` (``VmRSS``: resident set, ``VmHWM``: its peak) in GB; NaN if absent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2 ** 20  # kB -> GB
    return float("nan")


def mem_available_gb() -> float:
    """``MemAvailable`` of ``/proc/meminfo`` in GB; NaN if absent."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def watchdog(limit_gb: float, name: str) -> None:
    """Exit the process (status 3) once its resident set passes ``limit_gb``: protects a shared machine."""

    def watch():
        while True:
            rss = status_gb("VmRSS")
            if rss > limit_gb:
                print(f"{name}: resident set {rss:.1f} GB passed --max-rss-gb {limit_gb}; stopping", flush=True)
                os._exit(3)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
