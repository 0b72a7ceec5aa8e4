"""python manage.py loadtest --annotators 50 --seconds 60 --url http://127.0.0.1:8000

Simulated annotators over HTTP against a running server (gunicorn + the same database), each with
its own account and token: they fetch and submit tasks, some retry a submit with the same UUID,
some abandon their lease. Afterwards the database is checked: no task judged by two annotators,
every acknowledged judgment stored exactly once, budget spent equal to the sum of judgment costs.
Bounded in count and time, and refused for anything but a loopback address.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import statistics
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.test.utils import override_settings
from rest_framework.authtoken.models import Token

from active_selection.services import create_page_tasks
from labeling.benchmarks import (
    bulk_queries_and_items,
    generated_records,
    refresh_planner_statistics,
)
from labeling.imports import import_project_file
from labeling.models import Judgment, Membership, Project, Role, Task
from labeling.money import exact_sum
from labeling.selectors import budget_status

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_ANNOTATORS = 200
MAX_SECONDS = 600
MAX_TASKS = 1_000_000


def reference_loop_ms(rounds: int = 3) -> float:
    """This machine's speed as one figure: the best of `rounds` timings of a fixed pure-Python
    loop (2,000,000 additions), taken before the run. The load test is CPU-bound on a small machine,
    so figures from two machines compare only alongside it (README, Scale)."""
    best = math.inf
    for _ in range(rounds):
        started, total = time.perf_counter(), 0
        for i in range(2_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def machine_cpu() -> dict[str, int] | None:
    """The machine's CPU time so far, in clock ticks, from /proc/stat (None where there is none):
    busy (user, nice, system, interrupts), stolen by the hypervisor, and all of it."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(n) for n in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    busy = user + nice + system + irq + softirq
    return {"busy": busy, "steal": steal, "total": busy + idle + iowait + steal}


def cpu_figures(before: dict | None, after: dict | None, judgments: int) -> dict:
    """What the run cost the whole machine (server, database and this client together): CPU
    milliseconds per judgment, the share of the machine busy and the share stolen. Unlike the
    throughput of annotators who judge as fast as they are answered, the CPU a judgment costs
    compares across runs whose machine was busier or quieter."""
    if before is None or after is None:
        return {}
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    busy, total = after["busy"] - before["busy"], max(after["total"] - before["total"], 1)
    return {
        "cpu_ms_per_judgment": round(busy * tick_ms / judgments, 2) if judgments else None,
        "busy_percent": round(100 * busy / total, 1),
        "steal_percent": round(100 * (after["steal"] - before["steal"]) / total, 1),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": round(statistics.median(ordered), 2), "p95": at(0.95), "p99": at(0.99)}


# An annotator who walks away mid-task leaves their lease to expire; the next person takes the
# seat with their own account, so the run keeps its number of annotators to the end. One in a
# hundred tasks is walked away from: a seat judging 100 tasks a second needs one account a second.
# A seat faster than that (one annotator alone, 150-270 a second) runs out of accounts and then
# stops walking away rather than stopping.
def accounts_per_seat(seconds: float) -> int:
    return 8 + math.ceil(seconds)


class Annotator(threading.Thread):
    """One seat: an annotator judging as fast as the server answers, with the seat's next
    account taking over when one walks away."""

    def __init__(self, *, host, port, tokens, slug, deadline, seed, results, lock):
        super().__init__(daemon=True)
        self.host, self.port, self.tokens, self.slug = host, port, list(tokens), slug
        self.token = self.tokens.pop(0)
        self.deadline, self.rng, self.results, self.lock = (
            deadline,
            random.Random(seed),
            results,
            lock,
        )

    def call(self, path: str, body: dict) -> tuple[int, dict, float]:
        started = time.perf_counter()
        self.conn.request(
            "POST", path, body=json.dumps(body),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, (json.loads(data) if data else {}), elapsed

    def run(self) -> None:
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        next_ms, submit_ms, acked, errors, abandoned, retried = [], [], [], 0, 0, 0
        statuses: dict[str, int] = {}  # every answer that was not a success, by HTTP status

        def failed(status) -> None:
            statuses[str(status)] = statuses.get(str(status), 0) + 1

        unanswered = []  # submits sent whose answer never came (a killed server cut it)
        while time.monotonic() < self.deadline:
            body = None
            try:
                status, payload, ms = self.call(f"/api/projects/{self.slug}/tasks/next/", {})
                next_ms.append(ms)
                task = payload.get("task") if status == 200 else None
                if task is None:
                    errors += status != 200
                    if status != 200:
                        failed(status)
                    time.sleep(0.2)
                    continue
                # walks away mid-task, the lease left to expire, if an account is left for the seat
                if self.rng.random() < 0.01 and self.tokens:
                    abandoned += 1
                    self.token = self.tokens.pop(0)
                    continue
                body = {
                    "client_uuid": str(uuid.uuid4()),
                    "grades": {str(item["id"]): self.rng.randint(0, 4) for item in task["items"]},
                    "duration_ms": self.rng.randint(1500, 9000),
                }
                status, _, ms = self.call(task["submit_url"], body)
                submit_ms.append(ms)
                if status in (200, 201):
                    acked.append((body["client_uuid"], task["id"], len(task["items"])))
                    if self.rng.random() < 0.1:  # a flaky network: the client sends it again
                        again, _, ms = self.call(task["submit_url"], body)
                        submit_ms.append(ms)
                        retried += 1
                        errors += again not in (200, 201)
                        if again not in (200, 201):
                            failed(again)
                else:
                    errors += 1
                    failed(status)
            except (OSError, http.client.HTTPException, ValueError):
                if body is not None and not (acked and acked[-1][0] == body["client_uuid"]):
                    unanswered.append((body["client_uuid"], task["id"], len(task["items"])))
                errors += 1
                failed("no answer")
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        with self.lock:
            self.results["next_ms"] += next_ms
            self.results["submit_ms"] += submit_ms
            self.results["acked"] += acked
            self.results["unanswered"] += unanswered
            self.results["errors"] += errors
            for status, n in statuses.items():
                by_status = self.results.setdefault("errors_by_status", {})
                by_status[status] = by_status.get(status, 0) + n
            self.results["abandoned"] += abandoned
            self.results["retried"] += retried


class Command(BaseCommand):
    help = "Load-test the annotator API over HTTP with simulated annotators; check nothing is lost."

    def add_arguments(self, parser):
        parser.add_argument("--annotators", type=int, default=50)
        parser.add_argument("--seconds", type=float, default=60)
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--queries", type=int, default=3000, help="pages of work created for the run"
        )
        parser.add_argument(
            "--tasks",
            type=int,
            default=None,
            help="instead of --queries: this many one-item tasks (one text item per query, "
            "strategy full, page_size 2: one task is one grade), bulk-inserted",
        )
        parser.add_argument(
            "--project",
            default=None,
            help="reuse this project's open tasks (made by an earlier run) instead of creating one",
        )
        parser.add_argument("--json", dest="json_path", type=Path)

    def handle(
        self, *args, annotators, seconds, url, queries, tasks, project, json_path, **options
    ):
        target = urlparse(url)
        if target.hostname not in LOOPBACK:
            raise CommandError(
                "loadtest only runs against a loopback address (127.0.0.1, localhost, ::1)."
            )
        if not 1 <= annotators <= MAX_ANNOTATORS or not 0 < seconds <= MAX_SECONDS:
            raise CommandError(f"--annotators 1..{MAX_ANNOTATORS}, --seconds up to {MAX_SECONDS}.")
        if tasks is not None and not 1 <= tasks <= MAX_TASKS:
            raise CommandError(f"--tasks 1..{MAX_TASKS}.")
        if project is not None:
            project = Project.objects.filter(slug=project).first()
            if project is None:
                raise CommandError("No such project: give the slug an earlier run printed.")
        elif tasks is None:
            project = self.make_project(annotators, queries)
        else:
            project = self.make_one_item_tasks(tasks)
        self.stdout.write(f"Project {project.slug}")
        machine = {"cpu_count": os.cpu_count(), "reference_loop_ms": reference_loop_ms()}
        self.stdout.write(
            f"Machine: {machine['cpu_count']} cores, reference loop {machine['reference_loop_ms']} ms "
            "(lower is faster; compare figures across machines by it)"
        )
        tokens, users = self.make_annotators(project, annotators * accounts_per_seat(seconds))
        results = {
            "next_ms": [],
            "submit_ms": [],
            "acked": [],
            "unanswered": [],
            "errors": 0,
            "abandoned": 0,
            "retried": 0,
        }
        lock = threading.Lock()
        deadline = time.monotonic() + seconds
        cpu_before, started = machine_cpu(), time.perf_counter()
        threads = [
            Annotator(host=target.hostname, port=target.port or 80, slug=project.slug,
                      tokens=tokens[i::annotators], deadline=deadline, seed=i, results=results,
                      lock=lock)
            for i in range(annotators)
        ]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed, cpu_after = time.perf_counter() - started, machine_cpu()
        figures = self.verify(project, users, results, elapsed)
        machine |= cpu_figures(cpu_before, cpu_after, figures["judgments"])
        figures["machine"] = machine
        self.stdout.write(
            f"{figures['judgments']} judgments in {elapsed:.1f} s by {annotators} annotators: "
            f"{figures['judgments_per_second']} judgments/s; next task p50/p95/p99 "
            f"{figures['next_task_ms']['p50']}/{figures['next_task_ms']['p95']}/{figures['next_task_ms']['p99']} ms; "
            f"submit {figures['submit_ms']['p50']}/{figures['submit_ms']['p95']}/{figures['submit_ms']['p99']} ms"
        )
        self.stdout.write(
            f"double assignments {figures['double_assignments']}, lost {figures['lost_judgments']}, "
            f"duplicated {figures['duplicated_judgments']}, budget mismatch {figures['budget_mismatch']}; "
            f"{results['retried']} retried submits, {results['abandoned']} abandoned leases, {results['errors']} errors"
        )
        if machine.get("cpu_ms_per_judgment"):
            self.stdout.write(
                f"Machine CPU: {machine['cpu_ms_per_judgment']} ms per judgment (server, database "
                f"and this client), {machine['busy_percent']}% busy, "
                f"{machine['steal_percent']}% stolen"
            )
        if json_path:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(figures, indent=2))
        if (
            figures["double_assignments"]
            or figures["lost_judgments"]
            or figures["duplicated_judgments"]
            or figures["budget_mismatch"]
        ):
            raise CommandError("Consistency check failed: see the figures above.")

    def make_project(self, annotators: int, queries: int) -> Project:
        project = Project.objects.create(
            slug=f"loadtest-{int(time.time())}", name="Load test", modalities=["text", "image"],
            strategy="top_p", page_size=6, top_band=3, budget=Decimal("1000000"),
        )  # fmt: skip
        records = list(generated_records(items=queries * 6, items_per_query=6))
        import io

        data = io.BytesIO("".join(json.dumps(r) + "\n" for r in records).encode())
        with override_settings(PAGEWISE_EMBED_AFTER_IMPORT=False):
            import_project_file(project=project, file=data, filename="loadtest.jsonl")
        create_page_tasks(project=project)
        refresh_planner_statistics()
        return project

    def make_one_item_tasks(self, tasks: int) -> Project:
        """The side-by-side workload: `tasks` queries of one text item, each page one task."""
        project = Project.objects.create(
            slug=f"loadtest-{int(time.time())}", name="Load test (one-item tasks)",
            modalities=["text"], strategy="full", page_size=2, budget=Decimal("100000000"),
        )  # fmt: skip
        bulk_queries_and_items(project=project, items=tasks, items_per_query=1)
        create_page_tasks(project=project)
        refresh_planner_statistics()
        return project

    def make_annotators(self, project: Project, count: int) -> tuple[list[str], list]:
        run = int(time.time())  # a reused project gets new annotators each run
        users = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"{project.slug}-{run}-a{i}") for i in range(count)]
        )
        Membership.objects.bulk_create(
            [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users]
        )
        tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
        return [token.key for token in tokens], users

    def verify(self, project: Project, users: list, results: dict, elapsed: float) -> dict:
        """This run's annotators' judgments against what they were told; the project's spend
        against the sum of all its judgments (a reused project holds earlier runs' too)."""
        acked = results["acked"]
        ours = Judgment.objects.filter(project=project, annotator__in=users)
        stored = dict(ours.values_list("client_uuid", "task_id"))
        stored_uuids = {str(u) for u in stored}
        lost = sum(1 for client_uuid, _, _ in acked if client_uuid not in stored_uuids)
        per_uuid = ours.values("client_uuid").annotate(n=Count("pk"))
        duplicated = sum(row["n"] - 1 for row in per_uuid if row["n"] > 1)
        # A task needs one judgment here: a second one means two annotators held it at once.
        double = (
            Task.objects.filter(project=project)
            .annotate(n=Count("judgments"))
            .filter(n__gt=1)
            .count()
        )
        # Reconcile by client_uuid before calling anything a mismatch: a submit whose answer was
        # cut (server killed after the commit) is stored, and counts as acknowledged.
        late = [row for row in results["unanswered"] if row[0] in stored_uuids]
        expected_cost = sum(project.grade_cost * n for _, _, n in [*acked, *late])
        spent = budget_status(project=project)["spent"]
        summed = Judgment.objects.filter(project=project).aggregate(s=exact_sum("cost"))[
            "s"
        ] or Decimal("0")
        ours_summed = ours.aggregate(s=exact_sum("cost"))["s"] or Decimal("0")
        judgments = len(stored)
        return {
            "judgments": judgments,
            "judgments_per_second": round(judgments / elapsed, 2),
            "double_assignments": double,
            "lost_judgments": lost,
            "duplicated_judgments": duplicated,
            "budget_mismatch": int(spent != summed or ours_summed != expected_cost),
            "next_task_ms": percentiles(results["next_ms"]),
            "submit_ms": percentiles(results["submit_ms"]),
            "retried_submits": results["retried"],
            "abandoned_leases": results["abandoned"],
            "errors": results["errors"],
            "errors_by_status": results.get("errors_by_status", {}),
            "stored_without_answer": len(late),
            "project": project.slug,
        }
