"""Federated fine-tuning with Flower: each site trains on its own documents, only weights travel.

``federate(config, sites, output, rounds=..., local_epochs=..., strategy="fedavg"|"fedprox",
mode="simulation"|"deployment")`` (``medtune federate``) writes an ordinary model directory. The modules:
``sites`` (``--sites SPEC``: corpora, IID or Dirichlet shards, metadata fields), ``local`` (a site's round:
medtune's TrainingRun, FedProx's proximal term, DP-SGD per site), ``server`` (the global model and the model
directory), ``flower`` (the ClientApp and ServerApp; imports flwr), ``deployment`` (SuperLink and SuperNodes
on loopback), ``api`` (``federate``). Flower is the ``federated`` extra; see docs/federated.md.
"""

from __future__ import annotations

from medtune.federated.api import FederatedResult, federate
from medtune.federated.sites import Site, load_sites, parse_spec

__all__ = ["FederatedResult", "Site", "federate", "load_sites", "parse_spec"]
