"""The real-client matrix: which instrumentations the suite drives through the collector.

The tests parametrize from ``CLIENTS``; ``python -m tests.client_matrix --write`` regenerates the README's
"Verified clients" table (and docs/CLIENTS.md's) from it, with the versions installed where each client runs
(the test venv, the isolated venvs of ``ISOLATED_VENVS``, ``tests/node/package-lock.json``).

Clients whose dependencies conflict with the test venv's (OpenLIT pins older openai, anthropic and
OpenTelemetry releases) and third-party backends (Arize Phoenix) run from their own venv, made with uv
(seconds, where pip's resolver needs minutes for OpenLIT) under ``.venv-clients/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).parent.parent
NODE_LOCK = ROOT / "tests" / "node" / "package-lock.json"
README = ROOT / "README.md"
CLIENTS_DOC = ROOT / "docs" / "CLIENTS.md"  # the same table, with how the clients are driven
BEGIN, END = "<!-- client-matrix:begin -->", "<!-- client-matrix:end -->"
ISOLATED_VENVS = {
    "openlit": ("openlit==1.45.0", "openai", "anthropic"),
    "phoenix": ("arize-phoenix==20.26.1",),
    "litellm": ("litellm==1.110.2", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"),
    # the contrib instrumentation needs a newer opentelemetry-util-genai than openai-v2 in the test venv
    "google-genai": ("google-genai==2.34.0", "opentelemetry-instrumentation-google-genai==1.3b0",
                     "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"),
    "openai-agents": ("openai-agents==0.24.0", "openinference-instrumentation-openai-agents==2.6.0",
                      "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"),
    # 1.110's proxy extra needs the litellm-proxy distribution, which the package registry here does not have
    "litellm-proxy": ("litellm[proxy]==1.108.0", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"),
    "langchain": ("langchain-openai==1.7.4", "langgraph==1.2.24", "openinference-instrumentation-langchain==0.1.80",
                  "openinference-instrumentation-openai==0.1.66", "opentelemetry-instrumentation-langchain==0.62.4",
                  "opentelemetry-instrumentation-openai==0.62.4", "opentelemetry-sdk",
                  "opentelemetry-exporter-otlp-proto-http"),
    "bedrock": ("boto3==1.44.5", "opentelemetry-instrumentation-botocore==0.66b2", "opentelemetry-sdk",
                "opentelemetry-exporter-otlp-proto-http"),
}
OPENAI_COST = 0.0004944  # gpt-4o-mini-2024-07-18: 2048 × $0.15 + 312 × $0.60 per MTok
# claude-sonnet-4-5: raw input 150 + cache read 4000 + cache write 1000, output 420:
# 150 × $3 + 4000 × $0.30 + 1000 × $3.75 + 420 × $15 per MTok
ANTHROPIC_COST = 0.0117
# gpt-4o-mini-2024-07-18, a prompt-cache hit: 1000 × $0.15 + 200 × $0.075 + 300 × $0.60 per MTok
OPENAI_CACHED_COST = 0.000345
# gemini-2.5-flash: 1200 input of which 400 from a cached content, 300 answer + 500 thinking tokens:
# 800 × $0.30 + 400 × $0.03 + 800 × $2.50 per MTok
GEMINI_COST = 0.002252
# claude-sonnet-4-5 on Bedrock through the us. inference profile (genai-prices' regional price, +10%): input 150
# without the cache + cache read 4000 + cache write 1000, output 420 → the ANTHROPIC_COST usage at 1.1×
BEDROCK_COST = 0.01287
# o4-mini-2025-04-16, Responses API: input 1500 of which 1024 cached, output 900 (reasoning 640 included):
# 476 × $1.10 + 1024 × $0.275 + 900 × $4.40 per MTok
RESPONSES_COST = 0.0047652


@dataclass(frozen=True)
class Client:
    """One instrumentation driving a provider SDK (``app`` names its runner in ``collector.demo.app``)."""

    app: str
    instrumentation: tuple[str, ...]  # distributions whose versions the README names
    sdk: str
    protocol: str  # how the app exports: grpc or http/protobuf
    scopes: tuple[str, ...]  # instrumentation scopes of the forwarded spans
    spans_per_call: float  # spans per provider call: the priced one plus SDK, wrapper or HTTP spans (1.5: one
    # app span around both calls)
    cost: float
    what: str
    venv: str | None = None  # an ISOLATED_VENVS name, when it cannot share the test venv
    provider: str | None = None  # gen_ai.provider.name of the priced spans, when the SDK is not the provider's

    @property
    def provider_name(self) -> str:
        return self.provider or self.sdk


CLIENTS = (
    Client("openai", ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai"), "openai",
           "http/protobuf", ("opentelemetry.instrumentation.openai_v2", "opentelemetry.util.genai.handler"), 1,
           OPENAI_COST, "chat; the demo adds streaming with usage and embeddings. 2.4b0 (the latest release) "
           "does not wrap `responses.create`: Responses calls are not traced by it, so not priced"),
    Client("anthropic", ("opentelemetry-instrumentation-anthropic",), "anthropic", "grpc",
           ("opentelemetry.instrumentation.anthropic", "com.anthropic.sdk.python"), 2, ANTHROPIC_COST,
           "OpenLLMetry; messages with cache tokens; the SDK's own `com.anthropic.sdk.python` span (same "
           "response id) is the duplicate"),
    Client("openinference", ("openinference-instrumentation-openai",), "openai", "http/protobuf",
           ("openinference.instrumentation.openai",), 1, OPENAI_COST, "chat"),
    Client("openinference-responses", ("openinference-instrumentation-openai",), "openai", "grpc",
           ("openinference.instrumentation.openai",), 1, RESPONSES_COST,
           "Responses API (o4-mini): cached input and reasoning tokens"),
    Client("openinference-anthropic", ("openinference-instrumentation-anthropic",), "anthropic", "http/protobuf",
           ("openinference.instrumentation.anthropic", "com.anthropic.sdk.python"), 2, ANTHROPIC_COST,
           "messages with cache tokens; the SDK's span inside OpenInference's is the leaf, OpenInference's "
           "the duplicate"),
    Client("openllmetry-openai", ("opentelemetry-instrumentation-openai",), "openai", "grpc",
           ("opentelemetry.instrumentation.openai.v1",), 1, OPENAI_COST, "OpenLLMetry; chat"),
    Client("openllmetry-responses", ("opentelemetry-instrumentation-openai",), "openai", "http/protobuf",
           ("opentelemetry.instrumentation.openai.v1",), 1, RESPONSES_COST,
           "OpenLLMetry; Responses API (o4-mini): cached input and reasoning tokens"),
    Client("pydantic_ai", ("pydantic-ai-slim",), "openai", "http/protobuf", ("pydantic-ai",), 2, OPENAI_COST,
           "`Agent.instrument_all()`: the chat span priced (its `operation.cost` kept as reported, no "
           "mismatch), the `invoke_agent` wrapper not"),
    Client("openlit-openai", ("openlit",), "openai", "http/protobuf",
           ("openlit.instrumentation.openai", "opentelemetry.instrumentation.httpx"), 2, OPENAI_COST,
           "`openlit.init()` on an existing tracer provider; chat (plus OpenLIT's httpx span)", venv="openlit"),
    Client("openlit-anthropic", ("openlit",), "anthropic", "http/protobuf",
           ("openlit.instrumentation.anthropic", "opentelemetry.instrumentation.httpx"), 2, ANTHROPIC_COST,
           "messages with cache tokens: OpenLIT's input excludes the cache, corrected; its `gen_ai.usage.cost` "
           "0 (no price fetched) is no report", venv="openlit"),
    Client("litellm", ("litellm",), "litellm", "http/protobuf", ("litellm",), 2, ANTHROPIC_COST,
           "`litellm.callbacks = ['otel']`, default mode; Anthropic messages with cache tokens: the "
           "`raw_gen_ai_request` child (the provider's own usage) is priced, the `litellm_request` span is its "
           "duplicate and hands down LiteLLM's `gen_ai.cost.total_cost` as reported", venv="litellm",
           provider="anthropic"),
    Client("litellm-app-span", ("litellm",), "litellm", "http/protobuf", ("litellm", "shop.checkout"), 1.5,
           OPENAI_CACHED_COST, "two calls inside the app's own request span, which LiteLLM writes one call's "
           "`gen_ai.*` onto: each call priced from its `raw_gen_ai_request` child; OpenAI chat with 200 of 1,200 "
           "input tokens cached", venv="litellm", provider="openai"),
    # 14 spans a call: the proxy's own (request, auth, router, logging), FastAPI's, and its readiness probe's
    Client("litellm-proxy", ("litellm",), "openai", "http/protobuf", ("litellm", "fastapi"), 14, OPENAI_CACHED_COST,
           "the LiteLLM proxy (`litellm --config`, `callbacks: ['otel']`) called with the OpenAI SDK: each call "
           "priced once, from its `raw_gen_ai_request`", venv="litellm-proxy", provider="openai"),
    Client("google-genai", ("opentelemetry-instrumentation-google-genai",), "google-genai", "http/protobuf",
           ("opentelemetry.instrumentation.google_genai",), 1, GEMINI_COST,
           "Gemini `generate_content` against a fake Gemini API: cached-content tokens (cheaper input) and "
           "thinking tokens (priced as output)", venv="google-genai", provider="gcp.gemini"),
    Client("openai-agents", ("openinference-instrumentation-openai-agents",), "openai-agents", "http/protobuf",
           ("openinference.instrumentation.openai_agents",), 4, RESPONSES_COST,
           "an agent with a function tool: one run is two Responses API calls (o4-mini, cached input and reasoning "
           "tokens), both priced; the agent, workflow, turn and tool spans not", venv="openai-agents",
           provider="openai"),
    Client("langchain-openinference",
           ("openinference-instrumentation-langchain", "openinference-instrumentation-openai"), "langchain-openai",
           "http/protobuf",
           ("openinference.instrumentation.langchain", "openinference.instrumentation.openai"), 4, OPENAI_COST,
           "an LCEL chain (a prompt piped into ChatOpenAI) with both instrumentations on: one call, two LLM spans in "
           "two traces, priced once by the response id in their `output.value`; the chain and prompt spans not",
           venv="langchain", provider="openai"),
    Client("langgraph-openllmetry",
           ("opentelemetry-instrumentation-langchain", "opentelemetry-instrumentation-openai"), "langgraph",
           "http/protobuf", ("opentelemetry.instrumentation.langchain",), 4, OPENAI_COST,
           "a one-node LangGraph graph calling ChatOpenAI, with OpenLLMetry's two instrumentations on (its LangChain "
           "one keeps the OpenAI one from reporting the call again): the chat span priced, the graph's agent, "
           "workflow and task spans not", venv="langchain", provider="openai"),
    Client("bedrock", ("opentelemetry-instrumentation-botocore",), "boto3", "http/protobuf",
           ("opentelemetry.instrumentation.botocore.bedrock-runtime",), 1, BEDROCK_COST,
           "Bedrock Runtime `converse` against a fake Bedrock endpoint, model `us.anthropic.claude-sonnet-4-5-…` "
           "(a US inference profile, priced at the regional rate): its input excludes the cache, corrected; "
           "cache reads and writes priced", venv="bedrock", provider="aws.bedrock"),
)
NODE_PACKAGES = ("ai", "@ai-sdk/openai", "@opentelemetry/sdk-node")


def isolated_python(name: str) -> Path:
    """The python of isolated venv ``name``, made (or remade when its requirements changed) with uv."""
    requirements = ISOLATED_VENVS[name]
    venv = ROOT / ".venv-clients" / name
    python = venv / "bin" / "python"
    stamp = venv / "requirements.sha256"
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    from uv import find_uv_bin
    uv = find_uv_bin()
    for command in ([uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)],
                    [uv, "pip", "install", "--quiet", "--python", str(python), *requirements]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{result.stderr}")
    stamp.write_text(digest)
    return python


def versions(distributions: list[str], venv: str | None) -> dict[str, str]:
    if venv is None:
        return {name: metadata.version(name) for name in distributions}
    script = "import json, sys; from importlib import metadata; " \
             "print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
    output = subprocess.run([str(isolated_python(venv)), "-c", script, *distributions], capture_output=True,
                            text=True, check=True).stdout
    return json.loads(output)


def node_versions() -> dict[str, str]:
    packages = json.loads(NODE_LOCK.read_text())["packages"]
    return {name: packages[f"node_modules/{name}"]["version"] for name in NODE_PACKAGES}


def table() -> str:
    """The README table: one row per client, with the versions installed where it runs."""
    rows = ["| instrumentation | SDK | what |", "|---|---|---|"]
    for client in CLIENTS:
        found = versions([*client.instrumentation, client.sdk], client.venv)
        instrumentation = ", ".join(f"`{name}` {found[name]}" for name in client.instrumentation)
        where = f" (own venv: {', '.join(ISOLATED_VENVS[client.venv])})" if client.venv else ""
        rows.append(f"| {instrumentation}{where} | `{client.sdk}` {found[client.sdk]} | {client.what} |")
    node = node_versions()
    rows.append(f"| Vercel AI SDK `ai` {node['ai']} telemetry, `@opentelemetry/sdk-node` "
                f"{node['@opentelemetry/sdk-node']} (Node.js) | `@ai-sdk/openai` {node['@ai-sdk/openai']} | "
                "`generateText`: the `doGenerate` step priced, the outer span not |")
    phoenix = versions(["arize-phoenix"], "phoenix")["arize-phoenix"]
    rows.append(f"| backend: Arize Phoenix `arize-phoenix` {phoenix} | | the `otlphttp` exporter forwards "
                "the enriched spans; its REST API returns them with the cost attributes |")
    return "\n".join(rows)


def readme_section(text: str) -> str:
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.client_matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the table in README.md and docs/CLIENTS.md")
    args = parser.parse_args()
    generated = table()
    if not args.write:
        print(generated)
        return
    for document in (README, CLIENTS_DOC):
        head, rest = document.read_text().split(BEGIN, 1)
        document.write_text(f"{head}{BEGIN}\n{generated}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
