"""Tenant querysets fail closed: one that says neither `.for_org(org)` nor `.unscoped()` cannot be evaluated.

The guard is always on (tests and production alike: there is no setting); Django's own machinery —
cascade deletion, the admin, dumpdata/loaddata, uniqueness validation — keeps working around it.
"""

import io
import json
from datetime import datetime, timezone

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import models
from django.db.models import Count, Prefetch
from django.urls import reverse

from accounts.models import (ApiKey, Invitation, Membership, Organization, TenantManager, TenantModel,
                             UnscopedQueryError)
from accounts.services import api_key_create, invitation_create
from analytics.models import AlertDelivery, Insight
from billing.models import BillingCustomer, PromoCode, PromoRedemption
from ingestion.models import TraceEvent
from instrument.models import InstrumentUsage
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)


@pytest.fixture
def two_orgs(org, other_org):
    """Org A has keys k1, k2; org B has key k3. Every name starts with "k"."""
    for name in ("k1", "k2"):
        api_key_create(org=org, name=name)
    api_key_create(org=other_org, name="k3")
    return org, other_org


def _names(qs) -> list[str]:
    return sorted(k.name for k in qs)


EVALUATIONS = {
    "iterate": lambda qs: list(qs),
    "len": len,
    "bool": bool,
    "count": lambda qs: qs.count(),
    "exists": lambda qs: qs.exists(),
    "aggregate": lambda qs: qs.aggregate(n=Count("id")),
    "get": lambda qs: qs.get(name="k3"),
    "first": lambda qs: qs.first(),
    "last": lambda qs: qs.last(),
    "index": lambda qs: qs[0],
    "latest": lambda qs: qs.latest("created_at"),
    "contains": lambda qs: qs.contains(ApiKey.objects.unscoped().first()),
    "values": lambda qs: list(qs.values("name")),
    "values_list": lambda qs: list(qs.values_list("name", flat=True)),
    "in_bulk": lambda qs: qs.in_bulk(),
    "iterator": lambda qs: list(qs.iterator()),
    "get_or_create": lambda qs: qs.get_or_create(name="k3", defaults={"key_hash": "x", "prefix": "x"}),
    "update_or_create": lambda qs: qs.update_or_create(name="k3", defaults={"name": "hijacked"}),
    "update": lambda qs: qs.update(name="hijacked"),
    "delete": lambda qs: qs.delete(),
    "bulk_update": lambda qs: qs.bulk_update([ApiKey(pk=1, name="hijacked")], ["name"]),
    "explain": lambda qs: qs.explain(),
    "as subquery": lambda qs: list(Membership.objects.unscoped().filter(user__in=qs.values("created_by"))),
    "or": lambda qs: list(ApiKey.objects.unscoped() | qs),
    "union": lambda qs: list(ApiKey.objects.unscoped().union(qs)),
    "dates": lambda qs: list(qs.dates("created_at", "day")),
}


@pytest.mark.parametrize("how", EVALUATIONS)
@pytest.mark.parametrize("start", ["manager", "filter", "chain"])
def test_an_unscoped_tenant_queryset_raises_and_touches_nothing(two_orgs, how, start):
    before = sorted(ApiKey.objects.unscoped().values_list("org_id", "name"))
    qs = {"manager": ApiKey.objects.all(), "filter": ApiKey.objects.filter(name__startswith="k"),
          "chain": ApiKey.objects.filter(name__startswith="k").select_related("org").order_by("name")}[start]
    with pytest.raises(UnscopedQueryError, match=r"accounts\.ApiKey.*for_org\(org\).*unscoped\(\)"):
        EVALUATIONS[how](qs)
    assert sorted(ApiKey.objects.unscoped().values_list("org_id", "name")) == before


def test_the_manager_itself_cannot_be_evaluated(two_orgs):
    for evaluate in (lambda: ApiKey.objects.count(), lambda: ApiKey.objects.get(name="k3"),
                     lambda: ApiKey.objects.first(), lambda: ApiKey.objects.exists(),
                     lambda: TraceEvent.objects.filter(run_id="r").delete(),
                     lambda: Insight.objects.aggregate(n=Count("id")),
                     lambda: InstrumentUsage.objects.values_list("day", flat=True)[0]):
        with pytest.raises(UnscopedQueryError):
            evaluate()


def test_for_org_reads_one_tenant_in_either_order(two_orgs):
    org, other = two_orgs
    assert _names(ApiKey.objects.for_org(org)) == ["k1", "k2"]
    assert _names(ApiKey.objects.filter(name__startswith="k").for_org(org)) == ["k1", "k2"]
    assert _names(ApiKey.objects.for_org(other.pk).filter(name__startswith="k")) == ["k3"]
    assert ApiKey.objects.for_org(org).count() == 2 and ApiKey.objects.for_org(other).get().name == "k3"
    assert ApiKey.objects.for_org(org).update(name="renamed") == 2
    assert _names(ApiKey.objects.for_org(other)) == ["k3"]
    with pytest.raises(ValueError, match="saved organisation"):
        ApiKey.objects.for_org(Organization(name="unsaved"))


def test_unscoped_reads_every_tenant_and_survives_chaining(two_orgs):
    assert _names(ApiKey.objects.unscoped()) == ["k1", "k2", "k3"]
    assert _names(ApiKey.objects.filter(name__startswith="k").unscoped().order_by("name")) == ["k1", "k2", "k3"]
    assert ApiKey.objects.unscoped().filter(name="k3").select_related("org").get().org == two_orgs[1]
    assert list(ApiKey.objects.none()) == [] and ApiKey.objects.none().count() == 0


def test_combining_keeps_the_narrower_scope_and_never_widens_an_unscoped_part(two_orgs):
    org, other = two_orgs
    assert _names(ApiKey.objects.for_org(org) | ApiKey.objects.for_org(other)) == ["k1", "k2", "k3"]
    assert _names(ApiKey.objects.for_org(org) & ApiKey.objects.filter(name="k1")) == ["k1"]
    with pytest.raises(UnscopedQueryError):
        list(ApiKey.objects.for_org(org) | ApiKey.objects.filter(name="k3"))
    with pytest.raises(UnscopedQueryError):
        list(ApiKey.objects.for_org(org).union(ApiKey.objects.filter(name="k3")))


def test_writes_that_read_nothing_need_no_scope(org):
    ApiKey.objects.create(org=org, name="made", key_hash="h1", prefix="p")
    ApiKey.objects.bulk_create([ApiKey(org=org, name="bulk", key_hash="h2", prefix="p")])
    key = ApiKey.objects.for_org(org).get(name="made")
    key.name = "saved"
    key.save()  # save() and refresh_from_db() go through the plain base manager
    key.refresh_from_db()
    assert _names(ApiKey.objects.for_org(org)) == ["bulk", "saved"]


def test_repr_of_an_unscoped_queryset_does_not_query(two_orgs):
    assert "no tenant scope" in repr(ApiKey.objects.filter(name="k1"))
    assert "k1" in repr(ApiKey.objects.for_org(two_orgs[0]).filter(name="k1"))


# --- related managers ----------------------------------------------------------------------------

def test_reverse_relations_from_an_org_are_scoped_by_it(two_orgs):
    org, other = two_orgs
    assert _names(org.api_keys.all()) == ["k1", "k2"] and other.api_keys.count() == 1
    assert org.api_keys.filter(name="k1").exists()
    orgs = Organization.objects.filter(pk__in=[org.pk, other.pk]).prefetch_related("api_keys").order_by("pk")
    assert [_names(o.api_keys.all()) for o in orgs] == [["k1", "k2"], ["k3"]]


def test_other_reverse_relations_must_say_their_scope(org, other_org):
    user = UserFactory()
    MembershipFactory(org=org, user=user, role="viewer")
    MembershipFactory(org=other_org, user=user, role="admin")
    MembershipFactory(org=org)  # someone else's membership
    with pytest.raises(UnscopedQueryError):
        list(user.memberships.all())
    with pytest.raises(UnscopedQueryError):
        list(type(user).objects.filter(pk=user.pk).prefetch_related("memberships"))
    assert [m.role for m in user.memberships.for_org(org)] == ["viewer"]
    # unscoped() on a related manager keeps the relation's own filter: this user's rows, every org
    assert sorted(m.role for m in user.memberships.unscoped()) == ["admin", "viewer"]
    [prefetched] = type(user).objects.filter(pk=user.pk).prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.unscoped()))
    assert len(prefetched.memberships.all()) == 2


# --- Django's machinery --------------------------------------------------------------------------

def test_every_tenant_model_fails_closed_and_keeps_a_plain_base_manager():
    tenant_models = [m for m in apps.get_models()
                     if any(f.name == "org" and f.related_model is Organization for f in m._meta.fields)]
    assert len(tenant_models) >= 15
    for model in tenant_models:
        assert issubclass(model, TenantModel), model
        assert isinstance(model._default_manager, TenantManager), model
        # cascade deletion, save() and refresh_from_db() use the base manager: it must not be the guard
        assert type(model._base_manager) is models.Manager, model


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_deleting_an_org_cascades_to_its_tenant_rows(two_orgs, member):
    org, other = two_orgs
    TraceEvent.objects.create(org=org, event_id="e1", run_id="r1", timestamp=NOW)
    insight = Insight.objects.create(org=org, kind="section_spike", title="t", dedupe_key="d", period="2026-01-05")
    insight.deliveries.create(org=org, channel="email")
    org.delete()  # the Collector reads related rows through the plain base manager
    for model in (ApiKey, Membership, TraceEvent, Insight, AlertDelivery):
        assert not model.objects.unscoped().filter(org_id=org.pk).exists(), model
    assert _names(ApiKey.objects.for_org(other)) == ["k3"]


def test_the_admin_shows_every_tenant(admin_client, two_orgs, member):
    org, other = two_orgs
    promo = PromoCode.objects.create(code="WELCOME")
    PromoRedemption.objects.create(org=org, promo_code=promo)
    PromoRedemption.objects.create(org=other, promo_code=promo)
    BillingCustomer.objects.create(org=org, stripe_customer_id="cus_a")
    InstrumentUsage.objects.create(org=other, day=NOW.date(), requests=3)
    for model in (ApiKey, Invitation, Insight, BillingCustomer, PromoRedemption, InstrumentUsage, TraceEvent):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, model
    page = admin_client.get(reverse("admin:accounts_apikey_changelist")).content.decode()
    assert "k1" in page and "k3" in page
    assert admin_client.get(reverse("admin:billing_promocode_change", args=[promo.pk])).content.decode().count(
        "<tr class=\"form-row") >= 2  # the redemptions inline lists both orgs
    org_page = admin_client.get(reverse("admin:accounts_organization_change", args=[org.pk]))
    assert org_page.status_code == 200 and member.email in org_page.content.decode()


def test_admin_forms_still_validate_uniqueness(admin_client, org, other_org):
    """validate_unique/validate_constraints read through the default manager, across tenants."""
    BillingCustomer.objects.create(org=other_org, stripe_customer_id="cus_taken")
    mine = BillingCustomer.objects.create(org=org, stripe_customer_id="cus_mine")
    response = admin_client.post(reverse("admin:billing_billingcustomer_change", args=[mine.pk]),
                                 {"org": org.pk, "stripe_customer_id": "cus_taken", "livemode": ""})
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert BillingCustomer.objects.for_org(org).get().stripe_customer_id == "cus_mine"


def test_model_validation_reads_across_tenants_and_only_while_validating(org, other_org, member):
    taken = api_key_create(org=other_org, name="theirs").api_key
    with pytest.raises(ValidationError) as error:
        ApiKey(org=org, name="dup", key_hash=taken.key_hash, prefix="p").full_clean()
    assert "key_hash" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        Membership(org=org, user=member, role="viewer").full_clean()
    assert "__all__" in error.value.message_dict  # membership_unique_org_user
    with pytest.raises(UnscopedQueryError):
        ApiKey.objects.count()  # the exemption ended with the validation


def test_dumpdata_and_loaddata_round_trip_every_tenant(two_orgs, tmp_path):
    out = io.StringIO()
    call_command("dumpdata", "accounts.apikey", stdout=out)
    rows = json.loads(out.getvalue())
    assert sorted(r["fields"]["name"] for r in rows) == ["k1", "k2", "k3"]
    fixture = tmp_path / "keys.json"
    fixture.write_text(out.getvalue())
    ApiKey.objects.unscoped().delete()
    call_command("loaddata", str(fixture), stdout=io.StringIO())
    assert _names(ApiKey.objects.unscoped()) == ["k1", "k2", "k3"]
    assert _names(ApiKey.objects.for_org(two_orgs[1])) == ["k3"]
    with pytest.raises(UnscopedQueryError):
        ApiKey.objects.count()  # dumpdata's exemption ended with the command


def test_factories_build_tenant_rows(org):
    membership = MembershipFactory(org=org, role="member")
    assert Membership.objects.for_org(org).get(pk=membership.pk).role == "member"
    other = OrganizationFactory()
    assert not Membership.objects.for_org(other).exists()


def test_the_admin_bulk_delete_action_works_across_tenants(admin_client, org, other_org, member):
    invitations = [invitation_create(org=o, email=f"x{o.pk}@example.com", role="member", invited_by=member,
                                     base_url="http://testserver/") for o in (org, other_org)]
    url = reverse("admin:accounts_invitation_changelist")
    data = {"action": "delete_selected", "_selected_action": [i.pk for i in invitations]}
    confirm = admin_client.post(url, data)
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    assert admin_client.post(url, {**data, "post": "yes"}).status_code == 302
    assert not Invitation.objects.unscoped().exists()
