"""Stage 1, photos -> training pairs: reading photos, finding them, and turning them into (L, ab).

Takes in: files (a folder, the COCO 2017 subset downloaded on demand, or the few photos bundled
with scikit-image, scikit-learn and matplotlib when offline). Gives out: upright sRGB photos,
gray photos dropped, and datasets of normalised ``(L (1, H, W), ab (2, H, W))`` pairs with their
loaders.

* :mod:`~colorlib.data.images`: the one photo decoder (files, PIL images, arrays -> sRGB), with
  clear errors for files that cannot be used;
* :mod:`~colorlib.data.grayscan`: which photos are really gray (cached scan);
* :mod:`~colorlib.data.samples`: the bundled photos;
* :mod:`~colorlib.data.coco`: the COCO 2017 subset download (resumable, checked);
* :mod:`~colorlib.data.datasets`: datasets, splits and loaders; where the photos come from.

Imports only the base (:mod:`colorlib.color`, :mod:`colorlib.runtime`).
"""
