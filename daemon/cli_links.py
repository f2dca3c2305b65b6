"""``elvwatch link``: a signed read link for an engineer's phone (daemon/read_links.py).

Prints the URL on stdout (nothing else there, so ``elvwatch link … | qrencode`` or a
paste into WeChat takes it as is) and, on stderr, until when it works.  No QR code is
drawn: no QR library is a dependency, and one is not worth adding for this.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from daemon.config import Config, ConfigInvalid, load_config

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def add_link_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``link`` command to the main parser's subparsers."""
    from daemon.read_links import DEFAULT_HOURS, MAX_HOURS

    link = sub.add_parser("link", help="a signed link that opens a site's pages (read "
                                       "only) on a phone")
    link.add_argument("-c", "--config", type=Path, required=True)
    scope = link.add_mutually_exclusive_group(required=True)
    scope.add_argument("--site", help="open this site's pages: the site, its devices, "
                                      "tickets, pre-visit brief and reports")
    scope.add_argument("--all", action="store_true", help="open every site's pages")
    link.add_argument("--hours", type=float, default=DEFAULT_HOURS,
                      help=f"valid this long ({DEFAULT_HOURS:g}; at most {MAX_HOURS:g})")
    link.add_argument("--url", "--base", dest="base", metavar="BASE",
                      help="URL the phone reaches the daemon at "
                           "(default: http://<http.listen>)")
    link.set_defaults(func=cmd_link)


def signing_token(config: Config, what: str) -> str | None:
    """The bearer token ``what`` (read links, sign-off links) are signed with, or None
    after saying why there is none."""
    from daemon import links

    token = links.read_token(config.model.http.token_file)
    if token is None:
        print(f"elvwatch: {what} are signed with the bearer token: set a readable, "
              "non-empty http.token_file", file=sys.stderr)
    return token


def signed(sign: Callable[[], str]) -> str | None:
    """``sign()``, or None after printing why the lifetime asked for is refused."""
    try:
        return sign()
    except ValueError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return None


def link_base(args: argparse.Namespace, config: Config) -> str:
    """Where the link points: ``--url``/``--base``, else the daemon's own listen address."""
    return str(args.base or f"http://{config.model.http.listen}").rstrip("/")


def cmd_link(args: argparse.Namespace) -> int:
    from daemon import read_links

    try:
        config = load_config(args.config, secrets=False)  # a link signs, it probes nothing
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL
    site: str | None = None if args.all else args.site
    if site is not None and site not in config.sites:
        print(f"elvwatch: no site {site!r} in {args.config} "
              f"(sites: {', '.join(sorted(config.sites)) or 'none'})", file=sys.stderr)
        return EXIT_USAGE
    token = signing_token(config, "read links")
    if token is None:
        return EXIT_FAIL
    grant = signed(lambda: read_links.sign(token, site, args.hours))
    if grant is None:
        return EXIT_USAGE
    base = link_base(args, config)
    path = "/" if site is None else f"/sites/{quote(site, safe=':')}"
    print(f"{base}{path}?grant={quote(grant, safe='*.:')}")
    expires = read_links.verify(token, grant).expires
    what = "every site" if site is None else f"site {site} ({config.sites[site].name})"
    print(f"read link for {what}, valid until "
          f"{datetime.fromtimestamp(expires).astimezone().isoformat(timespec='minutes')}; "
          "rotating http.token_file revokes every link", file=sys.stderr)
    if args.base is None and _unreachable(config):
        print(f"note: http.listen is {config.model.http.listen}, which a phone cannot "
              "reach; give --url with the address it can", file=sys.stderr)
    return EXIT_OK


def _unreachable(config: Config) -> bool:
    host = config.model.http.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in ("", "localhost")
    return address.is_loopback or address.is_unspecified
