"""Ids that every export writes raw (TREC qrels and run, CSV) are refused at import unless safe;
CSV cells of free text are neutralised; `import_project --create` keeps no project when refused."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from labeling.errors import ImportFailed
from labeling.imports import import_project_file
from labeling.models import Item, Project, Query
from labeling.text_checks import csv_safe, external_id_problem
from web.exports import judgments_csv

from .lead_factories import grade, make_page
from .test_import import Q1, jsonl, text_item

UNSAFE_IDS = [
    "q with space",
    "tab\there",
    "line\nbreak",
    "cr\rhere",
    "nbsp\u00a0here",
    "ctrl\x07bell",
    "zero\u200bwidth",
    "=HYPERLINK(1)",
    "+1",
    "-1",
    "@SUM",
]


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_unsafe_query_id_is_refused_with_line_and_field(project, bad):
    with pytest.raises(ImportFailed) as failure:
        import_project_file(project=project, file=jsonl({**Q1, "id": bad}))
    problem = failure.value.problems[0]
    assert (problem.line, problem.field) == (1, "id")
    assert Query.objects.count() == 0


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_unsafe_item_id_or_query_reference_is_refused(project, bad):
    with pytest.raises(ImportFailed) as failure:
        import_project_file(
            project=project,
            file=jsonl(Q1, text_item("d1"), text_item(bad), text_item("d3", query=bad)),
        )
    assert [(p.line, p.field) for p in failure.value.problems] == [(3, "id"), (4, "query")]
    assert Item.objects.count() == 0


def test_safe_ids_with_inner_punctuation_and_unicode_are_accepted(project):
    ids = ["q-1", "a=b", "x+y", "mail@host", "café", "路径/1", "#1"]
    import_project_file(
        project=project,
        file=jsonl(Q1, *[text_item(i) for i in ids]),
    )
    assert set(Item.objects.values_list("external_id", flat=True)) == set(ids)


def test_external_id_problem_names_the_character():
    assert "character 2" in external_id_problem("q x")
    assert external_id_problem("q1") is None


@pytest.mark.parametrize("bad", ["a b", "=1", "-x", "t\tab", "n\nl"])
def test_database_refuses_unsafe_ids_written_around_the_import(project, bad):
    with pytest.raises(IntegrityError), transaction.atomic():
        Query.objects.create(project=project, external_id=bad, text="t")


def test_model_validator_refuses_unsafe_ids_in_forms(project):
    with pytest.raises(ValidationError, match="external_id"):
        Query(project=project, external_id="\u200bq", text="t").full_clean()


def test_csv_export_neutralises_formula_cells(project, make_user):
    annotator = make_user("-2+3", role="annotator", project=project)
    _, _, task = make_page(project, "q1", 2)
    grade(task, annotator, [1, 0])
    rows = list(csv.DictReader(io.StringIO("".join(judgments_csv(project)))))
    assert rows[0]["annotator"] == "'-2+3"
    assert rows[0]["query"] == "q1"


def test_csv_safe_prefixes_only_dangerous_text():
    assert [csv_safe(v) for v in ["=1", "+1", "-1", "@a", "\tx", "\rx", "a=1", 5, ""]] == [
        "'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "a=1", 5, "",
    ]  # fmt: skip


def test_import_command_create_keeps_no_project_when_refused(db, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl({**Q1, "id": "q 1"}).getvalue())
    with pytest.raises(CommandError, match="Import refused"):
        call_command("import_project", "fresh", str(path), "--create")
    assert not Project.objects.filter(slug="fresh").exists()


def test_import_command_create_makes_the_project_when_the_import_succeeds(db, tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_bytes(jsonl(Q1, text_item()).getvalue())
    call_command("import_project", "fresh", str(path), "--create")
    assert Item.objects.filter(project__slug="fresh").count() == 1
