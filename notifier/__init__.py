"""What leaves the building or runs on a clock: outbox, SMTP sending, mail templates, case
actions, trusted time-stamps, and plan/ (the response plan's deadlines, reminders,
escalation and the scheduler).

Imports `storage`, never `intake`.
"""
