"""SMS through a local HTTP gateway that records every request: accepted, refused, down,
slow, and the retry sequences the engine's queue will drive."""

from __future__ import annotations

import pytest

from backend.channels.message import Creditor, Debtor
from backend.channels.sms import SmsChannel, SmsGateway
from tests.channels.messages import message, notice
from tests.channels.servers import Gateway, free_port, start_gateway


@pytest.fixture
def gateway(request):
    answers = getattr(request, "param", [200])
    served = Gateway(answers=list(answers))
    stop = start_gateway(served)
    yield served
    stop()


def channel(gateway: Gateway, timeout: float = 5.0) -> SmsChannel:
    return SmsChannel(SmsGateway(url=gateway.url, token="tok-123", timeout=timeout))


async def test_an_accepted_sms_carries_the_text_number_token_and_reference(gateway):
    result = await channel(gateway).send(message(channel="sms"), reference="step-9")
    assert (result.status, result.provider_id) == ("sent", "sms-1")
    [request] = gateway.requests
    assert request.path == "/v1/sms"
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["Idempotency-Key"] == "step-9"
    assert request.body["to"] == "+46701234567" and request.body["reference"] == "step-9"
    text = request.body["text"].replace("\u00a0", " ")
    assert text.startswith("Åkesson & Öberg AB: faktura F-2026-0042 (1 304,65 kr)")
    assert "bg 5555-1234" in text and "ref 20260042" in text and "Ring 08-123 456 78" in text


async def test_an_english_collection_notice_by_sms(gateway):
    result = await channel(gateway).send(notice(channel="sms", language="en"))
    assert result.sent
    text = gateway.requests[0].body["text"].replace("\u00a0", " ")
    assert (
        text.startswith("Collection notice from Åkesson & Öberg AB") and "Pay by 2026-03-10" in text
    )


@pytest.mark.parametrize("gateway", [[503, 502, 200]], indirect=True)
async def test_a_gateway_failing_twice_then_accepting(gateway):
    """Each failure is reported as retryable; the same message then goes out once."""
    sms = channel(gateway)
    results = [await sms.send(message(channel="sms"), reference="step-1") for _ in range(3)]
    assert [r.status for r in results] == ["retryable", "retryable", "sent"]
    assert "503" in (results[0].reason or "") and results[2].provider_id == "sms-3"
    assert {r.body["reference"] for r in gateway.requests} == {"step-1"}


@pytest.mark.parametrize("gateway", [[500]], indirect=True)
async def test_a_gateway_that_always_fails_never_counts_as_sent(gateway):
    results = [await channel(gateway).send(message(channel="sms")) for _ in range(4)]
    assert [r.status for r in results] == ["retryable"] * 4
    assert not any(r.sent for r in results) and len(gateway.requests) == 4


@pytest.mark.parametrize(
    ("gateway", "status"),
    [([400], "permanent"), ([422], "permanent"), ([401], "permanent"), ([429], "retryable")],
    indirect=["gateway"],
)
async def test_client_errors_are_permanent_except_rate_limits(gateway, status):
    result = await channel(gateway).send(message(channel="sms"))
    assert result.status == status and result.provider_id is None


@pytest.mark.parametrize("gateway", [["hang"]], indirect=True)
async def test_a_gateway_slower_than_the_timeout_is_retryable(gateway):
    gateway.hang_seconds = 1.5
    result = await channel(gateway, timeout=0.3).send(message(channel="sms"))
    assert result.status == "retryable" and "Timeout" in (result.reason or "")


async def test_a_gateway_that_is_down_is_retryable():
    gone = SmsChannel(SmsGateway(url=f"http://127.0.0.1:{free_port()}/sms", timeout=2))
    result = await gone.send(message(channel="sms"))
    assert result.status == "retryable"


async def test_without_a_gateway_or_a_number_nothing_is_sent(gateway):
    unconfigured = await SmsChannel(SmsGateway(url="")).send(message(channel="sms"))
    assert unconfigured.status == "permanent" and "KRAVLAB_SMS_GATEWAY_URL" in (
        unconfigured.reason or ""
    )
    no_number = await channel(gateway).send(
        message(channel="sms", debtor=Debtor(name="N", email="n@example.se"))
    )
    assert no_number.status == "permanent" and "debtor.phone" in (no_number.reason or "")
    assert gateway.requests == []


async def test_a_huge_creditor_name_is_bounded_and_the_payment_details_survive(gateway):
    huge = message(channel="sms", creditor=Creditor(tenant_id="t", name="Å" * 5_000))
    assert (await channel(gateway).send(huge)).status == "permanent"  # over the bound
    long_name = message(channel="sms", creditor=Creditor(tenant_id="t", name="Å" * 200))
    assert (await channel(gateway).send(long_name)).sent
    text = gateway.requests[0].body["text"]
    assert "ref 20260042" in text and text.count("Å") == 200
