"""The demo behind ``tahoe-governor demo``: a throwaway grid, a sample tree, a governed backup.

``local_grid`` runs an introducer and storage servers on loopback (the
end-to-end tests use it too), ``sample_tree`` writes a deterministic tree to
back up, ``run_report`` turns status snapshots into the live view and the
summary, and ``scenario`` runs the whole demo and cleans up after it.
"""
