"""Label Studio exchange, for teams that already review there.

Export: `tasks.json` (one task per pending item; images as Label Studio local-file URLs) and
`labeling-config.xml`. Serve the artifacts folder to Label Studio with
`LOCAL_FILES_SERVING_ENABLED=true LOCAL_FILES_DOCUMENT_ROOT=<artifacts>` and a local storage
pointing at `<artifacts>/images`. Import: a Label Studio JSON export is read back as votes by
the annotators it names, through the same service (and rules) as the CLI and the web app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from builder.config.settings import Settings
from builder.core.errors import InputError
from builder.core.outputs import check_new_folder, new_folder
from builder.review.policy import Decision
from builder.review.service import BulkResult, ReviewService
from builder.store import ReviewState, Store

LOCAL_FILES_URL = "/data/local-files/?d="
TASKS_FILE, CONFIG_FILE = "tasks.json", "labeling-config.xml"


@dataclass(frozen=True)
class Exported:
    tasks: int
    tasks_file: Path
    config_file: Path


def labeling_config(reasons: list[str]) -> str:
    choices = "\n".join(f"    <Choice value={quoteattr(reason)}/>" for reason in reasons)
    return f"""<View>
  <Header value="$category / $relation (round $iteration)"/>
  <Header value="Prompt" size="5"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Original question (hidden from the model)" size="5"/>
  <Text name="question" value="$question"/>
  <Image name="images" valueList="$images"/>
  <Text name="image_notes" value="$image_notes"/>
  <Choices name="decision" toName="prompt" choice="single" required="true">
    <Choice value="approve"/>
    <Choice value="reject"/>
  </Choices>
  <Choices name="reason" toName="prompt" choice="single">
{choices}
  </Choices>
  <TextArea name="note" toName="prompt" placeholder="why (free text)"/>
</View>
"""


def export_tasks(store: Store, settings: Settings, out: Path) -> Exported:
    """The pending items as tasks, into `out`, a new folder (nothing is written over)."""
    out = check_new_folder(out)
    tasks = []
    for entry in store.reviews(ReviewState.PENDING):
        item = entry.item
        tasks.append(
            {
                "data": {
                    "item_id": item.id,
                    "category": item.category,
                    "relation": item.relation,
                    "iteration": item.iteration,
                    "prompt": item.revised_prompt,
                    "question": item.original_question,
                    "images": [LOCAL_FILES_URL + quote(slot.file or "") for slot in item.slots],
                    "image_notes": "\n".join(
                        f"{n}. {slot.role}: {slot.description} ({', '.join(slot.keywords)})"
                        for n, slot in enumerate(item.slots, start=1)
                    ),
                }
            }
        )
    with new_folder(out) as staging:
        (staging / TASKS_FILE).write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
        (staging / CONFIG_FILE).write_text(labeling_config(settings.review.reasons), encoding="utf-8")
    return Exported(len(tasks), out / TASKS_FILE, out / CONFIG_FILE)


def import_annotations(path: Path, service: ReviewService) -> BulkResult:
    """Apply each completed annotation as its annotator's vote, oldest first."""
    try:
        tasks = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a Label Studio JSON export: {exc}", path=path) from None
    if not isinstance(tasks, list):
        raise InputError("a Label Studio JSON export is a list of tasks", path=path)
    votes = []
    for number, task in enumerate(tasks, start=1):
        item_id = (task.get("data") or {}).get("item_id") if isinstance(task, dict) else None
        if not item_id:
            raise InputError(f"task {number} has no data.item_id (was it exported by mirbench?)", path=path)
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            decision, reason = _read_result(annotation.get("result") or [])
            if decision is None:
                continue
            stamp = str(annotation.get("updated_at") or annotation.get("created_at") or "")
            votes.append((stamp, item_id, _annotator(annotation), decision, reason))
    result = BulkResult()
    for _, item_id, reviewer, decision, reason in sorted(votes, key=lambda vote: vote[0]):
        result.record(item_id, partial(service.vote, item_id, reviewer, decision, reason))
    return result


def _read_result(result: list[dict[str, Any]]) -> tuple[Decision | None, str | None]:
    decision, parts = None, []
    for entry in result:
        value = entry.get("value") or {}
        if entry.get("from_name") == "decision" and value.get("choices"):
            decision = Decision(value["choices"][0])
        elif entry.get("from_name") == "reason" and value.get("choices"):
            parts.append(value["choices"][0])
        elif entry.get("from_name") == "note" and value.get("text"):
            parts.append(" ".join(value["text"]))
    return decision, ": ".join(part.strip() for part in parts if part.strip()) or None


def _annotator(annotation: dict[str, Any]) -> str:
    """The annotator's e-mail where the export has it, else Label Studio's user id."""
    completed_by = annotation.get("completed_by")
    if isinstance(completed_by, dict) and completed_by.get("email"):
        return str(completed_by["email"])
    username = annotation.get("created_username")
    if username:
        return str(username).rsplit(",", 1)[0].strip()
    user_id = completed_by.get("id") if isinstance(completed_by, dict) else completed_by
    return f"label-studio-user-{user_id}"
