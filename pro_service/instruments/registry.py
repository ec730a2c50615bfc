"""The set of loaded instruments, every version of each."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .model import Instrument
from .validation import InstrumentFileError


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.-]", version)
    )


class InstrumentRegistry:
    """All loaded instruments, every version; ``get(id)`` gives the latest version."""

    def __init__(self, instruments: Iterable[Instrument]) -> None:
        ordered = sorted(instruments, key=lambda i: (i.first_item, i.id, _version_key(i.version)))
        self._by_id: dict[str, dict[str, Instrument]] = {}
        for instrument in ordered:
            versions = self._by_id.setdefault(instrument.id, {})
            if instrument.version in versions:
                raise ValueError(f"{instrument.key} is loaded twice")
            versions[instrument.version] = instrument
        self._all = tuple(ordered)
        self._check_disjoint()

    def _check_disjoint(self) -> None:
        """Different instruments must not share item numbers or score names.

        Answers are keyed by item number across instruments (C30 1-30, PAN26 31-56) and score
        names are output columns, so a clash would silently mix two instruments.
        """
        for a in self._all:
            for b in self._all:
                if a.id >= b.id:
                    continue
                where = b.source_path or Path(b.key)
                if a.first_item <= b.last_item and b.first_item <= a.last_item:
                    raise InstrumentFileError(
                        where,
                        [
                            (
                                "first_item",
                                (
                                    f"items {b.first_item}-{b.last_item} overlap {a.key} "
                                    f"(items {a.first_item}-{a.last_item})"
                                ),
                            )
                        ],
                    )
                shared = sorted(set(a.score_codes) & set(b.score_codes))
                if shared:
                    raise InstrumentFileError(
                        where,
                        [("scales", (f"score code(s) {', '.join(shared)} also used by {a.key}"))],
                    )

    def get(self, instrument_id: str, version: str | None = None) -> Instrument:
        """The given version of ``instrument_id``, or its latest version when None."""
        versions = self._by_id.get(instrument_id)
        if not versions:
            raise KeyError(f"unknown instrument {instrument_id!r}")
        if version is None:
            return versions[max(versions, key=_version_key)]
        try:
            return versions[version]
        except KeyError:
            raise KeyError(
                f"unknown version {version!r} of {instrument_id} (have {', '.join(versions)})"
            ) from None

    def by_key(self, key: str) -> Instrument:
        """``registry.by_key("qlq-c30:3.0")``."""
        instrument_id, sep, version = key.partition(":")
        return self.get(instrument_id, version if sep else None)

    def latest(self) -> tuple[Instrument, ...]:
        """The latest version of each instrument, in item order (C30 before PAN26)."""
        return tuple(sorted((self.get(i) for i in self._by_id), key=lambda i: (i.first_item, i.id)))

    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def versions(self, instrument_id: str) -> tuple[str, ...]:
        return tuple(sorted(self._by_id.get(instrument_id, {}), key=_version_key))

    def all(self) -> tuple[Instrument, ...]:
        return self._all

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self.by_key(key)
        except KeyError:
            return False
        return True

    def __repr__(self) -> str:
        return f"InstrumentRegistry({', '.join(i.key for i in self._all)})"
