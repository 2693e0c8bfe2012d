"""Neutral types every layer speaks: targets, inbound events, segments, the Platform protocol, Clock,
schedules and the job book (`jobs`), the conversation history (`history`)."""

from herald.core.clock import Clock, SystemClock, VirtualClock
from herald.core.errors import DeliveryError, ErrorKind
from herald.core.events import (
    Attachment,
    ContactRequest,
    InboundEvent,
    InboundMessage,
    Interaction,
    InteractionAnswer,
    MemberChange,
    MemberEvent,
    MessageRecalled,
    Reaction,
    RelationEvent,
    RelationKind,
    RequestKind,
)
from herald.core.platform import EventSink, Platform, SendRequest, Sent
from herald.core.segments import Button, ButtonKind, Keyboard, Markdown, Media, MediaKind, Segment, Text
from herald.core.target import Scene, Target

__all__ = [
    "Attachment",
    "Button",
    "ButtonKind",
    "Clock",
    "ContactRequest",
    "DeliveryError",
    "ErrorKind",
    "EventSink",
    "InboundEvent",
    "InboundMessage",
    "Interaction",
    "InteractionAnswer",
    "Keyboard",
    "Markdown",
    "Media",
    "MediaKind",
    "MemberChange",
    "MemberEvent",
    "MessageRecalled",
    "Platform",
    "Reaction",
    "RelationEvent",
    "RelationKind",
    "RequestKind",
    "Scene",
    "Segment",
    "SendRequest",
    "Sent",
    "SystemClock",
    "Target",
    "Text",
    "VirtualClock",
]
