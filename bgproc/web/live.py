"""The Process Log, live: server-sent events from the run's stored log (as ``log --follow``).

One poller per web server (:class:`LogPoller`) serves every open stream: each tick it reads
what every followed log grew by since its stream's offset in a few queries
(:meth:`RunStore.read_logs`), so a hundred browsers on a run's page cost the database
what one does, and the workers beside it keep their throughput. A poll opens what it
needs and nothing is held between ticks, so an outage costs a few ``unavailable`` events
and the streams go on when the database is back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bgproc.errors import NotFound
from bgproc.services import documents
from bgproc.store.runs import LogChunk, RunStore
from bgproc.timing.inputs import parse_int
from bgproc.web.api import Web, failure_response, run_id
from bgproc.web.errors import failure_of

POLL_S = 0.5  # as ``monitor log --follow``
MAX_OFFSET = 10**11


@dataclass
class LogPoller:
    """Every stream of one server waits here for the next tick; a tick reads the logs of
    all the streams waiting at once. It runs only while some stream waits."""

    runs: RunStore
    poll_s: float = POLL_S
    _waiting: list[tuple[int, int, asyncio.Future[LogChunk]]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def next_chunk(self, number: int, offset: int) -> LogChunk:
        """What the log of run ``number`` grew by since ``offset``, at the next tick."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a test client's): start afresh
            self._loop, self._task, self._waiting = loop, None, []
        future: asyncio.Future[LogChunk] = loop.create_future()
        self._waiting.append((number, offset, future))
        if self._task is None:
            self._task = loop.create_task(self._poll())
        return await future

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            waiting, self._waiting = self._waiting, []
            if not waiting:
                self._task = None
                return
            wanted: dict[int, set[int]] = {}
            for number, offset, _ in waiting:
                wanted.setdefault(number, set()).add(offset)
            try:
                chunks = await run_in_threadpool(self.runs.read_logs, wanted)
            except Exception as error:
                for _, _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            for number, offset, future in waiting:
                if future.done():  # its stream was closed meanwhile
                    continue
                chunk = chunks.get((number, offset))
                if chunk is None:
                    future.set_exception(NotFound("run", number))
                else:
                    future.set_result(chunk)


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def log_events(request: Request) -> Response:
    """``GET /api/v1/runs/{id}/log/stream?offset=N``: ``log`` events until the run ends,
    then one ``end`` event; ``progress`` events as the run reports it (``ctx.progress``);
    ``unavailable`` while the database cannot be read."""
    web: Web = request.app.state.web
    poller: LogPoller = request.app.state.log_poller
    try:
        web.access.check_host(request)
        web.access.check_read(request)
        number = run_id(request.path_params["id"])
        offset = parse_int(request.query_params.get("offset", "0"), "offset", 0, MAX_OFFSET)
        first = await run_in_threadpool(web.installation.runs.read_log, number, offset)
    except Exception as error:
        return failure_response(error, web.installation)

    async def stream() -> AsyncIterator[str]:
        chunk, shown = first, None
        while True:
            if chunk.progress is not None and chunk.progress != shown:
                shown = chunk.progress
                yield _event("progress", documents.progress_document(shown))
            if chunk.text or chunk.restarted:
                yield _event("log", documents.log_document(chunk))
            if chunk.finished:
                yield _event("end", {"end": chunk.end})
                return
            if await request.is_disconnected():
                return
            try:
                chunk = await poller.next_chunk(number, chunk.end)
            except Exception as error:
                failure = failure_of(error, web.installation.settings)
                if failure is None:
                    raise
                yield _event("unavailable", failure.as_json())
                chunk = replace(chunk, text="", restarted=False)  # the same offset, again

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
