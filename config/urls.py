"""URLs. The root URL is shared, as on AWS: a POST carrying X-Amz-Target is an ECS API call
(AWS JSON 1.1); anything else at / is the dashboard's component map."""
from django.contrib import admin
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from dashboard import views as dashboard_views
from orchestrator.frontend import views as frontend_views


@csrf_exempt
def root(request):
    """Send AWS API calls to the frontend and people to the dashboard."""
    if request.method == "POST" and "HTTP_X_AMZ_TARGET" in request.META:
        return frontend_views.api(request)
    return dashboard_views.home(request)


urlpatterns = [
    path("", root, name="root"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("dashboard.urls")),
]
