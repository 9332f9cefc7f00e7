"""Every command and option the README documents, end to end, as one table (issue 21).

The fixture world is shaped like a real one: a stopped collector's ledger that is aged (the twelve dialect
samples of 2026-01-01 are past the 90-day retention, so only their daily rollups are left) and in two
currencies (those old calls were booked in USD for acme and EUR for globex; yesterday's twelve in USD),
and a running collector whose API needs tokens. Each row runs the CLI's ``main`` on its own copy of the ledger.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from collector import __version__
from collector.cli import main
from collector.config_builder import ConfigBuilder
from collector.storage.ledger import Ledger
from collector.storage.rows import CallColumns
from tests.conftest import CollectorProcess, free_port, sample_batch
from tests.test_ledger import emit, tracer

READ, ADMIN = "read-token-0123456789", "admin-token-0123456789"
YESTERDAY = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
TODAY = dt.datetime.now(dt.UTC).date().isoformat()
OLD_DAY = ["--from", "2026-01-01", "--to", "2026-01-02"]
RECENT = ["--from", YESTERDAY, "--to", TODAY]


def ledger_of(path: Path) -> None:
    """The aged, two-currency ledger (see the module's docstring)."""
    noon = dt.datetime.fromisoformat(f"{YESTERDAY}T12:00:00+00:00")
    with Ledger.open(path) as ledger:
        for recent in (False, True):
            columns = CallColumns(ledger.dimensions)
            for index in range(1, 13):
                batch = sample_batch(f"{index:02d}", "acme" if index % 2 else "globex")
                if recent:
                    for call in batch.genai:
                        call.span.start_time_unix_nano = int(noon.timestamp()) * 10**9 + index
                columns.add(batch)
            table = columns.table()
            if not recent:
                euro = ["EUR" if c == "globex" else "USD" for c in table.column("customer").to_pylist()]
                table = table.set_column(table.schema.get_field_index("currency"), "currency", pa.array(euro))
            ledger.append(table)
        ledger.roll_up()
        ledger.prune(dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=90))  # the retention


@dataclass
class World:
    folder: Path
    ledger: Path  # the template; each row gets a copy
    config: Path
    stopped: Path
    prices: Path
    url: str


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    folder = tmp_path_factory.mktemp("cli")
    ledger_of(folder / "costs.duckdb")
    (folder / "discount.yaml").write_text("adjustments:\n  - {provider: openai, model: '*', percent: -50}\n")
    ports = {name: free_port() for name in ("grpc", "http", "health", "api")}
    while len(set(ports.values())) < len(ports):
        ports = {name: free_port() for name in ports}
    config = (ConfigBuilder().otlp(grpc=ports["grpc"], http=ports["http"]).health_check(ports["health"])
              .processor("genai_attribution", customer=["resource.tenant.id"], feature=["span.feature"])
              .processor("genai_budget", budgets=[{"id": "acme-daily", "match": {"customer": "acme"}, "limit": 1,
                                                   "period": "daily"}])
              .exporter("duckdb", path=str(folder / "live.duckdb"), flush_interval="20ms")
              .cost_api(ports["api"], auth={"read_tokens": [READ], "admin_tokens": [ADMIN]})
              .pipeline("traces", processors=["genai_normalize", "genai_cost", "genai_attribution", "genai_budget"],
                        exporters=["duckdb"]))
    (folder / "config.yaml").write_text(config.yaml())
    stopped = ConfigBuilder().otlp(grpc=free_port(), http=free_port()).pipeline("traces", exporters=["debug"])
    (folder / "stopped.yaml").write_text(stopped.yaml())  # a collector that is not running, on free ports
    (folder / "run").mkdir()
    process = CollectorProcess(folder / "run", config.yaml()).start(ports["health"])
    provider, _ = tracer(ports)
    emit(provider, 3)
    provider.shutdown()
    yield World(folder, folder / "costs.duckdb", folder / "config.yaml", folder / "stopped.yaml",
                folder / "discount.yaml", f"http://127.0.0.1:{ports['api']}")
    process.stop(signal.SIGTERM)


# (id, arguments, exit code, texts the output must hold): {db} is this row's copy of the ledger, {config} the
# running collector's config, {stopped} one of a collector not running, {prices} a 50% openai discount, {url} the
# running collector's API, {out} a file to write.
ROWS = [
    ("version", ["--version"], 0, [f"genai-cost-collector {__version__}"]),
    ("validate", ["validate", "--config", "{config}"], 0, ["valid (pipelines: traces)"]),
    ("report-aged-day-from-rollups", ["report", "--db", "{db}", *OLD_DAY, "--group-by", "customer"], 0,
     ["acme", "globex", "USD", "EUR", "TOTAL"]),
    ("report-json", ["report", "--db", "{db}", *OLD_DAY, "--format", "json"], 0, ['"currency": "EUR"']),
    ("report-csv", ["report", "--db", "{db}", *RECENT, "--group-by", "model", "--format", "csv"], 0,
     ["model,calls,input_tokens,output_tokens,cost,currency"]),
    ("report-granularity", ["report", "--db", "{db}", "--from", "2d", "--granularity", "day"], 0,
     [f"{YESTERDAY}T00:00:00Z"]),
    ("report-filter-top", ["report", "--db", "{db}", *RECENT, "--group-by", "customer", "--filter",
                           "customer=globex", "--top", "1"], 0, ["globex"]),
    ("report-bad-dimension", ["report", "--db", "{db}", "--group-by", "colour"], 2, ["unknown dimension 'colour'"]),
    ("report-bad-time", ["report", "--db", "{db}", "--from", "last tuesday"], 2, ["is not a time"]),
    ("report-url-without-token", ["report", "--url", "{url}"], 1, ["--token or $GENAI_COLLECTOR_TOKEN"]),
    ("report-url-token", ["report", "--url", "{url}", "--token", READ, "--from", "1h", "--group-by", "customer"], 0,
     ["acme"]),
    ("rebuild-stats", ["rebuild-stats", "--db", "{db}", "--progress"], 0, ["rollups consistent with the calls"]),
    ("rebuild-stats-range", ["rebuild-stats", "--db", "{db}", "--from", YESTERDAY, "--to", TODAY], 0,
     ["rebuilt rollups of 1 day(s)"]),
    ("prune", ["prune", "--db", "{db}", "--older-than", "0d"], 0, ["llm_calls: 12 row(s) deleted"]),
    ("prune-rollups", ["prune", "--db", "{db}", "--older-than", "0d", "--rollups"], 0, ["cost_daily: "]),
    ("prune-bad-time", ["prune", "--db", "{db}", "--older-than", "bogus"], 2, ["--older-than: 'bogus' is not"]),
    ("reprice-dry-run", ["reprice", "--db", "{db}", *RECENT, "--dry-run"], 0, ["dry run: nothing changed", "USD"]),
    ("reprice-config-discount", ["reprice", "--db", "{db}", *RECENT, "--config", "{config}", "--price-file",
                                 "{prices}"], 0, ["call(s) repriced, rollups rebuilt"]),
    ("reprice-aged-range", ["reprice", "--db", "{db}", "--from", "2025-12-01", "--dry-run"], 0,
     ["12 calls from 2025-12-01"]),  # the EUR calls were pruned: what is left is USD
    ("export-csv", ["export", "--db", "{db}", "--format", "csv", "--out", "{out}"], 0,
     ["12 call(s) written", "(csv)"]),
    ("export-parquet", ["export", "--db", "{db}", *RECENT, "--format", "parquet", "--out", "{out}"], 0,
     ["12 call(s) written"]),
    ("budgets-file", ["budgets", "status", "--db", "{db}", "--config", "{config}"], 0, ["acme-daily", "daily"]),
    ("budgets-api", ["budgets", "status", "--url", "{url}", "--token", READ], 0, ["acme-daily"]),
    ("doctor-stopped-ledger", ["doctor", "--config", "{stopped}", "--db", "{db}"], 0,
     ["PASS  rollups consistent with the calls"]),
    ("doctor-running", ["doctor", "--config", "{config}", "--token", READ], 0, ["PASS  collector running"]),
    ("pricing-lookup", ["pricing", "lookup", "--provider", "openai", "--model", "gpt-4o", "--at", "2026-01-01",
                        "--tier", "standard"], 0, ["model        gpt-4o"]),
    ("pricing-lookup-file", ["pricing", "lookup", "--provider", "openai", "--model", "gpt-4o", "--price-file",
                             "{prices}"], 0, ["adjustment   ×0.5"]),
    ("pricing-list", ["pricing", "list", "--provider", "anthropic", "--search", "haiku"], 0, ["claude"]),
    ("pricing-check", ["pricing", "check", "{prices}"], 0, ["ok (0 custom models"]),
]


@pytest.mark.parametrize(("args", "code", "texts"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_cli(world: World, tmp_path, monkeypatch, args: list[str], code: int, texts: list[str]):
    """The command line's ``main`` in this process (as ``genai-collector`` runs it, less the interpreter
    start that would make the table take a minute; tests/test_config.py runs the installed entry point)."""
    db = tmp_path / "costs.duckdb"
    shutil.copy(world.ledger, db)
    values = {"db": str(db), "config": str(world.config), "stopped": str(world.stopped), "prices": str(world.prices),
              "url": world.url, "out": str(tmp_path / "calls.out")}
    argv = [arg.format(**values) if arg.startswith("{") else arg for arg in args]
    monkeypatch.delenv("GENAI_COLLECTOR_TOKEN", raising=False)
    monkeypatch.chdir(world.folder)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            returned = main(argv)
        except SystemExit as exit_:  # argparse: --version, usage errors
            returned = exit_.code
    output = out.getvalue() + err.getvalue()
    assert returned == code, output
    for text in texts:
        assert text in output, output
    if code == 2:
        assert err.getvalue().count("\n") == 1 and "Traceback" not in output  # one line, never a traceback


def test_every_documented_command_has_a_row():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("## Command line", 1)[1].split("\n\n", 2)[1]
    documented = {line.split("`genai-collector ", 1)[1].split()[0].strip("`") for line in table.splitlines()
                  if line.startswith("| `genai-collector ")}
    tested = {row[1][0] for row in ROWS}
    assert documented - {"run", "demo"} <= tested  # run and demo have tests of their own
