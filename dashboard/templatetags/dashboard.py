"""Template helpers: live fragments, guarded rows, Kubernetes names, status colours, short ids."""
from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from dashboard import fragments, state
from orchestrator.kubernetes import KUBERNETES_NAMES

register = template.Library()

_STATUS_CLASS = {
    "RUNNING": "ok", "ACTIVE": "ok", "PRIMARY": "ok", "COMPLETED": "ok", "HEALTHY": "ok",
    "PROVISIONING": "wait", "PENDING": "wait", "ACTIVATING": "wait", "IN_PROGRESS": "wait",
    "DEACTIVATING": "going", "STOPPING": "going", "DEPROVISIONING": "going", "DRAINING": "going",
    "STOPPED": "done", "INACTIVE": "done", "FAILED": "bad", "UNHEALTHY": "bad",
}


@register.simple_tag(takes_context=True)
def fragment(context, name, key=None):
    """Include live fragment ``name`` (the same HTML the WebSocket pushes later); a viewed
    fragment is rendered for the page's user."""
    request = context["request"]
    # What one page's fragments each look up about its viewer (their account, its callers) is
    # looked up once per request: a map of 16 fragments asked it 16 times.
    memo = request.__dict__.setdefault("_fragment_memo", {})
    token = state.REQUEST_MEMO.set(memo)
    try:
        if fragments.is_viewed(name):
            if "viewer" not in memo:
                memo["viewer"] = state.viewer_of(request.user)
            key = fragments.Viewed(key, memo["viewer"])
        return mark_safe(fragments.render(name, key) or "")
    finally:
        state.REQUEST_MEMO.reset(token)


UNSHOWABLE = "This row could not be shown (its data is malformed; the error is in the lab's log)."


class GuardedNode(template.Node):
    """Renders its body; a body that fails renders a placeholder of the same element instead."""

    def __init__(self, nodelist, element, columns):
        self.nodelist, self.element, self.columns = nodelist, element, columns

    def render(self, context):
        try:
            return self.nodelist.render(context)
        except Exception as exc:  # one object's bad data must cost that row only, never the whole page
            fragments.log_failure(f"a guarded {self.element} row of {self.origin.name} failed to render", exc)
            if self.element == "tr":
                return format_html('<tr class="unshowable"><td colspan="{}" class="status-bad">{}</td></tr>',
                                   self.columns, UNSHOWABLE)
            return format_html('<{0} class="unshowable status-bad">{1}</{0}>', self.element, UNSHOWABLE)


@register.tag
def guarded(parser, token):
    """``{% guarded "tr" 5 %}…{% endguarded %}``: one object's row, degraded alone when its data breaks it.

    The element (``tr``, ``li``, ``span``…; ``span`` by default) and, for a table row, the
    number of columns shape the placeholder so the table around it stays valid."""
    bits = token.split_contents()[1:]
    element = bits[0].strip("\"'") if bits else "span"
    columns = int(bits[1]) if len(bits) > 1 else 1
    if not element.isalpha() or not element.isascii():
        raise template.TemplateSyntaxError("guarded takes an element name such as \"tr\"")
    nodelist = parser.parse(("endguarded",))
    parser.delete_first_token()
    return GuardedNode(nodelist, element, columns)


@register.filter
def k8s(kind):
    """The Kubernetes counterpart of an ECS object kind ("task" → "Pod")."""
    return KUBERNETES_NAMES.get(kind, "")


@register.filter
def status_class(status):
    """A CSS class for a lifecycle or status value (ok / wait / going / done / bad)."""
    return "status-" + _STATUS_CLASS.get(str(status).upper(), "other")


@register.filter
def short_id(value):
    """The first 8 characters of a long id, as the console shows it."""
    return str(value)[:8]


@register.filter
def published_urls(container):
    """Links to a container's published ports."""
    return state.published_urls(container)


@register.filter
def exit_codes(task):
    """The exit codes its containers reported ("0", "137", "0, 1"), or "—" before any exited."""
    codes = [str(c.exit_code) for c in task.containers.all() if c.exit_code is not None]
    return ", ".join(codes) or "—"


@register.filter
def write_kind(kind):
    """A written object's kind in words: task_definition → task definition."""
    return str(kind).replace("_", " ")


@register.filter
def seconds_ago(seconds):
    """A short age: "0.4 s", "12 s", "3 min"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
