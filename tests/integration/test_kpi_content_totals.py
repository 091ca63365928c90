"""The zone-free content tables (facts/content_views.py, facts/speed.py) equal a recount over the
stored facts whatever order the facts arrive in, and the answers read through them (the most
viewed content of a window, the first reactions' quantiles) equal the same sums and quantiles
straight over the facts, for windows that hold items' spans whole and windows that cut them."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gatherly.db import create_engine
from gatherly.envelope import Envelope
from gatherly.settings import Settings
from services.kpi.queries.content import views_kpi
from services.kpi.queries.speed import quantile, speed_kpi
from services.kpi.queries.window import Window
from services.kpi.queries.zones import whole_months_and_days
from tests.integration.test_kpi_oracle_history import generate
from tests.integration.test_kpi_rollups import COMMUNITY, rows
from tests.integration.test_kpi_support import project_while_zones_register

CONTENT_FACTS = ("gatherly.content.published", "gatherly.content.viewed",
                 "gatherly.content.views_counted", "gatherly.reaction.added",
                 "gatherly.reaction.removed")
# Straight from the facts, written apart from the projection on purpose.
MOMENTS = ("SELECT content_id, count AS n, at FROM views WHERE community_id = :c UNION ALL"
           " SELECT content_id, total, as_of FROM view_counters WHERE community_id = :c")
TOTALS = f"SELECT content_id, sum(n), min(at), max(at) FROM ({MOMENTS}) m GROUP BY 1"
STORED_TOTALS = ("SELECT content_id, n, first_at, last_at FROM content_view_totals"
                 " WHERE community_id = :c")
DELAYS = ("SELECT c.content_id, c.published_at, CAST(extract(epoch FROM min(r.at)"
          " - c.published_at) AS double precision) FROM content c LEFT JOIN reaction_facts r"
          " ON r.community_id = c.community_id AND r.content_id = c.content_id AND r.added"
          " WHERE c.community_id = :c GROUP BY 1, 2")
STORED_DELAYS = ("SELECT content_id, published_at, first_seconds FROM first_reaction_delays"
                 " WHERE community_id = :c")
TOP = ("SELECT content_id, sum(n) FROM (SELECT content_id, count AS n FROM views"
       " WHERE community_id = :c AND at >= :start AND at < :end UNION ALL"
       " SELECT content_id, total FROM view_counters WHERE community_id = :c"
       " AND as_of >= :start AND as_of < :end) v GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT :limit")
FIRSTS = ("SELECT count(*), count(d), percentile_cont(0.5) WITHIN GROUP (ORDER BY d),"
          f" percentile_cont(0.9) WITHIN GROUP (ORDER BY d) FROM ({DELAYS}) f(id, at, d)"
          " WHERE at >= :start AND at < :end")
GROUPS = ("SELECT month, bin >> 5, sum(n) FROM reaction_delay_months"
          " WHERE community_id = :c AND tz = :tz GROUP BY 1, 2")
STORED_GROUPS = ("SELECT month, grp, n FROM reaction_delay_month_groups"
                 " WHERE community_id = :c AND tz = :tz")
# Every bin of the window, for the median as it was read before the groups.
BINS = ("SELECT bin, sum(n) FROM (" + whole_months_and_days("bin, n", "reaction_delay")
        + ") b GROUP BY 1 ORDER BY 1")
WINDOWS = ((date(2025, 1, 1), date(2025, 12, 31)), (date(2025, 2, 11), date(2025, 10, 20)),
           (date(2025, 5, 3), date(2025, 5, 17)), (date(2024, 12, 20), date(2025, 1, 5)),
           (date(2024, 11, 1), date(2026, 1, 31)))


def shuffled(facts: list[Envelope]) -> list[Envelope]:
    """In a random order across aggregates (views, counts and reactions before their content),
    each aggregate's own facts still in order, as the stream delivers them."""
    places = list(range(len(facts)))
    random.Random(7).shuffle(places)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for place, f in zip(places, facts, strict=True):
        by_subject[f.subject].append(place)
    order: dict[int, Envelope] = {}
    for f in facts:  # each aggregate's facts take its places in their own order
        order[min(by_subject[f.subject])] = f
        by_subject[f.subject].remove(min(by_subject[f.subject]))
    return [order[place] for place in sorted(order)]


async def assert_answers_match_the_facts(engine: AsyncEngine, w: Window, limit: int) -> None:
    params = {"c": COMMUNITY, "limit": limit, **w.params()}
    async with engine.connect() as conn:
        top = [(content, int(n)) for content, n in await conn.execute(text(TOP), params)]
        published, reacted, f50, f90 = (await conn.execute(text(FIRSTS), params)).one()
        bins = [(int(b), int(n)) for b, n in await conn.execute(text(BINS), params)]
        views = await views_kpi(conn, COMMUNITY, w, limit)
        speed = await speed_kpi(conn, COMMUNITY, w)
    assert top, (w, limit)  # every window here has views
    assert [(c["content_id"], c["views"]) for c in views["content"]] == top, (w, limit)
    assert (speed["content_published"], speed["content_reacted"]) == (published, reacted), w
    assert speed["first_reaction_seconds"] == {"median": f50, "p90": f90}, w
    # Read from the groups holding its ranks: the same number as from every bin.
    assert speed["all_reactions_seconds"]["median"] == quantile(bins, 0.5), w


async def test_content_totals_and_first_delays_are_exact_in_any_arrival_order(
    settings: Settings,
) -> None:
    facts = shuffled([f for f in generate(seed=7) if f.type in CONTENT_FACTS])
    engine = create_engine(settings.database, "kpi", pool_size=2)
    try:
        await project_while_zones_register(settings, engine, facts[:6000],
                                           ("UTC", "Europe/Berlin", "Pacific/Chatham"))
        totals = {r[0]: r for r in await rows(engine, STORED_TOTALS, "UTC")}
        expected = {r[0]: r for r in await rows(engine, TOTALS, "UTC")}
        assert totals.keys() == expected.keys() and totals
        for content, (_, n, first, last) in expected.items():
            # The span may be wider than the moments kept now (a replaced snapshot's stays).
            stored = totals[content]
            assert stored[1] == n and stored[2] <= first and stored[3] >= last, content
        delays = await rows(engine, STORED_DELAYS, "UTC")
        assert delays == await rows(engine, DELAYS, "UTC") and delays
        assert any(d is None for _, _, d in delays) and any(d for _, _, d in delays)
        for tz in ("UTC", "Europe/Berlin", "Pacific/Chatham"):
            groups = await rows(engine, STORED_GROUPS, tz)
            assert groups == await rows(engine, GROUPS, tz) and groups, tz
        for tz in ("Europe/Berlin", "Pacific/Chatham"):
            for first, last in WINDOWS:
                for limit in (3, 40):
                    await assert_answers_match_the_facts(
                        engine, Window(first, last, "week", tz), limit)
    finally:
        await engine.dispose()
