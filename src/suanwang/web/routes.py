"""Every router of the web pages, in the order they must be matched."""

from __future__ import annotations

from fastapi import APIRouter

from suanwang.web import job_pages, list_pages, overview_pages, pages, session_pages

# /jobs/new and /jobs/quote come before the job page's /jobs/{job_id}.
ROUTERS: tuple[APIRouter, ...] = (
    session_pages.router,
    job_pages.router,
    list_pages.router,
    overview_pages.router,
    pages.router,
)
