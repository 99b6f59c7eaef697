"""Dataset loaders, split protocols and settings; importing fills ``DATASETS``.

One file per dataset family; every loader is ``load(*, root, cache, protocol,
seed, **options) -> GraphData``.
"""
from gkd_bench.datasets import planetoid  # noqa: F401
