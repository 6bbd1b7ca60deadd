"""What the pages show of a maintenance task: its pass's progress, its last findings, and
(on the private page only) the names of the files it found unrecoverable.

:func:`maintenance_rows` reads public fields only (counts, phases, times);
:func:`unrecoverable_list` reads the private ``private_unrecoverable`` and is
used by the private page alone.
"""

from __future__ import annotations

from typing import Any

from twisted.web.template import Tag, tags

from tahoe_governor.status import CHECK_RESULTS, JobStatus, MaintenancePass
from tahoe_governor.web.human_units import format_bytes, format_seconds, format_speed


def findings(counts: dict[str, int]) -> str:
    """``"5 healthy, 1 repaired, 0 unrecoverable"``: every outcome that occurred, and
    the unrecoverable count always (the one the owner must see)."""
    shown = [f"{counts.get(r, 0)} {r}" for r in CHECK_RESULTS
             if counts.get(r, 0) or r == "unrecoverable"]
    return ", ".join(shown)


def pass_fraction(progress: MaintenancePass) -> float | None:
    """How much of the pass is done (objects checked of those expected), if known."""
    if progress.expected_objects:
        return min(1.0, progress.objects_checked / progress.expected_objects)
    return None


def maintenance_rows(job: JobStatus) -> list[tuple[str, Any]]:
    """The kind's own rows of a task's card (the common ones follow them)."""
    run = job.progress
    last = job.last_pass
    rows: list[tuple[str, Any]] = []
    if isinstance(run, MaintenancePass):
        expected = "" if run.expected_objects is None else f" of about {run.expected_objects}"
        rows += [
            ("Pass", f"pass {run.pass_number}: {run.objects_checked}{expected} objects "
                     f"checked ({run.checked_this_run} in this run); {run.directories_listed} "
                     f"directories listed, {run.directories_pending} to list"),
            ("Findings", findings(run.results)),
            ("Verified", f"{run.verified} objects, {format_bytes(run.bytes_verified)}"),
            ("ETA", format_seconds(run.eta_seconds)),
            ("Run phase", run.phase),
        ]
    else:
        rows.append(("Checks", findings(dict(job.files_total)) + " since the node started"))
    if last is not None:
        rows.append(("Last pass", f"pass {last.pass_number}: {last.objects_checked} objects, "
                                  f"{findings(last.results)}; {last.verified} verified"))
    rows.append(("Cap", f"{format_speed(job.limit_bytes_per_second)} "
                        "(verify and repair traffic)"))
    return rows


def unrecoverable_list(job: JobStatus) -> Tag | None:
    """Private: the paths of what the task's pass found unrecoverable, or ``None``."""
    names: tuple[str, ...] = ()
    for source in (job.progress, job.last_pass):
        if isinstance(source, MaintenancePass) and source.private_unrecoverable:
            names = source.private_unrecoverable
            break
    if not names:
        return None
    return tags.div(
        tags.p(f"{len(names)} unrecoverable (fewer than k shares on the grid; restore "
               "them from another copy):", class_="warning"),
        tags.ul(*(tags.li(tags.code(name)) for name in names)),
        class_="unrecoverable",
    )
