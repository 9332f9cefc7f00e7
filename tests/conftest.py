"""Fixtures: free ports, collector configs built from parts, collector subprocesses, OTLP sinks."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from collector import native
from collector.batch import TelemetryBatch
from collector.config_builder import ConfigBuilder
from collector.storage.ledger import Ledger
from collector.storage.rows import CallColumns
from collector.storage.store import LedgerStore
from processors.genai_attribution import AttributionConfig, GenAIAttribution
from tests import genai_helpers
from tests.genai_helpers import load_sample, run
from tests.otlp_sink import OtlpSink


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+), so that no client socket, browser or driver
    started later in the test can be handed the same port before the collector binds it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


def on_ports(ports: dict[str, int], grpc: bool = True, http: bool = True) -> ConfigBuilder:
    """A collector config on a test's ports: the otlp receiver (gRPC and HTTP) and health_check; add the rest."""
    return ConfigBuilder().otlp(grpc=ports["grpc"] if grpc else None, http=ports["http"] if http else None) \
        .health_check(ports["health"])


class CollectorProcess:
    """A ``genai-collector run`` subprocess on its own config file and free ports."""

    def __init__(self, workdir: Path, config: ConfigBuilder | str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()):
        self.workdir = workdir
        self.args = args  # more options of ``run`` (--workers 2)
        self.config = workdir / "collector.yaml"
        self.config.write_text(config if isinstance(config, str) else config.yaml())
        self.log_path = workdir / "collector.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, health_port: int, timeout: float = 20.0) -> CollectorProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "collector", "run", "--config", str(self.config),
                                      *self.args],
                                     stdout=self._log, stderr=self._log, env=self.env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=1) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"collector did not become healthy:\n{self.logs()}")

    def health(self, health_port: int) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/", timeout=2) as reply:
            return json.loads(reply.read())

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def ports():
    class Ports(dict):
        def __missing__(self, name: str) -> int:
            port = free_port()
            while port in self.values():
                port = free_port()
            self[name] = port
            return port
    return Ports()


@pytest.fixture
def collector(tmp_path):
    """Factory: ``collector(config, health_port)`` starts a collector on a ConfigBuilder (or YAML text);
    stopped after the test."""
    started: list[CollectorProcess] = []

    def start(config: ConfigBuilder | str, health_port: int, env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> CollectorProcess:
        workdir = tmp_path / f"collector{len(started)}"
        workdir.mkdir()
        process = CollectorProcess(workdir, config, env, args)
        started.append(process)
        return process.start(health_port)

    yield start
    for process in started:
        if process.proc is not None and process.proc.poll() is None:
            process.stop(signal.SIGKILL)


@pytest.fixture
def sink():
    backend = OtlpSink()
    yield backend
    backend.stop()


def sample_batch(name: str, customer: str) -> TelemetryBatch:
    attribution = GenAIAttribution(AttributionConfig(customer=("span.nope",), default={"customer": customer},
                                                     max_cardinality=100))
    return run(load_sample(name), also=[attribution])


@pytest.fixture
def ledger_file(tmp_path) -> Path:
    """A stopped collector's file: the twelve dialect samples (2026-01-01), two customers."""
    path = tmp_path / "costs.duckdb"
    ledger = Ledger.open(path)
    columns = CallColumns(ledger.dimensions)
    for index in range(1, 13):
        columns.add(sample_batch(f"{index:02d}", "acme" if index % 2 else "globex"))
    assert len(ledger.append(columns.table())) == 12
    assert ledger.roll_up() == 12  # as the collector does at shutdown
    ledger.close()
    return path


@pytest.fixture(params=["python", "native"])
def hot_path(request, monkeypatch) -> str:
    """Runs a test on each hot path: the batches tests.genai_helpers makes are decoded (Python) or left as
    bytes for the native core."""
    if request.param == "native" and not native.available():
        pytest.skip(f"the native core is not loaded: {native.WHY_PYTHON}")
    monkeypatch.setattr(genai_helpers, "HOT_PATH", request.param)
    return request.param


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server of the test session's own (see tests/postgres_server.py)."""
    from tests.postgres_server import PostgresServer, binaries
    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: scripts/test installs Debian's postgresql as root")
    server = PostgresServer(bin_dir).start()
    yield server
    server.stop()


@pytest.fixture(params=["duckdb", "postgresql"])
def ledger_backend(request, tmp_path) -> Callable[..., LedgerStore]:
    """Opens a new, empty ledger store of each backend: the backend-agnostic tests run on both."""
    opened: list[LedgerStore] = []
    target = tmp_path / "costs.duckdb" if request.param == "duckdb" \
        else request.getfixturevalue("postgres").new_database()

    def open_store(dimensions: tuple[str, ...] = ()) -> LedgerStore:
        from collector.storage.postgresql import PostgresLedger
        store = Ledger.open(target, dimensions) if request.param == "duckdb" \
            else PostgresLedger.open(target, dimensions, pool_size=4)
        opened.append(store)
        return store

    def open_exporter():
        """A ledger exporter (the real class of the backend) with a store of its own on this ledger: what one
        collector process has; its writer thread is not started (tests call its ``_write``)."""
        from collector.exporters.duckdb import DuckDBConfig, DuckDBExporter
        from collector.exporters.postgresql import PostgresConfig, PostgresExporter
        from tests.genai_helpers import context
        exporter = DuckDBExporter(DuckDBConfig(str(target)), context("duckdb")) if request.param == "duckdb" \
            else PostgresExporter(PostgresConfig(target), context("postgresql"))
        exporter.store = open_store()
        return exporter

    open_store.backend = request.param
    open_store.target = target
    open_store.exporter = open_exporter
    yield open_store
    for store in opened:
        store.close()


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> SimpleNamespace:
    """``genai-collector ARGS`` through its main, in this process (an interpreter start costs more than most
    commands): ``returncode``, ``stdout``, ``stderr``. ``env`` is set and ``cwd`` entered for the call only."""
    from collector.cli import main
    saved_env = {name: os.environ.get(name) for name in env or {}}
    saved_cwd = Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse: --version, usage errors
                code = exit_.code
    finally:
        os.chdir(saved_cwd)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
