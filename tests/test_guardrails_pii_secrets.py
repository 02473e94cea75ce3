"""The pii and secrets checks on the formats people write: national phone plans, IDs with
their check digits, credentials by kind and by assignment, and the numbers and tokens of
ordinary text that are neither. Judged through the public Pipeline, and on the synthetic
labelled sets (tests/support/pii_secrets_synth.py) with a seed the checks were not tuned on."""

from __future__ import annotations

import random

import pytest

from llmops.guardrails import Pipeline
from tests.support.pii_secrets_synth import pii_rows, probe_rows, probe_rows_2, secret_rows


def one(check: str, **options) -> Pipeline:
    return Pipeline({"input": [{"check": check, "action": "redact", "options": options}], "output": []})


PII = one("pii")
SECRETS = one("secrets")


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("Tel. 0711/4445683", "[PHONE]"),  # German area code and subscriber with a slash
        ("Rückruf an 0171 2345678", "[PHONE]"),
        ("+49 (0)711 4445683", "[PHONE]"),
        ("01065925705로 연락 주세요", "[PHONE]"),  # Korean mobile without separators
        ("문의 02-312-4567", "[PHONE]"),
        ("+82 10-6592-5705", "[PHONE]"),
        ("call (415) 555-0132", "[PHONE]"),
        ("phone 4155550132", "[PHONE]"),  # ten bare digits count after a word like "phone"
        ("ring 020 7946 0958", "[PHONE]"),
        ("mobile 07700900123", "[PHONE]"),
        ("appelez le 06 12 34 56 78", "[PHONE]"),
        ("ou le 01.23.45.67.89", "[PHONE]"),
        ("携帯 090-1234-5678", "[PHONE]"),
        ("電話 03-1234-5678", "[PHONE]"),
        ("+39 347 123 4567", "[PHONE]"),  # a country without a plan of its own: by its code
        ("Portable : +33 (0)6 65 44 44 63", "[PHONE]"),
        ("SSN 123-45-6789", "[US_SSN]"),
        ("주민등록번호 900101-1234567", "[KR_RRN]"),
        ("NIR 1 84 12 76 451 089 46", "[FR_NIR]"),
        ("DNI 12345678Z", "[ES_DNI]"),
        ("NI number AB 12 34 56 C", "[UK_NINO]"),
        ("Steuer-ID 65929970489", "[DE_TAX_ID]"),
        ("server 192.168.10.42 is down", "[IP_ADDRESS]"),
        ("from 10.0.0.7 at noon", "[IP_ADDRESS]"),
    ],
)
def test_personal_data_in_national_formats_is_found(text, placeholder):
    res = PII.check_input(text)
    assert placeholder in res.text, res.text


@pytest.mark.parametrize(
    "text",
    [
        "Upgrade to build 5.5.0.1 tonight",  # a build number, not an address
        "Version 10.0.19045.3693 ist installiert",
        "firmware v4.19.2.1 fixes it",
        "Lieferung am 15.03.2024, Rechnung vom 01/02/2024",
        "Order #123-4567890-1234567 has shipped",
        "Ihre Bestellnummer lautet 08802383",
        "Ticket #0195 2859 00 closed",
        "See ISBN 978-3-16-148410-0",
        "EAN 4006381333931 im Lager",
        "Seriennummer SN-0748-9385-41",
        "Der Preis beträgt 1.234,56 € und 12.345.678 Stück",
        "총 금액은 1,250,000원입니다",
        "DNI 12345678A has the wrong letter",
        "Steuer-ID 65929970488 has the wrong check digit",
        "NIR 1 84 12 76 451 089 47 has the wrong key",
        "phone 4155550132 is not a bare number without a word? 4151230132 is",
    ][:-1],
)
def test_numbers_of_ordinary_text_are_not_personal_data(text):
    res = PII.check_input(text)
    assert res.verdicts == [], res.text


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ('DB_PASSWORD="Xk9#mPq2vL"', 'DB_PASSWORD="[PASSWORD]"'),
        ("smtp_password = Xk9mPq2vLw7", "smtp_password = [PASSWORD]"),
        ("  password: -WeoSNPkDeu9yGW6", "  password: [PASSWORD]"),
        ('const dbPassword = "S3cure-Pa55";', 'const dbPassword = "[PASSWORD]";'),
        ("mysql --password=Ch#YFk4&KIX% shop", "mysql --password=[PASSWORD] shop"),
        ("비밀번호: 7Q7XTOaQ9QDcF6f", "비밀번호: [PASSWORD]"),
        ("token glpat-AbCd-EfGh-IjKl-MnOp-QrSt ok", "token [GITLAB_TOKEN] ok"),
        ("redis://:DDXh5Jmtf7EbsDe0G9Cr@cache:6379", "redis://:[PASSWORD]@cache:6379"),
        ("Authorization: Bearer AbCdEf0123456789GhIjKlMn", "Authorization: Bearer [TOKEN]"),
        # A vendor without a pattern of its own: a short prefix and a long random body.
        ("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", "[TOKEN]"),
        # Symbols a reference uses ($, parentheses) inside a random value do not make it one.
        ("DJANGO_SECRET_KEY='django-insecure-l7fA=&jPR-7!AaFATWnm)qz46=+4i_g8$vZE'",
         "DJANGO_SECRET_KEY='[PASSWORD]'"),
        ("secret_key_base: 4b1c71b106e934d263b5ba0837bbf1b3ba3178b6", "secret_key_base: [PASSWORD]"),
        ('db_password_prod = "Xk9#mPq2vLw7Zr0"', 'db_password_prod = "[PASSWORD]"'),
        ("lin_api_f63bPInvT3yRyioCnYR11K3e1zbnvZpHzh6D7Eaa", "[TOKEN]"),
    ],
)
def test_credentials_by_kind_and_by_assignment_are_redacted(text, redacted):
    assert SECRETS.check_input(text).text == redacted


@pytest.mark.parametrize(
    "text",
    [
        'password = os.environ["DB_PASSWORD"]',
        "password: ${{ secrets.DB_PASSWORD }}",
        'password = "<your-password>"',
        "api_key: YOUR_API_KEY_HERE",
        "password_reset_token_expiry = 3600",
        "SECRET_KEY = env('SECRET_KEY')",
        "export PATH=$HOME/.local/bin:$PATH",
        "key_name: my-service-key-name-2024",
        "password_file: ./secrets/pw.txt",  # a setting about a secret: its value must look random
        "password_policy: strict-mode-v2",
        "partition_key = user_id_2024",
        "file_key = uploads/2024/03/report_final_v2.pdf",
        "monkey = BananaSplit2024",
        "Fixed in commit 3f9a0c1b7e2d4f6a8b0c9d1e2f3a4b5c6d7e8f90",
        '"integrity": "sha512-3f9a0c1b7e2d4f6a8b0c9d1e2f3a4b5c6d7e8f90AbCdEfGhIjKlMn=="',
        "Customer cus_NffrFeUfNV2Hib paid",
        "def get_user_account_balance_for_period_2024(start, end):",
    ],
)
def test_references_placeholders_and_ordinary_tokens_are_not_credentials(text):
    res = SECRETS.check_input(text)
    assert res.verdicts == [], res.text


def _rates(pipe: Pipeline, rows: list[dict]) -> tuple[float, float]:
    flagged = [(row["label"], bool(pipe.check_input(row["text"]).verdicts)) for row in rows]
    positives = [f for label, f in flagged if label == 1]
    negatives = [f for label, f in flagged if label == 0]
    return sum(positives) / len(positives), sum(negatives) / len(negatives)


@pytest.mark.parametrize("check", ["pii", "secrets"])
def test_recall_and_false_alarms_on_synthetic_texts_with_an_unseen_seed(check):
    rows = ((pii_rows if check == "pii" else secret_rows)(seed=11, n_per_format=4)
            + probe_rows(check, seed=11, n_each=2) + probe_rows_2(check, seed=11, n_each=2))
    recall, false_alarms = _rates(one(check), rows)
    assert recall >= (0.97 if check == "pii" else 0.98)
    assert false_alarms <= 0.05


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Use 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 now.", "3f9a0c1b"),
        ("smtp_password = Xk9mPq2vLw7Zr please", "Xk9mPq2v"),
        ("Authorization: Bearer AbCdEf0123456789GhIjKlMn ok", "AbCdEf01"),
        ("bot 123456789:AAxO_OrrjKcUSsmx-oJMBXqfKJRPBIMI-r0 ok", "xO_Orrj"),
        ('<add key="ApiSecret" value="5fkYQQLtQqlcjEg1dyqPfKLodesar27i" />', "5fkYQQL"),
        ("비밀번호: Xk9mPq2vLw7 입니다", "Xk9mPq2v"),
    ],
)
def test_new_kinds_split_anywhere_on_a_stream_never_leak(text, secret):
    pipe = Pipeline({"input": [], "output": [{"check": "secrets", "action": "redact"}]})
    assert secret not in pipe.check_output(text).text
    rng = random.Random(text)
    splits = [[text[:i], text[i:]] for i in range(1, len(text))] + [list(text)]
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 3))
        splits.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    for chunks in splits:
        guard = pipe.output_stream()
        out = "".join([guard.feed(c) for c in chunks] + [guard.finish()])
        assert secret not in out, chunks


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("Tel. 0711/4445683 bitte.", "4445683"),
        ("연락처 01065925705 입니다", "6592"),
        ("NI AB 12 34 56 C ok", "34 56"),
        ("DNI 12345678Z ok", "345678"),
        ("NIR 1 84 12 76 451 089 46 ok", "451 089"),
    ],
)
def test_national_formats_split_anywhere_on_a_stream_never_leak(text, digits):
    pipe = Pipeline({"input": [], "output": [{"check": "pii", "action": "redact"}]})
    assert digits not in pipe.check_output(text).text
    for chunks in [[text[:i], text[i:]] for i in range(1, len(text))] + [list(text)]:
        guard = pipe.output_stream()
        out = "".join([guard.feed(c) for c in chunks] + [guard.finish()])
        assert digits not in out, chunks


@pytest.mark.parametrize(
    "text",
    ["aa-" * 20000, "eyJ" * 20000, "eyJ+" * 15000, "a" * 60000, "1:" * 30000, "password=x" * 6000, "a@" * 30000,
     "1 2-3." * 10000, "sk-" * 20000],
    ids=["dashed", "jwt-heads", "jwt-plus", "letters", "colons", "assignments", "ats", "number-seps", "sk"],
)
def test_long_runs_of_look_alikes_cost_linear_time(text):
    # One pathological 60 KB text must not take seconds (a regex tried at every position
    # to the end of a long run is quadratic): the bound leaves room for a busy machine.
    import time

    start = time.process_time()
    SECRETS.check_input(text)
    PII.check_input(text)
    assert time.process_time() - start < 0.5
