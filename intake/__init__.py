"""What reacts to incoming mail: receivers, the durable accept path, the worker and its steps;
and the service's front door: configuration, daemon and command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("chikanemail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
