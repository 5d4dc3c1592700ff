"""Stage 4, pairs + networks -> trained weights: objectives, steps, the loop, run state, recipes.

Takes in: datasets of ``(L, ab)`` pairs (:mod:`colorlib.data`), networks by registry name
(:mod:`colorlib.models`) and a frozen :class:`~colorlib.training.config.TrainConfig`. Gives out:
checkpoints (:mod:`colorlib.checkpoint`'s file format) and a
:class:`~colorlib.training.runstate.TrainResult` with the network, its history and samples.

* :mod:`~colorlib.training.config`: ``TrainConfig`` and ``Stage``; building networks,
  objectives and optimisers from it;
* :mod:`~colorlib.training.losses`, :mod:`~colorlib.training.perceptual`,
  :mod:`~colorlib.training.classification`: the objectives (the last one, colorization as
  classification, scores bin logits: :mod:`colorlib.ab_bins`);
* :mod:`~colorlib.training.steps`: one optimisation step, as plain functions;
  :mod:`~colorlib.training.precision`: which precision a step runs in on this machine (fp16
  AMP on CUDA, bf16 autocast on CPUs that run it fast, else fp32);
* :mod:`~colorlib.training.loop`: :func:`~colorlib.training.loop.fit`, stages and budgets;
* :mod:`~colorlib.training.runstate`: what a run saves and reads back, ``TrainResult``;
* :mod:`~colorlib.training.runs`: ``train_or_load`` and ``train_briefly``;
* :mod:`~colorlib.training.recipes`: the one registry of the book's trained models
  (:mod:`~colorlib.training.recipes_unet`, :mod:`~colorlib.training.recipes_trick`,
  :mod:`~colorlib.training.recipes_classification`, :mod:`~colorlib.training.recipes_ddcolor`
  hold their configs);
* :mod:`~colorlib.training.distributed`, :mod:`~colorlib.training.console`: DDP plumbing,
  progress bar and Ctrl-C;
* :mod:`~colorlib.training.lock`: one process at a time per checkpoint (a lock file).

Imports the base, data, models, the checkpoint format and evaluation (validation during
training uses the evaluation metrics); nothing below it.
"""
