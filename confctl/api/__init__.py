"""The REST API under /api: one module per resource, each a list of documented routes."""
