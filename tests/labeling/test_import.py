"""Import is all or nothing: every bad line is reported with line, field and reason, nothing stored."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from labeling.errors import ImportFailed
from labeling.imports import import_project_file
from labeling.models import ImportRun, Item, Query


def jsonl(*records) -> io.BytesIO:
    return io.BytesIO(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    )


def png(size=(8, 8), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def zipped(records, files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.jsonl", jsonl(*records).getvalue())
        for name, data in files.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


Q1 = {"type": "query", "id": "q1", "text": "cat", "split": "train"}


def text_item(item_id="d1", **fields):
    return {
        "type": "item",
        "id": item_id,
        "query": "q1",
        "modality": "text",
        "title": "A cat",
        "text": "Cats.",
        **fields,
    }


def snapshot():
    return (Query.objects.count(), Item.objects.count(), ImportRun.objects.count())


def refused(project, file, filename="data.jsonl") -> ImportFailed:
    before = snapshot()
    with pytest.raises(ImportFailed) as failure:
        import_project_file(project=project, file=file, filename=filename)
    assert snapshot() == before, "a refused import must store nothing"
    return failure.value


def test_import_jsonl_stores_queries_items_and_upstream_ranks(project):
    result = import_project_file(
        project=project,
        file=jsonl(
            Q1,
            text_item("d1", upstream_score=2.0),
            text_item("d2", upstream_score=9.5),
            text_item("d3"),
            {
                "type": "item",
                "id": "i1",
                "query": "q1",
                "modality": "image",
                "title": "Cat photo",
                "upstream_score": -1.0,
            },
        ),
        filename="data.jsonl",
    )
    assert (result.queries_created, result.items_created) == (1, 4)
    ranks = dict(Item.objects.values_list("external_id", "upstream_rank"))
    assert ranks == {"d2": 1, "d1": 2, "d3": None, "i1": 1}


def test_import_zip_with_images_stores_each_image_once(project):
    image = png()
    records = [
        Q1,
        {
            "type": "item",
            "id": "i1",
            "query": "q1",
            "modality": "image",
            "image": "img/cat.png",
            "upstream_score": 1.2,
        },
        {
            "type": "item",
            "id": "i2",
            "query": "q1",
            "modality": "image",
            "image": "img/cat.png",
            "upstream_score": 0.4,
        },
    ]
    result = import_project_file(
        project=project, file=zipped(records, {"img/cat.png": image}), filename="d.zip"
    )
    assert result.images_stored == 1
    first, second = Item.objects.order_by("external_id")
    assert first.image.name == second.image.name
    assert first.image.read() == image


def test_import_adds_items_to_existing_query_and_reranks_old_ones(project):
    import_project_file(project=project, file=jsonl(Q1, text_item("d1", upstream_score=1.0)))
    import_project_file(project=project, file=jsonl(text_item("d2", upstream_score=5.0)))
    assert dict(Item.objects.values_list("external_id", "upstream_rank")) == {"d2": 1, "d1": 2}


def test_import_with_malformed_json_stores_nothing(project):
    error = refused(project, jsonl(Q1, '{"type": "item", "id": '))
    assert error.problems[0].line == 2
    assert error.problems[0].field == "-"
    assert "malformed JSON" in error.problems[0].reason


def test_import_with_missing_field_stores_nothing(project):
    item = text_item()
    del item["modality"]
    error = refused(project, jsonl(Q1, item))
    assert [(p.line, p.field, p.reason) for p in error.problems] == [(2, "modality", "missing")]


def test_import_with_wrong_type_stores_nothing(project):
    error = refused(
        project, jsonl(Q1, text_item(upstream_score="high"), text_item("d2", metadata=[1]))
    )
    assert [(p.line, p.field) for p in error.problems] == [(2, "upstream_score"), (3, "metadata")]
    assert "must be a number" in error.problems[0].reason


def test_import_with_unknown_modality_stores_nothing(project):
    error = refused(project, jsonl(Q1, text_item(modality="video")))
    assert (error.problems[0].line, error.problems[0].field) == (2, "modality")
    assert "unknown modality 'video'" in error.problems[0].reason


def test_import_with_duplicate_item_id_stores_nothing(project):
    error = refused(project, jsonl(Q1, text_item("d1"), text_item("d1")))
    assert [(p.line, p.field, p.reason) for p in error.problems] == [
        (3, "id", "duplicate item id 'd1'")
    ]


def test_import_with_id_already_in_project_stores_nothing(project):
    import_project_file(project=project, file=jsonl(Q1, text_item("d1")))
    error = refused(project, jsonl(text_item("d1")))
    assert error.problems[0].reason == "duplicate item id 'd1'"


def test_import_with_unknown_query_stores_nothing(project):
    error = refused(project, jsonl(text_item(query="nope")))
    assert (error.problems[0].field, error.problems[0].reason) == (
        "query",
        "unknown query id 'nope'",
    )


def test_import_with_file_that_is_not_an_image_stores_nothing(project):
    records = [
        Q1,
        {"type": "item", "id": "i1", "query": "q1", "modality": "image", "image": "a.png"},
    ]
    error = refused(project, zipped(records, {"a.png": b"this is not a PNG"}), "d.zip")
    assert (error.problems[0].line, error.problems[0].field) == (2, "image")
    assert "not an image" in error.problems[0].reason


def test_import_with_oversized_image_stores_nothing(project, settings):
    settings.PAGEWISE_MAX_IMAGE_PIXELS = 10_000
    records = [
        Q1,
        {"type": "item", "id": "i1", "query": "q1", "modality": "image", "image": "big.png"},
    ]
    error = refused(project, zipped(records, {"big.png": png(size=(200, 200))}), "d.zip")
    assert "200x200 pixels exceeds the limit of 10000 pixels" in error.problems[0].reason


def test_import_with_image_over_byte_limit_stores_nothing(project, settings):
    settings.PAGEWISE_MAX_IMAGE_BYTES = 100
    records = [
        Q1,
        {"type": "item", "id": "i1", "query": "q1", "modality": "image", "image": "a.png"},
    ]
    error = refused(project, zipped(records, {"a.png": png(size=(64, 64)) + b"\0" * 200}), "d.zip")
    assert "the limit is 100" in error.problems[0].reason


def test_import_with_decompression_bomb_is_refused_before_decoding(project):
    # A 30000 x 30000 PNG of one colour is tiny on disk but would need 2.7 GB decoded.
    buffer = io.BytesIO()
    Image.new("1", (30_000, 30_000)).save(buffer, "PNG")
    records = [
        Q1,
        {"type": "item", "id": "i1", "query": "q1", "modality": "image", "image": "bomb.png"},
    ]
    error = refused(project, zipped(records, {"bomb.png": buffer.getvalue()}), "d.zip")
    assert (
        "exceeds the limit" in error.problems[0].reason or "too large" in error.problems[0].reason
    )


def test_import_with_path_traversal_stores_nothing(project):
    records = [
        Q1,
        {
            "type": "item",
            "id": "i1",
            "query": "q1",
            "modality": "image",
            "image": "../../etc/passwd",
        },
    ]
    error = refused(project, zipped(records, {"../evil.png": png()}), "d.zip")
    reasons = [(p.field, p.reason) for p in error.problems]
    assert ("../evil.png", "path leaves the archive") in reasons


def test_import_with_image_path_outside_archive_stores_nothing(project):
    records = [
        Q1,
        {"type": "item", "id": "i1", "query": "q1", "modality": "image", "image": "../x.png"},
    ]
    error = refused(project, zipped(records, {"x.png": png()}), "d.zip")
    assert (error.problems[0].line, error.problems[0].field) == (2, "image")
    assert "leaves the archive" in error.problems[0].reason


def test_import_lists_at_most_fifty_problems_and_counts_all(project):
    error = refused(project, jsonl(Q1, *[text_item(f"d{i}", modality="video") for i in range(70)]))
    assert len(error.problems) == 50
    assert error.total == 70
    assert "70 problems" in error.message


def test_import_with_unknown_field_and_bad_gold_grade_names_both(project):
    error = refused(
        project, jsonl(Q1, text_item("d1", colour="red"), text_item("d2", gold_grade=3))
    )
    assert [(p.line, p.field, p.reason) for p in error.problems] == [
        (2, "colour", "unknown field"),
        (3, "gold_grade", "only items of gold queries carry a gold grade"),
    ]


def api_import(client, project, upload, capture) -> dict:
    """Post an upload to the import API, run the queued job (eagerly), return the run's status."""
    with capture(execute=True):
        response = client.post(f"/api/projects/{project.slug}/import/", {"file": upload})
    assert response.status_code == 202, response.content
    return client.get(response.json()["url"]).json()


def test_import_api_refuses_bad_file_with_the_problems_on_the_run(
    project, make_user, client, django_capture_on_commit_callbacks
):
    lead = make_user("lead", role="lead", project=project)
    client.force_login(lead)
    upload = jsonl(Q1, text_item(modality="video"))
    upload.name = "bad.jsonl"
    run = api_import(client, project, upload, django_capture_on_commit_callbacks)
    assert run["status"] == "failed"
    assert run["error"].startswith("Import refused: 1 problem")
    assert run["problems"] == [
        {"line": 2, "field": "modality", "reason": run["problems"][0]["reason"]}
    ]
    assert run["problems_total"] == 1 and run["rows_read"] == 2
    assert Item.objects.count() == 0


def test_import_api_stores_good_file_for_lead_only(
    project, make_user, client, django_capture_on_commit_callbacks
):
    annotator = make_user("ann", role="annotator", project=project)
    lead = make_user("lead", role="lead", project=project)
    upload = jsonl(Q1, text_item())
    upload.name = "good.jsonl"
    client.force_login(annotator)
    assert client.post(f"/api/projects/{project.slug}/import/", {"file": upload}).status_code == 403
    upload.seek(0)
    client.force_login(lead)
    run = api_import(client, project, upload, django_capture_on_commit_callbacks)
    assert {k: run[k] for k in ("status", "queries_created", "items_created", "images_stored",
                                "ignored_members", "ignored_members_total", "rows_read")} == {
        "status": "succeeded", "queries_created": 1, "items_created": 1, "images_stored": 0,
        "ignored_members": [], "ignored_members_total": 0, "rows_read": 2,
    }  # fmt: skip


def test_import_command_prints_each_problem_and_fails(project, tmp_path, capsys):
    from django.core.management import CommandError, call_command

    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl(Q1, text_item(modality="video"), text_item("d1")).getvalue())
    with pytest.raises(CommandError, match="Import refused: 1 problem"):
        call_command("import_project", project.slug, str(path))
    assert "line 2, field 'modality'" in capsys.readouterr().err
    assert Item.objects.count() == 0


def test_an_import_whose_follow_up_cannot_be_queued_is_kept_and_logged(
    project, django_capture_on_commit_callbacks, caplog
):
    from labeling.signals import items_imported

    def broker_down(sender, project_id, **kwargs):
        raise ConnectionError("broker unreachable")

    items_imported.connect(broker_down, dispatch_uid="test.broker_down")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = import_project_file(project=project, file=jsonl(Q1, text_item()))
    finally:
        items_imported.disconnect(dispatch_uid="test.broker_down")
    assert (result.queries_created, result.items_created) == (1, 1)
    assert Item.objects.filter(project=project).count() == 1
    assert "broker unreachable" in caplog.text


def test_a_line_longer_than_the_limit_is_refused_with_its_number_and_later_lines_still_checked(
    project, settings
):
    settings.PAGEWISE_MAX_IMPORT_LINE_BYTES = 100
    long_line = json.dumps(text_item("d1", text="x" * 5000))
    error = refused(project, jsonl(Q1, long_line, text_item("d2", modality="video")))
    assert [(p.line, p.field) for p in error.problems] == [(2, "-"), (3, "modality")]
    assert "longer than 100 bytes" in error.problems[0].reason


def test_a_line_of_exactly_the_limit_is_read(project, settings):
    line = json.dumps(text_item("d1"))
    settings.PAGEWISE_MAX_IMPORT_LINE_BYTES = len(line.encode())
    assert import_project_file(project=project, file=jsonl(Q1, line)).items_created == 1


def test_a_file_of_more_lines_than_the_limit_is_refused_at_that_line(project, settings):
    settings.PAGEWISE_MAX_IMPORT_LINES = 10
    error = refused(project, io.BytesIO(b"\n" * 1000), "blank.jsonl")
    assert [(p.line, p.field) for p in error.problems] == [(11, "-")]
    assert "more than 10 lines" in error.problems[0].reason


def test_a_long_line_in_a_zip_is_skipped_in_bounded_pieces(project, settings):
    from labeling.imports import LINE_TOO_LONG, bounded_lines

    settings.PAGEWISE_MAX_IMPORT_LINE_BYTES = 10
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.jsonl", b"short\n" + b" " * (3 << 20) + b"\nend")
    with zipfile.ZipFile(buffer) as archive:
        assert list(bounded_lines(archive.open("data.jsonl"))) == [
            b"short\n",
            LINE_TOO_LONG,
            b"end",
        ]


def test_zip_members_no_line_names_are_listed_as_ignored_and_never_stored(
    project, make_user, client, settings, django_capture_on_commit_callbacks
):
    records = [
        Q1,
        {"type": "item", "id": "i1", "query": "q1", "modality": "image", "image": "./img/cat.png"},
    ]
    bomb = b"\x89PNG\r\n\x1a\n" + b"not really"  # never decoded: nobody names it
    upload = zipped(
        records, {"img/cat.png": png(), "img/bomb.png": bomb, "notes/readme.txt": b"hi"}
    )
    upload.name = "d.zip"
    client.force_login(make_user("lead", role="lead", project=project))
    body = api_import(client, project, upload, django_capture_on_commit_callbacks)
    assert body["status"] == "succeeded"
    assert body["ignored_members"] == ["img/bomb.png", "notes/readme.txt"]
    assert body["ignored_members_total"] == 2
    stored = [p.name for p in (settings.MEDIA_ROOT / "projects").rglob("*") if p.is_file()]
    assert len(stored) == 1 and Item.objects.get().image.read() == png()


def test_the_import_run_page_lists_ignored_members(
    project, make_user, client, django_capture_on_commit_callbacks
):
    upload = zipped([Q1, text_item()], {"extra.png": png()})
    upload.name = "d.zip"
    client.force_login(make_user("lead", role="lead", project=project))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/projects/{project.slug}/import/", {"file": upload})
    page = client.get(response["Location"]).content.decode()
    assert "1 file in the zip is named by no line and was ignored" in page
    assert "<code>extra.png</code>" in page
