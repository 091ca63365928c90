"""VK Callback API events → our commands. Pure. The mapping table is in README.md.

Every event is `{"type", "object", "group_id", "event_id", "v", "secret"}`. `confirmation` is the
handshake (answered with the source's confirmation string, recorded nowhere). A type this mapping
does not take is refused (422: switch it off in the community's Callback API settings); a mapped
type that carries no member fact (the community itself liking or commenting, a join request, a
suggested post) records nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from services.inbound.mapped import Mapped, Unmappable, integer, moment, obj

CHANNEL = "vk"
CONFIRMATION = "confirmation"
MAPPED = ("group_join", "group_leave", "like_add", "like_remove", "wall_post_new",
          "wall_reply_new")


def event_type(event: Any) -> str:
    kind = obj(event, field="body").get("type")
    if not isinstance(kind, str) or not kind:
        raise Unmappable("a Callback API event has a `type`", field="type")
    return kind


def map_event(event: Any, raw: bytes, *, at: str) -> Mapped:
    """`at`: when the event reached us, for the types whose object carries no date."""
    kind = event_type(event)
    if kind not in MAPPED:
        raise Unmappable(f"{kind!r} events are not mapped; switch them off in the Callback API"
                         " settings", field="type")
    event_id = event.get("event_id")
    # Callback API versions before 5.103 send no event_id: the body itself identifies a retry.
    webhook_id = (f"vk-{event_id}" if isinstance(event_id, str) and event_id
                  else f"vk-sha256-{hashlib.sha256(raw).hexdigest()}")
    mapped = Mapped(webhook_id)
    item = obj(event.get("object"), field="object")
    if kind in ("group_join", "group_leave"):
        _membership(kind, item, mapped, at)
    elif kind in ("like_add", "like_remove"):
        _like(kind, item, mapped, at)
    elif kind == "wall_post_new":
        _post(item, mapped)
    else:
        _comment(item, mapped)
    return mapped


def _membership(kind: str, item: dict[str, Any], mapped: Mapped, at: str) -> None:
    user = str(integer(item.get("user_id"), field="object.user_id"))
    if kind == "group_leave":
        reason = "left" if item.get("self") == 1 else "removed by the community"
        mapped.commands.append({"op": "leave", "member_ref": _member(user), "left_at": at,
                                "reason": reason})
    elif item.get("join_type") == "request":
        mapped.ignored.append("a request to join a closed community is not a join yet")
    else:
        mapped.commands.append({"op": "join", "channel": CHANNEL, "external_ref": user,
                                "joined_at": at})


def _like(kind: str, item: dict[str, Any], mapped: Mapped, at: str) -> None:
    liker = integer(item.get("liker_id"), field="object.liker_id")
    if liker < 0:
        mapped.ignored.append("a like by a community, not a member")
        return
    object_type = item.get("object_type")
    if not isinstance(object_type, str) or not object_type:
        raise Unmappable("object.object_type is missing", field="object.object_type")
    owner = integer(item.get("object_owner_id"), field="object.object_owner_id")
    object_id = integer(item.get("object_id"), field="object.object_id")
    prefix = "wall" if object_type == "post" else object_type
    command: dict[str, Any] = {
        "op": "add_reaction" if kind == "like_add" else "remove_reaction",
        "content_ref": {"channel": CHANNEL, "external_ref": f"{prefix}{owner}_{object_id}"},
        "member_ref": _member(str(liker)), "kind": "like", "at": at,
    }
    if kind == "like_add":
        command["channel"] = CHANNEL
    mapped.commands.append(command)


def _post(item: dict[str, Any], mapped: Mapped) -> None:
    if item.get("post_type", "post") != "post":
        mapped.ignored.append(f"a {item.get('post_type')} post is not published yet")
        return
    owner = integer(item.get("owner_id"), field="object.owner_id")
    post_id = integer(item.get("id"), field="object.id")
    ref = f"wall{owner}_{post_id}"
    command: dict[str, Any] = {
        "op": "publish_content", "content_ref": {"channel": CHANNEL, "external_ref": ref},
        "kind": "post", "published_at": moment(item.get("date"), field="object.date"),
        "url": f"https://vk.com/{ref}",
    }
    text = item.get("text")
    if isinstance(text, str) and text.strip():
        command["title"] = text.strip().splitlines()[0][:200]
    mapped.commands.append(command)


def _comment(item: dict[str, Any], mapped: Mapped) -> None:
    author = integer(item.get("from_id"), field="object.from_id")
    if author < 0:
        mapped.ignored.append("a comment by a community, not a member")
        return
    owner = integer(item.get("post_owner_id"), field="object.post_owner_id")
    post_id = integer(item.get("post_id"), field="object.post_id")
    mapped.commands.append({
        "op": "add_reaction",
        "content_ref": {"channel": CHANNEL, "external_ref": f"wall{owner}_{post_id}"},
        "member_ref": _member(str(author)), "kind": "comment", "channel": CHANNEL,
        "at": moment(item.get("date"), field="object.date"),
    })


def _member(user_id: str) -> dict[str, str]:
    return {"channel": CHANNEL, "external_ref": user_id}
