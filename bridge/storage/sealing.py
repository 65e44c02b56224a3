"""Payloads and facts as stored: sealed with the configured key, or in the clear."""

from __future__ import annotations

from ..encryption import PayloadCipher, open_plain
from .records import EventFacts

__all__ = ["Sealing"]


class Sealing:
    """Seals what an engine writes and opens what it reads; every engine stores the same bytes.

    So a database moved to another engine (`migrate-storage`) is copied as
    it is, sealed payloads included, without the key.
    """

    def __init__(self, cipher: PayloadCipher | None) -> None:
        self._cipher = cipher

    def seal(self, payload: bytes) -> bytes:
        """The payload as stored: encrypted when a key is configured."""
        return self._cipher.seal(payload) if self._cipher is not None else payload

    def open(self, stored: bytes) -> bytes:
        """A stored payload in the clear; raises `PayloadKeyError` if it cannot be opened."""
        return self._cipher.open(stored) if self._cipher is not None else open_plain(stored)

    def facts(self, stored: bytes) -> EventFacts:
        return EventFacts.from_json(self.open(stored))

    def redacted_facts(self, stored: bytes) -> bytes:
        """Stored facts without their free text, sealed again."""
        return self.seal(self.facts(stored).redacted().to_json())
