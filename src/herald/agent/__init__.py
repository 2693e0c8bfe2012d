"""The agent: durable turns on pydantic-ai models, with tools that send and schedule."""

from herald.agent.health import ModelHealth
from herald.agent.runner import AgentRunner
from herald.agent.settings import AgentSettings, SettingError
from herald.agent.tools import FUTURE_TASK, SEND_MESSAGE, TOOL_DEFINITIONS, Sender, Toolbox, ToolContext
from herald.agent.turns import Turn, TurnStore

__all__ = [
    "FUTURE_TASK",
    "SEND_MESSAGE",
    "TOOL_DEFINITIONS",
    "AgentRunner",
    "AgentSettings",
    "ModelHealth",
    "Sender",
    "SettingError",
    "ToolContext",
    "Toolbox",
    "Turn",
    "TurnStore",
]
