"""The web view for managers and admins (issue 20): login by mail link, sessions, who sees
what, and the pages (`intake.web.pages`), served by the daemon (`intake.web.server`)."""
