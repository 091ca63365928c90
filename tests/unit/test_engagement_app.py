"""The serving process tunes its collector once it has started (a batch makes tens of thousands of
objects; the default thresholds spent ~40% of the service's CPU collecting them)."""

from __future__ import annotations

import gc

from gatherly.collector import YOUNG_COLLECTION_THRESHOLD
from gatherly.settings import Settings
from services.engagement.app import create_app


async def test_the_collector_is_tuned_when_the_app_starts_not_when_it_is_built() -> None:
    thresholds = gc.get_threshold()
    app = create_app(Settings(database_url="postgresql://gatherly@127.0.0.1:1/none"))
    try:
        assert gc.get_threshold() == thresholds  # building an app (tests do) changes nothing
        async with app.router.lifespan_context(app):
            assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
            assert gc.get_freeze_count() > 0  # what startup loaded is never traversed again
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
