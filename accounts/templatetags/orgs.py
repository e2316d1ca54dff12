from django import template

from accounts.selectors import user_orgs as _user_orgs

register = template.Library()


@register.simple_tag
def user_orgs(user):
    """The signed-in user's organisations, for the org switcher (one query)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(_user_orgs(user=user))
