"""The app's own tables. pgfeed never writes them: triggers (migration 0002, pgfeed adopt) copy
every change into feed.posts and feed.follows, where the ranking reads them."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Post(models.Model):
    KINDS = [("image", "image"), ("video", "video"), ("text", "text")]

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts")
    body = models.TextField(blank=True)
    category = models.CharField(max_length=50)            # -> feed.posts.category
    kind = models.CharField(max_length=20, choices=KINDS, default="image")  # -> feed.posts.post_type
    duration_ms = models.IntegerField(null=True, blank=True)               # videos
    hidden = models.BooleanField(default=False)           # -> feed.posts.is_deleted
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"post {self.pk} by {self.author_id}"


class Follow(models.Model):
    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following")
    followee = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["follower", "followee"], name="social_follow_once")]
