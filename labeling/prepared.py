"""Querysets compiled to SQL once per process, then run with new values on every call.

Building and compiling a queryset costs far more CPU than running it: the annotator's next task
and submit spent about 60% of their time in Django's query compiler, for statements that execute
in a tenth of a millisecond. A `Prepared` statement keeps the queryset as the one definition of
what is read or written (its builder), compiles it the first time with stand-in values where the
arguments go, remembers where those values landed among the SQL parameters, and fills them in
afterwards. `test_prepared.py` holds every prepared statement to a fresh compile.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import methodcaller

from django.db import connections
from django.db import transaction as db_transaction
from django.db.models import Model, QuerySet
from django.db.models.sql import InsertQuery, UpdateQuery
from psycopg import pq

ID, MOMENT, DAY, UUID, TEXT = "id", "moment", "day", "uuid", "text"


@contextmanager
def pipelined(
    using: str = "default",
    *,
    transaction: bool = False,
    generic_plans: bool = False,
    durable: bool = True,
) -> Iterator[None]:
    """On PostgreSQL, the statements sent inside the block (`Prepared.send`) reach the server
    together when it ends: one round trip instead of one each (psycopg's pipeline mode). Their
    rows are read after the block, and an error of any of them is raised as it ends, as Django's
    own error. Elsewhere (SQLite, in process) each statement runs when it is sent.

    `transaction`: the block's statements are one transaction. A request runs in autocommit mode,
    so the transaction is spelled out, BEGIN and COMMIT in the same round trip (a failure inside
    rolls it back); inside a caller's transaction, the block is a savepoint of it. Rows read inside
    the block (a lock's, say) cost a round trip of their own, the rest is sent with the COMMIT. The
    block is not Django's `atomic`: code that waits for the commit (`on_commit`) comes after it.
    Elsewhere than PostgreSQL, the block is `atomic`.

    `generic_plans`: outside a caller's transaction, the block's statements run in one transaction
    of their own (as `transaction`) that plans each prepared statement once for any values
    (plan_cache_mode = force_generic_plan). For statements written so that every plan reads the
    same index entries whatever the values: PostgreSQL's default re-plans a statement on every call
    while its estimates for the values at hand look cheaper than the generic plan's, and planning
    can cost more than running (the annotator's progress: ~1 ms of planning for ~0.3 ms of work).
    Inside a caller's transaction the setting is left alone (SET LOCAL would outlive the block).

    `durable=False`: the block's own transaction (`transaction` or `generic_plans`) commits without
    waiting for the server to flush it to disk (synchronous_commit = off): for writes a crash may
    lose without harm, such as a lease (lost, it is as if it had expired; the next transaction
    that must last flushes it anyway). A judgment's transaction never uses it. Inside a caller's
    transaction the setting is left alone."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        if transaction:
            with db_transaction.atomic(using):
                yield
        else:
            yield
        return
    # A request's kept connection is checked before its first statement: before the pipeline,
    # where the check's own statement could not run and a closed connection could not be replaced.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    if not connection.get_autocommit() and transaction:
        with db_transaction.atomic(using), connection.wrap_database_errors:
            with connection.connection.pipeline():
                yield
        return
    if not connection.get_autocommit() or not (transaction or generic_plans):
        with connection.wrap_database_errors, connection.connection.pipeline():
            yield
        return
    raw = connection.connection
    try:
        with connection.wrap_database_errors, raw.pipeline(), raw.cursor() as cursor:
            cursor.execute("BEGIN")
            if generic_plans:
                cursor.execute(_GENERIC_PLANS)
            if not durable:
                cursor.execute(_NOT_DURABLE)
            yield
            cursor.execute("COMMIT")
    except BaseException:
        # A failed statement made the server skip the rest, COMMIT too: end the transaction.
        if raw.info.transaction_status in _IN_TRANSACTION:
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        raise


_IN_TRANSACTION = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)
_GENERIC_PLANS = "SET LOCAL plan_cache_mode = force_generic_plan"
_NOT_DURABLE = "SET LOCAL synchronous_commit = off"


def _kept_cursors(connection) -> list | None:
    """On PostgreSQL, the psycopg cursors the connection keeps for prepared statements (free ones;
    a statement takes one and gives it back once its rows are read), after the checks Django makes
    before lending a cursor. None when Django's own cursor must run the statement: elsewhere than
    PostgreSQL, or while something listens to the connection's statements (its query log, kept under
    DEBUG and by tests that count queries, or an execute wrapper).

    A kept cursor remembers how to send its parameters and read its columns, and skips Django's
    cursor wrapper: about 25 us less CPU per statement, a twentieth of an annotator's calls."""
    if (
        connection.vendor != "postgresql"
        or connection.queries_logged
        or connection.execute_wrappers
    ):
        return None
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    raw = connection.connection
    kept = getattr(connection, "_pagewise_kept_cursors", None)
    if kept is None or kept[0] is not raw:  # a new connection: the old one's cursors are gone
        kept = (raw, [])
        connection._pagewise_kept_cursors = kept
    return kept[1]


def update_of(queryset: QuerySet, **values) -> UpdateQuery:
    """The UPDATE that `queryset.update(**values)` would run, as a query to prepare."""
    query = queryset.query.chain(UpdateQuery)
    query.add_update_values(values)
    return query


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple  # constants, or the names of the arguments that go there
    slots: tuple[int, ...]  # positions in params that take an argument
    converters: dict | None  # per column: the ORM's own conversions of what the database returns
    compiler: object
    index_map: list[int] | None  # values_list's field order when it differs from the SELECT's


@dataclass(frozen=True)
class _Slot:
    """Where an argument goes: its name, and the type the ORM gave the value there (psycopg's
    Int4 for Value(int), say), which the filled-in value keeps."""

    name: str
    wrapper: type | None = None


class Prepared:
    """One statement, prepared from `build(**stand_ins)` (a QuerySet, an `update_of` query, or
    (sql, params) assembled from compiled querysets).

    `kinds` names each argument's kind: ID (an integer or a model instance: its pk), MOMENT (an
    aware datetime), DAY (a date), UUID or TEXT. Every argument must reach the SQL unchanged or
    adapted the way the ORM adapts it; an argument the compiled SQL does not show is an error at
    compile time. Constants are written into the SQL (`inline_constants`).

    `locking`: a clause written after the SQL (`FOR UPDATE OF ...`) where rows can be locked, for
    a locking read run in a transaction spelled out by `pipelined`, where Django would refuse to
    compile select_for_update (it sees autocommit).
    """

    def __init__(
        self,
        build: Callable[..., QuerySet | UpdateQuery | tuple],
        *,
        locking: str = "",
        **kinds: str,
    ):
        self.build, self.kinds, self.locking = build, kinds, locking
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    # --- running -------------------------------------------------------------------------

    def sql(self, using: str = "default", **values) -> tuple[str, list]:
        compiled = self._compile(using)
        params = list(compiled.params)
        connection = connections[using]
        for position in compiled.slots:
            slot = compiled.params[position]
            value = _adapt(self.kinds[slot.name], values[slot.name], connection)
            params[position] = slot.wrapper(value) if slot.wrapper else value
        return compiled.sql, params

    def rows(self, using: str = "default", **values) -> list[tuple]:
        """Every row, converted as the ORM converts values_list rows."""
        return self.send(using, **values)()

    def send(self, using: str = "default", **values) -> Callable[[], list[tuple]]:
        """Run the statement, and return what reads its rows (as `rows` does) when called: inside
        `pipelined`, after the block, so that statements sent together share a round trip."""
        compiled = self._compile(using)
        sql, params = self.sql(using, **values)
        connection = connections[using]
        kept = _kept_cursors(connection)
        if kept is None:  # Django's own cursor: its query log or wrappers are listening
            cursor, done = connection.cursor(), methodcaller("close")
        else:  # a kept cursor goes back to the connection once its rows are read
            cursor, done = (kept.pop() if kept else connection.create_cursor()), kept.append
        try:
            with connection.wrap_database_errors:
                cursor.execute(sql, params)
        except BaseException:
            cursor.close()
            raise

        def read() -> list[tuple]:
            try:
                with connection.wrap_database_errors:
                    rows = cursor.fetchall()
            except BaseException:
                cursor.close()
                raise
            done(cursor)
            return self._converted(compiled, rows)

        return read

    def _converted(self, compiled: _Compiled, rows: list) -> list[tuple]:
        if compiled.converters:
            rows = compiled.compiler.apply_converters(rows, compiled.converters)
        if compiled.index_map is not None:
            return [tuple(row[i] for i in compiled.index_map) for row in rows]
        return [tuple(row) for row in rows]

    def first(self, using: str = "default", **values) -> tuple | None:
        rows = self.rows(using, **values)
        return rows[0] if rows else None

    def execute(self, using: str = "default", **values) -> int:
        """Run a write; the number of rows it changed."""
        sql, params = self.sql(using, **values)
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    # --- compiling -----------------------------------------------------------------------

    def stand_ins(self, draw: int = 0) -> dict:
        return {name: _stand_in(kind, i, draw) for i, (name, kind) in enumerate(self.kinds.items())}

    def compile_now(self, using: str = "default", **values) -> tuple[str, list]:
        """The statement compiled from scratch with these values (what the prepared one must
        equal)."""
        sql, params, _ = _compiled_sql(self.build(**values), using)
        return sql + self._locking(using), list(params)

    def _locking(self, using: str) -> str:
        # Where rows cannot be locked (SQLite: a writer holds the whole database), no clause.
        return self.locking if connections[using].features.has_select_for_update else ""

    def _compile(self, using: str) -> _Compiled:
        compiled = self._compiled.get(using)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(using) or self._compile_for(using)
                self._compiled[using] = compiled
        return compiled

    def _compile_for(self, using: str) -> _Compiled:
        """Compile with two draws of stand-ins: the parameters that differ are the arguments'
        places (a constant that happens to equal a stand-in stays a constant)."""
        connection = connections[using]
        built = self.build(**self.stand_ins())
        sql, params, compiler = _compiled_sql(built, using)
        sql += self._locking(using)
        other_sql, other_params = self.compile_now(using, **self.stand_ins(draw=1))
        if other_sql != sql or len(other_params) != len(params):
            raise ValueError("A prepared statement's SQL must not depend on its arguments' values")
        names = {}
        for i, (name, kind) in enumerate(self.kinds.items()):
            for form in _forms(kind, _stand_in(kind, i), connection):
                names[(type(form), form)] = name
        params = tuple(
            _slot(p, names) if p != other else p
            for p, other in zip(params, other_params, strict=True)
        )
        missing = set(self.kinds) - {p.name for p in params if isinstance(p, _Slot)}
        if missing:
            raise ValueError(f"Prepared statement does not show its arguments {sorted(missing)}")
        sql, params = inline_constants(sql, params)
        converters, index_map = None, None
        if isinstance(built, QuerySet):
            columns = [s[0] for s in compiler.select[0 : compiler.col_count]]
            converters = compiler.get_converters(columns) or None
            fields = list(built._fields or ())
            query = built.query
            order = [*query.extra_select, *query.values_select, *query.annotation_select]
            if fields and fields != order:
                index_map = [order.index(f) for f in fields]
        return _Compiled(
            sql=sql, params=params,
            slots=tuple(i for i, p in enumerate(params) if isinstance(p, _Slot)),
            converters=converters, compiler=compiler, index_map=index_map,
        )  # fmt: skip


def _compiled_sql(built, using: str) -> tuple[str, list, object]:
    """(sql, params, compiler) of what a builder made: a QuerySet, a query, or SQL it assembled
    from querysets itself as (sql, params)."""
    if isinstance(built, tuple):
        return built[0], list(built[1]), None
    query = built.query if isinstance(built, QuerySet) else built
    compiler = query.get_compiler(using=using)
    sql, params = compiler.as_sql()
    return sql, params, compiler


_PLACEHOLDER = re.compile(r"%%|%s")
_PLAIN_TEXT = re.compile(r"[\w.:-]{0,64}", re.ASCII)


def literal(param) -> str | None:
    """A constant parameter as an SQL literal, when it is an integer or plain text (a status, a
    kind); None for anything else, which stays a parameter."""
    if isinstance(param, bool) or isinstance(param, _Slot):
        return None
    if isinstance(param, int):
        return str(int(param))
    if isinstance(param, str) and _PLAIN_TEXT.fullmatch(param):
        return f"'{param}'"
    return None


def inline_constants(sql: str, params: tuple) -> tuple[str, tuple]:
    """Write the statement's constants (ints, plain text) into its SQL, leaving the arguments as
    parameters. PostgreSQL plans a prepared statement once for any values ("generic plan") and
    keeps that plan only if it looks as cheap as one made for the values at hand: with a task's
    status as a parameter it cannot tell 'leased' (rare) from 'open', so the count of claimable
    tasks was planned afresh at every call (0.9 ms of 1.9)."""
    kept, remaining = [], iter(params)

    def put(match: re.Match) -> str:
        if match.group() == "%%":
            return "%%"
        param = next(remaining)
        written = literal(param)
        if written is None:
            kept.append(param)
            return "%s"
        return written

    return _PLACEHOLDER.sub(put, sql), tuple(kept)


def _slot(param, names: dict) -> _Slot:
    if (type(param), param) in names:
        return _Slot(names[(type(param), param)])
    # A typed int (psycopg's Int4, Int8): the ORM's choice of SQL type, kept when filling in.
    if isinstance(param, int) and (int, int(param)) in names:
        return _Slot(names[(int, int(param))], wrapper=type(param))
    raise ValueError(f"A prepared statement's parameter {param!r} is no argument's stand-in")


def _stand_in(kind: str, i: int, draw: int = 0):
    # Values in range for any column (a negative id would be an empty lookup to the ORM), two
    # draws apart; constants equal to them are told apart by comparing the draws.
    if kind == ID:
        return 30_001 + 1_000 * draw + i
    if kind == MOMENT:
        return datetime(1901 + draw, 1, 1, 0, 0, i + 1, tzinfo=UTC)
    if kind == DAY:
        return date(1901 + draw, 1, i + 1)
    if kind == UUID:
        return uuid.UUID(int=((0x7E57 + draw) << 112) + i)
    if kind == TEXT:
        return f"prepared-argument-{draw}-{i}"
    raise ValueError(f"unknown argument kind {kind!r}")


def _forms(kind: str, value, connection) -> list:
    """The forms a stand-in can take among compiled parameters (raw, or adapted by the ORM)."""
    if kind == MOMENT:
        return [value, connection.ops.adapt_datetimefield_value(value)]
    if kind == DAY:
        return [value, connection.ops.adapt_datefield_value(value)]
    if kind == UUID:
        return [value, value.hex, str(value)]
    return [value]


def _adapt(kind: str, value, connection):
    if kind == ID:
        return value.pk if isinstance(value, Model) else int(value)
    if kind == MOMENT:
        return connection.ops.adapt_datetimefield_value(value)
    if kind == DAY:
        return connection.ops.adapt_datefield_value(value)
    if kind == UUID:
        value = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return value if connection.features.has_native_uuid_field else value.hex
    return value


class PreparedInstances:
    """A prepared read that returns model instances: `build` gives a queryset of the model
    (filtered, ordered, annotated with `extra` names); `related` names foreign keys read along
    with it (select_related's work, one level), set on each instance as if fetched with it."""

    def __init__(
        self,
        build: Callable[..., QuerySet],
        *,
        related: tuple[str, ...] = (),
        extra: tuple[str, ...] = (),
        locking: str = "",
        **kinds: str,
    ):
        self.related, self.extra = related, extra
        self.statement = Prepared(
            lambda **values: build(**values).values_list(*self._columns(build, values)),
            locking=locking, **kinds,
        )  # fmt: skip
        self._layout = None

    def _columns(self, build, values) -> list[str]:
        model = build(**values).model
        layout = [(None, model, [f.attname for f in model._meta.concrete_fields])]
        for name in self.related:
            field = model._meta.get_field(name)
            target = field.related_model
            layout.append((field, target, [f.attname for f in target._meta.concrete_fields]))
        self._layout = layout
        return [
            *(f"{field.name}__{a}" if field else a for field, _, names in layout for a in names),
            *self.extra,
        ]

    def all(self, using: str = "default", **values) -> list[Model]:
        return self.send(using, **values)()

    def send(self, using: str = "default", **values) -> Callable[[], list[Model]]:
        """As Prepared.send: run now, read the instances when called."""
        read = self.statement.send(using, **values)
        return lambda: self._instances(using, read())

    def _instances(self, using: str, rows: list[tuple]) -> list[Model]:
        found = []
        for row in rows:
            at, instance = 0, None
            for field, model, names in self._layout:
                made = model.from_db(using, names, row[at : at + len(names)])
                at += len(names)
                if field is None:
                    instance = made
                else:
                    field.set_cached_value(instance, made)
            for name, value in zip(self.extra, row[at:], strict=True):
                setattr(instance, name, value)
            found.append(instance)
        return found

    def first(self, using: str = "default", **values) -> Model | None:
        found = self.all(using, **values)
        return found[0] if found else None


class PreparedInsert:
    """`Model.objects.create(**values)` for one row, its INSERT compiled once: each call only
    prepares the values (each field's own `pre_save` and `get_db_prep_save`, as the ORM's insert
    does) and runs the statement, which answers with the new row's id. The ORM's save() compiled
    the statement anew every time (0.15-0.25 ms of CPU per judgment on a slow 2-core machine).

    Skips Model.save(): only for a model whose save() adds nothing to a new row's insert and
    whose pre_save and post_save signals nobody hears (test_prepared checks both).
    """

    def __init__(self, model: type[Model]):
        self.model = model
        meta = model._meta
        # The fields save() inserts when the primary key is the database's to choose.
        self.fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
        self._compiled: dict[str, str] = {}

    def create(self, using: str = "default", **values) -> Model:
        return self.send(using, **values)()

    def send(
        self, using: str = "default", *, with_rows: tuple[str, list] | None = None, **values
    ) -> Callable[[], Model]:
        """As `create`, the INSERT run now; what returns the new instance (its id read back) when
        called: inside `pipelined`, after the block, so that the INSERT shares its round trip.

        `with_rows` (PostgreSQL): (sql, params) of an INSERT of rows referring to the new one, run
        by the same statement; its SQL reads the new row's id as `new.id` (`... FROM new, ...`)."""
        instance = self.model(**values)
        connection = connections[using]
        sql = self._compiled.get(using)
        if sql is None:
            sql = self._compiled[using] = self.compile_now(using)
        params = [
            f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in self.fields
        ]
        pk = self.model._meta.pk
        if with_rows is not None:
            if connection.vendor != "postgresql":
                raise ValueError("with_rows needs PostgreSQL's INSERT inside WITH")
            column = connection.ops.quote_name(pk.column)
            sql = f"WITH new AS ({sql}), _rows AS ({with_rows[0]}) SELECT {column} FROM new"
            params += with_rows[1]
        cursor = connection.cursor()
        try:
            cursor.execute(sql, params)
        except BaseException:
            cursor.close()
            raise

        def read() -> Model:
            if not instance._state.adding:  # read already
                return instance
            with cursor:
                if connection.features.can_return_columns_from_insert:
                    (value,) = cursor.fetchone()
                else:
                    value = connection.ops.last_insert_id(
                        cursor, self.model._meta.db_table, pk.column
                    )
            setattr(instance, pk.attname, value)
            instance._state.adding, instance._state.db = False, using
            return instance

        return read

    def compile_now(self, using: str = "default") -> str:
        """The INSERT the ORM compiles for this model's save() (with placeholders)."""
        query = InsertQuery(self.model)
        query.insert_values(self.fields, [self.model()])
        compiler = query.get_compiler(using=using)
        if connections[using].features.can_return_columns_from_insert:
            compiler.returning_fields = [self.model._meta.pk]
        ((sql, _params),) = compiler.as_sql()
        return sql
