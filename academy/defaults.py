"""The embedded defaults of the settings that more than one entry point needs.

``academy/settings.py`` falls back to these when the environment says nothing;
``devstack`` (``make run``, the benchmarks, the tests' local AWS) creates the
same region, group and queue, so a local run needs no configuration at all.
"""

AWS_REGION = "ap-northeast-2"
SCALING_NAMESPACE = "Academy/VideoProcessing"
SCALING_METRIC_NAME = "BacklogCount"
SCALING_WORKER_TYPE = "Video"
SCALING_ASG_NAME = "academy-video-worker-asg"
SCALING_PUBLISH_INTERVAL_SECONDS = 60
# The queue `make run` creates on the local endpoint (production names its own).
LOCAL_QUEUE_NAME = "academy-video-jobs"
