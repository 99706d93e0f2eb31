"""The Process Log, live: server-sent events from the run's stored log (as ``log --follow``).

Each poll opens what it needs and reads what the log grew by since the last offset;
nothing is held between polls, so an outage costs a few ``unavailable`` events and
the stream goes on when the database is back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from bgproc.services import documents
from bgproc.timing.inputs import parse_int
from bgproc.web.api import Web, failure_response, run_id
from bgproc.web.errors import failure_of

POLL_S = 0.5  # as ``monitor log --follow``
MAX_OFFSET = 10**11


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def log_events(request: Request) -> Response:
    """``GET /api/v1/runs/{id}/log/stream?offset=N``: ``log`` events until the run ends,
    then one ``end`` event; ``progress`` events as the run reports it (``ctx.progress``);
    ``unavailable`` while the database cannot be read."""
    web: Web = request.app.state.web
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
            await asyncio.sleep(POLL_S)
            if await request.is_disconnected():
                return
            try:
                chunk = await run_in_threadpool(web.installation.runs.read_log, number, chunk.end)
            except Exception as error:
                failure = failure_of(error, web.installation.settings)
                if failure is None:
                    raise
                yield _event("unavailable", failure.as_json())
                chunk = replace(chunk, text="", restarted=False)  # the same offset, again

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
