"""What keeps and proves state: the evidence blob store, the database and its migrations.

This package imports neither `intake` nor `notifier`.
"""
