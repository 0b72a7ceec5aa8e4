"""All-or-nothing import of queries and items from a JSONL file or a zip (JSONL plus images).

Every line is checked first and each problem is collected with its line, field and reason; only
a file without problems is written, in one transaction. See README "Import format".
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import posixpath
import stat
import warnings
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from .errors import ImportCancelled, ImportFailed
from .models import ImportRun, ImportStatus, Item, Project, Query, Split
from .signals import announce, items_imported
from .text_checks import FORMULA_STARTS, MAX_DEPTH, external_id_problem, unstorable

MAX_PROBLEMS_SHOWN = 50
MAX_ID_LENGTH = 200
MAX_TITLE_LENGTH = 500
# What reading a damaged, encrypted or exotically compressed zip member raises.
ARCHIVE_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    RuntimeError,
    NotImplementedError,
    OSError,
)
ALLOWED_IMAGE_FORMATS = {"PNG", "JPEG", "GIF", "WEBP", "BMP"}
QUERY_FIELDS = {"type", "id", "text", "split"}
ITEM_FIELDS = {
    "type", "id", "query", "modality", "title", "text", "image",
    "upstream_score", "gold_grade", "metadata",
}  # fmt: skip


@dataclass(frozen=True)
class ImportProblem:
    line: int  # 1-based line of the JSONL file; 0 for the archive as a whole
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "archive"
        return f"{where}, field '{self.field}': {self.reason}"


@dataclass
class ImportResult:
    queries_created: int
    items_created: int
    images_stored: int
    # Zip members no line names: never read as images, never written to media; listed so that
    # a lead sees what was left out (the first MAX_PROBLEMS_SHOWN, and how many in all).
    ignored_members: list[str] = field(default_factory=list)
    ignored_members_total: int = 0


@dataclass(slots=True)
class _ParsedQuery:
    line: int
    external_id: str
    text: str
    split: str


@dataclass(slots=True)  # one per item is held until the store: no per-instance __dict__
class _ParsedItem:
    line: int
    external_id: str
    query_id: str
    modality: str
    title: str
    text: str
    image_path: str | None
    upstream_score: float | None
    gold_grade: int | None
    metadata: dict


@dataclass
class _Collector:
    problems: list[ImportProblem] = field(default_factory=list)
    total: int = 0

    def add(self, line: int, field_name: str, reason: str) -> None:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS_SHOWN:
            self.problems.append(ImportProblem(line, field_name, reason))


class ImportProgress:
    """What a running import tells whoever watches it; this default tells nobody, never cancels.

    `rows` is called every `every_rows` lines while the file is checked (outside any transaction,
    so a watcher may write progress in its own short transactions); `check_cancelled` between
    batches, also while storing, and raises ImportCancelled to roll everything back.
    """

    every_rows = 5000

    def rows(self, rows_read: int, problems: list[ImportProblem], total: int) -> None:
        pass

    def storing(self, rows_read: int) -> None:
        pass

    def check_cancelled(self) -> None:
        pass


class _Source:
    """The JSONL lines and (for a zip) the images of one upload."""

    def __init__(
        self,
        lines: Iterator[bytes],
        archive: zipfile.ZipFile | None,
        name: str = "",
        progress: ImportProgress | None = None,
    ) -> None:
        self.lines = lines
        self.progress = progress or ImportProgress()
        self.rows_read = 0
        self.name = name  # of the JSONL file inside the archive
        self.archive = archive
        self.members: dict[str, zipfile.ZipInfo] = {}
        if archive is not None:
            self.members = {info.filename: info for info in archive.infolist() if not info.is_dir()}


def import_project_file(
    *,
    project: Project,
    file: IO[bytes] | Path | str,
    filename: str = "",
    user=None,
    run: ImportRun | None = None,
    progress: ImportProgress | None = None,
) -> ImportResult:
    """Validate the whole upload, then store it in one transaction; raise ImportFailed otherwise.

    With `run` (a queued ImportRun being worked on), that run is marked succeeded in the same
    transaction as the rows; without, a succeeded run is recorded (the synchronous CLI path).
    """
    if isinstance(file, (str, Path)):
        filename = filename or Path(file).name
        with open(file, "rb") as handle:
            return import_project_file(
                project=project, file=handle, filename=filename, user=user, run=run,
                progress=progress,
            )  # fmt: skip

    progress = progress or ImportProgress()
    problems = _Collector()
    archive = _open_archive(file, filename, problems)
    if problems.total:
        raise ImportFailed(problems.problems, total=problems.total)
    if archive is not None:
        jsonl_name = _check_archive(archive, problems)
        if problems.total:
            raise ImportFailed(problems.problems, total=problems.total)
        try:
            # ZipExtFile.readline is pure Python (7x slower on short lines): buffer it in C.
            lines = bounded_lines(io.BufferedReader(archive.open(jsonl_name), buffer_size=1 << 20))
        except ARCHIVE_READ_ERRORS as exc:
            raise ImportFailed(
                [ImportProblem(0, jsonl_name, f"cannot be read from the archive ({exc})")], total=1
            ) from None
    else:
        file.seek(0)
        lines, jsonl_name = bounded_lines(file), ""
    source = _Source(lines, archive, jsonl_name, progress)

    queries, items = _parse(source, project, problems)
    progress.rows(source.rows_read, problems.problems, problems.total)
    progress.check_cancelled()
    images = _check_images(source, items, problems)
    if problems.total:
        raise ImportFailed(problems.problems, total=problems.total)
    if not queries and not items:
        raise ImportFailed([ImportProblem(0, "file", "the file holds no records")], total=1)
    ignored = _unnamed_members(source, items)
    result = ImportResult(
        len(queries), len(items), len(images), ignored[:MAX_PROBLEMS_SHOWN], len(ignored)
    )
    progress.storing(source.rows_read)
    _store(
        project, queries, items, images, result,
        filename=filename, user=user, run=run, rows_read=source.rows_read, progress=progress,
    )  # fmt: skip
    return result


def _unnamed_members(source: _Source, items: dict[str, _ParsedItem]) -> list[str]:
    named = {posixpath.normpath(i.image_path) for i in items.values() if i.image_path}
    return sorted(name for name in source.members if name != source.name and name not in named)


# --- reading ----------------------------------------------------------------------------------

LINE_TOO_LONG = b"<line too long>"  # a sentinel compared by identity, never parsed
_SKIP_CHUNK = 1 << 20


def bounded_lines(stream, limit: int | None = None) -> Iterator[bytes]:
    """The lines of a binary stream, holding at most `limit` bytes of one line in memory.

    A line longer than `limit` (its newline not counted) is yielded as LINE_TOO_LONG, and the
    rest of it is read in 1 MiB pieces and dropped, so a file of one 500 MiB line costs no more
    memory than a short one.
    """
    limit = settings.PAGEWISE_MAX_IMPORT_LINE_BYTES if limit is None else limit
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while True:  # the line goes on: skip to its end
            rest = stream.readline(_SKIP_CHUNK)
            if not rest or rest.endswith(b"\n"):
                break
        yield LINE_TOO_LONG


def _open_archive(file: IO[bytes], filename: str, problems: _Collector) -> zipfile.ZipFile | None:
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    if size > settings.PAGEWISE_MAX_IMPORT_BYTES:
        problems.add(
            0,
            "file",
            f"the upload is {size} bytes; the limit is {settings.PAGEWISE_MAX_IMPORT_BYTES}",
        )
        return None
    looks_zipped = filename.lower().endswith(".zip") or zipfile.is_zipfile(file)
    file.seek(0)
    if not looks_zipped:
        return None
    try:
        return zipfile.ZipFile(file)
    except zipfile.BadZipFile as exc:
        problems.add(0, "file", f"not a readable zip archive ({exc})")
        return None
    except UnicodeDecodeError:  # a member name flagged as UTF-8 that is not
        problems.add(0, "file", "a member's name is marked UTF-8 but is not valid UTF-8")
        return None


def _is_unsafe_member(name: str, info: zipfile.ZipInfo) -> str | None:
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute or Windows-style path"
    if ".." in name.split("/"):
        return "path leaves the archive"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic links are not accepted"
    return None


def _check_archive(archive: zipfile.ZipFile, problems: _Collector) -> str:
    total_size = 0
    jsonl_names = []
    for info in archive.infolist():
        reason = _is_unsafe_member(info.filename, info)
        if reason:
            problems.add(0, info.filename, reason)
        total_size += info.file_size
        if info.filename.lower().endswith(".jsonl") and not info.is_dir():
            jsonl_names.append(info.filename)
    if total_size > settings.PAGEWISE_MAX_IMPORT_BYTES:
        problems.add(
            0,
            "archive",
            f"unpacks to {total_size} bytes; the limit is {settings.PAGEWISE_MAX_IMPORT_BYTES}",
        )
    if len(jsonl_names) != 1:
        problems.add(0, "archive", f"must hold exactly one .jsonl file, found {len(jsonl_names)}")
        return ""
    return jsonl_names[0]


_decode = json.JSONDecoder().decode
_UTF8_BOM = b"\xef\xbb\xbf"


def _plainly_storable(raw: bytes) -> bool:
    """True when a UTF-8 line cannot hold what `unstorable` looks for: a lone surrogate or a NUL
    needs a \\u escape (or, for a surrogate, a 0xED byte), and nesting deeper than MAX_DEPTH needs
    more than MAX_DEPTH brackets. A NUL byte means UTF-16/32 (json.loads accepts them): check."""
    return (
        b"\\u" not in raw
        and b"\xed" not in raw
        and b"\x00" not in raw
        and raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH
    )


def _records(source: _Source, problems: _Collector) -> Iterator[tuple[int, dict]]:
    number = 0
    lines = iter(source.lines)
    progress, every = source.progress, source.progress.every_rows
    max_lines = settings.PAGEWISE_MAX_IMPORT_LINES
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except ARCHIVE_READ_ERRORS as exc:  # a damaged member fails while it is being read
            problems.add(number + 1, "-", f"{source.name} cannot be read from the archive ({exc})")
            return
        number += 1
        source.rows_read = number
        if number % every == 0:
            progress.rows(number, problems.problems, problems.total)
            progress.check_cancelled()
        if raw is LINE_TOO_LONG:
            problems.add(
                number,
                "-",
                f"the line is longer than {settings.PAGEWISE_MAX_IMPORT_LINE_BYTES} bytes "
                "(PAGEWISE_MAX_IMPORT_LINE_BYTES); it was not read",
            )
            continue
        if number > max_lines:
            problems.add(
                number,
                "-",
                f"the file has more than {settings.PAGEWISE_MAX_IMPORT_LINES} lines "
                "(PAGEWISE_MAX_IMPORT_LINES, blank ones included); split it into several imports",
            )
            return
        if not raw.strip():
            continue
        plain = _plainly_storable(raw)
        try:
            # A plain line is UTF-8 (no NUL byte, so not UTF-16/32): decode it without json's
            # encoding sniffing. Others go through json.loads's own detection, as before.
            record = (
                _decode(raw.decode("utf-8"))
                if plain and not raw.startswith(_UTF8_BOM)
                else json.loads(raw)
            )
        except RecursionError:
            problems.add(number, "-", "malformed JSON: nested too deeply")
            continue
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or a huge integer
            problems.add(number, "-", f"malformed JSON: {exc}")
            continue
        if not isinstance(record, dict):
            problems.add(number, "-", "each line must be a JSON object")
            continue
        problem = None if plain else unstorable(record)
        if problem:
            problems.add(number, *problem)
            continue
        yield number, record


def _parse(source: _Source, project: Project, problems: _Collector):
    modalities = set(project.modalities)
    max_grade = project.max_grade
    existing_queries = dict(project.queries.values_list("external_id", "split"))
    existing_items = set(project.items.values_list("external_id", flat=True))
    queries: dict[str, _ParsedQuery] = {}
    items: dict[str, _ParsedItem] = {}

    for line, record in _records(source, problems):
        kind = record.get("type")
        if kind == "query":
            parsed = _parse_query(line, record, problems)
            if parsed is None:
                continue
            if parsed.external_id in queries or parsed.external_id in existing_queries:
                problems.add(line, "id", f"duplicate query id '{parsed.external_id}'")
                continue
            queries[parsed.external_id] = parsed
        elif kind == "item":
            parsed = _parse_item(line, record, modalities, max_grade, problems)
            if parsed is None:
                continue
            if parsed.external_id in items or parsed.external_id in existing_items:
                problems.add(line, "id", f"duplicate item id '{parsed.external_id}'")
                continue
            items[parsed.external_id] = parsed
        else:
            problems.add(
                line, "type", "must be 'query' or 'item'" if kind is not None else "missing"
            )

    for item in items.values():
        if item.query_id not in queries and item.query_id not in existing_queries:
            problems.add(item.line, "query", f"unknown query id '{item.query_id}'")
        elif item.gold_grade is not None:
            split = (
                queries[item.query_id].split
                if item.query_id in queries
                else existing_queries[item.query_id]
            )
            if split == Split.TRAIN:
                problems.add(
                    item.line, "gold_grade", "only items of gold queries carry a gold grade"
                )
    return queries, items


def _unknown_fields(line: int, record: dict, allowed: set[str], problems: _Collector) -> None:
    for name in sorted(set(record) - allowed):
        problems.add(line, name, "unknown field")


def _required_id(line: int, record: dict, name: str, problems: _Collector) -> str | None:
    value = record.get(name)
    if value is None:
        problems.add(line, name, "missing")
    elif not isinstance(value, str) or not value.strip():
        problems.add(line, name, "must be a non-empty string")
    elif len(value) > MAX_ID_LENGTH:
        problems.add(line, name, f"longer than {MAX_ID_LENGTH} characters")
    elif reason := external_id_problem(value):
        problems.add(line, name, reason)
    else:
        return value
    return None


def _optional_str(
    line: int, record: dict, name: str, problems: _Collector, limit: int | None = None
) -> str:
    value = record.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        problems.add(line, name, f"must be a string, not {type(value).__name__}")
        return ""
    if limit and len(value) > limit:
        problems.add(line, name, f"longer than {limit} characters")
    return value


def _finite_float(number: int | float) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an integer beyond a float's range
        return False


def _parse_query(line: int, record: dict, problems: _Collector) -> _ParsedQuery | None:
    before = problems.total
    _unknown_fields(line, record, QUERY_FIELDS, problems)
    external_id = _required_id(line, record, "id", problems)
    text = _optional_str(line, record, "text", problems)
    if "text" not in record or (isinstance(record.get("text"), str) and not text.strip()):
        problems.add(line, "text", "missing" if "text" not in record else "must not be empty")
    split = record.get("split", Split.TRAIN)
    if split not in Split.values:
        problems.add(line, "split", f"must be one of {', '.join(Split.values)}, not {split!r}")
    if problems.total > before:
        return None
    return _ParsedQuery(line, external_id, text, split)


def _plain_id(value) -> bool:
    """A well-formed id of printable ASCII, checked at C speed (anything else: the full check)."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and not value.startswith(FORMULA_STARTS)
    )


def _plain_item(
    line: int, record: dict, modalities: set[str], max_grade: int
) -> _ParsedItem | None:
    """The item of a line that breaks no rule, read with few calls; None sends the line through
    `_parse_item`'s full checks (which name each problem). Accepts exactly what those accept."""
    get = record.get
    external_id, query_id, modality = get("id"), get("query"), get("modality")
    if not (
        record.keys() <= ITEM_FIELDS
        and _plain_id(external_id)
        and _plain_id(query_id)
        and type(modality) is str
        and modality in modalities
    ):
        return None
    title, text, image = get("title", ""), get("text", ""), get("image")
    title = "" if title is None else title
    text = "" if text is None else text
    if type(title) is not str or type(text) is not str or len(title) > MAX_TITLE_LENGTH:
        return None
    if image is not None and (type(image) is not str or not image.strip()):
        return None
    if not (title or text or image):
        return None
    score = get("upstream_score")
    if score is not None:
        if type(score) is float and math.isfinite(score):
            pass
        elif type(score) is int and -1e300 < score < 1e300:
            score = float(score)
        else:
            return None
    grade = get("gold_grade")
    if grade is not None and not (type(grade) is int and 0 <= grade <= max_grade):
        return None
    metadata = get("metadata", {})
    if type(metadata) is not dict:
        return None
    return _ParsedItem(
        line, external_id, query_id, modality, title, text, image, score, grade, metadata
    )


def _parse_item(
    line: int, record: dict, modalities: set[str], max_grade: int, problems: _Collector
) -> _ParsedItem | None:
    plain = _plain_item(line, record, modalities, max_grade)
    if plain is not None:
        return plain
    return _checked_item(line, record, modalities, max_grade, problems)


def _checked_item(
    line: int, record: dict, modalities: set[str], max_grade: int, problems: _Collector
) -> _ParsedItem | None:
    before = problems.total
    _unknown_fields(line, record, ITEM_FIELDS, problems)
    external_id = _required_id(line, record, "id", problems)
    query_id = _required_id(line, record, "query", problems)
    modality = record.get("modality")
    if modality is None:
        problems.add(line, "modality", "missing")
    elif not isinstance(modality, str):
        problems.add(line, "modality", f"must be a string, not {type(modality).__name__}")
        modality = None
    elif modality not in modalities:
        problems.add(
            line,
            "modality",
            f"unknown modality {modality!r} (project has: {', '.join(sorted(modalities))})",
        )
    title = _optional_str(line, record, "title", problems, MAX_TITLE_LENGTH)
    text = _optional_str(line, record, "text", problems)
    image = record.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        problems.add(line, "image", "must be a relative path inside the zip")
        image = None
    if not (title or text or image):
        problems.add(line, "title", "an item needs a title, a text or an image")

    score = record.get("upstream_score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            problems.add(
                line, "upstream_score", f"must be a number or null, not {type(score).__name__}"
            )
            score = None
        elif not _finite_float(score):
            problems.add(line, "upstream_score", "must be a finite number a float can hold")
            score = None
        else:
            score = float(score)
    grade = record.get("gold_grade")
    if grade is not None and (
        isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade <= max_grade
    ):
        problems.add(line, "gold_grade", f"must be an integer from 0 to {max_grade}")
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        problems.add(line, "metadata", "must be a JSON object")
    if problems.total > before:
        return None
    return _ParsedItem(
        line, external_id, query_id, modality, title, text, image, score, grade, metadata
    )


def _check_images(
    source: _Source, items: dict[str, _ParsedItem], problems: _Collector
) -> dict[str, bytes]:
    """Decode every referenced image once; return path -> bytes for the good ones."""
    images: dict[str, bytes] = {}
    checked: dict[str, str | None] = {}
    for item in items.values():
        path = item.image_path
        if path is None:
            continue
        if path not in checked:
            checked[path] = _check_image(source, path, images)
        if checked[path]:
            problems.add(item.line, "image", checked[path])
    return images


def _check_image(source: _Source, path: str, images: dict[str, bytes]) -> str | None:
    if source.archive is None:
        return "images can only be imported from a .zip holding the JSONL file and the images"
    normalised = posixpath.normpath(path)
    if path.startswith("/") or "\\" in path or normalised.startswith(".."):
        return f"path {path!r} leaves the archive"
    info = source.members.get(normalised)
    if info is None:
        return f"{path!r} is not in the archive"
    if info.file_size > settings.PAGEWISE_MAX_IMAGE_BYTES:
        return (
            f"{path!r} is {info.file_size} bytes; the limit is {settings.PAGEWISE_MAX_IMAGE_BYTES}"
        )
    try:
        data = source.archive.read(info)
    except ARCHIVE_READ_ERRORS as exc:
        return f"{path!r} cannot be read from the archive ({exc})"
    reason = validate_image_bytes(data)
    if reason:
        return f"{path!r}: {reason}"
    images[path] = data
    return None


def validate_image_bytes(data: bytes) -> str | None:
    """Return why the bytes are not an acceptable image, or None. Decodes fully, within limits."""
    limit = settings.PAGEWISE_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format not in ALLOWED_IMAGE_FORMATS:
                    return f"format {image.format} is not accepted ({', '.join(sorted(ALLOWED_IMAGE_FORMATS))})"
                width, height = image.size
                # The header is read before any pixel: refuse a decompression bomb before decoding it.
                if width * height > limit:
                    return f"{width}x{height} pixels exceeds the limit of {limit} pixels"
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        return "not an image, or one too large to decode safely"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"not a readable image ({exc})"
    return None


# --- writing ----------------------------------------------------------------------------------


def upstream_ranks(scored: list[tuple[Any, float | None, str]]) -> dict[Any, int | None]:
    """Rank 1 = highest score within one query and modality; unscored items get no rank yet.

    `scored` holds (key, score, external id); ties are broken by external id so that the same
    data always gives the same ranks.
    """
    ordered = sorted(
        (row for row in scored if row[1] is not None), key=lambda row: (-row[1], row[2])
    )
    ranks: dict[Any, int | None] = {key: None for key, _, _ in scored}
    ranks.update({key: rank for rank, (key, _, _) in enumerate(ordered, start=1)})
    return ranks


STORE_BATCH = 10_000  # item rows per COPY block or executemany call; cancel is checked between


def _store(
    project: Project,
    queries: dict[str, _ParsedQuery],
    items: dict[str, _ParsedItem],
    images: dict[str, bytes],
    result: ImportResult,
    *,
    filename: str,
    user,
    run: ImportRun | None,
    rows_read: int,
    progress: ImportProgress,
) -> None:
    stored_names: list[str] = []
    try:
        with transaction.atomic():
            image_names = _save_images(project, images, stored_names)
            new_queries = Query.objects.bulk_create(
                [
                    Query(project=project, external_id=q.external_id, text=q.text, split=q.split)
                    for q in queries.values()
                ],
                batch_size=2000,
            )
            query_pk = {q.external_id: q.pk for q in new_queries}
            missing = {i.query_id for i in items.values()} - set(query_pk)
            if missing:
                query_pk.update(
                    project.queries.filter(external_id__in=missing).values_list("external_id", "pk")
                )
            ranks, changed = _ranks_with_existing(project, items, query_pk)
            _insert_items(project, items, query_pk, ranks, image_names, progress)
            if changed:
                Item.objects.bulk_update(changed, ["upstream_rank"], batch_size=500)
            progress.check_cancelled()
            outcome = {
                "queries_created": len(new_queries),
                "items_created": len(items),
                "images_stored": len(images),
                "ignored_members": result.ignored_members,
                "ignored_members_total": result.ignored_members_total,
                "rows_read": rows_read,
                "status": ImportStatus.SUCCEEDED,
                "stage": "",
                "finished_at": timezone.now(),
            }
            if run is None:
                run = ImportRun.objects.create(
                    project=project, filename=filename[:300], created_by=user, **outcome
                )
            elif not ImportRun.objects.filter(
                pk=run.pk, status=ImportStatus.RUNNING, cancel_requested=False
            ).update(**outcome):
                raise ImportCancelled()  # cancelled (or taken over) at the last moment
    except BaseException:
        for name in stored_names:
            default_storage.delete(name)
        raise
    # After the commit, so no worker sees an import that was rolled back.
    run_id = run.pk
    transaction.on_commit(
        lambda: announce(items_imported, project_id=project.pk, import_run_id=run_id)
    )


# Item columns the import fills from each line; every other column takes its field's default.
_ITEM_VALUES = (
    "project_id", "query_id", "external_id", "modality", "title", "text", "image",
    "upstream_score", "upstream_rank", "gold_grade", "metadata",
)  # fmt: skip


def _insert_items(
    project: Project,
    items: dict[str, _ParsedItem],
    query_pk: dict[str, int],
    ranks: dict[Any, int | None],
    image_names: dict[str, str],
    progress: ImportProgress,
) -> None:
    """Insert the items with plain SQL: COPY on PostgreSQL, one prepared INSERT run over many
    rows on SQLite; the ORM's bulk_create spent most of an import building and compiling rows.
    The database's constraints (unique ids, checks, foreign keys) still hold every row."""
    connection = transaction.get_connection()
    fields = [f for f in Item._meta.concrete_fields if not f.primary_key]
    defaults = tuple(
        f.get_db_prep_save(f.get_default(), connection)
        for f in fields
        if f.attname not in _ITEM_VALUES
    )
    columns = [f.column for f in fields if f.attname in _ITEM_VALUES] + [
        f.column for f in fields if f.attname not in _ITEM_VALUES
    ]
    by_attname = {f.attname: f.column for f in fields}
    assert [by_attname[name] for name in _ITEM_VALUES] == columns[: len(_ITEM_VALUES)], (
        "_ITEM_VALUES must follow the field order of Item"
    )
    project_id, dumps = project.pk, json.dumps

    def row(i: _ParsedItem) -> tuple:
        return (
            project_id, query_pk[i.query_id], i.external_id, i.modality, i.title, i.text,
            image_names.get(i.image_path, "") if i.image_path else "",
            i.upstream_score, ranks[i.external_id], i.gold_grade, dumps(i.metadata),
            *defaults,
        )  # fmt: skip

    table = connection.ops.quote_name(Item._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    values = list(items.values())
    with connection.cursor() as cursor:
        for first in range(0, len(values), STORE_BATCH):
            batch = values[first : first + STORE_BATCH]
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for item in batch:
                        copy.write_row(row(item))
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})", [row(i) for i in batch]
                )
            progress.check_cancelled()


def _ranks_with_existing(project: Project, items: dict[str, _ParsedItem], query_pk: dict[str, int]):
    """Ranks for the new items, and the existing items of the same queries whose rank moves."""
    groups: dict[tuple[int, str], list[tuple[Any, float | None, str]]] = defaultdict(list)
    for item in items.values():
        groups[(query_pk[item.query_id], item.modality)].append(
            (item.external_id, item.upstream_score, item.external_id)
        )
    existing = {}
    touched_queries = {key[0] for key in groups}
    for row in (
        Item.objects.filter(query_id__in=touched_queries)
        .only("pk", "query_id", "modality", "upstream_score", "upstream_rank", "external_id")
        .iterator()
    ):
        if (row.query_id, row.modality) in groups:
            existing[("db", row.pk)] = row
            groups[(row.query_id, row.modality)].append(
                (("db", row.pk), row.upstream_score, row.external_id)
            )
    ranks: dict[Any, int | None] = {}
    for group in groups.values():
        ranks.update(upstream_ranks(group))
    changed = []
    for key, row in existing.items():
        if row.upstream_rank != ranks[key]:
            row.upstream_rank = ranks[key]
            changed.append(row)
    return ranks, changed


def _save_images(
    project: Project, images: dict[str, bytes], stored_names: list[str]
) -> dict[str, str]:
    """Store each image once under a content-addressed name; remember new files for cleanup."""
    names = {}
    for path, data in images.items():
        digest = hashlib.sha256(data).hexdigest()[:24]
        suffix = Path(path).suffix.lower() or ".img"
        name = f"projects/{project.pk}/items/{digest}{suffix}"
        if not default_storage.exists(name):
            name = default_storage.save(name, ContentFile(data))
            stored_names.append(name)
        names[path] = name
    return names
