"""`gimport auth`: the OAuth grant itself (consent, --status, --revoke, --exact-verify). Registered by
gimport.cli.main."""

from __future__ import annotations

import argparse
from typing import TextIO

from gimport.cli.options import CommandTable
from gimport.config.load import load_settings
from gimport.errors import EXIT_AUTH, EXIT_GMAIL, EXIT_INTERRUPTED, EXIT_OK, EXIT_SOURCE, EXIT_USAGE, ConfigError
from gimport.i18n import _


def cmd_auth(args: argparse.Namespace) -> int:
    from gimport.backends.google import oauth, tokens  # the command is about the OAuth grant itself

    if args.source:
        return _auth_source(args)
    # without a config file, auth works with the defaults: ./credentials.json -> ./token.json
    settings = load_settings(args.config, need_source=False, missing_ok=not args.config_given)
    if args.revoke:
        tokens.revoke(settings.gmail.token_file)
        return EXIT_OK
    if args.status:
        tokens.token_status(settings.gmail)
        return EXIT_OK
    mode = "paste" if args.paste else "no-browser" if args.no_browser else "auto"
    oauth.authorize(
        settings.gmail,
        mode=mode,
        port=args.port,
        timeout=args.timeout,
        exact_verify=args.exact_verify,
        label_copies=args.label_copies,
        paragraph=_fit,
    )
    return EXIT_OK


def _auth_source(args: argparse.Namespace) -> int:
    """`gimport auth --source`: the old server's token ([source] token_file)."""
    import sys

    from gimport.backends.imap.signin import sign_in

    if args.revoke or args.status or args.exact_verify or args.label_copies:
        raise ConfigError(_("--source goes with --no-browser, --paste, --port and --timeout only"))
    settings = load_settings(args.config)
    mode = "paste" if args.paste else "no-browser" if args.no_browser else "auto"
    sign_in(settings, mode=mode, port=args.port, timeout=args.timeout, out=sys.stdout, paragraph=_fit)
    return EXIT_OK


def _fit(text: str, out: TextIO, indent: str) -> str:
    """A paragraph of the consent flow's guidance, wrapped to the terminal's width (unchanged when `out` is not
    a terminal); continuation lines get `indent`. The flows live in a backend, which leaves this to us."""
    from gimport.render.text import terminal_width, wrap

    return wrap(text, terminal_width(out), indent=indent)


def register(commands: CommandTable) -> None:
    """Register `gimport auth`."""
    auth_p = commands.add(
        "auth",
        cmd_auth,
        _("authorize gimport to import into your Gmail (once; the token is saved to [gmail] token_file)"),
        _(
            "gimport auth                  # on a desktop: opens the browser\n"
            "  gimport auth --no-browser     # over SSH: prints the URL and the ssh -N -L line to forward the port\n"
            "  gimport auth --paste          # no port forwarding: paste the final http://localhost... address back\n"
            "  gimport auth --status         # which account, which scopes, does the token still refresh\n"
            "  gimport auth --revoke         # withdraw gimport's access and delete the token file\n"
            "  gimport auth --exact-verify   # also the read-only metadata scope, for 'gimport verify --exact'\n"
            "  gimport auth --label-copies   # also gmail.modify: a copy filed later adds its label, not a message\n"
            "  gimport auth --source         # the old server's OAuth token ([source] provider = microsoft/google)\n"
            "  (the Google Cloud project and the Desktop OAuth client: gimport help auth)"
        ),
        (EXIT_OK, EXIT_USAGE, EXIT_AUTH, EXIT_SOURCE, EXIT_GMAIL, EXIT_INTERRUPTED),
    )
    auth_how = auth_p.add_mutually_exclusive_group()
    auth_how.add_argument(
        "--no-browser",
        action="store_true",
        help=_("do not open a browser: print the URL and wait on localhost (the default without a display/over SSH)"),
    )
    auth_how.add_argument(
        "--paste",
        action="store_true",
        help=_("print the URL, then read the final http://localhost... address pasted back"),
    )
    auth_how.add_argument("--revoke", action="store_true", help=_("revoke the saved token and delete the token file"))
    auth_how.add_argument(
        "--status",
        action="store_true",
        help=_("show the token's account and scopes and whether it still refreshes; changes nothing else"),
    )
    auth_p.add_argument(
        "--port",
        type=int,
        default=None,
        help=_("localhost port for Google's answer (default: 8765 when free, else any free port; 0 = any)"),
    )
    auth_p.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help=_("how long to wait for the answer (default 300)"),
    )
    auth_p.add_argument(
        "--source",
        action="store_true",
        help=_(
            "sign in to the old mail server instead ([source] provider): Microsoft 365 with a device code (any"
            " device, also over SSH), Google as above; saved to [source] token_file"
        ),
    )
    auth_p.add_argument(
        "--exact-verify",
        action="store_true",
        help=_(
            "also grant the read-only gmail.metadata scope (message and label ids, never contents), for"
            " 'gimport verify --exact'"
        ),
    )
    auth_p.add_argument(
        "--label-copies",
        action="store_true",
        help=_(
            "also grant gmail.modify (a broad scope: it could read mail too), so that a copy of an imported message"
            " that turns up in another folder at a later run adds its folder's label to that message instead of"
            " being imported again"
        ),
    )
