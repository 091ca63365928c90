"""Bulk import parsing, pure: incremental CSV/NDJSON reading and the row rules."""

from __future__ import annotations

import json

import pytest

from services.members.import_rows import (
    ImportFormat,
    ImportRow,
    Rejection,
    RowReader,
    UnreadableImport,
    check_row,
)

CSV = (
    b'channel,external_ref,display_name,email,interests,handles,joined_at\r\n'
    b'telegram,tg-1,"Ann, the first",ann@example.org,music;ai,telegram:@ann,'
    b'2026-01-01T10:00:00+00:00\r\n'
    b'vk,vk-2,"Bob ""the builder""\nsecond line",,,,\r\n'
    b'vk,vk-3\r\n'
)


def read_in_pieces(data: bytes, fmt: ImportFormat, size: int) -> list[tuple[int, object]]:
    reader = RowReader(fmt)
    rows: list[tuple[int, object]] = []
    for start in range(0, len(data), size):
        rows += reader.feed(data[start : start + size])
    return rows + reader.feed(b"", final=True)


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_csv_rows_come_out_the_same_whatever_the_chunking(size: int) -> None:
    rows = read_in_pieces(CSV, ImportFormat.CSV, size)
    assert [number for number, _ in rows] == [2, 4, 5]
    first = rows[0][1]
    assert isinstance(first, dict)
    assert first["display_name"] == "Ann, the first"
    assert first["interests"] == ["music", "ai"] and first["handles"] == {"telegram": "@ann"}
    second = rows[1][1]
    assert isinstance(second, dict) and second["display_name"] == 'Bob "the builder"\nsecond line'
    assert isinstance(rows[2][1], Rejection) and rows[2][1].field == "row"


def test_a_multibyte_character_split_across_chunks_survives() -> None:
    data = 'channel,display_name\nvk,Анна\n'.encode()
    [(_, row)] = read_in_pieces(data, ImportFormat.CSV, 1)
    assert isinstance(row, dict) and row["display_name"] == "Анна"


def test_an_unknown_csv_column_refuses_the_whole_upload() -> None:
    with pytest.raises(UnreadableImport, match="phone"):
        RowReader(ImportFormat.CSV).feed(b"channel,phone\nvk,1\n")


def test_a_csv_column_named_twice_refuses_the_whole_upload() -> None:
    """Gateway QA: `channel,channel` was taken, the last cell winning."""
    with pytest.raises(UnreadableImport, match=r"named twice \['channel'\]"):
        RowReader(ImportFormat.CSV).feed(b"channel,Channel,city\nvk,telegram,Riga\n")


@pytest.mark.parametrize("size", [7, 4096, 64 * 1024])
def test_a_byte_that_is_not_utf8_is_reported_on_its_own_line(size: int) -> None:
    """QA: a bad byte on line 20,002, read in 64 KiB pieces, was reported "near line 10792" (the
    lines of the pieces before, not of the piece that held it)."""
    rows = b"".join(b"vk,Person %d\n" % i for i in range(20_000))
    data = b"channel,display_name\n" + rows + b"vk,caf\xe9\nvk,after\n"
    with pytest.raises(UnreadableImport, match=r"not UTF-8 on line 20002$"):
        read_in_pieces(data, ImportFormat.CSV, size)


def test_ndjson_lines_that_are_not_objects_are_rejected_rows() -> None:
    data = b'{"channel": "vk"}\n\n[1]\n{oops\n{"channel": "email"}'
    rows = read_in_pieces(data, ImportFormat.NDJSON, 5)
    assert [n for n, _ in rows] == [1, 3, 4, 5]
    assert [isinstance(r, Rejection) for _, r in rows] == [False, True, True, False]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"channel": "Bad Channel"}, "channel"),
        ({"channel": "vk", "email": "nope"}, "email"),
        ({"channel": "vk", "joined_at": "2026-01-01T10:00:00"}, "joined_at"),
        ({"channel": "vk", "joined_at": "0001-01-01T00:00:00+05:00"}, "joined_at"),
        ({"channel": "vk", "joined_at": "9999-12-31T23:30:00-05:00"}, "joined_at"),
        ({"channel": "vk", "joined_at": "2999-01-01T00:00:00+00:00"}, "joined_at"),
        ({"channel": "vk", "invited_by": "someone"}, "invited_by"),
        ({"channel": "vk", "external_ref": "x" * 201}, "external_ref"),
        ({"channel": "vk", "surprise": 1}, "surprise"),
    ],
)
def test_a_bad_row_is_rejected_naming_the_field(raw: dict[str, object], field: str) -> None:
    rejected = check_row(7, raw)
    assert isinstance(rejected, Rejection)
    assert (rejected.number, rejected.field) == (7, field)


def test_a_good_row_carries_its_profile_apart_from_its_facts() -> None:
    row = check_row(1, json.loads('{"channel": "telegram", "external_ref": 42, "city": "Riga"}'))
    assert isinstance(row, ImportRow)
    assert (row.channel, row.external_ref, row.profile.city) == ("telegram", "42", "Riga")
