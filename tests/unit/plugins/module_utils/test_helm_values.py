# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helm-style merge (helm pkg/cli/values mergeMaps)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._helm_values import (
    MergeError,
    helm_merge,
    touched_paths,
)


@pytest.mark.parametrize("base,override,expected", [
    ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),                      # lists replace
    ({"a": {"x": 1}}, {"a": None}, {"a": None}),                  # null kept for Helm to drop
    ({"a": {"x": 1}}, {"a": "scalar"}, {"a": "scalar"}),          # non-map replaces a map
    ({"a": "scalar"}, {"a": {"x": 1}}, {"a": {"x": 1}}),          # map replaces a non-map
    ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"d": None, "e": 3}}},
     {"a": {"b": {"c": 1, "d": None, "e": 3}}}),
    ({}, {}, {}),
])
def test_merge(base, override, expected):
    assert helm_merge(base, override) == expected


def test_several_overrides_apply_left_to_right():
    assert helm_merge({"a": 1}, {"a": 2, "b": 1}, {"a": 3}) == {"a": 3, "b": 1}


def test_inputs_are_not_changed_and_not_shared():
    base = {"a": {"list": [1]}, "b": {"c": 1}}
    override = {"a": {"new": {"deep": [2]}}}
    snapshot = (copy.deepcopy(base), copy.deepcopy(override))
    merged = helm_merge(base, override)
    merged["a"]["list"].append(9)
    merged["a"]["new"]["deep"].append(9)
    merged["b"]["c"] = 5
    assert (base, override) == snapshot


def test_non_dict_input_is_named():
    with pytest.raises(MergeError) as err:
        helm_merge({"a": 1}, ["x"], names=["values", "values_overrides"])
    assert err.value.field == "values_overrides"
    assert "values_overrides must be a dictionary" in str(err.value)


def test_touched_paths():
    assert sorted(touched_paths({"a": {"b": 1}, "c": None})) == [("a",), ("a", "b"), ("c",)]
