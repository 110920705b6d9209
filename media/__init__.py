"""Media plane (aiortc SFU legs, recording, figures): built by the media issue."""
