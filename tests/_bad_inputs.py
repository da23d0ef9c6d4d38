"""The shape of one bad-input case, shared by the per-area case lists.

Each area (contracts, CLI, rule files, model files, exporters, push) keeps its cases in
``tests/_bad_inputs_<area>.py`` as a ``CASES`` list; ``test_bad_inputs.py`` runs them
all as one parametrised table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BadInput:
    """A bad input, the error class it must raise and words its message must contain.

    ``run`` receives a fresh temporary directory (for files the case writes) and must
    raise. ``words`` are matched case-insensitively against ``str(error)``; a CLI case
    raises ``CliFailure`` (see ``run_cli``) so its stderr is what is matched.
    """

    id: str
    run: Callable[[Path], object]
    error: type[BaseException]
    words: tuple[str, ...] = field(default_factory=tuple)


class CliFailure(Exception):  # noqa: N818 (a failed run, not an error of the tests)
    """A CLI run that ended with a non-zero exit code; the message is its stderr."""

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(stderr)
        self.code = code


def run_cli(*argv: str) -> None:
    """Run ``segmentkit`` in-process; raise ``CliFailure`` with stderr when it fails."""
    import contextlib
    import io

    from segmentkit.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    if code:
        raise CliFailure(int(code), err.getvalue())
