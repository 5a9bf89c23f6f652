"""The record that flows through ingest: a key plus named fields, WebDataset style."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Sample:
    """One sample on its way to a shard.

    ``fields`` maps extensions (``jpg``, ``json``, ``txt``) to bytes. ``source`` names the
    input by keyed hash and position (never a raw URL unless the policy allows it).
    After the privacy stage, ``subject`` holds the subject pseudonym (if the policy names
    a subject field) and ``stats`` counts actions and entities (never values).
    """

    key: str
    fields: dict[str, bytes]
    source: str | None = None
    subject: str | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, bytes | str]:
        return {"__key__": self.key, **self.fields}
