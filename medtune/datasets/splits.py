"""Deterministic splits for corpora that have no official one.

Every split we make is a pure function of a key string (a PMID, a row index): the SHA-256 of the key's
UTF-8 bytes, read as a big-endian integer, taken modulo 100, is the key's *bucket* (0-99). Buckets are
then cut into ranges (e.g. 0-69 train, 70-79 dev, 80-99 test). This gives the same split on every run,
Python version and platform (Python's ``hash()`` is salted per process and is never used), and adding
documents never moves the others.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence


def sha256_hex(key: str) -> str:
    """Hex SHA-256 of the UTF-8 bytes of ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def bucket(key: str, buckets: int = 100) -> int:
    """The bucket (``0 .. buckets-1``) of ``key``: ``int(sha256(key), 16) % buckets``."""
    return int(sha256_hex(key), 16) % buckets


def assign_split(key: str, proportions: Sequence[tuple[str, int]]) -> str:
    """The split of ``key`` given ``[(split, percent), ...]`` summing to 100, cut in that order.

    ``[("train", 70), ("dev", 10), ("test", 20)]``: buckets 0-69 -> train, 70-79 -> dev, 80-99 -> test.
    """
    total = sum(p for _, p in proportions)
    if total != 100:
        raise ValueError(f"split proportions must sum to 100, not {total}")
    b = bucket(key)
    upper = 0
    for name, percent in proportions:
        upper += percent
        if b < upper:
            return name
    raise AssertionError("unreachable")  # pragma: no cover


def sha256_order(keys: Iterable[str]) -> list[str]:
    """``keys`` sorted by the hex SHA-256 of each key (ties, impossible in practice, by the key)."""
    return sorted(keys, key=lambda k: (sha256_hex(k), k))
