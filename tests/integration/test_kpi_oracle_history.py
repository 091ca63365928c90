"""A random community history for the oracle: members who join, leave, rejoin and are erased;
content with views, imported counters, reactions and platforms' reaction counts; events with
registrations, check-ins, walk-ins and follow-ups; feedback; introductions and thanks. Every
aggregate's facts in order, aggregates interleaved at random (late facts: reactions before their
content, attendances before the join, answers of feedback before others' submissions)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

from gatherly.envelope import Envelope
from tests.integration.test_kpi_support import History

ORIGIN = datetime.fromisoformat("2024-11-01T00:00:00+00:00")
SPAN = 440 * 86400  # into January 2026, so some facts fall outside a 2025 window
CHANNELS = ("telegram", "vk", "email", "website", "offline", "youtube")
KINDS = ("like", "love", "comment", "share", "repost")
ROLES = ("mentor", "partner", "storyteller", "historian", "hero", "greeter")
TASKS = ("thanks_sent", "materials_sent", "feedback_collected", "members_introduced",
         "invited_to_community", "history_written", "promoted")


def moment(rng: random.Random, after: datetime | None = None, days: float = 60) -> datetime:
    if after is None:
        return ORIGIN + timedelta(seconds=rng.randrange(SPAN))
    return after + timedelta(seconds=rng.randrange(1, int(days * 86400)))


def generate(seed: int, scale: int = 1) -> list[Envelope]:
    rng, h = random.Random(seed), History("oracle")
    members = [f"m{i}" for i in range(4000 * scale)]
    for m in members:
        _member(rng, h, m)
    content = {f"p{i}": moment(rng) for i in range(600 * scale)}
    for p, at in content.items():
        h.add("content.published", p, at, channel=rng.choice(CHANNELS), kind="post",
              published_at=at)
    for i in range(39000 * scale):
        p = rng.choice(list(content))
        at = moment(rng, content[p], 30)
        member = f"@{rng.choice(members)}" if rng.random() < 0.5 else None
        h.add("content.viewed", f"v{i}", at, content_id=f"@{p}", channel=rng.choice(CHANNELS),
              count=rng.randint(1, 3), viewed_at=at, member_id=member)
    for p in rng.sample(list(content), 200 * scale):
        for _ in range(3):  # snapshots imported in any order: the latest `as_of` counts
            at = moment(rng, content[p], 90)
            h.add("content.views_counted", f"k{p}", at, content_id=f"@{p}", channel="youtube",
                  counter="youtube", total=rng.randint(0, 5000), as_of=at)
    for p in rng.sample(list(content), 100 * scale):
        for _ in range(3):  # a platform's anonymous counts, per kind, in any order too
            at, kind = moment(rng, content[p], 90), rng.choice(("like", "love", "custom"))
            h.add("content.reactions_counted", f"q{p}/{kind}", at, content_id=f"@{p}",
                  channel="telegram", counter="telegram", kind=kind,
                  total=rng.randint(0, 300), as_of=at)
    for i in range(20000 * scale):
        _reaction(rng, h, f"r{i}", rng.choice(list(content)), content, rng.choice(members))
    for i in range(200 * scale):
        _event(rng, h, f"e{i}", members)
    for i in range(4000 * scale):
        _feedback(rng, h, f"f{i}", rng.choice(members))
    for i in range(2000 * scale):
        at = moment(rng)
        a, b, by = rng.sample(members, 3)
        h.add("introduction.made", f"i{i}", at, member_a=f"@{a}", member_b=f"@{b}",
              by_member=f"@{by}", at=at)
        h.add("thanks.sent", f"t{i}", at, to_member=f"@{a}", by_member=f"@{by}", at=at)
    for m in rng.sample(members, 120 * scale):  # erasures, possibly before others' late facts
        h.add("member.erased", m, ORIGIN + timedelta(seconds=SPAN + 1),
              erased_at=ORIGIN + timedelta(seconds=SPAN + 1))
    return interleave(rng, h.facts)


def _member(rng: random.Random, h: History, m: str) -> None:
    at = moment(rng)
    h.add("member.joined", m, at, channel=rng.choice(CHANNELS), joined_at=at)
    if rng.random() < 0.2:
        role = rng.choice(ROLES)
        h.add("member.role_assigned", m, at, role=role)
        if rng.random() < 0.3:
            h.add("member.role_removed", m, at, role=role)
            if rng.random() < 0.3:
                h.add("member.role_assigned", m, at, role=role)
    while rng.random() < 0.35:
        at = moment(rng, at)
        h.add("member.left", m, at, left_at=at)
        if rng.random() < 0.5:
            break
        at = moment(rng, at)
        h.add("member.rejoined", m, at, channel=rng.choice(CHANNELS), rejoined_at=at)
    if rng.random() < 0.2:
        h.add("member.profile_updated", m, moment(rng, at), fields=["name"])


def _reaction(
    rng: random.Random, h: History, r: str, p: str, content: dict[str, datetime], m: str
) -> None:
    at = moment(rng, content[p], rng.choice((0.05, 2, 20)))
    fact = {"content_id": f"@{p}", "member_id": f"@{m}", "kind": rng.choice(KINDS),
            "channel": rng.choice(CHANNELS)}
    h.add("reaction.added", r, at, **fact, at=at)
    if rng.random() < 0.2:
        at = moment(rng, at, 5)
        h.add("reaction.removed", r, at, **fact, at=at)
        if rng.random() < 0.3:
            at = moment(rng, at, 5)
            h.add("reaction.added", r, at, **fact, at=at)


def _event(rng: random.Random, h: History, e: str, members: list[str]) -> None:
    scheduled = moment(rng)
    starts = moment(rng, scheduled, 30)
    h.add("event.scheduled", e, scheduled, format="offline", starts_at=starts,
          ends_at=starts + timedelta(hours=2), channel=rng.choice(CHANNELS))
    if rng.random() < 0.2:
        starts = moment(rng, starts, 10)
        h.add("event.rescheduled", e, scheduled, starts_at=starts,
              ends_at=starts + timedelta(hours=2))
    if rng.random() < 0.1:
        h.add("event.cancelled", e, scheduled, cancelled_at=scheduled)
        return
    attendees = set()
    for m in rng.sample(members, rng.randint(10, 70)):
        at = moment(rng, scheduled, 5)
        h.add("event.registered", e, at, member_id=f"@{m}", channel=rng.choice(CHANNELS),
              registered_at=at)
        if rng.random() < 0.1:
            h.add("event.registration_cancelled", e, at, member_id=f"@{m}", at=at)
            if rng.random() < 0.3:  # back again, maybe through another channel
                at = moment(rng, at, 2)
                h.add("event.registered", e, at, member_id=f"@{m}",
                      channel=rng.choice(CHANNELS), registered_at=at)
        elif rng.random() < 0.7:
            attendees.add((m, False))
    attendees |= {(m, True) for m in rng.sample(members, rng.randint(0, 8))}
    for m, walk_in in sorted(attendees):
        at = starts + timedelta(minutes=rng.randint(0, 90))
        h.add("event.attended", e, at, member_id=f"@{m}", channel="offline", checked_in_at=at,
              walk_in=walk_in)
    finished = starts + timedelta(hours=2)
    h.add("event.finished", e, finished, finished_at=finished)
    assigned = rng.sample(TASKS, rng.randint(0, 3))
    for task in assigned:
        h.add("event.followup_assigned", e, finished, task=task, due_at=finished)
    diligent = rng.random() < 0.5  # does every duty: some events without assignments complete
    for task in TASKS:
        if diligent or rng.random() < 0.6:
            for _ in range(1 + (rng.random() < 0.1)):  # done twice: the first one counts
                at = moment(rng, finished, 8)
                h.add("event.followup_done", e, at, task=task, done_at=at)


def _feedback(rng: random.Random, h: History, f: str, m: str) -> None:
    at = moment(rng)
    h.add("feedback.submitted", f, at, member_id=f"@{m}", about_kind="community",
          channel=rng.choice(CHANNELS), submitted_at=at)
    if rng.random() < 0.7:
        at = moment(rng, at, rng.choice((0.5, 3)))
        h.add("feedback.answered", f, at, at=at)
    if rng.random() < 0.5:
        at = moment(rng, at, 10)
        h.add("feedback.resolved", f, at, at=at)


def interleave(rng: random.Random, facts: list[Envelope]) -> list[Envelope]:
    """A random arrival order that keeps each aggregate's facts in version order."""
    by_subject: dict[str, list[Envelope]] = defaultdict(list)
    for fact in facts:
        by_subject[fact.subject].append(fact)
    keyed: list[tuple[float, Envelope]] = []
    for subject_facts in by_subject.values():
        keys = sorted(rng.random() for _ in subject_facts)
        keyed.extend(zip(keys, subject_facts, strict=True))
    return [fact for _, fact in sorted(keyed, key=lambda pair: pair[0])]


def test_a_history_has_every_fact_type_and_keeps_each_aggregates_order() -> None:
    facts = generate(seed=7)
    assert len(facts) >= 100_000
    assert len({f.type for f in facts}) >= 24
    seen: dict[str, int] = {}
    for fact in facts:
        assert fact.sequence == seen.get(fact.subject, 0) + 1
        seen[fact.subject] = fact.sequence
