"""POST …/members/import: a CSV or NDJSON upload, streamed, answered with a summary report.

The answer counts every row (created, already present, rejected) and lists the rejected rows
with the field and the reason, up to the first thousand (docs/adr/0003 says why not per row).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from gatherly.problem_docs import documented_problem
from gatherly.web import Community, CommunityPath, Problem
from services.members.api import CustomChannels
from services.members.import_rows import ImportFormat, ImportReport, UnreadableImport
from services.members.importer import MemberImporter

router = APIRouter(prefix="/v1/communities/{community_id}/members", tags=["members"])

FORMATS = {
    "text/csv": ImportFormat.CSV,
    "application/x-ndjson": ImportFormat.NDJSON,
    "application/ndjson": ImportFormat.NDJSON,
    "application/jsonl": ImportFormat.NDJSON,
}


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


@router.post("/import", response_model=ImportSummary,
             responses={415: documented_problem(415)})
async def import_members(
    community_id: CommunityPath, request: Request, community: Community,
    custom_channels: CustomChannels, content_type: Annotated[str | None, Header()] = None,
) -> ImportSummary:
    """Import members from CSV (header row; columns channel, external_ref, joined_at,
    invited_by, display_name, email, city, interests as `a;b`, handles as `telegram:@ann;vk:x`)
    or NDJSON (one object per line, the same fields). Rows whose (channel, external_ref) the
    community already knows are counted as present and change nothing."""
    fmt = import_format(content_type)
    importer: MemberImporter = request.app.state.importer
    try:
        report = await importer.run(community, request.stream(), fmt,
                                    custom_channels=custom_channels)
    except UnreadableImport as error:
        raise Problem(422, "Unreadable import", str(error)) from error
    return summary(report)
