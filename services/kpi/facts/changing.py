"""Daily rollups of facts kept as one row that changes: a registration (registered, cancelled,
registered again) and a feedback (submitted, answered, resolved, in any order).

The statement that upserts a batch's rows also reads them as they were before it (`old`, the
same snapshot) and adds, per zone and local day, what the rows count now minus what they counted
before (`ins` RETURNING holds them as they are after). A row that did not change cancels out;
so at any moment the rollup equals a `GROUP BY` over the rows, in whatever order the facts came.
A community's batches are applied one after another (docs/adr/0005)."""

from __future__ import annotations

from services.kpi.facts import backlog
from services.kpi.facts.common import ZONES, signed

# Registrations not cancelled, by day of registration and channel.
REGISTERED = ("SELECT community_id, registered_at AS at, channel FROM {rows}"
              " WHERE registered_at IS NOT NULL AND cancelled_at IS NULL")
# Feedback submitted, answered and resolved, each by its own day; the channel is the
# submission's ('' while only an answer is known).
FEEDBACK = " UNION ALL ".join(
    f"SELECT community_id, {column} AS at, '{kind}' AS kind, coalesce(channel, '') AS channel"
    f" FROM {{rows}} WHERE {column} IS NOT NULL"
    for kind, column in (("submitted", "submitted_at"), ("answered", "answered_at"),
                         ("resolved", "resolved_at"))
)


def _add(table: str, keys: str, source: str, value: str, zone_filter: str) -> str:
    return (
        f"INSERT INTO {table} AS r (community_id, tz, day, {keys}, n)"
        f" SELECT s.community_id, z.tz, CAST(s.at AT TIME ZONE z.tz AS date),"
        f" {', '.join('s.' + k.strip() for k in keys.split(','))}, {value}"
        f" FROM {source} s {ZONES} WHERE {zone_filter} GROUP BY 1, 2, 3,"
        f" {', '.join(str(i + 4) for i in range(len(keys.split(','))))}"
        f" HAVING {value} <> 0"
        f" ON CONFLICT (community_id, tz, day, {keys}) DO UPDATE SET n = r.n + excluded.n"
    )


_REGISTRATIONS = _add("registration_days", "channel", signed(REGISTERED), "sum(s.sign)", "TRUE")
_FEEDBACK = _add("feedback_days", "kind, channel", signed(FEEDBACK), "sum(s.sign)", "TRUE")
# Per event: registrations not cancelled, and those of them with an attendance (no-shows are
# the difference). A (registration, attendance) pair is added by whichever is stored second:
# registrations are written before attendances in a batch, so the registrations' delta sees
# the attendances of earlier batches and the attendances' delta sees every registration.
_ACTIVE = "registered_at IS NOT NULL AND cancelled_at IS NULL"
_PRESENT = ("EXISTS (SELECT 1 FROM attendances a WHERE a.community_id = x.community_id"
            " AND a.event_id = x.event_id AND a.member_id = x.member_id)")


def _with_presence(rows: str) -> str:
    return f"(SELECT x.*, {_PRESENT} AS present FROM {rows} x)"


def _per_event(source: str, registered: str, attended: str) -> str:
    return (
        "INSERT INTO event_registrations AS r (community_id, event_id, registered, attended)"
        f" SELECT s.community_id, s.event_id, {registered}, {attended} FROM {source} s"
        " GROUP BY 1, 2 ON CONFLICT (community_id, event_id) DO UPDATE SET"
        " registered = r.registered + excluded.registered,"
        " attended = r.attended + excluded.attended"
    )


_SIGNED_REGISTRATIONS = (f"(SELECT community_id, event_id, member_id, 1 AS sign FROM ins"
                         f" WHERE {_ACTIVE} UNION ALL SELECT community_id, event_id, member_id,"
                         f" -1 FROM old WHERE {_ACTIVE})")
EVENT_REGISTRATIONS = _per_event(
    _with_presence(_SIGNED_REGISTRATIONS), "sum(s.sign)",
    "coalesce(sum(s.sign) FILTER (WHERE s.present), 0)")
EVENT_ATTENDANCES = _per_event(
    "(SELECT i.community_id, i.event_id FROM ins i JOIN registrations g"
    " ON g.community_id = i.community_id AND g.event_id = i.event_id"
    " AND g.member_id = i.member_id AND g.registered_at IS NOT NULL AND g.cancelled_at IS NULL)",
    "0", "count(*)")
EVENT_REGISTRATIONS_FROM_FACTS = _per_event(
    _with_presence(f"(SELECT community_id, event_id, member_id FROM registrations"
                   f" WHERE {_ACTIVE})"),
    "count(*)", "count(*) FILTER (WHERE s.present)")
DELTAS = {"registrations": [f"cr AS ({_REGISTRATIONS})", f"ce AS ({EVENT_REGISTRATIONS})"],
          "feedback": [f"cf AS ({_FEEDBACK})", *backlog.DELTAS]}
KEYS = {
    "registrations": ("community_id", "event_id", "member_id"),
    "feedback": ("community_id", "feedback_id"),
}


def backfill(zone_filter: str) -> dict[str, str]:
    """Each rollup from the rows stored, for the zones `zone_filter` picks."""
    return {
        "registration_days": _add("registration_days", "channel",
                                  f"({REGISTERED.format(rows='registrations')})", "count(*)",
                                  zone_filter),
        "feedback_days": _add("feedback_days", "kind, channel",
                              f"({FEEDBACK.format(rows='feedback')})", "count(*)", zone_filter),
    }
