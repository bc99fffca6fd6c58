"""The one wording of a bad setting, shared by the library and the experiment app."""

from __future__ import annotations

from typing import Any


class FieldError(ValueError):
    """A setting that is not allowed: "name=value is not allowed; name must be <allowed>."."""

    def __init__(self, name: str, value: Any, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name}={value!r} is not allowed; {name} must be {allowed}.")
