"""The write side: prices, raw batches, events and the rollups the processing task maintains.

Money is integer pico-USD (1e-12 USD) everywhere: exact on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone as dt_timezone

import psycopg
from django.db import connections, models, router
from django.utils import timezone

from accounts.models import Organization, TenantManager, TenantModel

from .histograms import HistogramField

EPOCH = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)
PRICE_DIGITS = {"max_digits": 18, "decimal_places": 6}  # USD per 1M tokens, up to six decimals


class ModelPrice(TenantModel):
    """USD per 1M tokens for a provider's model(s), effective from a date; optionally one org's override."""

    class MatchKind(models.TextChoices):
        EXACT = "exact", "Exact name"
        PREFIX = "prefix", "Prefix"
        REGEX = "regex", "Regular expression"

    org = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="prices",
                            help_text="Empty: the global price. Set: this organisation's override.")
    provider = models.CharField(max_length=64, db_index=True)
    match_kind = models.CharField(max_length=8, choices=MatchKind.choices, default=MatchKind.EXACT)
    model_match = models.CharField(max_length=256, help_text="Model name, prefix or regex (full match).")
    display_name = models.CharField(max_length=256, blank=True)
    input_mtok = models.DecimalField("input $/1M", **PRICE_DIGITS, default=0)
    output_mtok = models.DecimalField("output $/1M", **PRICE_DIGITS, default=0)
    cached_input_mtok = models.DecimalField("cache read $/1M", **PRICE_DIGITS, null=True, blank=True,
                                            help_text="Empty: the input price.")
    cache_write_mtok = models.DecimalField("cache write $/1M", **PRICE_DIGITS, null=True, blank=True,
                                           help_text="5-minute cache write. Empty: the input price.")
    cache_write_1h_mtok = models.DecimalField("cache write 1h $/1M", **PRICE_DIGITS, null=True, blank=True)
    tiers = models.JSONField(default=list, blank=True, help_text=(
        'Long-context tiers: [{"above": 200000, "input_mtok": "2.5", "output_mtok": "15", '
        '"cached_input_mtok": "0.625", "cache_write_mtok": "..."}]. A request whose input exceeds '
        '"above" pays the tier price for every token.'))
    per_request_usd = models.DecimalField("$ per request", max_digits=18, decimal_places=12, null=True, blank=True)
    per_unit_usd = models.DecimalField("$ per unit", max_digits=18, decimal_places=12, null=True, blank=True)
    unit_field = models.CharField(max_length=64, blank=True,
                                  help_text="Metadata key holding the unit count (e.g. read_units).")
    unit_prices = models.JSONField(default=dict, blank=True, help_text=(
        'Prices of further units, keyed by the registry\'s price keys (the unit and its "per" in one name): '
        '{"web_searches_kcount": "10", "input_audio_mtok": "40"}. docs/pricing.md lists them.'))
    time_windows = models.JSONField(default=list, blank=True, help_text=(
        'Time-of-day prices (UTC), first active wins: [{"start": "00:30", "end": "16:30", '
        '"prices": {"input_mtok": "0.27", "output_mtok": "1.1"}}]. They replace the row\'s prices in the window.'))
    variants = models.JSONField(default=list, blank=True, help_text=(
        'Prices selected by the call\'s context, first match per price wins: [{"when": {"processing": "batch"}, '
        '"prices": {"input_mtok": "1.25"}, "from": "2026-10-14"}].'))
    effective_from = models.DateTimeField(default=EPOCH, db_index=True)
    source = models.CharField(max_length=32, default="manual")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["provider", "model_match", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "match_kind", "model_match", "effective_from"],
                                    condition=models.Q(org__isnull=True), name="modelprice_unique_global"),
            models.UniqueConstraint(fields=["org", "provider", "match_kind", "model_match", "effective_from"],
                                    condition=models.Q(org__isnull=False), name="modelprice_unique_org"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model_match} ({self.match_kind})"


class PriceDiscount(TenantModel):
    """An org's negotiated discount on a provider's list prices (optionally only on models matching a pattern),
    effective from a date. Applied at ingestion after the list price (docs/pricing.md § Discounts): the call's
    `cost_pico` is the net cost, `list_cost_pico` and `discount_pct` keep the list price and the discount."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="price_discounts")
    provider = models.CharField(max_length=64)
    match_kind = models.CharField(max_length=8, choices=ModelPrice.MatchKind.choices, default=ModelPrice.MatchKind.PREFIX)
    model_match = models.CharField(max_length=256, blank=True,
                                   help_text="Empty: every model of the provider. Else a name, prefix or regex.")
    percent = models.DecimalField(max_digits=7, decimal_places=4,
                                  help_text="Percent off the list price, 0–100 (up to four decimals).")
    effective_from = models.DateTimeField(default=EPOCH)
    note = models.CharField(max_length=256, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    class Meta:
        ordering = ["provider", "model_match", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["org", "provider", "match_kind", "model_match", "effective_from"],
                                    name="pricediscount_unique"),
            models.CheckConstraint(condition=models.Q(percent__gte=0, percent__lte=100),
                                   name="pricediscount_percent_0_100"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model_match or '*'} −{self.percent}%"


class PriceVersion(models.Model):
    """One row: bumped in the same transaction as every price write, so each process (web, worker,
    shell, on any cache backend) notices within a second that its in-memory price book is stale.
    Not tenant data: the price table's global change counter."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"price table version {self.version}"


class RawBatch(TenantModel):
    """An accepted request's valid events, stored in one write before the 202; processed by a task."""

    class Kind(models.TextChoices):
        EVENTS = "events", "Events (/v1/events)"
        OTLP = "otlp", "OTLP spans (/v1/otlp/v1/traces)"
        FOLD = "fold", "Stored events to count in the rollups"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.EVENTS,
                            help_text="events: a list of EventIn; otlp: a list of OTLP span records; fold: the ids "
                                      "of events already stored, not yet counted in the rollups.")
    api_key_id = models.BigIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    payload = models.BinaryField(help_text="msgspec-encoded list of validated events or span records (JSON); event "
                                           "id runs (first, last: 64-bit integers) for a fold batch.")
    event_count = models.PositiveIntegerField(help_text="Events, or spans for an OTLP batch.")
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # A batch whose processing failed is retried by the sweeper from this time (backoff), …
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # … and after MAX_ATTEMPTS it is quarantined: left alone until an operator retries it (admin action).
    quarantined_at = models.DateTimeField(null=True, blank=True)
    failed_events = models.PositiveIntegerField(default=0, help_text="Events the last attempt could not store.")

    objects = TenantManager()

    class Meta:
        indexes = [
            models.Index(fields=["received_at"], name="rawbatch_pending_idx",
                         condition=models.Q(processed_at__isnull=True, quarantined_at__isnull=True)),
            models.Index(fields=["quarantined_at"], name="rawbatch_quarantined_idx",
                         condition=models.Q(quarantined_at__isnull=False)),
        ]

    @property
    def state(self) -> str:
        if self.processed_at is not None:
            return "processed"
        return "quarantined" if self.quarantined_at is not None else "pending"

    @classmethod
    def store(cls, *, org_id: int, kind: str, api_key_id: int, payload: bytes, event_count: int,
              received_at: datetime) -> RawBatch:
        """INSERT a new batch (the request's one write) and return it, its pk set.

        PostgreSQL: one server-side bound statement, the payload a binary parameter. Django's psycopg cursor
        binds client-side: a bytea goes into the statement's text as an escaped hex literal, twice its size,
        which the server parses back before compressing it (lz4, migration 0015). bench/payload_store.py, CPU
        of PostgreSQL + this process: 8.9 → 2.8 µs an event of a 1,000-event batch, 15.3 → 5.2 µs an LLM call
        of a 512-span OTLP export.
        """
        batch = cls(org_id=org_id, kind=kind, api_key_id=api_key_id, payload=payload, event_count=event_count,
                    received_at=received_at)
        alias = router.db_for_write(cls)
        connection = connections[alias]
        if connection.vendor != "postgresql":
            batch.save(force_insert=True, using=alias)
            return batch
        sql, fields = _raw_batch_insert()
        # The payload as bytes, bound in binary (Django's Binary wrapper would be quoted as text).
        values = [payload if f.attname == "payload" else f.get_db_prep_save(getattr(batch, f.attname), connection)
                  for f in fields]
        connection.ensure_connection()
        raw = psycopg.Cursor(connection.connection)  # server-side binding (Django's cursors are ClientCursors)
        # Wrapped as Django wraps its own: errors become django.db's, and the statement is logged and counted.
        with connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw) as cursor:
            cursor.execute(sql, values)
            batch.pk = cursor.fetchone()[0]
        batch._state.adding, batch._state.db = False, alias
        return batch


@functools.cache
def _raw_batch_insert() -> tuple[str, list[models.Field]]:
    """`RawBatch.store`'s statement and the fields it binds, in order: built once per process, not per request."""
    fields = [f for f in RawBatch._meta.concrete_fields if not f.primary_key]
    return (f"INSERT INTO {RawBatch._meta.db_table} ({', '.join(f.column for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {RawBatch._meta.pk.column}"), fields


class TraceEvent(TenantModel):
    """One captured call, priced. Unique per (org, event_id, timestamp): a re-sent event (same id, same
    timestamp) is stored once. On PostgreSQL the table is range-partitioned by month on `timestamp`
    (`ingestion.partitions`), and a partitioned table's unique keys must hold the partition key."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint on the write-hot tables (events, rollups, run summaries and facets): they are only
    # ever written by the worker with its batch's org, and the deferred check each inserted row fires at commit
    # was most of a group's COMMIT (bench/otlp_profile.py: 228 → 6 ms per 12,000 calls). Django still cascades
    # an org's deletion to them.
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    event_id = models.CharField(max_length=64)
    run_id = models.CharField(max_length=128)
    span_id = models.CharField(max_length=64, null=True, blank=True)
    parent_span_id = models.CharField(max_length=64, null=True, blank=True)
    section = models.CharField(max_length=256, blank=True)
    section_path = models.CharField(max_length=1024, blank=True)
    span_type = models.CharField(max_length=16, default="llm")
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=256, blank=True)
    endpoint = models.CharField(max_length=256, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True, help_text="Streams: time to the first body byte.")
    # Histogram bucket indexes (ingestion.histograms.bucket_of), computed once at insert: the fold counts them.
    latency_bucket = models.SmallIntegerField(null=True, blank=True)
    ttft_bucket = models.SmallIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, default="ok")
    http_status = models.IntegerField(null=True, blank=True)
    customer_id = models.CharField(max_length=256, null=True, blank=True)
    stream = models.BooleanField(default=False)
    timestamp = models.DateTimeField()
    cost_pico = models.BigIntegerField(null=True, blank=True, help_text="Null: unpriced.")
    cost_source = models.CharField(max_length=8, default="", blank=True, help_text="price | client | '' (unpriced)")
    price_id = models.BigIntegerField(null=True, blank=True)
    # What priced the call (docs/pricing.md § Provenance): the variant / time window, the kind of price and the
    # price table's version; `billed_cost_pico` is the first cost computed, kept when a re-price changes cost_pico.
    price_variant = models.CharField(max_length=96, blank=True, db_default="")
    price_source = models.CharField(max_length=16, blank=True, db_default="", help_text="registry | admin | override | client")
    price_version = models.BigIntegerField(null=True, blank=True)
    billed_cost_pico = models.BigIntegerField(null=True, blank=True)
    # A negotiated discount (PriceDiscount): cost_pico is the net; the list price and the percent are kept.
    # Both null when no discount applied.
    list_cost_pico = models.BigIntegerField(null=True, blank=True)
    discount_pct = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    service_tier = models.CharField(max_length=32, blank=True, db_default="", help_text="The tier that served the call.")
    processing = models.CharField(max_length=8, blank=True, db_default="", help_text="batch, or empty")
    speed = models.CharField(max_length=32, blank=True, db_default="")
    usage = models.JSONField(default=dict, db_default={}, blank=True,
                             help_text="Usage beyond the token fields: unit → count.")
    metadata = models.JSONField(default=dict, blank=True)
    api_key_id = models.BigIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=160, default="sdk", help_text="sdk, or otlp:<instrumentation scope name>")
    reported_cost_pico = models.BigIntegerField(null=True, blank=True,
                                                help_text="The cost the instrumentation reported (OTLP), kept beside ours.")

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "event_id", "timestamp"], name="traceevent_unique_org_event_ts")]
        indexes = [
            models.Index(fields=["org", "timestamp"], name="traceevent_org_ts_idx"),
            models.Index(fields=["org", "run_id"], name="traceevent_org_run_idx"),
            models.Index(fields=["org", "timestamp"], condition=models.Q(cost_pico__isnull=True),
                         name="traceevent_unpriced_idx"),
        ]


class OtlpSpan(TenantModel):
    """An OTLP span kept while the trace it belongs to is resolved into calls (`ingestion.otlp_services`).

    The hierarchy (non-call spans) is kept in `OtlpTrace`, one record per trace; rows written before migration
    ingestion 0022 may still be non-call spans, read as such until pruned. A call span (`is_call`) is kept only
    if it was still pending when its group was processed (one resolved on arrival is never written), and
    becomes one event once its ancestors have arrived or it has waited LLMOBSERVE_OTLP_RESOLVE_WAIT;
    `emitted_at` is set in the transaction that stores the event. Rows are pruned a day after they arrived.
    """

    class Outcome(models.TextChoices):
        PENDING = "", "Pending"
        EVENT = "event", "Stored as an event"
        SUPERSEDED = "superseded", "Not counted (an inner span or another span of the response is)"

    id = models.BigAutoField(primary_key=True)
    # No database constraint: a transient row (pruned after a day), always written with its batch's org; the
    # deferred check it would fire at each group's commit cost ~20 µs a span. Django still cascades deletes.
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_span_id = models.CharField(max_length=16, blank=True)
    label = models.CharField(max_length=256, blank=True, help_text="This span's section, e.g. agent:planner.")
    section_path = models.CharField(max_length=1024, null=True, blank=True,
                                    help_text="An explicit llmobserve.section_path attribute.")
    customer_id = models.CharField(max_length=256, null=True, blank=True)
    is_call = models.BooleanField(default=False)
    response_id = models.CharField(max_length=256, blank=True)
    rank = models.PositiveSmallIntegerField(default=0, help_text="Among spans of one response: lowest is counted.")
    source = models.CharField(max_length=160, blank=True)
    call = models.BinaryField(null=True, blank=True, help_text="A pending call's mapped fields (msgspec JSON EventIn); dropped once resolved.")
    api_key_id = models.BigIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    first_seen_at = models.DateTimeField(default=timezone.now)
    emitted_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default="", blank=True)

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "trace_id", "span_id"], name="otlpspan_unique")]
        indexes = [
            models.Index(fields=["first_seen_at"], name="otlpspan_pending_idx",
                         condition=models.Q(is_call=True, emitted_at__isnull=True)),
            models.Index(fields=["org", "response_id"], name="otlpspan_response_idx",
                         condition=~models.Q(response_id="")),
            models.Index(fields=["first_seen_at"], name="otlpspan_seen_idx"),
        ]



class OtlpTrace(TenantModel):
    """The hierarchy of an OTLP trace being resolved (`ingestion.otlp_services`): its non-call spans, one record
    per trace rather than a row per span — a later span of the trace (a late child, a call waiting for its
    ancestors) reads its ancestors here. `spans` holds, per span, its id, parent id, section label and explicit
    section path / customer attributes (msgspec msgpack, `otlp_services.HierarchySpan`); a later group with more
    of the trace's non-call spans rewrites it. Pruned a day after the trace's last span arrived."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: a transient row, always written with its batch's org (as OtlpSpan.org).
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    trace_id = models.CharField(max_length=32)
    spans = models.BinaryField()
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "trace_id"], name="otlptrace_unique")]
        indexes = [models.Index(fields=["last_seen_at"], name="otlptrace_seen_idx")]

class RollupSums(TenantModel):
    """The sums every rollup table holds."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: see TraceEvent.org.
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    dims_hash = models.CharField(max_length=40)
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_pico = models.BigIntegerField(default=0)
    latency_ms_sum = models.FloatField(default=0)

    objects = TenantManager()

    class Meta:
        abstract = True


class RollupHistograms(RollupSums):
    """The sums plus what percentiles and error mixes need: calls per status and HTTP class, the exact latency
    and TTFT maxima and count maps (ingestion.histograms: latency and TTFT {bucket index: calls}, {HTTP code ≥
    400: calls}). Only the coarse grains (agent, section, customer, endpoint) keep them: the latency and error
    reads never need the fine grain, and folding them into its many rows per batch would slow ingestion for
    nothing."""

    # Calls with a latency (the mean's divisor), time to first token of streams (calls, sum), calls per
    # non-ok status and per HTTP status class, and the cost of the non-ok calls.
    latency_calls = models.BigIntegerField(default=0)
    ttft_calls = models.BigIntegerField(default=0)
    ttft_ms_sum = models.FloatField(default=0)
    status_error = models.BigIntegerField(default=0)
    status_rate_limited = models.BigIntegerField(default=0)
    status_timeout = models.BigIntegerField(default=0)
    status_cancelled = models.BigIntegerField(default=0)
    http_4xx = models.BigIntegerField(default=0)
    http_5xx = models.BigIntegerField(default=0)
    failed_cost_pico = models.BigIntegerField(default=0)
    latency_ms_max = models.FloatField(null=True, blank=True)
    ttft_ms_max = models.FloatField(null=True, blank=True)
    latency_hist = HistogramField(null=True, blank=True)  # JSON count map on SQLite, packed numeric on PostgreSQL
    ttft_hist = HistogramField(null=True, blank=True)
    http_codes = models.JSONField(null=True, blank=True)

    class Meta:
        abstract = True


class RollupBase(RollupSums):
    """Sums per org × period × (agent, section_path, provider, model, customer, api key).

    `dims_hash` is the MD5 of the dimension values, so the upsert key stays small whatever the
    length of a section path. Untracked = section_path ''; no customer = customer_id ''.
    """

    agent = models.CharField(max_length=256, blank=True)
    section_path = models.CharField(max_length=1024, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=256, blank=True)
    customer_id = models.CharField(max_length=256, blank=True)
    api_key_id = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class AgentRollupBase(RollupHistograms):
    """Sums per org × period × (agent, provider, model) only: what the overview's totals, agent and
    model breakdowns and provider chart need, without the customer × section × key cardinality."""

    agent = models.CharField(max_length=256, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=256, blank=True)

    class Meta:
        abstract = True


class CustomerRollupBase(RollupHistograms):
    """Sums per org × period × customer: the customer lists and trends."""

    customer_id = models.CharField(max_length=256, blank=True)

    class Meta:
        abstract = True


class SectionRollupBase(RollupHistograms):
    """Sums, latency histograms and error counts per org × period × section path: what the latency, error
    and cost breakdowns by section read, without the customer × model × key cardinality."""

    section_path = models.CharField(max_length=1024, blank=True)

    class Meta:
        abstract = True


class EndpointRollupBase(RollupHistograms):
    """Sums, latency histograms and error counts per org × period × (provider, endpoint): the latency and
    error breakdowns by endpoint (the URL path of the call). No endpoint = endpoint ''."""

    provider = models.CharField(max_length=64, blank=True)
    endpoint = models.CharField(max_length=256, blank=True)

    class Meta:
        abstract = True


class EndpointHourlyRollup(EndpointRollupBase):
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "hour", "dims_hash"], name="endpointhourly_unique_key")]


class EndpointDailyRollup(EndpointRollupBase):
    day = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "day", "dims_hash"], name="endpointdaily_unique_key")]


class SectionHourlyRollup(SectionRollupBase):
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "hour", "dims_hash"], name="sectionhourly_unique_key")]


class SectionDailyRollup(SectionRollupBase):
    day = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "day", "dims_hash"], name="sectiondaily_unique_key")]


class CustomerHourlyRollup(CustomerRollupBase):
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "hour", "dims_hash"], name="customerhourly_unique_key")]


class CustomerDailyRollup(CustomerRollupBase):
    day = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "day", "dims_hash"], name="customerdaily_unique_key")]


class AgentHourlyRollup(AgentRollupBase):
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "hour", "dims_hash"], name="agenthourly_unique_key")]


class AgentDailyRollup(AgentRollupBase):
    day = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "day", "dims_hash"], name="agentdaily_unique_key")]


class HourlyRollup(RollupBase):
    """Per UTC hour: windows of a day or less, hourly charts, and the insight detectors."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "hour", "dims_hash"], name="hourlyrollup_unique_key")]


class DailyRollup(RollupBase):
    """Per UTC day (`day` at 00:00 UTC): the whole days of 7- and 30-day windows read 24× fewer rows."""

    day = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "day", "dims_hash"], name="dailyrollup_unique_key")]


# Every rollup table holds the same sums; a grain names its dimension columns and its two tables.
# `ingestion.rollups` generates the one fold that writes all of them (ingestion, re-pricing, rebuild);
# reads pick the coarsest. A new grain: add it here, migrate, and run `manage.py rebuild_rollups`.
ROLLUP_GRAINS: dict[str, tuple[tuple[str, ...], type[RollupSums], type[RollupSums]]] = {
    "fine": (("agent", "section_path", "provider", "model", "customer_id", "api_key_id"), HourlyRollup, DailyRollup),
    "agent": (("agent", "provider", "model"), AgentHourlyRollup, AgentDailyRollup),
    "customer": (("customer_id",), CustomerHourlyRollup, CustomerDailyRollup),
    "section": (("section_path",), SectionHourlyRollup, SectionDailyRollup),
    "endpoint": (("provider", "endpoint"), EndpointHourlyRollup, EndpointDailyRollup),
}


class RunSummary(TenantModel):
    """One row per run, maintained by the processing task: the runs list never groups raw events."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: see TraceEvent.org.
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    run_id = models.CharField(max_length=128)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    unpriced_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_pico = models.BigIntegerField(default=0)
    customer_id = models.CharField(max_length=256, blank=True, help_text="Customer of the earliest labelled event.")
    customer_at = models.DateTimeField(null=True, blank=True, help_text="Time of that event (the fold's merge key).")
    agent = models.CharField(max_length=256, blank=True, help_text="Agent of the earliest labelled event.")
    agent_at = models.DateTimeField(null=True, blank=True, help_text="Time of that event (the fold's merge key).")

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "run_id"], name="runsummary_unique_org_run")]
        indexes = [models.Index(fields=["org", "-started_at"], name="runsummary_org_started_idx")]


class RunFacet(TenantModel):
    """(run, kind, value) pairs that let the runs list filter by section, model, customer or status."""

    class Kind(models.TextChoices):
        AGENT = "agent"
        SECTION = "section"
        MODEL = "model"
        CUSTOMER = "customer"
        STATUS = "status"

    id = models.BigAutoField(primary_key=True)
    # No database constraint: see TraceEvent.org.
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    run_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=1024)

    objects = TenantManager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "kind", "value", "run_id"], name="runfacet_unique")]
