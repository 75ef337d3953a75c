"""SMS contacts through an HTTP gateway: one POST of JSON per message.

The gateway contract is the small common core of Swedish and international SMS APIs:
`POST <KRAVLAB_SMS_GATEWAY_URL>` with `Authorization: Bearer <token>` and
`{"to": "+46701234567", "text": "...", "reference": "..."}`; the answer's JSON `id` is the
provider's message id. A gateway with another shape gets its own adapter beside this one.

Outcomes: 2xx is `sent`; 408, 425, 429, 5xx, a timeout or no connection are `retryable`
(the gateway is busy or down: the contact waits, the engine's queue retries with backoff);
any other 4xx is `permanent` (the gateway refuses this message: a bad number, a blocked
recipient, a text it rejects) and the contact does not count as sent. The `reference` is
the engine's id for the step, sent also as `Idempotency-Key`, so a gateway that honours
it never delivers a retried SMS twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import msgspec

from backend.channels import SendResult, permanent, retryable, sent
from backend.channels.message import Message, MessageError, check
from backend.channels.templates import TemplateProblem, one_line, templates_for
from backend.settings import Settings

CHANNEL = "sms"
RETRYABLE_4XX = frozenset({408, 425, 429})


class SmsGateway(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    token: str = ""
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsGateway:
        return cls(
            url=settings.sms_gateway_url,
            token=settings.sms_gateway_token,
            timeout=settings.channel_timeout_seconds,
        )

    def __repr__(self) -> str:  # the token never reaches a log line
        return f"SmsGateway(url={self.url!r})"


class SmsChannel:
    """Sends one message as an SMS; never raises for a refused or undeliverable one."""

    name = CHANNEL

    def __init__(self, gateway: SmsGateway, client: httpx.AsyncClient | None = None) -> None:
        self.gateway = gateway
        self._client = client  # a shared client keeps connections across a run's messages

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsChannel:
        return cls(SmsGateway.from_settings(settings))

    async def send(
        self,
        message: Message,
        *,
        overrides: Mapping[str, str] | None = None,
        reference: str | None = None,
    ) -> SendResult:
        if not self.gateway.url:
            return permanent(CHANNEL, "no SMS gateway configured (KRAVLAB_SMS_GATEWAY_URL)")
        try:
            message = check(message)
            text = templates_for(overrides).render_message(message).sms
        except (MessageError, TemplateProblem) as exc:
            return permanent(CHANNEL, f"not sendable: {exc}")
        body: dict[str, str] = {"to": message.debtor.phone or "", "text": text}
        headers = {"Authorization": f"Bearer {self.gateway.token}"}
        if reference:
            body["reference"] = headers["Idempotency-Key"] = one_line(reference, 100)
        try:
            if self._client is not None:
                response = await self._post(self._client, body, headers)
            else:
                async with httpx.AsyncClient() as client:
                    response = await self._post(client, body, headers)
        except httpx.HTTPError as exc:  # connect error, timeout, broken answer
            return retryable(CHANNEL, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300:
            return sent(CHANNEL, _provider_id(response))
        detail = f"gateway answered {status}: {response.text[:200]}"
        if status >= 500 or status in RETRYABLE_4XX:
            return retryable(CHANNEL, detail)
        return permanent(CHANNEL, detail)

    async def _post(
        self, client: httpx.AsyncClient, body: dict[str, str], headers: dict[str, str]
    ) -> httpx.Response:
        return await client.post(
            self.gateway.url,
            json=body,
            headers=headers,
            timeout=self.gateway.timeout,
            follow_redirects=False,
        )


def _provider_id(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    if isinstance(answer, dict) and isinstance(answer.get("id"), str | int):
        return str(answer["id"])[:200]
    return None
