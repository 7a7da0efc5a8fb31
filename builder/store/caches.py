"""What the store keeps so that reruns redo nothing: rendered images, text embeddings, model
responses, and testers' answers (the last two: a model's text under a cache key, one table each),
and the structured-output format each model server accepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from builder.store.engine import StoreBase, in_chunks
from builder.store.schema import AnswerRow, EmbeddingRow, LearnedFormatRow, RenderRow, ResponseRow, _now

# A text answer's details (a reasoning trace a server returned apart, token usage) are kept in the
# answers table beside it, under the model's name with this suffix: purged with it, not counted.
DETAILS_SUFFIX = "#details"
# Which server took over an answer cached under an older key (`claim_answers`): the same way.
CLAIM_SUFFIX = "#claim"
# The two tables of a model's text under a cache key; they differ only in what they keep.
ModelTextTable = type[ResponseRow] | type[AnswerRow]


class CacheStore(StoreBase):
    # --- rendered images ---------------------------------------------------------------

    def cached_renders(self, keys: Sequence[str]) -> dict[str, RenderRow]:
        found: dict[str, RenderRow] = {}
        with Session(self.engine, expire_on_commit=False) as session:
            for chunk in in_chunks(list(keys)):
                for row in session.scalars(select(RenderRow).where(RenderRow.key.in_(chunk))):
                    found[row.key] = row
        return found

    def cache_renders(self, rows: list[dict[str, str | None]]) -> None:
        with self._session() as session:
            self._upsert(session, RenderRow.__table__, rows, "key")

    def image_file(self, sha256: str) -> str | None:
        """The stored file (relative to the artifacts folder) of a known image, by content hash."""
        with Session(self.engine) as session:
            return session.scalar(select(RenderRow.file).where(RenderRow.sha256 == sha256).limit(1))

    # --- text embeddings ---------------------------------------------------------------

    def embeddings(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(list(keys)):
                query = select(EmbeddingRow.key, EmbeddingRow.vector).where(EmbeddingRow.key.in_(chunk))
                found.update({key: vector for key, vector in session.execute(query)})
        return found

    def save_embeddings(self, vectors: dict[str, bytes]) -> None:
        rows = [{"key": key, "vector": vector} for key, vector in vectors.items()]
        with self._session() as session:
            self._upsert(session, EmbeddingRow.__table__, rows, "key")

    # --- model responses (the store is an LLM client's response cache) -----------------

    def cached_response(self, key: str) -> str | None:
        return self._model_texts(ResponseRow, [key]).get(key)

    def cache_response(self, key: str, model: str, text: str) -> None:
        self._save_model_text(ResponseRow, key, model, text)

    def cache_responses(self, rows: list[tuple[str, str, str]]) -> None:
        """(key, model, text) responses, in one transaction."""
        self._save_model_texts(ResponseRow, rows)

    # --- testers' answers --------------------------------------------------------------

    @property
    def answer_cache(self) -> AnswerCache:
        """The answers table in the shape of an LLM client's response cache."""
        return AnswerCache(self)

    def answers(self, keys: Sequence[str]) -> dict[str, str]:
        return self._model_texts(AnswerRow, keys)

    def save_answer(
        self, key: str, model: str, text: str, measurements: dict[str, Any] | None = None
    ) -> None:
        """Keep a tester's answer; `measurements`: what the tester measured while answering
        (JSON-serialisable), replacing what an earlier save of `key` kept."""
        self._save_model_text(AnswerRow, key, model, text, measurements=measurements)

    def save_answers(self, rows: list[tuple[str, str, str]]) -> None:
        """(key, model, text) answers, in one transaction."""
        self._save_model_texts(AnswerRow, rows)

    def answer_measurements(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The measurements kept with the answers `keys` (answers without any are left out)."""
        found: dict[str, dict[str, Any]] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(list(keys)):
                query = select(AnswerRow.key, AnswerRow.measurements).where(
                    AnswerRow.key.in_(chunk), AnswerRow.measurements.is_not(None)
                )
                found.update({key: value for key, value in session.execute(query) if value is not None})
        return found

    def claim_answers(self, claims: dict[str, tuple[str, str]]) -> dict[str, str]:
        """Claim each key of `claims` (key -> (model, claimant)) unless someone holds it already,
        in one transaction; returns every key's holder, the claimant that came first (an insert
        that keeps what is there is atomic, so two processes never both hold one key)."""
        rows = [
            {"key": key, "model": model + CLAIM_SUFFIX, "text": claimant, "created_at": _now()}
            for key, (model, claimant) in claims.items()
        ]
        self._insert_new(AnswerRow.__table__, rows, ["key"])
        return self.answers(list(claims))

    def purge_answers(self) -> int:
        """Delete every stored answer (and the details and claims kept beside some); returns how
        many answers there were."""
        kept_beside = or_(AnswerRow.model.endswith(DETAILS_SUFFIX), AnswerRow.model.endswith(CLAIM_SUFFIX))
        with self._session() as session:
            beside = session.scalar(select(func.count()).select_from(AnswerRow).where(kept_beside))
            return (session.execute(delete(AnswerRow)).rowcount or 0) - (beside or 0)

    def purge_responses(self, models: Sequence[str]) -> int:
        """Delete the cached responses of `models` (a judge's, which hold its rationales)."""
        with self._session() as session:
            deleted = session.execute(delete(ResponseRow).where(ResponseRow.model.in_(list(models))))
        return deleted.rowcount or 0

    def _model_texts(self, table: ModelTextTable, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with Session(self.engine) as session:
            for chunk in in_chunks(list(keys)):
                query = select(table.key, table.text).where(table.key.in_(chunk))
                found.update({key: text for key, text in session.execute(query)})
        return found

    def _save_model_text(self, table: ModelTextTable, key: str, model: str, text: str, **extra: Any) -> None:
        row = {"key": key, "model": model, "text": text, "created_at": _now(), **extra}
        with self._session() as session:
            self._upsert(session, table.__table__, [row], "key")

    def _save_model_texts(self, table: ModelTextTable, rows: list[tuple[str, str, str]]) -> None:
        saved = [
            {"key": key, "model": model, "text": text, "created_at": _now()} for key, model, text in rows
        ]
        with self._session() as session:
            self._upsert(session, table.__table__, saved, "key")

    # --- structured-output formats -----------------------------------------------------

    def learned_format(self, base_url: str, model: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(LearnedFormatRow, (base_url, model))
        return None if row is None else row.structured_output

    def learn_format(self, base_url: str, model: str, output: str, reason: str) -> None:
        row = {
            "base_url": base_url,
            "model": model,
            "structured_output": output,
            "reason": reason,
            "learned_at": _now(),
        }
        with self._session() as session:
            self._upsert(session, LearnedFormatRow.__table__, [row], ["base_url", "model"])


class AnswerCache:
    """Testers' answers behind the response-cache interface an LLM client takes."""

    def __init__(self, store: CacheStore):
        self.store = store

    def cached_response(self, key: str) -> str | None:
        return self.store.answers([key]).get(key)

    def cache_response(self, key: str, model: str, text: str) -> None:
        self.store.save_answer(key, model, text)

    def cache_responses(self, rows: list[tuple[str, str, str]]) -> None:
        self.store.save_answers(rows)
