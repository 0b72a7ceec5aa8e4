"""HTML pages of the project lead (settings, members, import, dashboard, review) and the data
scientist (exports). Views parse input, call one function of web/dashboard.py or
web/exports.py, and render; every user error becomes a message on the page, never a 500.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from active_selection import calibration_check, recommendation
from active_selection.calibration_check import calibration_card
from active_selection.recommendation import (
    DEFAULT_MINUTES,
    MAX_MINUTES,
    queue_project_simulation,
    report_status,
)
from active_selection.selectors import ANSWER_AGAIN, GRADE_REST
from active_selection.services import plan_rest_pages, project_search_share
from active_selection.strategies import CALIBRATED_STRATEGIES, CALIBRATION_SHARE, calibration_share
from labeling import errors, import_runs, overlap, selectors
from labeling.assignment import let_annotators_answer_again
from labeling.models import BudgetPolicy, ImportRun, Project, Role, Strategy, VlmMode
from labeling.services import SETTINGS_FIELDS, update_project_settings
from ranking.services import active_version
from ranking.vlm_scoring import latest_run

from . import dashboard, exports
from .api_lead import ProjectSettingsSerializer
from .exports import export_response
from .simulation_card import settings_card

LEAD_ONLY = (Role.LEAD,)
READERS = (Role.LEAD, Role.SCIENTIST)


def _project(request, slug: str, roles: tuple[str, ...]) -> Project:
    try:
        return selectors.project_for(user=request.user, slug=slug, roles=roles)
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
    except errors.PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from None


def _context(request, project: Project, section: str, **extra) -> dict:
    role = selectors.role_of(user=request.user, project=project)
    return {"project": project, "section": section, "role": role, **extra}


# --- settings ---------------------------------------------------------------------------------


def _settings_initial(project: Project) -> dict:
    return {name: getattr(project, name) for name in SETTINGS_FIELDS}


def _vlm_card(project: Project) -> dict:
    """What the settings page says of the vision-language scorer: its model and latest run."""
    directory = project.vlm_model_dir
    run = latest_run(project=project)
    percent = 0
    if run is not None and run.items_total:
        percent = round(100 * run.items_done / run.items_total)
    return {
        "directory": directory,
        "is_present": bool(directory and directory.is_dir()),
        "run": run,
        "percent": percent,
    }


@login_required
@require_http_methods(["GET", "POST"])
def settings_page(request, slug: str):
    project = _project(request, slug, LEAD_ONLY)
    values = _settings_initial(project)
    field_errors: dict = {}
    if request.method == "POST":
        # A field the form did not send keeps its value (a form from before a setting existed).
        data = {
            name: request.POST[name].strip() for name in SETTINGS_FIELDS if name in request.POST
        }
        if "grade_names" in data:
            data["grade_names"] = [
                line.strip() for line in data["grade_names"].splitlines() if line.strip()
            ]
        values = {**values, **data}
        serializer = ProjectSettingsSerializer(project, data=data, partial=True)
        if serializer.is_valid():
            before = overlap.overlap_of(project)
            try:
                update_project_settings(project=project, changes=serializer.validated_data)
            except errors.PagewiseError as exc:
                field_errors = exc.fields
            else:
                messages.success(request, "Settings saved.")
                if overlap.overlap_of(project) != before:
                    messages.info(request, overlap.describe_open_work(project=project))
                return redirect("lead-settings", slug=project.slug)
        else:
            field_errors = {k: [str(e) for e in v] for k, v in serializer.errors.items()}
        if field_errors:
            messages.error(request, "Some settings are not valid; nothing was saved.")
    if isinstance(values["grade_names"], list):
        values["grade_names"] = "\n".join(values["grade_names"])
    return render(
        request,
        "labeling/lead/settings.html",
        _context(
            request, project, "settings",
            values=values, errors=field_errors, strategies=Strategy.choices,
            budget_policies=BudgetPolicy.choices, vlm_modes=VlmMode.choices,
            simulation=settings_card(project=project), vlm=_vlm_card(project),
            confirm_apply=request.GET.get("apply", ""),
            calibration=calibration_card(project=project),
            calibration_percent=CALIBRATION_SHARE * 100,
            calibrated_strategies=[
                label for value, label in Strategy.choices if value in CALIBRATED_STRATEGIES
            ],
        ),
    )  # fmt: skip


# --- simulate before spending (a card of the settings page) ------------------------------------


def _to_simulation(project: Project):
    return redirect(reverse("lead-settings", args=[project.slug]) + "#simulate")


@login_required
@require_POST
def simulation_run(request, slug: str):
    project = _project(request, slug, LEAD_ONLY)
    raw = request.POST.get("minutes", "").strip() or str(DEFAULT_MINUTES)
    try:
        minutes = int(raw)
    except ValueError:
        minutes = 0
    if not 1 <= minutes <= MAX_MINUTES:
        messages.error(
            request, f"The time budget is a whole number of minutes from 1 to {MAX_MINUTES}."
        )
        return _to_simulation(project)
    try:
        report = queue_project_simulation(
            project=project, requested_by=request.user, minutes=minutes
        )
    except errors.PagewiseError as exc:
        messages.error(request, exc.message)
    else:
        plan = report.estimated["plan"]
        messages.success(
            request,
            f"Simulation queued: {plan['seeds']} seeds, {plan['runs']} runs, about "
            f"{plan['expected_minutes']} minutes once a worker takes it.",
        )
    return _to_simulation(project)


@login_required
@require_POST
def calibration_action(request, slug: str):
    """Plan the calibration comparisons on gold items, or measure the offsets from the answers."""
    project = _project(request, slug, LEAD_ONLY)
    action = request.POST.get("action", "")
    missing = calibration_check.nothing_to_measure(project)
    if action not in ("plan", "measure"):
        messages.error(request, "Unknown action: plan the comparisons or measure the offsets.")
    elif missing:
        messages.error(request, missing)
    elif action == "plan":
        created = calibration_check.plan_calibration(project=project)
        if created:
            messages.success(
                request,
                f"{created} calibration comparison{'s' if created != 1 else ''} planned; "
                "annotators get them first.",
            )
        else:
            messages.error(
                request,
                "No comparison was planned: every pair is planned already, or the budget left "
                "pays for none.",
            )
    else:
        calibration_check.measure_calibration(project=project)
        messages.success(request, "Calibration measured from the answered comparisons.")
    return redirect(reverse("lead-settings", args=[project.slug]) + "#calibration")


@login_required
@require_POST
def simulation_apply(request, slug: str):
    project = _project(request, slug, LEAD_ONLY)
    try:
        report_id = int(request.POST.get("report", ""))
    except ValueError:
        messages.error(request, "Choose the simulation whose recommendation to apply.")
        return _to_simulation(project)
    if request.POST.get("confirm") != "yes":
        # First press: the card shows what will change and asks to confirm.
        return redirect(
            reverse("lead-settings", args=[project.slug]) + f"?apply={report_id}#simulate"
        )
    try:
        report = recommendation.report_of(project=project, report_id=report_id)
        strategy = recommendation.apply_recommendation(project=project, report=report)
    except errors.PagewiseError as exc:
        messages.error(request, exc.message)
    else:
        label = Strategy(strategy).label
        messages.success(request, f"The project now uses {label}; new pages follow it.")
    return _to_simulation(project)


@login_required
@require_GET
def simulation_status(request, slug: str):
    """The latest simulation's progress, polled by the settings page while it runs."""
    project = _project(request, slug, LEAD_ONLY)
    return JsonResponse(report_status(project=project))


# --- members ----------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def members_page(request, slug: str):
    project = _project(request, slug, LEAD_ONLY)
    if request.method == "POST":
        action = request.POST.get("action", "add")
        username = request.POST.get("username", "").strip()
        role = request.POST.get("role", "")
        try:
            if action == "add":
                if not username:
                    raise errors.PagewiseError("Enter the username of an existing user.")
                dashboard.add_existing_member(project=project, username=username, role=role)
                messages.success(request, f"Added {username} as {role}.")
            elif action == "change":
                dashboard.change_role(project=project, username=username, role=role)
                messages.success(request, f"{username} is now {role}.")
            elif action == "remove":
                dashboard.remove_member(project=project, username=username)
                messages.success(request, f"Removed {username} from the project.")
            else:
                raise errors.PagewiseError(f"Unknown action '{action}'.")
        except errors.PagewiseError as exc:
            messages.error(request, exc.message)
        return redirect("lead-members", slug=project.slug)
    return render(
        request,
        "labeling/lead/members.html",
        _context(
            request, project, "members",
            members=dashboard.members_of(project=project), roles=Role.choices,
        ),
    )  # fmt: skip


# --- import -----------------------------------------------------------------------------------


def _import_limits() -> dict:
    return {
        "bytes": settings.PAGEWISE_MAX_IMPORT_BYTES,
        "line_bytes": settings.PAGEWISE_MAX_IMPORT_LINE_BYTES,
        "lines": settings.PAGEWISE_MAX_IMPORT_LINES,
    }


@login_required
@require_http_methods(["GET", "POST"])
def import_page(request, slug: str):
    """The upload form and the project's recent imports; an upload is queued for a worker and
    the browser goes to the run's page, which follows its progress."""
    project = _project(request, slug, LEAD_ONLY)
    failure = None
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            failure = {"message": "Choose a .jsonl or .zip file to upload.", "problems": []}
            status = 400
        else:
            try:
                run = import_runs.queue_import(project=project, upload=upload, user=request.user)
            except errors.PagewiseError as exc:
                failure = {"message": exc.message, "problems": []}
                status = 400
            else:
                return redirect("lead-import-run", slug=project.slug, run_id=run.pk)
    runs = ImportRun.objects.filter(project=project).select_related("created_by")[:50]
    return render(
        request,
        "labeling/lead/import.html",
        _context(request, project, "import", failure=failure, runs=runs, limits=_import_limits()),
        status=status,
    )


def _import_run(request, slug: str, run_id: int) -> ImportRun:
    project = _project(request, slug, LEAD_ONLY)
    run = project.imports.select_related("project", "created_by").filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No import {run_id} in this project.")
    return run


@login_required
@require_GET
def import_run_page(request, slug: str, run_id: int):
    """One import: its status, rows read and problems so far (kept current by polling)."""
    run = _import_run(request, slug, run_id)
    return render(
        request,
        "labeling/lead/import_run.html",
        _context(
            request, run.project, "import",
            run=run, run_json=import_runs.run_status(run), limits=_import_limits(),
        ),
    )  # fmt: skip


@login_required
@require_GET
def import_run_status(request, slug: str, run_id: int):
    return JsonResponse(import_runs.run_status(_import_run(request, slug, run_id)))


@login_required
@require_POST
def import_run_cancel(request, slug: str, run_id: int):
    run = _import_run(request, slug, run_id)
    try:
        import_runs.request_cancel(run=run)
        messages.info(request, "Cancelling the import: nothing of it will be stored.")
    except errors.PagewiseError as exc:
        messages.error(request, exc.message)
    return redirect("lead-import-run", slug=run.project.slug, run_id=run.pk)


# --- dashboard and review ---------------------------------------------------------------------


@login_required
def dashboard_page(request, slug: str):
    project = _project(request, slug, READERS)  # scientists read it too; nothing on it writes
    summary = dashboard.dashboard_summary(project=project)
    budget = summary["budget"]
    percent_spent = float(budget["spent"] / budget["budget"] * 100) if budget["budget"] else None
    needed = max(project.retrain_threshold - summary["labels_since_last_version"], 0)
    agreement = summary["agreement"]
    by_annotator = {row["annotator"]: row for row in agreement["per_annotator"]}
    for row in summary["throughput"]:
        mine = by_annotator.get(row["annotator"], {})
        row["grade_alpha"] = mine.get("grade_alpha")
        share = mine.get("compare_agreement")
        row["compare_percent"] = None if share is None else share * 100
    overall = agreement["compare_agreement"]
    share = project_search_share(project=project)  # what per_query keeps for the searches
    # What iso_anchor and top_p_cal keep from their pages for calibration comparisons, any policy.
    calibration = calibration_share(project.strategy, modalities=len(project.modalities))
    return render(
        request,
        "labeling/lead/dashboard.html",
        _context(
            request, project, "dashboard",
            summary=summary, charts=dashboard.dashboard_charts(summary),
            percent_spent=percent_spent, labels_needed=needed, zero=Decimal("0"),
            compare_percent=None if overall is None else overall * 100,
            search_share=share * 100, search_reserve=budget["budget"] * Decimal(str(share)),
            calibration_share=calibration * 100,
            calibration_reserve=budget["budget"] * Decimal(str(calibration)),
        ),
    )  # fmt: skip


@login_required
@require_POST
def dashboard_resolve(request, slug: str):
    """The lead's answer to the dashboard's "why no task": let the same annotators answer tasks
    nobody else can take, or spend the rest of the budget on grades."""
    project = _project(request, slug, LEAD_ONLY)
    action = request.POST.get("action", "")
    if action == ANSWER_AGAIN:
        reopened = let_annotators_answer_again(project=project)
        messages.success(
            request,
            f"{reopened} task{'s' if reopened != 1 else ''} may now go to any annotator, also one "
            "who was excluded from it or skipped it.",
        )
    elif action == GRADE_REST:
        planned = plan_rest_pages(project=project)
        if planned:
            messages.success(
                request, f"{planned} page{'s' if planned != 1 else ''} of ungraded items planned."
            )
        else:
            messages.error(
                request, "No page was planned: the budget left pays for no page of ungraded items."
            )
    else:
        messages.error(request, "Unknown action: choose one of the buttons on the dashboard.")
    return redirect("lead-dashboard", slug=project.slug)


# --- exports (data scientists and leads) ------------------------------------------------------


@login_required
def exports_page(request, slug: str):
    project = _project(request, slug, READERS)
    return render(
        request,
        "labeling/scientist/exports.html",
        _context(
            request, project, "exports",
            formats=exports.FORMATS.values(), version=active_version(project=project),
        ),
    )  # fmt: skip


@login_required
def export_download(request, slug: str, format_name: str):
    project = _project(request, slug, READERS)
    try:
        return export_response(exports.prepare_export(project=project, name=format_name))
    except errors.NotFound as exc:
        raise Http404(exc.message) from None
