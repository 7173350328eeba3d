"""What `cases show` and `messages show` print about one case or message."""
