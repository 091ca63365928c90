"""An events period's numbers are its events' (issue #6, found by QA): registrations were
bucketed by the day of registering and check-ins by theirs, so June's period mixed May's
registrations out and read an attendance rate of 2.0 next to rows that said otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta

from gatherly.settings import Settings
from tests.integration.test_kpi_support import History, kpi_client, project, publish

JUNE = {"from": "2026-06-01", "to": "2026-06-30", "granularity": "month"}
COUNTS = ("registered", "attended", "walk_ins", "no_shows", "new", "repeat")


def qa_events() -> History:
    """E1 on June 1st: three registered on May 20th, two of them came, one did not, and a
    walk-in. E2 on June 15th: three registered on June 10th, one cancelled, the other two came."""
    h = History("qa")
    for event, day, registered_on, members in (
            ("e1", "2026-06-01", "2026-05-20", ("a", "b", "c")),
            ("e2", "2026-06-15", "2026-06-10", ("d", "e", "f"))):
        starts, registered_at = (datetime.fromisoformat(f"{d}T18:00:00+00:00")
                                 for d in (day, registered_on))
        h.add("event.scheduled", event, registered_at, format="offline", starts_at=starts,
              ends_at=starts + timedelta(hours=2), channel="offline")
        for m in members:
            h.add("event.registered", event, registered_at, member_id=f"@{m}",
                  channel="website", registered_at=registered_at)
        came = ("a", "b") if event == "e1" else ("d", "e")
        if event == "e2":
            h.add("event.registration_cancelled", event, registered_at, member_id="@f",
                  at=registered_at + timedelta(days=1))
        for i, m in enumerate(came):
            at = starts + timedelta(minutes=i)
            h.add("event.attended", event, at, member_id=f"@{m}", channel="website",
                  checked_in_at=at, walk_in=False)
        if event == "e1":
            h.add("event.attended", event, starts, member_id="@w", channel="offline",
                  checked_in_at=starts + timedelta(minutes=5), walk_in=True)
        h.add("event.finished", event, starts, finished_at=starts + timedelta(hours=2))
    return h


def late_in_may_utc(h: History) -> None:
    """E0 at 00:30 on June 1st in Berlin: May 31st in UTC. One registered, who came."""
    starts = datetime.fromisoformat("2026-05-31T22:30:00+00:00")
    h.add("event.scheduled", "e0", starts, format="offline", starts_at=starts,
          ends_at=starts + timedelta(hours=1), channel="offline")
    h.add("event.registered", "e0", starts, member_id="@g", channel="website",
          registered_at=starts - timedelta(days=3))
    h.add("event.attended", "e0", starts, member_id="@g", channel="website",
          checked_in_at=starts, walk_in=False)


async def test_a_periods_numbers_are_the_sums_of_its_events_rows(settings: Settings) -> None:
    history = qa_events()
    late_in_may_utc(history)
    facts = history.facts
    await publish(settings, facts)
    await project(settings, len(facts))
    async for client in kpi_client(settings):
        for granularity in ("month", "week", "day"):
            answer = (await client.get("/v1/communities/qa/kpis/events",
                                       params={**JUNE, "granularity": granularity},
                                       headers={"X-Gatherly-Community": "qa"})).json()
            rows = answer["events"]
            assert [(r["registered"], r["attended"], r["walk_ins"], r["no_shows"])
                    for r in rows] == [(3, 3, 1, 1), (2, 2, 0, 0)]
            periods = [p for p in answer["periods"] if p["registered"] or p["attended"]]
            assert len(periods) == (1 if granularity == "month" else 2)
            for part in (answer, *periods):
                assert 0 <= part["attendance_rate"] <= 1
            assert {k: answer[k] for k in COUNTS} == {k: sum(r[k] for r in rows) for k in COUNTS}
            assert {k: sum(p[k] for p in periods) for k in COUNTS} == {
                k: answer[k] for k in COUNTS}
            # Of the five registrations for finished events, four came; the walk-in is apart.
            assert answer["attendance_rate"] == 0.8, granularity
        # In Berlin E0 starts on June 1st: June holds it, a scheduled event (no no-shows yet).
        berlin = (await client.get("/v1/communities/qa/kpis/events",
                                   params={**JUNE, "tz": "Europe/Berlin"},
                                   headers={"X-Gatherly-Community": "qa"})).json()
        assert [r["registered"] for r in berlin["events"]] == [1, 3, 2]
        assert {k: berlin["periods"][0][k] for k in COUNTS} == {
            k: sum(r[k] or 0 for r in berlin["events"]) for k in COUNTS}
        assert berlin["attendance_rate"] == 0.8  # E0 has not finished: not in the rate
        summary = (await client.get("/v1/communities/qa/kpis/summary", params=JUNE,
                                    headers={"X-Gatherly-Community": "qa"})).json()
        assert summary["events"] == {"registered": 5, "attended": 5, "no_shows": 1, "new": 5,
                                     "repeat": 0}
