"""`scenesynth serve`: a local web page to try a trained model. Type a prompt, pick a seed, hear the
clip and see its log-mel.

Starlette (routing, requests) on uvicorn (the server): both are already installed with MLflow,
small and well kept, and uvicorn shuts down gracefully on Ctrl-C / SIGTERM (docs/design.md). The
model is loaded once (a Synthesizer); one clip is made at a time (a lock: the CPU is the limit),
in a worker thread so the page stays responsive. Each answer carries the exact 16-bit WAV that
`scenesynth synthesize` would write for the same prompt and seed, and its log-mel as a PNG,
both as data URIs, so the server keeps no state and writes no files.

Safety: it binds 127.0.0.1 unless told otherwise; on a loopback address only requests that name
this machine as their Host are answered (a web site cannot reach it through DNS rebinding); the
synthesis endpoint takes JSON only, which a page from another origin cannot send without a CORS
preflight that this server never grants; bodies are capped; prompts are checked like the CLI's
and never reach a shell or the page's HTML (the page sets text, never markup).
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import socket
import threading
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from scenesynth import paths
from scenesynth.audio_io import encode16_bytes
from scenesynth.inference.synthesizer import Synthesizer
from scenesynth.report.pages import logmel_image, mel_pair_png

log = logging.getLogger(__name__)
PAGE = Path(__file__).with_name("page.html")
MAX_BODY_BYTES = 64 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
BAD_REQUEST = 'expected {"prompt": "...", "seed": 0}'


def _data_uri(kind: str, data: bytes) -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


class Studio:
    """The page's back end: one Synthesizer, one clip at a time."""

    def __init__(self, synth: Synthesizer):
        self.synth = synth
        self._lock = threading.Lock()

    def info(self) -> dict:
        return {**self.synth.describe(), "default_seed": self.synth.default_seed,
                "max_prompt_chars": self.synth.max_prompt_chars}

    def make(self, prompt, seed) -> dict:
        """The clip of (prompt, seed) as a WAV data URI, its log-mel PNG and how it was chosen."""
        with self._lock:
            result = self.synth(prompt if isinstance(prompt, str) else [prompt], seed)
        clip, rate, record = result.audio[0], result.sample_rate, result.records[0]
        front_end = self.synth.front_end
        png = mel_pair_png(logmel_image(clip, rate, front_end), None, front_end.settings,
                           (f"seed {record['seed']}", ""))
        return {**record, "sample_rate": rate, "seconds": len(clip) / rate,
                "wav": _data_uri("audio/wav", encode16_bytes(clip, rate, "WAV")), "png": _data_uri("image/png", png)}


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8765`` -> ``::1``, ``localhost:80`` -> ``localhost``
    (Starlette's own check cuts at the first colon, so an IPv6 address never matched)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.index("]")] if "]" in header else ""
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostGuard:
    """Answer only requests whose Host header names one of ``allowed`` ("*": any): a web site whose name
    resolves to this machine (DNS rebinding) is refused with 400."""

    def __init__(self, app, allowed: tuple[str, ...]):
        self.app, self.allowed = app, None if "*" in allowed else {name.lower() for name in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and self.allowed is not None:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if host_name(host) not in self.allowed:
                await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def parse_request(body: bytes) -> tuple[object, object]:
    """(prompt, seed) of a request body, or a ValueError that says what is wrong with it in one line.
    Hostile JSON (a number of thousands of digits, thousands of nested brackets) is a bad request too."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError(f"{BAD_REQUEST}: the JSON is nested too deeply") from None
    except ValueError as err:  # also UnicodeDecodeError and Python's limit on digits of an integer
        raise ValueError(f"{BAD_REQUEST}: not JSON this page reads ({str(err)[:80]})") from None
    if not isinstance(data, dict) or "prompt" not in data:
        raise ValueError(BAD_REQUEST)
    return data["prompt"], data.get("seed")


def build_app(synth: Synthesizer, allowed_hosts: list[str] | tuple[str, ...] = LOOPBACK_HOSTS) -> Starlette:
    studio = Studio(synth)

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    async def info(request: Request) -> JSONResponse:
        return JSONResponse(studio.info())

    async def make(request: Request) -> JSONResponse:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _error("send the prompt as JSON (Content-Type: application/json)", 415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(f"request larger than {MAX_BODY_BYTES} bytes", 413)
        try:
            prompt, seed = parse_request(body)
        except ValueError as err:
            return _error(str(err), 400)
        try:
            return JSONResponse(await run_in_threadpool(studio.make, prompt, seed))
        except ValueError as err:  # the prompt or the seed: the message says which and why
            return _error(str(err), 400)
        except RuntimeError as err:
            log.exception("synthesis failed")
            return _error(f"synthesis failed: {err}", 500)

    routes = [Route("/", page), Route("/api/info", info), Route("/api/synthesize", make, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(HostGuard, allowed=tuple(allowed_hosts))])


class _Stopped(Exception):
    """SIGTERM arrived: uvicorn has shut down; serve() says so and returns."""


def _stop(signum, frame):
    raise _Stopped


def make_server(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, socket.socket]:
    """A uvicorn server and its bound socket (port 0: any free port; the socket says which)."""
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is not in 0-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, int(port)), family=family)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config), sock


def allowed_hosts_for(host: str) -> tuple[str, ...]:
    """Loopback: only this machine's names. Another address is the user's explicit choice to share it."""
    return LOOPBACK_HOSTS if host in LOOPBACK_HOSTS else ("*",)


def serve(params: dict, model: str | Path, host: str | None = None, port: int | None = None,
          device: str | None = None, rerank: str | None = None, vocoder: str | None = None,
          seconds: float | None = None, pretrained: str | Path = paths.PRETRAINED) -> None:
    """Load the model, serve the page until Ctrl-C (or SIGTERM), then shut down cleanly and say so."""
    cfg = params["synthesize"]
    host = host or cfg["host"]
    port = cfg["port"] if port is None else port
    synth = Synthesizer(model, params, device=device, rerank=rerank, vocoder=vocoder, seconds=seconds,
                        pretrained=pretrained)
    server, sock = make_server(build_app(synth, allowed_hosts_for(host)), host, port)
    if host not in LOOPBACK_HOSTS:
        log.warning("serving on %s: anyone who can reach this machine can use the page", host)
    shown = f"[{host}]" if ":" in host else host
    print(f"scenesynth serve: open http://{shown}:{sock.getsockname()[1]}/ (Ctrl-C stops)", flush=True)
    # uvicorn shuts down gracefully on Ctrl-C and SIGTERM, then re-raises the signal it caught under the
    # handler that was there before: Python's for Ctrl-C (KeyboardInterrupt), ours for SIGTERM (the
    # default one would end the process before the "stopped" line).
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    print("scenesynth serve: stopped", flush=True)
