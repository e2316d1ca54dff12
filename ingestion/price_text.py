"""A readable text form of a price row's `unit_prices`, `time_windows` and `variants` (the admin edits these,
not raw JSON; JSON is still accepted, as the CSV importer sends it).

    unit prices   one per line:  web_searches_kcount = 10
    time windows  one per line:  00:30-16:30 | input_mtok=0.27 cache_read_mtok=0.07 output_mtok=1.1
    variants      one per line:  processing=batch from 2026-10-14 | input_mtok=1.25 output_mtok=5
                                 service_tier=priority window 01:00-04:00 | input_mtok=4.25 | @200000 input_mtok=8.5

After the prices, each `| @N key=value …` segment is a long-context tier (input above N tokens).
"""

from __future__ import annotations

import json
import re

from .price_units import price_key_canonical


class PriceTextError(ValueError):
    pass


_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")


def _pairs(text: str, *, line: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in text.replace(",", " ").split():
        key, sep, value = token.partition("=")
        if not sep or not key or not value:
            raise PriceTextError(f"line {line}: expected key=value, got {token!r}")
        if price_key_canonical(key) is None:
            raise PriceTextError(f"line {line}: unknown price key {key!r}")
        out[key] = value
    return out


def _prices_and_tiers(segments: list[str], *, line: int) -> dict:
    item: dict = {"prices": _pairs(segments[0], line=line) if segments else {}}
    tiers = []
    for segment in segments[1:]:
        segment = segment.strip()
        head, _, rest = segment.partition(" ")
        if not head.startswith("@") or not head[1:].isdigit():
            raise PriceTextError(f"line {line}: a tier starts with @<input tokens>, got {head!r}")
        tiers.append({"above": int(head[1:]), **_pairs(rest, line=line)})
    if tiers:
        item["tiers"] = tiers
    return item


def _lines(text: str):
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _json(text: str, kind: type):
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise PriceTextError(f"not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise PriceTextError(f"JSON must be {'an object' if kind is dict else 'a list'}")
    return value


def unit_prices_parse(text: str) -> dict:
    text = (text or "").strip()
    if text.startswith("{"):
        return _json(text, dict)
    out = {}
    for number, line in _lines(text):
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise PriceTextError(f"line {number}: expected price_key = value")
        if price_key_canonical(key) is None:
            raise PriceTextError(f"line {number}: unknown price key {key!r}")
        out[key] = value
    return out


def unit_prices_render(value) -> str:
    return "\n".join(f"{k} = {v}" for k, v in (value or {}).items())


def _span(text: str, *, line: int) -> tuple[str, str]:
    start, sep, end = text.replace("–", "-").partition("-")
    if not sep or not _CLOCK.match(start.strip()) or not _CLOCK.match(end.strip()):
        raise PriceTextError(f"line {line}: expected HH:MM-HH:MM (UTC), got {text!r}")
    return start.strip(), end.strip()


def time_windows_parse(text: str) -> list:
    text = (text or "").strip()
    if text.startswith("["):
        return _json(text, list)
    out = []
    for number, line in _lines(text):
        segments = line.split("|")
        start, end = _span(segments[0].strip(), line=number)
        out.append({"start": start, "end": end, **_prices_and_tiers(segments[1:], line=number)})
    return out


def _tiers_render(tiers) -> str:
    return "".join(" | @" + str(t["above"]) + " " + " ".join(f"{k}={v}" for k, v in t.items() if k != "above")
                   for t in tiers or ())


def time_windows_render(value) -> str:
    lines = []
    for w in value or ():
        prices = " ".join(f"{k}={v}" for k, v in (w.get("prices") or {}).items())
        lines.append(f"{w.get('start')}-{w.get('end')} | {prices}{_tiers_render(w.get('tiers'))}")
    return "\n".join(lines)


def variants_parse(text: str) -> list:
    text = (text or "").strip()
    if text.startswith("["):
        return _json(text, list)
    out = []
    for number, line in _lines(text):
        segments = line.split("|")
        if len(segments) < 2:
            raise PriceTextError(f"line {number}: expected <context> | <prices>")
        words = segments[0].split()
        item: dict = {"when": {}}
        i = 0
        while i < len(words):
            word = words[i]
            if word in ("from", "window") and i + 1 < len(words):
                if word == "from":
                    item["from"] = words[i + 1]
                else:
                    item["window"] = list(_span(words[i + 1], line=number))
                i += 2
                continue
            key, sep, value = word.partition("=")
            if not sep or not key or not value:
                raise PriceTextError(f"line {number}: expected context key=value, got {word!r}")
            item["when"][key] = value
            i += 1
        if not item["when"]:
            raise PriceTextError(f"line {number}: a variant needs a context, e.g. processing=batch")
        item.update(_prices_and_tiers(segments[1:], line=number))
        out.append(item)
    return out


def variants_render(value) -> str:
    lines = []
    for v in value or ():
        head = " ".join(f"{k}={val}" for k, val in (v.get("when") or {}).items())
        if v.get("from"):
            head += f" from {v['from']}"
        if v.get("window"):
            head += f" window {v['window'][0]}-{v['window'][1]}"
        prices = " ".join(f"{k}={val}" for k, val in (v.get("prices") or {}).items())
        lines.append(f"{head} | {prices}{_tiers_render(v.get('tiers'))}")
    return "\n".join(lines)
