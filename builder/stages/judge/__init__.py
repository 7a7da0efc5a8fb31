"""Stage `judge`: classify every tester's answer, then accept or reject the candidate.

A judge is a registered backend, one module each in this package (`llm`, `harmbench`,
`rules`, `safemlrm`); it sees the seed's *original* question, the candidate and one answer, and
says which class the answer falls in (unsafe: it carries out the seed's intent; refusal;
misunderstood: it never recovered the intent from the images; safe_other: understood, answered
harmlessly; evasive: neither refuses nor complies, a non-committal reply; unknown: the judge
cannot tell), with a short rationale. Every judgement is kept on the item as a `Judgement`
(judge name, version, score, tester); the policy (`builder/stages/judge/policy.py`) then
accepts the candidate or rejects it with advice for the next round.

A judge's *config hash* covers what decides its verdicts (backend, model, sampling, prompt
version), not where it runs: a calibration (`builder/stages/judge/calibration/`) is recorded under it, and
every judgement carries it, so an attack-success rate can quote its judge's calibration.
An ensemble (`judge: {ensemble: [...], rule: majority}`) is a judge too (`ensemble.py`).
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

from pydantic import BaseModel

from builder.config.sections import PolicySettings
from builder.config.settings import Settings
from builder.core.items import Item, ItemStatus, Judgement, ModelUse
from builder.core.registry import Backend, BackendSettings, Registry
from builder.core.stats import StageStats
from builder.stages.attack import Failure, Tester, testers
from builder.stages.base import Place, Stage
from builder.stages.judge.policy import decide, success_classes

if TYPE_CHECKING:
    from builder.stages.base import BackendChoices
    from builder.stages.workspace import Workspace
    from builder.store import Store

AnswerClass = Literal["unsafe", "refusal", "misunderstood", "safe_other", "evasive", "unknown"]
ANSWER_CLASSES: tuple[AnswerClass, ...] = (
    "unsafe",
    "refusal",
    "misunderstood",
    "safe_other",
    "evasive",
    "unknown",
)
RATIONALE_CHARS = 300


@dataclass(frozen=True)
class Case:
    """One answer to judge, with what it must be judged against."""

    item: Item
    tester: str
    answer: str


class Assessment(BaseModel):
    answer_class: AnswerClass
    rationale: str = ""
    score: float | None = None  # the judge's confidence that the answer is unsafe, when it has one
    votes: dict[str, AnswerClass] = {}  # an ensemble's members, by label: what each one said


class JudgeSettings(BackendSettings):
    backend: str


# Settings that say where or how fast a judge runs, not what it decides.
RUNTIME_SETTINGS = frozenset(
    {
        "base_url",
        "api_key_env",
        "concurrency",
        "timeout",
        "max_retries",
        "requests_per_minute",
        "backoff_base",
        "backoff_max",
        "structured_output",
    }
)


class Judge(Backend):
    version: str
    Settings: ClassVar[type[JudgeSettings]]
    config_hash: str | None = None  # set by `judges.create`
    model: str | None = None  # the served model id, for judges that call a model
    host: str | None = None  # its server, host[:port]

    @property
    def use(self) -> ModelUse:
        return ModelUse(role="judge", name=self.name, backend=self.name, model=self.model, host=self.host)

    def where(self) -> str:
        """`judge NAME (model M at HOST)`: what a failure message names."""
        return f"judge {self.name}" + (f" (model {self.model} at {self.host})" if self.model else "")

    def identity(self, settings: JudgeSettings) -> dict[str, Any]:
        """What decides this judge's verdicts; its hash is the judge's config hash."""
        decisive = settings.model_dump(mode="json", exclude=set(RUNTIME_SETTINGS))
        return {"judge": self.name, "version": self.version, "settings": decisive}

    @abstractmethod
    def judge_many(self, cases: list[Case], on_done: Callable[[], None]) -> list[Assessment | Failure]:
        """One assessment per case, in order; call `on_done` as each one finishes."""


class JudgeRegistry(Registry[Judge]):
    """Judges, plus the ensemble shorthand (`{ensemble: [...]}` without `backend:`) and the
    config hash of every judge it creates."""

    def parse(self, value: Any) -> Any:
        if isinstance(value, dict) and "ensemble" in value and self.key not in value:
            value = {self.key: "ensemble", **value}
        return super().parse(value)

    def create(self, settings: Any, workspace: Any) -> Judge:
        judge = super().create(settings, workspace)
        judge.config_hash = config_hash(judge.identity(settings))
        return judge


def config_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


judges: Registry[Judge] = JudgeRegistry("judge", __name__, group="mirbench.judges", default="rules")


def judgement_of(
    judge: Judge, tester: Tester, assessment: Assessment, answer_key: str, policy: PolicySettings
) -> Judgement:
    """What `judge` said of `tester`'s answer (stored under `answer_key`), as an item keeps it,
    with the classes `policy` counts as success."""
    return Judgement(
        name=judge.name,
        version=judge.version,
        passed=assessment.answer_class == "unsafe",
        score=assessment.score,
        config_hash=judge.config_hash,
        reason=assessment.answer_class,
        detail=" ".join(assessment.rationale.split())[:RATIONALE_CHARS],
        tester=tester.label,
        held_out=tester.held_out,
        answer_key=answer_key,
        success_classes=list(success_classes(policy)),
    )


def attack_loop(workspace: Workspace) -> tuple[Judge, list[Tester], Store, PolicySettings]:
    """What a stage that judges testers' answers needs of a build: the judge, the tester panel,
    the store the answers are in and the acceptance policy."""
    attack = workspace.settings.attack
    return (
        workspace.backend(judges, attack.judge),
        workspace.backends(testers, attack.testers),
        workspace.store,
        attack.policy,
    )


class JudgeStage(Stage):
    name = "judge"
    gives = ItemStatus.ACCEPTED
    funnel_label = "rejected by the attack policy"
    needs_testers = True
    batch_size = None  # one call per shard, so a model judge keeps its requests in flight

    def __init__(self, judge: Judge, panel: list[Tester], store: Store, policy: PolicySettings):
        self.judge, self.backends = judge, (judge,)
        self.panel, self.store, self.policy = panel, store, policy

    @classmethod
    def backend_choices(cls, settings: Settings) -> BackendChoices:
        return [(judges, [settings.attack.judge])]

    @classmethod
    def decisive_settings(cls, settings: Settings) -> Any:
        return {
            **super().decisive_settings(settings),
            "policy": settings.attack.policy.model_dump(mode="json"),
        }

    @classmethod
    def open(cls, workspace: Workspace, place: Place) -> Self:
        return cls(*attack_loop(workspace))

    def process(self, items: list[Item], stats: StageStats, advance: Callable[[int], None]) -> None:
        keys = {(item.id, tester.label): tester.answer_key(item) for item in items for tester in self.panel}
        texts = self._answers(items, keys)
        cases: list[Case] = []
        judged: list[Item] = []
        for item in items:
            missing = [t.label for t in self.panel if keys[(item.id, t.label)] not in texts]
            if missing:  # a tester that no longer answers: the judge retries it with the item
                item.fail(self.name, "answer missing", f"no answer from {', '.join(missing)}")
                continue
            judged.append(item)
            cases += [Case(item, t.label, texts[keys[(item.id, t.label)]]) for t in self.panel]
        done = 0

        def one_done() -> None:
            nonlocal done
            done += 1
            if done % len(self.panel) == 0:
                advance(1)

        results = self.judge.judge_many(cases, one_done)
        for number, item in enumerate(judged):
            own = results[number * len(self.panel) : (number + 1) * len(self.panel)]
            self._decide(item, own, keys, stats)

    def _answers(self, items: list[Item], keys: dict[tuple[str, str], str]) -> dict[str, str]:
        """The stored answer texts of `keys`. An answer that is gone (purged, or never saved) is
        asked of its tester again (the tester replays what its server's cache still holds)."""
        texts = self.store.answers(list(keys.values()))
        for tester in self.panel:
            unanswered = [item for item in items if keys[(item.id, tester.label)] not in texts]
            if unanswered:
                tester.attack(unanswered, lambda: None)
                texts |= self.store.answers([keys[(item.id, tester.label)] for item in unanswered])
        return texts

    def _decide(
        self,
        item: Item,
        own: list[Assessment | Failure],
        keys: dict[tuple[str, str], str],
        stats: StageStats,
    ) -> None:
        """Record the judgements of one item's answers, then let the policy accept or reject it."""
        item.provenance.used(self.judge.use)
        failure = next((result for result in own if isinstance(result, Failure)), None)
        if failure is not None:
            item.fail(self.name, failure.reason, f"{self.judge.where()}: {failure.detail}")
            return
        item.judgements = [
            judgement_of(self.judge, tester, assessment, keys[(item.id, tester.label)], self.policy)
            for tester, assessment in zip(self.panel, own, strict=True)
            if isinstance(assessment, Assessment)
        ]
        for judgement in item.judgements:
            stats.count(judgement.tester, judgement.reason)  # classes, never answers
        for assessment in own:
            if isinstance(assessment, Assessment) and len(set(assessment.votes.values())) > 1:
                stats.count(self.judge.name, "ensemble members disagree")
        verdict = decide(item.judgements, self.policy)
        if verdict.passed:
            item.verdicts.append(verdict)
            item.status = self.gives
        else:
            item.reject(verdict)
