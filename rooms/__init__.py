"""The domain: topology, media profiles, media plans, admission over time, persistence.

No network code lives here; `confctl`, `media` and `sip_stub` build on it.
"""
