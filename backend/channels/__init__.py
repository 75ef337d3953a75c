"""Channels: how a dunning step reaches a debtor (email, SMS, letter, phone task).

The dunning engine builds one `Message` per contact and hands it to a channel. Every channel
answers with a `SendResult` instead of raising when the contact is refused, because the
engine must record the outcome (and retry a retryable one from its job queue with backoff)
whatever happened: a refused message is data, not an exception. Only programming errors and
broken templates raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

import msgspec

from backend.channels.message import Message, MessageError

SendStatus = Literal["sent", "retryable", "permanent"]


class SendResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt to send came to.

    `sent` carries the provider's id (the SMTP Message-ID, the gateway's message id) so a
    complaint can be traced; `retryable` means the same message may go out later (server
    down, timeout, 5xx); `permanent` means sending it again will not help (bad address,
    4xx, an invalid message) and the contact does not count as sent.
    """

    status: SendStatus
    channel: str
    provider_id: str | None = None
    reason: str | None = None

    @property
    def sent(self) -> bool:
        return self.status == "sent"


def sent(channel: str, provider_id: str | None) -> SendResult:
    return SendResult(status="sent", channel=channel, provider_id=provider_id)


def retryable(channel: str, reason: str) -> SendResult:
    return SendResult(status="retryable", channel=channel, reason=reason[:500])


def permanent(channel: str, reason: str) -> SendResult:
    return SendResult(status="permanent", channel=channel, reason=reason[:500])


class Channel(Protocol):
    """What the engine calls for a contact that goes out now (email, SMS).

    `reference` is the engine's id for the step (recorded before sending, DESIGN.md): it
    travels with the message (a header, the gateway's idempotency key) so a retried send can
    be matched to its step. Letters (`letters.render_letter`, bytes the engine stores) and
    calls (`phone.call_task`, a task staff work) are produced, not sent, so they are not
    channels of this shape.
    """

    name: str

    async def send(
        self,
        message: Message,
        *,
        overrides: Mapping[str, str] | None = None,
        reference: str | None = None,
    ) -> SendResult: ...


__all__ = ["Channel", "Message", "MessageError", "SendResult", "SendStatus"]
