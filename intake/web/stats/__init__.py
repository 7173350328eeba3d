"""The statistics page for the safety group (issue 22, point 5): GET /stats, for `[plan]
admins` and `[stats] viewers`. Its routes are in `intake.web.stats.page`; this package's
`settings` is read by the configuration loader, so nothing heavier is imported here."""
