"""The task registry: a task family is a :class:`~medtune.tasks.base.Task` subclass registered by name.

A new task is one new module whose class is decorated with ``@register_task`` (and imported once, e.g.
from ``medtune/tasks/__init__.py`` for the built-in ones, or by the user's own code before a config
names it). Nothing else lists the tasks: configs, model loading, export and ensembles ask the registry
and the task class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from medtune.errors import ConfigError

if TYPE_CHECKING:
    from medtune.tasks.base import Task

TASKS: dict[str, type["Task"]] = {}
T = TypeVar("T", bound=type)


def register_task(cls: T) -> T:
    """Register a Task subclass under its ``name`` (a class decorator)."""
    name = getattr(cls, "name", "")
    if not name:
        raise ConfigError(f"task class {cls.__name__} has no name", fix="set the class attribute name")
    if name in TASKS and TASKS[name] is not cls:
        raise ConfigError(f"a task named '{name}' is already registered ({TASKS[name].__name__})",
                          fix="choose another name for the new task")
    TASKS[name] = cls
    return cls


def task_class(name: str) -> type["Task"]:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}'", fix=f"use one of: {', '.join(TASKS)}") from None
