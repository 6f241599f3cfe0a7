"""A pit on GNU Mailman 3: provisioning through the REST API, and checking it.

A pit's list must carry signed mail untouched and post nothing the notary
has not stamped.  ``provision_pit`` creates the list (and its domain), sets
every setting that matters for that (``PIT_LIST_SETTINGS``, explained
there), subscribes the archive address, the specialists and the traders,
then reads everything back (``check_pit``) and raises if Mailman holds
anything else.  Several pits on one Mailman are separate lists with
separate rosters.

Only stdlib ``urllib``: the ``pit`` command uses this module on machines
that do not run Mailman themselves.

The posting path (the notary as the delivery program for the pit's
address, injecting pre-approved messages into Mailman's LMTP runner) is in
pit/mailhost.py (``NotaryLMTPServer``); docs/mailman.md explains both.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any, Iterable

__all__ = [
    "MailmanError", "MailmanClient", "PitList", "PIT_LIST_SETTINGS", "APPROVAL_HEADER", "approval_pattern",
    "PIT_TEMPLATES", "EMPTY_TEMPLATE_URI", "provision_pit", "check_pit",
    "add_member", "remove_member", "list_members", "list_id_for", "address_problem",
    "filter_list_address",
]

# The header the notary's posts carry; Mailman's cleanse handler removes it
# (with Approve, X-Approved, X-Approve) before anything is delivered.
APPROVAL_HEADER = "approved"
_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")

# Mailman fetches a template URI when it decorates a message; an empty file
# is how a list says "no header, no footer" (an empty REST value would
# delete the list's template and fall back to Mailman's default footer).
EMPTY_TEMPLATE_URI = "file:///dev/null"

# Decorations Mailman would add to the message text: all empty for a pit.
PIT_TEMPLATES = {
    "list:member:regular:header": EMPTY_TEMPLATE_URI,
    "list:member:regular:footer": EMPTY_TEMPLATE_URI,
    "list:member:digest:header": EMPTY_TEMPLATE_URI,
    "list:member:digest:footer": EMPTY_TEMPLATE_URI,
}

# Every list setting pit depends on, with the reason.  check_pit compares
# each of them with what Mailman reports.
PIT_LIST_SETTINGS: dict[str, Any] = {
    # Signatures survive: Mailman must not touch the text, the MIME tree or
    # the From/Reply-To of a post.
    "subject_prefix": "",
    "filter_content": False,
    "convert_html_to_plaintext": False,
    "collapse_alternatives": False,
    "anonymous_list": False,
    "dmarc_mitigate_action": "no_mitigation",
    "dmarc_mitigate_unconditionally": False,
    "reply_goes_to_list": "no_munging",
    "first_strip_reply_to": False,
    "personalize": "none",
    "digests_enabled": False,          # a digest re-wraps messages
    # RFC 2369 List-* headers would not break a body signature, but the
    # archive copy stays closer to what the notary stamped without them.
    "include_rfc2369_headers": False,
    "allow_list_posts": True,
    # Nothing a pit says is too big or has too many recipients.
    "max_message_size": 0,
    "max_num_recipients": 0,
    "require_explicit_destination": False,
    "administrivia": False,
    "emergency": False,
    # Only notarized mail is posted: the notary's posts carry an Approved
    # header with the pit's secret, which the list's one header match
    # accepts before the moderation rules run; anything else is refused,
    # and its sender is told.
    "default_member_action": "reject",
    "default_nonmember_action": "reject",
    # Nobody is mailed about pit traffic but the members.
    "respond_to_post_requests": False,
    "admin_immed_notify": False,
    "admin_notify_mchanges": False,
    "send_welcome_message": False,
    "send_goodbye_message": False,
    "autorespond_owner": "none",
    "autorespond_postings": "none",
    "autorespond_requests": "none",
    "bounce_notify_owner_on_disable": False,
    "bounce_notify_owner_on_removal": False,
    # Membership is the pit's business (signed Member messages): nobody
    # subscribes themselves, the roster is private.  The pit's own archive
    # is the record: Mailman archives nothing, so a post is not even queued
    # for its archive runner (docs/mailman.md).
    "subscription_policy": "moderate",
    "archive_policy": "never",
    "advertised": False,
    "member_roster_visibility": "moderators",
    "gateway_to_news": False,
    "posting_pipeline": "default-posting-pipeline",
    # Bounces: a trader whose mailbox keeps refusing the pit's mail is
    # disabled after 5 bounce days (warned 3 times a week apart), a bounce
    # is forgotten after a week without another.  The pit's own addresses
    # (archive, filters) are routed by the MTA (pit mailman postfix-config)
    # and never bounce.  Nobody is told but the member; a bounce Mailman
    # cannot attribute is dropped (the notary's address reads no mail).
    "process_bounces": True,
    "bounce_score_threshold": 5,
    "bounce_info_stale_after": "7d",
    "bounce_you_are_disabled_warnings": 3,
    "bounce_you_are_disabled_warnings_interval": "7d",
    "bounce_notify_owner_on_bounce_increment": False,
    "forward_unrecognized_bounces_to": "discard",
}


class MailmanError(RuntimeError):
    """A REST call that failed, or a list that is not set up the pit way."""


class MailmanClient:
    """Minimal client for Mailman 3's REST API (version 3.1).

    ``base_url`` is e.g. ``http://127.0.0.1:8001/3.1``.  Every call raises
    MailmanError naming the method, the path, the status and Mailman's
    description when the call fails.
    """

    def __init__(self, base_url: str, user: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        token = b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
        self._authorization = "Basic " + token

    def call(self, method: str, path: str, data: dict | None = None,
             query: dict | None = None) -> tuple[int, Any]:
        """One request; returns ``(status, decoded JSON or None)``."""
        url = self.base_url + "/" + path.lstrip("/")
        if query:
            url += "?" + urllib.parse.urlencode(query)
        body = None
        request = urllib.request.Request(url, method=method)
        request.add_header("Authorization", self._authorization)
        if data is not None:
            body = json.dumps(data).encode("utf-8")
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, body, timeout=self.timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw.strip() else None)
        except urllib.error.HTTPError as error:
            raw = error.read().decode("utf-8", "replace")
            try:
                detail = json.loads(raw).get("description", raw)
            except (ValueError, AttributeError):
                detail = raw
            raise MailmanError(f"Mailman REST {method} {path}: {error.code} {detail}".rstrip()) from None
        except (urllib.error.URLError, OSError) as error:
            raise MailmanError(f"Mailman REST {method} {path}: cannot reach {self.base_url} ({error})") from None
        except ValueError as error:
            raise MailmanError(f"Mailman REST {method} {path}: answer is not JSON ({error})") from None

    def get(self, path: str, query: dict | None = None) -> Any:
        return self.call("GET", path, query=query)[1]

    def exists(self, path: str) -> bool:
        """True if GET ``path`` answers 200, False on 404."""
        try:
            self.call("GET", path)
        except MailmanError as error:
            if ": 404" in str(error):
                return False
            raise
        return True

    def post(self, path: str, data: dict) -> Any:
        return self.call("POST", path, data)[1]

    def patch(self, path: str, data: dict) -> Any:
        return self.call("PATCH", path, data)[1]

    def delete(self, path: str, query: dict | None = None) -> Any:
        return self.call("DELETE", path, query=query)[1]


@dataclass(frozen=True)
class PitList:
    """What provision_pit made: the list's address and id, the notary's approval secret."""
    address: str
    list_id: str
    notary_address: str
    archive_address: str
    approval_secret: str = field(repr=False)


def list_id_for(pit_name: str, domain: str) -> str:
    """Mailman's list id of the pit's list: ``<pit>.<domain>``."""
    return f"{pit_name}.{domain}".lower()


# Mailman 3.3's address validator (mailman.email.validate.Validator),
# applied before anything is changed: the REST API refuses an address it
# does not like with '400 Invalid Parameter "subscriber"', naming nobody,
# and by then the list exists half set up.
_LOCAL_PART = re.compile(r"""^[-0-9a-z!#$%&'*+./=?@_`{}~]+$""", re.IGNORECASE)
_DOMAIN_LABEL = re.compile(r"^[a-z0-9][-a-z0-9]*$", re.IGNORECASE)


def address_problem(address: str) -> str:
    """Why Mailman would refuse ``address`` as a list member or list address ('' if it would not)."""
    if address.count("@") != 1:
        return "is not an email address (one '@')"
    local, domain = address.split("@")
    if not _LOCAL_PART.match(re.sub(r'^"(.*)"$', r"\1", local)):
        return "has characters Mailman refuses before the '@'"
    labels = domain.split(".")
    if len(labels) < 2:
        return f"has a domain without a dot ({domain or 'none'}): Mailman refuses unqualified addresses"
    if not all(_DOMAIN_LABEL.match(label) for label in labels):
        return f"has a domain Mailman refuses ({domain}: letters, digits and '-' between dots)"
    return ""


def _check_names(pit_name: str, domain: str, *addresses: str, roles: dict | None = None) -> None:
    """Raise MailmanError naming every name and address Mailman would refuse."""
    problems = []
    if not pit_name or any(c in pit_name for c in "@/ \t\n") or pit_name != pit_name.strip():
        problems.append(f"pit name {pit_name!r} cannot be a list name (no '@', '/' or spaces)")
    elif address_problem(f"{pit_name}@{domain}"):
        problems.append(f"domain {domain!r} is not a mail domain: the list address "
                        f"{pit_name}@{domain} {address_problem(f'{pit_name}@{domain}')}")
    for address in dict.fromkeys(addresses):
        problem = address_problem(address)
        if problem:
            role = (roles or {}).get(address, "address")
            problems.append(f"{role} {address!r} {problem}")
    if problems:
        raise MailmanError("nothing changed: " + "; ".join(problems))


def add_member(client: MailmanClient, list_id: str, address: str,
               display_name: str = "", role: str = "member") -> None:
    """Subscribe ``address`` (pre-verified, pre-confirmed, pre-approved, no welcome)."""
    client.post("members", {
        "list_id": list_id, "subscriber": address, "display_name": display_name,
        "role": role, "pre_verified": True, "pre_confirmed": True,
        "pre_approved": True, "send_welcome_message": False,
        "delivery_mode": "regular",
    })


def remove_member(client: MailmanClient, list_id: str, address: str) -> None:
    """Unsubscribe ``address`` at once (no confirmation, no goodbye)."""
    path = f"lists/{list_id}/member/{urllib.parse.quote(address, safe='@')}"
    client.delete(path, query={"pre_approved": "true", "pre_confirmed": "true"})


def list_members(client: MailmanClient, list_id: str, role: str = "member") -> list[str]:
    """Addresses on the list's roster for ``role``, lower case, sorted.  O(members)."""
    answer = client.get(f"lists/{list_id}/roster/{role}") or {}
    return sorted(entry["email"].lower() for entry in answer.get("entries", []))


def _ensure_domain(client: MailmanClient, domain: str) -> None:
    if not client.exists(f"domains/{domain}"):
        client.post("domains", {"mail_host": domain})


def approval_pattern(secret: str) -> str:
    """The header-match pattern that accepts exactly ``Approved: <secret>``."""
    return "^" + re.escape(secret) + "$"


def provision_pit(client: MailmanClient, pit_name: str, domain: str,
                  notary_address: str, archive_address: str,
                  specialists: Iterable[str] = (), members: Iterable[str] = (),
                  approval_secret: str | None = None) -> PitList:
    """Create (or bring back in line) the list of a pit and check it.

    Creates the domain if needed and the list ``<pit_name>@<domain>``,
    applies PIT_LIST_SETTINGS and PIT_TEMPLATES, installs the one header
    match that accepts the notary's posts (``Approved: <approval_secret>``;
    a fresh random secret unless given, so re-provisioning without it
    rotates the secret), makes the notary the list's moderator, and
    subscribes the archive address, the specialists and the traders
    (``members``).  Addresses already subscribed are left alone; nobody is
    unsubscribed.  Ends with check_pit.  Cost: O(members) REST calls.
    """
    specialists, members = list(specialists), list(members)
    roles = {notary_address: "notary address", archive_address: "archive address",
             **{a: "filter address" for a in specialists}, **{a: "member" for a in members}}
    _check_names(pit_name, domain, notary_address, archive_address, *specialists, *members,
                 roles=roles)
    address = f"{pit_name}@{domain}".lower()
    list_id = list_id_for(pit_name, domain)
    if notary_address.lower() == address:
        raise MailmanError(f"the notary address must differ from the pit's address {address}")
    secret = approval_secret or secrets.token_hex(24)
    if not _SECRET.match(secret):
        raise MailmanError("the approval secret must be 16 to 128 letters, digits, '-' or '_'")
    client.get("system/versions")          # reachable, credentials good: before any change
    _ensure_domain(client, domain)
    if not client.exists(f"lists/{list_id}"):
        client.post("lists", {"fqdn_listname": address})
    client.patch(f"lists/{list_id}/config", dict(PIT_LIST_SETTINGS))
    client.patch(f"lists/{list_id}/uris", dict(PIT_TEMPLATES))
    # Mailman creates a list's archiver rows on first use; two runners using
    # a new list at once can both create them, and every later post to the
    # list then fails ("Multiple rows were found").  Creating them here,
    # through the one REST process, avoids that race; and the pit keeps its
    # own archive, so Mailman's archivers are all off.
    archivers = client.get(f"lists/{list_id}/archivers") or {}
    names = {name: False for name in archivers if not name.startswith(("self_link", "http_etag"))}
    if names:
        client.patch(f"lists/{list_id}/archivers", names)
    # Exactly one header match on a pit's list: ours.
    client.delete(f"lists/{list_id}/header-matches")
    client.post(f"lists/{list_id}/header-matches", {
        "header": APPROVAL_HEADER, "pattern": approval_pattern(secret),
        "action": "accept", "tag": "pit-notary"})
    if notary_address.lower() not in list_members(client, list_id, "moderator"):
        add_member(client, list_id, notary_address, "notary", role="moderator")
    present = set(list_members(client, list_id))
    wanted = [archive_address, *specialists, *members]
    for subscriber in dict.fromkeys(a.lower() for a in wanted):
        if subscriber not in present:
            add_member(client, list_id, subscriber)
    pit = PitList(address, list_id, notary_address.lower(), archive_address.lower(), secret)
    check_pit(client, pit, wanted)
    return pit


def check_pit(client: MailmanClient, pit: PitList, expected_members: Iterable[str] = ()) -> None:
    """Raise MailmanError listing every way the list differs from a pit's list.

    Reads back every PIT_LIST_SETTINGS value, the decoration templates, the
    header matches (exactly the notary's approval), that no moderator
    password is set, the notary as moderator, and that each of
    ``expected_members`` is a member receiving regular mail.
    """
    problems = []
    config = client.get(f"lists/{pit.list_id}/config")
    for name, wanted in PIT_LIST_SETTINGS.items():
        have = config.get(name, "<missing>")
        if have != wanted:
            problems.append(f"{name} is {have!r}, pit needs {wanted!r}")
    if config.get("moderator_password"):
        # Mailman would verify it (an expensive crypt) on every post that
        # carries an Approved header, before the header match runs.
        problems.append("moderator_password is set: pit approves by header match, unset it")
    if config.get("posting_address", "").lower() != pit.address:
        problems.append(f"posting_address is {config.get('posting_address')!r}, not {pit.address}")
    answer = client.get(f"lists/{pit.list_id}/uris") or {}
    uris = {entry["name"]: entry["uri"] for entry in answer.get("entries", [])}
    for name, wanted in PIT_TEMPLATES.items():
        if uris.get(name) != wanted:
            problems.append(f"template {name} is {uris.get(name)!r}, pit needs {wanted!r}")
    matches = [(m.get("header", "").lower(), m.get("pattern"), m.get("action"))
               for m in (client.get(f"lists/{pit.list_id}/header-matches") or {}).get("entries", [])]
    wanted_match = (APPROVAL_HEADER, approval_pattern(pit.approval_secret), "accept")
    if matches != [wanted_match]:
        shown = [(h, "<secret>" if p == wanted_match[1] else p, a) for h, p, a in matches]
        problems.append(f"header matches are {shown}, pit needs only the notary's approval")
    archivers = client.get(f"lists/{pit.list_id}/archivers") or {}
    for name, enabled in sorted(archivers.items()):
        if name not in ("self_link", "http_etag") and enabled:
            problems.append(f"Mailman archiver {name} is on: the pit keeps its own archive")
    if pit.notary_address not in list_members(client, pit.list_id, "moderator"):
        problems.append(f"the notary {pit.notary_address} is not a moderator")
    roster = client.get(f"lists/{pit.list_id}/roster/member") or {}
    by_address = {e["email"].lower(): e for e in roster.get("entries", [])}
    for address in dict.fromkeys(a.lower() for a in expected_members):
        entry = by_address.get(address)
        if entry is None:
            problems.append(f"{address} is not a member")
        elif entry.get("delivery_mode", "regular") != "regular":
            problems.append(f"{address} gets {entry['delivery_mode']}, pit needs regular delivery")
    if problems:
        raise MailmanError(f"list {pit.address} is not set up as a pit:\n  " + "\n  ".join(problems))


# -- a local pit directory on Mailman (the notary's host) ---------------------------

def member_addresses(pit_dir) -> list[str]:
    """The email addresses of the pit's members: the user ids of the keys the
    archive made members (Member records), lower case, sorted.  Keys without
    an email user id are skipped (they cannot receive mail).  One gpg run
    plus O(archive) for the member records."""
    from email.utils import parseaddr

    from moderator.notary import Notary
    notary = Notary(pit_dir)
    members = {fpr for fpr, accounts in notary.members.items()
               if "operator" not in accounts and not any(a.partition(":")[0] in
                                                          ("specialist", "transfers", "positions")
                                                          for a in accounts)}
    found = set()
    store = notary.keyring.store        # gpg's listing of each key, kept by the notary
    for fpr in sorted(members):
        key = store.key(fpr)
        if key is not None and not key.revoked:
            for uid in store.uids(fpr):
                address = parseaddr(uid)[1]
                if address.count("@") == 1:
                    found.add(address.lower())
                    break
    return sorted(found)


def filter_list_address(pit_name: str, filter_name: str, domain: str) -> str:
    """The list address of a pit's filter: ``<pit>-<filter slug>@<domain>``
    (``demo-specialist-acme@pits.example``).  The pit's name is part of it:
    several pits share a domain, and each filter address must route to its
    own pit's filter."""
    from pit import ops
    return f"{pit_name}-{ops.slug(filter_name)}@{domain}".lower()


def filter_jobs(pit_dir) -> list[list[str]]:
    """The filters a pit runs: transfers and its specialists (pit.ops.specialist_jobs)."""
    from pit import ops
    from pit.pitdir import Pit
    return [["transfers"]] + ops.specialist_jobs(Pit(pit_dir))


def provision_local_pit(client: MailmanClient, pit_dir, domain: str) -> PitList:
    """Put the local pit at ``pit_dir`` on Mailman as ``<name>@<domain>``.

    Sets the pit's domain, makes the filters' keys (transfers and one
    specialist per instrument; a notarized request each, so run this while
    the notary's server is stopped), provisions the list with the archive
    address ``<name>-archive@<domain>``, the filters' addresses and the
    members' addresses (from their keys), and stores the list address and
    the approval secret (kept across runs) in pit.conf (mode 0600: it holds
    the secret).  Returns the PitList.
    """
    import os

    from pit import ops
    from pit.pitdir import Pit
    pit = Pit(pit_dir)
    # Every address first, from what the pit holds now: nothing is changed
    # (domain, filter keys, list) if Mailman would refuse any of them.
    members = member_addresses(pit.root)
    filters = [filter_list_address(pit.name, ops.filter_class(job[0])(job[1:]).name, domain)
               for job in filter_jobs(pit.root)]
    notary = f"{pit.name}-notary@{domain}"
    archive = f"{pit.name}-archive@{domain}"
    roles = {notary: "notary address", archive: "archive address",
             **{a: "filter address" for a in filters}, **{a: "member" for a in members}}
    _check_names(pit.name, domain, notary, archive, *filters, *members, roles=roles)
    client.get("system/versions")
    if pit.domain != domain:
        pit.set(domain=domain)
    specialists = []
    for job in filter_jobs(pit.root):
        name = ops.filter_class(job[0])(job[1:]).name
        ops.filter_key(pit, name)
        specialists.append(filter_list_address(pit.name, name, domain))
    pit = Pit(pit.root)
    listed = provision_pit(client, pit.name, domain, pit.notary_address,
                           f"{pit.name}-archive@{domain}", specialists=specialists,
                           members=members,
                           approval_secret=pit.get("mailman_secret") or None)
    pit.set(mailman_list=listed.address, mailman_secret=listed.approval_secret,
            mailman_archive=listed.archive_address)
    os.chmod(pit.conf_path, 0o600)
    return listed
