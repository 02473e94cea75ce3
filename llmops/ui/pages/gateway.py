"""Gateway: the models it serves, their deployments and health; send a test request."""

from __future__ import annotations

import streamlit as st

from llmops.ui.widgets import gateway, page_errors, readable, show_notices, ui_settings

PROBES = "gateway_probes"

settings = ui_settings()
st.title("Gateway")
show_notices()


def state_of(d) -> str:
    # A deployment takes calls unless it is resting after failures or fails its health probe.
    if d.available:
        return "available"
    if d.cooldown_remaining_s:
        return f"cooling down ({d.cooldown_remaining_s:.0f} s left)"
    if not d.healthy:
        return "unreachable (fails its health check)"
    return "unavailable"


with page_errors(settings):
    client = gateway(settings)
    st.caption(f"Models through the {settings.gateway_label}")
    b1, b2, _ = st.columns([1, 2, 5])
    if b1.button("Refresh", key="gateway_refresh"):
        st.rerun()
    if b2.button("Check each model", key="gateway_probe", help="Sends every model a one-token request"):
        names = client.model_names()
        with st.spinner(f"Calling {len(names)} model(s)…"):
            st.session_state[PROBES] = client.probe(names)
    health = client.health()
    deployments = [d for m in health.models for d in m.deployments]
    m = st.columns(4)
    m[0].metric("Ready", "yes" if health.ready else "no")
    m[1].metric("Database", health.database)
    m[2].metric("Models", len(health.models))
    m[3].metric("Available deployments", f"{sum(d.available for d in deployments)}/{len(deployments)}")
    if not health.ready:
        st.error(
            "The gateway is not ready: its database is unreachable or every deployment is cooling down. "
            "Check LLMOPS_DATABASE_URL and the deployments below."
        )

    st.subheader("Models")
    st.dataframe(
        [
            {
                "model": model.name,
                "description": model.description or "",
                "deployments": f"{model.available}/{len(model.deployments)} available",
                "fallbacks": ", ".join(model.fallbacks) or "-",
            }
            for model in health.models
        ],
        hide_index=True,
        width="stretch",
    )

    if health.off_models:
        st.warning(
            f"{len(health.off_models)} model(s) in the config are off: "
            + "; ".join(f"**{name}**: {why}" for name, why in health.off_models.items())
        )
        st.dataframe(
            [{"model": name, "off because": why} for name, why in health.off_models.items()],
            hide_index=True,
            width="stretch",
        )
    for name, why in health.off_deployments.items():
        st.caption(f"{name}: {why}")

    probes = st.session_state.get(PROBES)
    if probes:
        st.caption("Last check")
        st.dataframe(
            [
                {
                    "model": p.model,
                    "answers": "yes" if p.ok else "no",
                    "latency ms": round(p.latency_ms, 1),
                    "detail": p.detail,
                }
                for p in probes
            ],
            hide_index=True,
            width="stretch",
        )

    st.subheader("Deployments")
    st.dataframe(
        readable(
            [
                {
                    "deployment": d.name,
                    "model": d.model,
                    "state": state_of(d),
                    "provider": d.provider,
                    "upstream model": d.upstream_model,
                    "api base": d.api_base,
                    "weight": d.weight,
                    "failures in a row": d.consecutive_failures,
                    "succeeded": d.successes_total,
                    "failed": d.failures_total,
                    "in flight": d.inflight,
                }
                for d in deployments
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "The router sends calls to every available deployment; one that fails several calls in a row rests for a "
        "while (cooling down), then gets one probe call. Counts are since the gateway started; "
        '"Check each model" calls them now.'
    )

    st.subheader("Try a model")
    with st.form("gateway_try"):
        model = st.selectbox("Model", [mo.name for mo in health.models], key="gateway_model")
        message = st.text_area("Message", "Say hello in one sentence.", key="gateway_message")
        sent = st.form_submit_button("Send", key="gateway_send")
    if sent:
        with st.spinner(f"Calling {model}…"):
            reply = client.chat(model, [{"role": "user", "content": message}])
        st.text(reply.text)
        cost = "unknown cost" if reply.cost is None else f"${reply.cost:.6f}"
        st.caption(
            f"{reply.input_tokens} → {reply.output_tokens} tokens · {cost} · {reply.latency_ms:.0f} ms · "
            f"deployment {reply.deployment or '?'} · request {reply.request_id or '?'}"
        )
