"""The data browser (leads and data scientists): queries, then one query's items per modality in
upstream order with their grades, implied intervals and the judgments behind them."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labeling import errors, selectors
from labeling.models import Project, Query, Role, Split

from . import selectors as browse

QUERIES_PER_PAGE = 50
ITEMS_PER_PAGE = 100
READERS = (Role.LEAD, Role.SCIENTIST)


def _reader_project(request, slug: str) -> Project:
    try:
        return selectors.project_for(user=request.user, slug=slug, roles=READERS)
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def _context(request, project: Project, **extra) -> dict:
    role = selectors.role_of(user=request.user, project=project)
    return {"project": project, "section": "data", "role": role, **extra}


@login_required
@require_GET
def queries_page(request, slug: str):
    project = _reader_project(request, slug)
    # NUL cannot be searched for (PostgreSQL's text refuses it), nor typed: drop it.
    text = request.GET.get("q", "")[:200].replace("\x00", "")
    split = request.GET.get("split", "")
    status = request.GET.get("status", "")
    queries = browse.browse_queries(project=project, text=text, split=split, status=status)
    page = Paginator(queries, QUERIES_PER_PAGE).get_page(request.GET.get("page"))
    filters = {k: v for k, v in {"q": text, "split": split, "status": status}.items() if v}
    return render(
        request,
        "data_browser/queries.html",
        _context(
            request, project, page=page, rows=browse.query_rows(queries=list(page.object_list)),
            text=text, split=split, status=status, splits=Split.choices,
            statuses=browse.STATUSES, filters=urlencode(filters),
        ),
    )  # fmt: skip


@login_required
@require_GET
def query_page(request, slug: str, query_id: int):
    project = _reader_project(request, slug)
    query = Query.objects.filter(project=project, pk=query_id).first()
    if query is None:
        raise Http404(f"No query {query_id} in '{project.name}'.")
    only = request.GET.get("only", "")
    if only not in dict(browse.ITEM_FILTERS):
        only = ""
    page = Paginator(browse.query_items(query=query, only=only), ITEMS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = browse.item_rows(items=list(page.object_list))
    order = {name: i for i, name in enumerate(project.modalities)}
    by_modality: dict[str, list] = {}
    for row in sorted(
        rows, key=lambda r: (order.get(r.item.modality, len(order)), r.item.modality)
    ):
        by_modality.setdefault(row.item.modality, []).append(row)
    return render(
        request,
        "data_browser/query.html",
        _context(
            request, project, query=query, page=page, by_modality=by_modality, only=only,
            item_filters=browse.ITEM_FILTERS, searches=browse.query_searches(query=query),
            grade_names=project.grade_names, filters=urlencode({"only": only} if only else {}),
        ),
    )  # fmt: skip
