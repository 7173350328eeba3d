"""The reporter's read-only status page (issue 21): GET /status/{secret}, no login."""
