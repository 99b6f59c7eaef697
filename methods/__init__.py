"""Models (teachers and students) and distillers; importing fills ``MODELS`` and ``DISTILLERS``.

One file per entry, file name = registry key. Adding a method = one file + one
import line here.
"""
# models
from gkd_bench.methods import gat, gcn, mlp, sage  # noqa: F401
from gkd_bench.methods import sign  # noqa: F401
from gkd_bench.methods import sa_mlp  # noqa: F401
# distillers
from gkd_bench.methods import kd, none  # noqa: F401
from gkd_bench.methods import at, fitnet, gcrd, gsp, kd_plus, lsp  # noqa: F401
from gkd_bench.methods import alignahead, alignahead_pp  # noqa: F401
from gkd_bench.methods import sa_mlp_ind, sa_mlp_smkd  # noqa: F401
