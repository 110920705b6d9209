"""The `confctl` command."""
