"""IP telephony (SIP registrar and conference gateway): built by the SIP issue."""
