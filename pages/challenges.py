"""The four challenges of the large-model era, with evidence and calculators.

A thin view: content and figures come from bigmodels.content, formulas from
bigmodels.analysis.calculators.
"""
from __future__ import annotations


import streamlit as st

from bigmodels.analysis import calculators as calc
from bigmodels.content import views
from bigmodels.figures import writeups as writeup_figures
from bigmodels.content.cases import default_cases
from bigmodels.content.challenges import default_challenges
from bigmodels.base.formatting import format_bytes, format_flops, format_money
from bigmodels.base.problems import ConfigError
from bigmodels.app.charts import chart
from bigmodels.app.routing import page_link
from bigmodels.app.session import language, t

ACCELERATOR_KEYS = list(calc.ACCELERATORS)
DTYPES = list(calc.DTYPE_BYTES)


def demo_link(page: str, label: str) -> None:
    """Link to the page that demonstrates a challenge, or say it cannot be linked."""
    if not page_link(page, label):
        st.caption(t("challenges.demo.unavailable", page=page))


def challenge_tabs(content, cases, lang: str) -> None:
    """One tab per challenge: the evidence, the responses, the cases, a demo."""
    tabs = st.tabs([c.title[lang] for c in content.challenges])
    for tab, challenge in zip(tabs, content.challenges):
        with tab:
            st.header(challenge.title[lang])
            st.write(challenge.summary[lang])

            if challenge.chart:
                dataset = content.datasets[challenge.chart]
                log_y = st.toggle(t("challenges.chart.log"), value=True, key=f"log_{challenge.id}")
                chart(writeup_figures.dataset_figure(dataset, lang, log_y=log_y), key=f"chart_{challenge.id}")
                factor, years = views.growth_factor(dataset)
                st.caption(t("challenges.chart.caption") + " " + t("challenges.chart.growth", factor=f"{factor:,.0f}", years=years))
                with st.expander(t("challenges.chart.table")):
                    st.dataframe(
                        views.dataset_table(dataset, lang),
                        hide_index=True,
                        column_config={t("challenges.table.source"): st.column_config.LinkColumn()},
                    )

            st.subheader(t("challenges.section.evidence"))
            for ev in challenge.evidence:
                st.markdown(f"- {ev.text[lang]} — [{ev.source.title}]({ev.source.url})")

            st.subheader(t("challenges.section.responses"))
            st.markdown("\n".join(f"- {r[lang]}" for r in challenge.responses))

            names = views.cases_for_challenge(cases, challenge.id, lang)
            if names:
                st.caption(t("challenges.section.cases", names="、".join(names) if lang == "zh" else ", ".join(names)))

            st.subheader(t("challenges.section.try"))
            demo_link(challenge.demo_page, challenge.demo_label[lang])


def invalid_input(exc: ConfigError) -> None:
    """A calculator's bad input, in the reader's language."""
    st.error(t("challenges.calc.error", message="; ".join(exc.messages(language()))))


def accelerator_caption(key: str) -> None:
    acc = calc.ACCELERATORS[key]
    st.caption(
        t(
            "challenges.calc.accelerator_source",
            name=acc.name,
            tflops=f"{acc.peak_bf16_dense_tflops:g}",
            memory=f"{acc.memory_gb:g}",
            title=acc.source_title,
            url=acc.source_url,
        )
    )


def calculator_preset(kind: str, presets: dict):
    """A calculator's heading and preset picker: (preset id, the preset or None for "custom")."""
    st.subheader(t(f"challenges.calc.{kind}.header"))
    options = ["custom", *presets]
    preset_id = st.selectbox(
        t("challenges.calc.preset"),
        options=options,
        index=1,
        # the texts are made now: a format_func that looks the language up later can run outside this session
        format_func={"custom": t("challenges.calc.preset.custom"),
                     **{k: views.preset_label(presets, k, language()) for k in presets}}.get,
        key=f"{kind}_preset",
    )
    return preset_id, presets.get(preset_id)


def training_calculator() -> None:
    """Training compute, time and cost."""
    with st.container(border=True):
        preset_id, preset = calculator_preset("train", views.TRAINING_PRESETS)
        with st.form("train_form"):
            c1, c2 = st.columns(2)
            n_b = c1.number_input(
                t("challenges.calc.train.params"), min_value=0.0, value=(preset.n_params / 1e9 if preset else 7.0),
                step=1.0, key=f"train_n_{preset_id}",
            )
            d_b = c2.number_input(
                t("challenges.calc.train.tokens"), min_value=0.0, value=(preset.n_tokens / 1e9 if preset else 1000.0),
                step=100.0, key=f"train_d_{preset_id}",
            )
            c3, c4, c5, c6 = st.columns(4)
            acc_key = c3.selectbox(t("challenges.calc.train.accelerator"), ACCELERATOR_KEYS, index=1, key="train_acc")
            mfu = c4.slider(t("challenges.calc.train.mfu"), 0.05, 1.0, 0.40, 0.01, help=t("challenges.calc.train.mfu_help"), key="train_mfu")
            price = c5.number_input(t("challenges.calc.train.price"), min_value=0.0, value=2.0, step=0.25, key="train_price")
            gpus = c6.number_input(t("challenges.calc.train.gpus"), min_value=1, value=1024, step=1, key="train_gpus")
            st.form_submit_button(t("challenges.calc.train.submit"))
        try:
            est = calc.estimate_training(n_b * 1e9, d_b * 1e9, acc_key, mfu=mfu, price_per_gpu_hour=price, n_gpus=int(gpus))
        except ConfigError as exc:
            invalid_input(exc)
        else:
            # Three to a row: at 1280 px five metrics cut off "3.15 × 10²³" and the labels.
            top, bottom = st.columns(3), st.columns(3)
            top[0].metric(t("challenges.calc.train.flops"), format_flops(est.flops))
            top[1].metric(t("challenges.calc.train.gpu_hours"), f"{est.gpu_hours:,.0f}")
            top[2].metric(t("challenges.calc.train.cost"), format_money(est.cost, language()))
            bottom[0].metric(t("challenges.calc.train.gpu_days"), f"{est.gpu_days:,.0f}")
            bottom[1].metric(t("challenges.calc.train.wall", gpus=int(gpus)), f"{est.wall_clock_days:,.1f}")
        accelerator_caption(acc_key)
        if preset:
            st.caption(t("challenges.calc.source", title=preset.source_title, url=preset.source_url))
        st.markdown(t("challenges.calc.train.formula"))


def billions_input(column, label_key: str, parameters: float | None, key: str) -> float:
    """A parameter count in billions, starting from a preset's (7B without one)."""
    return column.number_input(t(label_key), min_value=0.0, value=parameters / 1e9 if parameters else 7.0, step=1.0,
                               key=key)


def memory_calculator() -> None:
    """Memory for the weights and for training."""
    with st.container(border=True):
        mem_id, mem_preset = calculator_preset("mem", views.MEMORY_PRESETS)
        with st.form("mem_form"):
            c1, c2, c3, c4 = st.columns(4)
            params_b = billions_input(c1, "challenges.calc.mem.params", mem_preset[1] if mem_preset else None,
                                      f"mem_n_{mem_id}")
            dtype = c2.selectbox(t("challenges.calc.mem.dtype"), DTYPES, index=DTYPES.index("bf16"), key="mem_dtype")
            convention = c3.selectbox(
                t("challenges.calc.mem.convention"),
                list(calc.TRAINING_CONVENTIONS),
                format_func={k: t(f"challenges.calc.conv.{k}") for k in calc.TRAINING_CONVENTIONS}.get,
                key="mem_conv",
            )
            mem_acc = c4.selectbox(t("challenges.calc.mem.accelerator"), ACCELERATOR_KEYS, index=2, key="mem_acc")
            st.form_submit_button(t("challenges.calc.mem.submit"))
        try:
            w = calc.weights_bytes(params_b * 1e9, dtype)
            s = calc.training_state_bytes(params_b * 1e9, convention)
        except ConfigError as exc:
            invalid_input(exc)
        else:
            m = st.columns(2)
            m[0].metric(t("challenges.calc.mem.weights"), format_bytes(w, si=True))
            m[1].metric(t("challenges.calc.mem.training"), format_bytes(s, si=True))
            st.write(
                t(
                    "challenges.calc.mem.gpus",
                    n=calc.gpus_needed(w, mem_acc),
                    m=calc.gpus_needed(s, mem_acc),
                    gpu=calc.ACCELERATORS[mem_acc].name,
                )
            )
        if mem_preset:
            st.caption(t("challenges.calc.source", title=views.preset_label(views.MEMORY_PRESETS, mem_id, language()),
                         url=mem_preset[2]))
        st.markdown(t("challenges.calc.mem.formula"))


def serving_calculator() -> None:
    """Serving memory: the weights and the KV cache."""
    with st.container(border=True):
        kv_id, kv = calculator_preset("kv", views.SERVING_PRESETS)
        with st.form("kv_form"):
            c1, c2, c3, c4 = st.columns(4)
            kv_params = billions_input(c1, "challenges.calc.kv.params", kv.n_params if kv else None, f"kv_n_{kv_id}")
            w_dtype = c2.selectbox(
                t("challenges.calc.kv.weight_dtype"), DTYPES, index=DTYPES.index(kv.dtype if kv else "bf16"), key=f"kv_wd_{kv_id}"
            )
            layers = c3.number_input(t("challenges.calc.kv.layers"), min_value=1, value=kv.layers if kv else 32, step=1, key=f"kv_l_{kv_id}")
            kv_heads = c4.number_input(
                t("challenges.calc.kv.kv_heads"), min_value=1, value=kv.kv_heads if kv else 8, step=1, key=f"kv_h_{kv_id}"
            )
            c5, c6, c7, c8, c9 = st.columns(5)
            head_dim = c5.number_input(
                t("challenges.calc.kv.head_dim"), min_value=1, value=kv.head_dim if kv else 128, step=1, key=f"kv_d_{kv_id}"
            )
            seq = c6.number_input(t("challenges.calc.kv.seq"), min_value=1, value=2048, step=256, key="kv_seq")
            batch = c7.number_input(t("challenges.calc.kv.batch"), min_value=1, value=1, step=1, key="kv_batch")
            kv_dtype = c8.selectbox(
                t("challenges.calc.kv.dtype"), DTYPES, index=DTYPES.index(kv.dtype if kv else "bf16"), key=f"kv_kd_{kv_id}"
            )
            kv_acc = c9.selectbox(t("challenges.calc.kv.accelerator"), ACCELERATOR_KEYS, index=2, key="kv_acc")
            st.form_submit_button(t("challenges.calc.kv.submit"))
        try:
            mem = calc.inference_memory(
                kv_params * 1e9, w_dtype, int(layers), int(kv_heads), int(head_dim), int(seq), int(batch), kv_dtype
            )
        except ConfigError as exc:
            invalid_input(exc)
        else:
            m = st.columns(3)
            m[0].metric(t("challenges.calc.kv.weights"), format_bytes(mem.weights, si=True))
            m[1].metric(t("challenges.calc.kv.cache"), format_bytes(mem.kv_cache, si=True))
            m[2].metric(t("challenges.calc.kv.total"), format_bytes(mem.total, si=True))
            st.write(t("challenges.calc.kv.gpus", n=calc.gpus_needed(mem.total, kv_acc), gpu=calc.ACCELERATORS[kv_acc].name))
        accelerator_caption(kv_acc)
        if kv:
            st.caption(t("challenges.calc.source", title=kv.source_title, url=kv.source_url))
        st.markdown(t("challenges.calc.kv.formula"))


def main() -> None:
    lang = language()
    content = default_challenges()
    cases = list(default_cases())
    st.title(t("challenges.title"))
    st.write(t("challenges.intro", article=t("app.source_article")))
    challenge_tabs(content, cases, lang)

    st.divider()
    st.header(t("challenges.calc.header"))
    st.write(t("challenges.calc.intro"))
    training_calculator()
    page_link("lab", t("challenges.compute.lab_link"))
    memory_calculator()
    serving_calculator()


main()
