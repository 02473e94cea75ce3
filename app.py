"""The llmops app: `streamlit run app.py` (pages in llmops/ui/pages/).

Reads LLMOPS_DATABASE_URL like the gateway; calls models through a gateway started in
this process (LLMOPS_GATEWAY_CONFIG, default gateway/config.yaml) or a running one
(LLMOPS_GATEWAY_URL, with LLMOPS_API_KEY).
"""

from llmops.ui.app import main

main()
