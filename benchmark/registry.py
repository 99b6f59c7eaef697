"""Name -> factory registries for datasets, models and distillers (DESIGN.md, concept 1).

Entries are registered with a decorator in one file per entry; each package's
``__init__`` imports its files explicitly, so ``import gkd_bench`` fills every
registry and nothing is discovered by magic.
"""
from __future__ import annotations

import difflib
from typing import Callable, Dict, Iterator, List, TypeVar

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

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Callable] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def deco(obj: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Callable:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} Available {self.kind}s: {', '.join(self.names())}"

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


DATASETS = Registry("dataset")
MODELS = Registry("model")
DISTILLERS = Registry("distiller")
