"""Fault-injection tests (issue 9): kills, dead relays, hostile SMTP, hostile input."""
