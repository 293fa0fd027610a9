"""``medtune batch``: a pipeline or a model over a large input, shard by shard, resumable, locally or on Ray.

``run_batch`` is in :mod:`medtune.batch.runner`, the CLI command in :mod:`medtune.batch.command`; shards
(:mod:`~medtune.batch.shards`), the output folder (:mod:`~medtune.batch.store`) and the engines
(:mod:`~medtune.batch.engine`, :mod:`~medtune.batch.ray_engine`). This package imports nothing itself,
so that the CLI stays quick to start.
"""
