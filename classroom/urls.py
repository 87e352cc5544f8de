"""The labs and the class page."""
from django.urls import path

from classroom import views

app_name = "classroom"

urlpatterns = [
    path("labs/", views.lab_list, name="labs"),
    path("labs/<slug:slug>/", views.lab, name="lab"),
    path("labs/<slug:slug>/start/", views.lab_start, name="lab_start"),
    path("labs/<slug:slug>/restart/", views.lab_restart, name="lab_restart"),
    path("labs/<slug:slug>/answer/<slug:step_id>/", views.lab_answer, name="lab_answer"),
    path("labs/<slug:slug>/progress.json", views.lab_progress_json, name="lab_progress"),
    path("class/", views.class_page, name="class"),
    path("class/progress.csv", views.class_csv, name="class_csv"),
]
