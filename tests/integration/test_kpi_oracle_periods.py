"""The oracle's answers period by period and split by channel and kind, in the API's own shape:
members, views (with the most viewed content), reactions, events (per period and per event) and
feedback (per period, and the backlog's age). Plain Python from the raw fact list, written from
docs/kpi.md; the small tests below pin it to a history worked out by hand."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from gatherly.envelope import Envelope
from tests.integration.test_kpi_oracle_beyond import (
    Span,
    active,
    in_order,
    latest_snapshots,
    when,
)
from tests.integration.test_kpi_support import History

MOVES = ("joined", "rejoined", "left")
FRAME = ("community_id", "from", "to", "granularity", "tz")
Getter = Callable[..., Awaitable[dict[str, Any]]]


async def compare(get: Getter, facts: list[Envelope], span: Span, **zone: str) -> dict[str, Any]:
    """The API's answers next to the oracle's, for those that differ."""
    async def answer(name: str, *dropped: str, **params: str) -> dict[str, Any]:
        found = await get(name, **zone, **params)
        # Whether the window cuts a period is framing, as `from` and `to` are: the oracle
        # compares the numbers (test_kpi_api.py checks the flag).
        for period in found.get("periods", []):
            period.pop("partial")
        return {k: v for k, v in found.items() if k not in (*FRAME, *dropped)}

    pairs: dict[str, tuple[Any, Any]] = {
        "members": (await answer("members"), members(facts, span)),
        "views": (await answer("views"), views(facts, span)),
        "reactions": (await answer("reactions", "speed"), reactions(facts, span)),
        "active": (await answer("active"), active(facts, span)),
    }
    for by in ("week", "day"):  # distinct members are kept per period kind, not summed up
        pairs[f"active by {by}"] = (await answer("active", granularity=by),
                                    active(facts, span, by))
    if not zone:  # not read from the zone's rollups: once is enough
        found = await answer("events")
        for event in found["events"]:
            event["starts_at"] = datetime.fromisoformat(event["starts_at"])
        backlog = (await answer("feedback"))
        pairs |= {"events": (found, events(facts, span)), "feedback": (
            {"periods": backlog["periods"],
             "backlog": {k: backlog["backlog"][k] for k in
                         ("open", "median_age_seconds", "max_age_seconds")}},
            feedback(facts, span))}
    where = f" in {zone['tz']}" if zone else ""
    return {f"{name}{where}": pair for name, pair in pairs.items() if pair[0] != pair[1]}


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def members(facts: list[Envelope], span: Span) -> dict[str, Any]:
    """Joins, rejoins and leaves per month and per channel; a leave counts against the channel
    of the member's join or rejoin before it; totals run from everything before the window."""
    channel_of: dict[str, str] = {}
    opening: Counter[str] = Counter()
    inside: dict[str, dict[date, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for f in in_order(facts):
        kind = f.type.removeprefix("gatherly.member.")
        if kind not in MOVES:
            continue
        if kind != "left":
            channel_of[f.subject] = f.data["channel"]
        channel, at = channel_of[f.subject], when(f, f"{kind}_at")
        if at < span.start:
            opening[channel] += -1 if kind == "left" else 1
        elif at < span.end:
            inside[channel][span.month_of(at)][kind] += 1
    overall: dict[date, Counter[str]] = defaultdict(Counter)
    for per_month in inside.values():
        for month, counts in per_month.items():
            overall[month].update(counts)
    channels = {ch: _totals(inside[ch], opening[ch]) for ch in sorted(set(inside) | set(opening))}
    return {**_series(span, overall, opening.total()), "channels": channels}


def _totals(per_month: dict[date, Counter[str]], opening: int) -> dict[str, Any]:
    sums = {k: sum(c[k] for c in per_month.values()) for k in MOVES}
    net = sums["joined"] + sums["rejoined"] - sums["left"]
    return {"total": opening + net, **sums, "net": net, "growth_rate": ratio(net, opening),
            "churn_rate": ratio(sums["left"], opening)}


def _series(span: Span, per_month: dict[date, Counter[str]], opening: int) -> dict[str, Any]:
    periods, total = [], opening
    for month in span.starts():
        counts = per_month.get(month, Counter())
        net = counts["joined"] + counts["rejoined"] - counts["left"]
        periods.append({"start": month.isoformat(), **{k: counts[k] for k in MOVES}, "net": net,
                        "total": total + net, "growth_rate": ratio(net, total),
                        "churn_rate": ratio(counts["left"], total)})
        total += net
    return {**_totals(per_month, opening), "periods": periods}


def views(facts: list[Envelope], span: Span, limit: int = 100) -> dict[str, Any]:
    """View facts' counts at their moment, and each counter's latest snapshot at its `as_of`."""
    counted = [(f, when(f, "viewed_at"), f.data["count"]) for f in facts
               if f.type == "gatherly.content.viewed"]
    counted += [(f, when(f, "as_of"), f.data["total"]) for f in latest_snapshots(
        f for f in facts if f.type == "gatherly.content.views_counted")]
    per_month: Counter[date] = Counter()
    per_channel: Counter[str] = Counter()
    per_content: Counter[str] = Counter()
    for f, at, n in counted:
        if span.holds(at):
            per_month[span.month_of(at)] += n
            per_channel[f.data["channel"]] += n
            per_content[f.data["content_id"]] += n
    top = sorted(per_content.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return {"total": per_channel.total(),
            "periods": [{"start": m.isoformat(), "views": per_month[m]} for m in span.starts()],
            "channels": dict(sorted(per_channel.items())),
            "content": [{"content_id": c, "views": n} for c, n in top]}


def reactions(facts: list[Envelope], span: Span) -> dict[str, Any]:
    """Members' added and removed reactions at their moment, platforms' latest counts at their
    `as_of`: per month, channel and kind; per view."""
    rows = [(at, f.data["channel"], f.data["kind"],
             "added" if f.type.endswith("added") else "removed", 1)
            for f in facts if f.type in ("gatherly.reaction.added", "gatherly.reaction.removed")
            if span.holds(at := when(f, "at"))]
    rows += [(at, f.data["channel"], f.data["kind"], "counted", f.data["total"])
             for f in latest_snapshots(x for x in facts
                                       if x.type == "gatherly.content.reactions_counted")
             if span.holds(at := when(f, "as_of"))]
    split: dict[str, dict[Any, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for at, channel, kind, column, n in rows:
        for name, key in (("periods", span.month_of(at)), ("channels", channel), ("kinds", kind)):
            split[name][key][column] += n
    sums = Counter[str]()
    for counts in split["channels"].values():
        sums.update(counts)
    shape = ("added", "removed", "counted")
    return {
        "added": sums["added"], "removed": sums["removed"],
        "net": sums["added"] - sums["removed"], "counted": sums["counted"],
        "total": sums["added"] - sums["removed"] + sums["counted"],
        "per_view": ratio(sums["added"] + sums["counted"], views(facts, span)["total"]),
        "periods": [{"start": m.isoformat(), **{k: split["periods"][m][k] for k in shape}}
                    for m in span.starts()],
        **{name: {key: {k: split[name][key][k] for k in shape}
                  for key in sorted(split[name])} for name in ("channels", "kinds")},
    }


def events(facts: list[Envelope], span: Span) -> dict[str, Any]:
    """Per event starting in the window, and per month the sums over the events starting in
    it (no-shows and the attendance rate over its finished events only)."""
    schedule: dict[str, dict[str, Any]] = defaultdict(dict)
    registered: dict[tuple[str, str], Envelope] = {}
    checked_in: dict[tuple[str, str], Envelope] = {}
    for f in in_order(facts):
        kind = f.type.removeprefix("gatherly.event.")
        if kind in ("scheduled", "rescheduled"):
            schedule[f.subject]["starts_at"] = when(f, "starts_at")
        elif kind in ("cancelled", "finished"):
            schedule[f.subject][kind] = when(f, f"{kind}_at")
        elif kind in ("registered", "registration_cancelled"):
            registered[(f.subject, f.data["member_id"])] = f
        elif kind == "attended":
            checked_in.setdefault((f.subject, f.data["member_id"]), f)
    firsts: dict[str, tuple[datetime, str]] = {}
    for (event, member), f in checked_in.items():
        firsts[member] = min(firsts.get(member, (when(f, "checked_in_at"), event)),
                             (when(f, "checked_in_at"), event))
    active = {key: f for key, f in registered.items() if f.type.endswith(".registered")}
    starting = sorted((s["starts_at"], e) for e, s in schedule.items()
                      if "starts_at" in s and span.holds(s["starts_at"]))
    rows = [_event(e, schedule[e], active, checked_in, firsts) for _, e in starting]
    per_month: dict[date, Counter[str]] = defaultdict(Counter)
    for (start, _), row in zip(starting, rows, strict=True):
        per_month[span.month_of(start)].update(
            {k: row[k] or 0 for k in ("registered", "attended", "walk_ins", "no_shows", "new")},
            held_registered=row["registered"] if row["no_shows"] is not None else 0)
    periods = [_with_repeat({"start": m.isoformat(), **{k: per_month[m][k] for k in COUNTS}})
               for m in span.starts()]
    totals = _with_repeat({k: sum(p[k] for p in periods) for k in COUNTS})
    for part in (totals, *periods):
        part.pop("held_registered")
    return {**totals, "periods": periods, "events": rows}


COUNTS = ("registered", "attended", "walk_ins", "no_shows", "new", "held_registered")


def _event(event: str, schedule: dict[str, Any], active: dict[tuple[str, str], Envelope],
           checked_in: dict[tuple[str, str], Envelope],
           firsts: dict[str, tuple[datetime, str]]) -> dict[str, Any]:
    here = [(m, f) for (e, m), f in checked_in.items() if e == event]
    registered = [m for (e, m) in active if e == event]
    new = sum(firsts[m][1] == event for m, _ in here)
    status = ("cancelled" if "cancelled" in schedule
              else "finished" if "finished" in schedule else "scheduled")
    return {"event_id": event, "starts_at": schedule["starts_at"].astimezone(UTC),
            "status": status, "registered": len(registered), "attended": len(here),
            "walk_ins": sum(f.data["walk_in"] for _, f in here),
            "no_shows": (sum((event, m) not in checked_in for m in registered)
                         if "finished" in schedule else None),
            "new": new, "repeat": len(here) - new, "new_to_repeat": ratio(new, len(here) - new)}


def _with_repeat(counts: dict[str, Any]) -> dict[str, Any]:
    """The attendance rate: of the registrations for finished events, the share checked in."""
    repeat = counts["attended"] - counts["new"]
    held = counts["held_registered"]
    return {**counts, "repeat": repeat, "new_to_repeat": ratio(counts["new"], repeat),
            "attendance_rate": ratio(held - counts["no_shows"], held)}


def feedback(facts: list[Envelope], span: Span) -> dict[str, Any]:
    """Submitted, first answered, first resolved per month; the backlog's age at the window's
    end (submitted before it, not resolved before it)."""
    moments: dict[str, dict[str, datetime]] = defaultdict(dict)
    for f in in_order(facts):
        kind = f.type.removeprefix("gatherly.feedback.")
        if kind in ("submitted", "answered", "resolved"):
            moments[f.subject].setdefault(kind, when(f, "submitted_at" if kind == "submitted"
                                                     else "at"))
    per_month: dict[date, Counter[str]] = defaultdict(Counter)
    for row in moments.values():
        for kind, at in row.items():
            if span.holds(at):
                per_month[span.month_of(at)][kind] += 1
    ages = [(span.end - row["submitted"]).total_seconds() for row in moments.values()
            if row["submitted"] < span.end and row.get("resolved", span.end) >= span.end]
    return {"periods": [{"start": m.isoformat(), **{k: per_month[m][k] for k in
                                                     ("submitted", "answered", "resolved")}}
                        for m in span.starts()],
            "backlog": {"open": len(ages), "median_age_seconds": median(ages) if ages else None,
                        "max_age_seconds": max(ages) if ages else None}}


# The oracle itself, on a history small enough to work out by hand.

T0 = datetime(2025, 2, 10, 12, tzinfo=UTC)
FEBRUARY_TO_MARCH = Span(date(2025, 2, 1), date(2025, 3, 1), ZoneInfo("UTC"))


def hand_history() -> list[Envelope]:
    h = History("hand")
    h.add("member.joined", "a", T0, channel="vk", joined_at=T0 - timedelta(days=60))
    h.add("member.left", "a", T0, left_at=T0)
    h.add("member.rejoined", "a", T0, channel="email", rejoined_at=T0 + timedelta(days=30))
    h.add("member.joined", "b", T0, channel="vk", joined_at=T0)
    h.add("event.scheduled", "e", T0, format="offline", starts_at=T0, ends_at=T0,
          channel="vk")
    h.add("event.registered", "e", T0, member_id="@a", channel="vk", registered_at=T0)
    h.add("event.registered", "e", T0, member_id="@b", channel="vk", registered_at=T0)
    h.add("event.attended", "e", T0, member_id="@b", channel="vk", checked_in_at=T0,
          walk_in=False)
    h.add("event.attended", "e", T0, member_id="@c", channel="vk", checked_in_at=T0,
          walk_in=True)
    h.add("event.finished", "e", T0, finished_at=T0)
    h.add("event.scheduled", "g", T0, format="offline", starts_at=T0 + timedelta(days=1),
          ends_at=T0, channel="vk")
    h.add("event.attended", "g", T0, member_id="@c", channel="vk",
          checked_in_at=T0 + timedelta(days=1), walk_in=True)
    h.add("feedback.submitted", "f", T0, member_id="@a", about_kind="community",
          channel="vk", submitted_at=T0)
    h.add("feedback.resolved", "f", T0, at=T0 + timedelta(days=60))  # after the window
    return h.facts


def test_the_oracle_runs_member_totals_per_month_and_channel() -> None:
    answer = members(hand_history(), FEBRUARY_TO_MARCH)
    assert [(p["joined"], p["rejoined"], p["left"], p["total"]) for p in answer["periods"]] == [
        (1, 0, 1, 1), (0, 1, 0, 2)]
    assert answer["periods"][0]["churn_rate"] == 1.0
    assert answer["channels"]["vk"] == {"total": 1, "joined": 1, "rejoined": 0, "left": 1,
                                        "net": 0, "growth_rate": 0.0, "churn_rate": 1.0}
    assert answer["channels"]["email"]["growth_rate"] is None


def test_the_oracle_counts_no_shows_at_the_events_start_and_firsts_once() -> None:
    h = hand_history()
    answer = events(h, FEBRUARY_TO_MARCH)
    assert {k: answer[k] for k in ("registered", "attended", "no_shows", "new", "repeat")} == {
        "registered": 2, "attended": 3, "no_shows": 1, "new": 2, "repeat": 1}
    assert answer["attendance_rate"] == 0.5  # @b of @a and @b; walk-in @c is not in it
    first, second = answer["events"]
    assert (first["no_shows"], first["new"], first["status"]) == (1, 2, "finished")
    assert (second["no_shows"], second["new"], second["repeat"]) == (None, 0, 1)


def test_the_oracle_counts_active_members_per_week_from_the_windows_start() -> None:
    weeks = active(hand_history(), FEBRUARY_TO_MARCH, "week")["periods"]
    assert weeks[0] == {"start": "2025-01-27", "active": 0}  # the Monday before February
    assert [w["start"] for w in weeks[-2:]] == ["2025-03-24", "2025-03-31"]
    # At each fact's own moment: a's rejoin is in March, whenever it was recorded.
    assert {w["start"]: w["active"] for w in weeks if w["active"]} == {"2025-02-10": 3,
                                                                      "2025-03-10": 1}


def test_the_oracle_ages_the_backlog_at_the_windows_end() -> None:
    backlog = feedback(hand_history(), FEBRUARY_TO_MARCH)["backlog"]
    assert backlog["open"] == 1
    assert backlog["max_age_seconds"] == (FEBRUARY_TO_MARCH.end - T0).total_seconds()
