"""A small, stateful fake of the Stripe REST API for the billing tests.

It speaks Stripe's wire format — form-encoded POST bodies with bracketed keys
(`metadata[org_id]=1`, `line_items[0][price]=price_…`), JSON objects with an `object` field,
ids with Stripe's prefixes, list objects, and `{"error": {...}}` bodies — so the real `stripe`
library and dj-stripe talk to it unmodified (settings.STRIPE_API_BASE points at it).

Besides the endpoints, tests drive "what happens on Stripe's side" through helpers:
`checkout_complete()` (the customer paid in Checkout), `subscription_update()` (portal changes,
failed renewals, cancellation) and `event()` (the event Stripe would send, also served on
/v1/events). Webhook delivery is the test's job: see `tests/billing/conftest.py`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

API_VERSION = "2026-08-26.dahlia"
ACCOUNT_ID = "acct_1LLMObserveFake00"
_MONTH = 30 * 24 * 3600

_INT_KEYS = {"unit_amount", "quantity", "trial_period_days", "limit", "interval_count", "amount"}


def _coerce(key: str, value: str):
    if value == "true":
        return True
    if value == "false":
        return False
    if key in _INT_KEYS and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def decode_form(pairs: list[tuple[str, str]]) -> dict:
    """`a[b][0][c]=v` pairs → nested dicts; dicts whose keys are all digits become lists."""
    root: dict = {}
    for raw_key, value in pairs:
        parts = re.findall(r"[^\[\]]+|\[\]", raw_key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "[]":
                part = str(len(node))
            if last:
                node[part] = _coerce(part, value)
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node):
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": type_, "message": message, "code": code, "param": param}}


class FakeStripe:
    """State + HTTP server. `url` is what STRIPE_API_BASE should be."""

    def __init__(self):
        self.lock = threading.RLock()
        self.api_keys: set[str] = set()
        self.objects: dict[str, dict] = {}
        self.requests: list[dict] = []
        self._seq = itertools.count(1)
        self._idempotent: dict[str, tuple[int, dict]] = {}
        self.outage = False  # True: every request gets a 500 api_error, as during a Stripe incident
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            stripe = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-stripe", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()
            self.requests.clear()
            self._idempotent.clear()
            self.outage = False

    # --- helpers -----------------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{'test_' if prefix == 'cs' else ''}{next(self._seq):04d}{secrets.token_hex(8)}"

    def _put(self, obj: dict) -> dict:
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_id: str) -> dict:
        return self.objects[object_id]

    def of_type(self, object_name: str) -> list[dict]:
        return [o for o in self.objects.values() if o.get("object") == object_name]

    def calls(self, method: str, path_prefix: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and r["path"].startswith(path_prefix)]

    @staticmethod
    def now() -> int:
        return int(time.time())

    # --- simulation of what happens on Stripe's side --------------------------------------------------
    def checkout_complete(self, session_id: str, *, status: str | None = None) -> tuple[dict, dict, dict]:
        """The customer paid in Checkout: a subscription and its first (paid) invoice now exist."""
        with self.lock:
            session = self.objects[session_id]
            line = session["_line_items"][0]
            price = self.objects[line["price"]]
            sub_data = session.get("_subscription_data") or {}
            trial_days = int(sub_data.get("trial_period_days") or 0)
            now = self.now()
            sub_id = self.new_id("sub")
            trial_end = now + trial_days * 86400 if trial_days else None
            period_end = trial_end or now + _MONTH
            sub = self._put({
                "id": sub_id, "object": "subscription", "application": None, "billing_cycle_anchor": period_end,
                "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None,
                "collection_method": "charge_automatically", "created": now, "currency": price["currency"],
                "customer": session["customer"], "default_payment_method": None, "description": None,
                "discounts": [], "ended_at": None,
                "items": {"object": "list", "data": [{
                    "id": self.new_id("si"), "object": "subscription_item", "created": now,
                    "current_period_start": now, "current_period_end": period_end, "discounts": [],
                    "metadata": {}, "price": copy.deepcopy(price), "quantity": int(line.get("quantity", 1)),
                    "subscription": sub_id, "tax_rates": [],
                }], "has_more": False, "total_count": 1, "url": f"/v1/subscription_items?subscription={sub_id}"},
                "latest_invoice": None, "livemode": False, "metadata": dict(sub_data.get("metadata") or {}),
                "pause_collection": None, "start_date": now,
                "status": status or ("trialing" if trial_days else "active"),
                "trial_end": trial_end, "trial_start": now if trial_days else None,
            })
            invoice = self.invoice_create(sub_id, status="paid", amount=0 if trial_days else price["unit_amount"],
                                          billing_reason="subscription_create")
            session.update({"status": "complete", "payment_status": "paid", "subscription": sub_id})
            return session, sub, invoice

    def invoice_create(self, sub_id: str, *, status: str, amount: int = 800,
                       billing_reason: str = "subscription_cycle") -> dict:
        with self.lock:
            sub = self.objects[sub_id]
            now = self.now()
            invoice_id = self.new_id("in")
            invoice = self._put({
                "id": invoice_id, "object": "invoice", "account_country": "US", "amount_due": amount,
                "amount_paid": amount if status == "paid" else 0,
                "amount_remaining": 0 if status == "paid" else amount, "attempt_count": 1, "attempted": True,
                "billing_reason": billing_reason, "collection_method": "charge_automatically", "created": now,
                "currency": "usd", "customer": sub["customer"], "default_payment_method": None, "discounts": [],
                "hosted_invoice_url": f"https://invoice.stripe.com/i/{invoice_id}",
                "invoice_pdf": f"https://pay.stripe.com/invoice/{invoice_id}/pdf",
                "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                          "url": f"/v1/invoices/{invoice_id}/lines"},
                "livemode": False, "metadata": {}, "number": f"LLMO-{next(self._seq):04d}",
                "parent": {"type": "subscription_details", "quote_details": None,
                           "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub_id}},
                "period_start": now, "period_end": now, "status": status, "subtotal": amount, "total": amount,
            })
            sub["latest_invoice"] = invoice_id
            return invoice

    def subscription_update(self, sub_id: str, **fields) -> dict:
        """Change a subscription as the portal or Stripe's billing engine would; returns a snapshot."""
        with self.lock:
            sub = self.objects[sub_id]
            if fields.get("status") == "canceled":
                fields.setdefault("canceled_at", self.now())
                fields.setdefault("ended_at", self.now())
            sub.update(fields)
            return copy.deepcopy(sub)

    def event(self, event_type: str, obj: dict, *, previous_attributes: dict | None = None) -> dict:
        """The event Stripe would send (a snapshot of `obj` now); kept so /v1/events serves it too."""
        with self.lock:
            data = {"object": copy.deepcopy(obj)}
            if previous_attributes is not None:
                data["previous_attributes"] = previous_attributes
            return self._put({
                "id": self.new_id("evt"), "object": "event", "api_version": API_VERSION, "created": self.now(),
                "data": data, "livemode": False, "pending_webhooks": 1,
                "request": {"id": f"req_{secrets.token_hex(7)}", "idempotency_key": None}, "type": event_type,
            })

    # --- the API -----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict, headers: dict) -> tuple[int, dict]:
        if self.outage:
            raise StripeError(500, "An unknown error occurred (fake outage).", type_="api_error")
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not key.startswith(("sk_test_", "rk_test_")) or (self.api_keys and key not in self.api_keys):
            raise StripeError(401, "Invalid API Key provided.", type_="invalid_request_error")
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != "v1":
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        parts = parts[1:]
        with self.lock:
            idem = headers.get("idempotency-key")
            if method == "POST" and idem and idem in self._idempotent:
                return self._idempotent[idem]  # Stripe replays the first response for a key
            result = self._route(method, parts, params)
            if method == "POST" and idem:
                self._idempotent[idem] = result
            return result

    def _route(self, method: str, parts: list[str], params: dict) -> tuple[int, dict]:
        resource = "/".join(parts[:2]) if parts[0] in ("checkout", "billing_portal") else parts[0]
        rest = parts[2:] if parts[0] in ("checkout", "billing_portal") else parts[1:]
        if resource == "account" and method == "GET":
            return 200, self._account()
        creators = {
            "customers": self._customer_create, "products": self._product_create, "prices": self._price_create,
            "checkout/sessions": self._checkout_session_create, "billing_portal/sessions": self._portal_create,
            "webhook_endpoints": self._webhook_endpoint_create,
        }
        listable = {"customers": "customer", "products": "product", "prices": "price", "subscriptions": "subscription",
                    "invoices": "invoice", "events": "event", "webhook_endpoints": "webhook_endpoint",
                    "checkout/sessions": "checkout.session"}
        if not rest:
            if method == "POST" and resource in creators:
                return 200, creators[resource](params)
            if method == "GET" and resource in listable:
                return 200, self._list(resource, listable[resource], params)
        elif len(rest) == 1:
            obj = self.objects.get(rest[0])
            if obj is None or (resource in listable and obj.get("object") != listable[resource]):
                noun = resource.rstrip("s").replace("checkout/session", "checkout.session")
                raise StripeError(404, f"No such {noun}: '{rest[0]}'", code="resource_missing", param="id")
            if method == "GET":
                return 200, self._public(obj)
            if method == "POST":
                return 200, self._public(self._update(obj, params))
            if method == "DELETE" and resource == "subscriptions":
                return 200, self._public(self.subscription_update(obj["id"], status="canceled"))
            if method == "DELETE" and resource == "customers":
                obj["deleted"] = True
                return 200, {"id": obj["id"], "object": "customer", "deleted": True}
        elif len(rest) == 2 and resource == "products" and rest[1] == "features" and method == "GET":
            return 200, {"object": "list", "data": [], "has_more": False, "url": f"/v1/products/{rest[0]}/features"}
        raise StripeError(404, f"Unrecognized request URL ({method}: /v1/{'/'.join(parts)}).")

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in copy.deepcopy(obj).items() if not k.startswith("_")}

    def _list(self, resource: str, object_name: str, params: dict) -> dict:
        items = [o for o in self.objects.values() if o.get("object") == object_name]
        for field in ("customer", "product", "type", "email"):
            if field in params:
                items = [o for o in items if o.get(field) == params[field]]
        if "active" in params:
            items = [o for o in items if o.get("active") is params["active"]]
        if "lookup_keys" in params:
            items = [o for o in items if o.get("lookup_key") in params["lookup_keys"]]
        if resource == "subscriptions":
            status = params.get("status")
            if status is None:
                items = [o for o in items if o["status"] not in ("canceled", "incomplete_expired")]
            elif status != "all":
                items = [o for o in items if o["status"] == status]
        items.sort(key=lambda o: (o.get("created", 0), o["id"]), reverse=True)
        limit = int(params.get("limit", 10))
        return {"object": "list", "data": [self._public(o) for o in items[:limit]], "has_more": len(items) > limit,
                "url": f"/v1/{resource}"}

    def _update(self, obj: dict, params: dict) -> dict:
        params = {k: v for k, v in params.items() if k not in ("expand",)}
        if "metadata" in params:
            obj["metadata"] = {**obj.get("metadata", {}), **params.pop("metadata")}
        obj.update(params)
        return obj

    def _account(self) -> dict:
        return {"id": ACCOUNT_ID, "object": "account", "business_type": "company",
                "business_profile": {"name": "LLMObserve (fake Stripe)", "url": None, "support_email": None},
                "capabilities": {}, "charges_enabled": True, "country": "US", "created": 1700000000,
                "default_currency": "usd", "details_submitted": True, "email": "billing@example.com",
                "metadata": {}, "payouts_enabled": True, "type": "standard",
                "settings": {"dashboard": {"display_name": "LLMObserve fake", "timezone": "Etc/UTC"},
                             "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None}}}

    def _customer_create(self, p: dict) -> dict:
        return self._put({
            "id": self.new_id("cus"), "object": "customer", "address": None, "balance": 0, "created": self.now(),
            "currency": None, "default_source": None, "delinquent": False, "description": p.get("description"),
            "discount": None, "email": p.get("email"), "invoice_prefix": secrets.token_hex(4).upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                                 "rendering_options": None},
            "livemode": False, "metadata": p.get("metadata", {}), "name": p.get("name"), "phone": None,
            "preferred_locales": [], "shipping": None, "tax_exempt": "none", "test_clock": None,
        })

    def _product_create(self, p: dict) -> dict:
        if not p.get("name"):
            raise StripeError(400, "Missing required param: name.", code="parameter_missing", param="name")
        now = self.now()
        return self._put({
            "id": self.new_id("prod"), "object": "product", "active": p.get("active", True), "created": now,
            "default_price": None, "description": p.get("description"), "images": [], "livemode": False,
            "marketing_features": [], "metadata": p.get("metadata", {}), "name": p["name"],
            "package_dimensions": None, "shippable": None, "statement_descriptor": None, "tax_code": None,
            "type": "service", "unit_label": None, "updated": now, "url": None,
        })

    def _price_create(self, p: dict) -> dict:
        if p.get("product") not in self.objects:
            raise StripeError(400, f"No such product: '{p.get('product')}'", code="resource_missing", param="product")
        recurring = p.get("recurring")
        holders = [o for o in self.of_type("price") if p.get("lookup_key") and o.get("lookup_key") == p["lookup_key"]]
        if holders and not p.get("transfer_lookup_key"):
            raise StripeError(400, f"A price (`{holders[0]['id']}`) already uses that lookup key.", param="lookup_key")
        for holder in holders:
            holder["lookup_key"] = None
        return self._put({
            "id": self.new_id("price"), "object": "price", "active": True, "billing_scheme": "per_unit",
            "created": self.now(), "currency": p["currency"], "custom_unit_amount": None, "livemode": False,
            "lookup_key": p.get("lookup_key"), "metadata": p.get("metadata", {}), "nickname": p.get("nickname"),
            "product": p["product"],
            "recurring": {"interval": recurring["interval"], "interval_count": int(recurring.get("interval_count", 1)),
                          "meter": None, "trial_period_days": None, "usage_type": "licensed"} if recurring else None,
            "tax_behavior": "unspecified", "tiers_mode": None, "transform_quantity": None,
            "type": "recurring" if recurring else "one_time", "unit_amount": p["unit_amount"],
            "unit_amount_decimal": str(p["unit_amount"]),
        })

    def _checkout_session_create(self, p: dict) -> dict:
        for required in ("success_url", "line_items"):
            if required not in p:
                raise StripeError(400, f"Missing required param: {required}.", code="parameter_missing", param=required)
        if p.get("customer") and p["customer"] not in self.objects:
            raise StripeError(400, f"No such customer: '{p['customer']}'", code="resource_missing", param="customer")
        for line in p["line_items"]:
            if line.get("price") not in self.objects:
                raise StripeError(400, f"No such price: '{line.get('price')}'", code="resource_missing",
                                  param="line_items[0][price]")
        session_id = self.new_id("cs")
        amount = sum(self.objects[li["price"]]["unit_amount"] * int(li.get("quantity", 1)) for li in p["line_items"])
        return self._put({
            "id": session_id, "object": "checkout.session", "allow_promotion_codes": p.get("allow_promotion_codes"),
            "amount_subtotal": amount, "amount_total": amount, "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"), "created": self.now(), "currency": "usd",
            "customer": p.get("customer"), "customer_email": p.get("customer_email"),
            "expires_at": self.now() + 86400, "livemode": False, "metadata": p.get("metadata", {}),
            "mode": p.get("mode", "payment"), "payment_intent": None, "payment_method_types": ["card"],
            "payment_status": "unpaid", "setup_intent": None, "status": "open", "subscription": None,
            "success_url": p["success_url"], "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "_line_items": p["line_items"], "_subscription_data": p.get("subscription_data", {}),
        })

    def _portal_create(self, p: dict) -> dict:
        if p.get("customer") not in self.objects:
            raise StripeError(400, f"No such customer: '{p.get('customer')}'", code="resource_missing", param="customer")
        session_id = self.new_id("bps")
        return self._put({
            "id": session_id, "object": "billing_portal.session", "configuration": "bpc_fake", "created": self.now(),
            "customer": p["customer"], "flow": None, "livemode": False, "locale": None, "on_behalf_of": None,
            "return_url": p.get("return_url"), "url": f"https://billing.stripe.com/p/session/test_{session_id}",
        })

    def _webhook_endpoint_create(self, p: dict) -> dict:
        if not p.get("url") or not p.get("enabled_events"):
            raise StripeError(400, "Missing required param: url.", code="parameter_missing", param="url")
        obj = self._put({
            "id": self.new_id("we"), "object": "webhook_endpoint", "api_version": p.get("api_version"),
            "application": None, "created": self.now(), "description": p.get("description"),
            "enabled_events": p["enabled_events"], "livemode": False, "metadata": p.get("metadata", {}),
            "status": "enabled", "url": p["url"], "_secret": "whsec_" + secrets.token_hex(24),
        })
        return {**self._public(obj), "secret": obj["_secret"]}  # the secret is only in the create response


class _Handler(BaseHTTPRequestHandler):
    stripe: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        pairs = parse_qsl(url.query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True)
        params = decode_form(pairs)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.stripe.requests.append({"method": method, "path": url.path, "params": params, "headers": headers})
        try:
            status, payload = self.stripe.handle(method, url.path, params, headers)
        except StripeError as exc:
            status, payload = exc.status, exc.body
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        if status >= 500:
            self.send_header("Stripe-Should-Retry", "false")  # keeps the library from sleeping between retries
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")
