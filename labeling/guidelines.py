"""A project's annotation guidelines: versions written by the lead, shown to annotators.

Instructions are markdown, rendered to HTML by markdown-it (raw HTML off) and then sanitised by
nh3 (an allow-list of tags, attributes and URL schemes), so nothing a lead writes can run script
in an annotator's browser. Versions are append-only: saving a change stores a new version.
"""

from __future__ import annotations

from dataclasses import dataclass

import nh3
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.text import Truncator
from markdown_it import MarkdownIt

from .errors import PagewiseError
from .models import Guideline, Item, Project
from .prepared import ID, Prepared
from .text_checks import text_problem

MAX_INSTRUCTIONS_CHARS = 20_000
MAX_DEFINITION_CHARS = 2_000
MAX_EXAMPLES_PER_GRADE = 5
SAFE_URL_SCHEMES = {"http", "https", "mailto"}
_ALLOWED_TAGS = {
    "a", "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "img", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
# "commonmark" with raw HTML off: <script> in the source is shown as text, not passed through.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(text: str) -> str:
    """Safe HTML for a markdown text written by a lead (raw HTML is escaped, links restricted)."""
    html = _MARKDOWN.render(text or "")
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=SAFE_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


# --- selectors ------------------------------------------------------------------------------


def current_guideline(*, project: Project) -> Guideline | None:
    return Guideline.objects.filter(project=project).order_by("-version").first()


# The annotator's hot path (next task, submit) needs only the version's id and number.
_CURRENT_VERSION = Prepared(
    lambda project: (
        Guideline.objects.filter(project_id=project)
        .order_by("-version")
        .values_list("pk", "version")[:1]
    ),
    project=ID,
)
_VERSION = Prepared(
    lambda project, version: Guideline.objects.filter(
        project_id=project, version=version
    ).values_list("pk", "version")[:1],
    project=ID,
    version=ID,
)


def with_current_guideline(queryset: QuerySet, *, project_id: str = "pk") -> QuerySet:
    """Annotate each row with its project's current guideline, id and version (`guideline_now_id`,
    `guideline_now_version`; None when none is written), so that the annotator's calls read it
    with the project instead of asking again."""
    current = Guideline.objects.filter(project_id=OuterRef(project_id)).order_by("-version")
    return queryset.annotate(
        guideline_now_id=Subquery(current.values("pk")[:1]),
        guideline_now_version=Subquery(current.values("version")[:1]),
    )


GUIDELINE_NOW = ("guideline_now_id", "guideline_now_version")


def _current(project: Project) -> tuple[int, int] | None:
    """(id, version) of the current guideline: as read with the project, else read now."""
    if not hasattr(project, "guideline_now_id"):
        return _CURRENT_VERSION.first(project=project.pk)
    if project.guideline_now_id is None:
        return None
    return project.guideline_now_id, project.guideline_now_version


def current_guideline_version(*, project: Project) -> int | None:
    """The number of the project's current guideline version (None: none written)."""
    row = _current(project)
    return row[1] if row else None


@dataclass(frozen=True)
class GradeGuide:
    grade: int
    name: str
    definition: str
    examples: list[dict]


def grade_guides(*, project: Project, guideline: Guideline | None) -> list[GradeGuide]:
    """Each grade of the project's scale with its definition and example items (title, snippet).

    Grades the guideline does not cover (the scale grew since) get an empty definition; example ids
    that no longer name an item are left out.
    """
    rows = list(guideline.grades) if guideline else []
    wanted = {ext for row in rows for ext in (row.get("examples") or [])}
    items = {
        item.external_id: item
        for item in Item.objects.filter(project=project, external_id__in=wanted).select_related(
            "query"
        )
    }
    guides = []
    for grade, name in enumerate(project.grade_names):
        row = rows[grade] if grade < len(rows) else {}
        examples = [
            {
                "id": items[ext].external_id,
                "title": items[ext].title or items[ext].external_id,
                "modality": items[ext].modality,
                "query": items[ext].query.text,
                "snippet": Truncator(items[ext].text).chars(200),
                "image_url": items[ext].image.url if items[ext].has_image else None,
            }
            for ext in row.get("examples") or []
            if ext in items
        ]
        guides.append(GradeGuide(grade, name, row.get("definition", ""), examples))
    return guides


def guideline_payload(*, project: Project, guideline: Guideline | None) -> dict | None:
    """What the judging page shows beside every task (JSON-safe; HTML already sanitised)."""
    if guideline is None:
        return None
    return {
        "version": guideline.version,
        "updated_at": guideline.created_at.isoformat(),
        "instructions_html": render_markdown(guideline.instructions),
        "grades": [
            {"grade": g.grade, "name": g.name, "definition": g.definition, "examples": g.examples}
            for g in grade_guides(project=project, guideline=guideline)
        ],
    }


def guideline_for_judgment(*, project: Project, version: int | None) -> tuple[int, int] | None:
    """(id, version) of the guideline a judgment is given under: the version the client says it
    showed, else the current one. A version the project does not have is refused (a client must
    not invent one)."""
    current = _current(project)
    if version is None or (current and current[1] == version):
        return current
    row = _VERSION.first(project=project.pk, version=version)
    if row is None and version is not None:
        raise PagewiseError(
            f"This project has no guideline version {version}.",
            fields={"guideline_version": ["unknown version"]},
        )
    return row


# --- services -------------------------------------------------------------------------------


def save_guideline(
    *, project: Project, instructions: str, grades: list[dict], created_by
) -> tuple[Guideline, bool]:
    """Store the lead's guidelines as a new version; (guideline, created).

    `grades` holds one {"definition", "examples"} per grade of the project's scale, examples being
    item external ids of this project. Saving what the current version already says stores
    nothing. Locks: the project row, so that two saves cannot both take the same version number.
    """
    problems: dict[str, list[str]] = {}
    instructions = (instructions or "").replace("\r\n", "\n")
    if len(instructions) > MAX_INSTRUCTIONS_CHARS:
        problems["instructions"] = [f"at most {MAX_INSTRUCTIONS_CHARS} characters"]
    elif reason := text_problem(instructions):
        problems["instructions"] = [reason]
    if len(grades) != len(project.grade_names):
        raise PagewiseError(
            f"Give one definition per grade ({len(project.grade_names)} grades).",
            fields={"grades": ["one entry per grade"]},
        )
    cleaned: list[dict] = []
    wanted: set[str] = set()
    for grade, row in enumerate(grades):
        definition = str(row.get("definition") or "").replace("\r\n", "\n").strip()
        examples = [str(e).strip() for e in row.get("examples") or [] if str(e).strip()]
        examples = list(dict.fromkeys(examples))
        if len(definition) > MAX_DEFINITION_CHARS:
            problems[f"definition_{grade}"] = [f"at most {MAX_DEFINITION_CHARS} characters"]
        elif reason := text_problem(definition):
            problems[f"definition_{grade}"] = [reason]
        if len(examples) > MAX_EXAMPLES_PER_GRADE:
            problems[f"examples_{grade}"] = [f"at most {MAX_EXAMPLES_PER_GRADE} example items"]
        elif any(text_problem(e) or len(e) > 200 for e in examples):
            problems[f"examples_{grade}"] = ["not an item id"]
        wanted.update(examples)
        cleaned.append({"definition": definition, "examples": examples})
    known = set(
        Item.objects.filter(project=project, external_id__in=wanted).values_list(
            "external_id", flat=True
        )
    )
    for grade, row in enumerate(cleaned):
        missing = [e for e in row["examples"] if e not in known]
        if missing and f"examples_{grade}" not in problems:
            problems[f"examples_{grade}"] = [f"no item {', '.join(missing[:3])} in this project"]
    if problems:
        raise PagewiseError("The guidelines were not saved; see the fields.", fields=problems)
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        current = current_guideline(project=project)
        if current and current.instructions == instructions and current.grades == cleaned:
            return current, False
        guideline = Guideline.objects.create(
            project=project,
            version=(current.version + 1) if current else 1,
            instructions=instructions,
            grades=cleaned,
            created_by=created_by,
        )
    return guideline, True
