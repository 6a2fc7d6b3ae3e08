"""The lab's set of pictures that are not dermatoscopic lesion photos (issue 29): renders made here and
scikit-image's photos, one seed's draw (`melanoma.negatives.lab_pictures`). Since issue 42 the
not-a-lesion classifier is FITTED on pictures of these kinds (other seeds' draws), so this set now
measures it in-sample; what judges it is `melanoma.lab.held_out_pictures`, from other sources."""
from melanoma.negatives import document, encode, lab_pictures, skimage_photo

__all__ = ["document", "encode", "non_lesion_pictures", "skimage_photo"]


def non_lesion_pictures(seed: int = 0) -> list[tuple[str, str, bytes]]:
    """Another seed gives other renders, crops and faces (the 24 whole photos stay)."""
    return lab_pictures(seed)
