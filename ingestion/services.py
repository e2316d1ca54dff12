"""Write-side services: accept a batch durably, then price, store and roll it up exactly once."""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable

import msgspec
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiKey
from accounts.tasking import TRANSIENT_ERRORS, enqueue_on_commit

from .models import ROLLUP_GRAINS, RawBatch, RunFacet, RunSummary, TraceEvent
from .pricing import price_book_get
from .schema import EventIn, events_decode, events_encode

logger = logging.getLogger(__name__)

PICO_PER_USD = Decimal(10**12)
_json_encode = msgspec.json.Encoder().encode
SWEEP_GRACE = timedelta(seconds=30)  # a batch younger than this is probably still in the broker


@dataclass
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]]
    over_cap: bool
    batch_id: int | None = None


def events_ingest(*, api_key: ApiKey, events: list[EventIn], rejected: list[dict[str, Any]]) -> IngestResult:
    """Persist the valid events in one write, then (after commit) queue their processing.

    A broker outage leaves the batch pending for the sweeper; the request still succeeds.
    """
    org = api_key.org
    batch_id = None
    if events:
        batch = RawBatch.objects.create(org=org, api_key_id=api_key.pk, payload=events_encode(events),
                                        event_count=len(events))
        batch_id = batch.pk
        enqueue_on_commit("ingestion.tasks.batch_process", batch.pk)
    return IngestResult(accepted=len(events), rejected=rejected, over_cap=org.over_cap, batch_id=batch_id)


# --- processing ---------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "org_id", "event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "span_type",
    "provider", "model", "endpoint", "input_tokens", "output_tokens", "cached_input_tokens",
    "cache_write_tokens", "reasoning_tokens", "latency_ms", "status", "http_status", "customer_id", "stream",
    "timestamp", "cost_pico", "cost_source", "price_id", "metadata", "api_key_id", "received_at",
)
_ROLLUP_SUMS = ("calls", "errors", "unpriced_calls", "input_tokens", "output_tokens", "cached_input_tokens",
                "cache_write_tokens", "reasoning_tokens", "cost_pico", "latency_ms_sum")
_RUN_SUMS = ("calls", "errors", "unpriced_calls", "input_tokens", "output_tokens", "cost_pico")


def agent_of(section_path: str) -> str:
    return section_path.split("/", 1)[0] if section_path else ""


def dims_hash(*dims: Any) -> str:
    """MD5 of the rollup dimensions joined by U+001F: the same as the SQL `md5(concat_ws(chr(31), …))`."""
    return hashlib.md5("\x1f".join(str(d) for d in dims).encode()).hexdigest()


_FINE_COLUMNS = ROLLUP_GRAINS["fine"][0]
# (grain, model, period column, floor of an hour to that period) for every rollup table
_ROLLUP_TABLES = [(grain, model, period, floor)
                  for grain, (_, hourly, daily) in ROLLUP_GRAINS.items()
                  for model, period, floor in ((hourly, "hour", lambda t: t),
                                               (daily, "day", lambda t: t.replace(hour=0)))]


_GRAIN_ORDER = list(ROLLUP_GRAINS)


def grain_dims(grain: str, fine_dims: tuple) -> tuple:
    """The values of a grain's dimensions, picked from (agent, section_path, provider, model, customer, key)."""
    return tuple(fine_dims[_FINE_COLUMNS.index(column)] for column in ROLLUP_GRAINS[grain][0])


def _event_price(book, org_id: int, event: EventIn | TraceEvent) -> tuple[int, int] | None:
    """(price_id, cost_pico) from the price table, or None: the one pricing of ingestion and re-pricing."""
    units = None
    if event.metadata:
        units = event.metadata.get("units")
        units = units if isinstance(units, int) and not isinstance(units, bool) and units >= 0 else None
    if not (event.provider and event.model):
        return None
    return book.price(org_id=org_id, provider=event.provider, model=event.model, at=event.timestamp,
                      input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                      cached_input_tokens=event.cached_input_tokens,
                      cache_write_tokens=event.cache_write_tokens, units=units)


def _event_cost(book, org_id: int, event: EventIn) -> tuple[int | None, str, int | None]:
    """(cost_pico, cost_source, price_id). The price table wins; a client cost only fills a gap."""
    priced = _event_price(book, org_id, event)
    if priced is not None:
        price_id, cost = priced
        return cost, "price", price_id
    if event.cost_usd is not None:
        return int(Decimal(event.cost_usd) * PICO_PER_USD), "client", None
    return None, "", None


@dataclass
class _Aggregates:
    rollups: dict[tuple, list] = field(default_factory=dict)
    runs: dict[str, list] = field(default_factory=dict)
    facets: set[tuple[str, str, str]] = field(default_factory=set)


def _aggregate(rows: Iterable[tuple[EventIn, int | None, int]]) -> _Aggregates:
    """Sum (event, cost_pico, api_key_id) rows per rollup key, per run, and collect run facets."""
    agg = _Aggregates()
    for event, cost, api_key_id in rows:
        hour = event.timestamp.replace(minute=0, second=0, microsecond=0)
        customer = event.customer_id or ""
        agent = agent_of(event.section_path)
        error = 0 if event.status == "ok" else 1
        unpriced = 1 if cost is None else 0
        key = (hour, agent, event.section_path, event.provider, event.model, customer, api_key_id)
        r = agg.rollups.get(key)
        if r is None:
            r = agg.rollups[key] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0]
        r[0] += 1
        r[1] += error
        r[2] += unpriced
        r[3] += event.input_tokens
        r[4] += event.output_tokens
        r[5] += event.cached_input_tokens
        r[6] += event.cache_write_tokens
        r[7] += event.reasoning_tokens
        r[8] += cost or 0
        r[9] += event.latency_ms or 0.0
        end = event.timestamp + timedelta(milliseconds=event.latency_ms or 0)
        run = agg.runs.get(event.run_id)
        if run is None:
            agg.runs[event.run_id] = [event.timestamp, end, 1, error, unpriced, event.input_tokens,
                                      event.output_tokens, cost or 0, customer, agent]
        else:
            run[0] = min(run[0], event.timestamp)
            run[1] = max(run[1], end)
            run[2] += 1
            run[3] += error
            run[4] += unpriced
            run[5] += event.input_tokens
            run[6] += event.output_tokens
            run[7] += cost or 0
            run[8] = run[8] or customer
            run[9] = run[9] or agent
        if event.section_path:
            agg.facets.add((event.run_id, RunFacet.Kind.SECTION, event.section_path))
            agg.facets.add((event.run_id, RunFacet.Kind.AGENT, agent))
        if event.model:
            agg.facets.add((event.run_id, RunFacet.Kind.MODEL, event.model))
        if customer:
            agg.facets.add((event.run_id, RunFacet.Kind.CUSTOMER, customer))
        if error:  # "ok" runs are found by RunSummary.errors == 0; only failures need a facet row
            agg.facets.add((event.run_id, RunFacet.Kind.STATUS, event.status))
    return agg


def _dt(value: datetime):
    return connection.ops.adapt_datetimefield_value(value)


def _is_pg() -> bool:
    return connection.vendor == "postgresql"


def _insert_events(rows: list[tuple]) -> set[str]:
    """Other backends (SQLite): INSERT … ON CONFLICT DO NOTHING RETURNING, in chunks; the inserted event ids."""
    table = TraceEvent._meta.db_table
    cols = ", ".join(_EVENT_COLUMNS)
    placeholders = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
    chunk = max(1, 30000 // len(_EVENT_COLUMNS))
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholders] * len(part))} "
                f"ON CONFLICT (org_id, event_id) DO NOTHING RETURNING event_id",
                [v for row in part for v in row],
            )
            inserted.update(r[0] for r in cursor.fetchall())
    return inserted


def _upsert(table: str, key_cols: tuple[str, ...], cols: tuple[str, ...], values: list[tuple],
            updates: dict[str, str], chunk_rows: int = 400) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE/NOTHING for pre-aggregated rows (one row per key)."""
    if not values:
        return
    set_clause = ", ".join(f"{c} = {expr}" for c, expr in updates.items())
    action = f"DO UPDATE SET {set_clause}" if updates else "DO NOTHING"
    placeholders = "(" + ", ".join(["%s"] * len(cols)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(values), chunk_rows):
            part = values[start:start + chunk_rows]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([placeholders] * len(part))} "
                f"ON CONFLICT ({', '.join(key_cols)}) {action}",
                [v for row in part for v in row],
            )


def _add(table: str, cols: Iterable[str]) -> dict[str, str]:
    return {c: f"{table}.{c} + excluded.{c}" for c in cols}


def rollups_apply(*, org_id: int, agg: _Aggregates) -> None:
    """Add aggregates to the rollup and run tables (backends without `_store_pg`); keys sorted."""
    for grain, model, period, floor in _ROLLUP_TABLES:
        groups: dict[tuple, list] = {}
        for (hour, *fine), sums in agg.rollups.items():  # key = (hour, *fine dimensions)
            key = (floor(hour), *grain_dims(grain, tuple(fine)))
            acc = groups.get(key)
            if acc is None:
                groups[key] = list(sums)
            else:
                for i, value in enumerate(sums):
                    acc[i] += value
        table = model._meta.db_table
        rows = [(org_id, _dt(key[0]), dims_hash(*key[1:]), *key[1:], *groups[key])
                for key in sorted(groups, key=lambda k: (k[0], k[1:]))]
        cols = ("org_id", period, "dims_hash", *ROLLUP_GRAINS[grain][0], *_ROLLUP_SUMS)
        _upsert(table, ("org_id", period, "dims_hash"), cols, rows, _add(table, _ROLLUP_SUMS))

    st = RunSummary._meta.db_table
    run_cols = ("org_id", "run_id", "started_at", "ended_at", *_RUN_SUMS, "customer_id", "agent")
    run_rows = [(org_id, run_id, _dt(r[0]), _dt(r[1]), *r[2:8], r[8], r[9]) for run_id, r in sorted(agg.runs.items())]
    updates = _add(st, _RUN_SUMS)
    updates.update({
        "started_at": f"MIN({st}.started_at, excluded.started_at)",
        "ended_at": f"MAX({st}.ended_at, excluded.ended_at)",
        "customer_id": f"CASE WHEN {st}.customer_id = '' THEN excluded.customer_id ELSE {st}.customer_id END",
        "agent": f"CASE WHEN {st}.agent = '' THEN excluded.agent ELSE {st}.agent END",
    })
    _upsert(st, ("org_id", "run_id"), run_cols, run_rows, updates)

    facet_rows = [(org_id, run_id, kind, value) for run_id, kind, value in sorted(agg.facets)]
    _upsert(RunFacet._meta.db_table, ("org_id", "kind", "value", "run_id"), ("org_id", "run_id", "kind", "value"),
            facet_rows, {}, chunk_rows=1000)


_AGENT_SQL = "split_part(section_path, '/', 1)"
_CUSTOMER_SQL = "coalesce(customer_id, '')"
_ROLLUP_SELECT = (
    "count(*), count(*) FILTER (WHERE status <> 'ok'), count(*) FILTER (WHERE cost_pico IS NULL), "
    "sum(input_tokens), sum(output_tokens), sum(cached_input_tokens), sum(cache_write_tokens), "
    "sum(reasoning_tokens), coalesce(sum(cost_pico), 0), coalesce(sum(latency_ms), 0)"
)


_DIM_SQL = {"agent": _AGENT_SQL, "customer_id": _CUSTOMER_SQL}  # other dimensions are event columns as is


def _rollup_cte(name: str, table: str, period: str, dim_columns: tuple[str, ...]) -> str:
    """Upsert the `ins` rows grouped by period + dims; the hash matches `dims_hash()` of the same values."""
    updates = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in _ROLLUP_SUMS)
    columns = ", ".join(dim_columns)
    sql = [_DIM_SQL.get(column, column) for column in dim_columns]
    exprs = ", ".join(sql)
    hash_args = ", ".join(f"{expr}::text" if column == "api_key_id" else expr for column, expr in zip(dim_columns, sql))
    return f"""{name} AS (
        INSERT INTO {table} AS t (org_id, {period}, dims_hash, {columns}, {", ".join(_ROLLUP_SUMS)})
        SELECT org_id, date_trunc('{period}', timestamp, 'UTC'), md5(concat_ws(chr(31), {hash_args})), {exprs},
               {_ROLLUP_SELECT}
        FROM ins GROUP BY org_id, 2, {exprs}
        ORDER BY 2, 3
        ON CONFLICT (org_id, {period}, dims_hash) DO UPDATE SET {updates})"""


@functools.cache
def _store_pg_sql() -> str:
    """The statement that inserts `_events_in` and folds the inserted rows everywhere (built once)."""
    ev, cols = TraceEvent._meta.db_table, ", ".join(_EVENT_COLUMNS)
    runs, facets = RunSummary._meta.db_table, RunFacet._meta.db_table
    run_updates = ", ".join(f"{c} = t.{c} + excluded.{c}" for c in _RUN_SUMS)
    rollup_ctes = ",\n    ".join(_rollup_cte(f"{grain}_{period}", model._meta.db_table, period, ROLLUP_GRAINS[grain][0])
                                  for grain, model, period, _ in _ROLLUP_TABLES)
    return f"""
    WITH ins AS (
        INSERT INTO {ev} ({cols}) SELECT {cols} FROM _events_in
        ON CONFLICT (org_id, event_id) DO NOTHING
        RETURNING org_id, run_id, timestamp, latency_ms, section_path, provider, model, customer_id, api_key_id,
                  status, cost_pico, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens,
                  reasoning_tokens
    ),
    {rollup_ctes},
    run_rows AS (
        INSERT INTO {runs} AS t (org_id, run_id, started_at, ended_at, {", ".join(_RUN_SUMS)}, customer_id, agent)
        SELECT org_id, run_id, min(timestamp), max(timestamp + coalesce(latency_ms, 0) * interval '1 millisecond'),
               count(*), count(*) FILTER (WHERE status <> 'ok'), count(*) FILTER (WHERE cost_pico IS NULL),
               sum(input_tokens), sum(output_tokens), coalesce(sum(cost_pico), 0),
               coalesce((array_agg(customer_id ORDER BY timestamp) FILTER (WHERE {_CUSTOMER_SQL} <> ''))[1], ''),
               coalesce((array_agg({_AGENT_SQL} ORDER BY timestamp) FILTER (WHERE section_path <> ''))[1], '')
        FROM ins GROUP BY org_id, run_id ORDER BY run_id
        ON CONFLICT (org_id, run_id) DO UPDATE SET {run_updates},
            started_at = LEAST(t.started_at, excluded.started_at),
            ended_at = GREATEST(t.ended_at, excluded.ended_at),
            customer_id = CASE WHEN t.customer_id = '' THEN excluded.customer_id ELSE t.customer_id END,
            agent = CASE WHEN t.agent = '' THEN excluded.agent ELSE t.agent END
    ),
    facet_rows AS (
        INSERT INTO {facets} (org_id, run_id, kind, value)
        SELECT org_id, run_id, kind, value FROM (
            SELECT org_id, run_id, 'section' AS kind, section_path AS value FROM ins WHERE section_path <> ''
            UNION SELECT org_id, run_id, 'agent', {_AGENT_SQL} FROM ins WHERE section_path <> ''
            UNION SELECT org_id, run_id, 'model', model FROM ins WHERE model <> ''
            UNION SELECT org_id, run_id, 'customer', customer_id FROM ins WHERE {_CUSTOMER_SQL} <> ''
            UNION SELECT org_id, run_id, 'status', status FROM ins WHERE status <> 'ok'
        ) f ORDER BY kind, value, run_id
        ON CONFLICT (org_id, kind, value, run_id) DO NOTHING
    )
    SELECT count(*) FROM ins"""


def _store_pg(rows: list[tuple]) -> int:
    """PostgreSQL: COPY the priced rows into a temp table, then one statement inserts the new events and
    folds exactly those (the INSERT's RETURNING) into the rollups, run summaries and facets, set-based.

    It computes what `_aggregate` + `rollups_apply` compute on other backends; the same tests run on both.
    """
    ev, cols = TraceEvent._meta.db_table, ", ".join(_EVENT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS _events_in ON COMMIT DELETE ROWS AS "
                       f"SELECT {cols} FROM {ev} WITH NO DATA")
        cursor.execute("DELETE FROM _events_in")  # empty after each commit; not inside one test transaction
        with cursor.cursor.copy(f"COPY _events_in ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(_store_pg_sql())
        return cursor.fetchone()[0]


COALESCE_MAX_EVENTS = 5000  # a backed-up queue is drained several batches per transaction
MAX_ATTEMPTS = 5  # a batch that fails this many times is quarantined
RETRY_BASE = timedelta(minutes=1)  # then 2, 4, 8 minutes: quarantined ~15 minutes after its first failure


def _pg_session_setup() -> None:
    """Safe: the raw batch was committed durably by the request; if this commit is lost in a crash,
    the batch is still unprocessed and is simply processed again."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _store_group(org_id: int, book, group: list[tuple[RawBatch, list[EventIn]]]) -> int:
    """Price, insert and fold the events of `group` (batches of one org, with their decoded events).

    Returns the number of new events: rows already stored (re-sent, or a retry) are skipped and
    never folded twice.
    """
    pg = _is_pg()
    adapt = connection.ops.adapt_datetimefield_value
    encode = _json_encode
    seen: set[str] = set()
    rows, priced = [], []
    for raw, events in group:
        api_key_id, received = raw.api_key_id, adapt(raw.received_at)
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            cost, source, price_id = _event_cost(book, org_id, event)
            if not pg:
                priced.append((event, cost, api_key_id))
            rows.append((
                org_id, event.event_id, event.run_id, event.span_id, event.parent_span_id, event.section,
                event.section_path, event.span_type, event.provider, event.model, event.endpoint,
                event.input_tokens, event.output_tokens, event.cached_input_tokens, event.cache_write_tokens,
                event.reasoning_tokens, event.latency_ms, event.status, event.http_status, event.customer_id,
                event.stream, adapt(event.timestamp), cost, source, price_id, encode(event.metadata).decode(),
                api_key_id, received,
            ))
    if pg:
        return _store_pg(rows)
    inserted = _insert_events(rows)
    if len(inserted) != len(priced):
        priced = [row for row in priced if row[0].event_id in inserted]
    rollups_apply(org_id=org_id, agg=_aggregate(priced))
    return len(inserted)


def _processable(qs):
    return qs.filter(processed_at__isnull=True, quarantined_at__isnull=True)


def batch_process(*, batch_id: int, now: datetime | None = None) -> int:
    """Price, store and roll up one raw batch exactly once; returns the number of new events.

    Idempotent: processed and quarantined batches are skipped, and events already stored are left
    out of the rollups because only rows actually inserted are counted. A fresh batch is processed
    together with its org's other fresh pending batches (fixed costs paid once per few thousand
    events). If that fails for any reason but an outage (`TRANSIENT_ERRORS`, raised for the task to
    retry), the batch is processed alone, event by event if need be: its valid events are stored,
    the ones that cannot be are recorded on the batch, which is retried with backoff and finally
    quarantined. A batch that has failed once is never pulled into another batch's transaction.
    """
    now = now or timezone.now()
    try:
        new_events = _batches_process_together(batch_id=batch_id, now=now)
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        logger.warning("batch %s failed in a group; processing it alone", batch_id, exc_info=True)
        new_events = None
    if new_events is None:
        new_events = _batch_process_alone(batch_id=batch_id, now=now)
    return new_events


def _batches_process_together(*, batch_id: int, now: datetime) -> int | None:
    """The fast path; None when the batch must be processed alone (it failed before)."""
    with transaction.atomic():
        # Lock first without the payload: a batch already drained by another transaction costs no read.
        batch = _processable(RawBatch.objects.unscoped().select_for_update().defer("payload").filter(pk=batch_id)
                             ).first()
        if batch is None:
            return 0
        if batch.attempts:
            return None
        batches = [batch]
        if _is_pg():
            _pg_session_setup()
            budget = COALESCE_MAX_EVENTS - batch.event_count
            more = (_processable(RawBatch.objects.unscoped().select_for_update(skip_locked=True).defer("payload"))
                    .filter(org_id=batch.org_id, attempts=0, event_count__lte=budget)
                    .exclude(pk=batch_id).order_by("pk")[:8])
            for other in more:
                if other.event_count <= budget:
                    batches.append(other)
                    budget -= other.event_count
        payloads = dict(RawBatch.objects.unscoped().filter(pk__in=[b.pk for b in batches])
                        .values_list("pk", "payload"))
        group = [(raw, events_decode(bytes(payloads[raw.pk]))) for raw in batches]
        new_events = _store_group(batch.org_id, price_book_get(), group)
        for raw in batches:
            RawBatch.objects.unscoped().filter(pk=raw.pk).update(processed_at=now, attempts=raw.attempts + 1)
    return new_events


def _batch_process_alone(*, batch_id: int, now: datetime) -> int:
    """One batch in its own transaction; if it fails as a whole, each event in its own savepoint."""
    with transaction.atomic():
        batch = _processable(RawBatch.objects.unscoped().select_for_update().filter(pk=batch_id)).first()
        if batch is None:
            return 0
        if _is_pg():
            _pg_session_setup()
        book = price_book_get()
        events, failures = _events_decode_each(bytes(batch.payload))
        new_events = None
        if not failures:
            try:
                with transaction.atomic():
                    new_events = _store_group(batch.org_id, book, [(batch, [event for _, event in events])])
            except TRANSIENT_ERRORS:
                raise
            except Exception:  # noqa: BLE001 - some event is bad: find it by storing each one alone
                logger.warning("batch %s failed alone; storing its events one by one", batch_id, exc_info=True)
        if new_events is None:
            new_events = 0
            for index, event in events:
                try:
                    with transaction.atomic():
                        new_events += _store_group(batch.org_id, book, [(batch, [event])])
                except TRANSIENT_ERRORS:
                    raise
                except Exception as exc:  # noqa: BLE001
                    failures.append((index, f"event {index} ({event.event_id}): {exc!r}"))
        if failures:
            _batch_attempt_failed(batch, now=now, failures=[message for _, message in sorted(failures)],
                                  failed_events=batch.event_count if failures[0][0] < 0 else len(failures))
        else:
            RawBatch.objects.unscoped().filter(pk=batch.pk).update(
                processed_at=now, attempts=batch.attempts + 1, next_attempt_at=None, failed_events=0)
    return new_events


def _events_decode_each(payload: bytes) -> tuple[list[tuple[int, EventIn]], list[tuple[int, str]]]:
    """Decode a stored payload event by event: ([(index, event)], [(index, error)]).

    A payload written under older rules may hold an event today's schema refuses; it alone fails.
    """
    try:
        return list(enumerate(events_decode(payload))), []
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        items = msgspec.json.decode(payload)
        if not isinstance(items, list):
            raise msgspec.ValidationError("not a list of events")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return [], [(-1, f"payload: {exc!r}")]
    events, failures = [], []
    for index, item in enumerate(items):
        try:
            events.append((index, msgspec.convert(item, EventIn, strict=False)))
        except (msgspec.ValidationError, TypeError) as exc:
            event_id = item.get("event_id") if isinstance(item, dict) else None
            failures.append((index, f"event {index} ({event_id}): {exc}"))
    return events, failures


def _batch_attempt_failed(batch: RawBatch, *, now: datetime, failures: list[str], failed_events: int) -> None:
    """Record a failed attempt: retry later with backoff, or quarantine after MAX_ATTEMPTS."""
    attempts = batch.attempts + 1
    summary = f"{failed_events} of {batch.event_count} events could not be stored: " + "; ".join(failures)
    fields: dict[str, Any] = {"attempts": attempts, "failed_events": failed_events, "last_error": summary[:2000]}
    if attempts >= MAX_ATTEMPTS:
        fields.update(quarantined_at=now, next_attempt_at=None)
        logger.error("batch %s quarantined after %s attempts: %s", batch.pk, attempts, summary[:500])
    else:
        fields["next_attempt_at"] = now + RETRY_BASE * 2 ** (attempts - 1)
    RawBatch.objects.unscoped().filter(pk=batch.pk).update(**fields)


def batch_failed(*, batch_id: int, error: str, now: datetime | None = None) -> None:
    """An attempt that failed outside the per-event isolation (a bug, not bad data): same bounded backoff."""
    now = now or timezone.now()
    batch = _processable(RawBatch.objects.unscoped().defer("payload").filter(pk=batch_id)).first()
    if batch is not None:
        _batch_attempt_failed(batch, now=now, failures=[error], failed_events=batch.event_count)


def batches_pending(*, now: datetime | None = None, older_than: timedelta = SWEEP_GRACE, limit: int = 500
                    ) -> list[int]:
    """Batches the sweeper should process: past the queue's grace period and any retry backoff."""
    now = now or timezone.now()
    return list(
        _processable(RawBatch.objects.unscoped())
        .filter(received_at__lte=now - older_than)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("received_at").values_list("pk", flat=True)[:limit]
    )


def batches_sweep(*, now: datetime | None = None) -> int:
    """Process what the queue lost (broker outage, crash) and what is due for a retry; new events stored."""
    now = now or timezone.now()
    done = 0
    for batch_id in batches_pending(now=now):
        try:
            done += batch_process(batch_id=batch_id, now=now)
        except TRANSIENT_ERRORS:
            raise  # the database or broker is down: the next sweep starts over
        except Exception as exc:  # noqa: BLE001 - one broken batch must not stop the sweep
            logger.exception("sweep: batch %s failed", batch_id)
            batch_failed(batch_id=batch_id, error=repr(exc), now=now)
    return done


def batches_retry(*, batch_ids: Iterable[int]) -> int:
    """The admin's "retry": unprocessed (quarantined or failing) batches start over with a fresh attempt budget."""
    qs = RawBatch.objects.unscoped().filter(pk__in=list(batch_ids), processed_at__isnull=True)
    ids = sorted(qs.values_list("pk", flat=True))
    RawBatch.objects.unscoped().filter(pk__in=ids).update(
        quarantined_at=None, next_attempt_at=None, attempts=0, failed_events=0)
    for batch_id in ids:
        enqueue_on_commit("ingestion.tasks.batch_process", batch_id)
    return len(ids)


# --- re-pricing ------------------------------------------------------------------------------

def _reprice(qs, *, chunk: int = 5000) -> int:
    """Re-price the events of `qs` with today's price table; move the differences into the rollups.

    Each event's update is conditional on the cost it had when read, so two overlapping runs
    never apply the same difference twice. Events that no price matches keep what they have
    (a client-reported cost, or unpriced).
    """
    book = price_book_get()
    total = 0
    last_id = 0
    st = RunSummary._meta.db_table
    while True:
        events = list(qs.filter(id__gt=last_id).order_by("id")[:chunk])
        if not events:
            return total
        last_id = events[-1].id
        with transaction.atomic():
            rollup_deltas: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
            run_deltas: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
            for ev in events:
                priced = _event_price(book, ev.org_id, ev)
                if priced is None:
                    continue
                price_id, cost = priced
                if ev.cost_pico == cost and ev.price_id == price_id:
                    continue
                updated = TraceEvent.objects.unscoped().filter(pk=ev.pk, cost_pico=ev.cost_pico).update(
                    cost_pico=cost, cost_source="price", price_id=price_id)
                if not updated:
                    continue
                total += 1
                cost_delta = cost - (ev.cost_pico or 0)
                unpriced_delta = 1 if ev.cost_pico is None else 0
                hour = ev.timestamp.replace(minute=0, second=0, microsecond=0)
                fine = (agent_of(ev.section_path), ev.section_path, ev.provider, ev.model, ev.customer_id or "",
                        ev.api_key_id)
                key = (ev.org_id, hour, tuple(dims_hash(*grain_dims(grain, fine)) for grain in ROLLUP_GRAINS))
                rollup_deltas[key][0] += cost_delta
                rollup_deltas[key][1] += unpriced_delta
                run_deltas[(ev.org_id, ev.run_id)][0] += cost_delta
                run_deltas[(ev.org_id, ev.run_id)][1] += unpriced_delta
            with connection.cursor() as cursor:
                for (oid, hour, hashes), (cost, n) in sorted(rollup_deltas.items()):
                    for grain, model, period, floor in _ROLLUP_TABLES:
                        cursor.execute(
                            f"UPDATE {model._meta.db_table} SET cost_pico = cost_pico + %s, "
                            f"unpriced_calls = unpriced_calls - %s WHERE org_id = %s AND {period} = %s "
                            f"AND dims_hash = %s", [cost, n, oid, _dt(floor(hour)), hashes[_GRAIN_ORDER.index(grain)]])
                for (oid, run_id), (cost, n) in sorted(run_deltas.items()):
                    cursor.execute(
                        f"UPDATE {st} SET cost_pico = cost_pico + %s, unpriced_calls = unpriced_calls - %s "
                        f"WHERE org_id = %s AND run_id = %s", [cost, n, oid, run_id])


def events_reprice_unpriced(*, org_id: int | None = None) -> int:
    """Runs when the price table changes: price the stored events that had no price."""
    qs = TraceEvent.objects.unscoped().filter(cost_pico__isnull=True).exclude(model="")
    if org_id is not None:
        qs = qs.filter(org_id=org_id)
    return _reprice(qs)


def events_reprice_range(*, since: datetime, until: datetime, org_id: int | None = None) -> int:
    """The explicit admin action: re-price every event of [since, until) with today's price table.

    Events otherwise keep the price they were priced at (design §5).
    """
    qs = TraceEvent.objects.unscoped().filter(timestamp__gte=since, timestamp__lt=until).exclude(model="")
    if org_id is not None:
        qs = qs.filter(org_id=org_id)
    return _reprice(qs)
