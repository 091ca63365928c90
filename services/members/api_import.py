"""POST …/members/import: a CSV or NDJSON upload, streamed, answered with a summary report or,
with `Accept: application/x-ndjson`, a per-row report.

The summary counts every row (created, already present, rejected) and lists the rejected rows
with the field and the reason, up to the first thousand. The per-row report is spooled to a
temporary file as chunks are written and sent once the import has ended (docs/adr/0003 point 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from gatherly.problem_docs import documented_problem
from gatherly.web import Community, CommunityPath, CustomChannels, Problem
from services.members.import_rows import ImportFormat, ImportReport, UnreadableImport
from services.members.importer import MemberImporter

router = APIRouter(prefix="/v1/communities/{community_id}/members", tags=["members"])

FORMATS = {
    "text/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
}
ROW_REPORT = "application/x-ndjson"
SPOOL_IN_MEMORY = 1024 * 1024  # bytes of per-row report kept in memory before going to disk
PIECE = 64 * 1024


class RejectedRow(BaseModel):
    row: int
    field: str
    reason: str


class ImportSummary(BaseModel):
    rows: int
    created: int
    present: int
    rejected: int
    rejections: list[RejectedRow]
    rejections_truncated: bool


class ImportRowOutcome(BaseModel):
    """One line of the per-row report, one per input row in file order (`row` as in
    `rejections`); the last line is `{"summary": {rows, created, present, rejected}}`."""

    row: int
    outcome: Literal["created", "present", "rejected"]
    member_id: str | None = None  # created: the new member; present: the one already there
    field: str | None = None  # rejected: the field or rule, and why
    reason: str | None = None


def summary(report: ImportReport) -> ImportSummary:
    return ImportSummary(
        rows=report.rows, created=report.created, present=report.present,
        rejected=report.rejected,
        rejections=[RejectedRow(row=r.number, field=r.field, reason=r.reason)
                    for r in report.rejections],
        rejections_truncated=report.rejected > len(report.rejections),
    )


def import_format(content_type: str | None) -> ImportFormat:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in FORMATS:
        raise Problem(415, "Unsupported Media Type",
                      f"Content-Type must be one of {', '.join(FORMATS)}")
    return FORMATS[media]


def wants_row_report(accept: str | None) -> bool:
    """Whether `Accept` prefers the per-row report: it names application/x-ndjson with a q above
    zero and at least that of application/json when that is named too. Anything else (absent,
    */*, an unknown type) gets the summary, as before the per-row report existed."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        weights[media.lower()] = _quality(parameters)
    ndjson = weights.get(ROW_REPORT, 0.0)
    return ndjson > 0 and ndjson >= weights.get("application/json", 0.0)


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _pieces(spool: IO[bytes]) -> Iterator[bytes]:
    try:
        spool.seek(0)
        while piece := spool.read(PIECE):
            yield piece
    finally:
        spool.close()  # the spool's file, if it went to disk, is deleted on close


@router.post("/import", response_model=ImportSummary, responses={
    200: {"description": "The summary (the default), or with `Accept: application/x-ndjson` a"
                         " per-row report: one ImportRowOutcome line per input row in file"
                         " order, then a `{\"summary\": {rows, created, present, rejected}}`"
                         " line.",
          "content": {ROW_REPORT: {"schema": ImportRowOutcome.model_json_schema()}}},
    415: documented_problem(415)})
async def import_members(
    community_id: CommunityPath, request: Request, community: Community,
    custom_channels: CustomChannels, content_type: Annotated[str | None, Header()] = None,
) -> ImportSummary | StreamingResponse:
    """Import members from CSV (header row; columns channel, external_ref, joined_at,
    invited_by, display_name, email, city, interests as `a;b`, handles as `telegram:@ann;vk:x`)
    or NDJSON (one object per line, the same fields). Rows whose (channel, external_ref) the
    community already knows are counted as present and change nothing.

    The answer is a summary (application/json), or with `Accept: application/x-ndjson` a
    per-row report (application/x-ndjson), sent once the whole upload has been imported:
    `{"row": n, "outcome": "created", "member_id": …}`, `{"row": n, "outcome": "present",
    "member_id": <the member already there>}` (also a row repeating an earlier row's reference)
    or `{"row": n, "outcome": "rejected", "field": …, "reason": …}` for each row in file
    order, then `{"summary": {"rows", "created", "present", "rejected"}}`. The import is one
    transaction: an upload found unreadable anywhere (422) or a chunk that fails to be written
    (a 5xx) writes nothing at all, and sending the fixed file imports it whole."""
    fmt = import_format(content_type)
    importer: MemberImporter = request.app.state.importer
    # Not a `with`: the spool outlives this function, closed once the answer has been sent.
    spool = (SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115
             if wants_row_report(request.headers.get("accept")) else None)
    try:
        report = await importer.run(community, request.stream(), fmt,
                                    custom_channels=custom_channels,
                                    rows_out=spool.write if spool else None)
    except BaseException as error:
        if spool is not None:
            spool.close()  # the lines of the chunks written so far: no report of the whole
        if isinstance(error, UnreadableImport):
            raise Problem(422, "Unreadable import", str(error)) from error
        raise
    if spool is None:
        return summary(report)
    return StreamingResponse(_pieces(spool), media_type=ROW_REPORT,
                             background=BackgroundTask(spool.close))
