"""Signals labeling sends to other apps, so that labeling never imports them."""

from django.dispatch import Signal

# Sent after the commit of a new judgment (never for a replayed submit), with keyword arguments
# `judgment_id` and `project_id`. Receivers queue follow-up work (e.g. the active selection engine).
judgment_recorded = Signal()

# Sent after an import's transaction commits, with project_id.
items_imported = Signal()

# Sent after a lead's settings change commits (budget, strategy, band, ...), with project_id.
# Receivers re-plan work the new settings allow (e.g. pages a raised budget can now pay for).
project_settings_changed = Signal()
