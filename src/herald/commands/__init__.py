"""Slash commands that need no model: /help, /reset, /jobs, /cancel, /every, /status."""

from herald.commands.handler import COMMANDS, CommandContext, Commands, StatusInfo, parse_command

__all__ = ["COMMANDS", "CommandContext", "Commands", "StatusInfo", "parse_command"]
