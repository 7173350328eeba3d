"""Finding a forwarded mail's original: its sender, date and subject, and the rule that found it."""
