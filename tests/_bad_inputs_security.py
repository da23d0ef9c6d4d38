"""Bad inputs from outside the code: rule files, rule expressions and model files."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pandas as pd

import segmentkit as sk
from _bad_inputs import BadInput, CliFailure, run_cli
from segmentkit.errors import PersistenceError, RuleSyntaxError

_FEATURES = pd.DataFrame({"customer_id": ["a", "b"], "frequency": [1, 5], "monetary": [1.0, 9.0]})

# A "billion laughs": nine levels of nine aliases, 337 bytes that expand to 9**9 values.
_YAML_BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "rules: [{name: x, when: *i}]",
    ]
)


def _rules_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _load_rules(name: str, text: str) -> Any:
    return lambda folder: sk.load_rules(_rules_file(folder, name, text))


def _fit_rule(text: str) -> Any:
    return lambda folder: sk.RuleSegmenter(rules=[("Deep", text)]).fit(_FEATURES)


def _model_document(folder: Path) -> dict[str, Any]:
    path = sk.RFMSegmenter().fit(_FEATURES.assign(recency_days=[3, 40])).save(folder / "m.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _load_edited(edit: Any, *, trust: bool = False) -> Any:
    def run(folder: Path) -> object:
        document = _model_document(folder)
        edit(document)
        path = folder / "edited.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        return sk.load(path, trust_pickle=trust)

    return run


def _pickled_payload(document: dict[str, Any]) -> None:
    blob = pickle.dumps({"harmless": True})
    document["pickled"] = {
        "_thresholds": {
            "python_type": "numpy:ndarray",  # the author's claim, never shown as the type
            "sha256": hashlib.sha256(blob).hexdigest(),
            "data": base64.b64encode(blob).decode("ascii"),
        }
    }


def _set_state(name: str, value: Any) -> Any:
    def edit(document: dict[str, Any]) -> None:
        document["state"][name] = value

    return edit


def _set_engine(engine: str) -> Any:
    def edit(document: dict[str, Any]) -> None:
        document["engine"] = engine

    return edit


def _nan_threshold(document: dict[str, Any]) -> None:
    document["state"]["thresholds_"]["monetary"]["data"][0] = "nan"


def _repeat_feature_name(document: dict[str, Any]) -> None:
    node = document["state"]["feature_names_in_"]
    node["data"] = [node["data"][0]] * len(node["data"])


def _deep_model(folder: Path) -> object:
    path = folder / "deep.json"
    path.write_text('{"format": "segmentkit-model", "params": ' + "[" * 5000 + "]" * 5000 + "}")
    return sk.load(path)


def _cli_rules(name: str, text: str) -> Any:
    def run(folder: Path) -> None:
        orders = folder / "orders.csv"
        orders.write_text("id,date,total\na,2024-01-01,10\nb,2024-01-02,20\n", encoding="utf-8")
        rules = _rules_file(folder, name, text)
        run_cli(
            "-q", "segment", str(orders), "--map", "customer_id=id", "timestamp=date",
            "amount=total", "--engine", "rules", "--rules", str(rules),
        )  # fmt: skip

    return run


CASES = [
    # ---------------------------------------------------------------- rule files
    BadInput(
        "security-yaml-alias-bomb",
        _load_rules("bomb.yaml", _YAML_BOMB),
        RuleSyntaxError,
        ("bomb.yaml", "anchors and aliases", "100,000"),
    ),
    BadInput(
        "security-yaml-recursive-alias",
        _load_rules("loop.yaml", "a: &a [*a]\nrules: []\n"),
        RuleSyntaxError,
        ("loop.yaml", "refers to itself"),
    ),
    BadInput(
        "security-rules-file-too-large",
        _load_rules("big.json", '{"rules": [], "pad": "' + "x" * 1_000_001 + '"}'),
        RuleSyntaxError,
        ("big.json", "larger than 1,000,000 bytes"),
    ),
    BadInput(
        "security-rules-json-nested-deeply",
        _load_rules("deep.json", "[" * 100_000 + "]" * 100_000),
        RuleSyntaxError,
        ("deep.json", "nested more than 64 levels"),
    ),
    BadInput(
        "security-rules-toml-nested-deeply",
        _load_rules("deep.toml", "x = " + "[" * 100_000 + "]" * 100_000),
        RuleSyntaxError,
        ("deep.toml", "nested more than 64 levels"),
    ),
    BadInput(
        "security-rule-when-not-text",
        _load_rules("rules.json", '{"rules": [{"name": "VIP", "when": ["frequency > 1"]}]}'),
        RuleSyntaxError,
        ("rule 1 ('VIP')", "'when' must be text", "a list"),
    ),
    BadInput(
        "security-rule-name-not-text",
        _load_rules("rules.toml", '[[rules]]\nname = 7\nwhen = "frequency > 1"\n'),
        RuleSyntaxError,
        ("rule 1", "'name' must be text", "a number"),
    ),
    BadInput(
        "security-rules-default-not-text",
        _load_rules("rules.yaml", "default: [a, b]\nrules:\n- {name: VIP, when: frequency > 1}\n"),
        RuleSyntaxError,
        ("'default' must be non-empty text", "a list"),
    ),
    BadInput(
        "security-cli-yaml-alias-bomb",
        _cli_rules("bomb.yaml", _YAML_BOMB),
        CliFailure,
        ("bomb.yaml", "anchors and aliases"),
    ),
    # ---------------------------------------------------------------- rule expressions
    BadInput(
        "security-rule-1000-plus-terms",
        _fit_rule(" + ".join(["frequency"] * 1000) + " > 0"),
        RuleSyntaxError,
        ("Rule 'Deep'", "nested more than 50 levels deep", "split it into simpler rules"),
    ),
    BadInput(
        "security-rule-deep-parentheses",
        _fit_rule("(" * 5000 + "frequency > 0" + ")" * 5000),
        RuleSyntaxError,
        ("Rule 'Deep'", "nested more than 50 levels deep at position 50"),
    ),
    BadInput(
        "security-rule-too-long",
        _fit_rule(" or ".join(["frequency > 1"] * 10_000)),
        RuleSyntaxError,
        ("Rule 'Deep'", "characters long", "limited to 100,000"),
    ),
    # ---------------------------------------------------------------- model files
    BadInput(
        "security-model-pickle-for-an-engine-that-writes-none",
        _load_edited(_pickled_payload, trust=True),
        PersistenceError,
        ("'_thresholds'", "RFMSegmenter", "never writes any", "even with trust_pickle=True"),
    ),
    BadInput(
        "security-model-unknown-engine-is-quoted-as-a-claim",
        _load_edited(_set_engine("trusted_vendor.safe:VerifiedHarmlessModel")),
        PersistenceError,
        ("'trusted_vendor.safe:VerifiedHarmlessModel' (the file's claim)", "not part of"),
    ),
    BadInput(
        "security-model-state-shadows-a-method",
        _load_edited(_set_state("predict", 1)),
        PersistenceError,
        ("'predict' is not fitted state of RFMSegmenter", "save the model again"),
    ),
    BadInput(
        "security-model-unknown-private-state",
        _load_edited(_set_state("_hook", 1)),
        PersistenceError,
        ("RFMSegmenter has no fitted attribute '_hook'",),
    ),
    BadInput(
        "security-model-nan-threshold",
        _load_edited(_nan_threshold),
        PersistenceError,
        ("state['thresholds_']", "NaN"),
    ),
    BadInput(
        "security-model-repeated-feature-names",
        _load_edited(_repeat_feature_name),
        PersistenceError,
        ("state['feature_names_in_']", "repeats a feature name"),
    ),
    BadInput(
        "security-model-json-nested-deeply",
        _deep_model,
        PersistenceError,
        ("deep.json", "nested more than 100 levels deep"),
    ),
]
