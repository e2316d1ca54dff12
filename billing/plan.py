"""The one plan: $8/month per organisation, all features, unlimited members."""

PLAN_NAME = "LLMObserve Team"
PLAN_AMOUNT_CENTS = 800
PLAN_CURRENCY = "usd"
PLAN_INTERVAL = "month"
# Stripe lookup key of the price billing_setup creates; how the price is found again later.
PRICE_LOOKUP_KEY = "llmobserve_team_monthly"
# Metadata marking the Product as ours, so billing_setup finds it instead of creating a duplicate.
PRODUCT_METADATA_KEY = "llmobserve_plan"
PRODUCT_METADATA_VALUE = "team"

# The webhook events the org's state depends on; billing_setup subscribes the endpoint to them.
WEBHOOK_EVENTS = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_failed",
]
