"""Global case studies: map, timeline, sortable table and one card per case.

A thin view: data, filtering, sorting and figures live in bigmodels.content.
"""
from __future__ import annotations

import streamlit as st

from bigmodels.content import views
from bigmodels.figures import writeups as writeup_figures
from bigmodels.content.cases import CHALLENGES, MODALITIES, REGIONS, WEIGHTS, default_cases
from bigmodels.figures.chart_payload import GEO
from bigmodels.app.charts import chart
from bigmodels.app.routing import page_link
from bigmodels.app.session import language, t


def filtered(all_cases, lang: str):
    """The sidebar filters, and the cases they let through."""
    lo, hi = views.year_bounds(all_cases)
    with st.sidebar:
        st.header(t("cases.filter.header"))
        def choose(label_key: str, labels: dict, key: str) -> list[str]:
            return st.multiselect(t(label_key), options=list(labels), format_func=lambda k: labels[k][lang], key=key,
                                  placeholder=t("cases.filter.any"))

        regions = choose("cases.filter.region", REGIONS, "cases_regions")
        modalities = choose("cases.filter.modality", MODALITIES, "cases_modalities")
        years = st.slider(t("cases.filter.years"), min_value=lo, max_value=hi, value=(lo, hi), key="cases_years")
        weights = choose("cases.filter.weights", WEIGHTS, "cases_weights")
        challenges = choose("cases.filter.challenge", CHALLENGES, "cases_challenges")
    return views.filter_cases(
        all_cases,
        views.CaseFilter(
            regions=frozenset(regions),
            modalities=frozenset(modalities),
            weights=frozenset(weights),
            challenges=frozenset(challenges),
            year_range=(int(years[0]), int(years[1])),
        ),
    )


def summary(shown) -> None:
    counts = views.summary_counts(shown)
    cols = st.columns(4)
    cols[0].metric(t("cases.metric.cases"), counts["cases"])
    cols[1].metric(t("cases.metric.countries"), counts["countries"])
    cols[2].metric(t("cases.metric.modalities"), counts["modalities"])
    cols[3].metric(t("cases.metric.open"), counts["open"])


COUNTRY_KEY = "cases_country"  # the country clicked on the map, while it filters
MAP_ROUND_KEY = "cases_map_round"  # a new map widget (its selection cleared) after "clear"


def map_key() -> str:
    return f"cases_map_{st.session_state.get(MAP_ROUND_KEY, 0)}"


def pick_country() -> None:
    """The map's selection callback: a clicked country becomes the filter."""
    code = views.selected_country(st.session_state.get(map_key()))
    if code:
        st.session_state[COUNTRY_KEY] = code


def clear_country() -> None:
    st.session_state.pop(COUNTRY_KEY, None)
    st.session_state[MAP_ROUND_KEY] = st.session_state.get(MAP_ROUND_KEY, 0) + 1


def country_filter(lang: str) -> str | None:
    """The country picked on the map, shown with a visible way to clear it."""
    code = st.session_state.get(COUNTRY_KEY)
    if code:
        text, button = st.columns([4, 1], vertical_alignment="center")
        text.info(t("cases.country.filtering", country=views.country_name(code, lang)), icon=":material/public:")
        button.button(t("cases.country.clear"), on_click=clear_country, key="cases_country_clear",
                      icon=":material/close:")
    return code


def world_map(on_map, lang: str) -> None:
    """The world map of the cases the other filters let through; click a country to keep its cases."""
    st.subheader(t("cases.map.header"))
    chart(writeup_figures.world_map_figure(on_map, lang), key=map_key(), config=writeup_figures.PLOTLY_CONFIG, bundle=GEO,
          on_select=pick_country)
    st.caption(t("cases.map.caption"))


def timeline(shown, lang: str) -> None:
    st.subheader(t("cases.timeline.header"))
    # The map's bundle draws it too: one plotly.js for the page.
    chart(writeup_figures.timeline_figure(shown, lang), key="cases_timeline", bundle=GEO)


def table(shown, lang: str) -> None:
    """The sortable table of every case shown."""
    st.subheader(t("cases.table.header"))
    col = st.column_config
    st.dataframe(
        views.cases_table(shown, lang),
        hide_index=True,
        width="stretch",
        column_order=views.CASE_COLUMNS,
        column_config={
            # widths in px that hold each column's usual value whole (the system's name stays pinned
            # while the rest scroll sideways): narrower columns fit the screen but cut every value
            "name": col.TextColumn(t("cases.col.name"), pinned=True, width=170),
            "organisation": col.TextColumn(t("cases.col.organisation"), width=210),
            "country": col.TextColumn(t("cases.col.country"), width=125),
            "year": col.NumberColumn(t("cases.col.year"), format="%d", width=55),
            "parameters": col.TextColumn(t("cases.col.parameters"), width=105),
            "licence": col.TextColumn(t("cases.col.licence"), help=t("cases.col.licence_help"), width=300),
            "modality": col.TextColumn(t("cases.col.modality"), width=140),
            "source": col.LinkColumn(t("cases.col.source"), display_text=t("cases.col.source_link"), width=66),
        },
        key="cases_table",
    )
    st.caption(t("cases.table.caption"))


def cards(shown, lang: str) -> None:
    """One card per case, in the order chosen."""
    st.subheader(t("cases.cards.header"))
    sort_col, order_col = st.columns([3, 1])
    sort_key = sort_col.selectbox(
        t("cases.sort.label"),
        options=list(views.SORT_KEYS),
        format_func={k: t(f"cases.sort.{k}") for k in views.SORT_KEYS}.get,  # texts made now, in this run
        key="cases_sort",
    )
    # Newest and largest first: a reader comes for the current frontier, not for 2021.
    descending = order_col.toggle(t("cases.sort.descending"), value=sort_key in ("year", "parameters"), key="cases_desc")

    ordered = views.sort_cases(shown, sort_key, lang, descending)
    pages = views.card_pages(len(ordered))
    chosen = 0
    if len(pages) > 1:  # keyed by how many there are: another filter's result starts at its first page
        chosen = st.segmented_control(t("cases.cards.page"), range(len(pages)), default=0,
                                      format_func=lambda i: f"{pages[i].start + 1}–{pages[i].stop}",
                                      key=f"cases_cards_page_{len(ordered)}") or 0
        st.caption(t("cases.cards.showing", first=pages[chosen].start + 1, last=pages[chosen].stop, n=len(ordered)))
    for case in (ordered[i] for i in pages[chosen]):
        with st.container(border=True):
            st.markdown(f"#### {case.name[lang]}")
            st.caption(
                t(
                    "cases.card.meta",
                    organisation=case.organisation[lang],
                    country=views.country_name(case.country, lang),
                    year=case.year,
                    modality=MODALITIES[case.modality][lang],
                )
            )
            left, right = st.columns(2)
            with left:
                st.markdown(f"**{t('cases.card.deployment')}**")
                st.write(case.deployment[lang])
                st.markdown(f"**{t('cases.card.outcome')}**")
                st.write(case.outcome[lang])
                st.caption(t("cases.card.as_of", date=views.format_as_of(case.as_of, lang)))
                st.markdown(t("cases.card.outcome_source", title=case.outcome_source.title, url=case.outcome_source.url))
            with right:
                st.markdown(t("cases.card.parameters", value=views.format_parameters(case, lang)))
                if case.parameters_note:
                    st.caption(case.parameters_note[lang])
                st.markdown(t("cases.card.weights", weights=WEIGHTS[case.weights][lang],
                              licence=case.licence_in(lang)))
                st.markdown(t("cases.card.challenge", challenge=CHALLENGES[case.challenge][lang]))
                st.caption(case.challenge_note[lang])
            with st.expander(t("cases.card.sources")):
                for src in case.all_sources:
                    st.markdown(f"- [{src.title}]({src.url})")


def challenges_link() -> None:
    page_link("challenges", t("cases.link.challenges"))


def main() -> None:
    lang = language()
    all_cases = list(default_cases())
    st.title(t("cases.title"))
    st.write(t("cases.intro", article=t("app.source_article"), n=len(all_cases),
               countries=len({c.country for c in all_cases})))
    counts = views.summary_counts(all_cases)
    st.caption(t("cases.currency", n=counts["cases"], countries=counts["countries"], continents=counts["continents"],
                 date=views.format_as_of(views.newest_as_of(all_cases) or "", lang)))
    query = st.text_input(t("cases.search.label"), placeholder=t("cases.search.placeholder"), key="cases_query",
                          icon=":material/search:")
    on_map = views.search_cases(filtered(all_cases, lang), query, lang)
    country = country_filter(lang)
    shown = views.filter_cases(on_map, views.CaseFilter(countries=frozenset({country} if country else ())))
    summary(shown)
    if on_map:
        world_map(on_map, lang)
    if not shown:
        st.info(t("cases.filter.empty"))
    else:
        timeline(shown, lang)
        table(shown, lang)
        cards(shown, lang)
    challenges_link()


main()
