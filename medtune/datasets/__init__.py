"""Named public corpora: a registry, loaders to :class:`~medtune.document.Document`, downloads.

>>> from medtune import datasets
>>> [s.name for s in datasets.list_datasets()]          # doctest: +SKIP
>>> docs = datasets.load("ncbi-disease", "dev")          # doctest: +SKIP
>>> datasets.info("hoc")["splits"]["test"]               # doctest: +SKIP

Corpora are read from ``<data dir>/<folder>/`` as their source repositories hold them; the data dir is
the ``data_dir`` argument, else ``$MEDTUNE_DATA_DIR``, else ``~/.cache/medtune/data``. Missing files are
downloaded from their official source at a fixed commit (or ``$MEDTUNE_DATA_MIRROR``) and verified by
size and SHA-256. Splits we make ourselves are deterministic functions of SHA-256 hashes (see
:mod:`medtune.datasets.splits` and each spec's ``split_note``).
"""

from medtune.datasets.api import clear_cache, download, info, load
from medtune.datasets.download import (
    DEFAULT_DATA_DIR,
    ENV_DATA_DIR,
    ENV_MIRROR,
    ChecksumMismatchError,
    data_dir,
    default_data_dir,
)
from medtune.datasets.registry import (
    HOC_HALLMARKS,
    DataFile,
    DatasetSpec,
    dataset_names,
    get_spec,
    list_datasets,
)

__all__ = [
    "ChecksumMismatchError",
    "DEFAULT_DATA_DIR",
    "DataFile",
    "DatasetSpec",
    "ENV_DATA_DIR",
    "ENV_MIRROR",
    "HOC_HALLMARKS",
    "clear_cache",
    "data_dir",
    "dataset_names",
    "default_data_dir",
    "download",
    "get_spec",
    "info",
    "list_datasets",
    "load",
]
