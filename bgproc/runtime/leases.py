"""Leases in Redis: "one at a time" across every worker and machine (prevent concurrent).

A lease is a key set with NX and an expiry, holding a random token; its holder
renews it while the run goes, and only the holder's token can release it. A
holder that dies (SIGKILL, lost host) stops renewing and the lease expires.
"""

from __future__ import annotations

import threading
import uuid

from redis import Redis

LEASE_TTL_MS = 30_000  # how long a dead holder blocks the next run
RENEW_EVERY_S = LEASE_TTL_MS / 1000 / 3

# Renew or release only if we still hold it: another holder's lease is never touched.
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end"
)


class Lease:
    """A renewed Redis lease on ``key``: ``acquire()``, then ``release()`` when done.

    Its value names the run that holds it (``RUN_ID:token``): a fire that replaces the
    running run (``--replace-running``) reads whom to stop."""

    def __init__(self, redis: Redis, key: str, holder: int, ttl_ms: int = LEASE_TTL_MS) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = f"{holder}:{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lease if free, and keep it renewed in the background."""
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self.key}", daemon=True)
        self._renewer.start()
        return True

    @staticmethod
    def holder(redis: Redis, key: str) -> int | None:
        """The run holding the lease on ``key``; None if it is free (or held by a worker
        older than holder names)."""
        value = redis.get(key)
        head = value.split(b":", 1)[0] if value else b""
        return int(head) if head.isdigit() else None

    def release(self) -> None:
        """Stop renewing and free the lease (only if it is still ours)."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
        self.redis.eval(_RELEASE, 1, self.key, self.token)

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY_S * self.ttl_ms / LEASE_TTL_MS):
            try:
                if not self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms):
                    return  # lost it (expired while Redis was away): nothing to renew
            except Exception:  # a Redis hiccup: try again at the next beat of the loop
                continue
