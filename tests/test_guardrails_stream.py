"""Output guardrails on a stream: redaction across chunk boundaries, blocking mid-stream."""

from __future__ import annotations

import asyncio
import random

import pytest

from llmops.guardrails import GuardrailBlocked, Pipeline

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAMwAAAAtzc2gtZWQ\n-----END OPENSSH PRIVATE KEY-----"


def stream_through(guard, text: str, sizes) -> str:
    out = []
    i = 0
    for size in sizes:
        if i >= len(text):
            break
        out.append(guard.feed(text[i : i + size]))
        i += size
    if i < len(text):
        out.append(guard.feed(text[i:]))
    out.append(guard.finish())
    return "".join(out)


def test_a_key_split_at_every_position_is_never_emitted():
    pipe = Pipeline()
    text = f"Here is the key you asked for: {KEY} - keep it safe."
    expected = pipe.check_output(text).text
    for cut in range(1, len(text)):
        guard = pipe.output_stream()
        first = guard.feed(text[:cut])
        rest = guard.feed(text[cut:]) + guard.finish()
        out = first + rest
        assert out == expected, cut
        assert "AbCdEfGh" not in out


@pytest.mark.parametrize("seed", range(20))
def test_random_chunking_gives_the_same_text_as_checking_the_whole_reply(seed):
    rng = random.Random(seed)
    pipe = Pipeline({"output": [{"check": "secrets", "action": "redact"}, {"check": "pii", "action": "redact"}]})
    text = (
        "Dear customer, your card 4111 1111 1111 1111 was charged. Reply to billing@example.com "
        f"or call +44 20 7946 0958. Internal note: token {KEY} and IBAN DE89 3704 0044 0532 0130 00.\n"
        f"{PEM}\nRegards, the team. " * 2
    )
    sizes = [rng.randint(1, 12) for _ in range(len(text))]
    guard = pipe.output_stream()
    assert stream_through(guard, text, sizes) == pipe.check_output(text).text
    labels = {label for v in guard.verdicts for label in v["labels"]}
    assert {"openai_key", "private_key", "credit_card", "email", "phone", "iban"} <= labels


def test_text_flows_before_the_stream_ends():
    guard = Pipeline().output_stream()
    words = ("lorem ipsum dolor sit amet " * 40).split(" ")
    emitted_early = "".join(guard.feed(w + " ") for w in words)
    assert len(emitted_early) > 800  # only a small tail is held back
    assert emitted_early + guard.finish() == " ".join(words) + " "


def test_an_unterminated_private_key_is_held_and_redacted_at_the_end():
    guard = Pipeline().output_stream()
    head = "Sure:\n-----BEGIN RSA PRIVATE KEY-----\n"
    sent = guard.feed(head) + "".join(guard.feed("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n") for _ in range(50))
    assert "QUJD" not in sent
    assert (sent + guard.finish()) == "Sure:\n[PRIVATE_KEY]"


def test_a_block_mid_stream_raises_and_stays_blocked():
    pipe = Pipeline({"output": [{"check": "banned", "action": "block", "options": {"terms": ["Project Falcon"]}}]})
    guard = pipe.output_stream()
    sent = guard.feed("The roadmap is public. ") + guard.feed("Next quarter we launch Project ")
    with pytest.raises(GuardrailBlocked) as info:
        for _ in range(20):
            sent += guard.feed("Falcon, the secret one. ")
    assert "Falcon" not in sent
    assert guard.blocked and guard.blocked_by == "banned"
    assert info.value.code == "guardrail_blocked" and info.value.verdicts[0]["check"] == "banned"
    with pytest.raises(GuardrailBlocked):
        guard.feed("more")
    with pytest.raises(GuardrailBlocked):
        guard.finish()


def test_whole_reply_checks_run_at_finish():
    schema = {"type": "object", "required": ["answer"]}
    pipe = Pipeline({"output": [{"check": "json_schema", "action": "block", "options": {"schema": schema}}]})
    good = pipe.output_stream()
    # no check runs while the text flows, so nothing is held back
    assert good.feed('{"answer": ') == '{"answer": '
    assert good.feed("42}") == "42}"
    assert good.finish() == ""
    bad = pipe.output_stream()
    bad.feed('{"question": 1}')
    with pytest.raises(GuardrailBlocked):
        bad.finish()
    assert bad.blocked_by == "json_schema"


def test_async_checks_run_in_afinish():
    async def judge(messages):
        return "UNSAFE: insult" if "idiot" in messages[-1]["content"] else "SAFE"

    pipe = Pipeline({"output": [{"check": "judge", "action": "flag"}]}, judge=judge)
    guard = pipe.output_stream()
    text = guard.feed("You absolute idiot.")
    text += asyncio.run(guard.afinish())
    assert text == "You absolute idiot."
    assert guard.verdicts[0]["labels"] == ["insult"] and not guard.blocked


def test_disabled_guardrails_pass_text_through():
    pipe = Pipeline({"enabled": False})
    guard = pipe.output_stream()
    assert guard.feed(KEY) == KEY and guard.finish() == ""
    assert not pipe.has_output_checks()
