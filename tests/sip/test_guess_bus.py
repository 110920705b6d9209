"""What crosses the channel between instances: outcomes on each host's own clock, anything else dropped."""
from __future__ import annotations

import pytest

from confctl.guess_bus import decode, encode
from sip_stub.throttle import GuessEvent, GuessOutcome


def test_an_outcome_arrives_as_old_on_the_receivers_clock_as_it_was_on_the_senders():
    sent = GuessEvent(GuessOutcome.FAILURE, "127.0.0.9", "desk-101", at=1000.0)
    instance, heard = decode(encode("cp-a/1", sent, now=1002.5), now=50.0)  # another host's monotonic clock
    assert instance == "cp-a/1"
    assert heard == GuessEvent(GuessOutcome.FAILURE, "127.0.0.9", "desk-101", at=47.5)


@pytest.mark.parametrize("payload", [
    "", "null", "[]", "{}", '{"i":"x","o":"failure","s":"a","a":"b"}', '{"i":"x","o":"win","s":"a","a":"b","age":0}',
    '{"i":1,"o":"failure","s":"a","a":"b","age":0}', '{"i":"x","o":"failure","s":"a","a":"b","age":-1}',
    '{"i":"x","o":"failure","s":"a","a":"b","age":"nan"}', '{"i":"x","o":"failure","s":"a","a":"' + "b" * 500 + '","age":0}',
])
def test_a_malformed_message_is_refused_by_name_not_applied(payload):
    with pytest.raises(ValueError, match="not a guess outcome"):
        decode(payload, now=0.0)
