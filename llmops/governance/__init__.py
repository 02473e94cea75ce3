"""Who may do what, and what it cost.

The key record (`KeyInfo`, one type for virtual keys and the master key), the one
authentication path and admin authorization (`access`), rate limits and budgets, local
or in Redis (`limits`), and the ledger: its rows, writer, spill files and spend queries
(`ledger`, `ledger_models`, `spend`). The gateway uses it through `Governance`
(authenticate, authorize_admin, admit, settle, record); the CLI, the UI, spend reports
and experiments read the same tables without importing the gateway.
"""

from llmops.governance.access import MASTER, Access
from llmops.governance.keys import KeyInfo, KeyStore
from llmops.governance.service import Governance

__all__ = ["MASTER", "Access", "Governance", "KeyInfo", "KeyStore"]
