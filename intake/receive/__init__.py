"""Taking mail in: the durable accept path, the SMTP/LMTP and IMAP receivers, file ingest."""
