"""The system as deployed: control plane, node processes and browsers on emulated hosts (network namespaces)."""
