"""Secrets people and integrations present: passwords (argon2) and API keys.

API keys carry 256 bits of randomness, so a plain SHA-256 is a sufficient and fast lookup
hash for them; passwords are low-entropy and get argon2.
"""

from __future__ import annotations

import hashlib
import secrets

import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

API_KEY_PREFIX = "kl_"
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("kravlab-no-such-user")
# argon2 takes ~50 ms of CPU and 64 MiB per hash: off the event loop, and only a few at once,
# so a burst of logins queues here instead of starving other requests or the memory.
HASHING_THREADS = 4
_hashing: CapacityLimiter | None = None


def _limiter() -> CapacityLimiter:
    # Made on first use: a CapacityLimiter belongs to the event loop that first awaits it.
    global _hashing
    if _hashing is None:
        _hashing = CapacityLimiter(HASHING_THREADS)
    return _hashing


async def hash_password_off_loop(password: str) -> str:
    return await anyio.to_thread.run_sync(hash_password, password, limiter=_limiter())


async def verify_password_off_loop(password_hash: str | None, password: str) -> bool:
    return await anyio.to_thread.run_sync(
        verify_password, password_hash, password, limiter=_limiter()
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)
