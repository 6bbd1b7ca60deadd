"""tahoe-governor: scheduled, bandwidth- and CPU-governed backups inside a Tahoe-LAFS node."""

__version__ = "0.1.0"
