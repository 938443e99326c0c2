"""Licence and attribution text for weights trained on the shared CMU + HDM05 motion capture.

Model cards and the weights manifest quote these; they restate the databases' own terms
(see ``../shared/data/mocap/SOURCES.md`` in the development tree).
"""

from __future__ import annotations

DATA_LICENCE = (
    "Trained on motion capture from the CMU Graphics Lab Motion Capture Database (free for all "
    "uses; the data may not be resold directly, even in converted form) and HDM05 (Creative "
    "Commons Attribution-ShareAlike 3.0 Unported, CC BY-SA 3.0): credit both sources as below."
)

ATTRIBUTION = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. The database was created "
    "with funding from NSF EIA-0196217. The data used in this project was obtained from HDM05: "
    "M. Mueller, T. Roeder, M. Clausen, B. Eberhardt, B. Krueger, A. Weber. Documentation Mocap "
    "Database HDM05. Technical report CG-2007-2, Universitaet Bonn, June 2007."
)

#: Licence tag of weights trained on these data (Hugging Face model-card identifier). HDM05 is
#: share-alike, and weights fitted to it are its adaptation on the cautious reading, so they are
#: offered under the same terms; the code stays MIT.
WEIGHTS_LICENSE = "cc-by-sa-3.0"
