"""Parsing the SDK's flattened RPC parameters (`Container.1.EnvironmentVar.2.Key=...`) back into a tree.

Lists are `Name.N...` with N from 1; sub-objects are `Parent.Field` (eci-openapi.md §2.2). Every accessor
raises `ApiError` naming the wire key, so a client bug surfaces as a clear InvalidParameter/MissingParameter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from fakes.eci.errors import ApiError, invalid, missing

# Common parameters of the RPC style and of signing: never part of an action's own parameters.
COMMON = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "Timestamp",
        "SignatureNonce",
        "SignatureMethod",
        "SignatureVersion",
        "Signature",
        "AccessKeyId",
        "SecurityToken",
        "OwnerId",
        "OwnerAccount",
        "ResourceOwnerId",
        "ResourceOwnerAccount",
    }
)


def parse_query(query: str) -> list[tuple[str, str]]:
    """Decode a query string (`+` and `%XX`) keeping blanks and order."""
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise ApiError("InvalidParameter", "The query string is not valid UTF-8.") from None


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn `A.1.B=x` pairs into `{"A": [{"B": "x"}]}`; common/signing parameters are dropped."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        if key in COMMON:
            continue
        parts = key.split(".")
        if any(p == "" for p in parts):
            raise invalid(key, "the parameter name has an empty segment")
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                if part in node:
                    raise invalid(key, "the parameter is given more than once or also as a parent of other keys")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise invalid(key, f'"{".".join(parts[: i + 1])}" is given both as a value and as a parent')
                node = child
    return _listify(root, "")


def _listify(node: dict[str, Any], path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in node.items():
        here = f"{path}{k}"
        if isinstance(v, dict):
            if v and all(s.isdigit() for s in v):
                idx = sorted(v, key=int)
                if idx[0] == "0" or any(str(int(s)) != s for s in idx):
                    raise invalid(f"{here}.{idx[0]}", "list indexes start at 1")
                items = []
                for s in idx:
                    item = v[s]
                    items.append(_listify(item, f"{here}.{s}.") if isinstance(item, dict) else item)
                out[k] = items
            else:
                out[k] = _listify(v, f"{here}.")
        else:
            out[k] = v
    return out


class Params:
    """Typed access to one (sub-)tree of request parameters, with errors that name the wire key."""

    def __init__(self, tree: dict[str, Any], prefix: str = "") -> None:
        self.tree = tree
        self.prefix = prefix

    def name(self, key: str) -> str:
        """The full wire name of `key`, for error messages."""
        return f"{self.prefix}{key}"

    def has(self, key: str) -> bool:
        """Whether `key` was sent."""
        return key in self.tree

    def text(self, key: str, *, required: bool = False, default: str | None = None, max_len: int | None = None) -> Any:
        """A string parameter (empty string counts as absent for `required`)."""
        v = self.tree.get(key)
        if v is None or v == "":
            if required:
                raise missing(self.name(key))
            return default if v is None else v
        if not isinstance(v, str):
            raise invalid(self.name(key), "expected a single value, got a list or object")
        if max_len is not None and len(v) > max_len:
            raise invalid(self.name(key), f"at most {max_len} characters are allowed, got {len(v)}")
        return v

    def choice(self, key: str, allowed: Sequence[str], *, default: str | None = None, required: bool = False) -> Any:
        """A string that must be one of `allowed` (case-sensitive like the service)."""
        v = self.text(key, required=required)
        if v is None or v == "":
            return default
        if v not in allowed:
            raise invalid(self.name(key), f'"{v}" is not one of {", ".join(allowed)}')
        return v

    def integer(self, key: str, *, default: int | None = None, lo: int | None = None, hi: int | None = None) -> Any:
        """An integer parameter within [lo, hi]."""
        v = self.text(key)
        if v is None or v == "":
            return default
        try:
            n = int(v)
        except ValueError:
            raise invalid(self.name(key), f'"{v}" is not an integer') from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise invalid(self.name(key), f"{n} is out of range [{lo if lo is not None else ''}, {hi or ''}]")
        return n

    def number(self, key: str, *, default: float | None = None) -> Any:
        """A non-negative finite number."""
        v = self.text(key)
        if v is None or v == "":
            return default
        try:
            f = float(v)
        except ValueError:
            raise invalid(self.name(key), f'"{v}" is not a number') from None
        if not math.isfinite(f) or f < 0:
            raise invalid(self.name(key), f'"{v}" must be a non-negative number')
        return f

    def flag(self, key: str, *, default: bool | None = None) -> Any:
        """`true`/`false` in any case (the Python SDK sends `True`/`False`)."""
        v = self.text(key)
        if v is None or v == "":
            return default
        low = v.lower()
        if low not in ("true", "false"):
            raise invalid(self.name(key), f'"{v}" is not true or false')
        return low == "true"

    def json_list(self, key: str, *, max_items: int, required: bool = False) -> list[str] | None:
        """A JSON-array-of-strings parameter such as ContainerGroupIds or Command."""
        v = self.tree.get(key)
        if isinstance(v, list):
            raise invalid(self.name(key), 'must be a JSON array string such as ["a","b"], not a list of parameters')
        s = self.text(key, required=required)
        if s is None or s == "":
            return None
        try:
            items = json.loads(s)
        except ValueError:
            raise invalid(self.name(key), f'must be a JSON array string such as ["a","b"], got {s[:80]!r}') from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise invalid(self.name(key), "must be a JSON array of strings")
        if len(items) > max_items:
            raise invalid(self.name(key), f"at most {max_items} items are allowed, got {len(items)}")
        return items

    def items(self, key: str, *, max_items: int | None = None) -> list[Any]:
        """A `Key.N` list (of scalars or of sub-trees)."""
        v = self.tree.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise invalid(self.name(key), f"must be sent as {self.name(key)}.1, {self.name(key)}.2, ...")
        if max_items is not None and len(v) > max_items:
            raise invalid(self.name(key), f"at most {max_items} items are allowed, got {len(v)}")
        return v

    def objects(self, key: str, *, max_items: int | None = None) -> list[Params]:
        """A `Key.N.Field` list of sub-objects."""
        out = []
        for i, item in enumerate(self.items(key, max_items=max_items), start=1):
            if not isinstance(item, dict):
                raise invalid(f"{self.name(key)}.{i}", "expected sub-fields, got a value")
            out.append(Params(item, f"{self.name(key)}.{i}."))
        return out

    def strings(self, key: str, *, max_items: int | None = None) -> list[str]:
        """A `Key.N=value` list of strings."""
        out = []
        for i, item in enumerate(self.items(key, max_items=max_items), start=1):
            if not isinstance(item, str):
                raise invalid(f"{self.name(key)}.{i}", "expected a value, got sub-fields")
            out.append(item)
        return out

    def obj(self, key: str) -> Params | None:
        """A `Key.Field` sub-object, or None when absent."""
        v = self.tree.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise invalid(self.name(key), "expected sub-fields")
        return Params(v, f"{self.name(key)}.")
