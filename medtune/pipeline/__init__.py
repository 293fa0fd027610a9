"""``medtune.Pipeline``: components chained from YAML over the same documents (see ``pipeline``)."""

from medtune.pipeline.pipeline import Pipeline, PipelineConfig, is_pipeline_file

__all__ = ["Pipeline", "PipelineConfig", "is_pipeline_file"]
