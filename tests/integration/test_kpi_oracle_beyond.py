"""The oracle's second half, in plain Python from the raw fact list: channels that work (KPI 4, with
the ranking), retention by monthly join cohort, role coverage and event follow-up completion.
Written from DESIGN §9 and docs/kpi.md, not from the service code; the small tests below pin the
oracle itself to a history worked out by hand."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gatherly.envelope import Envelope
from tests.integration.test_kpi_support import History

# DESIGN §1 and §9: the role catalogue and the seven follow-up duties, in the catalogue's order.
ROLES = ("mentor", "partner", "storyteller", "historian", "hero", "celebrity", "provider",
         "greeter", "guide", "catalyst", "ambassador", "scout")
DUTIES = ("thanks_sent", "materials_sent", "feedback_collected", "members_introduced",
          "invited_to_community", "history_written", "promoted")
MEASURES = ("joins", "views", "reactions", "registrations", "attendances", "feedback")
# docs/kpi.md "Active members": the facts a member does, and where the member's id is.
ACTORS = {"member.joined": None, "member.rejoined": None, "member.profile_updated": None,
          "content.published": "author_id", "content.viewed": "member_id",
          "reaction.added": "member_id", "reaction.removed": "member_id",
          "feedback.submitted": "member_id", "feedback.answered": "by_member",
          "feedback.resolved": "by_member", "event.registered": "member_id",
          "event.registration_cancelled": "member_id", "event.attended": "member_id",
          "event.followup_done": "by_member", "introduction.made": "by_member",
          "thanks.sent": "by_member"}
# DESIGN §9: the field holding the moment a fact happened, where it is not `at`.
MOMENT = {"member.joined": "joined_at", "member.rejoined": "rejoined_at",
          "content.published": "published_at", "content.viewed": "viewed_at",
          "feedback.submitted": "submitted_at", "event.registered": "registered_at",
          "event.attended": "checked_in_at", "event.followup_done": "done_at"}


@dataclass(frozen=True)
class Span:
    """A window of whole months in a zone: [first month's start, the month after last's start)."""

    first: date
    last: date
    zone: ZoneInfo

    def starts(self) -> list[date]:
        months, current = [], self.first
        while current <= self.last:
            months.append(current)
            current = (current + timedelta(days=32)).replace(day=1)
        return months

    def instant(self, month: date) -> datetime:
        return datetime.combine(month, time(), self.zone)

    @property
    def start(self) -> datetime:
        return self.instant(self.first)

    @property
    def end(self) -> datetime:
        return self.instant((self.last + timedelta(days=32)).replace(day=1))

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def month_of(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date().replace(day=1)


def when(f: Envelope, field: str) -> datetime:
    return datetime.fromisoformat(f.data[field])


def in_order(facts: Iterable[Envelope]) -> list[Envelope]:
    """Each aggregate's facts in version order (how its event store numbered them)."""
    return sorted(facts, key=lambda f: (f.subject, f.sequence))


def latest_snapshots(facts: Iterable[Envelope]) -> list[Envelope]:
    """Per counter (the subject): the latest `as_of`, ties by the larger total."""
    latest: dict[str, Envelope] = {}
    for f in facts:
        old = latest.get(f.subject)
        if old is None or (when(f, "as_of"), f.data["total"]) > (when(old, "as_of"),
                                                                  old.data["total"]):
            latest[f.subject] = f
    return list(latest.values())


def channels(facts: list[Envelope], span: Span) -> list[dict[str, Any]]:
    """Per channel, the six measures in the window, ranked by their sum, then by name."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    registered: dict[tuple[str, str], Envelope] = {}
    checked_in: dict[tuple[str, str], Envelope] = {}
    for f in in_order(facts):
        kind = f.type.removeprefix("gatherly.")
        if kind in ("member.joined", "member.rejoined"):
            _count(counts, span, when(f, f"{kind.split('.')[1]}_at"), f, "joins", 1)
        elif kind == "content.viewed":
            _count(counts, span, when(f, "viewed_at"), f, "views", f.data["count"])
        elif kind == "reaction.added":
            _count(counts, span, when(f, "at"), f, "reactions", 1)
        elif kind in ("event.registered", "event.registration_cancelled"):
            registered[(f.subject, f.data["member_id"])] = f  # the last one decides
        elif kind == "event.attended":
            checked_in.setdefault((f.subject, f.data["member_id"]), f)  # the first counts
        elif kind == "feedback.submitted":
            _count(counts, span, when(f, "submitted_at"), f, "feedback", 1)
    for measure, type_ in (("views", "content.views_counted"),
                           ("reactions", "content.reactions_counted")):
        for f in latest_snapshots(f for f in facts if f.type == f"gatherly.{type_}"):
            _count(counts, span, when(f, "as_of"), f, measure, f.data["total"])
    for f in registered.values():
        if f.type.endswith(".registered"):
            _count(counts, span, when(f, "registered_at"), f, "registrations", 1)
    for f in checked_in.values():
        _count(counts, span, when(f, "checked_in_at"), f, "attendances", 1)
    ranked = sorted(counts.items(), key=lambda item: (-item[1].total(), item[0]))
    return [{"rank": rank, "channel": channel, **{m: measures[m] for m in MEASURES},
             "score": measures.total()} for rank, (channel, measures) in enumerate(ranked, 1)]


def _count(counts: dict[str, Counter[str]], span: Span, moment: datetime, f: Envelope,
           measure: str, n: int) -> None:
    if span.holds(moment):
        counts[f.data["channel"]][measure] += n


def member_histories(facts: list[Envelope]) -> dict[str, list[tuple[str, datetime]]]:
    """Per member, (joined | rejoined | left, when) in version order."""
    histories: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for f in in_order(facts):
        kind = f.type.removeprefix("gatherly.member.")
        if f.type.startswith("gatherly.member.") and kind in ("joined", "rejoined", "left"):
            histories[f.subject].append((kind, when(f, f"{kind}_at")))
    return histories


def retention(facts: list[Envelope], span: Span) -> list[dict[str, Any]]:
    """Per month of first join in the window: the cohort's size, and the share of it still a
    member at the end of that month and of each later one in the window."""
    cohorts: dict[date, list[list[tuple[str, datetime]]]] = defaultdict(list)
    for history in member_histories(facts).values():
        joins = [at for kind, at in history if kind != "left"]
        if joins:
            cohorts[span.month_of(min(joins))].append(history)
    months = span.starts()
    answer = []
    for cohort_month in months:
        cohort = cohorts[cohort_month]
        shares = []
        for later in months[months.index(cohort_month):]:
            end = span.instant((later + timedelta(days=32)).replace(day=1))
            still = sum(_member_at(history, end) for history in cohort)
            shares.append(still / len(cohort) if cohort else None)
        answer.append({"month": cohort_month.isoformat(), "members": len(cohort),
                       "retained": shares})
    return answer


def _member_at(history: list[tuple[str, datetime]], end: datetime) -> bool:
    before = [kind for kind, at in history if at < end]
    return bool(before) and before[-1] != "left"


def roles(facts: list[Envelope]) -> dict[str, Any]:
    """Members now (not left, not erased) per role held now; the catalogue's roles nobody
    holds."""
    erased = {f.subject for f in facts if f.type == "gatherly.member.erased"}
    current = {m for m, history in member_histories(facts).items()
               if history[-1][0] != "left" and m not in erased}
    held: dict[tuple[str, str], bool] = {}
    for f in in_order(facts):
        if f.type in ("gatherly.member.role_assigned", "gatherly.member.role_removed"):
            held[(f.subject, f.data["role"])] = f.type.endswith("assigned")
    per_role = Counter(role for (member, role), holds in held.items()
                       if holds and member in current)
    return {"roles": {role: per_role[role] for role in sorted(set(ROLES) | set(per_role))},
            "empty": [role for role in ROLES if not per_role[role]]}


def followups(facts: list[Envelope], span: Span, within_days: int) -> dict[str, Any]:
    """Of the events finished in the window and not cancelled, how many had every duty — the
    assigned ones, or all seven when none was assigned — done within `within_days`."""
    finished: dict[str, datetime] = {}
    cancelled: set[str] = set()
    assigned: dict[str, set[str]] = defaultdict(set)
    done: dict[str, dict[str, datetime]] = defaultdict(dict)
    for f in in_order(facts):
        kind = f.type.removeprefix("gatherly.event.")
        if kind == "finished":
            finished[f.subject] = when(f, "finished_at")
        elif kind == "cancelled":
            cancelled.add(f.subject)
        elif kind == "followup_assigned":
            assigned[f.subject].add(f.data["task"])
        elif kind == "followup_done":
            task, at = f.data["task"], when(f, "done_at")
            done[f.subject][task] = min(at, done[f.subject].get(task, at))
    counted = [e for e, at in finished.items() if span.holds(at) and e not in cancelled]
    completed = sum(
        all(task in done[e] and done[e][task] <= finished[e] + timedelta(days=within_days)
            for task in assigned[e] or DUTIES)
        for e in counted)
    return {"finished": len(counted), "completed": completed, "within_days": within_days,
            "completion": completed / len(counted) if counted else None}


def active(facts: list[Envelope], span: Span, granularity: str = "month") -> dict[str, Any]:
    """Distinct members who did anything, per period (weeks start on Monday) and in the whole
    window; the first week may begin before the window, and counts from the window's start."""
    per_period: dict[date, set[str]] = defaultdict(set)
    for f in facts:
        kind = f.type.removeprefix("gatherly.")
        if kind not in ACTORS:
            continue
        at = when(f, MOMENT[kind]) if kind in MOMENT else (
            when(f, "at") if "at" in f.data else f.time)
        who = f.subject if ACTORS[kind] is None else f.data.get(str(ACTORS[kind]))
        if who and span.holds(at):
            per_period[truncate(at.astimezone(span.zone).date(), granularity)].add(who)
    starts, current = [], truncate(span.first, granularity)
    while current < span.end.date():
        starts.append(current)
        current = (current + timedelta(days=32)).replace(day=1) if granularity == "month" else (
            current + timedelta(days=7 if granularity == "week" else 1))
    return {"active": len(set().union(*per_period.values())),
            "periods": [{"start": p.isoformat(), "active": len(per_period[p])} for p in starts]}


def truncate(day: date, granularity: str) -> date:
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1) if granularity == "month" else day


# The oracle itself, on a history small enough to work out by hand.

T0 = datetime(2025, 1, 15, 12, tzinfo=UTC)
JANUARY_TO_MARCH = Span(date(2025, 1, 1), date(2025, 3, 1), ZoneInfo("UTC"))


def small_history() -> list[Envelope]:
    h = History("hand")
    h.add("member.joined", "a", T0, channel="vk", joined_at=T0)
    h.add("member.role_assigned", "a", T0, role="mentor")
    h.add("member.joined", "b", T0, channel="email", joined_at=T0)
    h.add("member.role_assigned", "b", T0, role="scout")
    h.add("member.left", "b", T0 + timedelta(days=20), left_at=T0 + timedelta(days=20))
    h.add("member.rejoined", "b", T0 + timedelta(days=50), channel="vk",
          rejoined_at=T0 + timedelta(days=50))
    h.add("member.joined", "c", T0 + timedelta(days=30), channel="vk",
          joined_at=T0 + timedelta(days=30))
    h.add("member.role_assigned", "c", T0, role="hero")
    h.add("member.left", "c", T0 + timedelta(days=31), left_at=T0 + timedelta(days=31))
    h.add("content.views_counted", "k", T0, content_id="@p", channel="email", counter="x",
          total=9, as_of=T0 + timedelta(days=2))
    h.add("content.views_counted", "k", T0, content_id="@p", channel="email", counter="x",
          total=5, as_of=T0 + timedelta(days=1))  # older, imported later: the 9 counts
    h.add("event.registered", "e", T0, member_id="@a", channel="email", registered_at=T0)
    h.add("event.registration_cancelled", "e", T0, member_id="@a", at=T0)
    h.add("event.attended", "e", T0, member_id="@a", channel="vk", checked_in_at=T0,
          walk_in=True)
    h.add("event.finished", "e", T0, finished_at=T0)
    h.add("event.followup_assigned", "e", T0, task="promoted", due_at=T0)
    h.add("event.followup_done", "e", T0, task="promoted", done_at=T0 + timedelta(days=9))
    h.add("event.followup_done", "e", T0, task="promoted", done_at=T0 + timedelta(days=2))
    h.add("event.finished", "f", T0, finished_at=T0)  # nothing assigned: all seven are due
    for duty in DUTIES[:-1]:
        h.add("event.followup_done", "f", T0, task=duty, done_at=T0)
    return h.facts


def test_the_oracle_ranks_channels_by_their_sum_then_name() -> None:
    ranked = channels(small_history(), JANUARY_TO_MARCH)
    assert [(c["channel"], c["score"]) for c in ranked] == [("email", 10), ("vk", 4)]
    assert ranked[1] == {"rank": 2, "channel": "vk", "joins": 3, "views": 0, "reactions": 0,
                         "registrations": 0, "attendances": 1, "feedback": 0, "score": 4}
    assert (ranked[0]["joins"], ranked[0]["views"], ranked[0]["registrations"]) == (1, 9, 0)


def test_the_oracle_follows_each_join_cohort_month_by_month() -> None:
    assert retention(small_history(), JANUARY_TO_MARCH) == [
        {"month": "2025-01-01", "members": 2, "retained": [1.0, 0.5, 1.0]},
        {"month": "2025-02-01", "members": 1, "retained": [0.0, 0.0]},
        {"month": "2025-03-01", "members": 0, "retained": [None]},
    ]


def test_the_oracle_counts_roles_of_current_members_only() -> None:
    answer = roles(small_history())
    assert {r: n for r, n in answer["roles"].items() if n} == {"mentor": 1, "scout": 1}
    assert answer["empty"] == [r for r in ROLES if r not in ("mentor", "scout")]


def test_the_oracle_completes_a_followup_by_its_first_done_duty() -> None:
    assert followups(small_history(), JANUARY_TO_MARCH, 3) == {
        "finished": 2, "completed": 1, "within_days": 3, "completion": 0.5}
    assert followups(small_history(), JANUARY_TO_MARCH, 1)["completed"] == 0
