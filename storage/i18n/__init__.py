"""The message catalogs (gettext, one per language) and how templates and code use them.

They live here, in `storage/`, because every package renders text for people (the export
report here, the mails in `notifier/`, the CLI and pages in `intake/`) and `storage/` is the
one package all of them may import. Catalogs: `locale/<language>/LC_MESSAGES/chikanemail.po`
with the compiled `.mo` beside it; msgids are English.
"""
