"""Conformance checks for segmentation engines, built-in or third-party.

Run every check on an engine with :func:`check_segmenter`, or generate one pytest test
per engine and check with :func:`parametrize_with_checks`. Each ``check_*`` function
takes an unfitted segmenter (it is cloned, never changed) and optional features, and
raises ``AssertionError`` with a sentence saying what broke, or ``unittest.SkipTest``
when it does not apply (e.g. determinism for an engine whose tags say it is not
deterministic).

Examples
--------
>>> import segmentkit as sk
>>> from segmentkit.testing import check_segmenter
>>> results = check_segmenter(sk.RFMSegmenter())
>>> results["check_one_segment_per_customer"]
'passed'

In a plugin's test suite:

.. code-block:: python

    from segmentkit.testing import parametrize_with_checks
    from my_plugin import MySegmenter

    @parametrize_with_checks([MySegmenter(random_state=0)])
    def test_conformance(segmenter, check):
        check(segmenter)
"""

from __future__ import annotations

import functools
import pickle
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from unittest import SkipTest

import numpy as np
import pandas as pd

from segmentkit.errors import NotFittedError
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import NOISE, Segmentation

if TYPE_CHECKING:
    from segmentkit.engines._base import Segmenter

__all__ = [
    "check_deterministic",
    "check_fit_idempotent",
    "check_fit_returns_self",
    "check_get_params_roundtrip",
    "check_no_attributes_set_in_init",
    "check_one_segment_per_customer",
    "check_pickle",
    "check_predict_equals_fit_predict",
    "check_save_load",
    "check_segmenter",
    "check_unfitted_raises",
    "parametrize_with_checks",
    "sample_features",
]

Features: TypeAlias = CustomerFeatures | pd.DataFrame | None
ExpectedFailures: TypeAlias = Mapping[str, str] | Callable[[Any], Mapping[str, str]] | None


@functools.cache
def sample_features() -> CustomerFeatures:
    """The default input of the checks: features of the bundled sample's 800 customers.

    Built once per process from :func:`segmentkit.datasets.load_sample`; the same object
    is returned on every call, so do not modify it.

    Returns
    -------
    CustomerFeatures
        Purchase features of every customer of the sample.

    Examples
    --------
    >>> from segmentkit.testing import sample_features
    >>> len(sample_features())
    800
    """
    from segmentkit.contracts._transactions import Transactions
    from segmentkit.datasets import load_sample
    from segmentkit.features._extract import extract_features

    raw, mapping = load_sample()
    return extract_features(Transactions.from_frame(raw, **mapping))


# --------------------------------------------------------------------------- checks


def check_no_attributes_set_in_init(segmenter: Segmenter, features: Features = None) -> None:
    """``__init__`` stores its arguments unchanged and sets nothing else.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Unused; present so that every check has the same signature.
    """
    name = type(segmenter).__name__
    params = segmenter.get_params(deep=False)
    fresh = type(segmenter)(**params)
    extra = sorted(set(vars(fresh)) - set(params))
    assert not extra, (
        f"{name}.__init__ sets attributes {extra} that are not parameters: __init__ must "
        "only store its arguments; derive and validate things in fit."
    )
    for key, value in params.items():
        stored = vars(fresh).get(key, _MISSING)
        assert stored is value, (
            f"{name}.__init__ must store the parameter {key!r} unchanged as self.{key}; "
            f"given {value!r}, it stored {stored!r}."
        )


def check_get_params_roundtrip(segmenter: Segmenter, features: Features = None) -> None:
    """``get_params``, ``set_params`` and ``clone`` give back the same parameters.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Unused.
    """
    from sklearn.base import clone

    name = type(segmenter).__name__
    params = segmenter.get_params(deep=False)
    cloned = clone(segmenter).get_params(deep=False)
    _assert_same_params(params, cloned, f"clone({name}) changed the parameters")
    try:
        rebuilt = type(segmenter)()
    except TypeError as error:
        msg = f"{name}() must work without arguments (every parameter needs a default): {error}"
        raise AssertionError(msg) from error
    returned = rebuilt.set_params(**params)
    assert returned is rebuilt, f"{name}.set_params must return self."
    _assert_same_params(
        params, rebuilt.get_params(deep=False), f"{name}().set_params(**get_params()) differs"
    )


def check_fit_returns_self(segmenter: Segmenter, features: Features = None) -> None:
    """``fit`` returns the segmenter itself, so that calls chain.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    model = _seeded(segmenter)
    returned = model.fit(_features(features))
    assert returned is model, (
        f"{type(model).__name__}.fit returned {type(returned).__name__} instead of self."
    )


def check_unfitted_raises(segmenter: Segmenter, features: Features = None) -> None:
    """``predict`` before ``fit`` raises :class:`~segmentkit.errors.NotFittedError`.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    model = _fresh(segmenter)
    name = type(model).__name__
    try:
        model.predict(_features(features))
    except NotFittedError:
        return
    except Exception as error:
        msg = (
            f"{name}.predict before fit raised {type(error).__name__} ({error}) instead of "
            "segmentkit.errors.NotFittedError; call check_is_fitted(self) first."
        )
        raise AssertionError(msg) from error
    msg = f"{name}.predict before fit returned a result; it must raise NotFittedError."
    raise AssertionError(msg)


def check_one_segment_per_customer(segmenter: Segmenter, features: Features = None) -> None:
    """Every input customer is assigned exactly once, to a segment of ``segments_``.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    data = _features(features)
    model = _seeded(segmenter)
    result = model.fit_predict(data)
    name = type(model).__name__
    assert isinstance(result, Segmentation), (
        f"{name}.fit_predict returned {type(result).__name__}, not a Segmentation."
    )
    assignments = result.assignments
    ids = pd.Index(data.customer_ids)
    seen = pd.Index(assignments["customer_id"])
    repeated = seen[seen.duplicated()].unique()
    assert repeated.empty, (
        f"{name} assigned customers {list(repeated[:5])} more than once; every customer "
        "must be in exactly one segment."
    )
    missing, extra = ids.difference(seen), seen.difference(ids)
    assert missing.empty, (
        f"{name} left out customers {list(missing[:5])}: the assignments must list every "
        "input customer once."
    )
    assert extra.empty, f"{name} assigned customers {list(extra[:5])} that are not in the input."
    known = {s.id: s.name for s in model.segments_}
    labels = assignments["segment_id"].to_numpy()
    unknown = sorted(set(labels.tolist()) - set(known))
    assert not unknown, f"{name} assigned segment ids {unknown} that are not in segments_."
    names = assignments["segment"].tolist()
    expected = [known[label] for label in labels.tolist()]
    assert names == expected, f"{name}: the 'segment' column does not match segments_ names."
    if not model.tags.produces_noise:
        assert NOISE not in known, (
            f"{name} has a NOISE segment (id -1) but its tags say produces_noise=False."
        )


def check_fit_idempotent(segmenter: Segmenter, features: Features = None) -> None:
    """Fitting twice on the same data gives the same segments as fitting once.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    _require_reproducible(segmenter)
    data = _features(features)
    model = _seeded(segmenter)
    first = model.fit(data).predict(data)
    second = model.fit(data).predict(data)
    _assert_same_segmentation(first, second, f"A second fit of {type(model).__name__}")


def check_deterministic(segmenter: Segmenter, features: Features = None) -> None:
    """Two fits with the same parameters (and ``random_state``) give the same segments.

    Skipped when the engine's tags say ``deterministic=False``.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    if not segmenter.tags.deterministic:
        msg = f"{type(segmenter).__name__}.tags says deterministic=False"
        raise SkipTest(msg)
    data = _features(features)
    first = _seeded(segmenter).fit_predict(data)
    second = _seeded(segmenter).fit_predict(data)
    _assert_same_segmentation(first, second, f"Another {type(segmenter).__name__} fit")


def check_predict_equals_fit_predict(segmenter: Segmenter, features: Features = None) -> None:
    """``predict`` on the fit data agrees with ``fit_predict``.

    Skipped when the engine's tags say ``supports_predict=False``.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    if not segmenter.tags.supports_predict:
        msg = f"{type(segmenter).__name__}.tags says supports_predict=False"
        raise SkipTest(msg)
    data = _features(features)
    model = _seeded(segmenter)
    fitted = model.fit_predict(data)
    predicted = model.predict(data)
    _assert_same_segmentation(
        fitted, predicted, f"{type(model).__name__}.predict on the fit data", "fit_predict"
    )


def check_pickle(segmenter: Segmenter, features: Features = None) -> None:
    """A fitted segmenter pickled and unpickled predicts the same segments.

    Skipped when a parameter holds a function pickle cannot store (a lambda).

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    data = _features(features)
    model = _seeded(segmenter).fit(data)
    try:
        blob = pickle.dumps(model)
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        if _holds_function(model.get_params(deep=False)):
            msg = f"a parameter holds a function that pickle cannot store ({error})"
            raise SkipTest(msg) from error
        raise
    restored = pickle.loads(blob)
    assert type(restored) is type(model), "Unpickling gave another class."
    _assert_same_segmentation(
        model.predict(data), restored.predict(data), f"{type(model).__name__} after pickling"
    )


def check_save_load(segmenter: Segmenter, features: Features = None) -> None:
    """``save`` then ``load`` gives the same parameters and predictions, fitted or not.

    Skipped for rules written as Python functions (which cannot be saved, by design)
    and for classes defined inside a function. Files with pickled state are loaded
    with ``trust_pickle=True``: the check wrote them itself.

    Parameters
    ----------
    segmenter : Segmenter
        The engine to check (cloned, not modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input; defaults to :func:`sample_features`.
    """
    from segmentkit.engines._persistence import load

    cls = type(segmenter)
    if "<locals>" in cls.__qualname__:
        msg = f"{cls.__qualname__} is defined inside a function; no file can name it"
        raise SkipTest(msg)
    if _holds_function(segmenter.get_params(deep=False)):
        msg = "its parameters hold Python functions, which are not saved by design"
        raise SkipTest(msg)
    data = _features(features)
    model = _seeded(segmenter)
    with tempfile.TemporaryDirectory() as folder:
        unfitted = load(model.save(Path(folder) / "unfitted.json"))
        model.fit(data)
        restored = load(model.save(Path(folder) / "model.json"), trust_pickle=True)
    name = cls.__name__
    for loaded in (unfitted, restored):
        assert type(loaded) is cls, f"Loading a saved {name} gave a {type(loaded).__name__}."
        _assert_same_params(
            model.get_params(deep=False),
            loaded.get_params(deep=False),
            f"{name} parameters changed in a save/load round trip",
        )
    assert not [k for k in vars(unfitted) if k.endswith("_") and not k.startswith("_")], (
        f"An unfitted {name} came back from save/load with fitted attributes."
    )
    assert restored.segments_ == model.segments_, f"{name}.segments_ changed in save/load."
    _assert_same_segmentation(
        model.predict(data), restored.predict(data), f"{name} after save and load"
    )


_CHECKS: tuple[Callable[..., None], ...] = (
    check_no_attributes_set_in_init,
    check_get_params_roundtrip,
    check_fit_returns_self,
    check_unfitted_raises,
    check_one_segment_per_customer,
    check_fit_idempotent,
    check_deterministic,
    check_predict_equals_fit_predict,
    check_pickle,
    check_save_load,
)


# --------------------------------------------------------------------------- runners


def check_segmenter(
    segmenter: Segmenter,
    features: Features = None,
    *,
    expected_failed_checks: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Run every conformance check on ``segmenter``; report all failures at once.

    Parameters
    ----------
    segmenter : Segmenter
        An unfitted engine with the parameters to check (cloned, never modified).
    features : CustomerFeatures or pandas.DataFrame, optional
        Input of the checks; defaults to :func:`sample_features`. Pass your own when
        the engine needs features the sample lacks.
    expected_failed_checks : dict of str to str, optional
        Checks known to fail, each with the reason; they are reported, not raised. A
        listed check that passes is an error, so the list cannot go stale.

    Returns
    -------
    dict of str to str
        Each check's outcome: ``'passed'``, ``'skipped: <reason>'`` or
        ``'expected failure: <reason>'``.

    Raises
    ------
    AssertionError
        Listing every check that failed, with its message.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit.testing import check_segmenter
    >>> results = check_segmenter(sk.KMeansSegmenter(n_clusters=3, random_state=0))
    >>> sorted(set(results.values()))
    ['passed']
    """
    expected = dict(expected_failed_checks or {})
    _check_names(expected)
    data = _features(features)
    results: dict[str, str] = {}
    failures = []
    for check in _CHECKS:
        name = check.__name__
        try:
            check(segmenter, data)
        except SkipTest as skip:
            results[name] = f"skipped: {skip}"
        except Exception as error:
            if name in expected:
                results[name] = f"expected failure: {expected[name]}"
                continue
            kind = "" if isinstance(error, AssertionError) else f"{type(error).__name__}: "
            failures.append(f"{name}: {kind}{error}")
            results[name] = "failed"
        else:
            if name in expected:
                failures.append(
                    f"{name} passed but is listed in expected_failed_checks "
                    f"({expected[name]}); remove it from the list."
                )
            results[name] = "passed"
    if failures:
        listed = "\n".join(f"- {failure}" for failure in failures)
        msg = (
            f"{type(segmenter).__name__} failed {len(failures)} of {len(_CHECKS)} "
            f"segmentkit checks:\n{listed}"
        )
        raise AssertionError(msg)
    return results


def parametrize_with_checks(
    segmenters: Iterable[Segmenter],
    expected_failed_checks: ExpectedFailures = None,
    *,
    features: Features = None,
) -> Any:
    """A ``pytest.mark.parametrize`` decorator: one test per segmenter and check.

    The decorated test takes the arguments ``segmenter`` and ``check`` and calls
    ``check(segmenter)``. Test ids read ``<Class>-<check name>`` (``<Class>#<n>`` when a
    class is listed more than once), so ``pytest -k check_pickle`` selects one check.

    Parameters
    ----------
    segmenters : iterable of Segmenter
        Unfitted engines with the parameters to check.
    expected_failed_checks : dict of str to str, or callable, optional
        Check name to reason, or a function of the segmenter returning such a dict;
        those tests are marked ``xfail(strict=True)``: an unexpected pass fails, so the
        list cannot go stale.
    features : CustomerFeatures or pandas.DataFrame, optional
        Input of the checks; defaults to :func:`sample_features`.

    Returns
    -------
    pytest.MarkDecorator
        The decorator.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit.testing import parametrize_with_checks
    >>> decorator = parametrize_with_checks([sk.RFMSegmenter()])
    >>> decorator.args[0], len(decorator.args[1])
    (('segmenter', 'check'), 10)
    """
    import pytest

    segmenters = list(segmenters)
    counts: dict[str, int] = {}
    for segmenter in segmenters:
        counts[type(segmenter).__name__] = counts.get(type(segmenter).__name__, 0) + 1
    seen: dict[str, int] = {}
    cases = []
    for segmenter in segmenters:
        label = type(segmenter).__name__
        if counts[label] > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label}#{seen[label]}"
        expected = dict(
            expected_failed_checks(segmenter)
            if callable(expected_failed_checks)
            else expected_failed_checks or {}
        )
        _check_names(expected)
        for check in _CHECKS:
            name = check.__name__
            marks = (
                [pytest.mark.xfail(reason=expected[name], strict=True)] if name in expected else []
            )
            cases.append(
                pytest.param(
                    segmenter,
                    functools.partial(check, features=features),
                    id=f"{label}-{name}",
                    marks=marks,
                )
            )
    return pytest.mark.parametrize(("segmenter", "check"), cases)


# --------------------------------------------------------------------------- helpers

_MISSING = object()


def _features(features: Features) -> CustomerFeatures:
    if features is None:
        return sample_features()
    from segmentkit.engines._base import as_features

    return as_features(features)


def _fresh(segmenter: Segmenter) -> Segmenter:
    from sklearn.base import clone

    return clone(segmenter)


def _seeded(segmenter: Segmenter) -> Segmenter:
    """A clone with ``random_state=0`` when it has that parameter and it is unset."""
    model = _fresh(segmenter)
    if model.get_params(deep=False).get("random_state", _MISSING) is None:
        model.set_params(random_state=0)
    return model


def _require_reproducible(segmenter: Segmenter) -> None:
    if not segmenter.tags.deterministic and "random_state" not in segmenter.get_params():
        msg = f"{type(segmenter).__name__} is not deterministic and has no random_state"
        raise SkipTest(msg)


def _check_names(expected: Mapping[str, str]) -> None:
    unknown = sorted(set(expected) - {check.__name__ for check in _CHECKS})
    if unknown:
        msg = (
            f"expected_failed_checks names unknown checks {unknown}; the checks are "
            f"{[check.__name__ for check in _CHECKS]}."
        )
        raise ValueError(msg)


def _holds_function(value: Any) -> bool:
    from segmentkit.engines._rules import Rule

    if isinstance(value, Rule):
        return not isinstance(value.when, str)
    if isinstance(value, Mapping):
        return any(_holds_function(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_function(v) for v in value)
    return callable(value) and not isinstance(value, type)


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


def _assert_same_params(expected: Mapping[str, Any], actual: Mapping[str, Any], what: str) -> None:
    assert set(expected) == set(actual), (
        f"{what}: parameter names {sorted(expected)} became {sorted(actual)}."
    )
    changed = [key for key in expected if not _same(expected[key], actual[key])]
    assert not changed, (
        f"{what}: "
        + "; ".join(f"{key}: {expected[key]!r} became {actual[key]!r}" for key in changed)
        + "."
    )


def _assert_same_segmentation(
    expected: Segmentation, actual: Segmentation, what: str, reference: str = "before"
) -> None:
    a, b = expected.assignments, actual.assignments
    assert list(a["customer_id"]) == list(b["customer_id"]), (
        f"{what} lists other customers, or in another order, than {reference}."
    )
    changed = np.flatnonzero(a["segment_id"].to_numpy() != b["segment_id"].to_numpy())
    if len(changed):
        first = changed[0]
        msg = (
            f"{what} puts {len(changed)} of {len(a)} customers in another segment than "
            f"{reference}, e.g. customer {a['customer_id'].iloc[first]!r}: "
            f"{a['segment'].iloc[first]!r} became {b['segment'].iloc[first]!r}."
        )
        raise AssertionError(msg)
    assert expected.segments == actual.segments, (
        f"{what} gives other segment definitions than {reference}: "
        f"{[s.name for s in expected.segments]} vs {[s.name for s in actual.segments]}."
    )
    try:
        pd.testing.assert_frame_equal(a, b)
    except AssertionError as error:
        msg = f"{what}: same segments as {reference}, but other assignment columns: {error}"
        raise AssertionError(msg) from None
