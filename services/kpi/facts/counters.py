"""Platforms' counter snapshots rolled up per zone and local day: `view_counter_days` (per
channel) and `reaction_counter_days` (per channel and kind) hold the sum of the totals (`n`) and
the number (`snapshots`) of the snapshots whose `as_of` falls on that day: a channel or kind
whose only snapshots count 0 is still in the answer, as when the snapshots were read directly.

Only each counter's latest snapshot is kept (facts/engagement.py), so a stored row changes: the
statement that upserts a batch's snapshots adds, per zone and day, what the changed rows count
now minus what they counted before (as facts/changing.py does). `old` holds every batch key's
row as it was; only those the upsert actually replaced (their key is in `ins`) are taken back, an
older snapshot that lost changes nothing. So the rollup equals a `GROUP BY` over the snapshots at
any moment, whatever order they came in; a day a snapshot left keeps its row at 0 snapshots.
No member is in them: erasure does not touch them. A community's batches are applied one after
another (docs/adr/0005)."""

from __future__ import annotations

VIEW_KEYS = ("community_id", "content_id", "counter")
REACTION_KEYS = (*VIEW_KEYS, "kind")


def signed_snapshots(keys: tuple[str, ...], dims: str) -> str:
    """The replaced and new snapshots after (+total) and before (-total) the batch."""
    using = ", ".join(keys)
    return (f"(SELECT community_id, as_of, {dims}, total AS n, 1 AS k FROM ins UNION ALL"
            f" SELECT o.community_id, o.as_of, {', '.join('o.' + d for d in dims.split(', '))},"
            f" -o.total, -1 FROM old o JOIN ins i USING ({using}))")


def _add(table: str, dims: str, source: str, zone_filter: str) -> str:
    grouped = ", ".join(str(i + 4) for i in range(len(dims.split(", "))))
    return (
        f"INSERT INTO {table} AS r (community_id, tz, day, {dims}, n, snapshots)"
        " SELECT s.community_id, z.tz, CAST(s.as_of AT TIME ZONE z.tz AS date),"
        f" {', '.join('s.' + d for d in dims.split(', '))}, sum(s.n), sum(s.k) FROM {source} s"
        f" JOIN kpi_zones z ON z.community_id = s.community_id WHERE {zone_filter}"
        f" GROUP BY 1, 2, 3, {grouped} HAVING (sum(s.n), sum(s.k)) <> (0, 0)"
        f" ON CONFLICT (community_id, tz, day, {dims}) DO UPDATE SET n = r.n + excluded.n,"
        " snapshots = r.snapshots + excluded.snapshots"
    )


_VIEWS = _add("view_counter_days", "channel", signed_snapshots(VIEW_KEYS, "channel"), "TRUE")
VIEW_DELTAS = [f"vc AS ({_VIEWS})"]
_REACTIONS = _add("reaction_counter_days", "channel, kind",
                  signed_snapshots(REACTION_KEYS, "channel, kind"), "TRUE")
REACTION_DELTAS = [f"rc AS ({_REACTIONS})"]

def backfill(zone_filter: str) -> dict[str, str]:
    """Each rollup from the snapshots stored, for the zones `zone_filter` picks (alias `z`,
    the snapshots `s`)."""
    return {
        "view_counter_days": _add(
            "view_counter_days", "channel",
            "(SELECT community_id, as_of, channel, total AS n, 1 AS k FROM view_counters)",
            zone_filter),
        "reaction_counter_days": _add(
            "reaction_counter_days", "channel, kind",
            "(SELECT community_id, as_of, channel, kind, total AS n, 1 AS k"
            " FROM reaction_counters)",
            zone_filter),
    }
