"""Running the service: the configuration file, the daemon, logging and systemd notification."""
