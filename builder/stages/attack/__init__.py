"""Stage `attack`: send every candidate that passed the filters to the tester models.

Each tester gets the candidate's images, in order, then its prompt, in one user turn (the way
the published evaluation asks). Testers are registered backends, one module each in this
package (`openai`: any OpenAI-compatible vision chat endpoint). Answers go to the store's
answers table (never to an item, a log or a release); the judge stage reads them from there.
A tester that cannot answer leaves the item failed, so a later build asks again (answers
already given are replayed from the store, not paid for twice).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel, Field

from builder.core.items import Item, ItemStatus, ModelUse
from builder.core.registry import Backend, BackendSettings, Registry
from builder.core.stats import StageStats
from builder.stages.base import Place, Stage

if TYPE_CHECKING:
    from builder.config.settings import Settings
    from builder.stages.base import BackendChoices
    from builder.stages.workspace import Workspace


class TesterSettings(BackendSettings):
    # MIR-SafetyBench's decoding in this backend's own settings, applied to an evaluation target
    # where not given; None: temperature 0 and max_tokens 4096, where the backend has them.
    evaluation_decoding: ClassVar[dict[str, Any] | None] = None

    backend: str
    name: str | None = Field(None, description="The tester's name in reports; default: its model.")
    held_out: bool = Field(
        False, description="Attacked and judged, reported apart, never deciding acceptance."
    )


class Failure(BaseModel):
    """Why a backend produced no answer for one item (after its retries)."""

    reason: str
    detail: str = ""


class Answer(BaseModel):
    key: str  # where the answer text lives in the store
    cached: bool = False


class Tester(Backend):
    Settings: ClassVar[type[TesterSettings]]
    label: str
    held_out: bool
    model: str | None = None  # the served model id
    host: str | None = None  # its server, host[:port]

    @property
    def use(self) -> ModelUse:
        return ModelUse(
            role="tester",
            name=self.label,
            backend=self.name,
            model=self.model,
            host=self.host,
            held_out=self.held_out,
        )

    def where(self) -> str:
        """`tester LABEL (backend, model at host)`: what a failure message names."""
        return f"tester {self.label} ({self.name}, model {self.model} at {self.host})"

    @abstractmethod
    def answer_key(self, item: Item) -> str:
        """The store key of this tester's answer to `item` (known without asking)."""

    @abstractmethod
    def attack(self, items: list[Item], on_done: Callable[[], None]) -> list[Answer | Failure]:
        """Ask the tester about every item, in order; answers are saved to the store under
        `answer_key(item)`. Call `on_done` as each one finishes."""


testers: Registry[Tester] = Registry("tester", __name__, group="mirbench.testers", default="openai")


class AttackStage(Stage):
    name = "attack"
    gives = ItemStatus.ATTACKED
    needs_testers = True
    batch_size = None  # one call per shard, so every tester keeps its requests in flight

    def __init__(self, panel: list[Tester]):
        self.panel, self.backends = panel, tuple(panel)

    @classmethod
    def backend_choices(cls, settings: Settings) -> BackendChoices:
        return [(testers, settings.attack.testers)]

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls(workspace.backends(testers, workspace.settings.attack.testers))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        # Testers are asked at once (each on its own server); progress follows the first.
        with ThreadPoolExecutor(max_workers=len(self.panel)) as pool:
            futures = [
                pool.submit(tester.attack, items, (lambda: advance(1)) if number == 0 else lambda: None)
                for number, tester in enumerate(self.panel)
            ]
            results = [future.result() for future in futures]
        for tester, answers in zip(self.panel, results, strict=True):
            for item, answer in zip(items, answers, strict=True):
                if isinstance(answer, Failure):
                    stats.count(tester.label, answer.reason)
                    if item.status is not ItemStatus.FAILED:
                        item.fail(self.name, answer.reason, f"{tester.where()}: {answer.detail}")
                else:
                    stats.count(tester.label, "replayed" if answer.cached else "answered")
        for item in items:
            for tester in self.panel:
                item.provenance.used(tester.use)
            if item.status is not ItemStatus.FAILED:
                item.status = self.gives
