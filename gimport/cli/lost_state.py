"""What `gimport status` says when the state file is missing: a first run to come, or a lost state.

The state file alone cannot tell: a missing file looks the same either way. Gmail can, when there is a
token to ask it with: the first run from a source leaves a hidden marker label there
(gimport.engine.lost_state), which outlives the state file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gimport.config.settings import Settings
from gimport.engine.lost_state import first_run, markers_of, source_identity
from gimport.errors import GimportError, StateError
from gimport.i18n import _

ASK_FOR = 30.0  # seconds status waits for Gmail at most: it is a quick look, not a run


def missing_state(settings: Settings) -> StateError:
    """The error `status` ends with when there is no state file at [state] path (exit 2)."""
    path = settings.state_path
    if not Path(settings.gmail.token_file).exists():
        return StateError(
            _("no state file at {path} and no Gmail token yet: nothing has been run yet with this config").format(
                path=path
            )
        )
    try:
        marker = _marker(settings)
    except GimportError as err:
        return StateError(
            _(
                "no state file at {path}: either nothing has been run yet with this config, or the state file"
                " was lost (Gmail could not be asked whether it holds the marker of an earlier run: {error})"
            ).format(path=path, error=err),
            hint=_("a lost state file must be put back; 'gimport run' checks Gmail's marker before importing"),
        )
    if marker is None:
        return StateError(
            _(
                "no state file at {path}: nothing has been run yet with this config (Gmail holds no marker of a"
                " run from this source)"
            ).format(path=path)
        )
    return StateError(
        _(
            "the state file {path} is missing, but Gmail holds the marker of a run from this source (first run"
            " {when}): the state file was lost or replaced"
        ).format(path=path, when=first_run(marker)),
        hint=_(
            "put the old state file back if you have it; until then 'gimport run' refuses to import, unless"
            " 'gimport run --new-state' (messages already in Gmail will then appear twice)"
        ),
    )


def marker_note(settings: Settings) -> str | None:
    """For a state file with no record of this source: a line when Gmail holds the marker of an earlier
    run from it (the state file was replaced), else None (also when Gmail cannot be asked)."""
    if not Path(settings.gmail.token_file).exists():
        return None
    try:
        marker = _marker(settings)
    except GimportError:
        return None
    if marker is None:
        return None
    return _(
        "But Gmail holds the marker of a run from this source (first run {when}): this state file is not the"
        " one that run used. Put the old one back if you have it; 'gimport run' refuses to import until then,"
        " unless 'gimport run --new-state' (messages already in Gmail will then appear twice)."
    ).format(when=first_run(marker))


def _marker(settings: Settings) -> str | None:
    """The oldest marker label of this source in Gmail, or None. Raises GimportError."""
    from gimport import wiring

    gmail = dataclasses.replace(settings.gmail, give_up_after=min(ASK_FOR, settings.gmail.give_up_after))
    account = wiring.account(dataclasses.replace(settings, gmail=gmail))
    markers = markers_of(account.gmail.list_labels(), source_identity(settings.source))
    return markers[0] if markers else None
