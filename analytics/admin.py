from django.contrib import admin

from .models import AlertDelivery, Insight


@admin.register(Insight)
class InsightAdmin(admin.ModelAdmin):
    list_display = ["title", "kind", "org", "status", "amount_pico", "detected_at", "alerted_at"]
    list_filter = ["kind", "status"]
    search_fields = ["title", "section", "model", "customer_id", "org__slug"]
    list_select_related = ["org"]
    readonly_fields = [f.name for f in Insight._meta.fields]

    def get_queryset(self, request):
        return Insight.objects.unscoped()

    def has_add_permission(self, request):
        return False


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    """Operators see failed deliveries here (the hourly job re-queues them, with bounded attempts)."""

    list_display = ["id", "org", "channel", "status", "attempts", "insight", "digest_date", "attempted_at", "sent_at"]
    list_filter = ["channel", "status"]
    search_fields = ["org__slug", "last_error"]
    list_select_related = ["org", "insight"]
    readonly_fields = [f.name for f in AlertDelivery._meta.fields]

    def get_queryset(self, request):
        return AlertDelivery.objects.unscoped()

    def has_add_permission(self, request):
        return False
