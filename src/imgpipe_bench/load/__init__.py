"""Load on the local cloud: N uploads at once, every one followed to its execution and its notification.

    imgpipe bench load [--images 500] [--threads 16] [--timeout 1800] [--json]

Photo-like JPEGs are made in memory (``images``: a few sizes, every body distinct), the template is
deployed on a fresh local cloud, and all images are uploaded concurrently from a thread pool under unique
keys, each upload's start time recorded. A queue subscribed to the topic is drained continuously, each
message timestamped on arrival and matched to its key (``observe``). When every upload has a notification
and every execution has ended (or at the timeout), the figures are (``summary``):

* executions started / succeeded / failed (by error) for the uploaded keys;
* outputs written: renditions and manifests in the destination bucket against what the default
  widths (2048, 1024, 320; never upscaled) should give for each size;
* notifications received, dead-letter queue depth, EventBridge deliveries that failed;
* throughput: images per second from the first upload to the last notification;
* upload-to-notification latency p50 / p95 / max;
* LOST: uploads without both a finished execution and a notification. The exit status is 1 when
  anything is lost, else 0.
"""
