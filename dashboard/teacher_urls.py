"""The teacher's pages, under /class/ beside the class page (classroom.urls)."""
from django.urls import path

from dashboard import teacher

app_name = "teacher"

urlpatterns = [
    path("students/<int:pk>/", teacher.student, name="student"),
    path("students/<int:pk>/reset/", teacher.student_reset, name="student_reset"),
    path("students/<int:pk>/view/", teacher.student_view_as, name="student_view_as"),
    path("view-as/stop/", teacher.view_as_stop, name="view_as_stop"),
    path("chaos/", teacher.chaos_page, name="chaos"),
    path("chaos/<slug:action>/", teacher.chaos_action, name="chaos_action"),
]
