"""User-facing errors. The CLI turns any `UserError` into one line on stderr and exit code 2."""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: unknown names, wrong shapes, missing files, impossible budgets."""

    exit_code = 2


class DataError(UserError):
    """A dataset or table is missing or corrupt."""


class ConfigError(UserError):
    """An invalid option, value or combination of options."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; finished work was kept."""

    exit_code = 3


def choices_message(kind: str, name: str, choices: list[str]) -> str:
    return f"unknown {kind} '{name}'; choose from: {', '.join(sorted(choices))}"
