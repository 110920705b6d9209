"""The control-plane service and CLI: REST API, pages, auth and roles, the `confctl` command."""
