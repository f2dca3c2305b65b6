"""The site config as the ticket stage's SiteTerms (tickets never import daemon), and
each site's escalation route for the notifiers."""

from __future__ import annotations

from daemon.config import Config
from exporters.notify.config import EscalationContact, SiteEscalation
from tickets.sla import SiteTerms


def site_terms(config: Config) -> dict[str, SiteTerms]:
    """One SiteTerms per configured site; a site without a contract gets the default
    deadlines and no preventive schedule."""
    systems: dict[str, set[str]] = {}
    for device in config.devices.values():
        systems.setdefault(device.config.site, set()).add(device.system.value)
    out: dict[str, SiteTerms] = {}
    for site_id, site in config.sites.items():
        contract = site.contract
        base = SiteTerms(site=site_id, name=site.name, language=site.language,
                         systems=tuple(sorted(systems.get(site_id, ()))),
                         escalation=tuple(c.name for c in site.escalation))
        if contract is None:
            out[site_id] = base
            continue
        out[site_id] = SiteTerms(
            site=site_id, name=site.name, language=site.language,
            response_hours=contract.response_hours,
            resolve_hours={str(k): v for k, v in contract.resolve_hours.items()},
            emergency_response_hours=contract.emergency_response_hours,
            preventive=contract.preventive, systems=base.systems,
            contract_start=contract.start, contract_months=contract.months,
            escalation=base.escalation)
    return out


def escalation_contacts(config: Config) -> dict[str, SiteEscalation]:
    """Sites that name receivers for their escalations, with the people to reach."""
    return {site_id: SiteEscalation(
                tuple(site.escalate_via),
                tuple(EscalationContact(c.name, c.phone, c.email) for c in site.escalation))
            for site_id, site in config.sites.items() if site.escalate_via}
