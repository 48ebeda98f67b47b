"""Looking at an OME-Zarr in neuroglancer: a CORS file server and a headless browser.

:func:`serve_directory` serves a folder over HTTP on localhost with the CORS
headers a browser needs to fetch zarr chunks from another origin.
:class:`NeuroglancerBrowser` drives the neuroglancer web client (from the
``neuroglancer`` Python package) in headless Chromium through selenium, shows
OME-Zarr images and takes screenshots::

    with serve_directory("outputs") as base, NeuroglancerBrowser() as ng:
        ng.show({"restored": f"{base}/restored.ome.zarr"}, pixel_nm=4.6)
        pixels = ng.screenshot((800, 600))

Needs ``pip install neuroglancer selenium`` and a Chromium with its driver
(Debian: ``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from pssr_volume.errors import PssrError

__all__ = ["CHROMIUM_FLAGS", "NeuroglancerBrowser", "serve_directory"]

# Headless Chromium on a machine without a GPU or a network: software WebGL, no
# sandbox (containers run as root), no background requests.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


SOURCE_SCHEMES = ("precomputed://", "zarr://", "zarr2://", "zarr3://", "n5://")
_NM_PER_UNIT = {"m": 1e9, "mm": 1e6, "um": 1e3, "µm": 1e3, "nm": 1.0}


class _CorsHandler(SimpleHTTPRequestHandler):
    """Static files with ``Access-Control-Allow-Origin: *`` and byte ranges (``Range:
    bytes=A-B``, ``bytes=A-``, ``bytes=-N``), as object stores and web servers serve them:
    neuroglancer reads a zarr v3 shard's index and chunks by range requests. Quiet."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming scheme
        wanted = self.headers.get("Range", "")
        path = self.translate_path(self.path)
        if not wanted.startswith("bytes=") or not os.path.isfile(path):
            super().do_GET()
            return
        size = os.path.getsize(path)
        first, _, last = wanted[len("bytes="):].split(",")[0].strip().partition("-")
        if first == "":  # the last N bytes
            start, stop = max(0, size - int(last)), size
        else:
            start, stop = int(first), min(size, int(last) + 1 if last else size)
        if start >= stop:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(stop - start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self) -> None:  # noqa: N802 - the http.server naming scheme
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # a browser opens many connections at once; 5 refuses some
    daemon_threads = True


@contextlib.contextmanager
def serve_directory(root: str | os.PathLike[str], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `root` read-only over HTTP with CORS headers, on a free port of `host`.

    Yields
    ------
    str
        The base URL, e.g. ``http://127.0.0.1:43121``.
    """
    handler = functools.partial(_CorsHandler, directory=os.fspath(root))
    server = _Server((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="pssr-http", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _essentials(state: Any) -> tuple[Any, ...]:
    """What a screenshot must already show: layers, position, zoom, displayed axes.
    (The client rewrites other parts of the state, e.g. multi-panel layouts.)"""
    position = state.position
    return (
        tuple(layer.name for layer in state.layers),
        None if position is None else tuple(np.round(np.asarray(position, float), 3)),
        None if state.cross_section_scale is None else round(float(state.cross_section_scale), 6),
        tuple(state.display_dimensions or ()),
    )


def _drop_root_handlers(keep: list[logging.Handler]) -> None:
    """Undo ``logging.basicConfig()``, which neuroglancer calls: its handler would write to
    whatever ``sys.stderr`` was at that moment (under pytest, a capture that is closed later)."""
    for handler in [h for h in logging.root.handlers if h not in keep]:
        logging.root.removeHandler(handler)


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


class NeuroglancerBrowser:
    """The neuroglancer client in headless Chromium, controlled from Python.

    Parameters
    ----------
    chromium : str, optional
        The browser binary; default the first of ``chromium``,
        ``chromium-browser``, ``google-chrome`` on ``PATH``.
    window : tuple of int
        Browser window size (width, height).
    """

    def __init__(self, chromium: str | None = None, window: tuple[int, int] = (1280, 800)):
        self.chromium = chromium or _find("chromium", "chromium-browser", "google-chrome")
        self.window = window
        self.console: list[str] = []
        self.viewer: Any = None
        self._driver: Any = None
        self._profile: str | None = None
        self._root_handlers: list[logging.Handler] = []

    def __enter__(self) -> NeuroglancerBrowser:
        handlers = self._root_handlers = list(logging.root.handlers)
        try:
            import neuroglancer
            import neuroglancer.webdriver
        except ImportError as exc:
            raise PssrError("neuroglancer is not installed: pip install neuroglancer selenium") \
                from exc
        finally:
            _drop_root_handlers(handlers)
        if self.chromium is None:
            raise PssrError("no Chromium found: install chromium and chromium-driver "
                            "(Debian: apt-get install chromium chromium-driver)")
        if _find("chromedriver") is None:
            raise PssrError("no chromedriver found: install chromium-driver")
        os.environ.setdefault("SE_OFFLINE", "true")  # use the local chromedriver, no network
        os.environ.setdefault("SE_AVOID_STATS", "true")
        neuroglancer.set_server_bind_address("127.0.0.1")
        self.viewer = neuroglancer.Viewer()
        self._profile = tempfile.mkdtemp(prefix="pssr-chromium-")
        try:
            self._driver = neuroglancer.webdriver.Webdriver(
                self.viewer, headless=True, browser="chrome", window_size=self.window,
                browser_binary_path=self.chromium, print_logs=False,
                extra_command_line_args=[*CHROMIUM_FLAGS, f"--user-data-dir={self._profile}"],
            )
            self._driver.add_log_listener(lambda entry: self.console.append(str(entry.text)))
        except Exception as exc:
            self.__exit__(None, None, None)
            raise PssrError(f"could not start Chromium for neuroglancer: "
                            f"{' '.join(str(exc).split())[:300]}") from exc
        _drop_root_handlers(handlers)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._driver is not None:
            with contextlib.suppress(Exception):
                self._driver.driver.quit()
            self._driver = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def show(self, layers: Mapping[str, str], *, center_nm: Sequence[float] | None = None,
             pixel_nm: float | None = None, side_by_side: bool = False,
             scale_bar: bool = False) -> None:
        """Show OME-Zarr images in xy cross-sections, on a fresh page.

        Parameters
        ----------
        layers : mapping of str to str
            Layer name -> URL of an OME-Zarr image (served over HTTP), or a neuroglancer
            source URL that names its format (``precomputed://http://...``).
        center_nm : sequence of float, optional
            ``(z, y, x)`` point at the centre of the view, in nm of the images'
            physical space (NGFF coordinates: voxel centres); default the centre
            of the data.
        pixel_nm : float, optional
            Nanometres per screen pixel; default the finest voxel size (1:1).
        side_by_side : bool
            One panel per layer in a row, all at the same position and zoom,
            instead of the layers stacked in one panel.
        scale_bar : bool
            Draw neuroglancer's scale bar.
        """
        import neuroglancer

        viewer = neuroglancer.Viewer()  # a fresh page: no state left from earlier layers
        with viewer.txn() as s:
            for name, url in layers.items():  # OME-Zarr, unless the URL names its format
                source = url if url.startswith(SOURCE_SCHEMES) else f"zarr://{url}"
                s.layers[name] = neuroglancer.ImageLayer(source=source)
            if side_by_side:
                s.layout = neuroglancer.row_layout([
                    neuroglancer.LayerGroupViewer(layers=[name], layout="xy")
                    for name in layers
                ])
            else:
                s.layout = "xy"
        self.viewer = self._driver.viewer = viewer
        self._driver.driver.get(viewer.get_viewer_url())
        _drop_root_handlers(self._root_handlers)
        self._wait_for_dimensions()  # display settings need the sources' coordinate space
        with self.viewer.txn() as s:
            dims = s.dimensions
            nm = {n: float(sc) * _NM_PER_UNIT.get(u, 1.0)
                  for n, sc, u in zip(dims.names, dims.scales, dims.units)}
            s.display_dimensions = ["x", "y", "z"]
            if pixel_nm is not None:  # neuroglancer: canonical (finest x/y) voxels per pixel
                s.cross_section_scale = pixel_nm / min(nm["x"], nm["y"])
            s.show_axis_lines = False
            s.show_scale_bar = scale_bar
            s.show_default_annotations = False
            if center_nm is not None:
                s.position = [float(center_nm["zyx".index(n)]) / nm[n] for n in dims.names]

    def _wait_for_dimensions(self, timeout: float = 30.0) -> None:
        """Wait until the client has read the sources' metadata (coordinate space)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set("zyx") <= set(self.viewer.state.dimensions.names or ()):
                return
            time.sleep(0.1)
        raise PssrError(f"neuroglancer did not load the image metadata in {timeout:g} s"
                        + self._console_tail())

    def screenshot(self, size: tuple[int, int] = (800, 600), timeout: float = 120.0) -> np.ndarray:
        """Render the viewer at `size` (width, height) once its data are loaded.

        Returns
        -------
        numpy.ndarray
            ``(height, width, 3)`` uint8 RGB pixels.

        Raises
        ------
        PssrError
            If the browser gives no screenshot within `timeout` seconds.
        """
        viewer = self.viewer
        prior = viewer.config_state.state
        with viewer.config_state.txn() as s:
            s.show_ui_controls = False
            s.show_panel_borders = False
            s.viewer_size = list(size)
        try:
            deadline = time.monotonic() + timeout
            while True:  # until the client has the current state and the new size
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PssrError(f"neuroglancer gave no screenshot in {timeout:g} s"
                                    + self._console_tail())
                done = threading.Event()
                result: list[Any] = []
                viewer.async_screenshot(
                    lambda reply, result=result, done=done: (result.append(reply), done.set()))
                if not done.wait(min(left, 20.0)):
                    continue  # a request sent while the page (re)connected: ask again
                shot = result[0].screenshot
                if (shot.width, shot.height) == tuple(size) and (
                    _essentials(result[0].viewer_state) == _essentials(viewer.state)
                ):
                    break
                time.sleep(0.1)
        finally:
            viewer.config_state.set_state(prior)
        return np.asarray(shot.image_pixels)[..., :3].copy()

    def _console_tail(self) -> str:
        errors = [line for line in self.console if "error" in line.lower()][-2:]
        return f" (browser console: {' | '.join(errors)[:300]})" if errors else ""
