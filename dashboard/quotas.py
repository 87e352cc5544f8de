"""The teacher's quota page of one account: each service quota with its applied value and what
the account uses now, and a form that sets or clears (back to the lab's default) each one.

Staff users only; for anyone else the page does not exist (the lab's "not found"). The page is
self-contained at ``/accounts/<account id>/quotas/`` so that other pages (a class view) link to it.
"""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from orchestrator import quotas
from orchestrator.models import Account


class QuotaForm(forms.ModelForm):
    """The account's quota fields; an empty field clears the account's own value."""

    class Meta:
        model = Account
        fields = [quota.field for quota in quotas.QUOTAS]


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def account_quotas(request, account_id):
    """Show one account's quotas and usage; a teacher's POST changes them."""
    if not request.user.is_staff:
        raise Http404("No such page.")
    account = get_object_or_404(Account, account_id=account_id)
    form = QuotaForm(request.POST if request.method == "POST" else None, instance=account)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            messages.success(request, f"Quotas of account {account.account_id} saved.")
            return redirect("dashboard:account_quotas", account_id=account.account_id)
        status = 400
    else:
        status = 200
    rows = [{"quota": q, "value": f"{value:g}", "own": own, "in_use": f"{in_use:g}", "field": form[q.field],
             "default": f"{quotas.default(q, account):g}"} for q, value, own, in_use in quotas.usage(account)]
    return render(request, "dashboard/account_quotas.html",
                  {"account": account, "form": form, "rows": rows}, status=status)
