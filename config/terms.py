"""The site config as the ticket stage's SiteTerms (tickets never import daemon), and
each site's escalation route for the notifiers."""

from __future__ import annotations

from elvwatch.config.resolved import Config
from elvwatch.config.schema import ChecklistItemConfig
from elvwatch.exporters.notify.config import EscalationContact, SiteEscalation
from elvwatch.exporters.reports.render import SiteInfo
from elvwatch.tickets.preventive import ChecklistItem, Checklists, builtin_checklists
from elvwatch.tickets.sla import SiteTerms


def checklists(config: Config) -> Checklists:
    """The built-in checklists with the config's replacements laid over."""
    spec = config.model.checklists

    def items(raw: list[ChecklistItemConfig]) -> tuple[ChecklistItem, ...]:
        return tuple(ChecklistItem(i.id, i.zh, i.en) for i in raw)

    return builtin_checklists().replaced(
        {str(system): items(raw) for system, raw in spec.systems.items()},
        {kind: items(raw) for kind, raw in spec.kinds.items()})


def checklist_words(config: Config) -> dict[str, tuple[str, str]]:
    """Checklist item id → (zh, en) of the config's own items (documents name them)."""
    spec = config.model.checklists
    return {i.id: (i.zh, i.en) for raw in (*spec.systems.values(), *spec.kinds.values())
            for i in raw}


def site_terms(config: Config) -> dict[str, SiteTerms]:
    """One SiteTerms per configured site; a site without a contract gets the default
    deadlines and no preventive schedule.  Each system's work orders list the system's
    checklist and those of the device kinds the site has in it."""
    systems: dict[str, set[str]] = {}
    kinds: dict[tuple[str, str], set[str]] = {}
    for device in config.devices.values():
        systems.setdefault(device.config.site, set()).add(device.system.value)
        kinds.setdefault((device.config.site, device.system.value), set()).add(
            device.config.kind)
    lists = checklists(config)
    out: dict[str, SiteTerms] = {}
    for site_id, site in config.sites.items():
        contract = site.contract
        composed = {system: tuple((i.id, i.zh, i.en) for i in lists.for_system(
                        system, kinds.get((site_id, system), ())))
                    for system in systems.get(site_id, ())}
        base = SiteTerms(site=site_id, name=site.name, language=site.language,
                         systems=tuple(sorted(systems.get(site_id, ()))),
                         escalation=tuple(c.name for c in site.escalation),
                         checklists=composed)
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
            escalation=base.escalation, checklists=base.checklists)
    return out


def site_info(config: Config, site_id: str, language: str | None = None) -> SiteInfo:
    """What the reports print about a site (KeyError: no such site)."""
    site = config.sites[site_id]
    return SiteInfo(site_id, site.name, language or site.language,
                    site_terms(config)[site_id].timezone, site.address,
                    checklist_words(config))


def escalation_contacts(config: Config) -> dict[str, SiteEscalation]:
    """Sites that name receivers for their escalations, with the people to reach."""
    return {site_id: SiteEscalation(
                tuple(site.escalate_via),
                tuple(EscalationContact(c.name, c.phone, c.email) for c in site.escalation))
            for site_id, site in config.sites.items() if site.escalate_via}
