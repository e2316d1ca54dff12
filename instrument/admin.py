from django.contrib import admin

from .models import InstrumentUsage


@admin.register(InstrumentUsage)
class InstrumentUsageAdmin(admin.ModelAdmin):
    """Read-only: rows are written by the metering service, never by hand."""

    list_display = ["org", "day", "requests", "claude_calls", "input_tokens", "output_tokens", "cost_pico", "fallbacks"]
    list_filter = ["day"]
    search_fields = ["org__slug", "org__name"]
    date_hierarchy = "day"

    def get_queryset(self, request):
        return InstrumentUsage.objects.unscoped().select_related("org")  # staff see every tenant's rows

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
