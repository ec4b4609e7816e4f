"""Named registries (MODELS, ATTACKS, REPRESENTATIONS, DATASETS) filled by a decorator.

Lookups of unknown names raise :class:`~advaudio.errors.ConfigError` quoting the name and the allowed set,
e.g. ``unknown attack 'jsam'; choose from ['bim_a', 'bim_b', 'cw', 'deepfool', 'jsma', 'pia']``.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from advaudio.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries of one family that refuses duplicates.

    Parameters
    ----------
    kind : str
        Singular name of the family, used in error messages ("model", "attack", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``.

        Raises
        ------
        ValueError
            If ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        Raises
        ------
        ConfigError
            If ``name`` is not registered; the message lists the allowed names.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose from {self.names()}") from None

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
