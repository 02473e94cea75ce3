"""Synthetic traffic for the monitoring tests: questions and contexts drawn at random
from small pools, in English about billing (before) and in French about deliveries
(after a shift); and a degraded week written straight to the tables."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

CITIES = ["Leeds", "Lyon", "Porto", "Graz", "Turin", "Ghent", "Cork", "Malmo", "Bergen", "Brno"]
PRODUCTS = ["router", "laptop", "headset", "monitor", "keyboard", "tablet", "printer", "camera"]


def context(rng: random.Random) -> str:
    city, product = rng.choice(CITIES), rng.choice(PRODUCTS)
    year, staff, price = rng.randint(1990, 2020), rng.randint(20, 900), rng.randint(50, 900)
    return (f"The {city} store opened in {year}. It employs {staff} people. "
            f"Its best selling item is the {product}, sold for {price} euros.")


def english_question(rng: random.Random) -> str:
    what = rng.choice(["invoice", "bill", "payment", "refund", "charge", "receipt"])
    when = rng.choice(["last month", "this week", "in March", "yesterday", "on Monday"])
    return rng.choice([
        f"Why is my {what} from {when} higher than usual?",
        f"How can I get a copy of the {what} for {when}?",
        f"Can you explain the {what} I received {when}?",
        f"What is the extra {what} on my account {when}?",
    ])


def french_question(rng: random.Random) -> str:
    what = rng.choice(["colis", "livraison", "commande", "paquet", "envoi"])
    where = rng.choice(["à Lyon", "chez ma voisine", "au point relais", "à mon bureau", "en Belgique"])
    return rng.choice([
        f"Où est mon {what} qui devait arriver {where} depuis trois jours et que je ne vois toujours pas ?",
        f"Pourquoi la {what} prévue {where} est-elle encore en retard cette semaine malgré vos promesses ?",
        f"Comment puis-je suivre le {what} envoyé {where} avec le numéro de suivi que vous m'avez donné ?",
        f"Est-ce que le {what} pour {where} peut être livré demain matin avant neuf heures s'il vous plaît ?",
    ])


def degraded_week(database_url: str, now: datetime) -> None:
    """A week of one prompt's calls written as the gateway would (ledger rows, captures,
    feedback): 60 from 2-6 days ago, then 60 in the last day that are five times slower,
    half failed, refusing, and rated down."""
    from llmops.db import get_engine
    from llmops.experiments.feedback import record_feedback
    from llmops.governance.ledger_models import LEDGER_TABLE
    from llmops.monitoring.models import PAYLOADS

    rng = random.Random(3)
    ledger, payloads, ids = [], [], []
    for i in range(120):
        recent = i >= 60
        at = now - (timedelta(hours=rng.uniform(1, 20)) if recent else timedelta(days=rng.uniform(2, 6)))
        rid = f"req-{int(at.timestamp() * 1e6):013x}{rng.getrandbits(80):020x}"  # as the gateway makes them
        ids.append(rid)
        slow = recent  # the recent calls are five times slower and half of them fail
        ledger.append({
            "id": rid, "created_at": at, "model": "m", "prompt_name": "p", "prompt_version": 1, "outcome":
            "upstream_error" if (recent and i % 2) else "success", "status": 200, "input_tokens": 10 + i % 5,
            "output_tokens": 20, "latency_ms": rng.uniform(100, 120) * (5 if slow else 1), "cost": 0.001,
            "guardrail_verdicts": [{"check": "pii", "action": "flag"}] if i % 10 == 0 else None,
        })
        payloads.append({
            "id": rid, "created_at": at, "expires_at": at + timedelta(days=7), "model": "m", "prompt_name": "p",
            "prompt_version": 1, "request_text": "user: what is the price of the blue chair", "chars": 10,
            "response_text": "I can't help with that." if recent else "The blue chair costs 40 euros.",
            "context": "The blue chair costs 40 euros.", "truncated": False,
        })
    with get_engine(database_url).begin() as conn:
        conn.execute(LEDGER_TABLE.insert(), ledger)
        conn.execute(PAYLOADS.insert(), payloads)
    for i in range(0, 120, 2):
        record_feedback(ids[i], score=1.0 if i < 60 else 0.0, database_url=database_url)
