from django.contrib import admin

from .models import BillingCustomer, PromoCode, PromoRedemption


class PromoRedemptionInline(admin.TabularInline):
    model = PromoRedemption
    extra = 0
    fields = ("org", "redeemed_by", "redeemed_at", "comped_until")
    readonly_fields = fields
    can_delete = False

    def get_queryset(self, request):
        return PromoRedemption.objects.unscoped().select_related("org", "redeemed_by")  # one code, every org

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PromoCode)
class PromoCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "months_display", "redemptions_count", "max_redemptions", "expires_at", "active", "note")
    list_filter = ("active",)
    search_fields = ("code", "note")
    readonly_fields = ("redemptions_count", "created_at")
    inlines = [PromoRedemptionInline]

    @admin.display(description="Months")
    def months_display(self, obj):
        return "forever" if obj.months is None else obj.months


@admin.register(PromoRedemption)
class PromoRedemptionAdmin(admin.ModelAdmin):
    list_display = ("promo_code", "org", "redeemed_by", "redeemed_at", "comped_until")
    list_select_related = ("promo_code", "org", "redeemed_by")
    search_fields = ("promo_code__code", "org__slug", "org__name")
    readonly_fields = ("org", "promo_code", "redeemed_by", "redeemed_at", "comped_until")

    def get_queryset(self, request):
        return PromoRedemption.objects.unscoped()  # staff see every tenant's rows, by design

    def has_add_permission(self, request):
        return False  # redemptions happen through promo_redeem, which also comps the org


@admin.register(BillingCustomer)
class BillingCustomerAdmin(admin.ModelAdmin):
    list_display = ("org", "stripe_customer_id", "stripe_subscription_status", "cancel_at_period_end", "livemode", "synced_at")
    search_fields = ("org__slug", "org__name", "stripe_customer_id", "stripe_subscription_id")
    readonly_fields = ("stripe_subscription_id", "stripe_subscription_status", "cancel_at_period_end", "synced_at", "created_at")

    def get_queryset(self, request):
        return BillingCustomer.objects.unscoped().select_related("org")  # staff see every tenant's rows
