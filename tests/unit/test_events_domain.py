"""The community event's state machine and rules, pure: no database, no bus."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gatherly.contracts import validate
from gatherly.envelope import DomainEvent, Envelope
from services.events import domain
from services.events.state import (
    CommunityEvent,
    DomainError,
    Format,
    Registration,
    Status,
    Task,
    evolve,
    replay,
)

T0 = datetime(2026, 3, 1, 18, tzinfo=UTC)
T1 = T0 + timedelta(hours=2)
ALICE, BOB, CAROL, DAN = (f"00000000-0000-4000-8000-00000000000{i}" for i in range(1, 5))


class Log:
    """An event's stream in memory: decide, store, evolve, as the handler does."""

    def __init__(self, **schedule: object) -> None:
        args: dict[str, object] = {"format": Format.OFFLINE, "starts_at": T0, "ends_at": T1,
                                   "time_zone": "Europe/Berlin", "channel": "telegram",
                                   "place": "Café", **schedule}
        self.envelopes: list[Envelope] = []
        self.append(domain.schedule(**args))  # type: ignore[arg-type]

    def append(self, events: list[DomainEvent]) -> list[DomainEvent]:
        for event in events:
            validate(event.type, event.data)
            self.envelopes.append(Envelope(
                id=f"e{len(self.envelopes)}", source="/gatherly/events", type=event.type,
                subject="ev1", community_id="c1", sequence=len(self.envelopes) + 1,
                time=event.time, data=event.data))
        return events

    @property
    def state(self) -> CommunityEvent:
        state = replay(self.envelopes)
        assert state is not None
        return state

    def do(self, decide: Callable[..., list[DomainEvent]], **args: object) -> list[DomainEvent]:
        return self.append(decide(self.state, **args))


def in_status(status: Status) -> Log:
    """A log whose event reached `status` through the allowed path."""
    log = Log()
    steps: list[tuple[Callable[..., list[DomainEvent]], dict[str, object]]] = [
        (domain.open_registration, {"at": T0}),
        (domain.check_in, {"member_id": ALICE, "at": T0, "walk_in": True}),
        (domain.finish, {"at": T1, "due_days": 7}),
    ]
    path = {Status.SCHEDULED: 0, Status.REGISTRATION_OPEN: 1, Status.LIVE: 2,
            Status.FINISHED: 3, Status.FOLLOWED_UP: 3}
    for decide, args in steps[: path.get(status, 0)]:
        log.do(decide, **args)
    if status is Status.REGISTRATION_CLOSED:
        log.do(domain.open_registration, at=T0)
        log.do(domain.close_registration, at=T0)
    if status is Status.FOLLOWED_UP:
        for task in Task:
            log.do(domain.complete_followup, task=task.value, at=T1)
    if status is Status.CANCELLED:
        log.do(domain.cancel, at=T0, reason="storm")
    assert log.state.status is status
    return log


COMMANDS: dict[str, Callable[[CommunityEvent], list[DomainEvent]]] = {
    "reschedule": lambda e: domain.reschedule(e, starts_at=T0, ends_at=T1,
                                              time_zone="UTC", at=T0),
    "cancel": lambda e: domain.cancel(e, at=T0),
    "open_registration": lambda e: domain.open_registration(e, at=T0),
    "close_registration": lambda e: domain.close_registration(e, at=T0),
    "register": lambda e: domain.register(e, member_id=BOB, channel="vk", at=T0),
    "check_in": lambda e: domain.check_in(e, member_id=BOB, at=T0, walk_in=True),
    "finish": lambda e: domain.finish(e, at=T1, due_days=7),
    "followup": lambda e: domain.complete_followup(e, task="thanks_sent", at=T1),
}
S = Status
ALLOWED = {
    "reschedule": {S.SCHEDULED, S.REGISTRATION_OPEN, S.REGISTRATION_CLOSED},
    "cancel": {S.SCHEDULED, S.REGISTRATION_OPEN, S.REGISTRATION_CLOSED, S.LIVE},
    "open_registration": {S.SCHEDULED, S.REGISTRATION_CLOSED},
    "close_registration": {S.REGISTRATION_OPEN},
    "register": {S.REGISTRATION_OPEN},
    "check_in": {S.REGISTRATION_OPEN, S.REGISTRATION_CLOSED, S.LIVE},
    "finish": {S.LIVE},
    "followup": {S.FINISHED},
}
RESULT = {"cancel": S.CANCELLED, "open_registration": S.REGISTRATION_OPEN,
          "close_registration": S.REGISTRATION_CLOSED, "check_in": S.LIVE, "finish": S.FINISHED}


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_transition_is_allowed_or_refused_as_documented(status: Status,
                                                              command: str) -> None:
    log = in_status(status)
    if status in ALLOWED[command]:
        events = log.append(COMMANDS[command](log.state))
        assert events
        assert log.state.status is RESULT.get(command, status)
    else:
        with pytest.raises(DomainError):
            COMMANDS[command](log.state)


def test_the_last_done_duty_makes_the_event_followed_up() -> None:
    log = in_status(Status.FINISHED)
    for task in list(Task)[:-1]:
        log.do(domain.complete_followup, task=task.value, at=T1)
        assert log.state.status is Status.FINISHED
    log.do(domain.complete_followup, task=list(Task)[-1].value, at=T1)
    assert log.state.status is Status.FOLLOWED_UP


def test_finishing_opens_every_duty_due_a_configurable_time_after_the_end() -> None:
    log = in_status(Status.LIVE)
    log.do(domain.finish, at=T1, due_days=3)
    assert set(log.state.followups) == set(Task)
    assert {d.due_at for d in log.state.followups.values()} == {T1 + timedelta(days=3)}


def test_a_duty_can_be_assigned_to_a_member_with_its_own_due_date() -> None:
    log = in_status(Status.FINISHED)
    log.do(domain.assign_followup, task="history_written", at=T1, assignee=CAROL,
           due_at=T1 + timedelta(days=1))
    duty = log.state.followups[Task.HISTORY_WRITTEN]
    assert (duty.assignee, duty.due_at) == (CAROL, T1 + timedelta(days=1))


def test_an_unknown_duty_is_refused_by_name() -> None:
    with pytest.raises(DomainError) as refused:
        domain.complete_followup(in_status(Status.FINISHED).state, task="party", at=T1)
    assert refused.value.rule == "unknown_followup"


def test_registrations_past_capacity_wait_and_are_promoted_in_order() -> None:
    log = Log(capacity=1)
    log.do(domain.open_registration, at=T0)
    for who in (ALICE, BOB, CAROL):
        log.do(domain.register, member_id=who, channel="vk", at=T0)
    assert [log.state.seat(m).registration for m in (ALICE, BOB, CAROL)] == [
        Registration.REGISTERED, Registration.WAITLISTED, Registration.WAITLISTED]
    freed = log.do(domain.cancel_registration, member_id=ALICE, at=T1)
    assert [e.type for e in freed] == ["gatherly.event.registration_cancelled",
                                       "gatherly.event.registered"]
    assert freed[1].data["member_id"] == BOB and freed[1].data["channel"] == "vk"
    log.do(domain.cancel_registration, member_id=BOB, at=T1)
    assert log.state.seat(CAROL).registration is Registration.REGISTERED
    assert (log.state.registered, log.state.waitlisted) == (1, 0)


def test_a_waitlisted_cancellation_promotes_nobody() -> None:
    log = Log(capacity=1)
    log.do(domain.open_registration, at=T0)
    for who in (ALICE, BOB, CAROL):
        log.do(domain.register, member_id=who, channel="vk", at=T0)
    assert len(log.do(domain.cancel_registration, member_id=BOB, at=T1)) == 1
    assert (log.state.registered, log.state.waitlisted) == (1, 1)


def test_the_state_a_handler_loads_decides_like_the_full_replay() -> None:
    """Only the member's seat and the waitlist's head are loaded; promotion is still right."""
    log = Log(capacity=1)
    log.do(domain.open_registration, at=T0)
    for who in (ALICE, BOB, CAROL, DAN):
        log.do(domain.register, member_id=who, channel="vk", at=T0)
    full = log.state
    loaded = replace(full, seats={m: full.seats[m] for m in (ALICE, BOB)})
    assert (domain.cancel_registration(loaded, member_id=ALICE, at=T1)
            == domain.cancel_registration(full, member_id=ALICE, at=T1))


def test_registering_twice_is_refused_but_again_after_cancelling_is_not() -> None:
    log = in_status(Status.REGISTRATION_OPEN)
    log.do(domain.register, member_id=BOB, channel="vk", at=T0)
    with pytest.raises(DomainError, match="already"):
        domain.register(log.state, member_id=BOB, channel="vk", at=T0)
    log.do(domain.cancel_registration, member_id=BOB, at=T0)
    with pytest.raises(DomainError, match="no registration"):
        domain.cancel_registration(log.state, member_id=BOB, at=T0)
    assert log.do(domain.register, member_id=BOB, channel="email", at=T0)


def test_a_second_check_in_is_idempotent() -> None:
    log = in_status(Status.REGISTRATION_OPEN)
    log.do(domain.register, member_id=BOB, channel="email", at=T0)
    [attended] = log.do(domain.check_in, member_id=BOB, at=T0)
    assert attended.data["channel"] == "email" and attended.data["walk_in"] is False
    assert domain.check_in(log.state, member_id=BOB, at=T1) == []
    assert domain.check_in(log.state, member_id=BOB, at=T1, walk_in=True) == []
    assert log.state.attended == 1


def test_an_unregistered_member_checks_in_only_as_a_walk_in() -> None:
    log = in_status(Status.REGISTRATION_OPEN)
    with pytest.raises(DomainError) as refused:
        domain.check_in(log.state, member_id=BOB, at=T0)
    assert refused.value.rule == "not_registered"
    [walk_in] = log.do(domain.check_in, member_id=BOB, at=T0, walk_in=True)
    assert walk_in.data["walk_in"] is True and walk_in.data["channel"] == "offline"
    online = Log(format=Format.ONLINE, place=None, link="https://meet.example/x")
    online.do(domain.open_registration, at=T0)
    [remote] = online.do(domain.check_in, member_id=BOB, at=T0, walk_in=True)
    assert remote.data["channel"] == "online_event"


def test_check_in_to_a_cancelled_event_names_that_rule() -> None:
    with pytest.raises(DomainError) as refused:
        domain.check_in(in_status(Status.CANCELLED).state, member_id=BOB, at=T0, walk_in=True)
    assert refused.value.rule == "event_cancelled"


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"ends_at": T0}, "end_after_start"),
        ({"ends_at": T0 - timedelta(minutes=1)}, "end_after_start"),
        ({"capacity": -1}, "capacity"),
        ({"capacity": 0}, "capacity"),
        ({"time_zone": "Nowhere/Land"}, "time_zone"),
        ({"channel": "No Spaces"}, "channel"),
        ({"place": None}, "place"),
        ({"format": Format.HYBRID}, "link"),
        ({"format": Format.ONLINE, "place": None}, "link"),
    ],
)
def test_a_schedule_breaking_a_rule_is_refused_by_name(changes: dict[str, object],
                                                       rule: str) -> None:
    with pytest.raises(DomainError) as refused:
        Log(**changes)
    assert refused.value.rule == rule


def test_times_are_recorded_in_utc() -> None:
    berlin = T0.astimezone(timezone(timedelta(hours=2)))
    [scheduled] = domain.schedule(format=Format.ONLINE, starts_at=berlin, ends_at=T1,
                                  time_zone="Asia/Tokyo", channel="website", link="https://x")
    assert scheduled.data["starts_at"] == "2026-03-01T18:00:00+00:00"


def test_an_event_cannot_finish_before_it_starts() -> None:
    with pytest.raises(DomainError) as refused:
        domain.finish(in_status(Status.LIVE).state, at=T0 - timedelta(hours=1), due_days=7)
    assert refused.value.rule == "finish_after_start"


def test_a_stream_that_does_not_start_with_scheduled_is_refused() -> None:
    log = in_status(Status.REGISTRATION_OPEN)
    with pytest.raises(DomainError):
        evolve(None, log.envelopes[1])
