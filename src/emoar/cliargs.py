"""Command-line flags derived from the stages' option dataclasses, so the CLI, the Python API
and the server settings cannot drift apart.

Each field of an options dataclass becomes one flag: its name (``min_score`` -> ``--min-score``,
with a per-stage prefix where names would clash), its type (``int``, ``float``, ``str``,
``Literal`` -> choices, ``X | None``, ``bool`` -> ``--x/--no-x``), its default and its help text
(the field's entry in the class docstring's ``Attributes:`` section) all come from the
dataclass. :func:`options_from_args` builds the dataclass back from the parsed namespace, so
the dataclass's own validation applies to what users type.

>>> import argparse
>>> from emoar.track import TrackerOptions
>>> p = argparse.ArgumentParser()
>>> spec = OptionsSpec(TrackerOptions, prefix="track")
>>> spec.add_to(p)
>>> spec.build(p.parse_args(["--track-min-hits", "3"])).min_hits
3
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

__all__ = ["OptionsSpec", "comma_list", "field_docs"]


def comma_list(value: str) -> list[str]:
    """The items of a comma-separated flag (``--checkpoint a.pt,b.pt``), stripped, empty ones
    dropped.

    >>> comma_list(" a.pt, b.pt,,")
    ['a.pt', 'b.pt']
    """
    return [p.strip() for p in value.split(",") if p.strip()]


def field_docs(cls: type) -> dict[str, str]:
    """The ``Attributes:`` entries of a class docstring (Google style), one line each."""
    doc = inspect.getdoc(cls) or ""
    m = re.search(r"^Attributes:\s*$(.*?)(?:^\S|\Z)", doc, flags=re.M | re.S)
    if not m:
        return {}
    out: dict[str, str] = {}
    current: str | None = None
    for line in m.group(1).splitlines():
        entry = re.match(r"^ {4}(\w+)(?: \([^)]*\))?:\s*(.*)$", line)
        if entry:
            current = entry.group(1)
            out[current] = entry.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return {k: re.sub(r"(?::\w+:)?`+([^`]*)`+", r"\1", v) for k, v in out.items()}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


@dataclass
class OptionsSpec:
    """How one options dataclass appears on the command line.

    Attributes:
        cls: the frozen options dataclass.
        prefix: flag prefix for every field (``"track"`` -> ``--track-max-age``); "" for none.
        names: field -> flag name without dashes, overriding the derived one (``{"name":
            "detector"}``).
        aliases: field -> extra flag names (kept for compatibility).
        skip: fields not offered as flags (set elsewhere, e.g. a shared ``--threads``).
        bool_names: field -> the positive word of a boolean switch (``{"show_quote": "quote"}``
            gives ``--quote/--no-quote``).
        group: title of the help section; the class name when empty.
        special: field -> ``add_argument`` keyword overrides (e.g. ``nargs``/``const``).
    """

    cls: type
    prefix: str = ""
    names: Mapping[str, str] = field(default_factory=dict)
    aliases: Mapping[str, Sequence[str]] = field(default_factory=dict)
    skip: Sequence[str] = ()
    bool_names: Mapping[str, str] = field(default_factory=dict)
    group: str = ""
    special: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def _dest(self, name: str) -> str:
        return f"{self.cls.__name__}.{name}"

    def _flag(self, name: str) -> str:
        base = self.names.get(name) or (f"{self.prefix}-{name}" if self.prefix else name)
        return "--" + base.replace("_", "-")

    def fields(self) -> list[dataclasses.Field[Any]]:
        """The fields offered as flags."""
        return [f for f in dataclasses.fields(self.cls) if f.name not in self.skip]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add one flag per field (in a help section of its own). Flags left out on the command
        line stay unset (``None``), so the dataclass's own defaults apply."""
        hints = typing.get_type_hints(self.cls)
        docs = field_docs(self.cls)
        group = parser.add_argument_group(self.group or self.cls.__name__)
        for f in self.fields():
            tp, optional = _unwrap_optional(hints[f.name])
            default = f.default if f.default is not dataclasses.MISSING else None
            help_text = docs.get(f.name, "")
            kw: dict[str, Any] = {"dest": self._dest(f.name), "default": None}
            flags = [self._flag(f.name), *("--" + a.replace("_", "-") for a in self.aliases.get(f.name, ()))]
            if tp is bool:
                word = self.bool_names.get(f.name)
                if word is not None:
                    flags = ["--" + word.replace("_", "-"), *flags[1:]]
                kw["action"] = argparse.BooleanOptionalAction
                kw["help"] = f"{help_text} (default: {'on' if default else 'off'})"
            else:
                if get_origin(tp) is Literal:
                    kw["choices"] = [str(c) for c in get_args(tp)]
                    kw["type"] = str
                elif tp in (int, float, str):
                    kw["type"] = tp
                else:  # pragma: no cover - every option type in emoar is covered above
                    raise TypeError(f"{self.cls.__name__}.{f.name}: no command-line type for {tp!r}")
                shown = "unset" if optional and default is None else default
                kw["help"] = f"{help_text} (default: {shown})".replace("%", "%%")
                kw["metavar"] = "|".join(kw["choices"]) if "choices" in kw else f.name.upper()
            kw.update(self.special.get(f.name, {}))
            if kw.get("action") is not None:
                kw.pop("metavar", None)
            group.add_argument(*flags, **kw)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The fields the user set on the command line (name -> value)."""
        values = {}
        for f in self.fields():
            v = getattr(args, self._dest(f.name), None)
            if v is not None:
                values[f.name] = v
        return values

    def build(self, args: argparse.Namespace, **fixed: Any) -> Any:
        """The options dataclass from the parsed flags (plus ``fixed`` values), validated by
        the dataclass itself.

        Raises:
            ValueError: an invalid value (the dataclass's message).
        """
        return self.cls(**{**self.given(args), **fixed})
