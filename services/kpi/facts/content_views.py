"""Per content item, zone-free: every view it got (view facts' counts plus each counter's latest
snapshot total) and the span of their moments, so the most viewed content of a window that holds
an item's whole span reads its total from one row (queries/content.py).

`content_view_totals` (community, content): `n` = Σ view counts + Σ latest snapshot totals,
`first_at` / `last_at` = the earliest and latest moment (a view's `at`, a snapshot's `as_of`)
ever stored for it. Views are insert-only (the batch's inserted rows add); a snapshot that
replaces another adds its total minus the replaced one's (facts/counters.py's `old` and `ins`).
The span only widens (`least`, `greatest`): a replaced snapshot's moment stays in it, so the
span may be wider than the moments stored now, never narrower. A window that holds the span
whole holds every view the item has, so its total there is `n`; every other item with a moment
in the window is summed from the rollups as before: exact either way, whatever the arrival
order. A community's batches are applied one after another (docs/adr/0005)."""

from __future__ import annotations

from services.kpi.facts.counters import VIEW_KEYS, signed_snapshots

ADD = (
    "INSERT INTO content_view_totals AS t (community_id, content_id, n, first_at, last_at)"
    " SELECT community_id, content_id, sum(n), min(at), max(at) FROM {rows} s GROUP BY 1, 2"
    " ON CONFLICT (community_id, content_id) DO UPDATE SET n = t.n + excluded.n,"
    " first_at = least(t.first_at, excluded.first_at),"
    " last_at = greatest(t.last_at, excluded.last_at)"
)
# CTEs over `ins`: the batch's inserted views, and its upserted snapshots (with `old`).
VIEW_DELTAS = [
    "cv AS (" + ADD.format(rows="(SELECT community_id, content_id, count AS n, at FROM ins)")
    + ")"]
SNAPSHOT_DELTAS = [
    "cs AS (" + ADD.format(rows=f"(SELECT community_id, content_id, n, as_of AS at FROM"
                           f" {signed_snapshots(VIEW_KEYS, 'content_id')} x)") + ")"]
# Every community's, from what is stored (a migration, a bulk load).
FROM_FACTS = ADD.format(
    rows="(SELECT community_id, content_id, count AS n, at FROM views UNION ALL"
         " SELECT community_id, content_id, total, as_of FROM view_counters)")
