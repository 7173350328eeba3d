"""Who is told about a new case (routing), and which earlier cases it resembles (patterns)."""
