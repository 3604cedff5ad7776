# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Helm-style merge of values dictionaries.

Helm merges several user values files (`-f a.yaml -f b.yaml`) with `mergeMaps` (helm
pkg/cli/values): when both sides hold a map under a key, the maps are merged recursively;
anything else (a list, a scalar, or null) on the right replaces the left. Lists are never
concatenated. A null is kept as it is: Helm later removes that key, chart default included.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError, type_name


class MergeError(InputError):
    """A merge input that is not a dictionary; `field` names it."""


def _merge_maps(left, right):
    out = dict(left)
    for key, value in right.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _plain(value):
    """Mappings to plain dicts (deep), so results never share structure with the inputs."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def helm_merge(base, *overrides, names=None):
    """Merge `overrides` into `base`, left to right, the way Helm merges values files.

    `names` gives each input's name for error messages (base first).
    Returns a new dict; the inputs are never changed.
    """
    inputs = (base,) + overrides
    names = list(names or [])
    names += [f"input {i}" for i in range(len(names), len(inputs))]
    for index, value in enumerate(inputs):
        name = names[index]
        if not isinstance(value, Mapping):
            raise MergeError(name, f"{name} must be a dictionary of Helm values; got"
                                   f" {type_name(value)}")
    result = _plain(base)
    for value in overrides:
        result = _merge_maps(result, _plain(value))
    return result


def touched_paths(overrides, prefix=()):
    """Every key path that `overrides` sets (leaves and maps), as tuples."""
    paths = []
    for key, value in overrides.items():
        path = prefix + (key,)
        paths.append(path)
        if isinstance(value, Mapping):
            paths.extend(touched_paths(value, path))
    return paths


def dig(values, *keys):
    """values[k1][k2]...; None where a key is missing or a level is not a dictionary."""
    for key in keys:
        if not isinstance(values, Mapping):
            return None
        values = values.get(key)
    return values
