"""What leaves the building or runs on a clock: outbox, SMTP sending, templates, the
response plan's deadlines, reminders, escalation and the scheduler.

Imports `storage`, never `intake`.
"""
