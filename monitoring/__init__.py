"""Monitoring: call quality per leg (E-model MOS, a video score), its rolling history, and /metrics."""
