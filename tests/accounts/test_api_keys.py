import hashlib

import pytest
from django.core.management import call_command

from accounts.models import ApiKey, Organization
from accounts.selectors import api_key_get_active
from accounts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


def test_key_is_shown_once_and_stored_hashed(org):
    created = api_key_create(org=org, scope="read")
    raw = created.raw_key
    assert raw.startswith("llmo_") and len(raw) > 40
    stored = ApiKey.objects.for_org(org).get()
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {stored.key_hash, stored.prefix} and raw.startswith(stored.prefix)
    assert stored.scope == "read" and stored.can_read


def test_revoked_key_no_longer_authenticates(org):
    created = api_key_create(org=org)
    assert api_key_get_active(raw_key=created.raw_key) == created.api_key
    api_key_revoke(api_key=created.api_key)
    assert api_key_get_active(raw_key=created.raw_key) is None
    assert api_key_get_active(raw_key="llmo_wrong") is None


def test_the_active_key_and_its_org_read_as_the_orm_reads_them(org):
    """The lookup runs a statement compiled once per process: every field of the key and of its org comes back
    typed and valued as a plain ORM read gives it (datetimes, JSON, decimals, booleans, on both backends)."""
    created = api_key_create(org=org)
    ApiKey.objects.for_org(org).filter(pk=created.api_key.pk).update(last_used_at="2026-11-30T23:40:00Z")
    for _ in range(2):  # the second call reuses the compiled statement
        key = api_key_get_active(raw_key=created.raw_key)
        expected = ApiKey.objects.for_org(org).select_related("org").get(pk=created.api_key.pk)
        for model, got, want in ((ApiKey, key, expected), (Organization, key.org, expected.org)):
            for field in model._meta.concrete_fields:
                assert (field.attname, getattr(got, field.attname)) == (field.attname, getattr(want, field.attname))
        assert key.last_used_at.tzinfo is not None
        assert key.org_id == org.pk and not key._state.adding and key.org.is_active == org.is_active


def test_unknown_scope_is_refused(org):
    with pytest.raises(ValueError):
        api_key_create(org=org, scope="admin")


def test_create_api_key_command_prints_key_last(capsys):
    call_command("create_api_key", "--org", "cli-org", "--create-org", "--scope", "read")
    out = capsys.readouterr().out.strip().splitlines()
    org = Organization.objects.get(slug="cli-org")
    key = api_key_get_active(raw_key=out[-1])
    assert key is not None and key.org == org and key.scope == "read"


def test_create_api_key_command_needs_existing_org_without_flag():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--create-org"):
        call_command("create_api_key", "--org", "missing")


def test_for_org_scopes_and_unscoped_is_explicit(org, other_org):
    api_key_create(org=org)
    api_key_create(org=other_org)
    assert ApiKey.objects.for_org(org).count() == 1
    assert ApiKey.objects.unscoped().count() == 2
