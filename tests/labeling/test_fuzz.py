"""Fuzzing with hypothesis: no input to the import parser or the REST API is a 500, and input that
is refused changes nothing. PAGEWISE_FUZZ_EXAMPLES sets the examples per test (CI: the default)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.errors import ImportFailed
from labeling.imports import import_project_file
from labeling.models import ImportRun, Item, Judgment, Membership, Project, Query, TaskSkip

from .task_factories import make_page_task

EXAMPLES = int(os.environ.get("PAGEWISE_FUZZ_EXAMPLES", 40))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["q1", "text", "image", "video", "gold", "train", "../x.png", "a.png"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.sampled_from(
    [
        "type",
        "id",
        "query",
        "modality",
        "title",
        "text",
        "image",
        "upstream_score",
        "gold_grade",
        "metadata",
        "split",
        "x",
    ]
)
records = st.dictionaries(keys, values, max_size=8) | st.fixed_dictionaries(
    {"type": st.sampled_from(["query", "item"]), "id": st.text(max_size=5), "query": st.just("q1")},
    optional={"modality": st.sampled_from(["text", "image", "video", 3]), "text": values, "image": values,
              "upstream_score": values, "gold_grade": values, "split": values},
)  # fmt: skip
lines = st.lists(
    st.one_of(
        records.map(lambda r: json.dumps(r, allow_nan=True).encode()), st.binary(max_size=40)
    ),
    max_size=8,
)


def snapshot(project: Project) -> tuple[int, int, int]:
    return (
        Query.objects.filter(project=project).count(),
        Item.objects.filter(project=project).count(),
        ImportRun.objects.count(),
    )


@pytest.mark.django_db
@FUZZ
@given(body=lines)
def test_import_of_any_jsonl_is_stored_whole_or_refused_with_nothing_changed(project, body):
    before = snapshot(project)
    try:
        result = import_project_file(
            project=project, file=io.BytesIO(b"\n".join(body)), filename="fuzz.jsonl"
        )
    except ImportFailed as failure:
        assert failure.problems and all(p.reason for p in failure.problems)
        assert snapshot(project) == before
    else:
        assert snapshot(project)[1] == before[1] + result.items_created


def _writable(name: str) -> bool:
    """zipfile cuts a name at NUL and cannot write an empty name or a directory entry with data."""
    return "\x00" not in name and bool(name.strip("/")) and not name.endswith("/")


# Hostile names zipfile can still write: traversal, absolute, backslashes, control characters,
# names longer than a file system allows, non-ASCII; plus random text.
member_names = st.one_of(
    st.sampled_from(
        ["a.png", "../a.png", "/abs.png", "dir/b.jpg", "x.jsonl", "c\\\\d.png", "ctl\x01\x1f\x7f.png",
         "tab\tnew\nline.png", "l" * 300 + ".png", "caf\u00e9.png", "\u540d\u524d.jpg", "..\\..\\w.png"]
    ),
    st.text(max_size=10).filter(_writable),
)  # fmt: skip
# How the name is stored: as zipfile would (ASCII, or UTF-8 with its flag), as a legacy archiver
# would (cp437 bytes, no flag), or as a broken one would (latin-1 bytes claiming to be UTF-8).
name_encodings = st.sampled_from(["standard", "cp437", "bad-utf8"])


class _RawNameInfo(zipfile.ZipInfo):
    def __init__(self, name: str, encoding: str):
        super().__init__(name)
        self.encoding = encoding

    def _encodeFilenameFlags(self):  # noqa: N802 (zipfile's own name)
        if self.encoding == "cp437":
            return self.filename.encode("cp437", "replace"), self.flag_bits & ~0x800
        return self.filename.encode("latin-1", "replace"), self.flag_bits | 0x800


def _member_info(name: str, encoding: str) -> zipfile.ZipInfo | str:
    return name if encoding == "standard" else _RawNameInfo(name, encoding)


@pytest.mark.django_db
@FUZZ
@given(
    body=lines,
    members=st.dictionaries(
        member_names, st.tuples(st.binary(max_size=64), name_encodings), max_size=4
    ),
)
def test_import_of_any_zip_is_stored_whole_or_refused_with_nothing_changed(project, body, members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.jsonl", b"\n".join(body))
        for name, (data, encoding) in members.items():
            archive.writestr(_member_info(name, encoding), data)
    before = snapshot(project)
    try:
        import_project_file(
            project=project, file=io.BytesIO(buffer.getvalue()), filename="fuzz.zip"
        )
    except ImportFailed:
        assert snapshot(project) == before


json_bodies = st.dictionaries(
    st.sampled_from(["client_uuid", "grades", "choice", "sides", "duration_ms", "username", "role", "budget",
                     "grade_names", "page_size", "strategy", "x"]),
    values,
    max_size=6,
)  # fmt: skip


@pytest.mark.django_db
@FUZZ
@given(
    body=json_bodies,
    target=st.sampled_from(
        ["next", "submit", "skip", "members", "member", "settings", "judgments"]
    ),
)
def test_rest_api_never_answers_500_and_refused_writes_change_nothing(
    project, make_user, client, body, target
):
    lead = Membership.objects.filter(project=project, role="lead").first()
    if lead is None:
        lead = Membership.objects.create(project=project, user=make_user("fuzz-lead"), role="lead")
    task = make_page_task(project)
    client.force_login(lead.user)
    client.post(f"/api/projects/{project.slug}/tasks/next/", content_type="application/json")
    url, method = {
        "next": (f"/api/projects/{project.slug}/tasks/next/", "post"),
        "submit": (f"/api/tasks/{task.pk}/submit/", "post"),
        "skip": (f"/api/tasks/{task.pk}/skip/", "post"),
        "members": (f"/api/projects/{project.slug}/members/", "post"),
        "member": (f"/api/projects/{project.slug}/members/{lead.user.username}/", "patch"),
        "settings": (f"/api/projects/{project.slug}/settings/", "patch"),
        "judgments": (f"/api/projects/{project.slug}/judgments/", "get"),
    }[target]
    before = (Judgment.objects.count(), Membership.objects.count(), TaskSkip.objects.count())
    settings_before = Project.objects.filter(pk=project.pk).values().get()
    payload = json.dumps(body, allow_nan=False, default=str) if _json_safe(body) else "{not json"
    if method == "get":
        response = client.get(url, {key: str(value) for key, value in body.items()})
    else:
        response = getattr(client, method)(url, payload, content_type="application/json")
    assert response.status_code < 500, response.content[:500]
    if response.status_code >= 400:
        assert (
            Judgment.objects.count(),
            Membership.objects.count(),
            TaskSkip.objects.count(),
        ) == before
        assert Project.objects.filter(pk=project.pk).values().get() == settings_before


def _json_safe(body) -> bool:
    try:
        json.dumps(body, allow_nan=False)
        return True
    except (ValueError, TypeError):
        return False
