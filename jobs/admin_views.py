"""The Queues page of the admin (/admin/queues/): figures, workers and failed jobs; pause and resume."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from jobs import charts, monitoring, recovery
from jobs.enqueue import QUEUE_NAMES, UPLOADS, pause_queue, resume_queue


def queues_page(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Queues",
        "throughput": monitoring.throughput(),
        "stale_after": int(monitoring.STALE_AFTER.total_seconds()),
    }
    try:
        context.update(
            queues=monitoring.queue_figures(),
            workers=monitoring.workers(),
            failed_jobs=monitoring.failed_jobs(),
            scheduler=recovery.scheduler_state(monitoring.connection(), UPLOADS),
            charts=charts.windows(monitoring.connection()),
            media_check=monitoring.media_check(),
        )
    except RedisError as exc:
        # The database figures still help; say plainly what is missing.
        context["redis_error"] = f"Redis is unavailable: {exc}"
    return render(request, "admin/queues.html", context)


def _chosen_jobs(request: HttpRequest) -> list[str] | None:
    """The jobs a form names: one row's button, the ticked rows, or None for "all"."""
    if request.POST.get("all"):
        return None
    return request.POST.getlist("job") or request.POST.getlist("selected")


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("queues:index"))


@require_POST
def requeue(request: HttpRequest) -> HttpResponse:
    return _on_failed_jobs(request, monitoring.requeue_failed, "Requeued {count} failed job{s}.")


@require_POST
def delete(request: HttpRequest) -> HttpResponse:
    return _on_failed_jobs(
        request, monitoring.delete_failed, "Deleted {count} failed job{s}; their photos stay failed."
    )


def _on_failed_jobs(request: HttpRequest, act: Callable[[list[str] | None], int], done: str) -> HttpResponse:
    chosen = _chosen_jobs(request)
    if chosen == []:
        messages.warning(request, "No failed job was selected.")
        return _back()
    count = act(chosen)
    messages.success(request, done.format(count=count, s="s" if count != 1 else ""))
    return _back()


@require_POST
def pause(request: HttpRequest, name: str) -> HttpResponse:
    message = "Paused the {name} queue: workers take no new jobs from it; its jobs wait."
    return _on_queue(request, name, pause_queue, message)


@require_POST
def resume(request: HttpRequest, name: str) -> HttpResponse:
    return _on_queue(request, name, resume_queue, "Resumed the {name} queue.")


def _on_queue(request: HttpRequest, name: str, act: Callable[[str], None], done: str) -> HttpResponse:
    if name not in QUEUE_NAMES:
        raise Http404("No such queue")
    act(name)
    messages.success(request, done.format(name=name))
    return _back()


def _staff(view):
    # The admin's own guard: staff only, others go to the admin login; CSRF protected, never cached.
    return admin.site.admin_view(view)


urlpatterns = [
    path("", _staff(queues_page), name="index"),
    path("requeue/", _staff(requeue), name="requeue"),
    path("delete/", _staff(delete), name="delete"),
    path("<str:name>/pause/", _staff(pause), name="pause"),
    path("<str:name>/resume/", _staff(resume), name="resume"),
]
urls = (urlpatterns, "queues")
