"""Write-side services: accept a batch durably, then price, store and roll it up exactly once."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any, Callable, Iterable

import msgspec
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts import metrics
from accounts.models import ApiKey
from accounts.tasking import TRANSIENT_ERRORS, drain_started, drains_debounced, enqueue_on_commit

from . import otlp_services, rollups
from .histograms import bucket_of
from .models import RawBatch, TraceEvent
from .money import usd_to_pico
from .pricing import price_book_get
from .queueing import BATCH_TASK, batch_drain_on_commit, drain_key, drain_successor
from .schema import EventIn, events_decode, events_encode

_REJECT_REASONS = frozenset(EventIn.__struct_fields__) | {"event"}

logger = logging.getLogger(__name__)

_json_encode = msgspec.json.Encoder().encode
SWEEP_GRACE = timedelta(seconds=30)  # a batch younger than this is probably still in the broker


@dataclass
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]]
    over_cap: bool
    batch_id: int | None = None


def events_ingest(*, api_key: ApiKey, events: list[EventIn], rejected: list[dict[str, Any]],
                  received_at: datetime | None = None) -> IngestResult:
    """Persist the valid events in one write, then (after commit) queue their processing.

    A broker outage leaves the batch pending for the sweeper; the request still succeeds. `received_at` is
    the `now` the events were validated with: events sent without a timestamp carry exactly it, which is how
    the worker knows their timestamp is the server's (`_stamped_timestamps_adopt`).
    """
    org = api_key.org
    batch_id = None
    if events:
        batch = RawBatch.store(org_id=org.pk, kind=RawBatch.Kind.EVENTS, api_key_id=api_key.pk,
                               payload=events_encode(events), event_count=len(events),
                               received_at=received_at or timezone.now())
        batch_id = batch.pk
        batch_drain_on_commit(batch)
    transaction.on_commit(lambda: metrics.events_counted(accepted=len(events), rejected=rejected,
                                                         known_fields=_REJECT_REASONS))
    return IngestResult(accepted=len(events), rejected=rejected, over_cap=org.over_cap, batch_id=batch_id)


# --- processing ---------------------------------------------------------------------------

_EVENT_COLUMNS = (
    "org_id", "event_id", "run_id", "span_id", "parent_span_id", "section", "section_path", "span_type",
    "provider", "model", "endpoint", "input_tokens", "output_tokens", "cached_input_tokens",
    "cache_write_tokens", "reasoning_tokens", "latency_ms", "ttft_ms", "status", "http_status", "customer_id",
    "stream", "timestamp", "cost_pico", "cost_source", "price_id", "metadata", "api_key_id", "received_at",
    "service_tier", "processing", "speed", "usage", "price_variant", "price_source", "price_version",
    "billed_cost_pico", "list_cost_pico", "discount_pct", "source", "reported_cost_pico",
    "latency_bucket", "ttft_bucket",
)
SDK_SOURCE = ("sdk", None)


def _event_context(event: EventIn | TraceEvent) -> dict[str, str] | None:
    """The request context price variants are selected by (genai-prices' `price_context`)."""
    if not (event.service_tier or event.processing or event.speed):
        return None
    context = {}
    if event.service_tier:
        context["service_tier"] = event.service_tier
    if event.processing:
        context["processing"] = event.processing
    if event.speed:
        context["speed"] = event.speed
    return context


def _event_price(book, org_id: int, event: EventIn | TraceEvent):
    """The price table's `Quote` (price_id, cost_pico, variant, source), or None: the one pricing of ingestion
    and re-pricing.

    Usage beyond the token fields comes from the event's `usage` (registry unit names); the matched row's
    legacy `unit_field` units and `cache_write_1h_tokens` are also read from metadata (`pricing.metadata_usage`).
    `service_tier` / `processing` / `speed` select the row's variants, the timestamp its time window. A span
    with no model (a vector-DB query) is priced by a row that matches the empty name (e.g. regex `.*` for
    provider `pinecone`).
    """
    if not event.provider:
        return None
    return book.quote(org_id=org_id, provider=event.provider, model=event.model or "", at=event.timestamp,
                      input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                      cached_input_tokens=event.cached_input_tokens,
                      cache_write_tokens=event.cache_write_tokens, metadata=event.metadata or None,
                      usage=event.usage or None, context=_event_context(event),
                      reasoning_tokens=event.reasoning_tokens)


def _event_cost(book, org_id: int, event: EventIn) -> tuple:
    """(cost_pico, cost_source, price_id, price_variant, price_source, list_cost_pico, discount_pct). The price
    table wins; a client cost only fills a gap (taken as reported: no discount applies to it). With an org's
    negotiated discount, cost_pico is the net cost and the list price and percent are kept beside it."""
    quote = _event_price(book, org_id, event)
    if quote is not None:
        return quote.cost, "price", quote.price_id, quote.variant, quote.source, quote.list_cost, quote.discount_pct
    if event.cost_usd is not None:
        return usd_to_pico(event.cost_usd, exact=False), "client", None, "", "client", None, None
    return None, "", None, "", "", None, None


def _is_pg() -> bool:
    return connection.vendor == "postgresql"


def _insert_events(rows: list[tuple]) -> int:
    """Other backends (SQLite): INSERT … ON CONFLICT DO NOTHING, in chunks; the number of rows inserted."""
    table = TraceEvent._meta.db_table
    cols = ", ".join(_EVENT_COLUMNS)
    placeholders = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
    chunk = max(1, 30000 // len(_EVENT_COLUMNS))
    inserted = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            cursor.execute(
                f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholders] * len(part))} "
                f'ON CONFLICT (org_id, event_id, "timestamp") DO NOTHING',
                [v for row in part for v in row],
            )
            inserted += cursor.rowcount
    return inserted


@functools.cache
def _store_pg_sql(fold: bool) -> str:
    """The statement that inserts `_events_in` and folds the inserted rows everywhere, or returns their ids
    (built once each)."""
    ev, cols = TraceEvent._meta.db_table, ", ".join(_EVENT_COLUMNS)
    insert = f"""INSERT INTO {ev} ({cols}) SELECT {cols} FROM _events_in
        ON CONFLICT (org_id, event_id, "timestamp") DO NOTHING"""
    if not fold:
        return f"{insert} RETURNING id"
    return f"""
    WITH ins AS (
        {insert}
        RETURNING {", ".join(rollups.SOURCE_COLUMNS)}
    ),
    {rollups.fold_ctes(pg=True, src="ins")}
    SELECT count(*) FROM ins"""


def _store_pg(rows: list[tuple], *, fold: bool = True) -> int | list[int]:
    """PostgreSQL: COPY the priced rows into a temp table, then one statement inserts the new events and
    folds exactly those (the INSERT's RETURNING) into the rollups, run summaries and facets, set-based:
    returns how many were new. Without `fold`: returns the new events' ids.

    The fold is `ingestion.rollups`' — the same statements SQLite runs over a temp table, and a rebuild
    runs over `TraceEvent`.
    """
    ev, cols = TraceEvent._meta.db_table, ", ".join(_EVENT_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS _events_in ON COMMIT DELETE ROWS AS "
                       f"SELECT {cols} FROM {ev} WITH NO DATA")
        cursor.execute("DELETE FROM _events_in")  # empty after each commit; not inside one test transaction
        with cursor.cursor.copy(f"COPY _events_in ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(_store_pg_sql(fold))
        return cursor.fetchone()[0] if fold else [row[0] for row in cursor.fetchall()]


COALESCE_MAX_SPANS = 15000  # OTLP batches count spans, about a third of them calls
MAX_ATTEMPTS = 5  # a batch that fails this many times is quarantined
# A batch's payload once it is processed, in the transaction that stored its events: they (and the rollups) hold
# everything it carried, so the raw copy of the calls is not kept past processing — it would outlive the events'
# retention (docs/self-hosting.md § Retention). A pending, retrying or quarantined batch keeps its payload.
PROCESSED_PAYLOAD = b""
RETRY_BASE = timedelta(minutes=1)  # then 2, 4, 8 minutes: quarantined ~15 minutes after its first failure


def _pg_session_setup() -> None:
    """Safe: the raw batch was committed durably by the request; if this commit is lost in a crash,
    the batch is still unprocessed and is simply processed again."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _store_group(org_id: int, book, group: list[tuple[RawBatch, list[EventIn]]],
                 sources: dict[str, tuple[str, int | None]] | None = None, *, folds: list[int] | None = None) -> int:
    """Price, insert and fold the events of `group` (batches of one org, with their decoded events).

    Returns the number of new events: rows already stored (re-sent, or a retry) are skipped and
    never folded twice. `sources`: event id → (source, reported cost) for events not from the SDK (OTLP).
    `folds` (PostgreSQL): fold later — the new events' ids go to a fold batch stored in this transaction,
    whose id is appended (`batch_process` folds it once this transaction has committed).
    """
    _stamped_timestamps_adopt(org_id, group)
    rows, sizes = _event_rows(org_id, book, group, sources)
    if _is_pg():
        rollups.lock_org(org_id, exclusive=False)
        if folds is None:
            inserted = _store_pg(rows)
        else:
            ids = _store_pg(rows, fold=False)
            inserted = len(ids)
            if ids:
                folds.append(RawBatch.objects.create(org_id=org_id, kind=RawBatch.Kind.FOLD, event_count=len(ids),
                                                     payload=rollups.fold_ids_encode(ids)).pk)
    else:
        with connection.cursor() as cursor:  # ids only grow (AUTOINCREMENT): the new events are those above
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TraceEvent._meta.db_table}")
            last_id = cursor.fetchone()[0]
        inserted = _insert_events(rows)
        if inserted:
            rollups.fold_new_events(org_id=org_id, after_id=last_id)
    _processed_on_commit(sizes, total=len(rows), inserted=inserted)
    return inserted


def _stamped_timestamps_adopt(org_id: int, group: list[tuple[RawBatch, list[EventIn]]]) -> None:
    """An event sent without a timestamp was stamped with its request's time (its batch's `received_at`), so a
    re-send of it carries another: it takes the timestamp its event id was first stored (or seen in this group)
    with, and the idempotency key (org, event_id, timestamp) holds for it too. One indexed query, only for
    batches that hold such events (the SDK always sends timestamps)."""
    stamped = [event for raw, events in group for event in events if event.timestamp == raw.received_at]
    if not stamped:
        return
    first: dict[str, datetime] = {}
    for event_id, timestamp in (TraceEvent.objects.unscoped()
                                .filter(org_id=org_id, event_id__in={event.event_id for event in stamped})
                                .order_by("timestamp").values_list("event_id", "timestamp")):
        first.setdefault(event_id, timestamp)
    for raw, events in group:
        for event in events:
            if event.timestamp == raw.received_at:
                event.timestamp = first.setdefault(event.event_id, event.timestamp)
            else:
                first.setdefault(event.event_id, event.timestamp)


def _event_rows(org_id: int, book, group: list[tuple[RawBatch, list[EventIn]]],
                sources: dict[str, tuple[str, int | None]] | None = None
                ) -> tuple[list[tuple], list[tuple[datetime, int]]]:
    """The priced event rows (`_EVENT_COLUMNS`) of `group`, each event id once, and (received_at, index of the
    batch's first row) per batch."""
    sources = sources or {}
    adapt = connection.ops.adapt_datetimefield_value
    encode = _json_encode
    version = getattr(book, "version", None)
    seen: set[str] = set()
    rows = []
    sizes: list[tuple[datetime, int]] = []
    for raw, events in group:
        api_key_id, received = raw.api_key_id, adapt(raw.received_at)
        sizes.append((raw.received_at, len(rows)))
        for event in events:
            if event.event_id in seen:
                continue
            seen.add(event.event_id)
            cost, source, price_id, variant, price_source, list_cost, discount_pct = _event_cost(book, org_id, event)
            rows.append((
                org_id, event.event_id, event.run_id, event.span_id, event.parent_span_id, event.section,
                event.section_path, event.span_type, event.provider, event.model, event.endpoint,
                event.input_tokens, event.output_tokens, event.cached_input_tokens, event.cache_write_tokens,
                event.reasoning_tokens, event.latency_ms, event.ttft_ms, event.status, event.http_status,
                event.customer_id, event.stream, adapt(event.timestamp), cost, source, price_id,
                encode(event.metadata).decode(), api_key_id, received,
                event.service_tier or "", event.processing or "", event.speed or "", encode(event.usage).decode(),
                variant, price_source, version if price_id is not None else None, cost, list_cost, discount_pct,
                *sources.get(event.event_id, SDK_SOURCE),
                bucket_of(event.latency_ms), bucket_of(event.ttft_ms),
            ))
    return rows, sizes


def _processed_on_commit(sizes: list[tuple[datetime, int]], *, total: int, inserted: int) -> None:
    """Count the new events (and their lag since their batch was received) once this store commits.

    Registered inside the store's transaction or savepoint, so a rolled-back store counts nothing. `sizes`
    holds (received_at, index of the batch's first row). When some rows were duplicates, which ones is not
    known: the new ones are attributed to the group's batches in order (the count stays exact).
    """
    if not inserted:
        return
    received, left = [], inserted
    for i, (received_at, start) in enumerate(sizes):
        end = sizes[i + 1][1] if i + 1 < len(sizes) else total
        take = min(end - start, left)
        received.append((received_at, take))
        left -= take
    transaction.on_commit(lambda: metrics.events_processed(now=timezone.now(), received=received))


def _processable(qs):
    return qs.filter(processed_at__isnull=True, quarantined_at__isnull=True)


def _fresh_batches(org_id: int, kind: str, *, lock: bool):
    """The org's batches of this kind still to process and never failed (only these join a group). `lock`: locked
    without their payload, skipping those another transaction holds (another worker's group)."""
    qs = RawBatch.objects.unscoped()
    if lock:
        qs = qs.select_for_update(skip_locked=True).defer("payload")
    return _processable(qs).filter(org_id=org_id, kind=kind, attempts=0)


def batch_process(*, batch_id: int, now: datetime | None = None, org_id: int | None = None, kind: str = "") -> int:
    """Price, store and roll up one raw batch exactly once; returns the number of new events.

    Idempotent: processed and quarantined batches are skipped, and events already stored are left
    out of the rollups because only rows actually inserted are counted. A fresh batch is processed
    together with its org's other fresh pending batches (fixed costs paid once per few thousand
    events). If that fails for any reason but an outage (`TRANSIENT_ERRORS`, raised for the task to
    retry), the batch is processed alone, event by event if need be: its valid events are stored,
    the ones that cannot be are recorded on the batch, which is retried with backoff and finally
    quarantined. A batch that has failed once is never pulled into another batch's transaction.

    With `org_id` and `kind` (the drain a request queued: ingestion.queueing), the task drains the org's pending
    batches of that kind: if its own batch is done (or another worker's group holds it), it starts from the oldest
    one no group holds — the requests that queued no task of their own count on it — and it queues its successor
    while more remain than its group takes.
    """
    now = now or timezone.now()
    drain = None
    if org_id is not None:
        drain = (org_id, kind)
        drain_started(drain_key(org_id, kind))  # before reading: later batches queue a drain of their own
    led: list[int] = [batch_id]
    drained: list[int] = []
    folds: list[int] = []
    try:
        new_events = _batches_process_together(batch_id=batch_id, now=now, drained=drained, folds=folds,
                                               drain=drain, led=led)
    except TRANSIENT_ERRORS:
        raise
    except Exception:
        logger.warning("batch %s failed in a group; processing it alone", led[0], exc_info=True)
        new_events = None
    if new_events is None:
        new_events = _batch_process_alone(batch_id=led[0], now=now)
        # The failed group's other batches were skipped by their own tasks while its transaction held them:
        # queue them again (a bad one among them fails its own group, then is processed alone and kept out of
        # every later group by its attempt count).
        for other in drained:
            enqueue_on_commit(BATCH_TASK, other)
    # OTLP groups (PostgreSQL) leave their fold to a batch of its own, folded here once their transaction has
    # released the org's resolution lock: the next group resolves while this process folds. A crash before it
    # leaves the fold batch pending for the sweeper.
    for fold_id in folds:
        batch_process(batch_id=fold_id, now=now)
    return new_events


def _batches_process_together(*, batch_id: int, now: datetime, drained: list[int], folds: list[int],
                              drain: tuple[int, str] | None = None, led: list[int] | None = None) -> int | None:
    """The fast path; None when the batch must be processed alone (it failed before). `drained` receives the
    ids of the other batches this transaction locks (queued again by the caller if it fails); `folds` the fold
    batches it stored, once it has committed; `led[0]` the batch the group was formed around. A drain queues its
    successor at once (not at commit: the other worker process takes the next group meanwhile) when fresh
    batches of its kind remain beyond this group."""
    stored_folds: list[int] = []
    with transaction.atomic():
        # Lock first without the payload: a batch already drained by another transaction costs no read. A batch
        # locked by another worker's group is that group's (PostgreSQL: skipped, not waited for, so workers
        # process distinct groups side by side; if that group fails, its worker queues the batch again).
        batch = _processable(RawBatch.objects.unscoped().select_for_update(skip_locked=True).defer("payload")
                             .filter(pk=batch_id)).first()
        if batch is None and drain is not None:
            batch = _fresh_batches(*drain, lock=True).order_by("pk").first()
        if batch is None:
            return 0
        if led is not None:
            led[0] = batch.pk
        if batch.attempts:
            if drain is not None and drains_debounced():
                drain_successor(*drain)  # this one is processed alone: the batches counting on the drain are not
            return None
        batches = [batch]
        if _is_pg():
            _pg_session_setup()
            otlp = batch.kind == RawBatch.Kind.OTLP
            budget = (COALESCE_MAX_SPANS if otlp else settings.LLMOBSERVE_INGEST_GROUP_EVENTS) - batch.event_count
            # Lock (skipping batches other workers hold) about as many as fit, by the first batch's size; one
            # that is locked but does not fit is queued again after commit (its own task skipped it).
            limit = max(1, min(32, budget // max(1, batch.event_count)))
            more = (_fresh_batches(batch.org_id, batch.kind, lock=True).filter(event_count__lte=budget)
                    .exclude(pk=batch.pk).order_by("pk")[:limit])
            for other in more:
                drained.append(other.pk)
                if other.event_count <= budget:
                    batches.append(other)
                    budget -= other.event_count
                else:
                    enqueue_on_commit(BATCH_TASK, other.pk)
        if drain is not None and drains_debounced() and _fresh_batches(*drain, lock=False).exclude(
                pk__in=[b.pk for b in batches]).exists():
            drain_successor(*drain)
        payloads = dict(RawBatch.objects.unscoped().filter(pk__in=[b.pk for b in batches])
                        .values_list("pk", "payload"))
        if batch.kind == RawBatch.Kind.OTLP:
            group = [(raw, otlp_services.spans_decode(bytes(payloads[raw.pk]))) for raw in batches]
            store = functools.partial(_store_group, folds=stored_folds) if _is_pg() else _store_group
            new_events = otlp_services.otlp_spans_process(org_id=batch.org_id, book=price_book_get(), group=group,
                                                          now=now, store=store)
        elif batch.kind == RawBatch.Kind.FOLD:
            rollups.fold_stored(org_id=batch.org_id, runs=[
                run for raw in batches for run in rollups.fold_runs_decode(bytes(payloads[raw.pk]))])
            new_events = 0  # counted as new when they were stored
        else:
            group = [(raw, events_decode(bytes(payloads[raw.pk]))) for raw in batches]
            new_events = _store_group(batch.org_id, price_book_get(), group)
        # Every batch here is on its first attempt (`attempts=0` above): one UPDATE marks them all.
        RawBatch.objects.unscoped().filter(pk__in=[raw.pk for raw in batches]).update(
            processed_at=now, attempts=1, payload=PROCESSED_PAYLOAD)
    folds.extend(stored_folds)
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
        if batch.kind == RawBatch.Kind.OTLP:
            return _batch_process_whole(batch, now=now, what="spans", work=lambda: otlp_services.otlp_spans_process(
                org_id=batch.org_id, book=book, group=[(batch, otlp_services.spans_decode(bytes(batch.payload)))],
                now=now, store=_store_group))
        if batch.kind == RawBatch.Kind.FOLD:
            return _batch_process_whole(batch, now=now, what="fold", work=lambda: rollups.fold_stored(
                org_id=batch.org_id, runs=rollups.fold_runs_decode(bytes(batch.payload))) or 0)
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
            _batch_processed(batch, now=now)
    return new_events


def _batch_process_whole(batch: RawBatch, *, now: datetime, what: str, work: Callable[[], int]) -> int:
    """An OTLP or fold batch that failed in a group: alone, as a whole (its spans were validated by the request,
    its events are stored: a failure here is a bug or an outage); a failure is recorded with the same backoff
    and quarantine. OTLP spans are resolved with the fold inline here."""
    try:
        with transaction.atomic():
            new_events = work()
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001
        logger.warning("%s batch %s failed alone", batch.kind, batch.pk, exc_info=True)
        _batch_attempt_failed(batch, now=now, failures=[f"{what}: {exc!r}"], failed_events=batch.event_count)
        return 0
    _batch_processed(batch, now=now)
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


def _batch_processed(batch: RawBatch, *, now: datetime) -> None:
    """Record a batch processed alone (its events stored in this transaction): done, its payload emptied."""
    RawBatch.objects.unscoped().filter(pk=batch.pk).update(
        processed_at=now, attempts=batch.attempts + 1, next_attempt_at=None, failed_events=0, payload=PROCESSED_PAYLOAD)


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


def otlp_resolve_due(*, now: datetime | None = None) -> int:
    """Beat: OTLP call spans that waited long enough for their ancestors are stored (ingestion.otlp_services)."""
    return otlp_services.otlp_resolve_due(now=now or timezone.now(), store=_store_group,
                                          session_setup=_pg_session_setup)


def batches_retry(*, batch_ids: Iterable[int]) -> int:
    """The admin's "retry": unprocessed (quarantined or failing) batches start over with a fresh attempt budget."""
    qs = RawBatch.objects.unscoped().filter(pk__in=list(batch_ids), processed_at__isnull=True)
    ids = sorted(qs.values_list("pk", flat=True))
    RawBatch.objects.unscoped().filter(pk__in=ids).update(
        quarantined_at=None, next_attempt_at=None, attempts=0, failed_events=0)
    for batch_id in ids:
        enqueue_on_commit(BATCH_TASK, batch_id)
    return len(ids)


# --- re-pricing ------------------------------------------------------------------------------

def _reprice(qs, *, chunk: int = 5000) -> int:
    """Re-price the events of `qs` with today's price table (as ingestion prices them), then refold the
    (org, UTC day) ranges and the runs of the events that changed from `TraceEvent`: no deltas.

    One transaction: the rollups never show a half-applied re-price. Events that no price matches keep
    what they have (a client-reported cost, or unpriced).
    """
    book = price_book_get()
    total = 0
    last_id = 0
    days: dict[int, set[datetime]] = defaultdict(set)
    runs: dict[int, set[str]] = defaultdict(set)
    with transaction.atomic():
        while True:
            events = list(qs.filter(id__gt=last_id).order_by("id")[:chunk])
            if not events:
                break
            last_id = events[-1].id
            for ev in events:
                quote = _event_price(book, ev.org_id, ev)
                if quote is None:
                    continue
                if (ev.cost_pico == quote.cost and ev.price_id == quote.price_id
                        and ev.price_variant == quote.variant and ev.price_source == quote.source
                        and ev.list_cost_pico == quote.list_cost and ev.discount_pct == quote.discount_pct):
                    continue
                if not days[ev.org_id]:
                    rollups.lock_org(ev.org_id, exclusive=True)  # before any change: no fold in flight
                # The first cost computed stays as billed_cost_pico (an event priced only now is billed now).
                # The timestamp lets PostgreSQL look in the event's month partition only.
                updated = TraceEvent.objects.unscoped().filter(
                    pk=ev.pk, timestamp=ev.timestamp, cost_pico=ev.cost_pico).update(
                    cost_pico=quote.cost, cost_source="price", price_id=quote.price_id, price_variant=quote.variant,
                    price_source=quote.source, price_version=getattr(book, "version", None),
                    list_cost_pico=quote.list_cost, discount_pct=quote.discount_pct,
                    billed_cost_pico=Coalesce(F("billed_cost_pico"), Value(quote.cost)))
                if not updated:
                    continue
                total += 1
                days[ev.org_id].add(ev.timestamp.astimezone(dt_timezone.utc).replace(
                    hour=0, minute=0, second=0, microsecond=0))
                runs[ev.org_id].add(ev.run_id)
        for org_id in sorted(days):
            rollups.refold_days(org_id=org_id, days=sorted(days[org_id]))
            rollups.refold_runs(org_id=org_id, run_ids=sorted(runs[org_id]))
    return total


def events_reprice_unpriced(*, org_id: int | None = None) -> int:
    """Runs when the price table changes: price the stored events that had no price."""
    qs = TraceEvent.objects.unscoped().filter(cost_pico__isnull=True).exclude(provider="")
    if org_id is not None:
        qs = qs.filter(org_id=org_id)
    return _reprice(qs)


def events_reprice_range(*, since: datetime, until: datetime, org_id: int | None = None) -> int:
    """The explicit admin action: re-price every event of [since, until) with today's price table.

    Events otherwise keep the price they were priced at (design §5).
    """
    qs = TraceEvent.objects.unscoped().filter(timestamp__gte=since, timestamp__lt=until).exclude(provider="")
    if org_id is not None:
        qs = qs.filter(org_id=org_id)
    return _reprice(qs)


@dataclass(frozen=True)
class RepriceDiff:
    """One (provider, model) of a re-pricing dry run: totals before and after, in pico-USD."""

    provider: str
    model: str
    events: int
    changed: int
    old_pico: int
    new_pico: int
    newly_priced: int = 0

    @property
    def delta_pico(self) -> int:
        return self.new_pico - self.old_pico


def events_reprice_preview(*, since: datetime, until: datetime, org_id: int | None = None,
                           limit: int = 200_000) -> tuple[list[RepriceDiff], int, bool]:
    """What `events_reprice_range` would change, without writing: per (provider, model), events, events whose
    cost or price would change, and the totals before and after. Reads at most `limit` events (oldest first);
    returns (rows by |delta| then name, events read, truncated?)."""
    book = price_book_get()
    qs = (TraceEvent.objects.unscoped().filter(timestamp__gte=since, timestamp__lt=until).exclude(provider="")
          .order_by("timestamp", "id"))
    if org_id is not None:
        qs = qs.filter(org_id=org_id)
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    read = 0
    for ev in qs.iterator(chunk_size=2000):
        if read >= limit:
            return _reprice_rows(sums), read, True
        read += 1
        quote = _event_price(book, ev.org_id, ev)
        old = ev.cost_pico or 0
        new = quote.cost if quote is not None else old
        row = sums[(ev.provider, ev.model)]
        row[0] += 1
        if quote is not None and (ev.cost_pico != quote.cost or ev.price_id != quote.price_id
                                  or ev.price_variant != quote.variant or ev.discount_pct != quote.discount_pct):
            row[1] += 1
            row[4] += ev.cost_pico is None
        row[2] += old
        row[3] += new
    return _reprice_rows(sums), read, False


def _reprice_rows(sums) -> list[RepriceDiff]:
    rows = [RepriceDiff(provider=p, model=m, events=v[0], changed=v[1], old_pico=v[2], new_pico=v[3],
                        newly_priced=v[4]) for (p, m), v in sums.items()]
    return sorted(rows, key=lambda r: (-abs(r.delta_pico), r.provider, r.model))
