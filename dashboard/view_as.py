"""A teacher's read-only look at a student's dashboard: the pages as that student sees them.

A staff user who chose "view as" keeps their own session; for each request (and WebSocket)
the student stands in for them as ``request.user`` (``scope["user"]``), so every page, list
and live fragment is exactly the student's, names and masks included, with no code path of
its own. ``request.teacher`` is the staff user. Nothing can be changed meanwhile: every
unsafe request is refused (403) but the two that end it (stop viewing, log out), and the
pages hide their forms. API calls signed with SigV4 carry no session and are not concerned.
"""
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.shortcuts import render

SESSION_KEY = "fargatelab:view-as"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The unsafe requests a read-only view lets through: ending it, and logging out.
ENDING_PATHS = ("/class/view-as/stop/", "/accounts/logout/")
# Unsafe requests that change only the viewer's own session (the region the pages show).
SESSION_PATHS = ("/region/",)


def student_for(staff, user_pk):
    """The active non-staff user a staff user may view as, or None."""
    if user_pk is None or staff is None or not staff.is_authenticated or not staff.is_staff:
        return None
    return get_user_model().objects.filter(pk=user_pk, is_active=True, is_staff=False, is_superuser=False).first()


class ViewAsMiddleware:
    """Puts the student in ``request.user`` for a teacher viewing as them; refuses changes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user_pk = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        if user_pk is None or request.path in ENDING_PATHS:
            return self.get_response(request)
        student = student_for(request.user, user_pk)
        if student is None:  # no longer staff, or the student is gone: the view ends
            request.session.pop(SESSION_KEY, None)
            return self.get_response(request)
        if request.method not in SAFE_METHODS and request.path not in SESSION_PATHS and not request.META.get("HTTP_AUTHORIZATION", "").startswith("AWS4-"):
            return render(request, "teacher/read_only.html", {"student": student}, status=403)
        request.teacher, request.user = request.user, student
        return self.get_response(request)


@database_sync_to_async
def _student_in(scope):
    session = scope.get("session")
    user_pk = session.get(SESSION_KEY) if session is not None else None
    return student_for(scope.get("user"), user_pk) if user_pk is not None else None


class ViewAsWebsocketMiddleware:
    """The same for the live pages' sockets: the student's fragments, never the teacher's."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        student = await _student_in(scope)
        if student is not None:
            scope = {**scope, "user": student, "teacher": scope["user"]}
        return await self.inner(scope, receive, send)
