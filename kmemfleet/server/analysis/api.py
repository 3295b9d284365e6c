"""Entry points the Query service calls for the rankings (filled in by the ranking work).

Contract: `leaks` and `diff` first make the analysis tables cover everything
acknowledged before the call (catch up on analysis_queue), then answer from them.
"""

from __future__ import annotations

import asyncpg

from kmemfleet.v1 import query_pb2


async def leaks(pool: asyncpg.Pool, request: query_pb2.LeaksRequest) -> query_pb2.LeaksResponse:
    raise NotImplementedError("leak ranking is not built yet")


async def diff(pool: asyncpg.Pool, request: query_pb2.DiffRequest) -> query_pb2.DiffResponse:
    raise NotImplementedError("firmware diff is not built yet")
