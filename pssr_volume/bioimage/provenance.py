"""Where a model's training data came from, its terms, and what to cite: for a bioimage.io package.

A model file's header names its training inputs as paths (``training.inputs``); the datasets
behind the folders the bundled models were trained on are described here, as their model cards
(``pssr_volume/bundled/*.md``) and ``shared/data/README.md`` state them. A test checks that
each bundled model's inputs are all known here and that each dataset's citation is in its card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pssr_volume.config import ModelConfig


@dataclass(frozen=True)
class Dataset:
    """A training dataset: what it is, its terms, and how to cite it.

    Attributes
    ----------
    name : str
        What the data is (modality, pixel size).
    citation : str
        The citation its source asks for.
    doi : str
        The DOI of that citation.
    terms : str
        The licence as its source states it.
    spdx : str or None
        The SPDX identifier of that licence, where it has one.
    """

    name: str
    citation: str
    doi: str
    terms: str
    spdx: str | None


DATASETS: dict[str, Dataset] = {
    "drosophila_vnc_sstem_stack1": Dataset(
        "Drosophila larva VNC ssTEM, stack 1 (4.6 nm pixels, 20 x 1024 x 1024)",
        "Gerhard S., Funke J., Martel J., Cardona A., Fetter R. Segmented anisotropic ssTEM "
        "dataset of neural tissue. figshare (2013)", "10.6084/m9.figshare.856713",
        "CC BY-NC-SA 3.0 (non-commercial, share-alike, attribution)", "CC-BY-NC-SA-3.0"),
    "isbi2012_sstem": Dataset(
        "ISBI 2012 EM segmentation challenge, train and test volumes (ssTEM, 4 nm pixels, "
        "2 x 30 x 512 x 512)",
        "Cardona A. et al. An integrated micro- and macroarchitectural analysis of the "
        "Drosophila brain by computer-assisted serial section electron microscopy. PLoS Biol "
        "8(10): e1000502 (2010); Arganda-Carreras I. et al. Crowdsourcing the creation of image "
        "segmentation algorithms for connectomics. Front. Neuroanat. 9:142 (2015)",
        "10.1371/journal.pbio.1000502", "non-commercial research use, attribution", None),
    "flyem_medulla_fibsem_10nm": Dataset(
        "FlyEM Drosophila medulla, FIB-SEM training samples 1 and 2 (10 nm isotropic, "
        "2 x 250^3; Janelia FlyEM, NeuroProof)",
        "Parag T., Chakraborty A., Plaza S., Scheffer L. A context-aware delayed agglomeration "
        "framework for electron microscopy segmentation. PLoS ONE 10(5): e0125825 (2015)",
        "10.1371/journal.pone.0125825",
        "Creative Commons Attribution (the licence text names no version; its wording is "
        "that of CC BY 2.5/3.0)", "CC-BY-3.0"),
}

PSSR_CITATION = ("Fang L. et al. Deep learning-based point-scanning super-resolution imaging. "
                 "Nat. Methods 18, 406-416 (2021)", "10.1038/s41592-021-01080-z")
"""The method the models implement."""

# from the least to the most restrictive: a model takes the most restrictive of its data's
_RESTRICTIVENESS = ("CC-BY-3.0", "CC-BY-NC-SA-3.0")


def training_datasets(config: ModelConfig) -> tuple[list[Dataset], list[str]]:
    """The known datasets a model's header names as training inputs, and the inputs that
    are not known (a model trained here on other data: given as the header says them)."""
    known: list[Dataset] = []
    unknown: list[str] = []
    for item in config.training.get("inputs", []):
        parts = PurePosixPath(str(item)).parts
        hit = next((DATASETS[p] for p in parts if p in DATASETS), None)
        if hit is None:
            unknown.append(str(item))
        elif hit not in known:
            known.append(hit)
    return known, unknown


def model_license(config: ModelConfig) -> str | None:
    """The SPDX licence of a model trained on known data only: the most restrictive SPDX
    licence of its datasets (their terms, each as stated, are in the documentation). ``None``
    when a training input is unknown or no dataset has an SPDX licence."""
    known, unknown = training_datasets(config)
    ids = [d.spdx for d in known if d.spdx is not None]
    if unknown or not ids:
        return None
    return max(ids, key=_RESTRICTIVENESS.index)


def training_record(config: ModelConfig) -> dict[str, Any]:
    """The training data and settings as the package's ``config.pssr_volume.training``."""
    known, unknown = training_datasets(config)
    return {"datasets": [{"name": d.name, "terms": d.terms, "cite": d.citation, "doi": d.doi}
                         for d in known],
            "other_inputs": unknown,
            "settings": {k: v for k, v in config.training.items() if k not in ("inputs", "out")}}
