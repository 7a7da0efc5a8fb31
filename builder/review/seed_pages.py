"""The review app's seed queue: curate seeds from public datasets under the review's rules
(the same logins, votes required, leases and audit trail; `builder.review.seed_queue`)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose session
# type is the app's own dependency, handed in at run time.
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from builder.config.settings import Settings
from builder.config.taxonomy import load_taxonomy
from builder.review.policy import Decision
from builder.review.seed_queue import SeedCuration, SeedEdit
from builder.review.service import ReviewRefused
from builder.store import SeedState, Store


def add_seed_routes(
    app: FastAPI,
    store: Store,
    settings: Settings,
    page: Callable[..., HTMLResponse],
    form: Callable[[Request, Any], Awaitable[dict[str, str]]],
    session: Any,
) -> None:
    """`/seeds` (the next seed to curate), `/seeds/{id}` (a seed and its decisions), and
    `/api/seeds/next`, `/api/seeds/decide` for scripts."""
    taxonomy = load_taxonomy(settings.taxonomy)
    curation = SeedCuration(store, settings.review, taxonomy)
    categories = sorted(taxonomy.categories)

    def decide(seed_id: str, reviewer: str, fields: dict[str, Any]) -> SeedState:
        action = fields.get("action") or fields.get("decision")
        if action not in ("approve", "reject"):
            raise HTTPException(400, "action must be approve, reject or skip")
        edit = SeedEdit(fields.get("category") or None, fields.get("key_phrase") or None)
        reason = fields.get("reason_text") or fields.get("reason")
        return curation.vote(
            seed_id, reviewer, Decision(action), reason, edit if action == "approve" else None
        )

    @app.get("/seeds", response_class=HTMLResponse)
    def seeds_next(reviewer: session, category: str = "") -> HTMLResponse:
        seed = curation.next_seed(reviewer.name, category or None)
        pending = store.seed_state_counts().get(SeedState.PENDING.value, 0)
        labels = json.loads(seed.labels) if seed else []
        return page(
            "seeds.html", reviewer=reviewer, seed=seed, labels=labels, categories=categories, pending=pending
        )

    @app.post("/seeds/{seed_id}")
    async def seeds_decide(seed_id: str, request: Request, reviewer: session) -> Response:
        fields = await form(request, reviewer)
        try:
            if fields.get("action") == "skip":
                curation.skip(seed_id, reviewer.name)
            else:
                decide(seed_id, reviewer.name, fields)
        except ReviewRefused as error:
            return page("message.html", status=409, reviewer=reviewer, message=str(error))
        return RedirectResponse("/seeds", status_code=303)

    @app.get("/seeds/{seed_id}", response_class=HTMLResponse)
    def seed_page(seed_id: str, reviewer: session) -> HTMLResponse:
        seed = store.seed_candidate(seed_id)
        if seed is None:
            raise HTTPException(404, "no such seed")
        log = store.decision_log([seed_id])
        return page("seed.html", reviewer=reviewer, seed=seed, log=log, categories=categories)

    @app.post("/seeds/{seed_id}/final")
    async def seed_final(seed_id: str, request: Request, reviewer: session) -> Response:
        fields = await form(request, reviewer)
        if not reviewer.admin:
            raise HTTPException(403, "only admins adjudicate or override decisions")
        if fields.get("decision") not in ("approve", "reject"):
            raise HTTPException(400, "decision must be approve or reject")
        edit = SeedEdit(fields.get("category") or None, fields.get("key_phrase") or None)
        try:
            curation.finalize(
                seed_id, reviewer.name, Decision(fields["decision"]), fields.get("reason_text"), edit
            )
        except ReviewRefused as error:
            return page("message.html", status=409, reviewer=reviewer, message=str(error))
        return RedirectResponse(f"/seeds/{seed_id}", status_code=303)

    @app.get("/api/seeds/next")
    def api_seeds_next(reviewer: session) -> dict[str, Any]:
        seed = curation.next_seed(reviewer.name)
        return {"seed_id": seed.id if seed else None, "text": seed.text if seed else None}

    @app.post("/api/seeds/decide")
    async def api_seeds_decide(request: Request, reviewer: session) -> Response:
        if not secrets.compare_digest(request.headers.get("x-csrf-token", ""), reviewer.csrf):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
        body = await request.json()
        try:
            state = decide(str(body.get("seed_id")), reviewer.name, body)
        except ReviewRefused as error:
            return JSONResponse({"detail": str(error)}, status_code=409)
        return JSONResponse({"state": state.value})
