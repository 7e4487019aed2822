from django.urls import path

from social import views

urlpatterns = [
    path("feed/", views.feed_page, name="feed"),
    path("feed/seen/", views.seen, name="seen"),
    path("posts/<int:post_id>/like/", views.like, name="like"),
    path("posts/<int:post_id>/explain/", views.explain, name="explain"),
]
