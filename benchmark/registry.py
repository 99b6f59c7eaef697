"""Name -> factory registries for datasets, models and distillers (DESIGN.md, concept 1).

Entries are registered with a decorator in one file per entry; each package's
``__init__`` imports its files explicitly and nothing is discovered by magic.
Each registry names the package that fills it (``loader``) and imports it on
first lookup (``get``, ``names``, ``in``, ``len``, iteration), so ``import
gkd_bench`` stays light (no torch/dgl) for tools that only read records, such
as the report and the static site.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

F = TypeVar("F", bound=Callable)


class UnknownNameError(KeyError):
    """Raised for a name that no registry entry has; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class Registry:
    """A named mapping from keys to factories.

    >>> MODELS = Registry("model")
    >>> @MODELS.register("mlp")
    ... def mlp(**kw): ...

    Raises:
        ValueError: when a key is registered twice.
        UnknownNameError: from :meth:`get` for an unknown key, naming close
            matches and every available key.
    """

    def __init__(self, kind: str, loader: Optional[str] = None):
        self.kind = kind
        self.loader = loader  # module whose import registers the entries; imported on first lookup
        self._loaded = loader is None
        self._entries: Dict[str, Callable] = {}

    def load(self) -> None:
        """Import :attr:`loader` once (a no-op afterwards or without a loader); import errors propagate."""
        if self._loaded:
            return
        self._loaded = True  # set first: the loader's own modules may look names up while importing
        try:
            importlib.import_module(self.loader)
        except BaseException:
            self._loaded = False
            raise

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering a class or factory under ``name``.

        Raises:
            ValueError: ``name`` is already registered in this registry.
        """
        def deco(obj: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Callable:
        """The entry registered as ``name`` (importing the loader first).

        Raises:
            UnknownNameError: ``name`` is not registered; the message lists close matches and every name.
        """
        self.load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown ``name``: up to three close matches, then every registered name."""
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} Available {self.kind}s: {', '.join(self.names())}"

    def names(self) -> List[str]:
        """Every registered name, sorted (importing the loader first)."""
        self.load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load()
        return len(self._entries)


DATASETS = Registry("dataset", loader="gkd_bench.datasets")
MODELS = Registry("model", loader="gkd_bench.methods")
DISTILLERS = Registry("distiller", loader="gkd_bench.methods")


def load_all() -> None:
    """Fill every registry now (imports the dataset and method packages, hence torch and dgl)."""
    for reg in (DATASETS, MODELS, DISTILLERS):
        reg.load()
