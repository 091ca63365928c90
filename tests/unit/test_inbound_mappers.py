"""Telegram and VK payloads (shaped like the platforms' documented examples) → our commands, and
how a delivery splits by owning service. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from services.inbound import commands, telegram, vk
from services.inbound.mapped import Unmappable

DATE = 1746100000
TG_USER = {"id": 1111111, "is_bot": False, "first_name": "Test", "last_name": "Lastname",
           "username": "Test"}
TG_GROUP = {"id": -1001234567890, "title": "Alumni", "type": "supergroup"}
TG_CHANNEL = {"id": -1009876543210, "title": "News", "username": "alumni_news",
              "type": "channel"}


def tg_join() -> dict[str, Any]:
    return {"update_id": 10000, "message": {
        "message_id": 1365, "from": TG_USER, "chat": TG_GROUP, "date": DATE,
        "new_chat_participant": TG_USER, "new_chat_member": TG_USER,
        "new_chat_members": [TG_USER, {"id": 42, "is_bot": True, "first_name": "Bot"}]}}


def test_telegram_new_chat_members_join_through_telegram_by_user_id() -> None:
    mapped = telegram.map_update(tg_join())
    assert mapped.webhook_id == "telegram-update-10000"
    assert mapped.commands == [{"op": "join", "channel": "telegram", "external_ref": "1111111",
                                "joined_at": "2025-05-01T11:46:40+00:00",
                                "display_name": "Test Lastname"}]
    assert mapped.ignored == ["bot 42 is not a member"]


def test_telegram_left_chat_member_leaves() -> None:
    update = {"update_id": 10001, "message": {"message_id": 1366, "from": TG_USER,
              "chat": TG_GROUP, "date": DATE, "left_chat_member": TG_USER}}
    [command] = telegram.map_update(update).commands
    assert command == {"op": "leave", "left_at": "2025-05-01T11:46:40+00:00",
                       "member_ref": {"channel": "telegram", "external_ref": "1111111"}}


def test_telegram_channel_post_is_content_with_its_link() -> None:
    update = {"update_id": 10002, "channel_post": {
        "message_id": 7, "sender_chat": TG_CHANNEL, "chat": TG_CHANNEL, "date": DATE,
        "text": "Meetup recap\nPhotos inside"}}
    [command] = telegram.map_update(update).commands
    assert command["content_ref"] == {"channel": "telegram", "external_ref": "-1009876543210/7"}
    assert command["url"] == "https://t.me/alumni_news/7"
    assert command["title"] == "Meetup recap"


def test_telegram_message_reaction_becomes_the_added_and_removed_kinds() -> None:
    update = {"update_id": 10003, "message_reaction": {
        "chat": TG_CHANNEL, "message_id": 7, "user": TG_USER, "date": DATE,
        "old_reaction": [{"type": "emoji", "emoji": "👍"}],
        "new_reaction": [{"type": "emoji", "emoji": "❤"}, {"type": "custom_emoji",
                                                            "custom_emoji_id": "5368"}]}}
    ops = [(c["op"], c["kind"]) for c in telegram.map_update(update).commands]
    assert ops == [("remove_reaction", "like"), ("add_reaction", "custom"),
                   ("add_reaction", "love")]


def tg_reaction_count(update_id: int, date: int, *reactions: Any) -> dict[str, Any]:
    """MessageReactionCountUpdated: chat, message_id, date, reactions (ReactionCount: type,
    total_count), as the Bot API documents it."""
    return {"update_id": update_id, "message_reaction_count": {
        "chat": TG_CHANNEL, "message_id": 7, "date": date,
        "reactions": [{"type": t, "total_count": n} for t, n in reactions]}}


def test_telegram_reaction_counts_are_one_snapshot_per_kind_as_of_the_update() -> None:
    update = tg_reaction_count(
        10004, DATE, ({"type": "emoji", "emoji": "👍"}, 5), ({"type": "emoji", "emoji": "❤"}, 2),
        ({"type": "emoji", "emoji": "😍"}, 1),
        ({"type": "custom_emoji", "custom_emoji_id": "5"}, 3), ({"type": "paid"}, 4))
    mapped = telegram.map_update(update)
    assert mapped.webhook_id == "telegram-update-10004" and mapped.ignored == []
    post = {"channel": "telegram", "external_ref": "-1009876543210/7"}
    assert mapped.commands == [
        {"op": "count_reactions", "content_ref": post, "counter": "telegram", "kind": kind,
         "total": total, "as_of": "2025-05-01T11:46:40+00:00", "channel": "telegram"}
        for kind, total in (("like", 5), ("love", 3), ("custom", 3), ("paid", 4))
    ]
    commands.COMMANDS.validate_python(mapped.commands)  # our own shapes, owned by engagement
    assert set(commands.split(mapped.commands)) == {"engagement"}


def test_a_reaction_kind_gone_from_the_count_drops_to_zero() -> None:
    update = tg_reaction_count(10005, DATE, ({"type": "emoji", "emoji": "🔥"}, 1))
    totals = {c["kind"]: c["total"] for c in telegram.map_update(update).commands}
    assert totals == {"like": 0, "love": 0, "custom": 1, "paid": 0}


@pytest.mark.parametrize("count, reason", [
    ({"chat": TG_CHANNEL, "message_id": 7, "date": DATE, "reactions": "many"}, "not a list"),
    ({"chat": TG_CHANNEL, "message_id": 7, "date": DATE,
      "reactions": [{"type": {"type": "emoji", "emoji": "👍"}, "total_count": -1}]}, "negative"),
    ({"chat": TG_CHANNEL, "message_id": 7, "date": DATE,
      "reactions": [{"type": {"type": "sticker"}, "total_count": 1}]}, "reaction type"),
    ({"chat": TG_CHANNEL, "date": DATE, "reactions": []}, "message_id"),
])
def test_malformed_reaction_counts_say_why(count: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        telegram.map_update({"update_id": 1, "message_reaction_count": count})


def test_an_ordinary_chat_message_records_nothing() -> None:
    update = {"update_id": 10005, "message": {"message_id": 1, "from": TG_USER,
              "chat": TG_GROUP, "date": DATE, "text": "/start"}}
    assert telegram.map_update(update).commands == []


@pytest.mark.parametrize("update, reason", [
    ({"update_id": 1, "callback_query": {"id": "1"}}, "not mapped"),
    ({"update_id": 1, "surprise": {}}, "not a Telegram update kind"),
    ({"message": {}}, "update_id"),
    ({"update_id": 1, "message": {"date": "yesterday", "new_chat_members": []}}, "Unix"),
])
def test_telegram_payloads_that_cannot_be_mapped_say_why(update: Any, reason: str) -> None:
    with pytest.raises(Unmappable, match=reason):
        telegram.map_update(update)


def vk_event(kind: str, obj: dict[str, Any], event_id: str = "a6ed1e7e") -> dict[str, Any]:
    return {"type": kind, "event_id": event_id, "v": "5.199", "object": obj,
            "group_id": 123456, "secret": "s3cret"}


def test_vk_mapping_of_each_event_type() -> None:
    at = "2025-05-01T11:46:40+00:00"
    post = {"id": 28, "from_id": -123456, "owner_id": -123456, "date": DATE,
            "marked_as_ads": 0, "post_type": "post", "text": "Post text", "can_edit": 1,
            "created_by": 564321, "can_delete": 1, "comments": {"count": 0}}
    cases = {
        "group_join": {"user_id": 1, "join_type": "join"},
        "group_leave": {"user_id": 1, "self": 1},
        "like_add": {"liker_id": 1, "object_type": "post", "object_owner_id": -123456,
                     "object_id": 28, "thread_reply_id": 0, "post_id": 0},
        "wall_post_new": post,
        "wall_reply_new": {"id": 2, "from_id": 1, "date": DATE, "text": "Great!",
                           "post_owner_id": -123456, "post_id": 28},
    }
    first = {k: vk.map_event(vk_event(k, o), b"{}", at=at).commands[0] for k, o in cases.items()}
    assert first["group_join"] == {"op": "join", "channel": "vk", "external_ref": "1",
                                   "joined_at": at}
    assert first["group_leave"]["op"] == "leave"
    wall = {"channel": "vk", "external_ref": "wall-123456_28"}
    assert first["like_add"]["content_ref"] == wall and first["like_add"]["kind"] == "like"
    assert first["wall_post_new"]["content_ref"] == wall
    assert first["wall_reply_new"]["kind"] == "comment"
    assert first["wall_reply_new"]["member_ref"] == {"channel": "vk", "external_ref": "1"}


def test_vk_without_event_id_is_identified_by_its_body() -> None:
    event = vk_event("group_join", {"user_id": 1, "join_type": "join"})
    del event["event_id"]
    a = vk.map_event(event, b"body-1", at="2025-05-01T00:00:00+00:00")
    b = vk.map_event(event, b"body-2", at="2025-05-01T00:00:00+00:00")
    assert a.webhook_id.startswith("vk-sha256-") and a.webhook_id != b.webhook_id


def test_vk_unmapped_type_is_refused() -> None:
    with pytest.raises(Unmappable, match="message_new"):
        vk.map_event(vk_event("message_new", {}), b"", at="2025-05-01T00:00:00+00:00")


def test_a_member_named_by_reference_is_ensured_first_and_then_resolved() -> None:
    ref = {"channel": "telegram", "external_ref": "7"}
    wire = [{"op": "add_reaction", "content_ref": ref, "member_ref": ref, "kind": "like",
             "at": "2025-05-01T00:00:00+00:00"},
            {"op": "join", "channel": "website"}]
    parts = commands.split(wire)
    assert list(parts) == ["members", "engagement"]
    assert parts["members"][0] == {"op": "ensure", "member_ref": ref,
                                   "at": "2025-05-01T00:00:00+00:00"}
    [resolved] = commands.resolve(parts["engagement"], {"telegram:7": "m-1"})
    assert resolved["member_id"] == "m-1" and "member_ref" not in resolved


def test_mapper_output_matches_our_command_shapes() -> None:
    commands.COMMANDS.validate_python(telegram.map_update(tg_join()).commands)
