"""The worker API, mounted under /api/v1/internal/ (see academy/urls.py)."""

from django.urls import URLPattern, path

from video.views import claim_next_view, claim_view, finish_view, release_view, renew_view

app_name = "video"

# <str:...>: an id that is not a number still gets the API's JSON 404, not an HTML page.
urlpatterns: list[URLPattern] = [
    # For a worker whose queue is empty: the oldest UPLOADED video, or 204.
    path("video/claim-next/", claim_next_view, name="claim-next"),
    path("video/<str:video_id>/claim/", claim_view, name="claim"),
    path("video/<str:video_id>/renew/", renew_view, name="renew"),
    path("video/<str:video_id>/finish/", finish_view, name="finish"),
    path("video/<str:video_id>/release/", release_view, name="release"),
]
