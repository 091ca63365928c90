"""Telegram Bot API updates → our commands. Pure. The mapping table is in README.md.

One update carries one kind of fact (the field next to `update_id`). A kind this mapping does not
take is refused (422: leave it out of `allowed_updates`); a mapped kind that carries no fact
here (an ordinary chat message, a bot joining, an anonymous admin's reaction) records nothing.
"""

from __future__ import annotations

from typing import Any

from services.inbound.mapped import Mapped, Unmappable, integer, moment, obj

CHANNEL = "telegram"
MAPPED = ("message", "channel_post", "message_reaction", "message_reaction_count")
KNOWN = (
    *MAPPED, "edited_message", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "inline_query", "chosen_inline_result", "callback_query", "shipping_query",
    "pre_checkout_query", "purchased_paid_media", "poll", "poll_answer", "my_chat_member",
    "chat_member", "chat_join_request", "chat_boost", "removed_chat_boost",
)
# Emoji reactions with a name in our catalogue; any other emoji is the generic `custom` kind.
EMOJI_KINDS = {"👍": "like", "❤": "love", "❤️": "love", "😍": "love", "🥰": "love"}
# Every kind `_kind` can answer: a count update lists only the kinds present, so the others are
# reported as 0 (a kind whose last reaction was withdrawn must drop to 0, not keep its old total).
COUNTED_KINDS = ("like", "love", "custom", "paid")


def map_update(update: Any) -> Mapped:
    update = obj(update, field="update")
    update_id = integer(update.get("update_id"), field="update_id")
    kinds = [k for k in update if k != "update_id"]
    if len(kinds) != 1:
        raise Unmappable("an update carries update_id and exactly one kind of fact")
    [kind] = kinds
    if kind not in KNOWN:
        raise Unmappable(f"{kind!r} is not a Telegram update kind", field=kind)
    if kind not in MAPPED:
        raise Unmappable(f"{kind!r} updates are not mapped; leave them out of allowed_updates",
                         field=kind)
    mapped = Mapped(f"telegram-update-{update_id}")
    body = obj(update[kind], field=kind)
    if kind == "message":
        _membership(body, mapped)
    elif kind == "channel_post":
        _publication(body, mapped)
    elif kind == "message_reaction":
        _reaction(body, mapped)
    else:
        _reaction_count(body, mapped)
    return mapped


def _membership(message: dict[str, Any], mapped: Mapped) -> None:
    at = moment(message.get("date"), field="message.date")
    joined = message.get("new_chat_members")
    left = message.get("left_chat_member")
    if joined is None and left is None:
        mapped.ignored.append("a chat message without members joining or leaving")
        return
    for user in _list(joined, "message.new_chat_members"):
        person = _person(user, "message.new_chat_members[]", mapped)
        if person is not None:
            command = {"op": "join", "channel": CHANNEL, "external_ref": person[0],
                       "joined_at": at}
            if person[1]:
                command["display_name"] = person[1]
            mapped.commands.append(command)
    if left is not None:
        person = _person(left, "message.left_chat_member", mapped)
        if person is not None:
            mapped.commands.append({"op": "leave", "member_ref": _member(person[0]),
                                    "left_at": at})


def _publication(post: dict[str, Any], mapped: Mapped) -> None:
    chat = obj(post.get("chat"), field="channel_post.chat")
    message_id = integer(post.get("message_id"), field="channel_post.message_id")
    chat_id = integer(chat.get("id"), field="channel_post.chat.id")
    command: dict[str, Any] = {
        "op": "publish_content", "content_ref": _content(chat_id, message_id),
        "kind": "video" if "video" in post else "post",
        "published_at": moment(post.get("date"), field="channel_post.date"),
    }
    text = post.get("text") or post.get("caption")
    if isinstance(text, str) and text.strip():
        command["title"] = text.strip().splitlines()[0][:200]
    if isinstance(chat.get("username"), str):
        command["url"] = f"https://t.me/{chat['username']}/{message_id}"
    mapped.commands.append(command)


def _reaction(change: dict[str, Any], mapped: Mapped) -> None:
    chat = obj(change.get("chat"), field="message_reaction.chat")
    content = _content(integer(chat.get("id"), field="message_reaction.chat.id"),
                       integer(change.get("message_id"), field="message_reaction.message_id"))
    at = moment(change.get("date"), field="message_reaction.date")
    old = {_kind(r) for r in _list(change.get("old_reaction"), "message_reaction.old_reaction")}
    new = {_kind(r) for r in _list(change.get("new_reaction"), "message_reaction.new_reaction")}
    user = change.get("user")
    if user is None:
        mapped.ignored.append("a reaction on behalf of a chat (anonymous) names no member")
        return
    person = _person(user, "message_reaction.user", mapped)
    if person is None:
        return
    for op, kinds in (("remove_reaction", old - new), ("add_reaction", new - old)):
        for kind in sorted(kinds):
            command = {"op": op, "content_ref": content, "member_ref": _member(person[0]),
                       "kind": kind, "at": at}
            if op == "add_reaction":
                command["channel"] = CHANNEL
            mapped.commands.append(command)


def _reaction_count(counts: dict[str, Any], mapped: Mapped) -> None:
    """One snapshot per kind of ours, as of the update's `date`; emoji of one kind are summed
    (❤ and 😍 are both `love`), and the kinds absent from the list count 0."""
    field = "message_reaction_count"
    chat = obj(counts.get("chat"), field=f"{field}.chat")
    content = _content(integer(chat.get("id"), field=f"{field}.chat.id"),
                       integer(counts.get("message_id"), field=f"{field}.message_id"))
    as_of = moment(counts.get("date"), field=f"{field}.date")
    totals = dict.fromkeys(COUNTED_KINDS, 0)
    for entry in _list(counts.get("reactions"), f"{field}.reactions"):
        entry = obj(entry, field=f"{field}.reactions[]")
        total = integer(entry.get("total_count"), field=f"{field}.reactions[].total_count")
        if total < 0:
            raise Unmappable("total_count cannot be negative",
                             field=f"{field}.reactions[].total_count")
        totals[_kind(entry.get("type"))] += total
    for kind, total in totals.items():
        mapped.commands.append({"op": "count_reactions", "content_ref": content,
                                "counter": CHANNEL, "kind": kind, "total": total,
                                "as_of": as_of, "channel": CHANNEL})


def _person(user: Any, field: str, mapped: Mapped) -> tuple[str, str | None] | None:
    """A user's id and display name; None (noted) for a bot, which is nobody's member."""
    user = obj(user, field=field)
    user_id = integer(user.get("id"), field=f"{field}.id")
    if user.get("is_bot") is True:
        mapped.ignored.append(f"bot {user_id} is not a member")
        return None
    names = [user.get("first_name"), user.get("last_name")]
    name = " ".join(n for n in names if isinstance(n, str) and n).strip()
    return str(user_id), name or None


def _kind(reaction: Any) -> str:
    reaction = obj(reaction, field="ReactionType")
    kind = reaction.get("type")
    if kind == "emoji":
        return EMOJI_KINDS.get(str(reaction.get("emoji")), "custom")
    if kind == "custom_emoji":
        return "custom"
    if kind == "paid":
        return "paid"
    raise Unmappable(f"unknown reaction type {kind!r}", field="ReactionType.type")


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unmappable(f"{field} is not a list", field=field)
    return value


def _member(user_id: str) -> dict[str, str]:
    return {"channel": CHANNEL, "external_ref": user_id}


def _content(chat_id: int, message_id: int) -> dict[str, str]:
    return {"channel": CHANNEL, "external_ref": f"{chat_id}/{message_id}"}
