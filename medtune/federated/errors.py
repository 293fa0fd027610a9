"""The federated run's errors: its own code (E800) and the missing extra (E500, naming both installs)."""

from __future__ import annotations

import os

from medtune.errors import MedtuneError, MissingExtraError

EXTRA = "federated"
INSTALL = ("pip install 'medtune[federated]' -c constraints.txt in an environment of its own (`make federated` "
           "builds .venv-federated): Flower pins typer, rich and FastAPI below the versions of medtune's main "
           "environment, and Ray below medtune[ray]'s; see docs/federated.md")


class FederationError(MedtuneError):
    """A federated run did not finish: a site failed a round, a SuperLink or SuperNode process exited or
    did not start, or the run went past its time limit."""

    code = "E800"


class FederatedExtraMissing(MissingExtraError):
    """``medtune federate`` without Flower installed."""

    def __init__(self) -> None:
        MedtuneError.__init__(self, "medtune federate needs Flower (flwr), the optional dependencies of "
                              f"medtune[{EXTRA}], which are not installed.", fix=INSTALL)


def require_flwr() -> None:
    try:
        import flwr  # noqa: F401
        from flwr.serverapp.strategy import FedProx  # noqa: F401  (the Message API, Flower >= 1.21)
    except ImportError:
        raise FederatedExtraMissing() from None


def debug_requested() -> bool:
    return os.environ.get("MEDTUNE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
