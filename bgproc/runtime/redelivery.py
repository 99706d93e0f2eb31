"""Redelivery: a message held by a worker that died goes back to its queue within seconds.

kombu's Redis transport keeps a delivered, unacknowledged message (late acks) in its
``unacked`` hash, with its delivery time in ``unacked_index``, and gives it back only by
age (the visibility timeout). Age says nothing of the worker: a long run would come back
while it runs, and a dead worker's prefetched runs wait that long. So kombu's timeout is
set beyond reach (:data:`bgproc.runtime.app.VISIBILITY_TIMEOUT_S`) and this module decides:

- each worker's housekeeping says which task ids its main process holds (received or
  running), read from Celery's memory: nothing is written per message;
- any worker's housekeeping gives back a message that no live worker holds (none said
  so within ``redeliver_after_s``), delivered before every live worker's last word, and
  seen so on two rounds in a row (a message between Celery's books and its ack is not
  taken for lost); one Lua script moves it, so of several sweepers exactly one does.

A run whose message came back and that had started is handled by the lease rules (lost,
then its next attempt). A worker that was only frozen may still start its own copy: a
copy that may have been given back starts through a conditional transition in the
database (:func:`may_be_given_back`, :meth:`bgproc.store.runs.RunStore.claim_start`).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from bgproc.services.control import UNACKED, Control, Whereabouts
from bgproc.settings import Settings

logger = logging.getLogger("bgproc.redelivery")
UNACKED_INDEX = "unacked_index"  # kombu: delivery tag -> delivery time
BINDINGS = "_kombu.binding."  # kombu: exchange -> "routing key, pattern, queue" members
BINDING_SEP = "\x06\x16"
# A message must have been delivered this long before a worker's word for that word to be
# trusted to list it (Celery books it just after kombu's unacked hash; hosts' clocks differ).
SLACK_S = 2.0
SAFE_UNTIL = "bgproc_safe_until"  # a request's field: until when it may start unclaimed

# KEYS: the unacked hash, its index, then the queue lists; ARGV: the tag, its delivery score
# as it was read (a message delivered again since is someone's again), the payload to push.
# The scores are compared as numbers: clients render a double their own way (redis-py 8.2
# reads 1.7963600723067708e+9 where Redis itself writes 1796360072.3067708).
# HDEL answers 1 to one caller only: the message is given back exactly once.
_GIVE_BACK = """
if tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1])) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
for i = 3, #KEYS do redis.call('RPUSH', KEYS[i], ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class Unacked:
    """A message kombu delivered and nobody acknowledged yet."""

    tag: str
    score: bytes  # its delivery time, exactly as Redis keeps it
    task_id: str
    stored: list[Any]  # [message, exchange, routing key], as kombu stored it

    @property
    def delivered_at(self) -> float:
        return float(self.score)


def may_be_given_back(safe_until: float | None, now_s: float) -> bool:
    """Whether a message its worker found safe until ``safe_until`` (see
    :meth:`Redelivery.safe_until`) may have been given back by ``now_s``."""
    return safe_until is None or now_s >= safe_until


class Redelivery:
    """What each worker holds, and the giving back of what no live worker holds."""

    def __init__(self, broker: Redis, control: Control, settings: Settings) -> None:
        self.broker = broker
        self.control = control
        self.prefix = settings.key_prefix  # kombu's global key prefix
        self.held_key = settings.held_messages_key
        self.after_s = settings.redeliver_after_s
        # This process's last word on what it holds (a worker's main process), and the
        # first word after its last silence long enough for others to give back its messages.
        self.announced_at: float | None = None
        self.resumed_at: float | None = None
        self._give_back = broker.register_script(_GIVE_BACK)
        self._suspects: dict[str, bytes] = {}  # tag -> delivery score, orphaned last round

    # -- each worker ------------------------------------------------------------------

    def announce(self, worker: str, held: Collection[str], now_s: float) -> None:
        """``worker`` holds the task ids ``held`` (taken before ``now_s`` was read)."""
        self.broker.hset(self.held_key, worker, json.dumps({"at": now_s, "ids": sorted(held)}))
        last = self.announced_at
        if last is None or now_s - last >= self.after_s - SLACK_S:
            self.resumed_at = now_s  # set first: read second by safe_until
        self.announced_at = now_s

    def safe_until(self, received_at: float) -> float | None:
        """Until when a message this worker received at ``received_at`` cannot have been
        given back (None: it may have been already): while no silence of this worker's
        word since before it arrived let others think it dead. Read at dispatch, in the
        main process, while the housekeeping thread writes."""
        announced_at = self.announced_at
        resumed_at = self.resumed_at
        if announced_at is None or resumed_at is None or received_at <= resumed_at:
            return None
        return announced_at + self.after_s - SLACK_S

    def retire(self, worker: str) -> None:
        """A clean exit: kombu gave back what the worker held; it holds nothing."""
        self.broker.hdel(self.held_key, worker)

    # -- any worker -------------------------------------------------------------------

    def give_back_orphans(self, now_s: float) -> list[str]:
        """Give back every message that no live worker holds; the task ids given back."""
        live = self._live(now_s)
        trusted_before = min((at for at, _ in live.values()), default=now_s) - SLACK_S
        held = {task_id for _, ids in live.values() for task_id in ids}
        orphans = {
            message.tag: message
            for message in self._unacked()
            if message.task_id not in held and message.delivered_at < trusted_before
        }
        due = [m for tag, m in orphans.items() if self._suspects.get(tag) == m.score]
        self._suspects = {tag: m.score for tag, m in orphans.items()}
        given = [m.task_id for m in due if self._give(m)]
        if given:
            logger.warning("redelivery: messages %s of a worker that stopped given back to "
                           "their queues", given)  # fmt: skip
        return given

    def whereabouts(self, task_id: str, queues: Iterable[str]) -> Whereabouts:
        """Where the message of ``task_id`` is now (``queues``: where to look, besides the
        queues of live workers); "unknown" without Redis, as the run itself still shows."""
        try:
            return self._whereabouts(task_id, queues)
        except RedisError as error:
            return Whereabouts("unknown", type(error).__name__)

    def _whereabouts(self, task_id: str, queues: Iterable[str]) -> Whereabouts:
        for name in self.control.every_queue(queues):
            for text in self.broker.lrange(self.prefix + name, 0, -1):
                if _task_id(_parsed(text)) == task_id:
                    return Whereabouts("queue", name)
        if not any(m.task_id == task_id for m in self._unacked()):
            return Whereabouts("nowhere")
        for worker, (_, ids) in sorted(self._live(time.time()).items()):
            if task_id in ids:
                return Whereabouts("worker", worker)
        return Whereabouts("given back soon")

    def _live(self, now_s: float) -> dict[str, tuple[float, set[str]]]:
        """worker -> (when it spoke, what it holds), of the workers heard of within
        ``after_s`` of ``now_s``. A silent worker's word stays (deleting it could race with
        its waking up); a clean exit removes it, a restart under its name replaces it."""
        live: dict[str, tuple[float, set[str]]] = {}
        for worker, text in self.broker.hgetall(self.held_key).items():
            word = json.loads(text)
            if word["at"] > now_s - self.after_s:
                live[worker.decode()] = (float(word["at"]), set(word["ids"]))
        return live

    def _unacked(self) -> list[Unacked]:
        with self.broker.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.prefix + UNACKED)
            pipe.zrange(self.prefix + UNACKED_INDEX, 0, -1, withscores=True,
                        score_cast_func=bytes)  # fmt: skip
            stored, scores = pipe.execute()
        found = []
        for tag, score in scores:
            message = _parsed(stored.get(tag))
            task_id = _task_id(message[0]) if isinstance(message, list) and message else None
            if task_id is not None:
                found.append(Unacked(tag.decode(), score, task_id, message))
        return found

    def _give(self, message: Unacked) -> bool:
        """Back to its queue(s), flagged as redelivered, as kombu's own restore would, but
        under a new delivery tag: the old holder, if it wakes, can no longer ack, reject or
        restore (at its shutdown) the new copy in its name."""
        payload, exchange, routing_key = message.stored
        payload.get("headers", {})["redelivered"] = True
        properties = payload.get("properties", {})
        properties["delivery_tag"] = str(uuid.uuid4())
        properties.get("delivery_info", {})["redelivered"] = True
        queues = [self.prefix + q for q in self._queues(exchange, routing_key)]
        keys = [self.prefix + UNACKED, self.prefix + UNACKED_INDEX, *queues]
        return bool(self._give_back(keys=keys, args=[message.tag, message.score,
                                                     json.dumps(payload)]))  # fmt: skip

    def _queues(self, exchange: str, routing_key: str) -> list[str]:
        """The queues a direct exchange routes ``routing_key`` to (Celery declares one per
        queue); the routing key itself when none is bound (kombu's anonymous exchange)."""
        if not exchange:
            return [routing_key]
        members = self.broker.smembers(self.prefix + BINDINGS + exchange)
        bound = sorted(
            queue
            for key, _, queue in (m.decode().split(BINDING_SEP) for m in members)
            if key == routing_key
        )
        return bound or [routing_key]


def _parsed(text: bytes | None) -> Any:
    """JSON, or None for anything else (a message of another kind is left alone)."""
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def _task_id(message: Any) -> str | None:
    """A Celery message's task id, from its headers."""
    try:
        return str(message["headers"]["id"])
    except (KeyError, TypeError):
        return None
