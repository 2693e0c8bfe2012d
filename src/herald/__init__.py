"""Herald: an LLM agent on the QQ Official Bot platform that delivers every message it means to send."""

__version__ = "0.1.0"
