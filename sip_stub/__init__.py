"""IP telephony: SIP messages (sans-io), transactions, UDP endpoint, registrar and conference gateway."""
