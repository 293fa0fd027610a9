"""Pipeline components: one module per kind, each a registered class with its own config.

Importing this package registers the built-in kinds: sentences, ner, classification, assertion,
linking, relation, deid, coding. ``handoff`` holds what components pass each other.
"""

from medtune.pipeline.components import (assertion, classification, coding, deid, linking, ner,  # noqa: F401
                                          relation, sentences)
from medtune.pipeline.components.base import (COMPONENTS, Component, ComponentConfig, ModelComponentConfig,
                                              register_component, resolve_path)

__all__ = ["COMPONENTS", "Component", "ComponentConfig", "ModelComponentConfig", "register_component",
           "resolve_path"]
