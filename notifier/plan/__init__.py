"""The response plan: its settings and checks, checklists, deadlines, reminders, the scheduler."""
