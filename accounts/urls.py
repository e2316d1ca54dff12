from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("orgs/new/", views.org_create_view, name="org_create"),
    path("invite/<str:token>/", views.invitation_accept_view, name="invitation_accept"),
    path("o/<slug:slug>/settings/", views.settings_general, name="settings"),
    path("o/<slug:slug>/settings/keys/", views.settings_keys, name="settings_keys"),
    path("o/<slug:slug>/settings/keys/new/", views.api_key_create_view, name="api_key_create"),
    path("o/<slug:slug>/settings/keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
    path("o/<slug:slug>/settings/members/", views.settings_members, name="settings_members"),
    path("o/<slug:slug>/settings/members/invite/", views.member_invite, name="member_invite"),
    path("o/<slug:slug>/settings/members/leave/", views.member_leave, name="member_leave"),
    path("o/<slug:slug>/settings/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("o/<slug:slug>/settings/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("o/<slug:slug>/settings/members/invitations/<int:invitation_id>/revoke/", views.invitation_revoke_view,
         name="invitation_revoke"),
]
