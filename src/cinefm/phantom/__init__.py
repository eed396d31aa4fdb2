"""Synthetic multi-vendor cine CMR cohort: DICOM export, reports, labels, truth and faults.

``generate_cohort(out_dir, patients, seed, jobs=1, **opts)`` writes the layout documented in
:mod:`cinefm.phantom.cohort`. Modules: ``anatomy`` (beating heart, volumes, LVEF),
``diseases`` (disease -> geometry), ``geometry`` (patient space, imaging planes, thorax),
``render`` (contrast, noise), ``vendors`` (naming and header habits), ``writer`` (DICOM),
``study`` (one exam), ``faults`` (file-level faults), ``reports`` (report text, human labels),
``plan`` (cohort plan from the seed), ``cli`` (``cinefm phantom``).
"""

from cinefm.phantom.cohort import generate_cohort

__all__ = ["generate_cohort"]
