"""The Starlette app: the page, its static files, and the one WebSocket at ``/ws``.

One dashboard, many viewers: every tab sees the same frames, and a selection made in any tab
becomes the next frame's request for all of them (the new state is broadcast to every tab).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from convscope.errors import ConvscopeError, RequestError
from convscope.server import commands, protocol, recording, trust, unit_commands
from convscope.server.dashboard import Dashboard
from convscope.server.hub import Hub, ThreadHandoff, Viewer
from convscope.server.security import cookie_name
from convscope.server.snapshot import zip_bytes as snapshot_zip_bytes

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATUS_EVERY = 0.5


def static_files(folder: Path = STATIC_DIR) -> dict[str, Path]:
    """The files the server may send: the regular files directly inside ``folder``, by name.

    Only names in this table are served, so no request path can reach outside the folder
    (``..``, encoded slashes, absolute paths and symlinks that leave it are not in the table).
    """
    root = folder.resolve()
    table = {}
    for path in sorted(folder.iterdir()):
        real = path.resolve()
        if path.is_file() and real.parent == root and not path.name.startswith("."):
            table[path.name] = real
    return table


def _error(message: str, about: str | None = None) -> str:
    return json.dumps({"type": "error", "message": message, "about": about})


def create_app(dash: Dashboard) -> Starlette:
    """Build the app; the pipeline runs while the app's lifespan does."""
    hub = Hub()
    files = static_files()
    hello_text = json.dumps(dash.hello, separators=(",", ":"))
    pipeline = dash.pipeline

    def state_message() -> dict:
        return {**pipeline.state.as_dict(), "paused": pipeline.paused}

    player = pipeline.player
    seen = {"version": -1}
    trusted = trust.TrustWorker(pipeline)  # the sanity toggle and deletion scores (issue 17): idle until asked
    recorder = dash.recorder
    record_panels = tuple((dash.hello.get("recordings") or {}).get("panels", ()))

    def playback_changed() -> None:
        """Tell every viewer where playback is (files and folders), and the pause button's state."""
        if player is not None:
            seen["version"] = player.version
            hub.broadcast("playback", player.describe())
            hub.broadcast("state", state_message())

    async def status_loop() -> None:
        while True:
            hub.broadcast("status", {**pipeline.stats(), "viewers": len(hub.viewers)})
            if player is not None and player.version != seen["version"]:
                playback_changed()  # the clock moved, or the file ended
            if recorder is not None and recorder.active is not None:
                hub.broadcast("recording", recorder.describe())  # frames so far
            await asyncio.sleep(STATUS_EVERY)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pipeline.set_publisher(ThreadHandoff(asyncio.get_running_loop(), hub))
        trust.connect(trusted, asyncio.get_running_loop(), hub)
        if recorder is not None:
            loop = asyncio.get_running_loop()

            def stopped_by_itself(message: str) -> None:  # from the recorder's thread: quota, full disk
                loop.call_soon_threadsafe(loop.run_in_executor, None, finish_recording, loop, None, message)

            recorder.on_error = stopped_by_itself
        pipeline.start()
        status = asyncio.create_task(status_loop())
        if dash.on_startup is not None:
            dash.on_startup()
        try:
            yield
        finally:
            status.cancel()
            hub.close()
            await asyncio.to_thread(pipeline.stop, 0.5)  # a stop signal must end the process within 1 s
            await asyncio.to_thread(trusted.stop, 0.3)
            if recorder is not None:
                await asyncio.to_thread(recorder.close)  # a recording still running: playable files
            if dash.units is not None:
                dash.units.close()

    async def index(request: Request) -> Response:
        reason = dash.guard.why_refused(request)
        if reason:
            return PlainTextResponse(f"convscope: {reason}\n", status_code=403)
        response = Response(files["index.html"].read_bytes(), media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-store"})
        if dash.guard.token is not None:
            response.set_cookie(cookie_name(request), dash.guard.token, httponly=True, samesite="strict")
        return response

    async def static(request: Request) -> Response:
        if not dash.guard.host_ok(request):
            return PlainTextResponse("convscope: Host header refused\n", status_code=403)
        path = files.get(request.path_params["name"])
        if path is None:
            return PlainTextResponse("not found\n", status_code=404)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if media.startswith("text/") or media.endswith("javascript"):
            media += "; charset=utf-8"
        return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "no-cache"})

    def handle(viewer: Viewer, text: str | None, data: bytes | None) -> None:
        try:
            kind = _kind(text)
            if kind == "record":
                record(viewer, text)
                return
            if kind == "snapshot":
                commands.parse_snapshot(protocol.decode(text), pipeline.snapshot_dir)
                if dash.quota is not None:
                    dash.quota.check("snapshot")
                loop = asyncio.get_running_loop()

                def done(reply: dict | None, error: str | None) -> None:  # from the engine thread
                    if reply is not None:
                        text_out = json.dumps({"type": "snapshot", **reply})
                        loop.call_soon_threadsafe(viewer.push_control, "snapshot", text_out)
                    else:
                        loop.call_soon_threadsafe(viewer.push_error, _error(error or "snapshot failed", "snapshot"))

                pipeline.request_snapshot(done)
                return
            if kind in trust.KINDS:  # sanity toggle, deletion scores
                trust.handle(trusted, protocol.decode(text), viewer, hub)
                return
            if kind in unit_commands.KINDS:  # the unit explorer (issue 15): answered off the event loop
                units_query(viewer, unit_commands.parse(protocol.decode(text), dash.space, pipeline.state.conv_layer,
                                                        dash.units is not None))
                return
            if kind in commands.KINDS:  # playback: seek, step, speed
                command = commands.parse(protocol.decode(text), player)
                commands.apply(command, player)
                playback_changed()
                return
            msg = protocol.parse(text if text is not None else data, dash.space)
            if isinstance(msg, protocol.AckMessage):
                viewer.ack(msg.seq)
                return
            if isinstance(msg, protocol.PauseMessage):
                pipeline.set_paused(msg.paused)
                playback_changed()
            else:
                new = protocol.apply_view(pipeline.state, msg.changes, dash.space)
                if dash.resolve is not None:
                    dash.resolve(new.to_request())
                pipeline.update(new)
            hub.broadcast("state", state_message())
        except ConvscopeError as exc:  # RequestError from the schema, LayerError from Engine.resolve
            viewer.push_error(_error(str(exc).splitlines()[0], _kind(text)))

    def record(viewer: Viewer, text: str | None) -> None:
        """``record`` start/stop: the state goes to every viewer, the files to the one who stopped it."""
        msg = recording.parse_record(protocol.decode(text), folder=None if recorder is None else recorder.folder,
                                     player=player, known=record_panels)
        if recorder is None:
            raise RequestError("this dashboard keeps no recordings (start it with --recordings DIR or --snapshots DIR)")
        if isinstance(msg, recording.RecordStart):
            hub.broadcast("recording", recorder.start(msg))
            playback_changed()  # "every frame" switches the player's mode
            return
        if recorder.active is None:
            raise RequestError("not recording: nothing to stop")
        hub.broadcast("recording", {**recorder.describe(), "stopping": True})
        asyncio.get_running_loop().run_in_executor(None, finish_recording, asyncio.get_running_loop(), viewer, None)

    def finish_recording(loop: asyncio.AbstractEventLoop, viewer: Viewer | None, error: str | None) -> None:
        """Stop the recording in a worker thread (the queue drains, the files close); the files go to
        ``viewer`` (the one who pressed stop) as ``recorded``, the new state to everyone."""
        assert recorder is not None
        try:
            summary = recorder.stop()
        except RequestError:
            return  # stopped already (two stops at once)
        except Exception as exc:
            if viewer is not None:
                loop.call_soon_threadsafe(viewer.push_error, _error(f"recording failed: {exc}"[:200], "record"))
            return
        if error:
            summary["error"] = error
        if viewer is not None:
            loop.call_soon_threadsafe(viewer.push_control, "recorded", json.dumps({"type": "recorded", **summary}))
        loop.call_soon_threadsafe(hub.broadcast, "recording", {"active": False, "last": summary, "error": error})
        loop.call_soon_threadsafe(playback_changed)

    async def recording_file(request: Request) -> Response:
        reason = dash.guard.why_refused(request)
        if reason:
            return PlainTextResponse(f"convscope: {reason}\n", status_code=403)
        path = recording.recording_file(None if recorder is None else recorder.folder, request.path_params["name"])
        if path is None:
            return PlainTextResponse("no such recording\n", status_code=404)
        media = "video/mp4" if path.suffix == ".mp4" else "image/gif"
        return FileResponse(path, media_type=media, filename=f"convscope-{path.name}",
                            headers={"Cache-Control": "no-store"})
    def units_query(viewer: Viewer, msg: unit_commands.UnitsMessage) -> None:
        async def run() -> None:
            try:
                reply = await asyncio.to_thread(unit_commands.answer, msg, dash.units)
                viewer.push_control("units", json.dumps(reply, separators=(",", ":")))
            except Exception as exc:  # a failed query must not end the connection
                viewer.push_error(_error(f"units: {type(exc).__name__}: {str(exc)[:160]}", "units"))

        task = asyncio.get_running_loop().create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    tasks: set[asyncio.Task] = set()

    async def websocket_endpoint(ws: WebSocket) -> None:
        reason = dash.guard.why_refused(ws, websocket=True)
        if reason:
            await ws.close(code=1008, reason=reason[:120])
            return
        await ws.accept()
        viewer = hub.add()
        viewer.push_control("hello", hello_text)
        if player is not None:
            player.viewer_arrived()  # a file waits paused on its first frame until someone watches
            viewer.push_control("playback", json.dumps({"type": "playback", **player.describe()}))
        viewer.push_control("state", json.dumps({"type": "state", **state_message()}))
        viewer.push_control("sanity", json.dumps({"type": "sanity", **trusted.describe()}))
        if recorder is not None:
            viewer.push_control("recording", json.dumps({"type": "recording", **recorder.describe()}))
        sender = asyncio.create_task(hub.serve(viewer, ws.send_text, ws.send_bytes))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                handle(viewer, message.get("text"), message.get("bytes"))
        except WebSocketDisconnect:
            pass
        finally:
            hub.remove(viewer)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def snapshot_zip(request: Request) -> Response:
        reason = dash.guard.why_refused(request)
        if reason:
            return PlainTextResponse(f"convscope: {reason}\n", status_code=403)
        root = pipeline.snapshot_dir
        name = request.path_params["name"]
        data = None if root is None else await asyncio.to_thread(snapshot_zip_bytes, root, name)
        if data is None:
            return PlainTextResponse("no such snapshot\n", status_code=404)
        return Response(data, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="convscope-{name}.zip"', "Cache-Control": "no-store"})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/snapshots/{name}.zip", snapshot_zip),
            Route("/recordings/{name}", recording_file),
            Route("/static/{name:path}", static),
            WebSocketRoute("/ws", websocket_endpoint),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.dashboard = dash
    app.state.trust = trusted
    return app


def _kind(text: str | None) -> str | None:
    """The ``type`` of a message, if it has a readable one (for the error reply)."""
    if not text or len(text) > protocol.MAX_MESSAGE_BYTES:
        return None
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError, RecursionError):
        return None
    return kind if isinstance(kind, str) and len(kind) <= 40 else None
