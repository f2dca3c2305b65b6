"""The configuration: the file's models and JSON Schema (schema), loading with
file:line errors (loading), resolution into runnable devices (resolution, resolved),
the checks ``run`` would otherwise meet only at start (checks), includes, the
equipment archive as spreadsheets (inventory) and the sites' terms for the stages
(terms).  Imports the stages (probes, rules, tickets, exporters), nothing above."""
