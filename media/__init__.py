"""The media plane on aiortc/PyAV: rooms of WebRTC legs forwarding encoded media, recording, figures.

Knows nothing of SIP or of the control plane: `confctl` (or `confctl media-node`) drives it.
"""
