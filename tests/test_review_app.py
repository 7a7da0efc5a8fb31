"""The review web app over real HTTP (uvicorn on 127.0.0.1) on SQLite and PostgreSQL:
access control, CSRF, image serving by content hash only, escaping, the review flow, and
8 concurrent reviewers on PostgreSQL."""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
from collections import Counter

import pytest

from builder.config.settings import Settings
from builder.review.policy import Decision
from builder.review.recent import Recent
from builder.review.service import ReviewService
from builder.review.views import readable_role
from builder.store import ReviewState, Store
from tests.review_support import ReviewServer, queue_items

HOSTILE = 'Compare the pictures. <script>alert("x")</script> <img src=x onerror=alert(1)>'


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture
def served(settings: Settings) -> tuple[ReviewServer, Store, ReviewService]:
    store = Store(settings.resolved_database_url)
    with ReviewServer(settings) as server:
        yield server, store, ReviewService(store, settings.review)
    store.close()


def test_nothing_but_the_login_page_works_without_a_session(served, settings: Settings) -> None:
    server, store, _reviews = served
    (item,) = queue_items(store, settings.artifacts, 1)
    sha = item.slots[0].sha256
    anonymous = server.client()
    assert anonymous.get("/login").status_code == 200
    page = anonymous.get("/review", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login"
    for path in [
        "/review",
        "/queue",
        "/stats",
        "/adjudicate",
        f"/items/{item.id}",
        f"/images/{sha}",
        "/api/next",
    ]:
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.post(f"/review/{item.id}", data={"action": "approve"}).status_code == 401
    assert anonymous.post("/api/decide", json={"item_id": item.id, "decision": "approve"}).status_code == 401
    assert anonymous.post("/login", data={"token": "guess"}).status_code == 401
    anonymous.cookies.set("mirbench_review", "forged")
    assert anonymous.get("/api/next").status_code == 401
    assert store.review_entry(item.id).state is ReviewState.PENDING


def test_login_sets_a_strict_httponly_cookie_and_writes_need_the_csrf_token(
    served, settings: Settings
) -> None:
    server, store, reviews = served
    (item,) = queue_items(store, settings.artifacts, 1)
    token = reviews.add_reviewer("ada")
    client = server.client()
    response = client.post("/login", data={"token": token})
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and token.lower() not in cookie
    assert client.post(f"/review/{item.id}", data={"action": "approve"}).status_code == 403
    assert client.post(f"/review/{item.id}", data={"action": "approve", "csrf": "wrong"}).status_code == 403
    assert client.post("/api/decide", json={"item_id": item.id, "decision": "approve"}).status_code == 403
    assert store.review_entry(item.id).state is ReviewState.PENDING
    logout = client.post("/logout", data={"csrf": server.csrf(client)})
    assert logout.status_code == 303 and client.get("/api/next").status_code == 401


def test_images_are_served_by_known_content_hash_only(served, settings: Settings) -> None:
    server, store, reviews = served
    (item,) = queue_items(store, settings.artifacts, 1)
    (settings.artifacts / "secret.txt").write_text("not an image")
    client = server.client(reviews.add_reviewer("ada"))
    for slot in item.slots:
        response = client.get(f"/images/{slot.sha256}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert hashlib.sha256(response.content).hexdigest() == slot.sha256
    unknown = hashlib.sha256(b"never stored").hexdigest()
    for path in [
        f"/images/{unknown}",
        "/images/..%2F..%2Fetc%2Fpasswd",
        "/images/%2e%2e/%2e%2e/etc/passwd",
        f"/images/{item.slots[0].file}",
        "/images/secret.txt",
        f"/images/{item.slots[0].sha256.upper()}",
    ]:
        assert client.get(path).status_code == 404, path
    # a raw request line, as a hostile client sends it (httpx would normalise the dots away)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    connection.request("GET", "/images/../../etc/passwd", headers={"Cookie": cookie})
    response = connection.getresponse()
    assert response.status == 404 and b"root:" not in response.read()
    connection.close()


def test_review_flow_in_html_with_hostile_text_escaped(served, settings: Settings) -> None:
    server, store, reviews = served
    first, second = queue_items(store, settings.artifacts, 2, prompts=[HOSTILE])
    client = server.client(reviews.add_reviewer("ada"))
    page = client.get("/review")
    html = page.text
    assert page.status_code == 200 and "0 of 2 done" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    assert (
        html.index(first.slots[0].sha256)
        < html.index(first.slots[1].sha256)
        < html.index(first.slots[2].sha256)
    )
    for slot in first.slots:
        assert readable_role(slot.role) in html and slot.description in html  # "Role 0"
    assert first.original_question in html and "structural@1" in html
    decided = client.post(f"/review/{first.id}", data={"action": "approve", "csrf": _csrf(html)})
    assert decided.status_code == 303
    html = client.get("/review").text
    assert second.id in html and "1 of 2 done" in html
    refused = client.post(f"/review/{second.id}", data={"action": "reject", "csrf": _csrf(html)})
    assert refused.status_code == 409 and "needs a reason" in refused.text
    client.post(
        f"/review/{second.id}",
        data={
            "action": "reject",
            "reason": "prompt unclear",
            "reason_text": "<b>vague</b>",
            "csrf": _csrf(html),
        },
    )
    assert store.review_entry(second.id).reason == "prompt unclear: <b>vague</b>"
    assert "Nothing left" in client.get("/review").text
    queue = client.get("/queue", params={"state": "rejected"}).text
    assert second.id in queue and first.id not in queue and "&lt;b&gt;vague" in queue
    assert first.id in client.get("/queue", params={"by": "ada", "state": "approved"}).text
    assert client.get("/stats").status_code == 200


def test_the_page_shows_earlier_rounds_with_their_feedback(served, settings: Settings) -> None:
    server, store, reviews = served
    (first,) = queue_items(store, settings.artifacts, 1)
    reviews.vote(first.id, "ada", Decision.REJECT, "harm readable from the text alone")
    (second,) = queue_items(store, settings.artifacts, 1, iteration=2)
    client = server.client(reviews.add_reviewer("bob"))
    html = client.get("/review").text
    assert second.id in html and "round 1 (rejected): review: harm readable from the text alone" in html
    assert "logic to picture two (0)." in html  # the earlier round's prompt


def test_disputes_go_to_admins_only(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"review": settings.review.model_copy(update={"votes_required": 2})}
    )
    store = Store(settings.resolved_database_url)
    reviews = ReviewService(store, settings.review)
    (item,) = queue_items(store, settings.artifacts, 1)
    reviews.vote(item.id, "ada", Decision.APPROVE)
    reviews.vote(item.id, "bob", Decision.REJECT, "leaks")
    with ReviewServer(settings) as server:
        plain = server.client(reviews.add_reviewer("cyd"))
        assert plain.get("/adjudicate").status_code == 403
        forbidden = plain.post(
            f"/items/{item.id}/final",
            data={"decision": "approve", "reason_text": "x", "csrf": server.csrf(plain)},
        )
        assert forbidden.status_code == 403
        admin = server.client(reviews.add_reviewer("boss", admin=True))
        listing = admin.get("/adjudicate").text
        assert item.id in listing and "bob: reject (leaks)" in listing
        final = admin.post(
            f"/items/{item.id}/final",
            data={"decision": "approve", "reason_text": "the images are benign", "csrf": server.csrf(admin)},
        )
        assert final.status_code == 303
        assert "approved" in admin.get(f"/items/{item.id}").text
    assert store.review_entry(item.id).state is ReviewState.APPROVED
    store.close()


def test_a_reviewer_changes_their_vote_on_the_item_page_until_it_is_decided(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"review": settings.review.model_copy(update={"votes_required": 2})}
    )
    store = Store(settings.resolved_database_url)
    reviews = ReviewService(store, settings.review)
    (item,) = queue_items(store, settings.artifacts, 1)
    with ReviewServer(settings) as server:
        ada = server.client(reviews.add_reviewer("ada"))
        csrf = server.csrf(ada)
        ada.post(f"/review/{item.id}", data={"action": "reject", "reason": "prompt unclear", "csrf": csrf})
        page = ada.get(f"/items/{item.id}").text
        assert "Your vote" in page and "prompt unclear" in page
        ada.post(f"/review/{item.id}", data={"action": "approve", "csrf": csrf})
        reviews.vote(item.id, "bob", Decision.APPROVE)
        assert "Your vote" not in ada.get(f"/items/{item.id}").text  # decided: only admins now
        late = ada.post(f"/review/{item.id}", data={"action": "reject", "reason": "x", "csrf": csrf})
        assert late.status_code == 409 and "only an admin" in late.text
    log = [(row.reviewer, row.decision, row.superseded) for row in store.decision_log()]
    assert log == [("ada", "reject", True), ("ada", "approve", False), ("bob", "approve", False)]
    assert store.review_entry(item.id).state is ReviewState.APPROVED
    store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("votes_required", [1, 2])
def test_eight_concurrent_reviewers_lose_nothing_and_never_share_a_lease(
    settings: Settings, votes_required: int
) -> None:
    """8 reviewers (threads, each its own HTTP session) take and decide items as fast as they
    can. Every accepted decision is stored exactly once, each item gets exactly the votes it
    needs, and no item is handed to more reviewers than it needs votes."""
    if not settings.resolved_database_url.startswith("postgresql"):
        pytest.skip("the concurrency test runs on PostgreSQL (SQLite serialises writers anyway)")
    settings = settings.model_copy(
        update={"review": settings.review.model_copy(update={"votes_required": votes_required})}
    )
    store = Store(settings.resolved_database_url)
    items = queue_items(store, settings.artifacts, 80, size=32)
    reviews = ReviewService(store, settings.review)
    tokens = [reviews.add_reviewer(f"r{n}") for n in range(8)]
    accepted: list[tuple[str, str]] = []
    handed: list[tuple[str, str]] = []
    failures: list[str] = []
    lock = threading.Lock()

    with ReviewServer(settings) as server:

        def reviewer(name: str, token: str) -> None:
            client = server.client(token)
            csrf = server.csrf(client)
            while True:
                item_id = client.get("/api/next").json()["item_id"]
                if item_id is None:
                    return
                response = client.post(
                    "/api/decide",
                    json={"item_id": item_id, "decision": "approve"},
                    headers={"x-csrf-token": csrf},
                )
                with lock:
                    handed.append((item_id, name))
                    if response.status_code == 200:
                        accepted.append((item_id, name))
                    else:
                        failures.append(f"{name} {item_id}: {response.status_code} {response.text}")

        threads = [threading.Thread(target=reviewer, args=(f"r{n}", t)) for n, t in enumerate(tokens)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert failures == []
    log = store.decision_log()
    assert len(accepted) == len(log) == len(items) * votes_required  # 0 lost, 0 counted twice
    assert Counter((row.item_id, row.reviewer) for row in log) == Counter(accepted)
    per_item = Counter(item_id for item_id, _ in handed)
    assert set(per_item) == {item.id for item in items}
    assert set(per_item.values()) == {votes_required}  # never handed out beyond what it needs
    assert len(set(handed)) == len(handed)  # never twice to one reviewer
    assert len(store.approved_items()) == len(items)
    store.close()


def test_a_session_looked_up_is_trusted_for_seconds_only() -> None:
    """Each server process asks the store who a session is at most once per
    `session_check_seconds`; an unknown session is asked about every time."""
    now = [100.0]
    asked: list[str] = []
    live = {"known": "reviewer-a"}

    def look_up(digest: str) -> str | None:
        asked.append(digest)
        return live.get(digest)

    sessions = Recent(2.0, clock=lambda: now[0])
    assert sessions.get("known", look_up) == "reviewer-a"
    del live["known"]  # logged out through another server process
    now[0] += 1.9
    assert sessions.get("known", look_up) == "reviewer-a" and asked == ["known"]
    now[0] += 0.1
    assert sessions.get("known", look_up) is None and asked == ["known", "known"]
    assert sessions.get("other", look_up) is None and sessions.get("other", look_up) is None
    assert asked.count("other") == 2
    live["known"] = "reviewer-a"
    sessions.get("known", look_up)
    sessions.forget("known")  # a logout through this process: at once
    del live["known"]
    assert sessions.get("known", look_up) is None
    assert Recent(0).get("x", lambda _: "r") == "r"
