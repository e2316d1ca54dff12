"""OTLP ingest: store an export durably, then resolve its spans into calls exactly once.

The request (`otlp_ingest`) decodes the export, keeps only what `ingestion.otlp` reads, and stores
the span records as one `RawBatch` (kind "otlp") before answering: the batch machinery (retries,
quarantine, sweeper, /health backlog) covers OTLP as it covers /v1/events. The worker
(`otlp_spans_process`) resolves the traces the spans touch with what is stored of them, then writes what a
later span can need: the non-call spans into their trace's hierarchy record (`OtlpTrace`, one per trace), the
pending calls as `OtlpSpan` rows. A call span becomes an event once its ancestor chain reaches a root, or after LLMOBSERVE_OTLP_RESOLVE_WAIT
seconds with the path known by then (`otlp_resolve_due`, every few seconds from beat). Events go
through the same `services._store_group` as the SDK's (passed in as `store`: services imports this module) (price, insert ON CONFLICT DO NOTHING, fold only the
inserted rows), and the spans are marked in the same transaction. docs/architecture.md § OTLP.
"""

from __future__ import annotations

import functools
import gc
import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Callable, Iterable

import msgspec
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Lookup, Q
from django.utils import timezone

from accounts import metrics
from accounts.models import ApiKey

from .models import OtlpSpan, OtlpTrace, RawBatch, TraceEvent
from .money import usd_to_pico
from .otlp import (
    PATH_MAX, RESPONSE_PREFIX, SpanIn, call_decode, call_encode, event_id_for, export_records, spans_decode,
    spans_encode,
)
from .pricing import price_book_get
from .queueing import batch_drain_on_commit
from .schema import EventIn

logger = logging.getLogger(__name__)

__all__ = ["otlp_ingest", "otlp_spans_process", "otlp_resolve_due", "spans_decode"]

PRUNE_AFTER = timedelta(days=1)  # spans are kept this long for late children and re-sent exports
MAX_ERRORS_IN_RESPONSE = 5
_CHUNK = 500  # ids per IN (…) list: within SQLite's variable limit (PostgreSQL takes each list in one query)


def _chunks(values: list) -> Iterable[list]:
    size = len(values) or 1 if connection.vendor == "postgresql" else _CHUNK
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal: each value double-quoted, its backslashes and quotes escaped. Built in one
    join: psycopg adapts a list element by element in Python, ~10 µs each (thousands of ids per group). The usual
    values (hex ids, response ids) need no escaping: one join, and the quotes counted to make sure."""
    values = values if isinstance(values, list) else list(values)
    if not values:
        return "{}"
    joined = '","'.join(values)
    if "\\" not in joined and joined.count('"') == 2 * (len(values) - 1):  # only the separators' quotes
        return '{"' + joined + '"}'
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') if ("\\" in v or '"' in v) else v for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


class _AnyOf(Lookup):
    """`field = ANY(%s::text[])`: the values as one array parameter (PostgreSQL), not a statement of thousands of
    placeholders; passed as one text[] literal."""

    lookup_name = "any_of"
    prepare_rhs = False  # the list goes to the driver as one literal, not through the field's to_python

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::text[])", [*params, _text_array(self.rhs)]


def _among(field: str, values: list) -> Iterable[Q | Lookup]:
    """Filters that together select the rows whose `field` is one of `values`: one `= ANY(array)` on PostgreSQL,
    IN lists of _CHUNK values elsewhere (SQLite's variable limit)."""
    if not values:
        return
    if connection.vendor == "postgresql":
        yield _AnyOf(F(field), values)
        return
    for chunk in _chunks(values):
        yield Q(**{f"{field}__in": chunk})


@dataclass
class OtlpIngestResult:
    accepted: int
    rejected: int
    error_message: str
    batch_id: int | None = None


def otlp_ingest(*, api_key: ApiKey, body: bytes, json_body: bool, now: datetime | None = None) -> OtlpIngestResult:
    """Decode an export and store its span records in one write; queue their processing after commit.

    Raises `OtlpDecodeError` for a body that is not an export. Spans with bad ids or whose call breaks
    the wire format's rules are refused (counted, with the first few reasons); the rest are stored.
    """
    now = now or timezone.now()
    records: list[SpanIn] = []
    errors: list[str] = []
    rejected = 0
    for record, error in export_records(body, json_body=json_body, now=now):
        if record is None:
            rejected += 1
            if len(errors) < MAX_ERRORS_IN_RESPONSE:
                errors.append(error)
        else:
            records.append(record)
    batch_id = None
    if records:
        batch = RawBatch.store(org_id=api_key.org_id, kind=RawBatch.Kind.OTLP, api_key_id=api_key.pk,
                               payload=spans_encode(records), event_count=len(records), received_at=timezone.now())
        batch_id = batch.pk
        batch_drain_on_commit(batch)
    if rejected:  # spans are not events until they resolve into calls: only the refused ones are counted here
        refused = [{"errors": {"otlp_span": "refused"}}] * rejected
        transaction.on_commit(lambda: metrics.events_counted(accepted=0, rejected=refused,
                                                             known_fields=("otlp_span",)))
    message = ""
    if rejected:
        message = f"{rejected} span(s) refused: " + "; ".join(errors)
        if rejected > len(errors):
            message += "; …"
    return OtlpIngestResult(accepted=len(records), rejected=rejected, error_message=message[:2000],
                            batch_id=batch_id)


# --- processing ---------------------------------------------------------------------------------

def _wait() -> timedelta:
    return timedelta(seconds=float(settings.LLMOBSERVE_OTLP_RESOLVE_WAIT))


StoreGroup = Callable[..., int]  # services._store_group(org_id, book, group, sources) -> new events


def otlp_spans_process(*, org_id: int, book, group: list[tuple[RawBatch, list[SpanIn]]], now: datetime,
                       store: StoreGroup) -> int:
    """Resolve the spans of `group` (OTLP batches of one org) with what is stored of their traces, store the
    calls that are ready, then insert the new spans (already marked when resolved); new events stored.

    Runs inside the caller's transaction. A span already stored (a re-sent export) is left as it is.
    """
    with _gc_paused():
        return _spans_process(org_id=org_id, book=book, group=group, now=now, store=store)


@contextmanager
def _gc_paused():
    """Resolving a group allocates a few objects per span (records, nodes, events, rows), all freed by
    reference counting; the cyclic collector, triggered by the allocation count, would walk the whole
    worker heap many times per group (half the worker's time in bench/otlp.py). Paused for one group."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


OTLP_LOCK_NAMESPACE = 0x4F544C  # advisory lock key space of span resolution ("OTL")


def _org_lock(org_id: int) -> None:
    """PostgreSQL: one org's span groups are resolved one at a time. Two concurrent groups could not see each
    other's spans: a call in one whose parent is in the other would wait out the bounded wait for an ancestor
    that has arrived. Taken after decoding, so the next group's decoding overlaps this one's resolution."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [OTLP_LOCK_NAMESPACE, org_id])


def _spans_process(*, org_id: int, book, group: list[tuple[RawBatch, list[SpanIn]]], now: datetime,
                   store: StoreGroup) -> int:
    _org_lock(org_id)
    traces = {span.trace_id for _, spans in group for span in spans}
    # The org's calls that waited long enough come along: without beat (`make demo`) nothing else emits them.
    traces.update(OtlpSpan.objects.unscoped().filter(
        org_id=org_id, is_call=True, emitted_at__isnull=True, first_seen_at__lte=now - _wait(),
    ).values_list("trace_id", flat=True)[:_CHUNK])
    by_trace, recorded = _spans_of(org_id, sorted(traces))
    fresh: list[_Node] = []
    for raw, spans in group:
        for span in spans:
            nodes = by_trace[span.trace_id]
            if span.span_id in nodes:
                continue
            node = nodes[span.span_id] = _Node(
                None, span.trace_id, span.span_id, span.parent_span_id, span.label, span.section_path,
                span.customer_id, span.call is not None, span.response_id, span.rank, span.source, raw.api_key_id,
                raw.received_at, now, "", span.call)
            fresh.append(node)
    new_events = _resolve(org_id=org_id, book=book, by_trace=by_trace, now=now, store=store)
    adapt = connection.ops.adapt_datetimefield_value
    seen = adapt(now)
    # The calls still pending get a row, with their mapped call. A call resolved here (counted, or superseded
    # by another span) is not written: a later span can only need it as the parent of a late inner call, which
    # then waits and counts on its own (docs/architecture.md).
    _spans_insert([
        (org_id, n.trace_id, n.span_id, n.parent_span_id, n.label, n.section_path, n.customer_id, n.is_call,
         n.response_id, n.rank, n.source, call_encode(n.call), n.api_key_id, adapt(n.received_at), seen, "", None)
        for n in fresh if n.is_call and n.outcome == OtlpSpan.Outcome.PENDING])
    # Every non-call span goes into its trace's hierarchy record: a later span may hang below it (children
    # usually arrive first, but concurrent exports and workers reorder them).
    _hierarchy_write(org_id, by_trace, recorded, {n.trace_id for n in fresh if not n.is_call}, seen)
    return new_events


class HierarchySpan(msgspec.Struct, array_like=True, gc=False):
    """A non-call span in its trace's `OtlpTrace` record: what a path and a customer are built from."""

    span_id: str
    parent_span_id: str
    label: str
    section_path: str | None
    customer_id: str | None


_hierarchy_encode = msgspec.msgpack.Encoder().encode
_hierarchy_decode = msgspec.msgpack.Decoder(list[HierarchySpan]).decode


_BINARY_TYPES = {"bigint": "int8", "integer": "int4", "smallint": "int2", "boolean": "bool", "bytea": "bytea",
                 "timestamp with time zone": "timestamptz", "varchar": "text", "text": "text"}


@functools.cache
def _binary_copy_types(model, columns: tuple[str, ...]) -> tuple[str, ...]:
    """The types a binary `COPY` of these columns sends, from the model's fields (a varchar's binary form is
    text's). Binary, not text: in text a bytea column's bytes travel hex-escaped, formatted here and parsed back by
    the server (~900 bytes a hierarchy record of bench/otlp.py's: 14 + 18 µs of CPU a row against 2.4 + 5)."""
    fields = {field.column: field for field in model._meta.concrete_fields}
    return tuple(_BINARY_TYPES[fields[column].db_type(connection).split("(")[0]] for column in columns)


def _copy_rows(model, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """PostgreSQL: `rows` into the model's table by one binary `COPY`."""
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
                                ) as copy:
            copy.set_types(_binary_copy_types(model, columns))
            for row in rows:
                copy.write_row(row)


_HIERARCHY_COLUMNS = ("org_id", "trace_id", "spans", "first_seen_at", "last_seen_at")


def _hierarchy_write(org_id: int, by_trace: dict[str, dict[str, _Node]], recorded: set[str], traces: set[str],
                     seen) -> None:
    """Write the hierarchy record of each of `traces` (which have new non-call spans): the record's spans and the
    new ones. PostgreSQL: the new records in one COPY (as `_spans_insert`: the org's groups resolve one at a
    time, so none exists yet), the others rewritten by key; elsewhere an upsert."""
    if not traces:
        return
    rows = []
    for trace_id in sorted(traces):
        blob = _hierarchy_encode([  # tuples: the bytes of array-like HierarchySpans, without building them
            (n.span_id, n.parent_span_id, n.label, n.section_path, n.customer_id)
            for n in by_trace[trace_id].values() if not n.is_call and n.pk is None])
        rows.append((org_id, trace_id, blob, seen, seen))
    table = OtlpTrace._meta.db_table
    columns = ", ".join(_HIERARCHY_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (org_id, "
                               f"trace_id) DO UPDATE SET spans = excluded.spans, last_seen_at = excluded.last_seen_at",
                               rows)
            return
        new = [row for row in rows if row[1] not in recorded]
        if new:
            _copy_rows(OtlpTrace, _HIERARCHY_COLUMNS, new)
        if len(new) < len(rows):
            cursor.executemany(f"UPDATE {table} SET spans = %s, last_seen_at = %s WHERE org_id = %s AND trace_id = %s",
                               [(blob, last, org, trace) for org, trace, blob, _, last in rows if trace in recorded])


_INSERT_COLUMNS = ("org_id", "trace_id", "span_id", "parent_span_id", "label", "section_path", "customer_id", "is_call",
                   "response_id", "rank", "source", "call", "api_key_id", "received_at", "first_seen_at", "outcome",
                   "emitted_at")


def _spans_insert(rows: list[tuple]) -> None:
    """Write the new spans. PostgreSQL: one binary COPY straight into the table — the rows are the spans of these
    traces not stored yet (`_spans_of` read them all), so only a racing worker's identical span can
    conflict, which fails this group and it is processed again alone (where the span is then found).
    Elsewhere: INSERT … ON CONFLICT DO NOTHING as multi-row VALUES in chunks."""
    if not rows:
        return
    table = OtlpSpan._meta.db_table
    cols = ", ".join(_INSERT_COLUMNS)
    if connection.vendor == "postgresql":
        _copy_rows(OtlpSpan, _INSERT_COLUMNS, rows)
        return
    placeholders = "(" + ", ".join(["%s"] * len(_INSERT_COLUMNS)) + ")"
    chunk = max(1, 30000 // len(_INSERT_COLUMNS))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            cursor.execute(f"INSERT INTO {table} ({cols}) VALUES {', '.join([placeholders] * len(part))} "
                           f"ON CONFLICT (org_id, trace_id, span_id) DO NOTHING", [v for row in part for v in row])


_SPAN_FIELDS = ("pk", "trace_id", "span_id", "parent_span_id", "label", "section_path", "customer_id", "is_call",
                "response_id", "rank", "source", "api_key_id", "received_at", "first_seen_at", "outcome")


class _Node(msgspec.Struct, gc=False, eq=False):
    """A span of a trace being resolved: a stored row (`pk`) or one of the batch (`pk` None, `call` set).

    A Struct, built positionally in _SPAN_FIELDS' order: 0.10 µs against 0.38 for a class's `__init__` with
    slots (timeit), for ~2.6 nodes a call. Untracked by the cyclic collector: it refers to texts, numbers, times
    and a call, never back. Equal only to itself, as a plain object (`eq=False`)."""

    pk: int | None
    trace_id: str
    span_id: str
    parent_span_id: str
    label: str
    section_path: str | None
    customer_id: str | None
    is_call: bool
    response_id: str
    rank: int
    source: str
    api_key_id: int | None
    received_at: datetime | None
    first_seen_at: datetime | None
    outcome: str
    call: EventIn | None = None


assert _Node.__struct_fields__ == (*_SPAN_FIELDS, "call")  # `_Node(*values)` reads rows of _SPAN_FIELDS


def _spans_of(org_id: int, trace_ids: list[str]) -> tuple[dict[str, dict[str, _Node]], set[str]]:
    """(trace id → span id → the stored span (a call's without its call blob), the traces with a hierarchy
    record). A span of a hierarchy record is a node without a pk."""
    by_trace: dict[str, dict[str, _Node]] = defaultdict(dict)
    rows = [values for among in _among("trace_id", trace_ids) for values in OtlpSpan.objects.unscoped().filter(
        among, org_id=org_id).values_list(*_SPAN_FIELDS)]
    for values in rows:
        span = _Node(*values)
        by_trace[span.trace_id][span.span_id] = span
    recorded: set[str] = set()
    for among in _among("trace_id", trace_ids):
        for trace_id, blob in OtlpTrace.objects.unscoped().filter(among, org_id=org_id).values_list("trace_id",
                                                                                                   "spans"):
            recorded.add(trace_id)
            nodes = by_trace[trace_id]
            for h in _hierarchy_decode(bytes(blob)):
                if h.span_id not in nodes:
                    nodes[h.span_id] = _Node(None, trace_id, h.span_id, h.parent_span_id, h.label, h.section_path,
                                             h.customer_id, False, "", 0, "", 0, None, None, "")
    return by_trace, recorded


def _ancestors(span: _Node, spans: dict[str, _Node]) -> tuple[list[_Node], bool]:
    """The span's ancestors, nearest first, and whether the chain reaches a root (complete)."""
    chain: list[_Node] = []
    seen = {span.span_id}
    parent = span.parent_span_id
    while parent:
        node = spans.get(parent)
        if node is None or parent in seen:  # not arrived yet (or a cycle: treat as incomplete)
            return chain, False
        seen.add(parent)
        chain.append(node)
        parent = node.parent_span_id
    return chain, True


def _ancestors_shared(span: _Node, spans: dict[str, _Node], complete_chains: dict[int, list[_Node]]
                      ) -> tuple[list[_Node], bool, bool]:
    """`_ancestors`, sharing the chain of a parent met before: the calls of a trace hang below a few agent and tool
    spans. (chain, complete, shared): a shared chain is the list of an earlier call with the same parent (not to be
    changed) and the nodes in it were already seen. Only complete chains are shared (no gap, no cycle)."""
    parent = spans.get(span.parent_span_id) if span.parent_span_id else None
    if parent is None or parent is span:
        chain, complete = _ancestors(span, spans)
        return chain, complete, False
    chain = complete_chains.get(id(parent))
    if chain is not None:
        return chain, True, True
    chain, complete = _ancestors(span, spans)
    if complete:
        complete_chains[id(parent)] = chain
    return chain, complete, False


def _path(span: _Node, chain: list[_Node]) -> str:
    """Root first: the nearest explicit llmobserve.section_path, then the labels below it; duplicates in a
    row collapse; cut at whole segments to the wire limit."""
    labels: list[str] = []
    prefix = ""
    for node in [span, *chain]:
        if node.section_path:
            prefix = node.section_path
            break
        if node.label:
            labels.append(node.label)
    segments: list[str] = []
    for segment in [*(prefix.split("/") if prefix else []), *reversed(labels)]:
        if segment and (not segments or segments[-1] != segment):
            segments.append(segment)
    path = ""
    for segment in segments:
        candidate = f"{path}/{segment}" if path else segment
        if len(candidate) > PATH_MAX:
            break
        path = candidate
    return path


def _customer(span: _Node, chain: list[_Node], call: EventIn | None) -> str | None:
    if call is not None and call.customer_id:
        return call.customer_id
    for node in [span, *chain]:
        if node.customer_id:
            return node.customer_id
    return None


def _resolve(*, org_id: int, book, by_trace: dict[str, dict[str, _Node]], now: datetime, store: StoreGroup) -> int:
    """Emit the call spans of these traces that are ready; mark the ones another span counts for.

    Innermost wins: a call span with a call below it is not counted, nor one below an already counted
    call. One response id, one call: among its pending spans the best ranked (the provider SDK's own
    span before an instrumentation library's) is counted, under an event id derived from the response id.
    Outcomes are set on the nodes; stored rows are updated here, the batch's new ones are inserted after.
    """
    pending: list[tuple[_Node, list[_Node], bool]] = []
    has_call_below: set[int] = set()
    complete_chains: dict[int, list[_Node]] = {}  # id(parent) → its calls' chain (`_ancestors_shared`)
    pending_outcome = OtlpSpan.Outcome.PENDING
    for spans in by_trace.values():
        for span in spans.values():
            if not span.is_call:
                continue
            chain, complete, shared = _ancestors_shared(span, spans, complete_chains)
            if not shared:
                has_call_below.update(map(id, chain))
            if span.outcome == pending_outcome:
                pending.append((span, chain, complete))
    if not pending:
        return 0
    deadline = now - _wait()
    # An overdue call whose chain stops at a span counted as a call (a parent call span resolved and not
    # kept before this late child arrived) is below a counted call, as if that span were still stored.
    missing: dict[tuple[str, str], list[_Node]] = defaultdict(list)
    for span, chain, complete in pending:
        if not complete and span.first_seen_at <= deadline:
            missing[(span.trace_id, chain[-1].parent_span_id if chain else span.parent_span_id)].append(span)
    below_counted = {id(span) for key in _counted_spans(org_id, list(missing)) for span in missing[key]}
    superseded: list[_Node] = []
    superseded_pks: list[int] = []
    ready: list[tuple[_Node, list[_Node], bool]] = []  # (span, its ancestors, complete)
    waiting_responses: set[str] = set()
    for span, chain, complete in pending:
        if id(span) in has_call_below or id(span) in below_counted or any(
                n.is_call and n.outcome == OtlpSpan.Outcome.EVENT for n in chain):
            superseded.append(span)
        elif complete or span.first_seen_at <= deadline:
            ready.append((span, chain, complete))
        elif span.response_id:
            waiting_responses.add(span.response_id)
    ready = _one_per_response(org_id, ready, superseded, superseded_pks, waiting_responses)
    calls = _calls_of([span.pk for span, _, _ in ready if span.call is None])
    events_by_key: dict[tuple[int, datetime], list[EventIn]] = defaultdict(list)
    sources: dict[str, tuple[str, int | None]] = {}
    # A call with no label, path or customer of its own takes its parent's: computed once per parent (complete
    # chains only, which are shared per parent: `_ancestors_shared`).
    parent_paths: dict[int, tuple[str, str | None]] = {}
    for span, chain, complete in ready:
        event = span.call if span.call is not None else calls[span.pk]
        event.event_id = event_id_for(trace_id=span.trace_id, span_id=span.span_id, provider=event.provider,
                                      response_id=span.response_id)
        event.run_id, event.span_id = span.trace_id, span.span_id
        event.parent_span_id = span.parent_span_id or None
        if complete and chain and not (span.label or span.section_path or span.customer_id):
            inherited = parent_paths.get(id(chain[0]))
            if inherited is None:
                inherited = parent_paths[id(chain[0])] = (_path(chain[0], chain[1:]),
                                                          _customer(chain[0], chain[1:], None))
            event.section_path = inherited[0]
            event.customer_id = event.customer_id or inherited[1]
        else:
            event.section_path = _path(span, chain)
            event.customer_id = _customer(span, chain, event)
        event.section = event.section_path.rsplit("/", 1)[-1] if event.section_path else ""
        reported = usd_to_pico(event.cost_usd, exact=False) if event.cost_usd is not None else None
        sources[event.event_id] = (span.source or "otlp", reported)
        events_by_key[(span.api_key_id, span.received_at)].append(event)
    new_events = 0
    if events_by_key:
        _response_times_adopt(org_id, [event for events in events_by_key.values() for event in events])
        group = [(SimpleNamespace(api_key_id=key_id, received_at=received), events)
                 for (key_id, received), events in events_by_key.items()]
        new_events = store(org_id, book, group, sources)
    for nodes, outcome in (([span for span, _, _ in ready], OtlpSpan.Outcome.EVENT),
                           (superseded, OtlpSpan.Outcome.SUPERSEDED)):
        for node in nodes:
            node.outcome = outcome
        _mark(org_id, [node.pk for node in nodes if node.pk is not None], outcome, now)
    _mark(org_id, superseded_pks, OtlpSpan.Outcome.SUPERSEDED, now)
    return new_events


RESPONSE_SPANS_WITHIN = timedelta(days=1)  # the spans of one provider response start this close to each other


def _response_times_adopt(org_id: int, events: list[EventIn]) -> None:
    """One provider response, one event, whichever of its spans counts: every span of a response takes the
    timestamp its event was first stored with (else the first of these spans'), so the events table's
    (org, event_id, timestamp) key drops a later span of it like a re-sent event. One indexed read of the
    events, no write: the org's span groups are resolved one at a time (`_org_lock`), so an earlier span's
    event is committed before this group looks for it.

    The read is bounded to RESPONSE_SPANS_WITHIN around these spans' timestamps: the spans of one response
    measure the same provider call (a re-sent span keeps its own timestamp and needs no adoption), and the
    bound lets PostgreSQL read the one or two monthly partitions that can hold them instead of probing every
    partition the retention keeps for each id."""
    keyed = [event for event in events if event.event_id.startswith(RESPONSE_PREFIX)]
    if not keyed:
        return
    first: dict[str, datetime] = {}
    since = min(event.timestamp for event in keyed) - RESPONSE_SPANS_WITHIN
    until = max(event.timestamp for event in keyed) + RESPONSE_SPANS_WITHIN
    stored = [row for among in _among("event_id", sorted({event.event_id for event in keyed}))
              for row in TraceEvent.objects.unscoped().filter(among, org_id=org_id, timestamp__gte=since,
                                                               timestamp__lte=until)
              .order_by("timestamp").values_list("event_id", "timestamp")]
    for event_id, timestamp in stored:
        first.setdefault(event_id, timestamp)
    for event in keyed:
        event.timestamp = first.setdefault(event.event_id, event.timestamp)


def _counted_spans(org_id: int, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which (trace id, span id) were stored as events (an OTLP event's run id is its trace id)."""
    found: set[tuple[str, str]] = set()
    for chunk in _chunks(keys):
        found.update(TraceEvent.objects.unscoped().filter(
            org_id=org_id, run_id__in={trace for trace, _ in chunk}, span_id__in={span for _, span in chunk},
        ).values_list("run_id", "span_id"))
    return found & set(keys)


def _one_per_response(org_id: int, ready: list[tuple[_Node, list[_Node], bool]], superseded: list[_Node],
                      superseded_pks: list[int], waiting: set[str]) -> list[tuple[_Node, list[_Node], bool]]:
    """Keep one ready span per response id: the best ranked of all its pending spans (any trace).

    If that one is still waiting for its ancestors, the whole response waits with it.
    """
    by_response: dict[str, list[tuple[_Node, list[_Node], bool]]] = defaultdict(list)
    keep = []
    for item in ready:
        if item[0].response_id:
            by_response[item[0].response_id].append(item)
        else:
            keep.append(item)
    if not by_response:
        return keep
    others: dict[str, list[tuple[int, int]]] = defaultdict(list)  # stored pending spans not ready here
    ready_pks = {item[0].pk for items in by_response.values() for item in items}
    response_ids = sorted(by_response)
    for pk, response_id, rank in _pending_of_responses(org_id, response_ids):
        if pk not in ready_pks:
            others[response_id].append((pk, rank))
    for response_id, items in by_response.items():
        if len(items) == 1 and response_id not in others:  # the usual response: one span, none stored before
            if response_id not in waiting:
                keep.append(items[0])
            continue
        items.sort(key=lambda item: (item[0].rank, item[0].first_seen_at, item[0].span_id))
        best = items[0]
        rivals = others.get(response_id, [])
        if response_id in waiting or any(rank < best[0].rank for _, rank in rivals):
            continue  # a better span of this response has not resolved yet: decide when it does
        keep.append(best)
        superseded.extend(item[0] for item in items[1:])
        superseded_pks.extend(pk for pk, _ in rivals)
    return keep


def _pending_of_responses(org_id: int, response_ids: list[str]) -> list[tuple[int, str, int]]:
    """(pk, response id, rank) of the stored pending call spans of these responses (any trace); `response_id <> ''`
    lets PostgreSQL answer from the partial response index."""
    return [row for among in _among("response_id", response_ids) for row in OtlpSpan.objects.unscoped().filter(
        among, org_id=org_id, is_call=True, outcome=OtlpSpan.Outcome.PENDING,
    ).exclude(response_id="").values_list("pk", "response_id", "rank")]


def _calls_of(pks: list[int]) -> dict[int, EventIn]:
    calls: dict[int, EventIn] = {}
    for start in range(0, len(pks), _CHUNK):
        for pk, blob in OtlpSpan.objects.unscoped().filter(pk__in=pks[start:start + _CHUNK]).values_list("pk", "call"):
            calls[pk] = call_decode(bytes(blob))
    return calls


def _mark(org_id: int, pks: Iterable[int], outcome: str, now: datetime) -> None:
    """Resolved: the call blob is no longer needed."""
    pks = sorted(set(pks))
    for start in range(0, len(pks), _CHUNK):
        OtlpSpan.objects.unscoped().filter(org_id=org_id, pk__in=pks[start:start + _CHUNK]).update(
            outcome=outcome, emitted_at=now, call=None)


def otlp_resolve_due(*, now: datetime, store: StoreGroup, session_setup: Callable[[], None], limit: int = 2000
                     ) -> int:
    """Beat: emit the call spans that waited LLMOBSERVE_OTLP_RESOLVE_WAIT for their ancestors, with the path
    built from what has arrived; then prune spans older than PRUNE_AFTER. Returns the new events."""
    due: dict[int, set[str]] = defaultdict(set)
    for org_id, trace_id in (OtlpSpan.objects.unscoped()
                             .filter(is_call=True, emitted_at__isnull=True, first_seen_at__lte=now - _wait())
                             .order_by("first_seen_at").values_list("org_id", "trace_id")[:limit]):
        due[org_id].add(trace_id)
    new_events = 0
    book = price_book_get() if due else None
    for org_id, trace_ids in sorted(due.items()):
        with transaction.atomic():
            if connection.vendor == "postgresql":
                session_setup()
            _org_lock(org_id)
            new_events += _resolve(org_id=org_id, book=book, by_trace=_spans_of(org_id, sorted(trace_ids))[0],
                                   now=now, store=store)
    otlp_spans_prune(now=now)
    return new_events


def otlp_spans_prune(*, now: datetime) -> int:
    """Spans resolved (or never calls) and older than PRUNE_AFTER, and hierarchy records whose trace had no new
    span for PRUNE_AFTER: the hierarchy no longer needs them. Rows deleted."""
    old_spans = OtlpSpan.objects.unscoped().filter(first_seen_at__lt=now - PRUNE_AFTER).filter(
        Q(emitted_at__isnull=False) | Q(is_call=False))
    old_traces = OtlpTrace.objects.unscoped().filter(last_seen_at__lt=now - PRUNE_AFTER)
    deleted = 0
    for model, old in ((OtlpSpan, old_spans), (OtlpTrace, old_traces)):
        pks = list(old.values_list("pk", flat=True)[:20000])
        for start in range(0, len(pks), _CHUNK):
            deleted += model.objects.unscoped().filter(pk__in=pks[start:start + _CHUNK]).delete()[0]
    return deleted

