"""``{% announcements %}``: the chaos banner of the page's user, live on a socket of its own."""
from django import template
from django.utils.html import format_html

from dashboard import fragments
from orchestrator.models import Account

register = template.Library()


@register.simple_tag(takes_context=True)
def announcements(context):
    """The banner and its socket for a logged-in user ("" otherwise)."""
    user = context["request"].user
    if not user.is_authenticated:
        return ""
    # A socket of its own, beside (never inside) the page's: nested ws-connects open twice.
    return format_html('<div class="announcements-socket" data-announcements hx-ext="ws" '
                       'ws-connect="/ws/announcements/">{}</div>',
                       fragments.render("announcements", Account.of_user(user).pk) or "")
