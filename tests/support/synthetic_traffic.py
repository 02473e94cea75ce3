"""Synthetic traffic for the monitoring tests: questions and contexts drawn at random
from small pools, in English about billing (before) and in French about deliveries
(after a shift)."""

from __future__ import annotations

import random

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
