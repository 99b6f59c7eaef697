"""Dataset loaders, split protocols and settings; importing fills ``DATASETS``.

One file per dataset family; every loader is ``load(*, root, cache, protocol,
seed, **options) -> GraphData``. ``protocol=None`` picks the loader's default,
named by its attributes ``default_protocol``, ``protocols`` and ``metric``
(read by ``spec.expand`` and ``gkd-bench datasets`` without loading data).
"""
from gkd_bench.datasets import planetoid  # noqa: F401
from gkd_bench.datasets import gnn_benchmark  # noqa: F401
from gkd_bench.datasets import geom_gcn  # noqa: F401
from gkd_bench.datasets import platonov  # noqa: F401
from gkd_bench.datasets import ppi  # noqa: F401
from gkd_bench.datasets import ogbn  # noqa: F401
from gkd_bench.datasets import arxiv_year  # noqa: F401
