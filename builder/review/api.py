"""The review app's JSON API, for scripts and load tests: the next item, a vote, the session.
A body is read only through `guard.json_request` (CSRF header, limits, parse, field types)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose session
# type is the app's own dependency, handed in at run time.
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from builder.review.guard import JsonBody, json_request
from builder.review.policy import Decision
from builder.review.service import ReviewRefused, ReviewService


class Decide(JsonBody):
    """`POST /api/decide`: a reviewer's vote on an item (a rejection needs a reason)."""

    item_id: str
    decision: Literal["approve", "reject"]
    reason: str | None = None


def add_api_routes(app: FastAPI, service: ReviewService, session: Any) -> None:
    """`/api/next`, `/api/decide` and `/api/session`."""

    @app.get("/api/next")
    def api_next(reviewer: session) -> dict[str, Any]:
        item = service.next_item(reviewer.name)
        return {"item_id": item.id if item else None}

    @app.post("/api/decide")
    async def api_decide(request: Request, reviewer: session) -> Response:
        body = await json_request(request, reviewer.csrf, Decide)
        try:
            state = await run_in_threadpool(
                service.vote, body.item_id, reviewer.name, Decision(body.decision), body.reason
            )
        except ReviewRefused as error:
            return JSONResponse({"detail": str(error)}, status_code=409)
        return JSONResponse({"state": state.value})

    @app.get("/api/session")
    def api_session(reviewer: session) -> dict[str, Any]:
        return {"reviewer": reviewer.name, "admin": reviewer.admin, "csrf": reviewer.csrf}
