"""Front doors that act on cases: the command line (cli/) and commands in reply mails (reply/)."""
