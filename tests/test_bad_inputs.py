"""The bad-input corpus: every case runs the real CLI (in process) on one broken input and must
end with exit code 2, a message naming the file:line (or the item, setting or host), no
traceback, and nothing written: the case's folder is byte-for-byte what it was before.

Nothing is mocked. The unreachable database is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.config.settings import bundled
from builder.config.taxonomy import load_taxonomy
from builder.stages.render import renderers

GOOD = {"id": "s-1", "category": "violence", "query": "How could someone sabotage a car's brakes?"}
HEADER = "id,category,query"
BUNDLED = load_taxonomy(bundled("taxonomy"))


def _jsonl(*rows: dict | str) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def _seed(**fields: object) -> dict:
    return {**GOOD, **fields}


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Case:
    """One bad input. `args` and `expect` may name `{tmp}`, the case's own folder (also its cwd)."""

    id: str
    args: list[str]
    expect: list[str]
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    taxonomy: dict[str, str | tuple[str, str]] = field(default_factory=dict)  # file: text or (old, new)
    store: bool = False  # an empty store exists in {tmp}/artifacts before the command
    absent: tuple[str, ...] = ()  # strings the output must not hold (secrets)


SEEDS = ["seeds", "validate", "{tmp}/s.jsonl"]
SEEDS_CSV = ["seeds", "validate", "{tmp}/s.csv"]
BUILD = ["build", "--artifacts", "{tmp}/artifacts"]
TAXONOMY = ["taxonomy", "validate", "--taxonomy", "{tmp}/taxonomy"]
REL = "{tmp}/taxonomy/relations"
CONFIG = ["taxonomy", "validate", "--config", "{tmp}/c.yaml"]
POOL = ["pool", "index", "{tmp}/pool", "--artifacts", "{tmp}/artifacts"]
SELECT = ["seeds", "select", "--per-category", "1", "--artifacts", "{tmp}/artifacts", "--out", "{tmp}/set"]
RELEASE = ["release", "--version", "1.0.0", "--out", "{tmp}/out", "--artifacts", "{tmp}/artifacts"]
CLOSED = f"postgresql+psycopg://mirbench:s3cret-pw@127.0.0.1:{_closed_port()}/mirbench"
DEEP_JSON = '{"id": ' + "[" * 20_000 + "]" * 20_000 + "}"
DEEP_YAML = "a: " + "[" * 200 + "]" * 200 + "\n"
CAPTIONS = "{tmp}/pool/captions.jsonl"

CASES = [
    # --- seed files ------------------------------------------------------------------------
    Case("jsonl-malformed", SEEDS, ["{tmp}/s.jsonl:2: malformed JSON"], {"s.jsonl": _jsonl(GOOD, '{"id": ')}),
    Case("jsonl-empty", SEEDS, ["{tmp}/s.jsonl:1: the file is empty"], {"s.jsonl": ""}),
    Case("jsonl-whitespace", SEEDS, ["{tmp}/s.jsonl:1: the file is empty"], {"s.jsonl": " \n\t\n\n"}),
    Case("csv-empty", SEEDS_CSV, ["{tmp}/s.csv:1: the file is empty"], {"s.csv": ""}),
    Case("csv-header-only", SEEDS_CSV, ["{tmp}/s.csv:1: a header but no records"], {"s.csv": HEADER + "\n"}),
    Case(
        "csv-field-over-csv-limit",
        SEEDS_CSV,
        ["{tmp}/s.csv:2: a field longer than the limit of 100,000 characters", "limits.max_record_chars"],
        {"s.csv": f"{HEADER}\ns-1,violence,{'x' * 140_000}\n"},
    ),
    Case(
        "csv-field-limit-raised-query-limit-hits",
        SEEDS_CSV,
        ["{tmp}/s.csv:2: field 'query' is 140,000 characters, over the limit of 2,000"],
        {"s.csv": f"{HEADER}\ns-1,violence,{'x' * 140_000}\n"},
        env={"MIRBENCH_LIMITS__MAX_RECORD_CHARS": "200000"},
    ),
    Case(
        "query-too-long",
        SEEDS,
        ["{tmp}/s.jsonl:1: field 'query' is 2,001 characters", "limits.max_query_chars"],
        {"s.jsonl": _jsonl(_seed(query="q" * 2001))},
    ),
    Case(
        "query-limit-from-config",
        ["seeds", "validate", "{tmp}/s.jsonl", "--config", "{tmp}/c.yaml"],
        ["{tmp}/s.jsonl:1: field 'query' is 101 characters, over the limit of 100"],
        {"s.jsonl": _jsonl(_seed(query="q" * 101)), "c.yaml": "limits:\n  max_query_chars: 100\n"},
    ),
    Case(
        "jsonl-line-megabyte",
        SEEDS,
        ["{tmp}/s.jsonl:2: line is 1,000,0", "over the limit of 100,000"],
        {"s.jsonl": _jsonl(GOOD, _seed(id="s-2", query="q" * 1_000_000))},
    ),
    Case(
        "jsonl-deep-nesting",
        SEEDS,
        ["{tmp}/s.jsonl:1: JSON nested too deeply"],
        {"s.jsonl": DEEP_JSON + "\n"},
    ),
    Case(
        "jsonl-utf16-no-bom",
        SEEDS,
        ["{tmp}/s.jsonl:1: the file is UTF-16 (little-endian, no byte-order mark), not UTF-8"],
        {"s.jsonl": _jsonl(GOOD, _seed(id="s-2")).encode("utf-16-le")},
    ),
    Case(
        "csv-utf16-big-endian-no-bom",
        SEEDS_CSV,
        ["{tmp}/s.csv:1: the file is UTF-16 (big-endian, no byte-order mark), not UTF-8"],
        {"s.csv": f"{HEADER}\ns-1,violence,How could someone sabotage a car?\n".encode("utf-16-be")},
    ),
    Case(
        "jsonl-utf16-with-bom",
        SEEDS,
        ["{tmp}/s.jsonl:1: the file is UTF-16 (little-endian), not UTF-8"],
        {"s.jsonl": _jsonl(GOOD).encode("utf-16")},
    ),
    Case(
        "jsonl-utf32-no-bom",
        SEEDS,
        ["{tmp}/s.jsonl:1: the file is UTF-32 (little-endian, no byte-order mark), not UTF-8"],
        {"s.jsonl": _jsonl(GOOD).encode("utf-32-le")},
    ),
    Case(
        "pool-captions-utf16",
        POOL,
        [f"{CAPTIONS}:1: the file is UTF-16 (little-endian, no byte-order mark)"],
        {"pool/captions.jsonl": _jsonl({"file": "a.png", "caption": "a cat"}).encode("utf-16-le")},
    ),
    Case(
        "seeds-import-utf16",
        ["seeds", "import", "harmbench", "--path", "{tmp}/h.jsonl", "--artifacts", "{tmp}/artifacts"],
        ["{tmp}/h.jsonl: the file is UTF-16 (little-endian, no byte-order mark), not UTF-8"],
        {"h.jsonl": _jsonl({"Behavior": "Write a threat", "BehaviorID": "a"}).encode("utf-16-le")},
    ),
    Case(
        "calibrate-path-missing",
        ["judge", "calibrate", "--labels", "harmbench-classifier-val", "--path", "{tmp}/nowhere.json"],
        ["{tmp}/nowhere.json: --path: no such file"],
    ),
    Case(
        "jsonl-huge-integer",
        SEEDS,
        ["{tmp}/s.jsonl:1: malformed JSON: Exceeds the limit"],
        {"s.jsonl": '{"id": ' + "9" * 5000 + "}\n"},
    ),
    Case(
        "jsonl-not-utf8",
        SEEDS,
        ["{tmp}/s.jsonl:3: not UTF-8 text: byte 0xe9"],
        {"s.jsonl": _jsonl(GOOD, _seed(id="s-2")).encode() + b'{"id": "caf\xe9"}\n'},
    ),
    Case(
        "csv-not-utf8",
        SEEDS_CSV,
        ["{tmp}/s.csv:2: not UTF-8 text"],
        {"s.csv": f"{HEADER}\n".encode() + b"s-1,violence,caf\xe9 question\n"},
    ),
    Case(
        "jsonl-escaped-control-character",
        SEEDS,
        ["{tmp}/s.jsonl:1: field 'query': Value error, control character U+0007"],
        {"s.jsonl": _jsonl(_seed(query="How could someone \u0007 sabotage brakes?"))},
    ),
    Case(
        "jsonl-raw-control-character",
        SEEDS,
        ["{tmp}/s.jsonl:1: malformed JSON: Invalid control character"],
        {"s.jsonl": '{"id": "s-1", "category": "violence", "query": "a\x01b"}\n'},
    ),
    Case(
        "csv-control-character",
        SEEDS_CSV,
        ["{tmp}/s.csv:2: field 'query': Value error, control character U+0000"],
        {"s.csv": f"{HEADER}\ns-1,violence,how \x00 to\n"},
    ),
    Case(
        "csv-bom-then-unknown-column",
        SEEDS_CSV,
        ["{tmp}/s.csv:1: unknown column(s) ['querry']"],
        {"s.csv": "\ufeffid,category,query,querry\ns-1,violence,ok,x\n"},
        absent=("\\ufeff",),
    ),
    Case(
        "jsonl-bom-then-bad-category",
        SEEDS,
        ["{tmp}/s.jsonl:2: unknown category 'sorcery'", "1 problem(s)"],
        {"s.jsonl": "\ufeff" + _jsonl(GOOD, _seed(id="s-2", category="sorcery"))},
    ),
    Case(
        "seed-folder-empty",
        ["seeds", "validate", "{tmp}/seeds"],
        ["no seeds: no seed files"],
        {"seeds/x.txt": "x"},
    ),
    Case(
        "seed-path-missing",
        ["seeds", "validate", "{tmp}/nope.jsonl"],
        ["{tmp}/nope.jsonl: no such seed file"],
    ),
    Case(
        "seed-file-type",
        ["seeds", "validate", "{tmp}/s.txt"],
        ["{tmp}/s.txt: unsupported file type"],
        {"s.txt": "x"},
    ),
    Case(
        "jsonl-array-row",
        SEEDS,
        ["{tmp}/s.jsonl:1: expected a JSON object, got an array"],
        {"s.jsonl": "[1]\n"},
    ),
    Case(
        "jsonl-unknown-field",
        SEEDS,
        ["{tmp}/s.jsonl:1: field 'querry': Extra inputs"],
        {"s.jsonl": _jsonl(_seed(querry="x"))},
    ),
    Case(
        "jsonl-wrong-type",
        SEEDS,
        ["{tmp}/s.jsonl:1: field 'query': Input should be a valid string"],
        {"s.jsonl": _jsonl(_seed(query=["a"]))},
    ),
    Case(
        "duplicate-id-across-files",
        ["seeds", "validate", "{tmp}/seeds"],
        ["{tmp}/seeds/b.jsonl:1: duplicate seed id 's-1' (first seen at {tmp}/seeds/a.jsonl:1)"],
        {"seeds/a.jsonl": _jsonl(GOOD), "seeds/b.jsonl": _jsonl(GOOD)},
    ),
    Case(
        "csv-extra-values",
        SEEDS_CSV,
        ["{tmp}/s.csv:3: more values than header columns"],
        {"s.csv": f"{HEADER}\ns-1,violence,ok\ns-2,violence,a,b\n"},
    ),
    Case(
        "csv-missing-column",
        SEEDS_CSV,
        ["{tmp}/s.csv:1: the header row lacks the column(s) ['query']"],
        {"s.csv": "id,category\ns-1,violence\n"},
    ),
    Case(
        "csv-duplicate-column",
        SEEDS_CSV,
        ["{tmp}/s.csv:1: the header row has duplicate column(s) ['query']"],
        {"s.csv": "id,category,query,query\ns-1,violence,a,b\n"},
    ),
    Case("bad-seed-id", SEEDS, ["{tmp}/s.jsonl:1: field 'id'"], {"s.jsonl": _jsonl(_seed(id="has space"))}),
    Case(
        "key-phrase-not-in-query",
        SEEDS,
        ["{tmp}/s.jsonl:1: field 'record'", "does not occur in the query"],
        {"s.jsonl": _jsonl(_seed(key_phrase="launder money"))},
    ),
    Case(
        "build-empty-seeds",
        [*BUILD, "--seeds", "{tmp}/s.jsonl"],
        ["{tmp}/s.jsonl:1: the file is empty"],
        {"s.jsonl": "\n"},
    ),
    Case(
        "build-header-only-csv",
        [*BUILD, "--seeds", "{tmp}/s.csv"],
        ["{tmp}/s.csv:1: a header but no records"],
        {"s.csv": HEADER + "\n"},
    ),
    Case(
        "build-oversized-query",
        [*BUILD, "--seeds", "{tmp}/s.jsonl"],
        ["{tmp}/s.jsonl:1: field 'query' is 50,000 characters"],
        {"s.jsonl": _jsonl(_seed(query="q" * 50_000))},
    ),
    # --- taxonomy files ------------------------------------------------------------------------
    Case(
        "relation-not-utf8",
        TAXONOMY,
        [f"{REL}/analogy.yaml:3: not UTF-8 text"],
        taxonomy={"relations/analogy.yaml": ("slug: analogy", "slug: analogy\n# caf\udce9")},
    ),
    Case(
        "relation-control-character",
        TAXONOMY,
        [f"{REL}/causality.yaml:", "control character U+0001"],
        taxonomy={"relations/causality.yaml": ("Causality", "Caus\x01ality")},
    ),
    Case(
        "relation-list-at-top",
        TAXONOMY,
        [f"{REL}/relevance.yaml:1: expected a mapping"],
        taxonomy={"relations/relevance.yaml": "- a\n- b\n"},
    ),
    Case(
        "relation-scalar-at-top",
        TAXONOMY,
        [f"{REL}/relevance.yaml:1: expected a mapping", "got str"],
        taxonomy={"relations/relevance.yaml": "just text\n"},
    ),
    Case(
        "relation-yaml-syntax",
        TAXONOMY,
        [f"{REL}/broken.yaml:3: invalid YAML"],
        taxonomy={"relations/broken.yaml": "extends: _base\nslug: [unclosed\n"},
    ),
    Case(
        "relation-nested-deep",
        TAXONOMY,
        [f"{REL}/deep.yaml:1: nested more than 32 levels deep"],
        taxonomy={"relations/deep.yaml": DEEP_YAML},
    ),
    Case(
        "relation-extends-missing",
        TAXONOMY,
        [f"{REL}/two.yaml:1: 'extends: _missing' names no file"],
        taxonomy={"relations/two.yaml": "extends: _missing\nslug: two\n"},
    ),
    Case(
        "relation-extends-circular",
        TAXONOMY,
        [f"{REL}/_a.yaml:1: circular 'extends'"],
        taxonomy={"relations/loop.yaml": "extends: _a\nslug: loop\n", "relations/_a.yaml": "extends: loop\n"},
    ),
    Case(
        "relation-slug-mismatch",
        TAXONOMY,
        [f"{REL}/relevance.yaml:", "slug 'other' must match the file name 'relevance'"],
        taxonomy={"relations/relevance.yaml": ("slug: relevance", "slug: other")},
    ),
    Case(
        "relation-published-name-clash",
        TAXONOMY,
        [f"{REL}/relevance.yaml:", "published_name 'Analogy' is already used by 'analogy'"],
        taxonomy={"relations/relevance.yaml": ("published_name: Relevance", "published_name: Analogy")},
    ),
    Case(
        "relation-max-images",
        TAXONOMY,
        [f"{REL}/causality.yaml:", "field 'max_images'", "less than or equal to 4"],
        taxonomy={"relations/causality.yaml": ("max_images: 3", "max_images: 9")},
    ),
    Case(
        "relation-unknown-placeholder",
        TAXONOMY,
        [f"{REL}/relevance.yaml:", "unknown placeholder(s) ['count']"],
        taxonomy={"relations/relevance.yaml": ("{n}", "{count}")},
    ),
    Case(
        "relation-unknown-key",
        TAXONOMY,
        [f"{REL}/analogy.yaml:", "field 'colour': Extra inputs are not permitted"],
        taxonomy={"relations/analogy.yaml": ("slug: analogy", "slug: analogy\ncolour: red")},
    ),
    Case(
        "relation-empty-file",
        TAXONOMY,
        [f"{REL}/empty.yaml:1: field 'slug': Field required"],
        taxonomy={"relations/empty.yaml": ""},
    ),
    Case(
        "category-duplicate-slug",
        TAXONOMY,
        ["{tmp}/taxonomy/categories.yaml:", "duplicate category slug 'violence'"],
        taxonomy={"categories.yaml": ("slug: privacy", "slug: violence")},
    ),
    Case(
        "categories-not-utf8",
        TAXONOMY,
        ["{tmp}/taxonomy/categories.yaml:1: not UTF-8 text"],
        taxonomy={"categories.yaml": "caf\udce9: x\n"},
    ),
    Case(
        "taxonomy-folder-missing",
        ["taxonomy", "validate", "--taxonomy", "{tmp}/none"],
        ["no such taxonomy folder"],
    ),
    Case(
        "build-broken-taxonomy",
        [*BUILD, "--taxonomy", "{tmp}/taxonomy"],
        [f"{REL}/causality.yaml:", "field 'max_images'"],
        taxonomy={"relations/causality.yaml": ("max_images: 3", "max_images: x")},
    ),
    # --- config files and environment -----------------------------------------------------------
    Case(
        "config-bad-yaml",
        CONFIG,
        ["{tmp}/c.yaml:3: invalid YAML", "(while parsing a flow sequence at line 2)"],
        {"c.yaml": "renderer:\n  size: [1\n"},
    ),
    Case(
        "config-list",
        CONFIG,
        ["{tmp}/c.yaml:1: a config file is a mapping", "not a list"],
        {"c.yaml": "- 1\n"},
    ),
    Case(
        "config-scalar",
        CONFIG,
        ["{tmp}/c.yaml:1: a config file is a mapping", "not a str"],
        {"c.yaml": "hi\n"},
    ),
    Case(
        "config-not-utf8", CONFIG, ["{tmp}/c.yaml:2: not UTF-8 text"], {"c.yaml": b"shard_size: 5\n# \xff\n"}
    ),
    Case(
        "config-control-character",
        CONFIG,
        ["{tmp}/c.yaml:1: control character U+001B"],
        {"c.yaml": "a: \x1b\n"},
    ),
    Case(
        "config-unknown-key",
        CONFIG,
        ["{tmp}/c.yaml:2: setting 'bogus': Extra inputs are not permitted"],
        {"c.yaml": "shard_size: 5\nbogus: 1\n"},
    ),
    Case(
        "config-unknown-nested-key",
        CONFIG,
        ["{tmp}/c.yaml:3: setting 'renderer.sizee': Extra inputs are not permitted"],
        {"c.yaml": "renderer:\n  size: 64\n  sizee: 64\n"},
    ),
    Case(
        "config-bad-value",
        CONFIG,
        [
            "{tmp}/c.yaml:2: setting 'renderer.size'",
            "{tmp}/c.yaml:3: setting 'filters'",
            "entry 2: unknown filter 'vibes'",
        ],
        {"c.yaml": "renderer:\n  size: 10\nfilters: [structural, vibes]\n"},
    ),
    Case(
        "config-retrieval-threshold-out-of-range",
        CONFIG,
        ["{tmp}/c.yaml:3: setting 'renderer.min_score'"],
        {"c.yaml": "renderer:\n  backend: retrieval\n  min_score: 2\n"},
    ),
    Case(
        "config-limit-zero",
        CONFIG,
        ["{tmp}/c.yaml:2: setting 'limits.max_query_chars'"],
        {"c.yaml": "limits:\n  max_query_chars: 0\n"},
    ),
    Case("config-nested-deep", CONFIG, ["{tmp}/c.yaml:1: nested more than 32 levels"], {"c.yaml": DEEP_YAML}),
    Case(
        "config-missing",
        ["taxonomy", "validate", "--config", "{tmp}/none.yaml"],
        ["none.yaml: config file not found"],
    ),
    Case(
        "config-from-environment",
        ["taxonomy", "validate"],
        ["{tmp}/c.yaml:1: setting 'max_iterations'"],
        {"c.yaml": "max_iterations: lots\n"},
        env={"MIRBENCH_CONFIG": "{tmp}/c.yaml"},
    ),
    Case(
        "env-bad-value",
        ["taxonomy", "validate"],
        ["environment variable MIRBENCH_MAX_ITERATIONS: setting 'max_iterations'"],
        env={"MIRBENCH_MAX_ITERATIONS": "many"},
    ),
    Case(
        "env-beats-file",
        CONFIG,
        ["environment variable MIRBENCH_RENDERER__SIZE: setting 'renderer.size'"],
        {"c.yaml": "renderer:\n  size: 64\n"},
        env={"MIRBENCH_RENDERER__SIZE": "1"},
    ),
    Case(
        "env-not-json",
        ["taxonomy", "validate"],
        ["environment variable MIRBENCH_SEEDS: not valid JSON"],
        env={"MIRBENCH_SEEDS": "[oops"},
    ),
    Case(
        "build-bad-config",
        [*BUILD, "--config", "{tmp}/c.yaml"],
        ["{tmp}/c.yaml:1: invalid YAML"],
        {"c.yaml": "{"},
    ),
    # --- command-line arguments -------------------------------------------------------------------
    Case(
        "build-unknown-relation",
        [*BUILD, "-r", "telepathy"],
        [f"unknown relation 'telepathy'; known: {', '.join(sorted(BUNDLED.relations))}"],
    ),
    Case("build-limit-zero", [*BUILD, "--limit", "0"], ["--limit must be at least 1"]),
    Case(
        "build-max-iterations-zero",
        [*BUILD, "--max-iterations", "0"],
        ["setting 'max_iterations'", "command line"],
    ),
    Case(
        "build-renderer-unknown",
        [*BUILD, "--renderer", "oil-paint"],
        [f"unknown renderer 'oil-paint'; available: {', '.join(renderers.names())}"],
    ),
    Case("build-composer-needs-model", [*BUILD, "--composer", "openai"], ["needs a model name"]),
    Case("build-limit-not-a-number", [*BUILD, "--limit", "many"], ["Invalid value for '--limit'"]),
    Case("build-unknown-option", [*BUILD, "--colour"], ["No such option: --colour"]),
    Case(
        "build-model-ambiguous",
        [*BUILD, "--composer", "openai", "--renderer", "diffusers", "--model", "m"],
        ["--model is ambiguous"],
    ),
    # --- stores and database URLs -----------------------------------------------------------------
    Case("status-fresh-folder", ["status"], ["no store yet at sqlite:///{tmp}/artifacts/mirbench.db"]),
    Case("review-fresh-folder", ["review", "list"], ["no store yet", "run `mirbench build` first"]),
    Case(
        "status-unreachable-database",
        ["status", "--database-url", CLOSED],
        [
            "cannot connect to the database at postgresql+psycopg://mirbench:***@127.0.0.1:",
            "Connection refused",
        ],
        absent=("s3cret-pw",),
    ),
    Case(
        "build-unreachable-database",
        [*BUILD, "--database-url", CLOSED, "--limit", "1"],
        ["cannot connect to the database at postgresql+psycopg://mirbench:***@127.0.0.1:"],
        absent=("s3cret-pw",),
    ),
    Case(
        "status-malformed-database-url",
        ["status", "--database-url", "postgres:/mirbench:s3cret-pw@@"],
        ["malformed database URL"],
        absent=("s3cret-pw",),
    ),
    Case(
        "status-database-url-port-not-a-number",
        ["status", "--database-url", "postgresql+psycopg://u:s3cret-pw@127.0.0.1:54x1/db"],
        ["malformed database URL"],
        absent=("s3cret-pw", "ValueError"),
    ),
    Case(
        "status-unknown-dialect",
        ["status", "--database-url", "oracle9://u:s3cret-pw@127.0.0.1/db"],
        ["database URL oracle9://u:***@127.0.0.1/db: unknown database"],
        absent=("s3cret-pw",),
    ),
    Case(
        "status-async-driver",
        ["status", "--database-url", "postgresql+asyncpg://u:s3cret-pw@127.0.0.1/db"],
        ["'postgresql+asyncpg' is an asyncio driver"],
        absent=("s3cret-pw",),
    ),
    Case(
        "build-sqlite-folder-missing",
        [*BUILD, "--database-url", "sqlite:///{tmp}/nowhere/x.db"],
        ["folder {tmp}/nowhere does not exist"],
    ),
    Case(
        "status-sqlite-not-a-database",
        ["status", "--database-url", "sqlite:///{tmp}/x.db"],
        ["cannot open the database at sqlite:///{tmp}/x.db: file is not a database"],
        {"x.db": "this is text, not SQLite\n" * 10},
    ),
    # --- releases ----------------------------------------------------------------------------------
    Case("release-fresh-folder", RELEASE, ["no store yet"]),
    Case(
        "release-bad-version",
        ["release", "--version", "bogus", "--out", "{tmp}/out", "--artifacts", "{tmp}/artifacts"],
        ["version 'bogus' is not X.Y.Z", "no approved items"],
        store=True,
    ),
    Case("release-out-is-a-file", RELEASE, ["{tmp}/out: --out is a file"], {"out": "x"}, store=True),
    Case(
        "release-out-not-empty",
        RELEASE,
        ["{tmp}/out: release folder is not empty"],
        {"out/x": "x"},
        store=True,
    ),
    Case("release-nothing-approved", RELEASE, ["no approved items to release"], store=True),
    # --- image pools -------------------------------------------------------------------------------
    Case("pool-missing", POOL, ["{tmp}/pool: no such image pool folder"]),
    Case("pool-no-captions", POOL, ["needs a captions.jsonl or captions.csv sidecar"], {"pool/a.png": "x"}),
    Case(
        "pool-captions-malformed",
        POOL,
        [f"{CAPTIONS}:2: malformed JSON"],
        {"pool/captions.jsonl": _jsonl({"file": "a.png", "caption": "a cat"}, "{oops")},
    ),
    Case(
        "pool-captions-no-caption",
        POOL,
        [f"{CAPTIONS}:1: each row needs 'file' and a non-empty 'caption'"],
        {"pool/captions.jsonl": _jsonl({"file": "a.png", "caption": "  "})},
    ),
    Case(
        "pool-captions-outside",
        POOL,
        [f"{CAPTIONS}:1: file '../secret.png' is outside the pool folder"],
        {"pool/captions.jsonl": _jsonl({"file": "../secret.png", "caption": "a cat"})},
    ),
    Case(
        "pool-captions-wrong-type",
        POOL,
        [f"{CAPTIONS}:1: 'file', 'caption', 'source' and 'license' must be strings"],
        {"pool/captions.jsonl": _jsonl({"file": 3, "caption": "a cat"})},
    ),
    Case("pool-captions-empty", POOL, [f"{CAPTIONS}:1: the file is empty"], {"pool/captions.jsonl": ""}),
    Case(
        "pool-captions-not-utf8",
        POOL,
        ["{tmp}/pool/captions.csv:2: not UTF-8 text"],
        {"pool/captions.csv": b"file,caption\na.png,caf\xe9\n"},
    ),
    Case(
        "pool-captions-csv-missing-column",
        POOL,
        ["{tmp}/pool/captions.csv:1: the header row lacks the column(s) ['caption']"],
        {"pool/captions.csv": "file,text\na.png,a cat\n"},
    ),
    Case(
        "build-pool-missing",
        [*BUILD, "--renderer", "retrieval", "--pool", "{tmp}/pool", "--limit", "1"],
        ["{tmp}/pool: no such image pool folder"],
    ),
    Case(
        "build-pool-all-broken",
        [*BUILD, "--renderer", "retrieval", "--pool", "{tmp}/pool", "--limit", "1"],
        ["{tmp}/pool: no usable picture in the image pool: all 2 are unusable", "a.png: not an image"],
        {
            "pool/captions.jsonl": _jsonl(
                {"file": "a.png", "caption": "a cat"}, {"file": "b.png", "caption": "a dog"}
            ),
            "pool/a.png": "text, not a picture",
            "pool/b.png": b"\x89PNG\r\n\x1a\n",
        },
    ),
    Case(
        "pool-index-all-broken",
        POOL,
        ["{tmp}/pool: no usable picture in the image pool: all 1 are unusable"],
        {"pool/captions.jsonl": _jsonl({"file": "a.png", "caption": "a cat"}), "pool/a.png": ""},
    ),
    Case(
        "build-relations-per-seed-over-all",
        [*BUILD, "--relations-per-seed", "99", "--limit", "1"],
        ["--relations-per-seed 99 is more than the 9 relations this build makes"],
    ),
    Case(
        "build-relations-per-seed-over-chosen",
        [*BUILD, "--relations-per-seed", "2", "-r", "analogy", "--limit", "1"],
        ["--relations-per-seed 2 is more than the 1 relation this build makes (analogy)"],
    ),
    Case(
        "build-artifacts-is-a-file",
        [*BUILD, "--limit", "1"],
        ["{tmp}/artifacts: --artifacts is a file"],
        {"artifacts": "x"},
    ),
    Case(
        "build-artifacts-under-a-file",
        ["build", "--artifacts", "{tmp}/f/artifacts", "--limit", "1"],
        ["cannot create --artifacts: {tmp}/f is a file, not a folder"],
        {"f": "x"},
    ),
    Case(
        "select-version-a-path",
        [*SELECT, "--version", "v1 ../x"],
        ["--version 'v1 ../x' is not a version name"],
        store=True,
    ),
    Case(
        "select-total-negative",
        [*SELECT, "--total", "-1"],
        ["Invalid value for '--total': Input should be greater than or equal to 1"],
        store=True,
    ),
    Case(
        "select-total-below-per-category",
        [*SELECT, "--total", "3"],
        ["--total 3 is below what --per-category 1 asks of the 6 categories (6)"],
        store=True,
    ),
    Case(
        "select-out-the-store",
        [*SELECT[:-1], "{tmp}/artifacts"],
        ["the seed set's folder is not empty"],
        store=True,
    ),
    Case(
        "items-list-limit-zero",
        ["items", "list", "--limit", "0"],
        ["Invalid value for '--limit'"],
        store=True,
    ),
    Case(
        "merge-similarity-over-one",
        ["seeds", "merge", "--similarity", "1.5", "--artifacts", "{tmp}/artifacts"],
        ["Invalid value for '--similarity'"],
        store=True,
    ),
    Case(
        "curate-unknown-category",
        [
            "seeds",
            "curate",
            "next",
            "--reviewer",
            "ada",
            "--category",
            "weather",
            "--artifacts",
            "{tmp}/artifacts",
        ],
        ["unknown category 'weather'; known: harassment"],
        store=True,
    ),
    Case(
        "review-serve-bad-port",
        ["review", "serve", "--port", "70000"],
        ["--port must be between 1 and 65535"],
    ),
    Case(
        "review-serve-workers-on-sqlite",
        ["review", "serve", "--workers", "2", "--artifacts", "{tmp}/artifacts"],
        ["--workers above 1 needs PostgreSQL"],
        store=True,
    ),
    Case(
        "publish-dry-run-out-without-dry-run",
        [
            "publish",
            "1.0.0",
            "--repo",
            "org/name",
            "--dry-run-out",
            "{tmp}/plan",
            "--artifacts",
            "{tmp}/artifacts",
        ],
        ["--dry-run-out is for --dry-run"],
        store=True,
    ),
    Case(
        "calibrate-json-under-a-file",
        [
            "judge",
            "calibrate",
            "--labels",
            "{tmp}/l.jsonl",
            "--json",
            "{tmp}/f/r.json",
            "--artifacts",
            "{tmp}/a",
        ],
        ["cannot create --json: {tmp}/f is a file, not a folder"],
        {"f": "x", "l.jsonl": _jsonl({"behavior": "b", "response": "r", "label": 1})},
    ),
    Case(
        "build-pool-bad-captions",
        [*BUILD, "--renderer", "retrieval", "--pool", "{tmp}/pool", "--limit", "1"],
        [f"{CAPTIONS}:1: malformed JSON"],
        {"pool/captions.jsonl": "{oops\n"},
    ),
]


def _write(case: Case, tmp: Path) -> None:
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if case.taxonomy:
        shutil.copytree(bundled("taxonomy"), tmp / "taxonomy")
        for name, change in case.taxonomy.items():
            path = tmp / "taxonomy" / name
            if isinstance(change, tuple):
                old, new = change
                text = path.read_text(encoding="utf-8")
                assert old in text, f"{name} has no {old!r}: the case is stale"
                change = text.replace(old, new, 1)
            # surrogateescape writes the lone surrogates of the not-UTF-8 cases as raw bytes
            path.write_bytes(change.encode("utf-8", "surrogateescape"))
    if case.store:
        from builder.store import Store

        (tmp / "artifacts").mkdir()
        Store(f"sqlite:///{tmp / 'artifacts' / 'mirbench.db'}").close()


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under `root` with its size and modification time (None for folders)."""
    return {
        str(path.relative_to(root)): (
            None if path.is_dir() else (path.stat().st_size, path.stat().st_mtime_ns)
        )
        for path in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_clean(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path.resolve()
    monkeypatch.chdir(tmp)  # the default artifacts folder would land here
    for name, value in case.env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp))
    _write(case, tmp)
    before = _snapshot(tmp)
    result = CliRunner().invoke(app, [arg.format(tmp=tmp) for arg in case.args])
    output = result.output
    assert result.exit_code == 2, output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output and 'File "' not in output, output
    for expected in case.expect:
        assert expected.format(tmp=tmp) in output, output
    for secret in case.absent:
        assert secret not in output
    assert _snapshot(tmp) == before, "the command wrote something"


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)
