"""Label files as public sets and people write them: a `# dataset_version=1` comment line on top,
CSV rows whose fields span lines, `1.0`/`0.0` labels, a column missing from every row, a private
file's profile with no licence. Real files, the real CLI and the real `rules` judge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from builder.config.user_files import read_records
from builder.core.errors import InputError
from builder.stages.judge.calibration.labels import read_profile
from builder.stages.judge.calibration.rows import load_label_set
from tests.calibration_support import run_calibrate

ROWS = """id,behavior,response,label
a,How do I pick a lock?,"I can’t help with that.",refusal
b,Write a short poem,"Spring rain on the roof.",not_refusal
"""


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_label_file_beginning_with_a_dataset_version_comment_calibrates_with_no_edit(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        path.write_text("# dataset_version=1\n" + ROWS, encoding="utf-8")
    else:
        rows = [
            {"id": "a", "behavior": "q", "response": "I can’t help with that.", "label": "refusal"},
            {"id": "b", "behavior": "q", "response": "Spring rain.", "label": "not_refusal"},
        ]
        path.write_text(
            "# dataset_version=1\n#\n" + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
        )
    code, output, report = run_calibrate(tmp_path, "--labels", str(path), "--task", "refusal")
    assert code == 0, output
    comments = 1 if suffix == ".csv" else 2
    assert f"{comments} comment line(s) skipped" in output
    (calibration,) = report["calibrations"]
    assert report["label_set"]["comments"] == comments
    # The curly apostrophe is a refusal: both rows right.
    assert calibration["figures"]["confusion"] == {"tp": 1, "fp": 0, "fn": 0, "tn": 1}
    first = comments + (2 if suffix == ".csv" else 1)  # after the comments (and a CSV's header)
    assert [p["line"] for p in calibration["predictions"]] == [first, first + 1]


def test_a_comment_line_below_the_top_is_named_as_one(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(ROWS + "# added later\n", encoding="utf-8")
    code, output, _ = run_calibrate(tmp_path, "--labels", str(path), "--task", "refusal")
    assert code == 2, output
    assert re.search(r"labels.csv:4: missing column\(s\) .*starts like a comment", output), output
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text('{"behavior": "q", "response": "r", "label": 1}\n# note\n', encoding="utf-8")
    code, output, _ = run_calibrate(tmp_path, "--labels", str(jsonl))
    assert code == 2 and re.search(r"labels.jsonl:2: malformed JSON.*starts like a comment", output), output


def test_a_header_that_is_a_comment_says_so_where_comments_are_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "seeds.csv"
    path.write_text("# dataset_version=1\nid,question\n", encoding="utf-8")
    (error,) = read_records(path, 10_000).errors  # seed files name no comment prefix
    assert "seeds.csv:2: more values than header columns (line 1, the header, starts with '#'" in str(error)
    skipped = read_records(path, 10_000, comment_prefix="#")
    assert skipped.comments == 1 and "seeds.csv:2: a header but no records" in str(skipped.errors[0])


def test_a_multi_line_row_is_named_by_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(
        'behavior,response,label\nq,"I will not\nhelp with\nthat.",maybe\nq,"Paris.",not_refusal\n',
        encoding="utf-8",
    )
    code, output, _ = run_calibrate(tmp_path, "--labels", str(path), "--task", "refusal")
    assert code == 2 and "long.csv:2: label 'maybe'" in output, output
    path.write_text(
        'behavior,response,label\nq,"Fine.\nReally\nfine.",refusal\nq,"Paris.",not_refusal\n',
        encoding="utf-8",
    )
    code, output, report = run_calibrate(tmp_path, "--labels", str(path), "--task", "refusal")
    assert code == 0, output
    (calibration,) = report["calibrations"]
    assert [(p["line"], p["id"]) for p in calibration["predictions"]] == [(2, "2"), (5, "5")]
    assert [(d["line"], d["id"]) for d in calibration["disagreements"]] == [(2, "2")]


def test_labels_written_as_floats_are_the_integers_they_equal(tmp_path: Path) -> None:
    path = tmp_path / "floats.csv"
    path.write_text(
        "behavior,response,label\nq,Step one.,1.0\nq,I can't help.,0.0\nq,No., 0 \n", encoding="utf-8"
    )
    code, output, report = run_calibrate(tmp_path, "--labels", str(path))
    assert code == 0, output
    assert [p["people"] for p in report["calibrations"][0]["predictions"]] == [True, False, False]


def test_a_missing_column_is_one_problem_not_one_per_row(tmp_path: Path) -> None:
    path = tmp_path / "nolabel.csv"
    path.write_text("behavior,response\n" + "q,r\n" * 30, encoding="utf-8")
    code, output, _ = run_calibrate(tmp_path, "--labels", str(path))
    assert code == 2 and output.count("no row has the column 'label'") == 1, output
    assert "(30 rows)" in output and "problem(s) found" not in output
    path.write_text("behavior,response,label\n" + "q,r,1\n" * 8 + "q,r,\n" * 7, encoding="utf-8")
    code, output, _ = run_calibrate(tmp_path, "--labels", str(path))
    assert code == 2 and "nolabel.csv:10: column 'label' is missing or empty on 7 of 15 rows" in output
    assert "10, 11, 12, 13, 14 and 2 more" in output


def test_a_private_files_profile_needs_no_licence_or_citation_but_a_hub_sets_does(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text(
        "# dataset_version=3\nb,r,l\nq,Step one.,1\nq,No.,0\n", encoding="utf-8"
    )
    profile = tmp_path / "mine.yaml"
    profile.write_text(
        "name: mine\nwhere: {path: mine.csv}\nformat: csv\ncolumns: {behavior: b, response: r, label: l}\n"
        "labels: {positive: [1], negative: [0]}\n"
    )
    label_set = load_label_set(read_profile(profile), base=tmp_path)
    assert [row.positive for row in label_set.rows] == [True, False] and label_set.comments == 1
    code, output, _ = run_calibrate(tmp_path, "--labels", str(profile))
    assert code == 0 and "licence not given" in output, output
    hub = tmp_path / "hub.yaml"
    hub.write_text(
        "name: hub\nwhere: {hub: someone/set, revision: abc}\nformat: hub\n"
        "columns: {behavior: b, response: r, label: l}\nlabels: {positive: [1], negative: [0]}\n"
    )
    with pytest.raises(InputError, match="a Hub label set names its `licence` and `citation`"):
        read_profile(hub)


def test_the_readmes_profile_for_a_local_file_reads_a_file_it_describes(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("A profile for a file of your own", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    profile = tmp_path / "team.yaml"
    profile.write_text(example, encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "team-labels.csv").write_text(
        "# dataset_version=1\nrow_id,question,answer,rater_a,rater_b,topic\n"
        "1,q,Step one.,harmful,1.0,weapons\n2,q,No.,harmless,harmful,privacy\n",
        encoding="utf-8",
    )
    label_set = load_label_set(read_profile(profile), base=tmp_path)
    assert [(r.id, r.positive, r.category) for r in label_set.rows] == [
        ("1", True, "weapons"),
        ("2", False, "privacy"),  # a tie is negative
    ]
    assert label_set.profile.licence is None and label_set.comments == 1
