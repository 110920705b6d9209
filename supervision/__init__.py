"""Owned background work for every layer (media, SIP, the control plane): TaskGroup and its loops.
Shared, so it lives in no one layer's package (it was media/supervision.py)."""
from supervision.task_group import LoopState, LoopStatus, TaskGroup, backoff_delay

__all__ = ["LoopState", "LoopStatus", "TaskGroup", "backoff_delay"]
