"""Dataset: what the model learnt from (the bundle's dataset summary), source by source, and a few
sample photos of each source whose folder is there."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from melanoma.app import charts, state
from melanoma.app.state import APP_CACHED_DATA_ENTRIES
from melanoma.config import MELANOMA_DX
from melanoma.records import DatasetSummary
from melanoma.reporting import credit_lines, source_clinics, source_title
from melanoma.sources import DEFAULT_SOURCE, HAM10000_IMAGES, DatasetError, Source
from melanoma.wording import DX_NAMES, DX_TYPE_NAMES

GALLERY_PER_DX = 6
GALLERY_THUMBNAIL = 130  # px: six fit a desktop row beside the sidebar, two a phone's


@st.cache_data(show_spinner=False, max_entries=APP_CACHED_DATA_ENTRIES)
def gallery(data_dir: str, per_dx: int) -> dict[str, list[tuple[str, str]]]:
    """A fixed sample of image paths and captions per diagnosis; {} without a readable data folder."""
    source = Source(Path(data_dir))
    try:
        frame = source.metadata()
    except DatasetError:
        return {}
    frame = frame[frame["dx"].isin(DX_NAMES)]
    frame = frame.assign(path=[str(source.image_path(image_id)) for image_id in frame["image_id"]])
    frame = frame[[Path(path).is_file() for path in frame["path"]]]
    samples = {}
    for dx, rows in frame.groupby("dx"):
        picked = rows.sample(min(per_dx, len(rows)), random_state=0)
        samples[dx] = [(row.path, _caption(row)) for row in picked.itertuples()]
    return samples


def _caption(row) -> str:
    age = getattr(row, "age", None)
    site = getattr(row, "localization", None)
    known = [f"{int(age)} y" if not pd.isna(age) else None, site if isinstance(site, str) else None]
    return ", ".join(part for part in known if part) or "age and site not recorded"


def sites_of(summary: DatasetSummary) -> dict[str, int]:
    """Body sites in the coarse words every source gives; HAM10000's own words for bundles before v4."""
    return summary.site or summary.localization


def source_table(per_source: dict[str, DatasetSummary]) -> pd.DataFrame:
    """One row per source: where its photos come from and what they hold."""
    rows = []
    for source, part in per_source.items():
        images = max(part.images_used, 1)
        rows.append({
            "source": source_title(source), "clinics": source_clinics(source) or "unknown",
            "images": part.images_used, "lesions": part.lesions,
            "melanoma": f"{part.melanoma_share:.1%}",
            "diagnoses": ", ".join(f"{dx} {count:,}" for dx, count in part.dx.items()),
            "age known": f"{sum(part.age.values()) / images:.0%}",
            "female": f"{part.sex.get('female', 0) / images:.0%}",
            "body site known": f"{1 - sites_of(part).get('unknown', 0) / images:.0%}",
            "rows dropped": part.dropped.total})
    return pd.DataFrame(rows)


bundle = state.require_bundle()
summary = bundle.dataset_summary
per_source = summary.by_source(bundle.sources[0])
st.title("The training data" if len(per_source) > 1 else f"The {source_title(bundle.sources[0])} dataset")
st.markdown(
    "Dermatoscopic photos of pigmented skin lesions, each labelled with its diagnosis. The model learns "
    "one question: **melanoma or not**. The figures describe the photos this model was trained and "
    "tested on" + (f", from {len(per_source)} sources:" if len(per_source) > 1 else
                   f": {source_title(bundle.sources[0])}, {source_clinics(bundle.sources[0]) or 'one source'}."))
if len(per_source) > 1:
    st.table(source_table(per_source).set_index("source"))
    st.caption("Each source is split by lesion on its own, and every training epoch is balanced 50/50 "
               "within each source, so neither the source nor its cameras can stand in for the answer.")
ham = per_source.get(DEFAULT_SOURCE)
if ham:
    st.markdown(f"This copy of HAM10000 holds **{ham.rows_in_metadata:,} of its {HAM10000_IMAGES:,} images**. "
                f"The other {HAM10000_IMAGES - ham.rows_in_metadata:,} (about a tenth of the lesions, chosen by "
                "lesion) are held back by the data's keepers as an independent reserve: the model is also judged "
                "on lesions this project never had. Cleansing then keeps every usable row.")
columns = st.columns(4)
columns[0].metric("Images used", f"{summary.images_used:,}")
columns[1].metric("Lesions", f"{summary.lesions:,}", help="One lesion is often photographed several times.")
columns[2].metric("Melanoma", f"{summary.melanoma_share:.1%}")
columns[3].metric("Rows dropped by cleansing", summary.dropped.total,
                  help=f"of {summary.rows_in_metadata:,} rows in the metadata file")
left, right = st.columns(2)
if len(per_source) > 1:
    left.plotly_chart(charts.grouped_bars({source_title(s): part.dx for s, part in per_source.items()},
                                          "Diagnoses by source"))
else:
    left.plotly_chart(charts.counts_bar(summary.dx, "Diagnoses", labels=DX_NAMES, highlight=MELANOMA_DX,
                                        horizontal=True))
balanced = summary.balanced_epoch
if balanced:
    right.plotly_chart(charts.grouped_bars({"all images": summary.melanoma_vs_not(),
                                            "one balanced training epoch": balanced.counts()},
                                           "Melanoma vs not, before and after balancing"))
    right.caption(
        f"Each training epoch draws {balanced.melanoma} melanoma images (with replacement, each an "
        f"augmented copy) from the {balanced.melanoma_available} in the training split, and as many "
        f"of its {balanced.not_melanoma_available} other images, so every epoch is 50/50"
        + (": within each source, melanoma up to twice its count and as many of the rest." if len(per_source) > 1
           else "."))
else:
    right.plotly_chart(charts.counts_bar(summary.melanoma_vs_not(), "Melanoma vs not", highlight="melanoma"))

left, right = st.columns(2)
left.plotly_chart(charts.age_histogram(summary.age))
if len(per_source) > 1:
    right.plotly_chart(charts.grouped_bars({source_title(s): part.sex for s, part in per_source.items()},
                                           "Sex by source"))
else:
    right.plotly_chart(charts.counts_bar(summary.sex, "Sex"))
left, right = st.columns(2)
if len(per_source) > 1 and summary.site:
    left.plotly_chart(charts.grouped_bars({source_title(s): part.site for s, part in per_source.items()},
                                          "Body site by source (the coarse sites every source gives)"))
else:
    left.plotly_chart(charts.counts_bar(sites_of(summary), "Body site", horizontal=True))
right.plotly_chart(charts.counts_bar(summary.dx_type, "How the diagnosis was confirmed",
                                     labels=DX_TYPE_NAMES))

st.subheader("Train, validation and test split")
split = pd.concat({source_title(s): pd.DataFrame.from_dict({name: vars(count) for name, count in part.split.items()},
                                                            orient="index")
                   for s, part in per_source.items()}, names=["source", "split"])
if not split.empty:
    split["melanoma share"] = (split["melanoma"] / split["images"]).map("{:.1%}".format)
    split = split.reset_index()
    st.dataframe(split if len(per_source) > 1 else split.drop(columns="source"), hide_index=True, width="stretch")
    st.caption("Split by lesion, not by image: every photo of one lesion falls in the same split, so test "
               "images are of lesions the model has never seen. The threshold is chosen on validation"
               + (" (both sources pooled)." if len(per_source) > 1 else "."))

st.subheader("Cleansing")
dropped = summary.dropped
if dropped.total == 0:
    st.success("Every row of the metadata had an image id, a known diagnosis and a readable image: "
               "nothing was dropped.", icon=":material/check:")
else:
    st.dataframe(pd.DataFrame(dropped.by_reason.items(), columns=["reason", "rows dropped"]), hide_index=True)
    if dropped.examples:
        with st.expander(f"First {len(dropped.examples)} dropped rows"):
            st.dataframe(pd.DataFrame(dropped.examples), hide_index=True)


st.subheader("Sample photos")
for name, source in state.data_sources(list(per_source)).items():
    samples = gallery(str(source.folder), GALLERY_PER_DX)
    if len(per_source) > 1:
        st.markdown(f"#### {source_title(name)}")
    if not samples:
        st.info(f"{source_title(name)}'s sample photos appear here when its folder is available "
                f"(looked in `{source.folder}`; set `{state.DATA_ENV}` to point elsewhere).")
    else:
        st.caption(f"Photos: {credit_lines([name])[0]}.")
    for dx in sorted(samples, key=lambda dx: (dx != MELANOMA_DX, dx)):
        st.markdown(f"**{DX_NAMES.get(dx, dx)}** (`{dx}`)")
        # One row of thumbnails that wraps: on a phone two a row, not one photo per screen.
        with st.container(horizontal=True, wrap=True):
            for path, caption in samples[dx]:
                st.image(path, caption=caption, width=GALLERY_THUMBNAIL)
