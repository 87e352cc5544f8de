"""Dashboard pages."""
from django.http import HttpResponse


def home(request):
    """The component map (placeholder until the dashboard lands)."""
    return HttpResponse("Fargate Lab")
