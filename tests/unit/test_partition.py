"""Partition names, subjects and lock keys, and how projector processes share partitions."""

from __future__ import annotations

import pytest

from gatherly.partition import (
    Partition,
    fair_share,
    partition_count,
    partitions,
    transform_destination,
)
from gatherly.projector import Share


def test_the_whole_stream_keeps_the_names_and_lock_it_had_before_partitions() -> None:
    whole = Partition()
    assert (whole.label, whole.filter_subject, whole.durable("kpi")) == ("0/1", "gatherly.>", "kpi")
    assert whole.leader_key("kpi") != Partition(0, 2).leader_key("kpi")


def test_a_partition_reads_the_token_the_stream_appends_after_the_fact_subject() -> None:
    third = Partition(2, 4)
    assert third.filter_subject == "gatherly.*.*.*.2"
    assert third.durable("kpi") == "kpi-p2of4"
    assert len({p.leader_key("kpi") for p in partitions(4)}) == 4


def test_the_transform_hashes_the_community_token_and_its_count_reads_back() -> None:
    assert transform_destination(1) is None
    destination = transform_destination(8)
    assert destination == (
        "gatherly.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{partition(8,1)}}")
    assert partition_count(destination) == 8
    assert partition_count(None) == 1
    with pytest.raises(ValueError):
        partition_count("other.{{wildcard(1)}}")


def test_a_partition_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError):
        Partition(4, 4)


def test_processes_split_partitions_and_the_survivor_takes_them_all() -> None:
    assert [fair_share(4, members) for members in (1, 2, 3, 4, 5)] == [4, 2, 2, 1, 1]
    alone = Share(4)
    for partition in partitions(4):
        assert alone.may_take(partition)
        alone.holding(partition, True)
    assert not any(alone.must_yield(p) for p in partitions(4))
    alone.members = 2  # a second process joined: hand over the highest two
    assert [alone.must_yield(p) for p in partitions(4)] == [False, False, True, True]
    alone.holding(Partition(3, 4), False)
    alone.holding(Partition(2, 4), False)
    assert not alone.may_take(Partition(2, 4))
    alone.members = 1  # the other one died
    assert alone.may_take(Partition(2, 4))


def test_a_consumer_of_some_fact_types_reads_their_subjects_in_either_stream_form() -> None:
    erased = frozenset({"gatherly.member.erased"})
    assert Partition().subjects_of(None) == ["gatherly.>"]
    assert Partition().subjects_of(erased) == [
        "gatherly.*.member.erased", "gatherly.*.member.erased.*"]
    assert Partition(2, 4).subjects_of(erased | {"gatherly.content.viewed"}) == [
        "gatherly.*.content.viewed.2", "gatherly.*.member.erased.2"]
    assert Partition(2, 4).subjects_of(None) == ["gatherly.*.*.*.2"]
