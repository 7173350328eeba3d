"""What reacts to incoming mail: receive/ (taking mail in) and pipeline/ (the worker's steps
on a stored mail), with what they use: parse/ (reading a mail), trust/ (what it proves about
its sender), cases/ (routing, patterns); and the service's front doors: commands/ (command
line, reply commands) and service/ (configuration, daemon)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chikanemail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
