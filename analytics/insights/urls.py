from django.urls import path

from . import api as insights_api
from . import views as insights_views

urlpatterns = [
    path("v1/insights", insights_api.InsightsView.as_view(), name="api-insights"),
    path("o/<slug:slug>/insights/", insights_views.insights_list, name="insights"),
    path("o/<slug:slug>/insights/panel/", insights_views.insights_panel, name="insights_panel"),
    path("o/<slug:slug>/insights/<int:insight_id>/dismiss/", insights_views.insight_dismiss, name="insight_dismiss"),
    path("o/<slug:slug>/settings/alerts/", insights_views.alert_settings, name="alert_settings"),
    path("o/<slug:slug>/settings/alerts/test/", insights_views.alert_test, name="alert_test"),
]
