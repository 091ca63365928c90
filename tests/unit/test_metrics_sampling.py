"""A sampler running beside a worker ends with the worker's block, even when a sample swallows
the cancel meant to stop it (Python 3.11's wait_for can, if a request completes as the cancel
lands)."""

from __future__ import annotations

import asyncio

from gatherly.metrics import sampling


async def test_the_block_ends_though_a_sample_swallows_the_cancel() -> None:
    samples, swallowed = 0, False

    async def swallowing_sample() -> None:
        nonlocal samples, swallowed
        samples += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if swallowed:  # only the first: a later cancel (the loop's teardown) ends it
                raise
            swallowed = True
            raise RuntimeError("the cancel, lost as a failed request") from None

    async def worker() -> None:
        async with sampling(0.01, swallowing_sample):
            await asyncio.sleep(0.03)  # the cancel lands inside a sample

    running = asyncio.create_task(worker())
    await asyncio.wait({running}, timeout=5)
    assert swallowed
    assert running.done(), "the block's exit still waits for its sampler"
