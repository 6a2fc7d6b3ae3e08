"""Dataset: what the model learnt from (the bundle's dataset summary) and a few sample images."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from melanoma.app import charts, state
from melanoma.config import APP_CACHED_DATA_ENTRIES, DX_NAMES, DX_TYPE_NAMES, HAM10000_IMAGES, IMAGES_DIR, MELANOMA_DX

GALLERY_PER_DX = 6


@st.cache_data(show_spinner=False, max_entries=APP_CACHED_DATA_ENTRIES)
def gallery(data_dir: str, per_dx: int) -> dict[str, list[tuple[str, str]]]:
    """A fixed sample of image paths and captions per diagnosis; {} without a readable data folder."""
    from melanoma.data import DatasetError, read_metadata

    try:
        frame = read_metadata(data_dir)
    except DatasetError:
        return {}
    images = Path(data_dir) / IMAGES_DIR
    frame = frame[frame["dx"].isin(DX_NAMES)]
    frame = frame.assign(path=[str(images / f"{image_id}.jpg") for image_id in frame["image_id"]])
    frame = frame[[Path(path).is_file() for path in frame["path"]]]
    samples = {}
    for dx, rows in frame.groupby("dx"):
        picked = rows.sample(min(per_dx, len(rows)), random_state=0)
        samples[dx] = [(row.path, _caption(row)) for row in picked.itertuples()]
    return samples


def _caption(row) -> str:
    age = "" if pd.isna(getattr(row, "age", None)) else f"{int(row.age)} y, "
    return f"{age}{getattr(row, 'localization', '')}"


st.title("The HAM10000 dataset")
bundle = state.require_bundle()
summary = bundle.dataset_summary
st.markdown(
    "Dermatoscopic images of pigmented skin lesions from two centres (Vienna and Queensland), "
    "labelled with one of seven diagnoses. The model learns one question: **melanoma or not**. "
    "The figures describe the images this model was trained and tested on.")

st.markdown(f"This copy of HAM10000 holds **{summary['rows_in_metadata']:,} of its {HAM10000_IMAGES:,} images**; "
            "the rest are not part of this project's data. Cleansing then keeps every usable row.")
columns = st.columns(4)
columns[0].metric("Images used", f"{summary['images_used']:,}")
columns[1].metric("Lesions", f"{summary['lesions']:,}", help="One lesion is often photographed several times.")
melanoma_share = summary["melanoma_vs_not"]["melanoma"] / max(summary["images_used"], 1)
columns[2].metric("Melanoma", f"{melanoma_share:.1%}")
columns[3].metric("Rows dropped by cleansing", summary["dropped"]["total"],
                  help=f"of {summary['rows_in_metadata']:,} rows in the metadata file")

left, right = st.columns(2)
left.plotly_chart(charts.counts_bar(summary["dx"], "Diagnoses", labels=DX_NAMES, highlight=MELANOMA_DX,
                                    horizontal=True))
balanced = summary.get("balanced_epoch")
if balanced:
    per_epoch = {name: balanced[name] for name in ("melanoma", "not melanoma")}
    right.plotly_chart(charts.grouped_bars({"all images": summary["melanoma_vs_not"],
                                            "one balanced training epoch": per_epoch},
                                           "Melanoma vs not, before and after balancing"))
    right.caption(
        f"Each training epoch draws {balanced['melanoma']} melanoma images (with replacement, each an "
        f"augmented copy) from the {balanced['melanoma_available']} in the training split, and as many "
        f"of its {balanced['not_melanoma_available']} other images, so every epoch is 50/50.")
else:
    right.plotly_chart(charts.counts_bar(summary["melanoma_vs_not"], "Melanoma vs not", highlight="melanoma"))

left, right = st.columns(2)
left.plotly_chart(charts.age_histogram(summary.get("age", {})))
right.plotly_chart(charts.counts_bar(summary.get("sex", {}), "Sex"))
left, right = st.columns(2)
left.plotly_chart(charts.counts_bar(summary.get("localization", {}), "Body site", horizontal=True))
right.plotly_chart(charts.counts_bar(summary.get("dx_type", {}), "How the diagnosis was confirmed",
                                     labels=DX_TYPE_NAMES))

st.subheader("Train, validation and test split")
split = pd.DataFrame.from_dict(summary.get("split", {}), orient="index")
if not split.empty:
    split["melanoma share"] = (split["melanoma"] / split["images"]).map("{:.1%}".format)
    st.dataframe(split.rename_axis("split").reset_index(), hide_index=True)
    st.caption("Split by lesion, not by image: every photo of one lesion falls in the same split, so test "
               "images are of lesions the model has never seen. The threshold is chosen on validation.")

st.subheader("Cleansing")
dropped = summary["dropped"]
if dropped["total"] == 0:
    st.success("Every row of the metadata had an image id, a known diagnosis and a readable image: "
               "nothing was dropped.", icon=":material/check:")
else:
    st.dataframe(pd.DataFrame(dropped["by_reason"].items(), columns=["reason", "rows dropped"]), hide_index=True)
    if dropped.get("examples"):
        with st.expander(f"First {len(dropped['examples'])} dropped rows"):
            st.dataframe(pd.DataFrame(dropped["examples"]), hide_index=True)


st.subheader("Sample images")
samples = gallery(str(state.data_dir()), GALLERY_PER_DX)
if not samples:
    st.info(f"Sample images appear here when the HAM10000 folder is available "
            f"(looked in `{state.data_dir()}`; set `{state.DATA_ENV}` to point elsewhere).")
for dx in sorted(samples, key=lambda dx: (dx != MELANOMA_DX, dx)):
    st.markdown(f"**{DX_NAMES.get(dx, dx)}** (`{dx}`)")
    for column, (path, caption) in zip(st.columns(GALLERY_PER_DX), samples[dx]):
        column.image(path, caption=caption, width="stretch")
