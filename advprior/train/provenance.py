"""Licence and attribution of trained weights, from the sources of their training data.

The open motion capture this project trains on restates the databases' own terms (see
``../shared/data/mocap/SOURCES.md`` in the development tree). Weights trained on anything else
(AMASS, your own capture) get a card that names the sources and says that their terms are not
known to advprior, never a borrowed licence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_CMU = (
    "the CMU Graphics Lab Motion Capture Database (free for all uses; the data may not be resold "
    "directly, even in converted form)"
)
_HDM05 = "HDM05 (Creative Commons Attribution-ShareAlike 3.0 Unported, CC BY-SA 3.0)"
_CMU_CREDIT = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. The database was created "
    "with funding from NSF EIA-0196217."
)
_HDM05_CREDIT = (
    "The data used in this project was obtained from HDM05: M. Mueller, T. Roeder, M. Clausen, "
    "B. Eberhardt, B. Krueger, A. Weber. Documentation Mocap Database HDM05. Technical report "
    "CG-2007-2, Universitaet Bonn, June 2007."
)

DATA_LICENCE = f"Trained on motion capture from {_CMU} and {_HDM05}: credit both sources as below."
ATTRIBUTION = f"{_CMU_CREDIT} {_HDM05_CREDIT}"

#: Licence tag of weights trained on CMU + HDM05 (Hugging Face model-card identifier). HDM05 is
#: share-alike, and weights fitted to it are its adaptation on the cautious reading, so they are
#: offered under the same terms; the code stays MIT.
WEIGHTS_LICENSE = "cc-by-sa-3.0"


def _family(source: str) -> str | None:
    # `advprior data build` names a source after the first folder below the path it is given;
    # this project's open data sits in "<database>_<format>" folders (cmu_asfamc, hdm05_asfamc,
    # ...). AMASS's own folders ("CMU", "MPI_HDM05") fall under AMASS's licence: no match.
    for family in ("cmu", "hdm05"):
        if source.startswith(family + "_"):
            return family
    return None


def families(sources: Iterable[str]) -> set[str | None]:
    """The open databases (``"cmu"``, ``"hdm05"``) that dataset sources come from; None for a
    source of any other data."""
    return {_family(s) for s in sources}


def source_names(data_description: dict[str, Any] | None) -> list[str]:
    """The source names recorded in a training-data description (``TrainingPoses``)."""
    sources = (data_description or {}).get("sources")
    if isinstance(sources, dict):
        sources = sources.get("sources")
    if isinstance(sources, (dict, list, tuple)):
        return sorted(str(s) for s in sources)
    return []


def data_terms(sources: Iterable[str]) -> dict[str, str]:
    """``licence`` text, ``weights_license`` tag and ``attribution`` text for weights trained on
    data from ``sources`` (dataset source names)."""
    names = sorted(sources)
    found = families(names)
    if not names or None in found:
        listed = ", ".join(names) if names else "not recorded"
        return {
            "licence": (
                f"Trained on motion data whose terms advprior does not know (sources: {listed}). "
                "The weights are bound by that data's licence: state it here before sharing them."
            ),
            "weights_license": "other",
            "attribution": "",
        }
    if found == {"cmu", "hdm05"}:
        return {
            "licence": DATA_LICENCE,
            "weights_license": WEIGHTS_LICENSE,
            "attribution": ATTRIBUTION,
        }
    if found == {"hdm05"}:
        return {
            "licence": f"Trained on motion capture from {_HDM05}: credit it as below.",
            "weights_license": WEIGHTS_LICENSE,
            "attribution": _HDM05_CREDIT,
        }
    # CMU alone allows every use, so the weights can take the code's licence.
    return {
        "licence": f"Trained on motion capture from {_CMU}: credit it as below.",
        "weights_license": "mit",
        "attribution": _CMU_CREDIT,
    }
