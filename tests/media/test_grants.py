import pytest

from media.grants import Grant, InvalidGrant, sign_grant, verify_grant


def test_a_grant_verifies_until_it_expires():
    g = Grant("ses_1", "cc", "jl", False, False, expires=1000.0)
    text = sign_grant(b"key", g)
    assert verify_grant(b"key", text, now=999.0) == g
    with pytest.raises(InvalidGrant, match="expired"):
        verify_grant(b"key", text, now=1001.0)


@pytest.mark.parametrize("text", [None, "", "a.b.c", "x" * 3000, "bm90IGpzb24.c2ln", 5])
def test_malformed_grants_are_refused(text):
    with pytest.raises(InvalidGrant):
        verify_grant(b"key", text, now=0)


def test_a_grant_from_another_key_or_altered_is_refused():
    text = sign_grant(b"key", Grant("ses_1", "cc", "jl", False, False, 1e12))
    with pytest.raises(InvalidGrant, match="not signed"):
        verify_grant(b"other", text, now=0)
    body, sig = text.split(".")
    forged = sign_grant(b"other", Grant("ses_1", "cc", "jl", True, False, 1e12)).split(".")[0]
    with pytest.raises(InvalidGrant):
        verify_grant(b"key", f"{forged}.{sig}", now=0)


def test_a_grant_for_one_node_is_refused_by_another():
    text = sign_grant(b"key", Grant("ses_1", "cc", "jl", False, False, 1e12, node="node-cc"))
    assert verify_grant(b"key", text, 0, "node-cc").site == "cc"
    with pytest.raises(InvalidGrant, match="issued for node node-cc, not node-sp"):
        verify_grant(b"key", text, 0, "node-sp")


def test_a_grants_layout_arrives_as_the_plans_layout_and_an_unknown_one_is_refused():
    from rooms.plan import Layout
    got = verify_grant(b"key", sign_grant(b"key", Grant("ses_1", "cc", "jl", False, False, 1e12, layout="speaker")), 0)
    assert got.layout is Layout.SPEAKER
    with pytest.raises(InvalidGrant, match="malformed"):
        verify_grant(b"key", sign_grant(b"key", Grant("ses_1", "cc", "jl", False, False, 1e12, layout="mosaic")), 0)
