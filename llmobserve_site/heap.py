"""The loaded application's objects kept out of the cyclic garbage collector's full collections."""

from __future__ import annotations

import gc


def app_heap_freeze() -> None:
    """Move every object alive now to the collector's permanent generation.

    Called once a web or worker process has loaded the application (Django, its apps, the URLconf, the price
    table: ~190,000 objects in a web worker, ~240,000 in a worker). They live as long as the process, yet each full
    collection walked them all again — 80–240 ms of CPU each, a few per bench/otlp.py phase in every web and worker
    process, in the middle of a request or a batch. Frozen, a full collection walks only what came after. Garbage
    is collected first, so nothing dead is kept. (The gc module's docs recommend this for pre-fork servers.)"""
    gc.collect()
    gc.freeze()
