"""Stage `publish`: a verified local release -> one commit on a Hugging Face dataset repo, tagged.

A version is immutable on the Hub as it is locally: a tag `vX.Y.Z` that holds other content is
refused, the same content again is a no-op. Every step is idempotent and checks the Hub's state
first, so a rerun after any interruption resumes (LFS objects already uploaded are not sent
again; a commit that landed but was not tagged is tagged). 429 (honouring Retry-After), 5xx and
dropped connections are retried with jittered exponential back-off.

The token comes from `HF_TOKEN` or the `huggingface_hub` login. It is handed to the client only:
never printed, logged, stored or written (error messages carry status and URL, not headers).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from builder.config.sections import PublishSettings
from builder.config.settings import Settings
from builder.core import progress
from builder.core.errors import InputError
from builder.core.outputs import check_new_folder, new_folder
from builder.release.export import VERSION_PATTERN, verify_release, version_key
from builder.store import ReviewState, Store

T = TypeVar("T")
Action = Literal["published", "already published", "tagged an earlier commit", "dry run"]
MANIFEST = "manifest.json"
REPO_PATTERN = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
KEPT_ON_HUB = frozenset({".gitattributes"})  # the Hub's own file: never deleted by a release


class PublishError(Exception):
    """The Hub refused or kept failing; the message says what to do. `resumable`: a rerun can
    get further (the Hub kept failing: rate limits, 5xx, dropped links), as opposed to a refusal
    that a rerun meets again (a tag with other content, a newer version, a 4xx)."""

    def __init__(self, message: str, *, resumable: bool = False):
        super().__init__(message)
        self.resumable = resumable


class PublishResult(BaseModel):
    repo: str
    version: str
    tag: str
    action: Action
    commit: str | None = None
    files: int
    gated: str | None = None
    dry_run_folder: Path | None = None


def _is_newer(tag: str, version: str) -> bool:
    """Whether `tag` names a release version above `version` (other tags are not ours)."""
    if not (tag.startswith("v") and VERSION_PATTERN.match(tag[1:])):
        return False
    return version_key(tag[1:]) > version_key(version)


def tag_for(version: str) -> str:
    return f"v{version}"


def check_publishable(folder: Path, manifest_sha256: str, approved_ids: set[str]) -> dict[str, Any]:
    """The release's manifest, once the folder verifies, has a license, and every item is
    approved now and every image decodes."""
    import pyarrow.parquet as pq
    from PIL import Image

    manifest = verify_release(folder, manifest_sha256)
    # Releases record a licence set or derived from their contents; older ones only the setting.
    derived = (manifest.get("license") or {}).get("source") in ("set", "derived")
    if not (derived or manifest["config"].get("release", {}).get("license")):
        raise InputError(
            "release has no license: its pictures and seeds do not all name one, and release.license "
            "was not set. Set it in the config (e.g. cc-by-nc-4.0) and release a new version; "
            "publishing needs one",
            path=folder / MANIFEST,
        )
    unapproved = [entry["id"] for entry in manifest["selection"] if entry["item_id"] not in approved_ids]
    if unapproved:
        raise InputError(
            f"{len(unapproved)} released item(s) are not approved in the store: {', '.join(unapproved[:10])}"
        )
    advance = progress.track("check", manifest["items"])
    for shard in sorted((folder / "data").glob("*.parquet")):
        table = pq.read_table(shard, columns=["id", "images"])
        for row_id, images in zip(
            table.column("id").to_pylist(), table.column("images").to_pylist(), strict=True
        ):
            for k, image in enumerate(images):
                try:
                    with Image.open(io.BytesIO(image["bytes"])) as opened:
                        opened.load()
                except Exception as exc:
                    raise InputError(
                        f"item {row_id}: image {k} does not decode ({exc})", path=shard
                    ) from None
            advance(1)
    return manifest


def dry_run(folder: Path, target: Path, repo: str, version: str) -> PublishResult:
    """Write exactly the files that would be uploaded into `target`, a new folder."""
    with new_folder(target, "--dry-run-out") as staging:
        shutil.copytree(folder, staging, dirs_exist_ok=True)
    target = Path(target).absolute()
    files = sum(1 for path in target.rglob("*") if path.is_file())
    return PublishResult(
        repo=repo, version=version, tag=tag_for(version), action="dry run", files=files, dry_run_folder=target
    )


class _Hub:
    """The few Hub calls a publish makes, each retried on 429, 5xx and dropped connections."""

    def __init__(self, repo: str, token: str, settings: PublishSettings):
        from huggingface_hub import HfApi
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()  # per-file bars would flood the log; the CLI shows its own
        self.repo = repo
        self._token = token
        self.api = HfApi(token=token)
        self.settings = settings
        self.waited = 0.0  # seconds this publish has slept on retries, against max_wait_seconds

    def call(self, what: str, step: Callable[[], T]) -> T:
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return step()
            except Exception as exc:
                delay = _retry_delay(exc, attempt, self.settings.backoff_seconds)
                if delay is None:
                    raise PublishError(f"{what} on {self.repo} failed: {_describe(exc)}") from None
                budget_left = self.settings.max_wait_seconds - self.waited
                if attempt == attempts or delay > budget_left:
                    storm = _storm(exc, attempt, delay, budget_left)
                    raise PublishError(
                        f"{what} on {self.repo} failed: {_describe(exc)}{storm}", resumable=True
                    ) from None
                time.sleep(delay)
                self.waited += delay
        raise AssertionError("unreachable")

    def manifest_bytes(self, revision: str) -> bytes | None:
        """manifest.json at `revision`, or None when the revision or the file is not there."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.errors import RemoteEntryNotFoundError, RevisionNotFoundError
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        url = hf_hub_url(self.repo, MANIFEST, repo_type="dataset", revision=revision)
        headers = build_hf_headers(token=self._token)

        def read() -> bytes | None:
            response = get_session().get(url, headers=headers, follow_redirects=True)
            try:
                hf_raise_for_status(response)
            except (RemoteEntryNotFoundError, RevisionNotFoundError):
                return None
            return response.content

        return self.call(f"reading {MANIFEST} at {revision}", read)

    def manifest_sha256(self, revision: str) -> str | None:
        data = self.manifest_bytes(revision)
        return hashlib.sha256(data).hexdigest() if data is not None else None


def _cause(exc: BaseException) -> BaseException:
    """The HTTP or transport error behind `exc` (the client wraps upload errors in RuntimeError)."""
    from huggingface_hub.errors import HfHubHTTPError

    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, (HfHubHTTPError, *_transport_errors())):
            return current
        current = current.__cause__
    return exc


def _retry_delay(error: Exception, attempt: int, base: float) -> float | None:
    from huggingface_hub.errors import HfHubHTTPError

    exc = _cause(error)
    backoff = min(60.0, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 429:
            retry_after = exc.response.headers.get("Retry-After", "")
            return float(retry_after) if retry_after.isdigit() else backoff
        return backoff if status >= 500 else None
    if isinstance(exc, _transport_errors()):
        return backoff
    return None


def _storm(error: Exception, attempts: int, delay: float, budget_left: float) -> str:
    """For a Hub that keeps rate-limiting: that it did, for how long, and when to come back."""
    from huggingface_hub.errors import HfHubHTTPError

    exc = _cause(error)
    if not (isinstance(exc, HfHubHTTPError) and exc.response is not None and exc.response.status_code == 429):
        return ""
    return (
        f" (rate limited: still 429 after {attempts} tries; its Retry-After asks for {delay:.0f} s more, "
        f"{max(budget_left, 0):.0f} s of publish.max_wait_seconds were left); nothing is lost, wait that "
        "long before the rerun"
    )


def _online() -> None:
    """HF_HUB_OFFLINE makes the Hub client refuse every call: say so before trying any."""
    from huggingface_hub.constants import is_offline_mode

    if is_offline_mode():
        raise InputError(
            "HF_HUB_OFFLINE is set, so the Hub client makes no network calls: unset it (or set "
            "HF_HUB_OFFLINE=0) to publish, or use --dry-run to write what would be uploaded"
        )


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Dropped connections and timeouts, as the Hub client raises them (it ships its own httpx)."""
    try:
        import httpx2 as http
    except ImportError:  # huggingface_hub before 2.x
        import httpx as http
    return (http.TransportError, ConnectionError, TimeoutError)


def _describe(error: Exception) -> str:
    from huggingface_hub.errors import HfHubHTTPError

    exc = _cause(error)
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} from {exc.response.request.url}"
    return f"{type(exc).__name__}: {exc}"


def _operations(folder: Path, remote: list[str]) -> list[Any]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    stale = sorted(set(remote) - set(local) - KEPT_ON_HUB)
    return [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(folder / p)) for p in local] + [
        CommitOperationDelete(path_in_repo=p) for p in stale
    ]


def publish_release(
    folder: Path, manifest_sha256: str, repo: str, version: str, token: str, settings: PublishSettings
) -> PublishResult:
    """Upload a checked release folder as one commit on `repo` and tag it `vVERSION`."""
    tag = tag_for(version)
    files = sum(1 for path in folder.rglob("*") if path.is_file())
    hub = _Hub(repo, token, settings)
    api = hub.api
    hub.call(
        "creating the repo",
        lambda: api.create_repo(repo, repo_type="dataset", private=settings.private, exist_ok=True),
    )
    gated = _ask_for_gating(hub, settings)
    refs = hub.call("listing tags", lambda: api.list_repo_refs(repo, repo_type="dataset"))
    tagged = next((ref for ref in refs.tags if ref.name == tag), None)
    if tagged is not None:
        if hub.manifest_sha256(tag) != manifest_sha256:
            raise PublishError(
                f"{repo} already has tag {tag} with other content; versions are immutable: "
                "release and publish a new version"
            )
        return PublishResult(
            repo=repo,
            version=version,
            tag=tag,
            action="already published",
            commit=tagged.target_commit,
            files=files,
            gated=gated,
        )
    newer = [ref.name for ref in refs.tags if _is_newer(ref.name, version)]
    if newer:
        latest = max(newer, key=lambda name: version_key(name[1:]))
        raise PublishError(
            f"{repo} already has a newer version ({latest}); publishing {version} would roll its main "
            "branch back to older data: publish a version above it"
        )
    action: Action = "tagged an earlier commit"

    def commit() -> str:
        nonlocal action
        if hub.manifest_sha256("main") == manifest_sha256:  # a commit that landed before an interruption
            return api.repo_info(repo, repo_type="dataset", revision="main").sha
        remote = api.list_repo_files(repo, repo_type="dataset", revision="main")
        info = api.create_commit(
            repo,
            _operations(folder, remote),
            repo_type="dataset",
            commit_message=f"mirbench release {version}",
            commit_description=f"Release {version}; manifest sha256 {manifest_sha256}.",
        )
        action = "published"
        return info.oid

    commit_sha = hub.call("uploading the release", commit)

    def create_tag() -> None:
        from huggingface_hub.errors import HfHubHTTPError

        try:
            api.create_tag(
                repo, tag=tag, revision=commit_sha, repo_type="dataset", tag_message=f"mirbench {version}"
            )
        except HfHubHTTPError as exc:  # a retried call whose first try landed
            if (
                exc.response is None
                or exc.response.status_code != 409
                or hub.manifest_sha256(tag) != manifest_sha256
            ):
                raise

    hub.call(f"tagging {tag}", create_tag)
    return PublishResult(
        repo=repo, version=version, tag=tag, action=action, commit=commit_sha, files=files, gated=gated
    )


def _ask_for_gating(hub: _Hub, settings: PublishSettings) -> str | None:
    """Ask the Hub for gated access; None when it refuses (the caller says so)."""
    from huggingface_hub.errors import HfHubHTTPError

    def step() -> bool:
        try:
            hub.api.update_repo_settings(hub.repo, repo_type="dataset", gated=settings.gated)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 500
            if 400 <= status < 500 and status != 429:
                return False
            raise
        return True

    return settings.gated if hub.call("asking for gated access", step) else None


def publish_version(
    store: Store, settings: Settings, version: str, repo: str, dry_run_folder: Path | None = None
) -> PublishResult:
    """Check the recorded release `version`, then publish it to `repo` (or write the dry run)."""
    if not REPO_PATTERN.fullmatch(repo):
        raise InputError(f"--repo '{repo}' is not ORG/NAME")
    recorded = store.release(version)
    if recorded is None:
        raise InputError(f"no release {version} in the store; write it with `mirbench release`")
    approved = {entry.item.id for entry in store.reviews(ReviewState.APPROVED)}
    folder = Path(recorded.location)
    if dry_run_folder is not None:  # before the release is read: a refusal costs nothing
        check_new_folder(dry_run_folder, "--dry-run-out")
    check_publishable(folder, recorded.manifest_sha256, approved)
    if dry_run_folder is not None:
        return dry_run(folder, dry_run_folder, repo, version)
    from huggingface_hub import get_token

    _online()
    token = get_token()
    if not token:
        raise InputError("no Hub token: set HF_TOKEN or run `hf auth login`")
    return publish_release(folder, recorded.manifest_sha256, repo, version, token, settings.publish)


def latest_hub_manifest(repo: str, token: str | None, settings: PublishSettings) -> dict[str, Any] | None:
    """The manifest at the highest `vX.Y.Z` tag of `repo` (a changelog's base), or None."""
    _online()
    hub = _Hub(repo, token or "", settings)
    refs = hub.call("listing tags", lambda: hub.api.list_repo_refs(repo, repo_type="dataset"))
    versions = [ref.name[1:] for ref in refs.tags if re.fullmatch(r"v\d+\.\d+\.\d+.*", ref.name)]
    if not versions:
        return None
    data = hub.manifest_bytes(tag_for(max(versions, key=version_key)))
    return json.loads(data) if data is not None else None
