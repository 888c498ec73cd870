"""Domain errors shared by every aggregate."""


class DomainError(Exception):
    """A command was refused by a rule of the domain. The message names the rule."""


class InvalidCommand(DomainError):
    """A command's arguments are invalid (the CLI maps this to exit code 2)."""


class RefusedBySafetyRule(DomainError):
    """A valid command that a safety rule forbids in the current state (exit code 3)."""
