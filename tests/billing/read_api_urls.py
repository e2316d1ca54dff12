"""The site's URLs plus one read-API view, for testing the 402 before the analytics read API lands."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import HasReadKey
from llmobserve_site.urls import urlpatterns as site_urlpatterns


class ReadProbe(APIView):
    permission_classes = [HasReadKey]

    def get(self, request):
        return Response({"org": request.auth.org.slug})


urlpatterns = [path("v1/_read_probe", ReadProbe.as_view()), *site_urlpatterns]
