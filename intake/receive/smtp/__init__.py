"""The SMTP/LMTP listener: DATA spooled to disk, 250 only once the message is durable."""
