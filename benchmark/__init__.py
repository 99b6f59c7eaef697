"""gkd-bench: a DGL benchmark suite for knowledge distillation on graph neural networks.

The registries ``DATASETS``, ``MODELS`` and ``DISTILLERS`` (see DESIGN.md) fill
themselves on first lookup by importing ``gkd_bench.datasets`` and
``gkd_bench.methods`` (:mod:`gkd_bench.registry`); importing the package itself
does not import torch or dgl, so record readers (report, site) stay light.
"""
import os as _os

_os.environ.setdefault("DGLBACKEND", "pytorch")
_os.environ.setdefault("OUTDATED_IGNORE", "1")

__version__ = "0.1.0"

from gkd_bench.registry import DATASETS, DISTILLERS, MODELS  # noqa: E402,F401
