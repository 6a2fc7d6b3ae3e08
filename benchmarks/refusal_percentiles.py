"""Could a stricter not-a-lesion percentile refuse 95% of non-lesion pictures within the lesion-photo
allowances (HAM10000 <= 2%, ISIC 2017 <= 5%)? Scores the shipped bundle's validation and test lesion
photos per source and the design set of non-lesion pictures (seed 0, never the measured seed 1), and
prints what each pair of per-source percentiles would refuse. Nothing is fitted or written.

    python benchmarks/refusal_percentiles.py
"""
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from melanoma.config import TrainConfig  # noqa: E402
from melanoma.features import NOVELTY_FEATURES  # noqa: E402
from melanoma.images import prepare_image  # noqa: E402
from melanoma.inference import Predictor  # noqa: E402
from melanoma.lab.non_lesions import non_lesion_pictures  # noqa: E402
from melanoma.novelty import colourfulness  # noqa: E402
from melanoma.splits import load_split_dataset  # noqa: E402

DESIGN_SEED = 0
PERCENTILES = [(99.5, 99.5), (99, 99), (98, 98), (99, 97.5), (98, 97), (98, 96), (98, 95)]


def main() -> None:
    predictor = Predictor.from_bundle(ROOT / "models" / "melanoma-resnet50")
    novelty = predictor.extras.novelty
    shared = ROOT.parent / "shared"
    dataset, split = load_split_dataset([shared / source for source in predictor.bundle.sources],
                                        TrainConfig.from_dict(predictor.bundle.train_config))

    def scored(images):
        return novelty(predictor.outputs(images)[NOVELTY_FEATURES]), colourfulness(images)

    val, test = scored(dataset.images[split.val]), scored(dataset.images[split.test])
    val_sources, test_sources = dataset.sources[split.val], dataset.sources[split.test]
    pictures = np.stack([prepare_image(data, predictor.image_spec, display=False).model_input
                         for _, _, data in non_lesion_pictures(DESIGN_SEED)])
    non_lesions = scored(pictures)
    first, second = predictor.bundle.sources
    print(f"shipped threshold {novelty.threshold:.2f}")
    for low, high in PERCENTILES:
        threshold = max(np.percentile(val[0][val_sources == first], low),
                        np.percentile(val[0][val_sources == second], high))

        def refused(scores_colours, threshold=threshold):
            return (scores_colours[0] > threshold) | (scores_colours[1] < novelty.colour_floor)

        print(f"{first} {low} / {second} {high}: threshold {threshold:.2f}; non-lesion (seed {DESIGN_SEED}) "
              f"{refused(non_lesions).mean():.3f}; validation {first} {refused(val)[val_sources == first].mean():.4f} "
              f"{second} {refused(val)[val_sources == second].mean():.4f}; test {first} "
              f"{refused(test)[test_sources == first].mean():.4f} {second} {refused(test)[test_sources == second].mean():.4f}")


if __name__ == "__main__":
    main()
