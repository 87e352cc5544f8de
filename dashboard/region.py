"""The dashboard's region: the one region whose objects its pages show and its forms act in.

As in the AWS console, a user picks a region with the selector in the top bar; the choice is
kept in the session (none made: the lab's default region). ``RegionMiddleware`` runs each page
request acting in it (``orchestrator.models.acting_in``), so ``region()`` names it to the pages'
queries and to the forms' calls, which go through the same API code as the SigV4 calls (those
act in their signature's region whatever the session says). The live pages' sockets read the
same session (``session_region``).
"""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from orchestrator.models import acting_in, default_region, served_regions

SESSION_KEY = "fargatelab:region"


def session_region(session):
    """The region a session chose, if the lab still serves it; else the default region."""
    chosen = session.get(SESSION_KEY) if session is not None else None
    return chosen if chosen in served_regions() else default_region()


class RegionMiddleware:
    """Each request acts in its session's region (after SessionMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with acting_in(session_region(getattr(request, "session", None))):
            return self.get_response(request)


def regions(request):
    """Template context: the regions the selector offers and the one shown."""
    return {"regions": served_regions(), "current_region": session_region(getattr(request, "session", None))}


class RegionForm(forms.Form):
    region = forms.ChoiceField(choices=())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [(name, name) for name in served_regions()]


@login_required
@require_POST
def choose(request):
    """The selector's POST: keep the region in the session, back to the page it was chosen on; a
    region the lab does not serve is refused with a message (the page stays as it was)."""
    form = RegionForm(request.POST)
    if form.is_valid():
        request.session[SESSION_KEY] = form.cleaned_data["region"]
    else:
        messages.error(request, "That is not a region this lab serves: " + ", ".join(served_regions()) + ".")
    # Back to the page it was chosen on (its Referer, same origin only; the form does not echo the
    # page's path: a not-found page must not repeat a name it was asked for).
    back = request.headers.get("Referer") or "/"
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = "/"
    return redirect(back)
