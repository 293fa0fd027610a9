"""The ``model:`` section of a run config: one strict options class per task, defaults in one place.

Every task module defines its own subclass of :class:`TaskOptions` (``NerOptions``, ...) and names it
as the task's ``options_class``; ``RunConfig`` validates the ``model:`` section with the class of the
config's ``task``. Options shared by every task (labels, window length, dropout, head) live here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Unknown keys fail; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskOptions(StrictModel):
    head: str = "linear"
    labels: list[str] | None = Field(None, description="label set; None = from the training data")
    max_length: int = Field(256, ge=8, le=8192, description="tokens per window, special tokens included")
    stride: int = Field(64, ge=0, description="tokens of overlap between consecutive windows")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _stride_fits(self) -> "TaskOptions":
        if self.stride >= self.max_length - 2:
            raise ValueError(f"model.stride ({self.stride}) must be smaller than model.max_length - 2 "
                             f"({self.max_length - 2})")
        return self


def drop_foreign_defaults(raw: dict[str, Any], own: type[TaskOptions], others: list[type[TaskOptions]]) -> dict[str, Any]:
    """``raw`` without keys that belong to another task's options and hold that task's default.

    medtune 0.1 wrote one flat ``model:`` section with every task's options into each run's
    ``medtune_config.yaml``; those files still load. A key of another task set to anything but its
    default is kept, so that it fails as an unknown key.
    """
    out = dict(raw)
    for key, value in raw.items():
        if key in own.model_fields:
            continue
        for other in others:
            field = other.model_fields.get(key)
            if field is not None and value == field.get_default(call_default_factory=True):
                out.pop(key)
                break
    return out
