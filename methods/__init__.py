"""Models (teachers and students) and distillers; importing fills ``MODELS`` and ``DISTILLERS``.

One file per entry, file name = registry key. Adding a method = one file + one
import line here.
"""
# models
from gkd_bench.methods import gat, gcn, mlp, sage  # noqa: F401
# distillers
from gkd_bench.methods import kd, none  # noqa: F401
