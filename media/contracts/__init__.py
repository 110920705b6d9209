"""The messages between processes, as models both sides import: browser.py is /ws (browser ↔ control plane or node)."""
