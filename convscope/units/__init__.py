"""The unit explorer: what each channel of a layer responds to.

* :mod:`~convscope.units.receptive_field`: a grid position's box in the model input and the source;
* :mod:`~convscope.units.topk`: the top-k patches of every channel, updated on the device per frame;
* :mod:`~convscope.units.dataset`: ``convscope units`` over a folder or video, resumable;
* :mod:`~convscope.units.html`: the static page per layer;
* :mod:`~convscope.units.featvis`: an image optimised to excite a unit (lucid-style).
"""
