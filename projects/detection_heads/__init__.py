# Copyright (c) mmdist contributors. Licensed under the Apache License 2.0.
"""RTMDet, YOLOX and cross-head distillation measured on the demo's detection data
(docs/detection.md, "Measured on the demo data")."""
