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
`view_counter_months` and `reaction_counter_months` hold the same per local month, kept by the
same deltas: a window's whole months read them.
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
    """Upsert `source`'s signed rows into `table` per zone and local day, or local month (its
    first day) for a `_months` table."""
    grouped = ", ".join(str(i + 4) for i in range(len(dims.split(", "))))
    start, local = ("day", "s.as_of AT TIME ZONE z.tz")
    if table.endswith("_months"):
        start, local = "month", f"date_trunc('month', {local})"
    return (
        f"INSERT INTO {table} AS r (community_id, tz, {start}, {dims}, n, snapshots)"
        f" SELECT s.community_id, z.tz, CAST({local} AS date),"
        f" {', '.join('s.' + d for d in dims.split(', '))}, sum(s.n), sum(s.k) FROM {source} s"
        f" JOIN kpi_zones z ON z.community_id = s.community_id WHERE {zone_filter}"
        f" GROUP BY 1, 2, 3, {grouped} HAVING (sum(s.n), sum(s.k)) <> (0, 0)"
        f" ON CONFLICT (community_id, tz, {start}, {dims}) DO UPDATE SET n = r.n + excluded.n,"
        " snapshots = r.snapshots + excluded.snapshots"
    )


# Each rollup's dimensions. The `_months` ones hold the same sums per local month: whole months
# of a window read them (queries/zones.py: whole_months_and_days), a year 12 rows, not ~365.
# A day or month of 0 snapshots counts 0 (a snapshot adds its total and takes it back).
VIEW_TABLES = {"view_counter_days": "channel", "view_counter_months": "channel"}
REACTION_TABLES = {"reaction_counter_days": "channel, kind",
                   "reaction_counter_months": "channel, kind"}
TABLES = (*VIEW_TABLES, *REACTION_TABLES)
VIEW_DELTAS = [f"vc{i} AS ({_add(table, dims, signed_snapshots(VIEW_KEYS, dims), 'TRUE')})"
               for i, (table, dims) in enumerate(VIEW_TABLES.items())]
REACTION_DELTAS = [
    f"rc{i} AS ({_add(table, dims, signed_snapshots(REACTION_KEYS, dims), 'TRUE')})"
    for i, (table, dims) in enumerate(REACTION_TABLES.items())]
STORED = {"view_counters": VIEW_TABLES, "reaction_counters": REACTION_TABLES}


def backfill(zone_filter: str, grain: str = "days") -> dict[str, str]:
    """Each daily (or, `grain` "months", monthly) rollup from the snapshots stored, for the
    zones `zone_filter` picks (alias `z`, the snapshots `s`). Daily by default: migration
    kpi0014 fills the daily ones alone, before the monthly ones existed."""
    return {
        table: _add(table, dims, f"(SELECT community_id, as_of, {dims}, total AS n, 1 AS k"
                    f" FROM {snapshots})", zone_filter)
        for snapshots, tables in STORED.items() for table, dims in tables.items()
        if table.endswith(grain)
    }
