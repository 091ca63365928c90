"""The oracle: 100,000 random facts of every type through the real stream and projection, every
KPI computed again straight from the raw list in plain Python, and compared with the API."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gatherly.bus import Bus
from gatherly.envelope import Envelope
from gatherly.local.nats import EmbeddedNats
from gatherly.settings import Settings
from tests.conftest import free_port
from tests.integration import test_kpi_oracle_beyond as beyond
from tests.integration import test_kpi_oracle_periods as periods
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_support import kpi_client, project, publish

TZ = ZoneInfo("Europe/Berlin")
START = datetime.combine(date(2025, 1, 1), time(), TZ)
END = datetime.combine(date(2026, 1, 1), time(), TZ)
WINDOW = {"from": "2025-01-01", "to": "2025-12-31", "granularity": "month",
          "tz": "Europe/Berlin"}
MONTHS = [date(2025, m, 1).isoformat() for m in range(1, 13)]
Getter = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
def fast_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """Without fsync per write: this test measures the KPIs, not durability."""
    root = tmp_path_factory.mktemp("nats-fast")
    server = EmbeddedNats(root / "data", free_port(), root / "nats.log", sync_always=False)
    server.start()
    yield server
    server.stop()


def at(f: Envelope, field: str = "at") -> datetime:
    return datetime.fromisoformat(f.data[field])


def month(moment: datetime) -> str:
    return moment.astimezone(TZ).date().replace(day=1).isoformat()


def inside(moment: datetime | None) -> bool:
    return moment is not None and START <= moment < END


def in_version_order(facts: list[Envelope]) -> list[Envelope]:
    return sorted(facts, key=lambda f: (f.subject, f.sequence))


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what percentile_cont computes)."""
    if not values:
        return None
    ordered, position = sorted(values), q * (len(values) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Oracle:
    """Each aggregate's final state from its facts, in version order."""

    def __init__(self, facts: list[Envelope]) -> None:
        self.by_type: dict[str, list[Envelope]] = defaultdict(list)
        for f in sorted(facts, key=lambda f: (f.subject, f.sequence)):
            self.by_type[f.type.removeprefix("gatherly.")].append(f)

    def members(self) -> dict[str, Any]:
        channel: dict[str, str] = {}
        moves: Counter[tuple[str, str, str]] = Counter()
        for f in sorted(self._of("member.joined", "member.rejoined", "member.left"),
                        key=lambda f: (f.subject, f.sequence)):
            kind = f.type.split(".")[-1]
            if kind != "left":
                channel[f.subject] = f.data["channel"]
            when = at(f, f"{kind}_at")
            moves[(month(when) if inside(when) else "before" if when < START else "after",
                   channel[f.subject], kind)] += 1
        sign = {"joined": 1, "rejoined": 1, "left": -1}
        total = sum(n * sign[k] for (b, _, k), n in moves.items() if b != "after")
        per = {k: sum(n for (b, _, kk), n in moves.items() if kk == k and b in MONTHS)
               for k in sign}
        totals: Counter[str] = Counter()
        for (b, ch, k), n in moves.items():
            if b != "after":
                totals[ch] += n * sign[k]
        return {"total": total, **per, "channel_totals": dict(totals)}

    def _of(self, *types: str) -> list[Envelope]:
        return [f for t in types for f in self.by_type[t]]

    def views(self) -> tuple[int, dict[str, int], dict[str, int]]:
        per_month: Counter[str] = Counter()
        per_channel: Counter[str] = Counter()
        for f in self.by_type["content.viewed"]:
            if inside(at(f, "viewed_at")):
                per_month[month(at(f, "viewed_at"))] += f.data["count"]
                per_channel[f.data["channel"]] += f.data["count"]
        latest: dict[str, Envelope] = {}
        for f in self.by_type["content.views_counted"]:
            old = latest.get(f.subject)
            if old is None or (at(f, "as_of"), f.data["total"]) > (at(old, "as_of"),
                                                                    old.data["total"]):
                latest[f.subject] = f
        for f in latest.values():
            if inside(at(f, "as_of")):
                per_month[month(at(f, "as_of"))] += f.data["total"]
                per_channel[f.data["channel"]] += f.data["total"]
        return sum(per_month.values()), dict(per_month), dict(per_channel)

    def reactions(self) -> dict[str, Any]:
        facts = self._of("reaction.added", "reaction.removed")
        counted = Counter((f.type.endswith("added"), month(at(f))) for f in facts if inside(at(f)))
        published = {f.subject: at(f, "published_at") for f in self.by_type["content.published"]
                     if inside(at(f, "published_at"))}
        delays: dict[str, list[float]] = defaultdict(list)
        for f in self.by_type["reaction.added"]:
            if f.data["content_id"] in published:
                delays[f.data["content_id"]].append(
                    (at(f) - published[f.data["content_id"]]).total_seconds())
        firsts = [min(d) for d in delays.values()]
        every = [s for d in delays.values() for s in d]
        latest: dict[str, Envelope] = {}  # per (content, counter, kind): its own subject
        for f in self.by_type["content.reactions_counted"]:
            old = latest.get(f.subject)
            if old is None or (at(f, "as_of"), f.data["total"]) > (at(old, "as_of"),
                                                                    old.data["total"]):
                latest[f.subject] = f
        snapshots: Counter[str] = Counter()
        for f in latest.values():
            if inside(at(f, "as_of")):
                snapshots[month(at(f, "as_of"))] += f.data["total"]
        return {"added": sum(n for (a, _), n in counted.items() if a),
                "removed": sum(n for (a, _), n in counted.items() if not a),
                "counted": sum(snapshots.values()), "counted_per_month": dict(snapshots),
                "first": (percentile(firsts, 0.5), percentile(firsts, 0.9)),
                "all": percentile(every, 0.5)}

    def feedback(self) -> dict[str, Any]:
        rows: dict[str, dict[str, Any]] = defaultdict(dict)
        for f in self._of("feedback.submitted", "feedback.answered", "feedback.resolved"):
            kind = f.type.split(".")[-1]
            when = at(f, "submitted_at" if kind == "submitted" else "at")
            rows[f.subject].setdefault(kind, when)
        asked = [r for r in rows.values() if inside(r.get("submitted"))]
        waits = [(r["answered"] - r["submitted"]).total_seconds() for r in asked
                 if "answered" in r]
        return {k: sum(inside(r.get(k)) for r in rows.values())
                for k in ("submitted", "answered", "resolved")} | {
            "median": percentile(waits, 0.5), "p90": percentile(waits, 0.9),
            "sla": sum(w <= 86400 for w in waits) / len(asked),
            "open": sum(r["submitted"] < END and (r.get("resolved") is None
                                                  or r["resolved"] >= END)
                        for r in rows.values()),
        }

    def events(self) -> dict[str, int]:
        """The events starting in the window: their registrations (not cancelled), check-ins,
        walk-ins and new participants."""
        starts: dict[str, datetime] = {}
        for f in in_version_order(self._of("event.scheduled", "event.rescheduled")):
            starts[f.subject] = at(f, "starts_at")
        held = {event for event, start in starts.items() if inside(start)}
        registered: dict[tuple[str, str], datetime | None] = {}
        for f in in_version_order(self._of("event.registered", "event.registration_cancelled")):
            key = (f.subject, f.data["member_id"])
            registered[key] = at(f, "registered_at") if f.type.endswith("registered") else None
        checkins: dict[tuple[str, str], Envelope] = {}
        for f in self.by_type["event.attended"]:  # a second check-in changes nothing
            checkins.setdefault((f.subject, f.data["member_id"]), f)
        first: dict[str, tuple[datetime, str]] = {}
        for (event, member), f in checkins.items():
            first[member] = min(first.get(member, (at(f, "checked_in_at"), event)),
                                (at(f, "checked_in_at"), event))
        attended = [(k, f) for k, f in checkins.items() if k[0] in held]
        return {
            "registered": sum(r is not None and e in held for (e, _), r in registered.items()),
            "attended": len(attended),
            "walk_ins": sum(f.data["walk_in"] for _, f in attended),
            "new": sum(first[m][1] == e for (e, m), _ in attended),
        }

    def active(self) -> dict[str, int]:
        actors: dict[str, set[str]] = defaultdict(set)
        fields = {"member.joined": None, "member.rejoined": None,
                  "member.profile_updated": None, "content.viewed": "member_id",
                  "reaction.added": "member_id", "reaction.removed": "member_id",
                  "feedback.submitted": "member_id", "event.registered": "member_id",
                  "event.registration_cancelled": "member_id", "event.attended": "member_id",
                  "introduction.made": "by_member", "thanks.sent": "by_member"}
        for kind, field in fields.items():
            for f in self.by_type[kind]:
                who = f.subject if field is None else f.data.get(field)
                if who and inside(f.time):
                    actors[month(f.time)].add(who)
        return {m: len(actors[m]) for m in MONTHS}


async def test_every_kpi_equals_the_plain_python_oracle(
    settings: Settings, fast_nats: EmbeddedNats
) -> None:
    settings = settings.model_copy(update={"nats_url": fast_nats.url})
    bus = await Bus.connect(settings.nats, stream=settings.stream_name, name="oracle")
    await bus.ensure_stream(duplicate_window=settings.duplicate_window_seconds)
    await bus.close()
    facts = generate(seed=2025)
    async for client in kpi_client(settings):  # Berlin's rollups then grow with every batch
        response = await client.get("/v1/communities/oracle/kpis/members", params=WINDOW,
                                    headers={"X-Gatherly-Community": "oracle"})
        assert response.json()["total"] == 0
    await publish(settings, facts)
    await project(settings, len(facts), within=240)
    oracle = Oracle(facts)
    async for client in kpi_client(settings):
        client.headers["X-Gatherly-Community"] = "oracle"

        async def get(
            name: str, api: httpx.AsyncClient = client, **extra: int | str
        ) -> dict[str, Any]:
            response = await api.get(f"/v1/communities/oracle/kpis/{name}",
                                     params={**WINDOW, **extra})
            assert response.status_code == 200, response.text
            return dict(response.json())

        members, expected = await get("members"), oracle.members()
        assert {k: members[k] for k in ("total", "joined", "rejoined", "left")} == {
            k: expected[k] for k in ("total", "joined", "rejoined", "left")}
        assert {ch: c["total"] for ch, c in members["channels"].items()} == (
            expected["channel_totals"])
        views, (total, per_month, per_channel) = await get("views"), oracle.views()
        assert views["total"] == total and views["channels"] == per_channel
        assert {p["start"]: p["views"] for p in views["periods"] if p["views"]} == per_month
        reactions, expected = await get("reactions"), oracle.reactions()
        assert (reactions["added"], reactions["removed"]) == (expected["added"],
                                                              expected["removed"])
        assert reactions["counted"] == expected["counted"]
        assert reactions["total"] == expected["added"] - expected["removed"] + expected["counted"]
        assert {p["start"]: p["counted"] for p in reactions["periods"] if p["counted"]} == (
            expected["counted_per_month"])
        speed = reactions["speed"]
        assert (speed["first_reaction_seconds"]["median"],
                speed["first_reaction_seconds"]["p90"]) == pytest.approx(expected["first"])
        # Within 2 % by design (queries/speed.py: 1 % delay bins); every other number is exact.
        assert speed["all_reactions_seconds"]["median"] == pytest.approx(expected["all"],
                                                                         rel=0.02)
        feedback, expected = await get("feedback"), oracle.feedback()
        assert {k: feedback[k] for k in ("submitted", "answered", "resolved")} == {
            k: expected[k] for k in ("submitted", "answered", "resolved")}
        assert (feedback["first_answer_seconds"]["median"],
                feedback["first_answer_seconds"]["p90"]) == pytest.approx(
            (expected["median"], expected["p90"]))
        assert feedback["answered_within_sla"] == pytest.approx(expected["sla"])
        assert feedback["backlog"]["open"] == expected["open"]
        events = await get("events")
        assert {k: events[k] for k in ("registered", "attended", "walk_ins", "new")} == (
            oracle.events())
        active = await get("active")
        assert {p["start"]: p["active"] for p in active["periods"]} == oracle.active()
        # The summary reads only totals; it says what the full answers say.
        assert await get("summary") == await summary_of(get, events, feedback, active)
        # Berlin's rollups were kept by the projection, Kolkata's are backfilled when asked.
        berlin, kolkata = (beyond.Span(date(2025, 1, 1), date(2025, 12, 1), ZoneInfo(zone))
                           for zone in ("Europe/Berlin", "Asia/Kolkata"))
        mismatches = await periods.compare(get, facts, berlin)
        mismatches |= await periods.compare(get, facts, kolkata, tz="Asia/Kolkata")
        assert mismatches | await compare_beyond(get, facts) == {}


async def summary_of(get: Getter, events: dict[str, Any], feedback: dict[str, Any],
                     active: dict[str, Any]) -> dict[str, Any]:
    members, views, reactions = await get("members"), await get("views"), await get("reactions")
    channels = (await get("channels"))["channels"]
    return {
        "community_id": "oracle", "from": WINDOW["from"], "to": WINDOW["to"],
        "granularity": WINDOW["granularity"], "tz": WINDOW["tz"],
        "members": {k: members[k] for k in
                    ("total", "joined", "rejoined", "left", "net", "growth_rate", "churn_rate")},
        "views": views["total"],
        "reactions": {"added": reactions["added"], "per_view": reactions["per_view"],
                      "first_reaction_median_seconds":
                          reactions["speed"]["first_reaction_seconds"]["median"]},
        "events": {k: events[k] for k in ("registered", "attended", "no_shows", "new", "repeat")},
        "feedback": {"submitted": feedback["submitted"],
                     "first_answer_median_seconds": feedback["first_answer_seconds"]["median"],
                     "answered_within_sla": feedback["answered_within_sla"],
                     "open": feedback["backlog"]["open"]},
        "active_members": active["active"],
        "top_channel": channels[0]["channel"] if channels else None,
    }


async def compare_beyond(get: Getter, facts: list[Envelope]) -> dict[str, Any]:
    """Channels (KPI 4), retention, roles, follow-ups: every disagreement at once."""
    span = beyond.Span(date(2025, 1, 1), date(2025, 12, 1), TZ)
    roles = await get("roles")
    pairs: dict[str, tuple[Any, Any]] = {
        "channels": ((await get("channels"))["channels"], beyond.channels(facts, span)),
        "retention": ((await get("retention"))["cohorts"], beyond.retention(facts, span)),
        "roles": ({k: roles[k] for k in ("roles", "empty")}, beyond.roles(facts)),
    }
    for days in (7, 3):
        answer = await get("followups", within_days=days)
        pairs[f"followups within {days} days"] = (
            {k: answer[k] for k in ("finished", "completed", "within_days", "completion")},
            beyond.followups(facts, span, days))
    expected = pairs["followups within 7 days"][1]
    assert 0 < expected["completed"] < expected["finished"], "the history covers both outcomes"
    return {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
