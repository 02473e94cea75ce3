"""Synthetic labelled texts for the pii and secrets checks: positives and hard negatives.

    rows = pii_rows(seed=1, n_per_format=20)      # [{"text", "label", "kind", "format", "language", "split"}]
    rows = secret_rows(seed=1, n_per_format=20)

Every positive embeds one value, generated at random in a real format (a German landline
written with a slash, a Korean mobile without separators, a GitLab token, a password in a
.env line), in an en/de/ko sentence. Negatives are ordinary sentences full of numbers and
tokens that are not personal data or credentials: build numbers, versions, dates, prices,
order and tracking numbers, ISBNs, hashes, UUIDs, code identifiers.

`split` says whether a format was one the checks were tuned on ("tuned") or only judged
on ("held_out": formats and kinds added after the tuning, never looked at while tuning).
Random digits are used where real generators use them (as Faker does), so a check cannot
rely on the numbering plan alone for numbers written in groups.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable

ALNUM = string.ascii_letters + string.digits
Gen = Callable[[random.Random], str]


def _d(r: random.Random, n: int) -> str:
    return "".join(r.choice(string.digits) for _ in range(n))


def _nz(r: random.Random) -> str:
    return r.choice("123456789")


def _s(r: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(r.choice(alphabet) for _ in range(n))


# --- personal data -----------------------------------------------------------------------------

def _luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def _card(r: random.Random, prefix: str, length: int) -> str:
    return _luhn_complete(prefix + _d(r, length - len(prefix) - 1))


def _group(number: str, sizes: tuple[int, ...], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(number[i : i + size])
        i += size
    return sep.join(out)


def _iban(r: random.Random, country: str, length: int, grouped: bool) -> str:
    bban = _d(r, length - 4)
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    iban = f"{country}{98 - number % 97:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if grouped else iban


def _rrn(r: random.Random) -> str:
    return f"{_d(r, 2)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}-{r.choice('1234')}{_d(r, 6)}"


def _rrn_checked(r: random.Random) -> str:
    """Thirteen bare digits with the check digit numbers issued before October 2020 carry."""
    body = _rrn(r).replace("-", "")[:12]
    total = sum(int(c) * w for c, w in zip(body, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    return body + str((11 - total % 11) % 10)


def _nir(r: random.Random) -> str:
    body = f"{r.choice('12')}{_d(r, 2)}{r.randint(1, 12):02d}{r.randint(1, 95):02d}{_d(r, 3)}{_d(r, 3)}"
    key = 97 - int(body) % 97
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"


def _dni(r: random.Random) -> str:
    number = r.randint(10_000_000, 99_999_999)
    return f"{number}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"


def _nino(r: random.Random) -> str:
    first = r.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = r.choice("ABCEGHJKLMNPRSTWXYZ")
    return f"{first}{second} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {r.choice('ABCD')}"


def _ipv4(r: random.Random) -> str:
    first = r.choice([10, 172, 192, r.randint(30, 223)])
    return f"{first}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def _ipv6(r: random.Random) -> str:
    groups = [f"{r.randint(0, 65535):x}" for _ in range(8)]
    if r.random() < 0.5:
        return "2001:db8::" + ":".join(groups[:3])
    return ":".join(groups)


def _email(r: random.Random) -> str:
    first = r.choice(["jane", "max", "minji", "lukas", "anna", "j.smith", "kim.seoyeon", "m_mueller", "info", "h.tanaka"])
    domain = r.choice(["example.com", "mail.de", "naver.com", "firma-gmbh.de", "uni-heidelberg.de", "co.kr", "outlook.jp"])
    return f"{first}{r.choice(['', str(r.randint(1, 99))])}@{domain}"


# Formats: (kind, format name, split, generator). "tuned" formats were looked at while
# writing the tables; "held_out" ones were added afterwards to judge them.
PII_FORMATS: list[tuple[str, str, str, Gen]] = [
    ("phone", "de_slash", "tuned", lambda r: f"0{r.choice(['711', '89', '30', '221', '6221', '351'])}/{_nz(r)}{_d(r, 6)}"),
    ("phone", "de_space", "tuned", lambda r: f"0{r.choice(['40', '69', '711', '2161'])} {_nz(r)}{_d(r, 6)}"),
    ("phone", "de_mobile_bare", "tuned", lambda r: f"01{r.choice(['51', '60', '70', '71', '76'])}{_d(r, 8)}"),
    ("phone", "de_mobile_spaced", "tuned", lambda r: f"01{r.choice(['52', '62', '72'])} {_d(r, 3)} {_d(r, 4)}"),
    ("phone", "de_intl", "tuned", lambda r: f"+49 {r.choice(['30', '711', '171'])} {_nz(r)}{_d(r, 6)}"),
    ("phone", "de_intl_trunk", "tuned", lambda r: f"+49 (0){r.choice(['711', '89'])} {_nz(r)}{_d(r, 6)}"),
    ("phone", "de_faker", "held_out", lambda r: f"(0{_d(r, 4)}) {_d(r, 6)}"),
    ("phone", "kr_mobile_bare", "tuned", lambda r: f"010{_nz(r)}{_d(r, 7)}"),
    ("phone", "kr_mobile_dash", "tuned", lambda r: f"010-{_d(r, 4)}-{_d(r, 4)}"),
    ("phone", "kr_seoul", "tuned", lambda r: f"02-{_nz(r)}{_d(r, 2)}-{_d(r, 4)}"),
    ("phone", "kr_area", "tuned", lambda r: f"0{r.choice(['31', '51', '53', '62'])}-{_d(r, 3)}-{_d(r, 4)}"),
    ("phone", "kr_intl", "tuned", lambda r: f"+82 10-{_d(r, 4)}-{_d(r, 4)}"),
    ("phone", "kr_intl_bare", "held_out", lambda r: f"+8210{_nz(r)}{_d(r, 7)}"),
    ("phone", "kr_voip", "held_out", lambda r: f"070 {_d(r, 4)} {_d(r, 4)}"),
    ("phone", "us_paren", "tuned", lambda r: f"({_nz(r)}{_d(r, 2)}) {_nz(r)}{_d(r, 2)}-{_d(r, 4)}"),
    ("phone", "us_dash", "tuned", lambda r: f"{_nz(r)}{_d(r, 2)}-{_d(r, 3)}-{_d(r, 4)}"),
    ("phone", "us_dots", "tuned", lambda r: f"{_nz(r)}{_d(r, 2)}.{_d(r, 3)}.{_d(r, 4)}"),
    ("phone", "us_intl", "tuned", lambda r: f"+1 {_nz(r)}{_d(r, 2)} {_d(r, 3)} {_d(r, 4)}"),
    ("phone", "us_tollfree", "held_out", lambda r: f"1-800-{_d(r, 3)}-{_d(r, 4)}"),
    ("phone", "uk_london", "tuned", lambda r: f"020 {_d(r, 4)} {_d(r, 4)}"),
    ("phone", "uk_mobile", "tuned", lambda r: f"07{_d(r, 3)} {_d(r, 6)}"),
    ("phone", "uk_mobile_bare", "held_out", lambda r: f"07{_d(r, 9)}"),
    ("phone", "uk_intl", "tuned", lambda r: f"+44 (0){_nz(r)}{_d(r, 3)} {_d(r, 6)}"),
    ("phone", "fr_pairs", "held_out", lambda r: "0" + r.choice("123456789") + " " + " ".join(_d(r, 2) for _ in range(4))),
    ("phone", "fr_dots", "held_out", lambda r: "0" + r.choice("67") + "." + ".".join(_d(r, 2) for _ in range(4))),
    ("phone", "fr_intl", "held_out", lambda r: "+33 " + r.choice("67") + " " + " ".join(_d(r, 2) for _ in range(4))),
    ("phone", "fr_bare_mobile", "held_out", lambda r: "06" + _d(r, 8)),
    ("phone", "jp_mobile", "held_out", lambda r: f"0{r.choice('789')}0-{_d(r, 4)}-{_d(r, 4)}"),
    ("phone", "jp_mobile_bare", "held_out", lambda r: f"0{r.choice('789')}0{_d(r, 8)}"),
    ("phone", "jp_tokyo", "held_out", lambda r: f"03-{_d(r, 4)}-{_d(r, 4)}"),
    ("phone", "jp_area", "held_out", lambda r: f"0{r.choice(['45', '52', '75', '92'])}-{_d(r, 3)}-{_d(r, 4)}"),
    ("phone", "jp_intl", "held_out", lambda r: f"+81 90-{_d(r, 4)}-{_d(r, 4)}"),
    ("phone", "it_intl", "held_out", lambda r: f"+39 3{_d(r, 2)} {_d(r, 3)} {_d(r, 4)}"),
    ("phone", "es_intl", "held_out", lambda r: f"+34 6{_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}"),
    ("phone", "in_intl", "held_out", lambda r: f"+91 9{_d(r, 4)} {_d(r, 5)}"),
    ("phone", "cn_intl", "held_out", lambda r: f"+86 138 {_d(r, 4)} {_d(r, 4)}"),
    ("phone", "intl_00", "held_out", lambda r: f"0049 {r.choice(['30', '89'])} {_nz(r)}{_d(r, 6)}"),
    ("email", "plain", "tuned", _email),
    ("credit_card", "visa_groups", "tuned", lambda r: _group(_card(r, "4", 16), (4, 4, 4, 4), " ")),
    ("credit_card", "mc_bare", "tuned", lambda r: _card(r, r.choice(["51", "53", "55"]), 16)),
    ("credit_card", "amex", "tuned", lambda r: _group(_card(r, "37", 15), (4, 6, 5), " ")),
    ("credit_card", "visa_dashes", "held_out", lambda r: _group(_card(r, "4", 16), (4, 4, 4, 4), "-")),
    ("credit_card", "discover", "held_out", lambda r: _group(_card(r, "6011", 16), (4, 4, 4, 4), " ")),
    ("iban", "de_grouped", "tuned", lambda r: _iban(r, "DE", 22, True)),
    ("iban", "gb_bare", "tuned", lambda r: "GB" + _iban(r, "GB", 22, False)[2:]),
    ("iban", "fr_grouped", "held_out", lambda r: _iban(r, "FR", 27, True)),
    ("iban", "nl_bare", "held_out", lambda r: _iban(r, "NL", 18, False)),
    ("us_ssn", "dashes", "tuned", lambda r: f"{r.randint(100, 665)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}"),
    ("kr_rrn", "dash", "tuned", _rrn),
    ("kr_rrn", "bare", "held_out", lambda r: _rrn_checked(r)),
    ("fr_nir", "grouped", "held_out", _nir),
    ("es_dni", "plain", "held_out", _dni),
    ("uk_nino", "grouped", "held_out", _nino),
    ("ip_address", "v4", "tuned", _ipv4),
    ("ip_address", "v6", "tuned", _ipv6),
]

_PII_SENTENCES = {
    "en": {
        "phone": ["You can reach me at {v} after 5 pm.", "Please call {v} to confirm the appointment.",
                  "Her number is {v}.", "Contact: Jane Miller, {v}", "For questions ring {v} anytime."],
        "default": ["My details for the form: {v}.", "Here it is: {v} — please keep it private.",
                    "The customer gave {v} when signing up.", "Use {v} for the record, thanks."],
        "ip_address": ["The request came from {v} at midnight.", "Our server at {v} stopped answering.",
                       "Block {v} in the firewall please."],
    },
    "de": {
        "phone": ["Sie erreichen mich unter {v}.", "Bitte rufen Sie {v} an.", "Tel. {v}, Fax auf Anfrage.",
                  "Meine Handynummer ist {v}.", "Rückruf bitte an {v} bis Freitag."],
        "default": ["Meine Angaben für das Formular: {v}.", "Hier ist die Nummer: {v}.",
                    "Der Kunde hat {v} angegeben.", "Bitte {v} im System hinterlegen."],
        "ip_address": ["Die Anfrage kam von {v}.", "Der Server {v} ist nicht erreichbar."],
    },
    "ko": {
        "phone": ["제 연락처는 {v} 입니다.", "{v}로 전화 주세요.", "문의: {v}", "휴대폰 {v} 으로 문자 주세요."],
        "default": ["신청서에 적을 정보: {v}", "고객이 {v} 를 알려주었습니다.", "기록용으로 {v} 남깁니다."],
        "ip_address": ["{v} 에서 요청이 들어왔습니다.", "서버 {v} 가 응답하지 않습니다."],
    },
}


def pii_rows(seed: int = 1, n_per_format: int = 20) -> list[dict]:
    r = random.Random(seed)
    rows = []
    for kind, fmt, split, gen in PII_FORMATS:
        for _ in range(n_per_format):
            language = r.choice(["en", "de", "ko"])
            table = _PII_SENTENCES[language]
            template = r.choice(table.get(kind, table["default"]))
            rows.append({"text": template.format(v=gen(r)), "label": 1, "kind": kind, "format": fmt,
                         "language": language, "split": split})
    rows += _negatives(r, PII_NEGATIVES, n_per_format * 2, "pii")
    return rows


# Hard negatives: the numbers ordinary texts are full of.
PII_NEGATIVES: list[tuple[str, str, Gen]] = [
    ("build", "tuned", lambda r: f"Upgrade to build {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 20)} before Friday."),
    ("build_bare", "held_out", lambda r: f"{r.randint(1, 9)}.{r.randint(0, 12)}.{r.randint(0, 9)}.{r.randint(0, 9)} 버전에서 오류가 재현됩니다."),
    ("windows_build", "tuned", lambda r: f"Windows 10 Version 10.0.{r.randint(10000, 22631)}.{r.randint(100, 4000)} ist installiert."),
    ("semver", "tuned", lambda r: f"We pinned requests=={r.randint(1, 3)}.{r.randint(0, 32)}.{r.randint(0, 9)} and Python 3.{r.randint(8, 13)}.{r.randint(0, 9)}."),
    ("date_iso", "tuned", lambda r: f"The invoice dated 20{r.randint(10, 29)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} is overdue."),
    ("date_de", "tuned", lambda r: f"Lieferung am {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.20{r.randint(10, 29)} zwischen 8 und 12 Uhr."),
    ("date_us", "held_out", lambda r: f"Meeting moved to {r.randint(1, 12):02d}/{r.randint(1, 28):02d}/20{r.randint(10, 29)} at 3:30 pm."),
    ("date_ko", "held_out", lambda r: f"20{r.randint(10, 29)}년 {r.randint(1, 12)}월 {r.randint(1, 28)}일 {r.randint(1, 12)}시에 회의가 있습니다."),
    ("price_de", "tuned", lambda r: f"Der Preis beträgt {r.randint(1, 999)}.{r.randint(100, 999)},{r.randint(0, 99):02d} € inkl. MwSt."),
    ("price_en", "tuned", lambda r: f"Revenue was ${r.randint(1, 999)},{r.randint(100, 999)},{r.randint(100, 999)}.{r.randint(0, 99):02d} last year."),
    ("price_ko", "held_out", lambda r: f"총 금액은 {r.randint(1, 99)},{r.randint(100, 999)},{r.randint(100, 999)}원입니다."),
    ("order_amazon", "tuned", lambda r: f"Order #{_d(r, 3)}-{_d(r, 7)}-{_d(r, 7)} has shipped."),
    ("order_de", "tuned", lambda r: f"Ihre Bestellnummer lautet {_d(r, 8)}."),
    ("order_ko", "held_out", lambda r: f"주문번호 20{r.randint(10, 29)}{r.randint(1, 12):02d}{r.randint(1, 28):02d}-{_d(r, 6)} 확인 부탁드립니다."),
    ("invoice", "held_out", lambda r: f"Rechnung RE-20{r.randint(10, 29)}-{_d(r, 6)} vom Kundenkonto {_d(r, 7)}."),
    ("tracking", "held_out", lambda r: f"Tracking number 1Z{_s(r, 6, string.ascii_uppercase + string.digits)}{_d(r, 10)}, delivery in 2 days."),
    ("isbn", "tuned", lambda r: f"See ISBN 978-{r.randint(0, 9)}-{_d(r, 2)}-{_d(r, 6)}-{r.randint(0, 9)} for details."),
    ("hash", "tuned", lambda r: f"Commit {_s(r, 40, '0123456789abcdef')} fixed it."),
    ("uuid", "held_out", lambda r: f"Request id {_s(r, 8, '0123456789abcdef')}-{_s(r, 4, '0123456789abcdef')}-4{_s(r, 3, '0123456789abcdef')}-a{_s(r, 3, '0123456789abcdef')}-{_s(r, 12, '0123456789abcdef')} failed."),
    ("stats", "tuned", lambda r: f"The population grew from {r.randint(1, 99)} {_d(r, 3)} {_d(r, 3)} to {r.randint(1, 99)} {_d(r, 3)} {_d(r, 3)} people."),
    ("math", "held_out", lambda r: f"Compute {_d(r, 7)} + {_d(r, 7)} and divide by {r.randint(2, 99)}."),
    ("zip_time", "tuned", lambda r: f"Treffpunkt {r.randint(10000, 99999)} Berlin, {r.randint(8, 20)}:{r.randint(0, 59):02d} Uhr, Raum {r.randint(100, 999)}."),
    ("coordinates", "held_out", lambda r: f"Coordinates {r.randint(10, 60)}.{_d(r, 6)}, {r.randint(1, 30)}.{_d(r, 6)} mark the spot."),
    ("resolution", "held_out", lambda r: f"Screens of {r.choice(['1920x1080', '2560x1440', '3840x2160'])} at {r.randint(60, 240)} Hz, ratio 16:9."),
    ("decimal", "tuned", lambda r: f"pi is about 3.{_d(r, 10)} and e about 2.{_d(r, 10)}."),
    ("serial", "held_out", lambda r: f"Seriennummer SN-{_d(r, 4)}-{_d(r, 4)}-{_d(r, 2)} auf der Rückseite."),
    ("range", "held_out", lambda r: f"Pages {r.randint(100, 999)}-{r.randint(1000, 1999)} of volume {r.randint(1, 40)}, {r.randint(1990, 2024)}."),
    ("account_ko", "held_out", lambda r: f"사업자등록번호는 {r.randint(101, 899)}-{_d(r, 2)}-{_d(r, 5)} 입니다."),
    ("time_range", "held_out", lambda r: f"Öffnungszeiten {r.randint(7, 10)}.00-{r.randint(17, 20)}.00 Uhr, Mo-Fr."),
    ("ports", "held_out", lambda r: f"Open ports {r.randint(1000, 9999)}, {r.randint(1000, 9999)} and {r.randint(1000, 9999)}; timeout {r.randint(100, 9999)} ms."),
]


def _negatives(r: random.Random, table: list[tuple[str, str, Gen]], n: int, what: str) -> list[dict]:
    rows = []
    for fmt, split, gen in table:
        for _ in range(n):
            rows.append({"text": gen(r), "label": 0, "kind": "none", "format": fmt, "language": "mixed", "split": split})
    return rows


# --- secrets ---------------------------------------------------------------------------------------

def _b64(r: random.Random, n: int) -> str:
    return _s(r, n, ALNUM + "+/")


def _jwt(r: random.Random) -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(f'{{"sub":"{_d(r, 8)}","iat":{_d(r, 10)}}}'.encode()).decode().rstrip("=")
    return f"{head}.{body}.{_s(r, 43, ALNUM + '-_')}"


def _password(r: random.Random) -> str:
    return _s(r, r.randint(10, 18), ALNUM + "!#%&*-_.")


def _key_block(r: random.Random) -> str:
    kind = r.choice(["RSA ", "EC ", "OPENSSH ", ""])
    body = "\n".join(_b64(r, 64) for _ in range(4))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


SECRET_KINDS: list[tuple[str, str, Gen]] = [
    ("openai_key", "tuned", lambda r: f"sk-proj-{_s(r, 48, ALNUM + '-_')}"),
    ("anthropic_key", "tuned", lambda r: f"sk-ant-api03-{_s(r, 80, ALNUM + '-_')}AA"),
    ("aws_access_key", "tuned", lambda r: "AKIA" + _s(r, 16, string.ascii_uppercase + "234567")),
    ("aws_secret_key", "tuned", lambda r: f"aws_secret_access_key = {_b64(r, 40)}"),
    ("gcp_api_key", "tuned", lambda r: "AIza" + _s(r, 35, ALNUM + "-_")),
    ("github_token", "tuned", lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _s(r, 36)),
    ("github_pat", "held_out", lambda r: f"github_pat_{_s(r, 22)}_{_s(r, 59)}"),
    ("gitlab_token", "tuned", lambda r: "glpat-" + _s(r, 20, ALNUM + "-_")),
    ("gitlab_dashed", "held_out", lambda r: "glpat-" + "-".join(_s(r, 5) for _ in range(4))),
    ("slack_token", "tuned", lambda r: f"xoxb-{_d(r, 12)}-{_d(r, 13)}-{_s(r, 24)}"),
    ("slack_webhook", "tuned", lambda r: f"https://hooks.slack.com/services/T{_s(r, 8, string.ascii_uppercase + string.digits)}/B{_s(r, 8, string.ascii_uppercase + string.digits)}/{_s(r, 24)}"),
    ("stripe_key", "tuned", lambda r: f"sk_live_{_s(r, 24)}"),
    ("huggingface_token", "tuned", lambda r: "hf_" + _s(r, 34)),
    ("sendgrid_key", "held_out", lambda r: f"SG.{_s(r, 22, ALNUM + '-_')}.{_s(r, 43, ALNUM + '-_')}"),
    ("npm_token", "held_out", lambda r: "npm_" + _s(r, 36)),
    ("jwt", "tuned", _jwt),
    ("private_key", "tuned", _key_block),
    ("url_password", "tuned", lambda r: f"postgres://app:{_password(r).replace('@', '')}@db.internal:5432/prod"),
    ("password_env", "tuned", lambda r: f'DB_PASSWORD="{_password(r)}"'),
    ("password_unquoted", "tuned", lambda r: f"smtp_password = {_s(r, 14)}"),
    ("password_yaml", "held_out", lambda r: f"  password: {_password(r)}"),
    ("password_json", "held_out", lambda r: f'{{"user": "svc", "password": "{_password(r)}"}}'),
    ("api_key_assign", "held_out", lambda r: f"api_key='{_s(r, 32)}'"),
    ("client_secret", "held_out", lambda r: f"CLIENT_SECRET={_s(r, 40, ALNUM + '~._-')}"),
    ("cli_flag", "held_out", lambda r: f"mysql -u root --password={_password(r)} shop"),
    ("camel_password", "held_out", lambda r: f'const dbPassword = "{_password(r)}";'),
    ("azure_storage", "held_out", lambda r: f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={_b64(r, 86)}==;EndpointSuffix=core.windows.net"),
    ("twilio_key", "held_out", lambda r: "SK" + _s(r, 32, "0123456789abcdef")),
    ("groq_key", "held_out", lambda r: "gsk_" + _s(r, 52)),
    # Vendors with no pattern of their own in the check (only the generic rules can catch them).
    ("shopify_token", "held_out", lambda r: "shpat_" + _s(r, 32, "0123456789abcdef")),
    ("digitalocean_token", "held_out", lambda r: "dop_v1_" + _s(r, 64, "0123456789abcdef")),
    ("pypi_token", "held_out", lambda r: "pypi-AgEIcHlwaS5vcmc" + _s(r, 60, ALNUM + "-_")),
    ("linear_key", "held_out", lambda r: "lin_api_" + _s(r, 40)),
    ("vault_token", "held_out", lambda r: "hvs." + _s(r, 90, ALNUM + "_-")),
    ("openrouter_key", "held_out", lambda r: "sk-or-v1-" + _s(r, 64, "0123456789abcdef")),
    ("telegram_bot", "held_out", lambda r: f"{r.randint(100000000, 999999999)}:AA{_s(r, 33, ALNUM + '_-')}"),
    ("generic_token_assign", "held_out", lambda r: f"export SERVICE_TOKEN={_s(r, 32)}"),
]

_SECRET_SENTENCES = {
    "en": ["Here is my config, why does it fail?\n{v}\n", "I put {v} in the script and it works locally.",
           "Our deploy uses {v} — can you check the syntax?", "The log printed {v} before crashing."],
    "de": ["Hier meine Konfiguration:\n{v}\nWarum klappt der Login nicht?", "Ich habe {v} eingetragen, trotzdem 401.",
           "Im Skript steht {v}, ist das so richtig?"],
    "ko": ["설정 파일 내용입니다:\n{v}\n왜 인증이 실패하나요?", "{v} 를 넣었는데도 401 오류가 납니다.", "스크립트에 {v} 가 들어 있어요."],
}


def secret_rows(seed: int = 1, n_per_format: int = 20) -> list[dict]:
    r = random.Random(seed)
    rows = []
    for kind, split, gen in SECRET_KINDS:
        for _ in range(n_per_format):
            language = r.choice(["en", "de", "ko"])
            text = r.choice(_SECRET_SENTENCES[language]).format(v=gen(r))
            rows.append({"text": text, "label": 1, "kind": kind, "format": kind, "language": language, "split": split})
    rows += _negatives(r, SECRET_NEGATIVES, n_per_format, "secrets")
    return rows


SECRET_NEGATIVES: list[tuple[str, str, Gen]] = [
    ("git_sha", "tuned", lambda r: f"Fixed in commit {_s(r, 40, '0123456789abcdef')} on main."),
    ("sha256", "tuned", lambda r: f"sha256: {_s(r, 64, '0123456789abcdef')}  app.tar.gz"),
    ("docker_digest", "held_out", lambda r: f"image: python@sha256:{_s(r, 64, '0123456789abcdef')}"),
    ("integrity", "held_out", lambda r: f'"integrity": "sha512-{_b64(r, 86)}=="'),
    ("uuid", "tuned", lambda r: f"tenant_id = {_s(r, 8, '0123456789abcdef')}-{_s(r, 4, '0123456789abcdef')}-4{_s(r, 3, '0123456789abcdef')}-8{_s(r, 3, '0123456789abcdef')}-{_s(r, 12, '0123456789abcdef')}"),
    ("password_from_env", "tuned", lambda r: r.choice(['password = os.environ["DB_PASSWORD"]', "DB_PASSWORD=${DB_PASSWORD}",
                                                       "password: {{ .Values.db.password }}", "token = get_token(session)",
                                                       "api_key = settings.OPENAI_API_KEY", "secret_key = None"])),
    ("password_placeholder", "tuned", lambda r: r.choice(['password = "<your-password>"', "PASSWORD=changeme",
                                                          "api_key: YOUR_API_KEY_HERE", "password: ********",
                                                          'token = "xxxxxxxxxxxxxxxx"', "SECRET_KEY=replace-me"])),
    ("password_words", "held_out", lambda r: r.choice(["Passwort vergessen? Klicken Sie auf 'Passwort zurücksetzen'.",
                                                       "The password must be at least 12 characters long.",
                                                       "비밀번호는 8자 이상이어야 합니다.", "password_reset_token_expiry = 3600",
                                                       "Set max_token_length = 4096 in the config.",
                                                       "token_count = len(tokens)"])),
    ("stripe_ids", "held_out", lambda r: f"Customer cus_{_s(r, 14)} paid invoice in_{_s(r, 24)}."),
    ("identifiers", "tuned", lambda r: r.choice(["def get_user_account_balance_for_period(start, end):",
                                                 "class AbstractSingletonProxyFactoryBean2:",
                                                 "SELECT customer_id, order_total FROM orders_2024_q1;",
                                                 "npm install @types/node-fetch-with-retries2"])),
    ("base64_image", "held_out", lambda r: f"<img src=\"data:image/png;base64,{_b64(r, 120)}\">"),
    ("url", "tuned", lambda r: f"See https://docs.example.com/v{r.randint(1, 4)}/reference/{_s(r, 10, string.ascii_lowercase)}?page={r.randint(1, 9)}"),
    ("url_user", "held_out", lambda r: f"git clone ssh://git@github.com/acme/{_s(r, 8, string.ascii_lowercase)}.git"),
    ("sk_words", "held_out", lambda r: "We moved from scikit-learn to sk-learn-intelex and sk-video for speed."),
    ("css_js", "held_out", lambda r: f"const cls = 'btn-primary-{_s(r, 6, string.ascii_lowercase)} flex-col';"),
    ("build", "tuned", lambda r: f"Build 5.5.0.{r.randint(1, 9)} (commit {_s(r, 7, '0123456789abcdef')}) is live."),
    ("api_docs", "held_out", lambda r: "Send the API key in the Authorization header as `Bearer <token>`."),
    ("order_ids", "held_out", lambda r: f"Bestellung ORD-{_d(r, 4)}-{_s(r, 10, string.ascii_uppercase + string.digits)} wurde versandt."),
]


# --- probes: written after the checks were tuned, never tuned on -------------------------------
# Fixed texts (with random digits where a number goes), positives and hard negatives in the
# shapes people actually write, to judge the checks on what the formats above did not show.

PII_PROBES: list[tuple[int, Gen]] = [
    (1, lambda r: f"Telefon: +49-711-{_nz(r)}{_d(r, 6)}"),
    (1, lambda r: f"Rufen Sie an: 0711 / {_d(r, 3)} {_d(r, 2)} {_d(r, 2)}"),
    (1, lambda r: f"대표번호 (02) {_nz(r)}{_d(r, 3)}-{_d(r, 4)}"),
    (1, lambda r: f"핸드폰 010.{_d(r, 4)}.{_d(r, 4)}"),
    (1, lambda r: f"Mobile +44 7700 {_d(r, 3)} {_d(r, 3)}"),
    (1, lambda r: f"Standard : +33 1 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}"),
    (1, lambda r: f"お問い合わせ (03) {_d(r, 4)}-{_d(r, 4)}"),
    (1, lambda r: f"Call us at +1.{_nz(r)}{_d(r, 2)}.{_nz(r)}{_d(r, 2)}.{_d(r, 4)}"),
    (1, lambda r: f"Zentrale 0049 (0)89 {_nz(r)}{_d(r, 6)}"),
    (1, lambda r: f"Tel: +82-2-{_d(r, 4)}-{_d(r, 4)}"),
    (1, lambda r: f"phone {r.randint(201, 989)}{r.randint(200, 999)}{_d(r, 4)}"),
    (1, lambda r: f"Handy: 0170 {_d(r, 7)}"),
    (1, lambda r: f"Portable 06-{_d(r, 2)}-{_d(r, 2)}-{_d(r, 2)}-{_d(r, 2)}"),
    (1, lambda r: f"WhatsApp +336{_d(r, 8)}"),
    (1, lambda r: f"text me at +1 ({_nz(r)}{_d(r, 2)}) {_nz(r)}{_d(r, 2)}-{_d(r, 4)} tonight"),
    (1, lambda r: f"서울 02 {_d(r, 4)} {_d(r, 4)} 로 연락주세요"),
    (1, lambda r: f"SSN: {r.randint(100, 665)} {r.randint(10, 99)} {r.randint(1000, 9999)}"),
    (1, lambda r: f"mail first.last+tag{r.randint(1, 99)}@sub.example.org please"),
    (1, lambda r: f"ping {r.randint(30, 220)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)} fails"),
    (1, lambda r: "Karte " + _group(_card(r, "4", 16), (4, 4, 4, 4), "-")),
    (0, lambda r: f"Version {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)} released"),
    (0, lambda r: f"firmware v{r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 9)}.{r.randint(0, 9)} fixes it"),
    (0, lambda r: f"Chrome 120.0.{r.randint(5000, 6999)}.{r.randint(10, 200)} crashed"),
    (0, lambda r: f"Zeitraum 01.0{r.randint(1, 9)}.2024 - 3{r.randint(0, 1)}.12.2024"),
    (0, lambda r: f"Kundennummer {_d(r, 4)} {_d(r, 4)}"),
    (0, lambda r: f"Aktenzeichen 2 BvR {_d(r, 4)}/{r.randint(10, 24)}"),
    (0, lambda r: f"Artikel-Nr. {_d(r, 3)}.{_d(r, 3)}.{_d(r, 2)}"),
    (0, lambda r: f"Flight LH {r.randint(100, 999)} departs {r.randint(10, 23)}:{r.randint(10, 59)}, gate B{r.randint(10, 60)}"),
    (0, lambda r: f"Ticket #{_d(r, 4)} {_d(r, 4)} {_d(r, 2)} closed"),
    (0, lambda r: f"EAN {_d(r, 13)} im Lager"),
    (0, lambda r: f"HS code 8471.30.{_d(r, 4)} applies"),
    (0, lambda r: f"{r.randint(2000, 2030)}.{r.randint(1, 12):02d}.{r.randint(1, 28):02d} 공지사항"),
    (0, lambda r: f"Koordinaten {r.randint(30, 60)}.{_d(r, 4)}, {r.randint(100, 130)}.{_d(r, 4)}"),
    (0, lambda r: f"version 10.0.0.{r.randint(1, 9)} is out"),
    (0, lambda r: f"Lot 2024-{_d(r, 6)}, MHD 12/2026"),
    (0, lambda r: f"{r.randint(1, 9)} {_d(r, 3)} {_d(r, 3)} users signed up"),
    (0, lambda r: f"Sendungsnummer 00340434{_d(r, 12)}"),
    (0, lambda r: f"Timestamp {r.randint(1600000000, 1800000000)} ms offset {_d(r, 3)}"),
    (0, lambda r: f"Matrikelnummer {_d(r, 7)}, Raum 0.{r.randint(10, 99)}"),
    (0, lambda r: f"Preis: 1.{_d(r, 3)}.{_d(r, 3)},00 EUR"),
]

SECRET_PROBES: list[tuple[int, Gen]] = [
    (1, lambda r: f"AWS_SECRET_ACCESS_KEY: {_b64(r, 40)}"),
    (1, lambda r: f"mongodb+srv://admin:{_password(r).replace('@', '')}@cluster0.ab1cd.mongodb.net/db"),
    (1, lambda r: f"redis://:{_s(r, 20)}@cache.internal:6379/0"),
    (1, lambda r: f"git clone https://ghp_{_s(r, 36)}@github.com/acme/app.git"),
    (1, lambda r: f"curl -H 'Authorization: Bearer {_s(r, 40, ALNUM + '._-')}' https://api.example.com"),
    (1, lambda r: f"export OPENAI_API_KEY=sk-{_s(r, 48)}"),
    (1, lambda r: f"PGPASSWORD={_password(r)} psql -h db -U app"),
    (1, lambda r: f"password=Summer{r.randint(2000, 2030)}!"),
    (1, lambda r: f'{{"apiKey": "AIza{_s(r, 35, ALNUM + "-_")}"}}'),
    (1, lambda r: f'secret: "{_s(r, 32, "0123456789abcdef")}"'),
    (1, lambda r: f"MAILGUN_KEY=key-{_s(r, 32, '0123456789abcdef')}"),
    (1, lambda r: f"Passwort: {_password(r)}"),
    (1, lambda r: f"비밀번호: {_password(r)}"),
    (1, lambda r: f"xoxp-{_d(r, 11)}-{_d(r, 12)}-{_d(r, 12)}-{_s(r, 32, '0123456789abcdef')}"),
    (1, lambda r: f"sk_test_{_s(r, 99)}"),
    (1, lambda r: f"db.password = {_password(r)}"),
    (1, lambda r: f"<add key=\"ApiSecret\" value=\"{_s(r, 32)}\" />"),
    (1, lambda r: f"auth_token: {_s(r, 32, '0123456789abcdef')}"),
    (1, lambda r: f"gho_{_s(r, 36)} is the OAuth token"),
    (1, lambda r: f"-----BEGIN EC PRIVATE KEY-----\n{_b64(r, 64)}\n-----END EC PRIVATE KEY-----"),
    (0, lambda r: "token: ${{ secrets.GITHUB_TOKEN }}"),
    (0, lambda r: "password: ${{ secrets.DB_PASSWORD }}"),
    (0, lambda r: "api_key = os.getenv('API_KEY')"),
    (0, lambda r: "const token = await getToken(user);"),
    (0, lambda r: "key: value"),
    (0, lambda r: 'sort_key: "created_at"'),
    (0, lambda r: "The token limit is 128000 tokens per request."),
    (0, lambda r: f"partition_key = user_id_{r.randint(2000, 2030)}"),
    (0, lambda r: 'cache_key = f"user:{user_id}:profile"'),
    (0, lambda r: "foreign_key=True, primary_key=False"),
    (0, lambda r: f"hash: {_s(r, 32, '0123456789abcdef')}"),
    (0, lambda r: f'etag: "{_s(r, 40, "0123456789abcdef")}"'),
    (0, lambda r: f"api_version = 20{r.randint(20, 26)}-0{r.randint(1, 9)}-01"),
    (0, lambda r: "token_type: bearer, expires_in: 3600"),
    (0, lambda r: f"file_key = uploads/2024/0{r.randint(1, 9)}/report_final_v2.pdf"),
    (0, lambda r: "Press the key: Enter, then type your password: (it will not echo)."),
    (0, lambda r: f"public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{_s(r, 43)} user@host"),
    (0, lambda r: f"Video https://www.youtube.com/watch?v={_s(r, 11, ALNUM + '-_')}&list=PL{_s(r, 32)}"),
    (0, lambda r: f"node_modules/.pnpm/react-dom@18.2.0_react@18.2.0/node_modules/react-dom/cjs/react-dom.{_s(r, 8, string.ascii_lowercase)}.js"),
    (0, lambda r: f"model: meta-llama/Llama-3.1-8B-Instruct, revision {_s(r, 40, '0123456789abcdef')}"),
]


def probe_rows(check: str, seed: int = 1, n_each: int = 10) -> list[dict]:
    r = random.Random(seed)
    table = PII_PROBES if check == "pii" else SECRET_PROBES
    return [{"text": gen(r), "label": label, "kind": "probe", "format": f"probe{i}", "language": "mixed", "split": "probe"}
            for i, (label, gen) in enumerate(table) for _ in range(n_each)]


# A second round of probes, written once the checks were final; their first run is the
# figure the README reports as such.
PII_PROBES_2: list[tuple[int, Gen]] = [
    (1, lambda r: f"Mobil: +49 (0) 171 / {_d(r, 3)} {_d(r, 2)} {_d(r, 2)}"),
    (1, lambda r: f"전화: 010 {_d(r, 4)} {_d(r, 4)}"),
    (1, lambda r: f"연락처는 010-{_d(r, 4)}-{_d(r, 4)}입니다"),
    (1, lambda r: f"Büro +82 (0)2 {_nz(r)}{_d(r, 2)} {_d(r, 4)}"),
    (1, lambda r: f"UK: +44 (0) 7700 {_d(r, 3)} {_d(r, 3)}"),
    (1, lambda r: f"Switchboard (020) {_d(r, 4)} {_d(r, 4)}"),
    (1, lambda r: f"Call 1 (800) {_nz(r)}{_d(r, 2)}-{_d(r, 4)}"),
    (1, lambda r: f"Phone: {_nz(r)}{_d(r, 2)}.{_nz(r)}{_d(r, 2)}.{_d(r, 4)}"),
    (1, lambda r: f"大阪 06-{_d(r, 4)}-{_d(r, 4)}"),
    (1, lambda r: f"フリーダイヤル 0120-{_d(r, 3)}-{_d(r, 3)}"),
    (1, lambda r: f"Portable : +33 (0)6 {_d(r, 2)} {_d(r, 2)} {_d(r, 2)} {_d(r, 2)}"),
    (1, lambda r: f"NYC office +1-212-{_nz(r)}{_d(r, 2)}-{_d(r, 4)}"),
    (1, lambda r: f"Fax 030-{_nz(r)}{_d(r, 7)}"),
    (1, lambda r: f"Mail an Jane.Doe{r.randint(1, 9)}@Example.COM bitte"),
    (1, lambda r: f"Amex {_card(r, '37', 15)} auf Rechnung"),
    (1, lambda r: f"SSN#: {r.randint(100, 665)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}"),
    (1, lambda r: f"link-local fe80::{r.randint(256, 4095):x}:fe23:{r.randint(4096, 65535):x}:{r.randint(4096, 65535):x}"),
    (1, lambda r: f"주민번호: {_rrn(r)}"),
    (1, lambda r: f"IBAN: {_iban(r, 'AT', 20, True)}"),
    (1, lambda r: f"my number is {r.randint(201, 989)} {r.randint(200, 999)} {_d(r, 4)}"),
    (0, lambda r: f"Release {r.randint(1, 9)}.{r.randint(10, 20)}.0.{r.randint(1, 9)} is out"),
    (0, lambda r: f"Die Summe beträgt {r.randint(10, 99)}.{_d(r, 3)}.{_d(r, 3)} EUR"),
    (0, lambda r: f"Rechnungsnummer: 2024-{_d(r, 6)}"),
    (0, lambda r: f"Datum: 20{r.randint(10, 29)}/{r.randint(1, 12):02d}/{r.randint(1, 28):02d}"),
    (0, lambda r: f"Zeit: {r.randint(8, 16)}:30-{r.randint(17, 20)}:45 Uhr"),
    (0, lambda r: f"ISBN-13: 978{_d(r, 10)}"),
    (0, lambda r: f"PLZ 0{r.randint(1000, 9999)} Dresden"),
    (0, lambda r: f"Server build 10.0.{r.randint(14393, 22631)}.{r.randint(1, 9)}"),
    (0, lambda r: f"Seite {r.randint(100, 499)}-{r.randint(500, 999)}"),
    (0, lambda r: f"Order {_d(r, 3)}-{_d(r, 7)}-{_d(r, 7)}"),
    (0, lambda r: f"주문번호: 2024{_d(r, 12)}"),
    (0, lambda r: f"Population {r.randint(10, 99)} {_d(r, 3)} {_d(r, 3)}"),
    (0, lambda r: f"Koordinaten {r.randint(40, 60)}.{_d(r, 6)}, {r.randint(5, 15)}.{_d(r, 6)}"),
    (0, lambda r: f"{r.randint(1, 9)}.000.000 Besucher"),
    (0, lambda r: f"GPS 37.{_d(r, 4)}° N, 126.{_d(r, 4)}° E"),
    (0, lambda r: f"Build 2024{r.randint(1, 12):02d}{r.randint(1, 28):02d}.{r.randint(1, 9)}"),
    (0, lambda r: f"Version {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}-beta"),
    (0, lambda r: f"Modellnummer X1-{_d(r, 4)}-{_d(r, 4)}"),
    (0, lambda r: f"Kapitel {r.randint(1, 9)}.{r.randint(1, 9)}.{r.randint(1, 9)}.{r.randint(1, 9)} beschreibt das"),
    (0, lambda r: f"Laufzeit {_d(r, 7)} ms bei {r.randint(100, 999)} Anfragen"),
]

SECRET_PROBES_2: list[tuple[int, Gen]] = [
    (1, lambda r: f"OPENAI_API_KEY='sk-{_s(r, 48)}'"),
    (1, lambda r: f"api-key: {_s(r, 32, '0123456789abcdef')}"),
    (1, lambda r: f"Password: {_password(r)}"),
    (1, lambda r: f"pwd=Summer{r.randint(2000, 2030)}!"),
    (1, lambda r: f"jdbc:mysql://db:3306/app?user=root&password={_s(r, 14)}"),
    (1, lambda r: f"export AWS_SECRET_ACCESS_KEY={_b64(r, 40)}"),
    (1, lambda r: f"aws_access_key_id = AKIA{_s(r, 16, string.ascii_uppercase + '234567')}"),
    (1, lambda r: f"SLACK_BOT_TOKEN=xoxb-{_d(r, 12)}-{_d(r, 13)}-{_s(r, 24)}"),
    (1, lambda r: f"Authorization: token ghp_{_s(r, 36)}"),
    (1, lambda r: f'"private_key": "-----BEGIN PRIVATE KEY-----\\\\n{_b64(r, 64)}\\\\n-----END PRIVATE KEY-----\\\\n"'),
    (1, lambda r: f"secret_key_base: {_s(r, 128, '0123456789abcdef')}"),
    (1, lambda r: f"DJANGO_SECRET_KEY='django-insecure-{_s(r, 50, ALNUM + '!@#$%^&*(-_=+)')}'"),
    (1, lambda r: f"ftp://admin:Adm1n{r.randint(2000, 2030)}@ftp.example.com/pub"),
    (1, lambda r: f"client_secret = 'GOCSPX-{_s(r, 28, ALNUM + '-_')}'"),
    (1, lambda r: f'"token": "{_jwt(r)}"'),
    (1, lambda r: f"HF_TOKEN=hf_{_s(r, 34)}"),
    (1, lambda r: f"STRIPE_SECRET_KEY=rk_live_{_s(r, 99)}"),
    (1, lambda r: f"db_pass: '{_password(r)}'"),
    (1, lambda r: f"heroku api key: {_s(r, 8, '0123456789abcdef')}-{_s(r, 4, '0123456789abcdef')}-{_s(r, 4, '0123456789abcdef')}-{_s(r, 4, '0123456789abcdef')}-{_s(r, 12, '0123456789abcdef')}"),
    (1, lambda r: f"webhook secret whsec_{_s(r, 32)}"),
    (0, lambda r: "password: str = Field(..., min_length=8)"),
    (0, lambda r: "token = request.headers.get('Authorization')"),
    (0, lambda r: "SECRET_KEY = env('SECRET_KEY')"),
    (0, lambda r: "key = f'{prefix}:{user_id}'"),
    (0, lambda r: "api_key: Optional[str] = None"),
    (0, lambda r: "The API key looks like sk- followed by 48 characters."),
    (0, lambda r: "PASSWORD_MIN_LENGTH = 12"),
    (0, lambda r: "auth: basic"),
    (0, lambda r: "id = Column(Integer, primary_key=True, index=True)"),
    (0, lambda r: f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC{_s(r, 60, ALNUM + '+/')} user@host"),
    (0, lambda r: f"commit: {_s(r, 40, '0123456789abcdef')}"),
    (0, lambda r: f"docker pull ghcr.io/acme/app:sha-{_s(r, 7, '0123456789abcdef')}"),
    (0, lambda r: "export PATH=$HOME/.local/bin:$PATH"),
    (0, lambda r: "token_type_hint=refresh_token"),
    (0, lambda r: "secret santa gift ideas: 1) socks 2) a mug"),
    (0, lambda r: "Set the pass_through flag: true"),
    (0, lambda r: "keyboard: QWERTZ (German layout)"),
    (0, lambda r: "monkey_patch_key = 'module.function'"),
    (0, lambda r: "id_token_signing_alg_values_supported: RS256"),
    (0, lambda r: f"session cookie name: sessionid_{_s(r, 6, string.ascii_lowercase)}"),
]


def probe_rows_2(check: str, seed: int = 1, n_each: int = 10) -> list[dict]:
    r = random.Random(seed)
    table = PII_PROBES_2 if check == "pii" else SECRET_PROBES_2
    return [{"text": gen(r), "label": label, "kind": "probe2", "format": f"probe2_{i}", "language": "mixed",
             "split": "probe2"} for i, (label, gen) in enumerate(table) for _ in range(n_each)]
