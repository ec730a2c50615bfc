"""Encryption of identity data at rest and hashing of link tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

TOKEN_BYTES = 24  # 192 bits from secrets; the link carries ~32 url-safe characters


class Vault:
    """Encrypts and decrypts small secrets (phone numbers, TOTP seeds, open-window tokens).

    Keys come from PRO_ENCRYPTION_KEY, newest first, so a key can be rotated without downtime.
    """

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        # A separate sub-key for the phone lookup hash, derived from the newest key.
        self._lookup_key = hashlib.sha256(
            b"pro-service phone lookup\x00" + keys[0].encode()
        ).digest()

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: wrong PRO_ENCRYPTION_KEY or damaged data") from exc

    def phone_lookup(self, e164: str) -> str:
        return hmac.new(self._lookup_key, e164.encode(), hashlib.sha256).hexdigest()


def new_link_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_key() -> str:
    return Fernet.generate_key().decode()
