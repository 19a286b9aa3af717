"""What the data readers do with a bad file: raise at once, or note it and leave the file out.

A reader given a `ProblemLog` records each bad file, row, box or mask (with what was done about it) and
carries on with the rest; without one it raises the `DataError` naming the file, as it always did.
`kerascv_tl.data.check` gives the readers a log and applies `data.on_bad` to it.
"""

from __future__ import annotations

import os

from kerascv_tl.data.errors import DataError
from kerascv_tl.data.paths import display_path

__all__ = ["ProblemLog", "skip_or_raise"]


class ProblemLog:
    """The problems a check found, in the order met: dicts with `path`, `message` (naming the file and saying
    what is wrong) and `action` (what `on_bad: skip` does about it)."""

    def __init__(self) -> None:
        self.problems: list[dict[str, str]] = []

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self):
        return iter(self.problems)

    def add(self, path: str | os.PathLike, reason: str, action: str = "file skipped") -> None:
        shown = display_path(path)
        self.problems.append({"path": shown, "message": f"{shown}: {reason}", "action": action})

    def add_error(self, error: DataError, action: str = "file skipped") -> None:
        """Records a reader's DataError (its message already names the file)."""
        message = display_path(str(error))
        path = display_path(error.path) if error.path else message.split(": ", 1)[0]
        self.problems.append({"path": path, "message": message, "action": action})

    def counts(self) -> dict[str, int]:
        """How many problems led to each action."""
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem["action"]] = counts.get(problem["action"], 0) + 1
        return counts


def skip_or_raise(problems: ProblemLog | None, error: DataError, action: str = "file skipped") -> None:
    """Raises `error` when there is no log (strict readers); otherwise records it and returns."""
    if problems is None:
        raise error
    problems.add_error(error, action)
