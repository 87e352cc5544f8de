"""The banner on every page of a student's: what the teacher's chaos just did to their objects.

Every page of a logged-in user opens a socket of its own to ``/ws/announcements/`` beside the
page's (the ``announcements`` template tag draws both); the fragment is the account's current
announcements, re-rendered when the bus says ``announcement``.
"""
from dashboard import consumers
from dashboard.fragments import fragment
from orchestrator import chaos


@fragment("announcements", "teacher/fragments/announcements.html")
def _announcements(key):
    """The current announcements of account ``key``."""
    return {"announcements": chaos.current_announcements(key)}


consumers.PAGES["announcements"] = consumers.Page(fragments={"announcements": {"announcement"}}, per_account=True)
