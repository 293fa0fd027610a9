"""Task families. Each maps documents to model inputs and model outputs back to documents.

Importing this package registers the built-in tasks (see ``registry``).
"""

from __future__ import annotations

from medtune.tasks.assertion import AssertionTask
from medtune.tasks.base import Predictions, Task
from medtune.tasks.classification import ClassificationTask
from medtune.tasks.coding import CodingTask
from medtune.tasks.ner import NerTask
from medtune.tasks.options import TaskOptions
from medtune.tasks.qa import QaTask
from medtune.tasks.registry import TASKS, register_task, task_class
from medtune.tasks.relation import RelationTask

__all__ = ["TASKS", "Task", "TaskOptions", "Predictions", "NerTask", "ClassificationTask", "RelationTask",
           "AssertionTask", "QaTask", "CodingTask", "register_task", "task_class"]
