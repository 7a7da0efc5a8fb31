"""The review web app: server-rendered pages (FastAPI + Jinja2), no JavaScript build step.

Access: every route but the login page needs a session. Logging in with a reviewer token sets
an HttpOnly, SameSite=Strict cookie holding a random session token (the store keeps only its
sha256); every form and API write carries the session's CSRF token. Item text is adversarial
by design, so templates autoescape everything and the Content-Security-Policy lets only the
page's own nonce-tagged script run. Images are served by content hash only: the hash is
looked up in the store's render records, never taken as a path.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from builder.config.settings import Settings, load_settings
from builder.core.items import Item
from builder.review.answers import answers_of
from builder.review.api import add_api_routes
from builder.review.guard import (
    DATABASE_FAULTS,
    LoginThrottle,
    RequestLimits,
    client_address,
    database_away,
    form_fields,
    same_token,
)
from builder.review.policy import Decision
from builder.review.recent import Recent
from builder.review.service import ReviewRefused, ReviewService, token_digest
from builder.review.views import TaxonomyView, readable_role
from builder.store import ReviewState, Store

COOKIE = "mirbench_review"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


@dataclass(frozen=True)
class Reviewer:
    name: str
    admin: bool
    csrf: str


class LoginRequired(Exception):
    pass


def current_reviewer(request: Request) -> Reviewer:
    token = request.cookies.get(COOKIE)
    state = request.app.state
    found = state.sessions.get(token_digest(token), state.store.session_of) if token else None
    if found is None:
        raise LoginRequired
    row, csrf = found
    return Reviewer(row.name, row.admin, csrf)


Session = Annotated[Reviewer, Depends(current_reviewer)]


@dataclass(frozen=True)
class Shared:
    """What the app's parts share: the settings, the store, the review service, and how a
    page is rendered."""

    settings: Settings
    store: Store
    service: ReviewService
    page: Callable[..., HTMLResponse]


def create_app(settings: Settings) -> FastAPI:
    # No waiting for a database that is away: the request gets 503 and a retry hint instead.
    store = Store(settings.resolved_database_url, wait_seconds=0)
    app = _bare_app(settings, store)
    taxonomy = TaxonomyView.load(settings.taxonomy)  # filter choices, definitions, role hints
    shared = Shared(
        settings, store, ReviewService(store, settings.review), partial(_page, settings, taxonomy)
    )
    _login_routes(app, shared)
    _review_routes(app, shared)
    _overview_routes(app, shared)
    from builder.review.seed_pages import add_seed_routes

    add_seed_routes(app, store, settings, shared.page, csrf_form, Session)
    _image_route(app, shared)
    add_api_routes(app, shared.service, Session)
    return app


def _bare_app(settings: Settings, store: Store) -> FastAPI:
    """The app with its guards and error answers, and no routes yet."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="mirbench review", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store = store
    app.state.sessions = Recent(settings.review.session_check_seconds)
    app.add_middleware(RequestLimits, limit=settings.review.max_body_bytes)
    for fault in DATABASE_FAULTS:
        app.add_exception_handler(fault, database_away)

    @app.exception_handler(LoginRequired)
    def _login_first(request: Request, _exc: LoginRequired) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/login", status_code=303)
        return JSONResponse({"detail": "log in first"}, status_code=401)

    return app


def _page(
    settings: Settings, taxonomy: TaxonomyView, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _TEMPLATES.get_template(template).render(
        nonce=nonce, settings=settings.review, taxonomy=taxonomy, readable_role=readable_role, **context
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


async def csrf_form(request: Request, reviewer: Reviewer) -> dict[str, str]:
    """A page's form, once its CSRF field matches the session's (403 otherwise)."""
    fields = await form_fields(request)
    if not same_token(fields.get("csrf", ""), reviewer.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")
    return fields


def _login_routes(app: FastAPI, shared: Shared) -> None:
    """`/login` (the page and the form) and `/logout`; failed logins are throttled."""
    settings, store, page = shared.settings, shared.store, shared.page
    throttle = LoginThrottle(settings.review.login_failures_allowed, settings.review.login_window_seconds)

    @app.get("/login", response_class=HTMLResponse)
    def login_page() -> HTMLResponse:
        return page("login.html", reviewer=None, error=None)

    @app.post("/login")
    async def login(request: Request) -> Response:
        address = client_address(request)
        throttle.check(address)
        token = (await form_fields(request)).get("token", "").strip()
        row = store.reviewer_by_token(token_digest(token)) if token else None
        if row is None:
            throttle.failed(address)
            return page("login.html", status=401, reviewer=None, error="unknown token")
        throttle.succeeded(address)
        session_token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        lifetime = timedelta(hours=settings.review.session_hours)
        store.open_session(token_digest(session_token), row.name, csrf, datetime.now(UTC) + lifetime)
        response = RedirectResponse("/review", status_code=303)
        response.set_cookie(
            COOKIE,
            session_token,
            max_age=int(lifetime.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @app.post("/logout")
    async def logout(request: Request, reviewer: Session) -> Response:
        await csrf_form(request, reviewer)
        digest = token_digest(request.cookies.get(COOKIE, ""))
        store.close_session(digest)
        app.state.sessions.forget(digest)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response


def _review_routes(app: FastAPI, shared: Shared) -> None:
    """Reviewing items: the next item (`/review`), a vote on it, an item's page and an admin's
    final word."""
    store, service, page = shared.store, shared.service, shared.page

    def refused(reviewer: Reviewer, error: ReviewRefused) -> HTMLResponse:
        return page("message.html", status=409, reviewer=reviewer, message=str(error))

    @app.get("/")
    def home(reviewer: Session) -> Response:
        return RedirectResponse("/review", status_code=303)

    @app.get("/review", response_class=HTMLResponse)
    def review_next(reviewer: Session, category: str = "", relation: str = "") -> HTMLResponse:
        item = service.next_item(reviewer.name, category or None, relation or None)
        done, total = service.progress()
        filters = urlencode({k: v for k, v in {"category": category, "relation": relation}.items() if v})
        return page(
            "review.html",
            reviewer=reviewer,
            item=item,
            rounds=_earlier_rounds(store, item) if item else [],
            answers=answers_of(store, item) if item else [],
            done=done,
            total=total,
            filters=filters,
            category=category,
            relation=relation,
        )

    @app.post("/review/{item_id}")
    async def review_decide(item_id: str, request: Request, reviewer: Session) -> Response:
        fields = await csrf_form(request, reviewer)
        action = fields.get("action", "")
        try:
            # the store is synchronous: off the event loop, so other requests go on meanwhile
            if action == "skip":
                await run_in_threadpool(service.skip, item_id, reviewer.name)
            elif action in ("approve", "reject"):
                reason = _reason(fields) if action == "reject" else None
                await run_in_threadpool(service.vote, item_id, reviewer.name, Decision(action), reason)
            else:
                raise HTTPException(400, "action must be approve, reject or skip")
        except ReviewRefused as error:
            return refused(reviewer, error)
        filters = fields.get("filters", "")
        return RedirectResponse("/review" + (f"?{filters}" if filters else ""), status_code=303)

    @app.get("/items/{item_id}", response_class=HTMLResponse)
    def item_page(item_id: str, reviewer: Session) -> HTMLResponse:
        entry = store.review_entry(item_id)
        if entry is None:
            raise HTTPException(404, "no such item in the review queue")
        return page(
            "item.html",
            reviewer=reviewer,
            entry=entry,
            item=entry.item,
            rounds=_earlier_rounds(store, entry.item),
            answers=answers_of(store, entry.item),
            log=store.decision_log([item_id]),
        )

    @app.post("/items/{item_id}/final")
    async def item_final(item_id: str, request: Request, reviewer: Session) -> Response:
        fields = await csrf_form(request, reviewer)
        if not reviewer.admin:
            raise HTTPException(403, "only admins adjudicate or override decisions")
        if fields.get("decision") not in ("approve", "reject"):
            raise HTTPException(400, "decision must be approve or reject")
        try:
            service.finalize(item_id, reviewer.name, Decision(fields["decision"]), _reason(fields))
        except ReviewRefused as error:
            return refused(reviewer, error)
        return RedirectResponse(f"/items/{item_id}", status_code=303)


def _overview_routes(app: FastAPI, shared: Shared) -> None:
    """The queue, the adjudication page and the statistics."""
    store, page = shared.store, shared.page

    @app.get("/queue", response_class=HTMLResponse)
    def queue(
        reviewer: Session, category: str = "", relation: str = "", state: str = "", by: str = ""
    ) -> HTMLResponse:
        chosen = ReviewState(state) if state in {s.value for s in ReviewState} else None
        entries = store.reviews(chosen, 500, category or None, relation or None, by or None)
        return page(
            "queue.html",
            reviewer=reviewer,
            entries=entries,
            states=[s.value for s in ReviewState],
            category=category,
            relation=relation,
            state=state,
            by=by,
        )

    @app.get("/adjudicate", response_class=HTMLResponse)
    def adjudicate(reviewer: Session) -> HTMLResponse:
        if not reviewer.admin:
            raise HTTPException(403, "only admins adjudicate")
        entries = store.reviews(ReviewState.DISPUTED, 500)
        log = store.decision_log([entry.item.id for entry in entries])
        return page("adjudicate.html", reviewer=reviewer, entries=entries, log=log)

    @app.get("/stats", response_class=HTMLResponse)
    def stats_page(reviewer: Session) -> HTMLResponse:
        from builder.review.stats import review_stats

        return page("stats.html", reviewer=reviewer, report=review_stats(store))


def _image_route(app: FastAPI, shared: Shared) -> None:
    """`/images/{sha256}`: a picture by its content hash, looked up in the render records."""
    settings, store = shared.settings, shared.store
    images_root = (settings.artifacts / "images").resolve()

    @app.get("/images/{sha256}")
    def image(sha256: str, reviewer: Session) -> Response:
        if not _SHA256.fullmatch(sha256):
            raise HTTPException(404)
        relative = store.image_file(sha256)
        if relative is None:
            raise HTTPException(404)
        path = (settings.artifacts / relative).resolve()
        if not path.is_relative_to(images_root) or not path.is_file():
            raise HTTPException(404)
        data = path.read_bytes()
        media_type = next((kind for magic, kind in _IMAGE_TYPES.items() if data.startswith(magic)), None)
        if media_type is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            media_type = "image/webp"
        if media_type is None or hashlib.sha256(data).hexdigest() != sha256:
            raise HTTPException(404)
        headers = {"Cache-Control": "private, max-age=86400, immutable", "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type=media_type, headers=headers)


def app_from_environment() -> FastAPI:
    """For `uvicorn --factory` with several workers: settings from MIRBENCH_* / MIRBENCH_CONFIG."""
    return create_app(load_settings())


def _reason(fields: dict[str, str]) -> str | None:
    """A listed reason and/or free text."""
    parts = [fields.get("reason", "").strip(), fields.get("reason_text", "").strip()]
    return ": ".join(part for part in parts if part) or None


@dataclass(frozen=True)
class Round:
    item: Item
    feedback: list[str]


def _earlier_rounds(store: Store, item: Item) -> list[Round]:
    """The earlier rounds of an item's pair, with why each was rejected."""
    if item.iteration == 1:  # the first round has none: no store round trip
        return []
    return [
        Round(
            other,
            [
                f"{v.name}: {v.reason}" + (f" ({v.detail})" if v.detail else "")
                for v in other.verdicts
                if v.failed
            ],
        )
        for other in store.pair_rounds(item)
        if other.iteration < item.iteration
    ]
