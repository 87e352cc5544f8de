"""URLs. The root URL is shared, as on AWS: a POST carrying X-Amz-Target is an AWS JSON API
call (AWS JSON 1.1, told apart by the target's prefix); a POST signed for the
``elasticloadbalancing`` service or carrying ``Action=`` is an ELBv2 call (AWS query protocol);
anything else at / is the dashboard's component map."""
from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.core.exceptions import RequestDataTooBig
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from dashboard import views as dashboard_views
from dashboard.login_throttle import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm
from orchestrator import registry
from orchestrator.aws_auth import credential_scope
from orchestrator.elbv2 import views as elbv2_views
from orchestrator.frontend import application_autoscaling, logs, secretsmanager, servicediscovery, ssm
from orchestrator.frontend import views as frontend_views


def _is_elbv2(request):
    """True for an ELBv2 query-protocol call: signed for elasticloadbalancing, or a form with Action=
    (a form too large to read is taken for one too, so it gets ELBv2's error, not an HTML page)."""
    if credential_scope(request) == "elasticloadbalancing":
        return True
    if request.content_type != "application/x-www-form-urlencoded":
        return False
    try:
        return b"Action=" in request.body[:65536]
    except RequestDataTooBig:
        return True


# The AWS JSON services served at /, by the prefix of their X-Amz-Target. Adding a service is
# one line here (its package under orchestrator/frontend/ or beside it); ECS answers the rest,
# so an unknown target gets ECS's UnknownOperationException.
JSON_SERVICES = [
    (registry.TARGET_PREFIX, registry.api),
    (logs.TARGET_PREFIX, logs.api),
    (ssm.TARGET_PREFIX, ssm.api),
    (secretsmanager.TARGET_PREFIX, secretsmanager.api),
    (servicediscovery.TARGET_PREFIX, servicediscovery.api),
    (application_autoscaling.TARGET_PREFIX, application_autoscaling.api),
]


def _json_service(target):
    """The view serving an X-Amz-Target: the service whose prefix it carries, else ECS."""
    for prefix, view in JSON_SERVICES:
        if target.startswith(prefix):
            return view
    return frontend_views.api


@csrf_exempt
def root(request):
    """Send AWS API calls to the frontend and people to the dashboard."""
    if request.method == "POST" and "HTTP_X_AMZ_TARGET" in request.META:
        return _json_service(request.META["HTTP_X_AMZ_TARGET"])(request)
    if request.method == "POST" and _is_elbv2(request):
        return elbv2_views.api(request)
    return dashboard_views.home(request)


# Both logins are throttled per user and per address (dashboard/login_throttle.py).
admin.site.login_form = ThrottledAdminAuthenticationForm

urlpatterns = [
    path("", root, name="root"),
    path("admin/", admin.site.urls),
    path("registry/notifications/", registry.notifications, name="registry_notifications"),
    path("accounts/login/", LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("classroom.urls")),
    path("class/", include("dashboard.teacher_urls")),
    path("", include("dashboard.urls")),
]
