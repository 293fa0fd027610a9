"""Task families. Each maps documents to model inputs and model outputs back to documents."""

from __future__ import annotations

from medtune.errors import ConfigError
from medtune.tasks.assertion import AssertionTask
from medtune.tasks.base import Task
from medtune.tasks.classification import ClassificationTask
from medtune.tasks.ner import NerTask
from medtune.tasks.relation import RelationTask

TASKS: dict[str, type[Task]] = {
    NerTask.name: NerTask, ClassificationTask.name: ClassificationTask, RelationTask.name: RelationTask,
    AssertionTask.name: AssertionTask,
}


def task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task '{name}'", fix=f"use one of: {', '.join(TASKS)}") from None


__all__ = ["TASKS", "Task", "NerTask", "ClassificationTask", "RelationTask", "AssertionTask", "task_class"]
