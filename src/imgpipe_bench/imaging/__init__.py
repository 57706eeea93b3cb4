"""Imaging figures: the pipeline's whole imaging job against three baselines, side by side in one run.

The job, for one source, at template.yaml's defaults: decode, renditions 2048, 1024 and 320 px wide (never
upscaled), the default text watermark on renditions of at least its minimum width, JPEG at the configured
quality. ``measure.measure_all()`` measures it four ways (``implementations``), each doing all of it:

- **ours**: exactly the layer's pure functions as ``steps.resize`` and ``steps.watermark_and_encode`` call
  them (``imaging.open_image``/``decode``/``renditions``, ``watermark.apply``, ``encoding.encode``):
  whatever the layer does, this measures it. The lossless intermediate between the two steps
  (``imaging.to_lossless``/``from_lossless``) is timed separately as **ours+staging**, and its size per
  source is reported as ``staged_bytes`` beside the final JPEGs' ``bytes_out``;
- **pyvips per rendition**: ``thumbnail_buffer`` for each rendition (a decode each, with shrink-on-load),
  the watermark rendered with ``Image.text`` and blended with ``composite2``, ``jpegsave_buffer`` at the
  same quality with optimised coding;
- **pyvips chained**: pyvips used well: one decode (``thumbnail_buffer`` to the largest width, with
  shrink-on-load), each smaller rendition resized (lanczos3) from the previous one, each made in memory
  once, the same watermark and ``jpegsave_buffer``;
- **naive**: Pillow's ``open``, a full decode, ``resize(LANCZOS)`` from the full image for each rendition,
  the text drawn on an RGBA overlay, ``save``.

Sources (``sources``): the photographs of a directory (``--images``; by default ``out/photos``, which
``make bench-photos`` fills from Debian's ``mate-backgrounds`` package), cases derived from the largest
(24 and 12 MP JPEG q90, 12 MP PNG), then synthetic worst cases made in memory (``cases``). Without a
photograph the run says so in one line and measures the synthetic cases only.

How (``machine``): libvips runs one thread (``VIPS_CONCURRENCY=1``, a Lambda function below 1769 MB has
less than one vCPU) for every implementation, in the measuring process and in the memory subprocesses.
Times are medians of interleaved repetitions in one process, wall time and CPU time (``getrusage`` of the
whole process, libvips' threads included). The run is pinned to one core only when a core was more than
90% idle over half a second; otherwise it is not pinned, and the figures say which.
Peak memory (``memory``) is the whole job's, in a fresh subprocess per implementation; ours per Lambda
function as the pipeline runs it: the resize step (writing its intermediates) and the watermark step
(reading them), each in its own process, the larger compared and the sum reported. The kernel's
resident-set high-water mark (``VmHWM``) is reset through ``/proc/self/clear_refs`` after a warm-up, and
the figure is the peak minus the resident set at that point. Quality (``quality``) is the PSNR of each
rendition of 2048 and 1024 px as JPEG (no watermark) against a float32 LANCZOS resize of the full decode,
minus the same for that reference's own JPEG.

``targets`` judges each case (``time_ours_vs_pyvips_per_rendition`` <= 0.5, ``time_ours_vs_pyvips_chained``
<= 1.0, ``memory_ours_vs_naive`` <= 0.5, ``psnr_worst_gap_db`` >= -0.3), ``render`` prints the tables,
``plot`` draws the time chart, and ``command`` is ``imgpipe bench imaging``.
"""
