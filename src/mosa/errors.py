"""The one error type users see.

Everything a user can get wrong (a bad file, a bad flag, a missing checkpoint) raises
``MosaError`` with a message naming the problem and a hint naming the fix. The CLI prints it
and exits with code 2 instead of showing a traceback.
"""

from __future__ import annotations


class MosaError(Exception):
    """A user-facing error: ``message`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
