"""The CloudWatch Logs operations the lab serves, one function each, named as the API reference
names them. Each takes (account, region, params) already checked against botocore's model (by
``JsonService``) and returns the response dict, or raises LogsError."""
import functools
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q

from orchestrator import bus
from orchestrator.frontend import wire
from orchestrator.frontend.json_service import ServiceError
from orchestrator.frontend.logs import filter_pattern
from orchestrator.models import LogEvent, LogGroup, LogStream, event_size, now_ms, region

# What the activity log keeps of a call: names, flags and bounds, never an event's message.
SAFE_PARAMS = ("logGroupName", "logStreamName", "logGroupIdentifier", "logGroupNamePrefix", "logGroupNamePattern",
               "logStreamNamePrefix", "logGroupClass", "retentionInDays", "orderBy", "descending", "limit",
               "startFromHead", "startTime", "endTime", "filterPattern")

# The retention periods PutRetentionPolicy accepts, as CloudWatch lists them.
RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                  2922, 3288, 3653)
# PutLogEvents' limits: a batch's bytes (UTF-8 + 26 per event), its time span, how far ahead
# of now an event may be, and how old.
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_SPAN_MS = 24 * 3_600_000
MAX_AHEAD_MS = 2 * 3_600_000
MAX_AGE_MS = 14 * 86_400_000
# The most bytes of events one GetLogEvents or FilterLogEvents page carries (CloudWatch: 1 MB),
# and how many events FilterLogEvents looks at per call before it answers with a nextToken.
MAX_PAGE_BYTES = 1_048_576
MAX_SCANNED = 50_000
GROUP_NOT_FOUND = "The specified log group does not exist."
STREAM_NOT_FOUND = "The specified log stream does not exist."
_BAD_TOKEN = "The specified nextToken is invalid."


class LogsError(ServiceError):
    """A CloudWatch Logs error: its ``__type``, message and HTTP status."""


def _max_groups():
    return settings.FARGATE_LAB["LOGS_MAX_GROUPS"]


def _max_streams():
    return settings.FARGATE_LAB["LOGS_MAX_STREAMS"]


# --- finding things ---------------------------------------------------------------------------

def _group_named(account, region, name):
    group = LogGroup.objects.filter(account=account, region=region, name=name).select_related("account").first()
    if group is None:
        raise LogsError("ResourceNotFoundException", GROUP_NOT_FOUND)
    return group


def _group_of(account, region, params, required=True):
    """The group a request names by logGroupName or logGroupIdentifier (a name or an ARN)."""
    name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
    if name is not None and identifier is not None:
        raise LogsError("InvalidParameterException", "LogGroup name and LogGroup ARN are mutually exclusive parameters.")
    if identifier is not None:
        name = _name_of_identifier(account, region, identifier)
    if name is None:
        if not required:
            return None
        raise LogsError("InvalidParameterException", "Should provide either logGroupName or logGroupIdentifier.")
    return _group_named(account, region, name)


def _name_of_identifier(account, region, identifier):
    """The group name of a logGroupIdentifier; an ARN of another account or region is not found."""
    if not identifier.startswith("arn:"):
        return identifier
    match = re.fullmatch(r"arn:aws:logs:([^:]*):([0-9]{12}):log-group:([^:]+)(?::\*)?", identifier)
    if match is None:
        raise LogsError("InvalidParameterException", f"The log group ARN '{identifier[:200]}' is not valid.")
    if match.group(1) != region or match.group(2) != account.account_id:
        raise LogsError("ResourceNotFoundException", GROUP_NOT_FOUND)
    return match.group(3)


def _stream_named(group, name):
    stream = LogStream.objects.filter(group=group, name=name).first()
    if stream is None:
        raise LogsError("ResourceNotFoundException", STREAM_NOT_FOUND)
    stream.group = group
    return stream


def _not_supported(params, *members):
    """Refuse the given members the lab does not honour (never accepted and ignored)."""
    for member in members:
        if params.get(member):
            raise LogsError("InvalidParameterException", f"{member} is not supported by Fargate Lab.")


# --- pages and tokens -------------------------------------------------------------------------

def _offset_token(token):
    """The offset a Describe* nextToken carries."""
    if token is None:
        return 0
    offset = wire.ascii_int(token.removeprefix("o/"), max_digits=9) if token.startswith("o/") else None
    if offset is None:
        raise LogsError("InvalidParameterException", _BAD_TOKEN)
    return offset


def _page(items, params, default_limit=50):
    offset = _offset_token(params.get("nextToken"))
    limit = params.get("limit") or default_limit
    chunk = items[offset:offset + limit]
    more = offset + limit < len(items)
    return chunk, (f"o/{offset + limit}" if more else None)


def _position(token, kind):
    """(timestamp, id) of an event position token ("f/…", "b/…" or "e/…")."""
    parts = token.split("/")
    if len(parts) != 3 or parts[0] != kind:
        raise LogsError("InvalidParameterException", _BAD_TOKEN)
    ts, pk = wire.ascii_int(parts[1], signed=True), wire.ascii_int(parts[2])
    if ts is None or pk is None:
        raise LogsError("InvalidParameterException", _BAD_TOKEN)
    return ts, pk


def _after(events, ts, pk):
    return events.filter(Q(timestamp__gt=ts) | Q(timestamp=ts, id__gt=pk))


def _before(events, ts, pk):
    return events.filter(Q(timestamp__lt=ts) | Q(timestamp=ts, id__lt=pk))


def _within_bytes(rows, keep_last=False):
    """The rows that fit in one page's bytes, counted from the start (or the end)."""
    total, kept = 0, []
    for row in (reversed(rows) if keep_last else rows):
        total += row.size
        if kept and total > MAX_PAGE_BYTES:
            break
        kept.append(row)
    return list(reversed(kept)) if keep_last else kept


def _time_range(events, params, end_inclusive):
    start, end = params.get("startTime"), params.get("endTime")
    if start is not None and end is not None and end < start:
        raise LogsError("InvalidParameterException", "endTime must not be before startTime.")
    if start is not None:
        events = events.filter(timestamp__gte=start)
    if end is not None:
        events = events.filter(timestamp__lte=end) if end_inclusive else events.filter(timestamp__lt=end)
    return events


def _kept(group):
    """The group's events its retention policy still keeps (those older are deleted now and then)."""
    group.expire_now_and_then()
    events = LogEvent.objects.filter(group=group)
    cutoff = group.retention_cutoff()
    return events.filter(timestamp__gte=cutoff) if cutoff is not None else events


# --- log groups -------------------------------------------------------------------------------

def describe_group(group):
    described = {
        "logGroupName": group.name, "creationTime": group.creation_time, "metricFilterCount": 0,
        "arn": f"{group.arn}:*", "logGroupArn": group.arn, "storedBytes": max(group.stored_bytes, 0),
        "logGroupClass": group.log_group_class,
    }
    if group.retention_in_days:
        described["retentionInDays"] = group.retention_in_days
    return described


def create_log_group(account, region, params):
    _not_supported(params, "kmsKeyId", "deletionProtectionEnabled")
    create_group(account, region, params["logGroupName"], params.get("logGroupClass") or "STANDARD",
                 params.get("tags") or {})
    return {}


def create_group(account, region, name, log_group_class="STANDARD", tags=None):
    """Create a log group (ResourceAlreadyExistsException if it exists; LimitExceededException
    beyond LOGS_MAX_GROUPS); returns it."""
    with transaction.atomic():
        if LogGroup.objects.filter(account=account, region=region).count() >= _max_groups():
            raise LogsError("LimitExceededException",
                            f"Resource limit exceeded: an account has at most {_max_groups()} log groups per "
                            "region in Fargate Lab.")
        try:
            with transaction.atomic():
                group = LogGroup.objects.create(account=account, region=region, name=name,
                                                log_group_class=log_group_class, tags=tags or {})
        except IntegrityError:
            raise LogsError("ResourceAlreadyExistsException", "The specified log group already exists") from None
    bus.publish("loggroup", group.pk)
    return group


def delete_log_group(account, region, params):
    group = _group_named(account, region, params["logGroupName"])
    with transaction.atomic():
        LogEvent.objects.filter(group=group).delete()
        LogStream.objects.filter(group=group).delete()
        group.delete()
    return {}


def describe_log_groups(account, region, params):
    _not_supported(params, "accountIdentifiers")
    if params.get("logGroupNamePrefix") is not None and params.get("logGroupNamePattern") is not None:
        raise LogsError("InvalidParameterException",
                        "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
    groups = LogGroup.objects.filter(account=account, region=region).select_related("account").order_by("name")
    if params.get("logGroupNamePrefix"):
        groups = groups.filter(name__startswith=params["logGroupNamePrefix"])
    if params.get("logGroupClass"):
        groups = groups.filter(log_group_class=params["logGroupClass"])
    found = list(groups)
    if params.get("logGroupNamePattern"):
        needle = params["logGroupNamePattern"].lower()
        found = [g for g in found if needle in g.name.lower()]
    if params.get("logGroupIdentifiers") is not None:
        names = {_name_of_identifier_or_none(account, region, i) for i in params["logGroupIdentifiers"]}
        found = [g for g in found if g.name in names]
    chunk, token = _page(found, params)
    return {"logGroups": [describe_group(g) for g in chunk], **({"nextToken": token} if token else {})}


def _name_of_identifier_or_none(account, region, identifier):
    try:
        return _name_of_identifier(account, region, identifier)
    except LogsError as error:
        if error.error_type == "ResourceNotFoundException":
            return None
        raise


def put_retention_policy(account, region, params):
    days = params["retentionInDays"]
    if days not in RETENTION_DAYS:
        raise LogsError("InvalidParameterException",
                        f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy "
                        f"constraint: Member must satisfy enum value set: [{', '.join(map(str, RETENTION_DAYS))}]")
    group = _group_named(account, region, params["logGroupName"])
    LogGroup.objects.filter(pk=group.pk).update(retention_in_days=days)
    group.retention_in_days = days
    group.expire()
    bus.publish("loggroup", group.pk)
    return {}


def delete_retention_policy(account, region, params):
    group = _group_named(account, region, params["logGroupName"])
    LogGroup.objects.filter(pk=group.pk).update(retention_in_days=None)
    bus.publish("loggroup", group.pk)
    return {}


# --- log streams ------------------------------------------------------------------------------

def describe_stream(stream):
    described = {"logStreamName": stream.name, "creationTime": stream.creation_time, "arn": stream.arn,
                 "storedBytes": max(stream.stored_bytes, 0), "uploadSequenceToken": _sequence_token(stream)}
    for key, value in (("firstEventTimestamp", stream.first_event_at), ("lastEventTimestamp", stream.last_event_at),
                       ("lastIngestionTime", stream.last_ingestion_at)):
        if value is not None:
            described[key] = value
    return described


def _sequence_token(stream):
    """A sequence token (CloudWatch ignores them in PutLogEvents now; clients still read them)."""
    return f"{stream.pk:012d}{(stream.last_ingestion_at or 0):016d}"


def create_log_stream(account, region, params):
    group = _group_named(account, region, params["logGroupName"])
    create_stream(group, params["logStreamName"])
    return {}


def create_stream(group, name):
    """Create a stream in ``group`` (ResourceAlreadyExistsException if it exists; LimitExceeded
    beyond LOGS_MAX_STREAMS); returns it."""
    with transaction.atomic():
        if LogStream.objects.filter(group=group).count() >= _max_streams():
            raise LogsError("LimitExceededException",
                            f"Resource limit exceeded: a log group has at most {_max_streams()} log streams in "
                            "Fargate Lab (delete some with DeleteLogStream).")
        try:
            with transaction.atomic():
                stream = LogStream.objects.create(group=group, name=name)
        except IntegrityError:
            raise LogsError("ResourceAlreadyExistsException", "The specified log stream already exists") from None
    stream.group = group
    return stream


def delete_log_stream(account, region, params):
    group = _group_named(account, region, params["logGroupName"])
    stream = _stream_named(group, params["logStreamName"])
    with transaction.atomic():
        LogEvent.objects.filter(stream=stream).delete()
        stream.delete()
        LogGroup.objects.filter(pk=group.pk).update(stored_bytes=F("stored_bytes") - stream.stored_bytes)
    return {}


def describe_log_streams(account, region, params):
    group = _group_of(account, region, params)
    order_by = params.get("orderBy") or "LogStreamName"
    prefix = params.get("logStreamNamePrefix")
    if prefix is not None and order_by == "LastEventTime":
        raise LogsError("InvalidParameterException", "Cannot order by LastEventTime with a logStreamNamePrefix.")
    streams = LogStream.objects.filter(group=group)
    if prefix:
        streams = streams.filter(name__startswith=prefix)
    descending = bool(params.get("descending"))
    if order_by == "LastEventTime":
        # A stream never written counts as the oldest, on either database (PostgreSQL would put
        # NULLs first in a descending order).
        streams = streams.order_by(*((F("last_event_at").desc(nulls_last=True), "-name") if descending
                                     else (F("last_event_at").asc(nulls_first=True), "name")))
    else:
        streams = streams.order_by("-name" if descending else "name")
    found = list(streams)
    for stream in found:
        stream.group = group
    chunk, token = _page(found, params)
    return {"logStreams": [describe_stream(s) for s in chunk], **({"nextToken": token} if token else {})}


# --- events -----------------------------------------------------------------------------------

def put_log_events(account, region, params):
    _not_supported(params, "entity")
    group = _group_named(account, region, params["logGroupName"])
    stream = _stream_named(group, params["logStreamName"])
    events = params["logEvents"]
    stamps = [e["timestamp"] for e in events]
    if stamps != sorted(stamps):
        raise LogsError("InvalidParameterException",
                        "Log events in a single PutLogEvents request must be in chronological order.")
    if stamps[-1] - stamps[0] > MAX_BATCH_SPAN_MS:
        raise LogsError("InvalidParameterException",
                        "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
    size = sum(event_size(e["message"]) for e in events)
    if size > MAX_BATCH_BYTES:
        raise LogsError("InvalidParameterException",
                        f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}")
    now = now_ms()
    cutoff = group.retention_cutoff(now)
    rejected, kept = {}, []
    for index, event in enumerate(events):
        if event["timestamp"] > now + MAX_AHEAD_MS:
            rejected.setdefault("tooNewLogEventStartIndex", index)
        elif event["timestamp"] < now - MAX_AGE_MS:
            rejected["tooOldLogEventEndIndex"] = index
        elif cutoff is not None and event["timestamp"] < cutoff:
            rejected["expiredLogEventEndIndex"] = index
        else:
            kept.append((event["timestamp"], event["message"]))
    stream.append(kept)
    group.expire_now_and_then()
    stream.refresh_from_db(fields=["last_ingestion_at"])
    bus.publish("logstream", stream.pk)
    return {"nextSequenceToken": _sequence_token(stream), **({"rejectedLogEventsInfo": rejected} if rejected else {})}


def _output_event(row):
    return {"timestamp": row.timestamp, "message": row.message, "ingestionTime": row.ingestion_time}


def get_log_events(account, region, params):
    group = _group_of(account, region, params)
    stream = _stream_named(group, params["logStreamName"])
    events = _time_range(_kept(group).filter(stream=stream), params, end_inclusive=False)
    limit = params.get("limit") or 10000
    token = params.get("nextToken")
    ascending, descending = events.order_by("timestamp", "id"), events.order_by("-timestamp", "-id")
    forward = backward = None
    if token is not None and token.startswith("f/"):
        forward = _position(token, "f")
        rows = list(_after(ascending, *forward)[:limit])
        rows = _within_bytes(rows)
    elif token is not None:
        backward = _position(token, "b")
        rows = list(reversed(_before(descending, *backward)[:limit]))
        rows = _within_bytes(rows, keep_last=True)
    elif params.get("startFromHead"):
        rows = _within_bytes(list(ascending[:limit]))
    else:
        rows = _within_bytes(list(reversed(descending[:limit])), keep_last=True)
    if rows:
        first, last = rows[0], rows[-1]
        next_forward, next_backward = f"f/{last.timestamp}/{last.id}", f"b/{first.timestamp}/{first.id}"
    elif forward is not None:
        next_forward, next_backward = token, f"b/{forward[0]}/{forward[1] + 1}"
    elif backward is not None:
        next_forward, next_backward = f"f/{backward[0]}/{max(backward[1] - 1, 0)}", token
    else:  # nothing in range yet: read forward from the start of the range
        start = params.get("startTime") or 0
        next_forward, next_backward = f"f/{start - 1}/0", f"b/{start}/0"
    return {"events": [_output_event(r) for r in rows], "nextForwardToken": next_forward,
            "nextBackwardToken": next_backward}


def filter_log_events(account, region, params):
    group = _group_of(account, region, params)
    names, prefix = params.get("logStreamNames"), params.get("logStreamNamePrefix")
    if names is not None and prefix is not None:
        raise LogsError("InvalidParameterException",
                        "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
    try:
        pattern = filter_pattern.parse(params.get("filterPattern"))
    except filter_pattern.PatternError as error:
        raise LogsError("InvalidParameterException", str(error)) from None
    events = _time_range(_kept(group), params, end_inclusive=True)
    streams = {}
    if names is not None or prefix is not None:
        chosen = LogStream.objects.filter(group=group)
        chosen = chosen.filter(name__in=names) if names is not None else chosen.filter(name__startswith=prefix)
        streams = dict(chosen.values_list("pk", "name"))
        if names is not None and not streams:
            raise LogsError("ResourceNotFoundException", STREAM_NOT_FOUND)
        events = events.filter(stream_id__in=list(streams))
    for text in pattern.required:  # a first sieve in SQL (case-insensitive there); matches() decides
        events = events.filter(message__contains=text)
    if params.get("nextToken") is not None:
        events = _after(events, *_position(params["nextToken"], "e"))
    limit, found, scanned, total = params.get("limit") or 10000, [], 0, 0
    position, more = None, False  # the last event looked at, and whether a next page may hold more
    for row in events.order_by("timestamp", "id").iterator(chunk_size=1000):
        if pattern.matches(row.message):
            if found and total + row.size > MAX_PAGE_BYTES:
                more = True
                break
            found.append(row)
            total += row.size
        position, scanned = row, scanned + 1
        if len(found) >= limit or scanned >= MAX_SCANNED:
            more = True
            break
    names_by_pk = streams or dict(LogStream.objects.filter(pk__in={r.stream_id for r in found}).values_list("pk", "name"))
    answer = {"events": [{"logStreamName": names_by_pk.get(r.stream_id, ""), "eventId": f"{r.timestamp}{r.id:020d}",
                          **_output_event(r)} for r in found], "searchedLogStreams": []}
    if more and position is not None:
        answer["nextToken"] = f"e/{position.timestamp}/{position.id}"
    return answer


def _in_the_labs_region(operation):
    """``operation(account, region, params)`` as JsonService calls a handler: in the lab's region,
    the only one a credential scope may name (``sigv4.served_regions``)."""
    @functools.wraps(operation)
    def handler(account, params, caller=""):
        return operation(account, region(), params)
    return handler


OPERATIONS = {name: _in_the_labs_region(operation) for name, operation in {
    "CreateLogGroup": create_log_group,
    "DeleteLogGroup": delete_log_group,
    "DescribeLogGroups": describe_log_groups,
    "PutRetentionPolicy": put_retention_policy,
    "DeleteRetentionPolicy": delete_retention_policy,
    "CreateLogStream": create_log_stream,
    "DeleteLogStream": delete_log_stream,
    "DescribeLogStreams": describe_log_streams,
    "PutLogEvents": put_log_events,
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
}.items()}
