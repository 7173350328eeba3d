"""What keeps and proves state: the evidence blob store, the database, its models and
migrations, the audit chain, verify, export, retention; and the records and errors every
package shares (the forwarded original, SettingsError).

This package imports neither `intake` nor `notifier`.
"""
