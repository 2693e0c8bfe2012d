"""The jobs pages: every job with its next firings and state; one job's past runs with their
deliveries; pause, resume, run now, cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from herald.console.base import Page, language_of
from herald.console.conversations import job_runs
from herald.core.jobs import Job, JobError, next_firings

CANCELLED = "cancelled by the operator (console)"  # the end reason of a job cancelled here


class JobPages(Page):
    def _job_view(self, job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "name": job.name,
            "conversation": job.conversation,
            "schedule": job.schedule.describe(),
            "action": f"send {job.text!r}" if job.action == "send" else job.note,
            "firings": [self._when(moment) for moment in next_firings(job)],
            "state": "ended" if not job.active else "paused" if job.paused else "active",
            "reason": job.end_reason if not job.active else job.pause_reason,
            "since": self._when(job.paused_at) if job.paused_at and job.active else None,
            "runs": job.runs,
            "last_run": self._when(job.last_run_at) if job.last_run_at else None,
        }

    async def job_list(self, request: Request) -> Response:
        every = await self.ops.jobs.list_jobs(include_ended=True)
        ended = sorted((job for job in every if not job.active), key=lambda job: job.created_at)[-20:]
        return self.render(
            request,
            "jobs.html",
            title="jobs",
            jobs=[self._job_view(job) for job in every if job.active],
            ended=[self._job_view(job) for job in reversed(ended)],
            back="/jobs",
        )

    async def job_page(self, request: Request) -> Response:
        job = await self.ops.jobs.get(request.path_params["id"])
        if job is None:
            missing = "没有这个任务。" if language_of(request) == "zh" else "No such job."
            return self.render(
                request, "job.html", 404, title="job", job=None, runs=[], error=missing, back="/jobs"
            )
        runs = await job_runs(self.ops.db, job.id, job.conversation)
        return self.render(
            request,
            "job.html",
            title=f"job {job.id}",
            job=self._job_view(job),
            runs=runs,
            when=self._when,
            back=f"/jobs/{job.id}",
        )

    async def _job_change(
        self, request: Request, change: Callable[[str, str], Awaitable[Job]], done: tuple[str, str]
    ) -> Response:
        """Apply one change to the form's job; back to the page the form was on, with a notice."""
        form = await request.form()
        job_id = str(form.get("id") or "")
        back = str(form.get("back") or "/jobs")
        if not back.startswith("/jobs"):
            back = "/jobs"
        try:
            job = await change(job_id, str(form.get("reason") or "").strip())
        except JobError as exc:
            self.notify(request, f"job {job_id}: {exc}", f"任务 {job_id}：{exc}")
        else:
            # Resuming a one-shot whose time passed ends it: say so rather than "resumed".
            state = f" · {job.state}" if not job.active and job.end_reason != CANCELLED else ""
            self.notify(
                request, f"{done[0]} {job.id} ({job.name}){state}", f"{done[1]} {job.id}（{job.name}）{state}"
            )
        return RedirectResponse(back, status_code=303)

    async def cancel(self, request: Request) -> Response:
        async def end(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.end(job_id, reason=CANCELLED)

        return await self._job_change(request, end, ("cancelled", "已取消"))

    async def pause(self, request: Request) -> Response:
        async def pause(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.pause(job_id, reason=reason or "from the console")

        return await self._job_change(request, pause, ("paused", "已暂停"))

    async def resume(self, request: Request) -> Response:
        async def resume(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.resume(job_id)

        return await self._job_change(request, resume, ("resumed", "已恢复"))

    async def run_now(self, request: Request) -> Response:
        async def run(job_id: str, reason: str) -> Job:
            return await self.ops.jobs.run_now(job_id)

        return await self._job_change(request, run, ("running now:", "正在立即运行"))
