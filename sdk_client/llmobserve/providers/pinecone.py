"""Pinecone: vector queries and upserts, recorded as ``vector_db`` spans with their read units."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ._base import Format, Meta, Parsed, as_int, dig


def classify(path: str) -> Optional[str]:
    if path.endswith(("/query", "/vectors/upsert", "/records/namespaces")) or "/search" in path:
        return "vector_db"
    return None


def body(obj: Dict[str, Any], meta: Meta) -> Parsed:
    units = dig(obj, "usage", "readUnits") or dig(obj, "usage", "read_units")
    if units is not None:
        meta["read_units"] = as_int(units)
    if "upsertedCount" in obj:
        meta["upserted_count"] = as_int(obj.get("upsertedCount"))
    return "", None


FORMAT = Format(
    name="pinecone",
    providers={"pinecone": ()},
    suffixes=((".pinecone.io", "pinecone"),),
    classify=classify,
    body=body,
)
