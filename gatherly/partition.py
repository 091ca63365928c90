"""Partitions of the stream by community: names, subjects and lock keys. Pure.

With `stream_partitions` N > 1 the stream rewrites each subject on arrival (a JetStream subject
transform, NATS >= 2.10): `gatherly.<community>.<aggregate>.<past_tense>` is stored as
`gatherly.<community>.<aggregate>.<past_tense>.<p>`, p = a hash of the community id modulo N.
The token goes last so `gatherly.>` and `gatherly.<community>.>` filters keep matching, and
publishers and `Envelope.nats_subject` never see it. A partitioned projection runs one consumer
per partition, filtered on `gatherly.*.*.*.<p>`: a community's facts all land in one partition,
so no two runners ever apply the same aggregate. With N = 1 nothing is rewritten and the single
runner reads `gatherly.>` exactly as before partitioning existed (docs/adr/0005).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

EVERY_SUBJECT = "gatherly.>"
FACT_SUBJECT = "gatherly.*.*.*"


@dataclass(frozen=True, slots=True)
class Partition:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} outside 0..{self.count - 1}")

    @property
    def label(self) -> str:
        """`i/N`: the checkpoint row's key and the metrics label."""
        return f"{self.index}/{self.count}"

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def filter_subject(self) -> str:
        return EVERY_SUBJECT if self.whole else f"{FACT_SUBJECT}.{self.index}"

    def subjects_of(self, fact_types: frozenset[str] | None) -> list[str]:
        """The subjects a consumer of this partition reads for `fact_types` (None: every fact).
        A type `gatherly.<aggregate>.<past_tense>` is on `gatherly.<community>.<aggregate>.
        <past_tense>`, with the partition token after it once the stream is partitioned: the
        whole stream's filter takes both forms, disjoint as JetStream asks."""
        if fact_types is None:
            return [self.filter_subject]
        kinds = sorted(".".join(t.split(".")[1:]) for t in fact_types)
        if self.whole:
            return [f"gatherly.*.{kind}{tail}" for kind in kinds for tail in ("", ".*")]
        return [f"gatherly.*.{kind}.{self.index}" for kind in kinds]

    def durable(self, projection: str) -> str:
        """The consumer's name; an unpartitioned one keeps the name it had before partitions."""
        return projection if self.whole else f"{projection}-p{self.index}of{self.count}"

    def leader_key(self, projection: str) -> int:
        """Held while one runner is this partition's only consumer. The unpartitioned key is the
        one older releases took, so an old and a new projector still exclude each other."""
        suffix = "" if self.whole else f":{self.label}"
        return zlib.crc32(f"gatherly-projection-leader:{projection}{suffix}".encode())


def partitions(count: int) -> list[Partition]:
    return [Partition(index, count) for index in range(count)]


def members_key(projection: str) -> int:
    """Shared lock every projector process of `projection` holds: Postgres counts them for us."""
    return zlib.crc32(f"gatherly-projection-members:{projection}".encode())


def fair_share(count: int, members: int) -> int:
    """How many partitions one of `members` processes should run (the first ones get one more)."""
    return math.ceil(count / max(1, members))


def transform_destination(count: int) -> str | None:
    """The stream's subject transform destination for `count` partitions; None when whole."""
    if count == 1:
        return None
    return (
        "gatherly.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}"
        f".{{{{partition({count},1)}}}}"
    )


def partition_count(destination: str | None) -> int:
    """The inverse of `transform_destination`, read from an existing stream's configuration."""
    if not destination:
        return 1
    marker = "{{partition("
    start = destination.find(marker)
    if start < 0:
        raise ValueError(f"the stream's subject transform is not Gatherly's: {destination!r}")
    return int(destination[start + len(marker):].split(",", 1)[0])
