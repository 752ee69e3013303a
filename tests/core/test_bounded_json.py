"""The nesting check: exact on real documents, refuses hostile ones before parsing, never a RecursionError."""

from __future__ import annotations

import json
import random

import pytest

from airflow_task_runs.core import bounded_json
from airflow_task_runs.core.bounded_json import MAX_JSON_DEPTH, JsonTooDeep, json_depth


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _random_document(rng: random.Random, depth: int = 0):
    kind = rng.random()
    if depth > 8 or kind < 0.3:
        return rng.choice(["[", "]", "{x}", 'q"uo"te', "back\\slash", "", "ü✓", 1, 2.5, None, True])
    if kind < 0.65:
        return [_random_document(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["[", "k", "}{", "a\\"]) + str(i): _random_document(rng, depth + 1) for i in range(4)}


@pytest.mark.parametrize("seed", range(200))
def test_depth_matches_the_parsed_document(seed):
    document = _random_document(random.Random(seed))
    for text in (json.dumps(document), json.dumps(document, ensure_ascii=False, indent=1)):
        assert json_depth(text.encode()) == _depth(document)


def test_brackets_inside_strings_do_not_count():
    assert json_depth(b'{"a": "[[[[{{{{", "b": ["]]]]"]}') == 2
    assert json_depth(b'{"a": "quote \\" then [[[["}') == 1


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 20_000, 1_000_000])
def test_hostile_depth_is_refused_before_parsing(depth):
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(JsonTooDeep, match=f"over the limit of {MAX_JSON_DEPTH}"):
        bounded_json.loads(body)


def test_the_limit_itself_parses():
    body = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert _depth(bounded_json.loads(body)) == MAX_JSON_DEPTH
