"""The review app's seed queue: curate seeds from public datasets under the review's rules
(the same logins, votes required, leases and audit trail; `builder.review.seed_queue`)."""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose session
# type is the app's own dependency, handed in at run time.
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from builder.config.settings import Settings
from builder.config.taxonomy import load_taxonomy
from builder.review.guard import JsonBody, json_request
from builder.review.policy import Decision
from builder.review.seed_queue import SeedCuration, SeedEdit
from builder.review.service import ReviewRefused
from builder.store import SeedState, Store

Form = Callable[[Request, Any], Awaitable[dict[str, str]]]


class SeedDecide(JsonBody):
    """`POST /api/seeds/decide`: a vote on a seed, named as the page's form names it
    (`action` or `decision`; `reason` or `reason_text`)."""

    seed_id: str
    action: Literal["approve", "reject"] | None = None
    decision: Literal["approve", "reject"] | None = None
    category: str | None = None
    key_phrase: str | None = None
    reason: str | None = None
    reason_text: str | None = None


@dataclass(frozen=True)
class SeedPages:
    """What the seed routes share."""

    store: Store
    curation: SeedCuration
    categories: list[str]
    page: Callable[..., HTMLResponse]
    form: Form

    def decide(self, seed_id: str, reviewer: str, fields: dict[str, Any]) -> SeedState:
        action = fields.get("action") or fields.get("decision")
        if action not in ("approve", "reject"):
            raise HTTPException(400, "action must be approve, reject or skip")
        edit = SeedEdit(fields.get("category") or None, fields.get("key_phrase") or None)
        reason = fields.get("reason_text") or fields.get("reason")
        return self.curation.vote(
            seed_id, reviewer, Decision(action), reason, edit if action == "approve" else None
        )


def add_seed_routes(
    app: FastAPI,
    store: Store,
    settings: Settings,
    page: Callable[..., HTMLResponse],
    form: Form,
    session: Any,
) -> None:
    """`/seeds` (the next seed to curate), `/seeds/{id}` (a seed and its decisions), and
    `/api/seeds/next`, `/api/seeds/decide` for scripts."""
    taxonomy = load_taxonomy(settings.taxonomy)
    curation = SeedCuration(store, settings.review, taxonomy)
    shared = SeedPages(store, curation, sorted(taxonomy.categories), page, form)
    _seed_page_routes(app, shared, session)
    _seed_api_routes(app, shared, session)


def _seed_page_routes(app: FastAPI, shared: SeedPages, session: Any) -> None:
    """The pages people curate seeds on, and their forms."""
    store, curation, categories, page, form = (
        shared.store,
        shared.curation,
        shared.categories,
        shared.page,
        shared.form,
    )
    decide = shared.decide

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


def _seed_api_routes(app: FastAPI, shared: SeedPages, session: Any) -> None:
    """The JSON API of the seed queue, for scripts; bodies are read by `json_request`."""
    curation = shared.curation

    @app.get("/api/seeds/next")
    def api_seeds_next(reviewer: session) -> dict[str, Any]:
        seed = curation.next_seed(reviewer.name)
        return {"seed_id": seed.id if seed else None, "text": seed.text if seed else None}

    @app.post("/api/seeds/decide")
    async def api_seeds_decide(request: Request, reviewer: session) -> Response:
        body = await json_request(request, reviewer.csrf, SeedDecide)
        try:
            state = shared.decide(body.seed_id, reviewer.name, body.model_dump())
        except ReviewRefused as error:
            return JSONResponse({"detail": str(error)}, status_code=409)
        return JSONResponse({"state": state.value})
