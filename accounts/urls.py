from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orgs/new/", views.org_create_view, name="org_create"),
]
