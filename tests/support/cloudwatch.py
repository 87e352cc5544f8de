"""``aws logs tail <group> --follow`` as AWS CLI v2 runs it (awscli/customizations/logs/tail.py,
FollowLogEventsGenerator), for tests: the same FilterLogEvents calls, one poll at a time."""
import time


class TailFollow:
    """FilterLogEvents with logGroupName, interleaved and startTime (default: 10 minutes ago);
    a nextToken is followed, else the next poll starts at the newest timestamp seen, and the
    eventIds already printed at that timestamp are not printed again."""

    def __init__(self, logs, group, since_ms=None):
        self.logs = logs
        self.kwargs = {"logGroupName": group, "interleaved": True,
                       "startTime": since_ms if since_ms is not None else int(time.time() * 1000) - 600_000}
        self.seen = {}  # timestamp -> eventIds printed (only the newest timestamp is kept)
        self.printed = []  # (logStreamName, message) in the order the CLI prints them

    def poll(self):
        """One FilterLogEvents call, as the CLI makes it; returns what it printed."""
        response = self.logs.filter_log_events(**self.kwargs)
        new = []
        for event in response["events"]:
            if event["eventId"] not in self.seen.setdefault(event["timestamp"], set()):
                self.seen[event["timestamp"]].add(event["eventId"])
                new.append((event["logStreamName"], event["message"]))
        if self.seen:
            newest = max(self.seen)
            self.seen = {newest: self.seen[newest]}
        if "nextToken" in response:
            self.kwargs["nextToken"] = response["nextToken"]
        else:
            self.kwargs.pop("nextToken", None)
            if self.seen:
                self.kwargs["startTime"] = max(self.seen)
        self.printed += new
        return new

    def messages(self):
        return [message for _, message in self.printed]
