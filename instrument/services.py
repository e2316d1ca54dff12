"""AI auto-instrument: choose an engine, validate its answer, meter and rate-limit our Claude use."""

from __future__ import annotations

import ast
import logging
import warnings
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Organization
from accounts.ratelimit import window_hit

from .claude_engine import ClaudeEngineError, claude_suggest
from .models import InstrumentUsage
from .static_engine import static_suggest
from .validation import Suggestion, suggestions_validate

logger = logging.getLogger(__name__)

ENGINE_CLAUDE, ENGINE_STATIC = "claude", "static"


@dataclass(frozen=True)
class InstrumentResult:
    engine: str
    suggestions: list[Suggestion] = field(default_factory=list)
    dropped: int = 0


class CodeSyntaxError(Exception):
    def __init__(self, message: str, *, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class InstrumentRateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited, retry after {retry_after}s")
        self.retry_after = retry_after


def code_parse(*, code: str, file_path: str) -> ast.Module:
    """The module's AST, or CodeSyntaxError naming the line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes in user code are not our business
            return ast.parse(code, filename=file_path or "<code>")
    except SyntaxError as exc:
        where = f" (line {exc.lineno}, column {exc.offset})" if exc.lineno else ""
        raise CodeSyntaxError(f"{file_path or 'code'} does not parse: {exc.msg}{where}",
                              line=exc.lineno, column=exc.offset) from exc
    except ValueError as exc:  # e.g. NUL bytes
        raise CodeSyntaxError(f"{file_path or 'code'} does not parse: {exc}", line=None, column=None) from exc
    except (RecursionError, MemoryError) as exc:  # e.g. thousands of chained unary operators
        raise CodeSyntaxError(f"{file_path or 'code'} nests expressions too deeply for Python's parser",
                              line=None, column=None) from exc


def rate_limit_org(*, org: Organization) -> None:
    """Per-org requests per minute; raises InstrumentRateLimited (the API answers 429)."""
    limit = settings.LLMOBSERVE_INSTRUMENT_RATE_PER_ORG
    if limit > 0:
        retry_after = window_hit(f"instrument:org:{org.pk}", limit=limit)
        if retry_after is not None:
            raise InstrumentRateLimited(retry_after)


def rate_limit_global_claude() -> bool:
    """May one more Claude call be made this minute, across all orgs? (Protects our Anthropic bill.)"""
    limit = settings.LLMOBSERVE_INSTRUMENT_RATE_GLOBAL
    return limit <= 0 or window_hit("instrument:global", limit=limit) is None


def cost_pico(*, input_tokens: int, output_tokens: int) -> int:
    """Our Anthropic cost in pico-USD: prices are USD per 1M tokens, i.e. price * 10**6 pico per token."""
    per_in = int(Decimal(str(settings.LLMOBSERVE_INSTRUMENT_PRICE_IN)) * 1_000_000)
    per_out = int(Decimal(str(settings.LLMOBSERVE_INSTRUMENT_PRICE_OUT)) * 1_000_000)
    return input_tokens * per_in + output_tokens * per_out


def usage_record(*, org: Organization, claude_calls: int = 0, input_tokens: int = 0, output_tokens: int = 0,
                 fallbacks: int = 0) -> None:
    """Add one request to the org's row for today (UTC), atomically."""
    day = timezone.now().date()
    with transaction.atomic():
        row, _ = InstrumentUsage.objects.for_org(org).get_or_create(org=org, day=day)
        InstrumentUsage.objects.for_org(org).filter(pk=row.pk).update(
            requests=F("requests") + 1,
            claude_calls=F("claude_calls") + claude_calls,
            input_tokens=F("input_tokens") + input_tokens,
            output_tokens=F("output_tokens") + output_tokens,
            cost_pico=F("cost_pico") + cost_pico(input_tokens=input_tokens, output_tokens=output_tokens),
            fallbacks=F("fallbacks") + fallbacks,
        )


def code_instrument(*, org: Organization, code: str, file_path: str) -> InstrumentResult:
    """Suggestions for one file. Claude when the server has a key, the static engine otherwise or on failure.

    Raises CodeSyntaxError (before any usage is metered). The caller applies rate_limit_org first,
    before it even reads the request body.
    """
    tree = code_parse(code=code, file_path=file_path)
    if not (settings.ANTHROPIC_API_KEY and org.is_active):
        usage_record(org=org)
        return InstrumentResult(engine=ENGINE_STATIC, suggestions=static_suggest(tree=tree))
    if not rate_limit_global_claude():
        logger.warning("ai-instrument: global Claude rate reached, org %s answered by the static engine", org.pk)
        usage_record(org=org, fallbacks=1)
        return InstrumentResult(engine=ENGINE_STATIC, suggestions=static_suggest(tree=tree))
    try:
        answer = claude_suggest(code=code, file_path=file_path)
    except ClaudeEngineError as exc:
        logger.warning("ai-instrument: Claude failed for org %s (%s); static fallback", org.pk, exc)
        usage_record(org=org, claude_calls=1, input_tokens=exc.input_tokens, output_tokens=exc.output_tokens,
                     fallbacks=1)
        return InstrumentResult(engine=ENGINE_STATIC, suggestions=static_suggest(tree=tree))
    suggestions, dropped = suggestions_validate(tree=tree, raw=answer.suggestions)
    usage_record(org=org, claude_calls=1, input_tokens=answer.input_tokens, output_tokens=answer.output_tokens)
    return InstrumentResult(engine=ENGINE_CLAUDE, suggestions=suggestions, dropped=dropped)
