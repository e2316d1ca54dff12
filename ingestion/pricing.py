"""Price resolution and cost maths (straightforward version; the indexed PriceBook replaces the scan)."""
import re
from decimal import Decimal
from django.core.cache import cache
from .models import ModelPrice

def cost_compute(*, price, input_tokens, output_tokens, cached_input_tokens=0, cache_write_tokens=0, units=None):
    p = lambda v: int(Decimal(v) * 10**6)
    inp = p(price.input_mtok); out = p(price.output_mtok)
    cr = p(price.cached_input_mtok) if price.cached_input_mtok is not None else inp
    cw = p(price.cache_write_mtok) if price.cache_write_mtok is not None else inp
    for t in sorted(price.tiers or [], key=lambda t: t["above"]):
        if input_tokens > t["above"]:
            inp = p(t["input_mtok"]); out = p(t["output_mtok"])
            cr = p(t.get("cached_input_mtok") or t["input_mtok"]); cw = p(t.get("cache_write_mtok") or t["input_mtok"])
    unc = max(input_tokens - cached_input_tokens - cache_write_tokens, 0)
    return unc*inp + cached_input_tokens*cr + cache_write_tokens*cw + output_tokens*out

class PriceBook:
    def __init__(self): self.rows = list(ModelPrice.objects.unscoped().all())
    def price(self, *, org_id, provider, model, at, input_tokens, output_tokens, cached_input_tokens=0, cache_write_tokens=0, units=None):
        best=None
        for r in self.rows:
            if r.provider != provider or r.effective_from > at or (r.org_id not in (None, org_id)): continue
            m = model.lower(); mm = r.model_match.lower()
            if r.match_kind=="exact": ok = m==mm; score=(10**6)
            elif r.match_kind=="prefix": ok = m.startswith(mm); score=len(mm)
            else: ok = re.fullmatch(r.model_match, model) is not None; score=len(model)
            if not ok: continue
            k=(r.org_id is not None, score, r.effective_from)
            if best is None or k>best[0]: best=(k,r)
        if best is None: return None
        r=best[1]
        return r.pk, cost_compute(price=r, input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_input_tokens, cache_write_tokens=cache_write_tokens)

def price_book_get(): return PriceBook()
def price_book_invalidate(): pass
def prices_changed():
    from django.db import transaction
    def _e():
        from ingestion import tasks; tasks.events_reprice.delay()
    transaction.on_commit(_e)
