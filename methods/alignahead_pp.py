"""``alignahead++``: :class:`~gkd_bench.methods.alignahead.Alignahead` with feature alignment and
deep supervision on (Guo, Chen, Wang, arXiv 2210.13743; METHODS.md "Alignahead and Alignahead++").

A configuration of the same class, registered under its own name so suites and
records can name it; every setting can still be switched.
"""
from __future__ import annotations

from gkd_bench.methods.alignahead import Alignahead
from gkd_bench.registry import DISTILLERS


@DISTILLERS.register("alignahead++")
class AlignaheadPP(Alignahead):
    """Alignahead++: structure + feature alignment + deep supervision (defaults on).

    Arguments as :class:`Alignahead`; only the defaults of ``feature_align``
    and ``deep_supervision`` differ.
    """

    def __init__(self, num_students: int = 2, pairing: str = "ahead-code", a: float = 1.0,
                 feature_align: bool = True, b: float = 1.0, deep_supervision: bool = True,
                 identical_init: bool = False, kernel_scale: float = 100.0):
        super().__init__(num_students, pairing, a, feature_align, b, deep_supervision, identical_init,
                         kernel_scale)
