"""gkd-bench: a DGL benchmark suite for knowledge distillation on graph neural networks.

Importing the package fills the registries ``DATASETS``, ``MODELS`` and
``DISTILLERS`` (see DESIGN.md).
"""
import os as _os

_os.environ.setdefault("DGLBACKEND", "pytorch")
_os.environ.setdefault("OUTDATED_IGNORE", "1")

__version__ = "0.1.0"

from gkd_bench.registry import DATASETS, DISTILLERS, MODELS  # noqa: E402,F401
from gkd_bench import datasets as _datasets  # noqa: E402,F401
from gkd_bench import methods as _methods  # noqa: E402,F401
