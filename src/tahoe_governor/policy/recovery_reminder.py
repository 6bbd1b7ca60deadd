"""Whether to remind the owner to print the recovery sheet, in words fit for private pages only.

The recovery sheet (``tahoe-governor recovery-sheet NODEDIR``) holds what a
new machine needs to find the backups again: without it, the disk being
backed up is the only place the targets' capabilities live. Until it has
been printed, and again when a job was added after it was printed, the
private page and ``tahoe-governor status`` say so. The words hold no
capability and no path, but they are kept off the public page, the logs and
``/metrics`` all the same: they tell a stranger that this node's backups
cannot be found without its disk.
"""

from __future__ import annotations

from collections.abc import Iterable

from tahoe_governor.policy.state_db import RecoverySheetPrinted

PRINT_IT = ("run 'tahoe-governor recovery-sheet NODEDIR' and keep the sheet away from this "
            "machine: without it, a lost disk loses the way to the backups too")


def recovery_sheet_reminder(printed: RecoverySheetPrinted | None,
                            jobs: Iterable[str]) -> str | None:
    """The reminder to show, or ``None`` when the sheet printed last covers every job."""
    names = list(jobs)
    if not names:
        return None
    if printed is None:
        return f"The recovery sheet has never been printed: {PRINT_IT}."
    missing = [name for name in names if name not in printed.jobs]
    if missing:
        listed = ", ".join(missing)
        return (f"The recovery sheet was printed before job{'s' if len(missing) > 1 else ''} "
                f"{listed} existed: print it again ({PRINT_IT}).")
    return None
