"""Optional encryption at rest of stored callback payloads (AES-256-GCM).

A sealed payload is `CBE1` + the key's 8-byte id + a 12-byte nonce + the
ciphertext with its tag. The id names the key that sealed it, so keys can be
rotated: new payloads are sealed with the current key, older ones are still
opened with a previous key kept in the config until no payload needs it.
Plain payloads (written before encryption was turned on) are read as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["PayloadCipher", "PayloadKeyError", "load_key", "open_plain"]

_MAGIC = b"CBE1"
_KEY_ID_BYTES = 8
_NONCE_BYTES = 12
# Binds a sealed payload to its purpose, so it cannot pass for another kind of blob.
_ASSOCIATED_DATA = b"cryptum-bridge/event-payload"


class PayloadKeyError(Exception):
    """A payload cannot be opened: its key is not configured, or the key is wrong."""


def load_key(path: Path) -> bytes:
    """A 32-byte key from a file, in base64 (`openssl rand -base64 32`) or hex."""
    text = path.read_text(encoding="ascii").strip()
    for decode in (base64.b64decode, bytes.fromhex):
        try:
            key = decode(text)
        except (binascii.Error, ValueError):
            continue
        if len(key) == 32:
            return key
    raise PayloadKeyError(f"{path} does not hold a 32-byte key in base64 or hex")


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"cryptum-bridge key id" + key).digest()[:_KEY_ID_BYTES]


class PayloadCipher:
    """Seals with the current key; opens with any configured key."""

    def __init__(self, current: bytes, previous: list[bytes] | None = None) -> None:
        # Imported here: a daemon without encryption never loads OpenSSL's AEAD code
        # (several MiB of memory).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._current_id = _key_id(current)
        self._current = AESGCM(current)
        self._keys: dict[bytes, AESGCM] = {
            _key_id(key): AESGCM(key) for key in [*(previous or []), current]
        }

    def seal(self, payload: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._current.encrypt(nonce, payload, _ASSOCIATED_DATA)
        return _MAGIC + self._current_id + nonce + sealed

    def open(self, stored: bytes) -> bytes:
        if not stored.startswith(_MAGIC):
            return stored  # stored before encryption was turned on
        key_id = stored[len(_MAGIC) : len(_MAGIC) + _KEY_ID_BYTES]
        nonce_at = len(_MAGIC) + _KEY_ID_BYTES
        nonce = stored[nonce_at : nonce_at + _NONCE_BYTES]
        aead = self._keys.get(key_id)
        if aead is None:
            raise PayloadKeyError(
                f"a stored payload was sealed with key {key_id.hex()}, which is not configured: "
                "keep earlier keys in storage.previous_key_files"
            )
        from cryptography.exceptions import InvalidTag

        try:
            return aead.decrypt(nonce, stored[nonce_at + _NONCE_BYTES :], _ASSOCIATED_DATA)
        except InvalidTag:
            raise PayloadKeyError(
                f"a stored payload sealed with key {key_id.hex()} fails its integrity check"
            ) from None


def open_plain(stored: bytes) -> bytes:
    """For a database without encryption: refuse sealed payloads with a clear message."""
    if stored.startswith(_MAGIC):
        raise PayloadKeyError(
            "stored payloads are encrypted but no storage.encryption_key_file is configured"
        )
    return stored
