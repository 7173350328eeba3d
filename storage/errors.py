"""The base of the project's own exceptions, and the one error for a configuration mistake.

Here so that every package may use them: `storage` imports neither `intake` nor `notifier`.
"""

from __future__ import annotations


class ChikanemailError(Exception):
    """Something this service itself found wrong, as opposed to a bug or a library's error."""


class SettingsError(ChikanemailError, ValueError):
    """A configuration mistake, naming the file and the key: `FILE: KEY: problem`.

    `source` is None where the code that finds the mistake is not told which file the
    settings came from (the notifier's transport); the message is then `KEY: problem`.
    """

    def __init__(self, source: str | None, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}" if source is not None else
                         f"{key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem
