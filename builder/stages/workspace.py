"""What a worker process opens once per build: the store, taxonomy, seeds, backends, models.

Orchestrated tasks take small serializable inputs (settings, run id and item ids) and find
everything else here, so the same task runs in a thread of the CLI's process or in a Dask
worker on another machine; a model loads once per process, however many shards it serves
(the text model once per process, however many builds).

A workspace is per build (seeds, taxonomy and release history are read afresh by each) and
knows no stage: a stage's `open` asks it for backends by registry and settings (`backend`,
`backends`) and for anything else it keeps once per build (`once`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from builder.config.seeds import Seed, load_seeds
from builder.config.settings import Settings
from builder.config.taxonomy import Taxonomy, load_taxonomy
from builder.core.registry import Backend, BackendSettings, Registry
from builder.models.embeddings import TextEmbedder, shared_embedder
from builder.store import Store

T = TypeVar("T")
B = TypeVar("B", bound=Backend)
_workspaces: dict[str, Workspace] = {}
_workspaces_lock = threading.Lock()
_KEPT_WORKSPACES = 4


class Workspace:
    def __init__(self, settings: Settings, run_id: str = ""):
        self.settings, self.run_id = settings, run_id
        self._opened: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._turns: dict[int, threading.Lock] = {}

    @classmethod
    def of(cls, settings: Settings, run_id: str = "") -> Workspace:
        """This process's workspace for one build (`run_id`) with `settings`, opened on first use.
        Seeds, taxonomy and release history are read afresh by every build; a long-lived worker
        keeps the workspaces of its last few builds only."""
        key = hashlib.sha256(
            f"{settings.model_dump_json()}\x1f{settings.resolved_database_url}\x1f{run_id}".encode()
        ).hexdigest()
        with _workspaces_lock:
            if key not in _workspaces:
                while len(_workspaces) >= _KEPT_WORKSPACES:
                    _workspaces.pop(next(iter(_workspaces))).close()
                _workspaces[key] = cls(settings, run_id)
            return _workspaces[key]

    def close(self) -> None:
        store = self._opened.get("store")
        if store is not None:
            store.close()

    def once(self, name: str, make: Callable[[], T]) -> T:
        """`make()`, called on first use only: what this build opens or reads once, by name."""
        with self._lock:
            if name not in self._opened:
                self._opened[name] = make()
            return self._opened[name]

    @property
    def artifacts(self) -> Path:
        return self.settings.artifacts

    @property
    def store(self) -> Store:
        settings = self.settings
        return self.once(
            "store",
            lambda: Store(settings.resolved_database_url, wait_seconds=settings.database_wait_seconds),
        )

    @property
    def taxonomy(self) -> Taxonomy:
        return self.once("taxonomy", lambda: load_taxonomy(self.settings.taxonomy))

    @property
    def seeds(self) -> dict[str, Seed]:
        return self.once(
            "seeds",
            lambda: {
                seed.id: seed for seed in load_seeds(self.settings.seeds, self.taxonomy, self.settings.limits)
            },
        )

    @property
    def embedder(self) -> TextEmbedder:
        dedup = self.settings.stages.dedup
        return self.once(
            "embedder",
            lambda: shared_embedder(dedup.text_model, dedup.text_bfloat16),
        )

    def backend(self, registry: Registry[B], settings: BackendSettings) -> B:
        """The backend `settings` names, opened once per build."""
        key = f"{registry.kind}\x1f{settings.model_dump_json()}"
        return self.once(key, lambda: registry.create(settings, self))

    def backends(self, registry: Registry[B], entries: list[BackendSettings]) -> list[B]:
        return [self.backend(registry, entry) for entry in entries]

    @contextmanager
    def turn(self, *backends: Backend) -> Iterator[None]:
        """Exclusive use of the backends that are not thread-safe (taken in one fixed order, so
        two shards never wait on each other); a no-op for those that are."""
        exclusive = sorted({id(b): b for b in backends if not b.thread_safe}.items())
        with self._lock:
            locks = [self._turns.setdefault(key, threading.Lock()) for key, _ in exclusive]
        with ExitStack() as held:
            for lock in locks:
                held.enter_context(lock)
            yield

    def text_vectors(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text, in order; each distinct text is encoded once, ever (cached in
        the store by model and text)."""
        model = self.settings.stages.dedup.text_model
        keys = [hashlib.sha256(f"{model}\x1f{value}".encode()).hexdigest() for value in texts]
        distinct = dict(zip(keys, texts, strict=True))
        vectors = {
            key: np.frombuffer(raw, dtype=np.float32)
            for key, raw in self.store.embeddings(list(distinct)).items()
        }
        missing = [key for key in distinct if key not in vectors]
        if missing:
            fresh = dict(zip(missing, self.embedder.encode([distinct[key] for key in missing]), strict=True))
            self.store.save_embeddings({key: vector.tobytes() for key, vector in fresh.items()})
            vectors.update(fresh)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([vectors[key] for key in keys])


def close_all() -> None:
    """Dispose of every open store (the end of a build in the process that ran it)."""
    with _workspaces_lock:
        for workspace in _workspaces.values():
            workspace.close()
        _workspaces.clear()
