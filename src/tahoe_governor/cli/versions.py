"""The versions of this program and of the Tahoe-LAFS and Foolscap it runs with, as installed."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(package: str) -> str:
    """The installed version of ``package``, or ``"not installed"``."""
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def versions() -> str:
    """This program's version and those of the Tahoe-LAFS and Foolscap it runs with."""
    return (f"tahoe-governor {package_version('tahoe-governor')} "
            f"(Tahoe-LAFS {package_version('tahoe-lafs')}, "
            f"Foolscap {package_version('foolscap')})")
