"""Stage 3, predictions + real photos -> numbers: metrics, FID, validation, COCO region analysis.

Takes in: predicted and real sRGB images (tensors or folders), or a generator and held-back
``(L, ab)`` pairs. Gives out: per-image and mean metrics (PSNR, SSIM, colourfulness, delta-CF,
FID and KID where Inception weights exist), per-category colour error, saturation and edge
bleeding.

* :mod:`~colorlib.evaluation.metrics`: the tensor metrics and the one ``MetricAccumulator``;
* :mod:`~colorlib.evaluation.fid`: FID and KID (with its standard error) on Inception features;
  :mod:`~colorlib.evaluation.fid_inception` is the network (pytorch-fid's layout) and
  :mod:`~colorlib.evaluation.fid_weights` where its weights come from;
* :mod:`~colorlib.evaluation.stats`: bootstrap intervals and verdicts, KID, the
  ab-histogram intersection;
* :mod:`~colorlib.evaluation.folders`: two folders of photos compared file by file;
* :mod:`~colorlib.evaluation.validation`: a generator on held-back pairs (used by training);
* :mod:`~colorlib.evaluation.regions`: the same inside COCO instance masks, per category.

Imports the base, data and models; never training (which imports it to validate).
"""
