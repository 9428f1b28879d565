"""`SuiteError`: a malformed suite or scorer spec, named by file, line and field path (`suite.jsonl:7: cases.6.
messages.0.role: Field required`)."""

from __future__ import annotations


class SuiteError(ValueError):
    """A suite that cannot be run as written; `where()` is the `file:line: path` prefix of the message."""

    def __init__(self, path: str, problem: str, *, file: str = "", line: int | None = None) -> None:
        self.path = path  # the field, dotted: `cases.3.scorers.0.type`; "" for the whole file
        self.problem = problem
        self.file = file
        self.line = line
        super().__init__(f"{self.where()}{problem}")

    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.file and self.line is not None else self.file
        return "".join(f"{part}: " for part in (place, self.path) if part)

    def at(self, *, file: str, line: int | None, prefix: str = "") -> SuiteError:
        """The same problem placed in a file, its path under `prefix` (a scorer's path inside its case)."""
        path = ".".join(part for part in (prefix, self.path) if part)
        return SuiteError(path, self.problem, file=file, line=line)


__all__ = ["SuiteError"]
