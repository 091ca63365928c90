"""A delivery's stream sequence and delivery count, read from its ack subject, equal what
nats-py's own `Msg.metadata` reads, for every form of the subject."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from gatherly.bus import positions

SUBJECTS = [
    # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>
    "$JS.ACK.GATHERLY.kpi.1.1.1.1763780000000000000.0",
    "$JS.ACK.GATHERLY.kpi.3.982451653.17.1763780000000000000.4000",
    "$JS.ACK.T0A1B2.kpi-p3of8.12.40.39.1763780000000000000.7",
    # with a JetStream domain: the same fields further along, left to nats-py
    "$JS.ACK.hub.ACCHASH.GATHERLY.kpi.2.77.70.1763780000000000000.5.rand0m",
    "$JS.ACK._.ACCHASH.GATHERLY.kpi.1.5.5.1763780000000000000.0",
]


@pytest.mark.parametrize("reply", SUBJECTS)
def test_the_positions_are_the_ones_nats_py_reads(reply: str) -> None:
    ours = positions(Msg(_client=None, reply=reply))  # type: ignore[arg-type]
    theirs = Msg(_client=None, reply=reply).metadata  # type: ignore[arg-type]
    assert ours == (theirs.sequence.stream, theirs.num_delivered)


def test_a_subject_that_is_no_ack_subject_is_refused_as_nats_py_refuses_it() -> None:
    with pytest.raises(Exception) as ours:
        positions(Msg(_client=None, reply="_INBOX.abc.1"))  # type: ignore[arg-type]
    with pytest.raises(Exception) as theirs:
        _ = Msg(_client=None, reply="_INBOX.abc.1").metadata  # type: ignore[arg-type]
    assert type(ours.value) is type(theirs.value)
