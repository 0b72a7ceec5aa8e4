"""Signals labeling sends to other apps, so that labeling never imports them."""

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

# Sent after the commit of a new judgment (never for a replayed submit), with keyword arguments
# `judgment_id` and `project_id`, and `project` when the sender read it with the judgment (a submit
# does, under the task's lock; receivers read what they need of it there rather than ask again).
# Receivers queue follow-up work (e.g. the active selection engine).
judgment_recorded = Signal()

# Sent after an import's transaction commits, with project_id and import_run_id.
items_imported = Signal()

# Sent after a lead's settings change commits (budget, strategy, band, ...), with project_id.
# Receivers re-plan work the new settings allow (e.g. pages a raised budget can now pay for).
project_settings_changed = Signal()

# Sent by the floors above (they import labeling, so labeling names what they announce; receivers
# such as webhooks hear of them without importing their senders), after the commit:
# a reranker version became the active one, with project_id and version_id;
version_activated = Signal()
# an anchor search finished and stored its implied pairs and grades, with project_id and search_id.
search_finished = Signal()


def announce(signal: Signal, **kwargs) -> None:
    """Send `signal` after a commit, robustly: what was committed stays committed whatever a
    receiver does, and a receiver that fails (say, the broker is down) is logged rather than turned
    into an error for the user; the recovery sweep redoes its work later."""
    for receiver, result in signal.send_robust(sender=None, **kwargs):
        if isinstance(result, Exception):
            log.error("receiver %r failed for %s", receiver, kwargs, exc_info=result)
