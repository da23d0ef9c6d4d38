"""One table of bad inputs across contracts, CLI, rule files, model files and exporters.

Every case must raise the error class it names, with a message that contains its key
words, and never a raw pandas/Python exception (``KeyError``, ``TypeError``,
``RecursionError``, a pandas ``ParserError`` ...) that tells the user nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from _bad_inputs import BadInput, CliFailure

_HERE = Path(__file__).parent


def _all_cases() -> list[BadInput]:
    cases: list[BadInput] = []
    for module in sorted(pkgutil.iter_modules([str(_HERE)]), key=lambda m: m.name):
        if module.name.startswith("_bad_inputs_"):
            cases += importlib.import_module(module.name).CASES
    return cases


CASES = _all_cases()


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_clearly(case: BadInput, tmp_path: Path) -> None:
    with pytest.raises(BaseException) as caught:  # noqa: PT011 (the class is checked below)
        case.run(tmp_path)
    error = caught.value
    assert isinstance(error, case.error), f"{type(error).__name__}: {error}"
    message = str(error)
    if isinstance(error, CliFailure):
        assert "Traceback" not in message, message
    for word in case.words:
        assert re.search(re.escape(word), message, flags=re.IGNORECASE), (word, message)
