from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import ApiKey, Invitation, Membership, Organization, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "date_joined"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]

    def get_queryset(self, request):
        return Membership.objects.unscoped().select_related("user")  # the formset narrows it to the org shown


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "subscription_status", "over_cap", "event_retention_days", "created_at"]
    list_filter = ["subscription_status", "over_cap"]
    search_fields = ["name", "slug"]
    readonly_fields = ["events_pruned_before"]
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "org", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["scope"]
    search_fields = ["prefix", "name", "org__slug"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]

    def get_queryset(self, request):
        return ApiKey.objects.unscoped().select_related("org")

    def has_add_permission(self, request):
        return False  # keys are created in the org settings or with `manage.py create_api_key` (shown once)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "org", "role", "invited_by", "created_at", "expires", "accepted_at"]
    search_fields = ["email", "org__slug"]
    readonly_fields = ["token", "created_at", "accepted_at"]

    def get_queryset(self, request):
        return Invitation.objects.unscoped().select_related("org", "invited_by")

    def has_add_permission(self, request):
        return False  # invitations are sent from the org's member settings (they email a signed link)
