"""Taking mail from [[imap]] mailboxes: sign-in, catch-up by UID, IDLE, moving stored mail."""
