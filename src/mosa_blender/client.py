"""The HTTP client of ``mosa serve`` (urllib only; no bpy, so it is testable without Blender).

Every failure is a ``ServerError`` whose message says what happened and what to do: no server
at the address, a timeout, an endpoint this server does not have (an older mosa), a rejected
request (the server's own message and hint), an answer that is not mosa's.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 300.0  # seconds: a long motion on a slow CPU
START_HINT = "start one with: mosa serve --checkpoint <folder>"


class ServerError(Exception):
    """A request to the server failed; ``str()`` is the message for the user."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message


def check_url(url: str) -> str:
    """``url`` without a trailing slash; ``ServerError`` unless it is an http(s) address."""
    url = (url or "").strip().rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(
            f"the server URL {url!r} is not an http address: set it in the add-on preferences, "
            f"e.g. {DEFAULT_URL}"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Client:
    """``mosa serve`` at ``url``; each request waits at most ``timeout`` seconds."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = DEFAULT_TIMEOUT):
        self.url = check_url(url)
        self.timeout = float(timeout)
        host = urllib.parse.urlsplit(self.url).hostname or ""
        # a local server is never reached through the user's HTTP proxy
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
        self._opener = urllib.request.build_opener(*handlers)

    # -- the API ---------------------------------------------------------------------------
    def health(self, timeout: float | None = None) -> dict[str, Any]:
        return self._request("GET", "/api/health", None, timeout)

    def generate(
        self, text: str, seconds: float | None, seed: int | None, rig_bvh: str | None = None
    ) -> dict[str, Any]:
        """One motion: ``{"samples": [{"joints": (T, 22, 3), "fps", ...}], ...}``; with
        ``rig_bvh`` (a skeleton as BVH text) each sample's ``bvh`` is on that skeleton."""
        body = {"text": text, "seconds": seconds, "seed": seed, "num_samples": 1, "bvh": False}
        return self._request("POST", "/api/generate", _with_rig(body, rig_bvh))

    def edit(
        self, joints: Sequence, text: str, start: float, end: float, seed: int | None
    ) -> dict[str, Any]:
        """Regenerate ``start``-``end`` seconds of ``joints`` (T, 22, 3), keeping the rest."""
        body = {"joints": joints, "text": text, "start": start, "end": end, "seed": seed}
        return self._request("POST", "/api/edit", body)

    def extend(
        self, joints: Sequence, text: str, seconds: float, seed: int | None
    ) -> dict[str, Any]:
        """``joints`` followed by ``seconds`` more for ``text``."""
        body = {"joints": joints, "text": text, "seconds": seconds, "seed": seed}
        return self._request("POST", "/api/extend", body)

    def sequence(
        self,
        texts: Sequence[str],
        seconds: Sequence[float] | None,
        seed: int | None,
        rig_bvh: str | None = None,
    ) -> dict[str, Any]:
        """One take of several prompts; the answer adds ``parts`` [{"text", "start", "end"}].
        ``rig_bvh`` as for ``generate``."""
        body = {
            "texts": list(texts),
            "seconds": None if seconds is None else list(seconds),
            "seed": seed,
            "bvh": False,
        }
        return self._request("POST", "/api/sequence", _with_rig(body, rig_bvh))

    # -- transport -------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, body: Any, timeout: float | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        wait = self.timeout if timeout is None else timeout
        try:
            with self._opener.open(req, timeout=wait) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, path) from None
        except TimeoutError:
            raise ServerError(
                f"the mosa server at {self.url} did not answer {path} within {wait:g} s: "
                "it may be busy; try again, or raise the timeout in the add-on preferences"
            ) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise ServerError(
                    f"the mosa server at {self.url} did not answer within {wait:g} s"
                ) from None
            why = getattr(reason, "strerror", None) or str(reason)
            raise ServerError(
                f"no mosa server answers at {self.url} ({why}): {START_HINT}, or set the "
                "server URL in the add-on preferences"
            ) from None
        except (OSError, ValueError) as exc:  # a reset connection, a malformed answer
            raise ServerError(f"the request to {self.url}{path} failed: {exc}") from None
        return _decode(raw, self.url + path)

    def _http_error(self, exc: urllib.error.HTTPError, path: str) -> ServerError:
        try:
            payload = json.loads(exc.read() or b"{}")
        except (ValueError, OSError):
            payload = {}
        detail = payload.get("detail") if isinstance(payload, dict) else None
        hint = payload.get("hint") if isinstance(payload, dict) else None
        if exc.code == 404:
            return ServerError(
                f"the server at {self.url} has no {path}: it is an older mosa (or not mosa); "
                "update mosa and restart mosa serve",
                404,
            )
        if not isinstance(detail, str):
            detail = f"HTTP {exc.code} {exc.reason}"
        message = f"the mosa server refused the request: {detail}"
        if exc.code == 503:
            message = f"the mosa server is busy: {detail}"
        if isinstance(hint, str) and hint:
            message += f" (hint: {hint})"
        return ServerError(message, exc.code)


def _decode(raw: bytes, where: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError:
        raise ServerError(f"{where} did not answer JSON: is it a mosa server?") from None
    if not isinstance(payload, dict):
        raise ServerError(f"{where} answered {type(payload).__name__}, not a JSON object")
    return payload


def _with_rig(body: dict[str, Any], rig_bvh: str | None) -> dict[str, Any]:
    return body if rig_bvh is None else {**body, "bvh": True, "rig_bvh": rig_bvh}


def first_bvh(payload: dict[str, Any]) -> str:
    """The BVH text of the first sample of an answer; ``ServerError`` if it has none."""
    try:
        text = payload["samples"][0]["bvh"]
        if not isinstance(text, str) or "MOTION" not in text:
            raise ValueError("no BVH text")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ServerError(f"the server's answer holds no motion on the rig ({exc})") from None
    return text


def first_motion(payload: dict[str, Any]) -> tuple[list, float]:
    """``(joints (T, 22, 3), fps)`` of the first sample of an answer; ``ServerError`` if the
    answer has none."""
    try:
        sample = payload["samples"][0]
        joints, fps = sample["joints"], float(sample.get("fps", 20.0))
        if not joints or len(joints[0]) != 22 or len(joints[0][0]) != 3:
            raise ValueError("joints are not (T, 22, 3)")
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ServerError(f"the server's answer holds no motion ({exc})") from None
    return joints, fps


class ServerStatus:
    """Whether a server answers, checked in a background thread so a panel never waits.

    ``state(url)`` returns ``(ok, message)`` of the last check of ``url`` (``None`` before the
    first one) and starts a new check when the last is older than ``every`` seconds.
    """

    def __init__(self, every: float = 5.0, timeout: float = 2.0):
        self.every, self.timeout = every, timeout
        self._lock = threading.Lock()
        self._results: dict[str, tuple[float, bool, str]] = {}
        self._running: set[str] = set()

    def state(self, url: str) -> tuple[bool, str] | None:
        with self._lock:
            last = self._results.get(url)
            stale = last is None or time.monotonic() - last[0] > self.every
            if stale and url not in self._running:
                self._running.add(url)
                threading.Thread(target=self._check, args=(url,), daemon=True).start()
        return None if last is None else (last[1], last[2])

    def record(self, url: str, ok: bool, message: str = "") -> None:
        """What a request just learnt about ``url`` (saves a check)."""
        with self._lock:
            self._results[url] = (time.monotonic(), ok, message)

    def _check(self, url: str) -> None:
        try:
            info = Client(url, self.timeout).health()
            model = info.get("model", {}) if isinstance(info, dict) else {}
            ok, message = True, f"connected ({model.get('checkpoint') or 'mosa'})"
        except ServerError as exc:
            ok, message = False, str(exc)
        with self._lock:
            self._running.discard(url)
            self._results[url] = (time.monotonic(), ok, message)
