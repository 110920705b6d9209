"""A grant carries its session's video codec to the node (media/grants.py)."""
import base64
import hashlib
import hmac
import json

import pytest

from media.grants import Grant, InvalidGrant, sign_grant, verify_grant


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_grant_carries_the_sessions_codec_and_one_from_before_codecs_means_vp8():
    assert verify_grant(b"key", sign_grant(b"key", Grant("ses_1", "cc", "jl", False, False, 1e12, codec="h264")),
                        0).codec == "h264"
    # signed by a control plane that did not know codecs yet (no such field): VP8, as every session was
    body = _b64(json.dumps({"session": "ses_1", "site": "cc", "host": "jl", "record": False, "echo": False,
                            "expires": 1e12}).encode())
    old = f"{body}.{_b64(hmac.new(b'key', body.encode(), hashlib.sha256).digest())}"
    assert verify_grant(b"key", old, 0).codec == "vp8"


def test_a_grant_with_a_codec_the_node_cannot_forward_is_refused():
    text = sign_grant(b"key", Grant("ses_1", "cc", "jl", False, False, 1e12, codec="av1"))  # type: ignore[arg-type]
    with pytest.raises(InvalidGrant, match="malformed"):
        verify_grant(b"key", text, 0)
