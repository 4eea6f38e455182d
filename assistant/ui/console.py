"""The operator console over HTTP: HTML pages under /console and the same data as JSON under
/api/console. The role is checked on the server on every route: no sign-in answers 401, a signed-in
user who is not an operator 403. Operators' reads of message text (a record's page, the list's
request excerpts), labels and exports are logged (`operator_action`, and ids only in the application log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import Engine

from assistant.safety import review
from assistant.safety.spec import Spec
from assistant.ui import console_html as html
from assistant.ui.bodies import AuditLabel
from assistant.ui.inputs import path_id, read_form, read_model
from assistant.ui.routes import install_first, signed_in_account
from assistant.usage import Price, usage_report
from memory.db import read, write
from memory.models import Role

logger = logging.getLogger(__name__)
RecordId = Annotated[int, path_id("record_id", "There is no such audit record.")]


class Console:
    def __init__(self, engine: Engine, spec: Spec, prices: dict[str, Price] | None = None) -> None:
        self._engine, self._spec, self._prices = engine, spec, prices or {}

    async def operator(self, request: Request) -> str:
        account = await signed_in_account(self._engine, request)
        if account.role != Role.OPERATOR:
            raise HTTPException(status_code=403, detail="The audit console is for operators.")
        return account.identifier

    async def _read(self, work: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(read, self._engine, work)

    async def _write(self, work: Callable[[Any], Any]) -> Any:
        return await asyncio.to_thread(write, self._engine, work)

    async def _filter(self, request: Request) -> tuple[review.AuditFilter, int, int]:
        params = request.query_params
        known = lambda rule: read(self._engine, lambda s: review.rule_is_cited(s, rule))  # noqa: E731
        f = await asyncio.to_thread(review.parse_filter, dict(params), self._spec, known)
        page, size = review.parse_page(params.get("page"), params.get("page_size"))
        return f, page, size

    # --- JSON -----------------------------------------------------------------------------------

    async def api_records(self, request: Request) -> JSONResponse:
        await self.operator(request)
        f, page, size = await self._checked(self._filter(request))
        listing = await self._read(lambda s: review.list_records(s, f, page=page, page_size=size))
        return JSONResponse(listing)

    async def api_record(self, request: Request, record_id: RecordId) -> JSONResponse:
        who = await self.operator(request)
        record = await self._checked(self._write(lambda s: review.detail(s, record_id=record_id, spec=self._spec,
                                                                          operator=who)))
        logger.info("operator %s viewed audit record %s", who, record_id)
        return JSONResponse(record)

    async def api_label(self, request: Request, record_id: RecordId) -> JSONResponse:
        who, body = await self.operator(request), await read_model(request, AuditLabel)
        record = await self._checked(self._write(lambda s: review.summary(review.label(
            s, record_id=record_id, value=body.label, note=body.note, operator=who))))
        logger.info("operator %s labelled audit record %s", who, record_id)
        return JSONResponse(record)

    async def api_metrics(self, request: Request) -> JSONResponse:
        await self.operator(request)
        f, _, _ = await self._checked(self._filter(request))
        return JSONResponse(await self._read(lambda s: review.metrics(s, f, self._spec)))

    async def api_export(self, request: Request) -> Response:
        return await self._export(request, request.query_params.get("format", "jsonl"))

    async def api_usage(self, request: Request) -> JSONResponse:
        await self.operator(request)
        days = _days(request)
        return JSONResponse({"days_shown": days, **await self._read(
            lambda s: usage_report(s, days=days, prices=self._prices))})

    # --- pages ----------------------------------------------------------------------------------

    async def page_list(self, request: Request) -> HTMLResponse:
        who = await self._page_operator(request)
        if isinstance(who, HTMLResponse):
            return who
        typed = {name: request.query_params.get(name, "") for name in html.FILTER_NAMES}
        try:
            f, page, size = await self._filter(request)
        except review.ReviewError as exc:
            # A filter that cannot be met lists nothing (not everything) and keeps what the operator typed.
            page_html = html.list_page(review.AuditFilter(), None, None, str(exc), spec=self._spec, typed=typed)
            return HTMLResponse(page_html, status_code=400)

        def listing_with_excerpts(session) -> dict:
            listing = review.list_records(session, f, page=page, page_size=size)
            return {**listing, "records": review.with_excerpts(session, listing["records"], operator=who)}

        listing = await self._write(listing_with_excerpts)
        logger.info("operator %s listed %d audit records with excerpts", who, len(listing["records"]))
        stats = await self._read(lambda s: review.metrics(s, f, self._spec))
        return HTMLResponse(html.list_page(f, listing, stats, spec=self._spec, typed=typed))

    async def page_record(self, request: Request, record_id: RecordId) -> HTMLResponse:
        who = await self._page_operator(request)
        if isinstance(who, HTMLResponse):
            return who
        try:
            record = await self._write(lambda s: review.detail(s, record_id=record_id, spec=self._spec, operator=who))
        except review.ReviewError as exc:
            return _not_found(exc)
        logger.info("operator %s viewed audit record %s", who, record_id)
        return HTMLResponse(html.detail_page(record, request.query_params.get("error"), spec=self._spec))

    async def page_label(self, request: Request, record_id: RecordId) -> Response:
        who = await self._page_operator(request)
        if isinstance(who, HTMLResponse):
            return who
        form = await read_form(request)
        value, note = form.get("label", ""), form.get("note")
        try:
            await self._write(lambda s: review.label(s, record_id=record_id, value=value, note=note, operator=who))
        except review.ReviewError as exc:
            if isinstance(exc, review.RecordNotFound):
                return _not_found(exc)
            return RedirectResponse(f"/console/records/{record_id}?{urlencode({'error': str(exc)})}", status_code=303)
        logger.info("operator %s labelled audit record %s", who, record_id)
        return RedirectResponse(f"/console/records/{record_id}", status_code=303)

    async def page_usage(self, request: Request) -> HTMLResponse:
        if isinstance(who := await self._page_operator(request), HTMLResponse):
            return who
        try:
            days = _days(request)
        except HTTPException as exc:
            return HTMLResponse(html.message_page("Usage", str(exc.detail), ("/console/usage", "The last 30 days")),
                                status_code=exc.status_code)
        report = await self._read(lambda s: usage_report(s, days=days, prices=self._prices))
        return HTMLResponse(html.usage_page(report, days))

    async def page_export_csv(self, request: Request) -> Response:
        return await self._export(request, "csv")

    async def page_export_jsonl(self, request: Request) -> Response:
        return await self._export(request, "jsonl")

    # --- shared -----------------------------------------------------------------------------------

    async def _export(self, request: Request, kind: str) -> Response:
        who = await self.operator(request)
        if kind not in ("csv", "jsonl"):
            raise HTTPException(status_code=400, detail="format is csv or jsonl.")
        f, _, _ = await self._checked(self._filter(request))
        rows = review.export_rows(self._engine, f, operator=who)
        body = review.as_csv(rows) if kind == "csv" else review.as_jsonl(rows)
        logger.info("operator %s exported audit records as %s", who, kind)
        media = "text/csv" if kind == "csv" else "application/x-ndjson"
        # A sync generator: Starlette iterates it in a worker thread, a batch of rows at a time.
        return StreamingResponse(body, media_type=media,
                                 headers={"Content-Disposition": f'attachment; filename="audit.{kind}"'})

    async def _checked(self, work):
        try:
            return await work
        except review.ReviewError as exc:
            raise HTTPException(status_code=exc.status, detail=str(exc)) from None

    async def _page_operator(self, request: Request) -> str | HTMLResponse:
        """The operator's name, or the page that says why this visitor may not see the console."""
        try:
            return await self.operator(request)
        except HTTPException as exc:
            text = exc.detail if exc.status_code == 403 else "Sign in as an operator to use the audit console."
            return HTMLResponse(html.message_page("Audit console", text, ("/login", "Sign in")),
                                status_code=exc.status_code)


def _days(request: Request) -> int:
    """The Usage page's period: ?days=N, one of the offered periods (else 400, saying which there are)."""
    value = request.query_params.get("days", "30")
    if value not in {str(n) for n in html.USAGE_PERIODS}:
        raise HTTPException(status_code=400, detail=f"days is one of {', '.join(map(str, html.USAGE_PERIODS))}.")
    return int(value)


def _not_found(exc: review.ReviewError) -> HTMLResponse:
    return HTMLResponse(html.message_page("Not found", str(exc), ("/console", "Back to the list")), status_code=404)


def install_console(fastapi_app: FastAPI, console: Console) -> None:
    install_first(fastapi_app, [
        ("/api/console/records", console.api_records, ["GET"]),
        ("/api/console/records/{record_id}", console.api_record, ["GET"]),
        ("/api/console/records/{record_id}/label", console.api_label, ["POST"]),
        ("/api/console/metrics", console.api_metrics, ["GET"]),
        ("/api/console/export", console.api_export, ["GET"]),
        ("/api/console/usage", console.api_usage, ["GET"]),
        ("/console", console.page_list, ["GET"]),
        ("/console/", console.page_list, ["GET"]),  # the Console button's target (public/hyperalign.js)
        ("/console/usage", console.page_usage, ["GET"]),
        ("/console/records/{record_id}", console.page_record, ["GET"]),
        ("/console/records/{record_id}/label", console.page_label, ["POST"]),
        ("/console/export.csv", console.page_export_csv, ["GET"]),
        ("/console/export.jsonl", console.page_export_jsonl, ["GET"]),
    ])
