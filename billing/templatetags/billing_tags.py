from django import template

from ..selectors import status_banner

register = template.Library()


@register.simple_tag(takes_context=True)
def billing_status_banner(context):
    """The past-due banner's state for the page's org (request.org, set by org_member_required)."""
    request = context.get("request")
    org = getattr(request, "org", None) or context.get("org")
    return status_banner(org=org) if hasattr(org, "subscription_status") else None
