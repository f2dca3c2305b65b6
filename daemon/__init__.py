"""The composition root: config, inventory, scheduler, app wiring, CLI, HTTP."""
