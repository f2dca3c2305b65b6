"""``elvwatch link``: a signed read link for an engineer's phone (web/read_links.py), or
an engineer's personal link, its revocation and the list (web/engineer_links.py).

Prints the URL on stdout (nothing else there, so ``elvwatch link … | qrencode`` or a
paste into WeChat takes it as is) and, on stderr, until when it works.  No QR code is
drawn: no QR library is a dependency, and one is not worth adding for this.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from elvwatch.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from elvwatch.config.resolved import Config


def add_link_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``link`` command to the main parser's subparsers."""
    from elvwatch.web import engineer_links
    from elvwatch.web.read_links import DEFAULT_HOURS, MAX_HOURS

    link = sub.add_parser("link", help="a signed link that opens a site's pages on a phone "
                                       "(read only), or an engineer's personal link")
    link.add_argument("-c", "--config", type=Path, required=True)
    scope = link.add_mutually_exclusive_group(required=True)
    scope.add_argument("--site", help="open this site's pages: the site, its devices, "
                                      "tickets, pre-visit brief and reports")
    scope.add_argument("--all", action="store_true", help="open every site's pages")
    scope.add_argument("--engineer", metavar="ID",
                       help="a personal link for this engineer of the config's engineers: "
                            "their sites' pages and forms, every action recorded as theirs")
    scope.add_argument("--revoke", metavar="LINK", help="revoke one engineer's link")
    scope.add_argument("--revoke-engineer", metavar="ID",
                       help="revoke every link of this engineer")
    scope.add_argument("--list", action="store_true", dest="list_links",
                       help="list the engineers' links")
    link.add_argument("--hours", type=float,
                      help=f"valid this long (read links {DEFAULT_HOURS:g}, engineers' "
                           f"{engineer_links.DEFAULT_HOURS:g}; at most {MAX_HOURS:g})")
    link.add_argument("--url", "--base", dest="base", metavar="BASE",
                      help="URL the phone reaches the daemon at "
                           "(default: http://<http.listen>)")
    link.set_defaults(func=cmd_link)


def signing_token(config: Config, what: str) -> str | None:
    """The bearer token ``what`` (read links, sign-off links) are signed with, or None
    after saying why there is none."""
    from elvwatch.web import links

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
    from elvwatch.config.loading import ConfigInvalid, load_config
    from elvwatch.web import read_links

    try:
        config = load_config(args.config, secrets=False)  # a link signs, it probes nothing
    except ConfigInvalid as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL
    if args.engineer or args.revoke or args.revoke_engineer or args.list_links:
        return _engineer_links(args, config)
    args.hours = read_links.DEFAULT_HOURS if args.hours is None else args.hours
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


def _engineer_links(args: argparse.Namespace, config: Config) -> int:
    """Issue, revoke or list engineers' personal links (they live in the store)."""
    import asyncio

    from elvwatch.tickets.store import Store, StoreError
    from elvwatch.web import engineer_links

    known = {e.id: e for e in config.model.engineers}
    for wanted in (args.engineer, args.revoke_engineer):
        if wanted is not None and wanted not in known:
            print(f"elvwatch: no engineer {wanted!r} in {args.config} "
                  f"(engineers: {', '.join(sorted(known)) or 'none'})", file=sys.stderr)
            return EXIT_USAGE
    token = signing_token(config, "engineers' links") if args.engineer else None
    if args.engineer and token is None:
        return EXIT_FAIL
    now = time.time()

    async def run() -> int:
        async with await Store.open(config.storage_url) as store:
            if args.engineer:
                assert token is not None
                hours = engineer_links.DEFAULT_HOURS if args.hours is None else args.hours
                grant, record = await engineer_links.issue(store, token, args.engineer, hours,
                                                           now)
                engineer = known[args.engineer]
                path = "/" if len(engineer.sites) != 1 else \
                    f"/sites/{quote(engineer.sites[0], safe=':')}"
                print(f"{link_base(args, config)}{path}?grant={quote(grant, safe='~')}")
                print(f"link {record.link} for {engineer.name} ({engineer.id}), valid until "
                      f"{_local(record.expires_at)}; revoke it with "
                      f"elvwatch link --revoke {record.link}", file=sys.stderr)
                if args.base is None and _unreachable(config):
                    print(f"note: http.listen is {config.model.http.listen}, which a phone "
                          "cannot reach; give --url with the address it can", file=sys.stderr)
                return EXIT_OK
            if args.list_links:
                for r in await engineer_links.links(store):
                    status = ("revoked " + _local(r.revoked_at) if r.revoked_at is not None
                              else "expired" if r.expires_at <= now else "live")
                    print(f"{r.link}  {r.engineer}  until {_local(r.expires_at)}  {status}")
                return EXIT_OK
            revoked = await engineer_links.revoke(store, now, link=args.revoke,
                                                  engineer=args.revoke_engineer)
            for r in revoked:
                print(f"revoked {r.link} ({r.engineer})", file=sys.stderr)
            if args.revoke and not revoked:
                print(f"elvwatch: no live link {args.revoke!r}", file=sys.stderr)
                return EXIT_USAGE
            return EXIT_OK

    try:
        return asyncio.run(run())
    except ValueError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"elvwatch: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _local(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="minutes")


def _unreachable(config: Config) -> bool:
    host = config.model.http.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in ("", "localhost")
    return address.is_loopback or address.is_unspecified
