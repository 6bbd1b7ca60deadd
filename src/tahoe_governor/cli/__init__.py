"""The ``tahoe-governor`` command."""
