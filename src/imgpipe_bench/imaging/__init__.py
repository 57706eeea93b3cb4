"""Imaging figures: the pipeline's resize + watermark work against pyvips and naive Pillow, side by side.

``measure.measure_all()`` measures, in one run on the same sources, the work of the resize and watermark
steps for one source with the default renditions (2048, 1024 and 320 px wide, JPEG q85, the default text
watermark on renditions of at least 600 px), three ways (``implementations``):

- **ours**: exactly the layer's pure functions as ``steps.resize`` and ``steps.watermark_and_encode`` call
  them (``imaging.open_image``/``decode``/``renditions``, ``watermark.apply``, ``encoding.encode``),
  without the lossless intermediate (uncompressed TIFF) between the two steps. That intermediate
  (``imaging.to_lossless``/``from_lossless``) is timed separately as **ours+staging**;
- **pyvips**: ``thumbnail_buffer`` per rendition at the target width, the watermark rendered with
  ``Image.text`` and blended with ``composite2``, ``jpegsave_buffer`` q85 (operation cache off, so that
  repetitions do not measure the cache);
- **naive**: ``Image.open``, a full decode, ``resize(LANCZOS)`` from the full image for each rendition,
  the text drawn on an RGBA overlay (``alpha_composite``), ``save`` q85.

Sources are synthetic and made in memory (``cases``: gradients, shapes, fine lines and seeded grain), so
that every run sees the same pixels and nothing is downloaded. Times are medians of interleaved
repetitions in this process, pinned to one core (a Lambda function below 1769 MB has less than one vCPU).
Peak memory (``memory``) is measured in a fresh subprocess per (case, implementation); ours per Lambda
function, as the pipeline runs it: the resize step (writing its intermediates) and the watermark step
(reading them) each in its own process, the larger peak compared. The kernel's resident-set high-water
mark (``VmHWM``, the figure ``ru_maxrss`` reports) is reset through ``/proc/self/clear_refs`` after the
warm-up, and the figure is the peak minus the resident set at that point. ``ru_maxrss`` itself cannot be
used in a subprocess: Linux carries the parent's high-water mark across ``exec``. Quality (``quality``)
is the PSNR of each implementation's 1024 px rendition (before watermark and encoding) against a
full-decode LANCZOS resize of the same source to the same size.

``render`` prints the figures as tables, ``plot`` draws the time chart, and ``command`` is
``imgpipe bench imaging``.
"""
