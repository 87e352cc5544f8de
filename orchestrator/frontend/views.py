"""HTTP face of the frontend (placeholder until the frontend lands)."""
from django.http import JsonResponse


def api(request):
    return JsonResponse({"__type": "ServerException", "message": "not yet"}, status=500)
