"""Application services, process managers, the gate, configuration, wiring and the CLI."""
