"""Composer `offline`: deterministic drafts from the relation's templates; no model, no server.

Each image names a depictable, benign thing from the picture pool's vocabulary (the captions
nearest to the question: `builder/stages/render/pool/vocabulary.py`), never a word of the
question; without a pool (not installed), it falls back to the question's own words, split
across the images. Pictures of a protected group, its symbols or its places are picked only for
a seed about that group (`taxonomy/protected.yaml`, builder/config/protected.py).
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Literal, Self

from builder.config.pairing import Pair, pairs_of
from builder.config.protected import ProtectedGroups, load_protected
from builder.config.seeds import Seed
from builder.config.taxonomy import Category, Relation
from builder.core.items import ImageSlot
from builder.core.words import STOPWORDS, content_words, keywords, stem
from builder.stages.compose import (
    Composer,
    ComposerSettings,
    CompositionFailure,
    CompositionJob,
    CompositionRequest,
    Draft,
    composers,
)
from builder.stages.render.pool.vocabulary import Vocabulary

if TYPE_CHECKING:
    from builder.stages.workspace import Workspace

# How many of the nearest things a seed's items draw from: its relations and rounds take
# different ones, so one picture does not recur in every item of a seed.
THINGS_PER_SEED = 40
# How many of a seed's items may show one picture while the seed has other things to show.
SEED_PICTURE_REPEATS = 2


class OfflineSettings(ComposerSettings):
    backend: Literal["offline"] = "offline"


def _stable_index(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % modulo


def _distinct(words: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        seen.setdefault(stem(word), word)
    return list(seen.values())


def _slot_keywords(request: CompositionRequest, count: int, fallback: list[str]) -> list[list[str]]:
    """Keywords per slot. The key phrase's words are dealt out across the slots so that no slot
    holds all of them (a one-word phrase goes nowhere); after a leakage rejection none of them
    is used. Every slot adds two of the question's other content words (else of `fallback`)."""
    phrase = _distinct(
        [
            w.split("'")[0]
            for w in content_words(request.seed.guarded_phrase)
            if w.split("'")[0] not in STOPWORDS
        ]
    )
    phrase_stems = {stem(word) for word in phrase}
    others = [word for word in keywords(request.seed.query, limit=8) if stem(word) not in phrase_stems]
    spread = phrase if len(phrase) > 1 and count > 1 and not _leaked_before(request) else []
    slots: list[list[str]] = [[] for _ in range(count)]
    shift = request.iteration - 1  # each round deals from another slot
    for number, word in enumerate(spread):
        slots[(number + shift) % count].append(word)
    # Every slot also takes the question's first other word and one more (its context: "at
    # school", "a neighbour's"), so seeds that share a key phrase still draw different pictures.
    context = others or fallback
    for index, words in enumerate(slots):
        words.append(context[0])
        if len(context) > 1:
            words.append(context[1 + (index + shift) % (len(context) - 1)])
    return slots


def _image_count(seed: Seed, relation: Relation) -> int:
    """As many images as the question has content words, within the relation's range."""
    wanted = len(keywords(seed.query, limit=relation.max_images))
    return min(relation.max_images, max(relation.min_images, wanted))


def _leaked_before(request: CompositionRequest) -> bool:
    return any(reason.startswith("leakage:") for reason in request.feedback)


@composers.register
class OfflineComposer(Composer):
    """Each image names a thing of the pool's vocabulary near the question (a draw per seed,
    relation and round); a rejected candidate comes back as the next round with another draw and
    another template variant. Without a vocabulary, keywords come from the seed's key phrase,
    split across the images, and one rejected for leakage comes back with no word of the key
    phrase at all."""

    name = "offline"
    version = "6"  # 6: protected groups' pictures only for seeds about them; 5: no repeated picture sets
    Settings = OfflineSettings

    def __init__(
        self,
        vocabulary: Vocabulary | None = None,
        seeds: Sequence[Seed] = (),
        relations: Sequence[Relation] = (),
        pairs: Collection[Pair] | None = None,
        protected: ProtectedGroups | None = None,
    ):
        self.vocabulary = vocabulary
        self.protected = protected or ProtectedGroups()
        self._all = (list(seeds), list(relations))
        self._pairs = None if pairs is None else set(pairs)  # None: every seed x relation
        self._things: dict[str, list[str]] = {}  # seed id -> nearest usable captions
        self._plan: dict[tuple[str, str], list[str]] = {}  # (seed id, relation) -> first round's things
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: OfflineSettings, workspace: Workspace) -> Self:
        from builder.stages.render.retrieval import shared_picture_pool  # the pool the renderer draws from

        pool = shared_picture_pool(workspace)
        if pool is None:
            return cls()
        relations = [workspace.taxonomy.relation(slug) for slug in sorted(workspace.taxonomy.relations)]
        built = [
            relation.slug for relation in workspace.taxonomy.select_relations(workspace.settings.relations)
        ]
        per_seed = workspace.settings.relations_per_seed
        seeds = workspace.seeds.values()
        return cls(
            Vocabulary(pool, workspace.embedder.encode, workspace.settings.dedup.picture_max_distance),
            [workspace.seeds[seed_id] for seed_id in sorted(workspace.seeds)],
            relations,
            # The pairs builds of these seeds make (a --limit build makes some of them): over
            # every relation too, so builds of one relation at a time plan as one build of all.
            {*pairs_of(seeds, [r.slug for r in relations], per_seed), *pairs_of(seeds, built, per_seed)},
            load_protected(workspace.settings.taxonomy, sorted(workspace.taxonomy.categories)),
        )

    def _learn(self, seeds: Sequence[Seed]) -> None:
        """Find the things near each new seed's question."""
        assert self.vocabulary is not None
        new = list({seed.id: seed for seed in seeds if seed.id not in self._things}.values())
        keep = [self._keep(seed) for seed in new]
        found = self.vocabulary.things(
            [seed.query for seed in new], [seed.guarded_phrase for seed in new], THINGS_PER_SEED, keep
        )
        self._things.update({seed.id: things for seed, things in zip(new, found, strict=True)})

    def _keep(self, seed: Seed) -> Callable[[str], bool]:
        """Which captions `seed` may show: no protected group's but those it is about."""
        return lambda caption: self.protected.allows(caption, seed.category, seed.query)

    def _make_plan(self) -> None:
        """The first round's things of every (seed, relation) pair the seeds' builds make
        (builder/config/pairing.py), dealt in a fixed order: things the seed has shown fewer than
        SEED_PICTURE_REPEATS times first, then least-used overall, then nearest. So the relations
        of one seed show different things, and the pictures spread over the pool (dedup's cap
        on reuse rejects a picture in too many items). Fixed by the seeds, the
        taxonomy and the settings alone, whatever shard or process composes an item."""
        assert self.vocabulary is not None
        seeds, relations = self._all
        self._learn(seeds)
        picture = self.vocabulary.picture  # captions of look-alike pictures count as one
        uses: Counter[int] = Counter()
        shown: set[frozenset[int]] = set()  # the picture sets planned so far
        for seed in seeds:
            things = self._things[seed.id]
            shows = [picture(thing) for thing in things]
            own: Counter[int] = Counter()  # this seed's uses: its relations show other things first
            for relation in relations:
                if self._pairs is not None and (seed.id, relation.slug) not in self._pairs:
                    continue
                order = sorted(
                    range(len(things)),
                    key=lambda rank: (own[shows[rank]] >= SEED_PICTURE_REPEATS, uses[shows[rank]], rank),
                )
                count = _image_count(seed, relation)
                picks = order[:count]
                # Seeds with near questions reach the same things: an item showing another's
                # pictures would only be rejected by dedup, so its last slot takes the next one.
                for rank in order[count:]:
                    if frozenset(shows[pick] for pick in picks) not in shown:
                        break
                    picks[-1] = rank
                pictures = [shows[pick] for pick in picks]
                shown.add(frozenset(pictures))
                uses.update(pictures)
                own.update(pictures)
                self._plan[(seed.id, relation.slug)] = [things[pick] for pick in picks]

    def draft_many(
        self, jobs: list[CompositionJob], on_done: Callable[[], None]
    ) -> list[Draft | CompositionFailure]:
        if self.vocabulary is not None:
            with self._lock:
                if not self._plan and self._all[0]:
                    self._make_plan()
                self._learn([job.request.seed for job in jobs])
        drafts: list[Draft | CompositionFailure] = []
        for job in jobs:
            drafts.append(self.draft(job.request, job.relation, job.category))
            on_done()
        return drafts

    def _pool_things(self, request: CompositionRequest, relation: Relation, count: int) -> list[str] | None:
        """Distinct things for the slots: the plan's in the first round; later rounds (and seeds
        outside the plan) draw others from the nearest ones, per seed, relation and round."""
        things = self._things.get(request.seed.id, [])
        planned = self._plan.get((request.seed.id, relation.slug))
        if request.iteration == 1 and planned and len(planned) == count:
            return planned
        fresh = [thing for thing in things if thing not in (planned or [])]
        pool = fresh if len(fresh) >= count else things
        if len(pool) < count:
            return None
        draw = random.Random(f"{request.seed.id}\x1f{relation.slug}\x1f{request.iteration}")
        return draw.sample(pool, count)

    def draft(self, request: CompositionRequest, relation: Relation, category: Category) -> Draft:
        templates = relation.offline.templates
        # Seeds start at different variants so one relation's items do not all read alike;
        # each further round moves on by one.
        variant = (_stable_index(request.seed.id, len(templates)) + request.iteration - 1) % len(templates)
        count = _image_count(request.seed, relation)
        roles = relation.image_roles[:count]
        fallback = [category.display_name.lower(), *(role.name.replace("_", " ") for role in roles)]
        fields = {"n": count, "category": category.display_name}
        things = self._pool_things(request, relation, count)
        if things is not None:
            slot_words, vocabulary = [[thing] for thing in things], "pool"
        else:
            slot_words, vocabulary = _slot_keywords(request, count, fallback), "question"
        slots = []
        for index, (role, words) in enumerate(zip(roles, slot_words, strict=True)):
            description = relation.offline.slot_description.format(
                index=index + 1, keyword=" and ".join(words), role=role.hint, **fields
            )
            slots.append(ImageSlot(role=role.name, description=description, keywords=words))
        strict = "-no-key-words" if _leaked_before(request) and vocabulary == "question" else ""
        salt = f"{request.seed.id}\x1f{relation.slug}\x1f{request.iteration}"
        lead = _stable_index(f"lead\x1f{salt}", len(relation.offline.lead_ins))
        closing = _stable_index(f"closing\x1f{salt}", len(relation.offline.closings))
        parts = [relation.offline.lead_ins[lead], templates[variant], relation.offline.closings[closing]]
        return Draft(
            revised_prompt=" ".join(part.format(**fields) for part in parts if part),
            slots=slots,
            template=f"{relation.slug}/offline/{variant}.{lead}.{closing}/{vocabulary}{strict}@{self.version}",
        )
