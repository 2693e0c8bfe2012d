"""The language model: an OpenAI-compatible provider by config, or the embedded local model."""

from herald.llm.local import LocalModelError, LocalModelServer, find_local_gguf
from herald.llm.provider import MissingExtra, ModelHandle, open_model

__all__ = [
    "LocalModelError",
    "LocalModelServer",
    "MissingExtra",
    "ModelHandle",
    "find_local_gguf",
    "open_model",
]
