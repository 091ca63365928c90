"""Engagement's pure rules: content, counter snapshots, reactions, feedback, introductions,
thanks — and every decision matches its published contract."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gatherly.contracts import validate
from gatherly.envelope import DomainEvent, Envelope
from services.engagement import activity, connections, content, feedback
from services.engagement.activity import CounterSnapshot, Publication, Reaction
from services.engagement.domain import DomainError, NotFound, Stale, counter_id, reaction_id

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = T0 + timedelta(days=30)
A, B, C = (str(uuid.uuid4()) for _ in range(3))
ITEM = Publication(str(uuid.uuid4()), "youtube", T0)


def stored(events: list[DomainEvent], subject: str, start: int = 0) -> list[Envelope]:
    return [
        Envelope(id=str(uuid.uuid4()), source="/test", type=e.type, subject=subject,
                 community_id="c1", sequence=start + i, time=e.time, data=e.data)
        for i, e in enumerate(events, start=1)
    ]


def published() -> content.Content:
    events = content.publish(channel="youtube", kind="video", published_at=T0, now=NOW,
                             author_id=A)
    return content.evolve(None, stored(events, ITEM.id)[0])


def test_an_import_may_publish_in_the_past_but_not_in_the_future() -> None:
    item = published()
    assert item.published_at == T0 and item.kind == "video" and item.version == 1
    with pytest.raises(DomainError, match="future") as refused:
        content.publish(channel="vk", kind="post", published_at=NOW + timedelta(hours=1),
                        now=NOW)
    assert refused.value.field == "published_at"


@pytest.mark.parametrize(("channel", "kind", "field"),
                         [("Not A Channel", "post", "channel"), ("vk", "podcast", "kind")])
def test_publishing_names_a_bad_channel_or_kind(channel: str, kind: str, field: str) -> None:
    with pytest.raises(DomainError) as refused:
        content.publish(channel=channel, kind=kind, published_at=T0, now=NOW)
    assert refused.value.field == field


def test_an_edit_names_only_the_fields_that_changed() -> None:
    item = replace(published(), title="Old")
    assert content.describe(item, {"title": "Old"}, NOW) == []
    (event,) = content.describe(item, {"title": "New", "url": None}, NOW)
    assert event.data == {"fields": ["title"]}
    assert content.with_description(item, {"title": "New"}).title == "New"


def test_an_archived_item_cannot_be_edited_or_archived_again() -> None:
    item = published()
    (event,) = content.archive(item, archived_at=NOW, now=NOW)
    archived = content.evolve(item, stored([event], item.id, start=1)[0])
    assert archived.archived and archived.version == 2
    with pytest.raises(DomainError, match="archived"):
        content.describe(archived, {"title": "x"}, NOW)
    with pytest.raises(DomainError, match="already archived"):
        content.archive(archived, archived_at=NOW, now=NOW)


def test_a_later_counter_snapshot_replaces_an_earlier_one_and_a_repeat_records_nothing() -> None:
    first = activity.count_views(None, ITEM, counter="youtube", total=1250, as_of=T0, now=NOW)
    assert first[0].data["total"] == 1250
    known = CounterSnapshot(counter_id(ITEM.id, "youtube"), ITEM.id, "youtube", 1250, T0, 1)
    assert activity.count_views(known, ITEM, counter="youtube", total=1250, as_of=T0,
                                now=NOW) == []
    later = activity.count_views(known, ITEM, counter="youtube", total=1400,
                                 as_of=T0 + timedelta(days=1), now=NOW)
    assert later[0].data["total"] == 1400


@pytest.mark.parametrize(("total", "as_of"), [(900, T0 - timedelta(hours=1)), (1300, T0)])
def test_an_older_or_conflicting_counter_snapshot_is_refused(total: int, as_of: datetime) -> None:
    known = CounterSnapshot(counter_id(ITEM.id, "youtube"), ITEM.id, "youtube", 1250,
                            T0 + timedelta(hours=2), 1)
    with pytest.raises(Stale) as refused:
        activity.count_views(known, ITEM, counter="youtube", total=total,
                             as_of=as_of + timedelta(hours=2), now=NOW)
    assert refused.value.status == 409 and refused.value.field == "as_of"


def test_a_view_cannot_predate_the_publication() -> None:
    with pytest.raises(DomainError, match="before the publication") as refused:
        activity.record_view(ITEM, count=1, viewed_at=T0 - timedelta(days=1), now=NOW)
    assert refused.value.field == "viewed_at"
    anonymous = activity.record_view(ITEM, count=3, viewed_at=T0, now=NOW)
    assert "member_id" not in anonymous.data and anonymous.data["channel"] == "youtube"


def test_a_second_identical_reaction_records_nothing_and_removing_a_missing_one_is_not_found(
) -> None:
    rid = reaction_id(ITEM.id, A, "like")
    added = Reaction(rid, ITEM.id, A, "like", "youtube", active=True, at=T0, version=1)
    assert activity.add_reaction(added, ITEM, member_id=A, kind="like", at=NOW, now=NOW) == []
    with pytest.raises(NotFound):
        activity.remove_reaction(None, at=NOW, now=NOW)
    with pytest.raises(NotFound):
        activity.remove_reaction(replace(added, active=False), at=NOW, now=NOW)
    removed = activity.remove_reaction(added, at=NOW, now=NOW)
    assert removed.type == activity.REACTION_REMOVED and removed.data["member_id"] == A


def test_a_reaction_id_is_one_stream_per_member_kind_and_item() -> None:
    assert reaction_id(ITEM.id, A, "like") == reaction_id(ITEM.id, A, "like")
    assert len({reaction_id(ITEM.id, A, "like"), reaction_id(ITEM.id, B, "like"),
                reaction_id(ITEM.id, A, "love")}) == 3


def test_a_community_may_use_its_own_reaction_kind_but_not_gibberish() -> None:
    (event,) = activity.add_reaction(None, ITEM, member_id=A, kind="clap", at=T0, now=NOW)
    assert event.data["kind"] == "clap"
    with pytest.raises(DomainError) as refused:
        activity.add_reaction(None, ITEM, member_id=A, kind="Big Clap!", at=T0, now=NOW)
    assert refused.value.field == "kind"


def submitted(**overrides: object) -> feedback.Feedback:
    arguments: dict[str, object] = {
        "member_id": A, "about_kind": "community", "about_id": None, "rating": 4,
        "channel": "telegram", "submitted_at": T0, "now": NOW, **overrides,
    }
    events = feedback.submit(**arguments)  # type: ignore[arg-type]
    state = feedback.replay(stored(events, str(uuid.uuid4())))
    assert state is not None
    return state


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_a_rating_outside_one_to_five_is_refused(rating: int) -> None:
    with pytest.raises(DomainError, match="between 1 and 5") as refused:
        submitted(rating=rating)
    assert refused.value.field == "rating"


def test_feedback_goes_submitted_then_answered_then_resolved_only() -> None:
    state = submitted()
    with pytest.raises(DomainError, match="answered before it is resolved"):
        feedback.resolve(state, at=NOW, now=NOW)
    answered = feedback.evolve(state, stored(feedback.answer(state, at=T0, now=NOW, by_member=B),
                                             state.id, start=1)[0])
    assert answered.status is feedback.FeedbackStatus.ANSWERED and answered.answered_by == B
    with pytest.raises(DomainError, match="cannot be answered"):
        feedback.answer(answered, at=NOW, now=NOW)
    resolved = feedback.evolve(answered, stored(feedback.resolve(answered, at=NOW, now=NOW),
                                                state.id, start=2)[0])
    with pytest.raises(DomainError, match="resolved feedback cannot be answered"):
        feedback.answer(resolved, at=NOW, now=NOW)
    with pytest.raises(DomainError, match="resolved again"):
        feedback.resolve(resolved, at=NOW, now=NOW)


def test_an_answer_cannot_come_before_the_feedback() -> None:
    with pytest.raises(DomainError, match="before the previous step"):
        feedback.answer(submitted(), at=T0 - timedelta(minutes=1), now=NOW)


@pytest.mark.parametrize(("about_kind", "about_id"),
                         [("content", None), ("event", None), ("community", str(uuid.uuid4()))])
def test_feedback_names_what_it_is_about_exactly_when_it_is_about_something(
    about_kind: str, about_id: str | None
) -> None:
    with pytest.raises(DomainError) as refused:
        submitted(about_kind=about_kind, about_id=about_id)
    assert refused.value.field == "about_id"


@pytest.mark.parametrize(("a", "b", "by", "field"),
                         [(A, A, B, "member_b"), (A, B, A, "by_member"), (A, B, B, "by_member")])
def test_nobody_is_introduced_to_themselves_or_by_themselves(
    a: str, b: str, by: str, field: str
) -> None:
    with pytest.raises(DomainError) as refused:
        connections.introduce(member_a=a, member_b=b, by_member=by, at=T0, now=NOW)
    assert refused.value.field == field


def test_thanks_for_something_names_both_what_and_which() -> None:
    with pytest.raises(DomainError):
        connections.thank(to_member=A, at=T0, now=NOW, about_kind="event")
    with pytest.raises(DomainError, match="thank themselves"):
        connections.thank(to_member=A, by_member=A, at=T0, now=NOW)


def test_every_engagement_decision_matches_its_contract() -> None:
    item = published()
    answered = feedback.evolve(submitted(), stored(
        feedback.answer(submitted(), at=T0, now=NOW), "f", start=1)[0])
    decided = [
        *content.publish(channel="youtube", kind="video", published_at=T0, now=NOW, author_id=A),
        *content.describe(item, {"url": "https://example.org"}, NOW),
        *content.archive(item, archived_at=NOW, now=NOW),
        activity.record_view(ITEM, count=2, viewed_at=T0, now=NOW, member_id=A),
        *activity.count_views(None, ITEM, counter="youtube", total=0, as_of=T0, now=NOW),
        *activity.add_reaction(None, ITEM, member_id=A, kind="like", at=T0, now=NOW),
        activity.remove_reaction(
            Reaction("r", ITEM.id, A, "like", "youtube", True, T0, 1), at=T0, now=NOW),
        *feedback.submit(member_id=A, about_kind="content", about_id=ITEM.id, rating=5,
                         channel="email", submitted_at=T0, now=NOW),
        *feedback.answer(submitted(), at=T0, now=NOW, by_member=B),
        *feedback.resolve(answered, at=NOW, now=NOW),
        *connections.introduce(member_a=A, member_b=B, by_member=C, at=T0, now=NOW),
        *connections.thank(to_member=A, by_member=B, reason="hosting", about_kind="content",
                           about_id=ITEM.id, at=T0, now=NOW),
    ]
    assert len({e.type for e in decided}) == 12
    for event in decided:
        validate(event.type, event.data)


def test_a_reaction_id_is_the_rfc_4122_name_based_uuid_of_content_member_and_kind() -> None:
    import uuid

    from services.engagement.domain import reaction_id

    for _ in range(200):
        content, member = str(uuid.uuid4()), str(uuid.uuid4())
        for kind in ("like", "love", "comment", "Ünïcode-kind"):
            expected = uuid.uuid5(uuid.UUID(content), f"reaction:{member}:{kind}")
            assert reaction_id(content, member, kind) == str(expected)
    assert reaction_id(content.upper(), member, "like") == reaction_id(content, member, "like")
