"""An app instrumented the way users do it: ``python -m collector.demo.app LIBRARY PROVIDER_URL [N]``.

It exports its spans with the OTLP exporter the standard environment variables configure
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``). ``openai`` makes chat calls
(one of them streamed, with usage), a Responses API call and an embedding through the official
OpenTelemetry openai-v2 instrumentation; ``openllmetry-openai`` and ``openinference`` the same chats
through OpenLLMetry's and OpenInference's, ``openllmetry-responses`` and ``openinference-responses``
Responses API calls; ``anthropic`` and ``openinference-anthropic`` make messages calls through
OpenLLMetry's and OpenInference's; ``openlit-openai`` and ``openlit-anthropic`` both through OpenLIT
(in a venv of its own: it pins older SDKs); ``pydantic_ai`` runs a pydantic-ai agent with its
instrumentation on; ``litellm`` makes Anthropic messages calls through the LiteLLM SDK with its own
OpenTelemetry callback (in a venv of its own).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def exporter():
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter()


def run_openai(provider_url: str, calls: int, tracer_provider: TracerProvider, everything: bool) -> None:
    from openai import OpenAI
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    client = OpenAI(base_url=f"{provider_url}/v1", api_key="demo-key", max_retries=0)
    for _ in range(calls):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    if everything:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                                                stream=True, stream_options={"include_usage": True})
        for _ in stream:
            pass
        client.responses.create(model="o4-mini", input="Hi")
        client.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])


def openai_chats(instrumentor, provider_url: str, calls: int, tracer_provider: TracerProvider,
                 responses: bool = False) -> None:
    """Chat completions with gpt-4o-mini, or (``responses``) Responses API calls with o4-mini."""
    from openai import OpenAI
    instrumentor().instrument(tracer_provider=tracer_provider)
    client = OpenAI(base_url=f"{provider_url}/v1", api_key="demo-key", max_retries=0)
    for _ in range(calls):
        if responses:
            client.responses.create(model="o4-mini", input="Hi")
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])


def anthropic_messages(instrumentor, provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from anthropic import Anthropic
    instrumentor().instrument(tracer_provider=tracer_provider)
    client = Anthropic(base_url=provider_url, api_key="demo-key", max_retries=0)
    for _ in range(calls):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=1024,
                               messages=[{"role": "user", "content": "Hi"}])


def run_openinference(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor
    openai_chats(OpenAIInstrumentor, provider_url, calls, tracer_provider)


def run_openinference_responses(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor
    openai_chats(OpenAIInstrumentor, provider_url, calls, tracer_provider, responses=True)


def run_openllmetry_responses(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    openai_chats(OpenAIInstrumentor, provider_url, calls, tracer_provider, responses=True)


def run_openinference_anthropic(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from openinference.instrumentation.anthropic import AnthropicInstrumentor
    anthropic_messages(AnthropicInstrumentor, provider_url, calls, tracer_provider)


def run_openllmetry_openai(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    openai_chats(OpenAIInstrumentor, provider_url, calls, tracer_provider)


def run_pydantic_ai(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    Agent.instrument_all()  # OpenTelemetry spans through the global tracer provider
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=f"{provider_url}/v1", api_key="demo-key"))
    agent = Agent(model, name="support_agent")
    for _ in range(calls):
        agent.run_sync("Hi")


def run_anthropic(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor
    anthropic_messages(AnthropicInstrumentor, provider_url, calls, tracer_provider)


class OpenLITInstrumentor:
    """OpenLIT instruments every library it supports at once, through the global tracer provider."""

    def instrument(self, tracer_provider: TracerProvider) -> None:
        import openlit
        openlit.init(disable_metrics=True, disable_events=True, capture_message_content=False)


def run_openlit_openai(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    openai_chats(OpenLITInstrumentor, provider_url, calls, tracer_provider)


def run_openlit_anthropic(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    anthropic_messages(OpenLITInstrumentor, provider_url, calls, tracer_provider)


@contextlib.contextmanager
def litellm_otel():
    """LiteLLM with its own OpenTelemetry callback (default mode), exporting to the collector the standard
    variables name; waits for LiteLLM's logging thread, which ends its spans after each call returns."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of its price list from GitHub
    os.environ["OTEL_EXPORTER"] = "otlp_http"
    os.environ["OTEL_ENDPOINT"] = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces"
    import litellm
    litellm.callbacks = ["otel"]
    yield litellm
    from litellm.litellm_core_utils.thread_pool_executor import executor
    executor.shutdown(wait=True)


def run_litellm(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """LiteLLM's default mode: a ``litellm_request`` span per call with a ``raw_gen_ai_request`` child."""
    with litellm_otel() as litellm:
        for _ in range(calls):
            litellm.completion(model="anthropic/claude-sonnet-4-5", api_base=provider_url, api_key="demo-key",
                               max_tokens=1024, messages=[{"role": "user", "content": "Hi"}])


def run_litellm_in_app_span(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """An instrumented web app's request making every call: LiteLLM writes its ``gen_ai.*`` attributes onto the
    app's span (one call's overwriting the other's) and makes a ``raw_gen_ai_request`` child per call. OpenAI
    chat with a prompt-cache hit (200 of 1,200 input tokens cached)."""
    from collector.demo.fake_provider import CACHED_PROMPT
    with litellm_otel() as litellm, \
            tracer_provider.get_tracer("shop.checkout").start_as_current_span("POST /checkout"):
        for order in range(calls):
            litellm.completion(model="openai/gpt-4o-mini", api_base=f"{provider_url}/v1", api_key="demo-key",
                               messages=[{"role": "user", "content": f"{CACHED_PROMPT} order {order}"}])


def run_google_genai(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """The Google GenAI SDK with the OpenTelemetry contrib instrumentation: Gemini generateContent with
    cached-content and thinking tokens."""
    from google import genai
    from google.genai import types
    from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
    GoogleGenAiSdkInstrumentor().instrument()
    client = genai.Client(api_key="demo-key", http_options=types.HttpOptions(base_url=provider_url))
    for _ in range(calls):
        client.models.generate_content(model="gemini-2.5-flash", contents="Hi")


def run_bedrock(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """boto3's Bedrock Runtime Converse with the OpenTelemetry contrib botocore instrumentation, through a US
    cross-region inference profile, with cache reads and writes."""
    for name, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    import boto3
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    BotocoreInstrumentor().instrument()
    client = boto3.client("bedrock-runtime", endpoint_url=provider_url)
    for _ in range(calls):
        client.converse(modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                        messages=[{"role": "user", "content": [{"text": "Hi"}]}])


def run_openai_agents(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """The OpenAI Agents SDK with OpenInference's instrumentation: an agent with one function tool, so each
    run is two model calls (the tool call, then the answer) under agent, turn and tool spans."""
    import agents
    from openai import AsyncOpenAI
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
    agents.set_trace_processors([])  # not the SDK's own exporter to OpenAI's platform: OpenInference's alone
    OpenAIAgentsInstrumentor().instrument(tracer_provider=tracer_provider)
    agents.set_default_openai_client(AsyncOpenAI(base_url=f"{provider_url}/v1", api_key="demo-key"),
                                     use_for_tracing=False)

    @agents.function_tool
    def stock_level(item: str = "widget") -> str:
        """How many of an item are in stock."""
        return "12"

    agent = agents.Agent(name="shop assistant", instructions="Answer from the stock.", model="o4-mini",
                         tools=[stock_level])
    for _ in range(max(1, calls // 2)):
        agents.Runner.run_sync(agent, "How many widgets are left?")


PROXY_KEY = "sk-demo-master-key-0123456789abcdef0123456789"


def _wait_for(url: str, process: subprocess.Popen, seconds: float) -> None:
    """Until ``url`` answers; RuntimeError when ``process`` exits or the time runs out first."""
    import urllib.request
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer (exit code {process.poll()})") from None
            time.sleep(0.2)


def run_litellm_proxy(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """The LiteLLM proxy (``litellm --config``, ``callbacks: ["otel"]``) called with the OpenAI SDK: the same
    callback as the SDK's, in a server. OpenAI chat with a prompt-cache hit."""
    import tempfile

    from openai import OpenAI

    from collector.demo.fake_provider import CACHED_PROMPT
    from collector.process import free_port
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "litellm.yaml"
        config.write_text(json.dumps({  # JSON is YAML
            "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_base": f"{provider_url}/v1", "api_key": "demo-key"}}],
            "litellm_settings": {"callbacks": ["otel"]}, "general_settings": {"master_key": PROXY_KEY}}))
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OTEL_EXPORTER": "otlp_http",
               "OTEL_ENDPOINT": os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces",
               "OTEL_BSP_SCHEDULE_DELAY": "200"}  # its batch processor exports every 200 ms, not 5 s
        proxy = subprocess.Popen([str(Path(sys.executable).parent / "litellm"), "--config", str(config),
                                  "--host", "127.0.0.1", "--port", str(port)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for(f"http://127.0.0.1:{port}/health/liveliness", proxy, 90)
            client = OpenAI(base_url=f"http://127.0.0.1:{port}", api_key=PROXY_KEY)
            for order in range(calls):
                client.chat.completions.create(model="gpt-4o-mini", messages=[
                    {"role": "user", "content": f"{CACHED_PROMPT} order {order}"}])
            time.sleep(2.0)  # its logging thread ends the spans after answering, then the batch is exported
        finally:
            proxy.terminate()
            proxy.wait(30)


def run_langchain_openinference(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """LangChain with OpenInference's LangChain and OpenAI instrumentations both on: each call is reported by
    LangChain's ChatOpenAI span and by the OpenAI SDK's, in two traces."""
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from openinference.instrumentation.openai import OpenAIInstrumentor
    LangChainInstrumentor().instrument(tracer_provider=tracer_provider)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_openai import ChatOpenAI
    model = ChatOpenAI(model="gpt-4o-mini", base_url=f"{provider_url}/v1", api_key="demo-key")
    chain = ChatPromptTemplate.from_messages([("user", "Say hi to {name}")]) | model  # an LCEL chain
    for index in range(calls):
        chain.invoke({"name": f"customer {index}"})


def run_langgraph_openllmetry(provider_url: str, calls: int, tracer_provider: TracerProvider) -> None:
    """A one-node LangGraph graph calling ChatOpenAI, with OpenLLMetry's LangChain and OpenAI instrumentations
    both on."""
    from langchain_openai import ChatOpenAI
    from langgraph.graph import END, START, MessagesState, StateGraph
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    LangchainInstrumentor().instrument(tracer_provider=tracer_provider)
    OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    model = ChatOpenAI(model="gpt-4o-mini", base_url=f"{provider_url}/v1", api_key="demo-key")

    def answer(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    app = graph.compile()
    for index in range(calls):
        app.invoke({"messages": [("user", f"Say hi to customer {index}")]})


RUNNERS = {
    "openinference": run_openinference, "openinference-anthropic": run_openinference_anthropic,
    "openinference-responses": run_openinference_responses, "openllmetry-openai": run_openllmetry_openai,
    "openllmetry-responses": run_openllmetry_responses, "anthropic": run_anthropic, "pydantic_ai": run_pydantic_ai,
    "openlit-openai": run_openlit_openai, "openlit-anthropic": run_openlit_anthropic, "litellm": run_litellm,
    "litellm-app-span": run_litellm_in_app_span, "google-genai": run_google_genai, "bedrock": run_bedrock,
    "openai-agents": run_openai_agents, "langchain-openinference": run_langchain_openinference,
    "langgraph-openllmetry": run_langgraph_openllmetry, "litellm-proxy": run_litellm_proxy,
}


def main(library: str, provider_url: str, calls: int, everything: bool = False) -> None:
    provider = TracerProvider(resource=Resource.create({
        "service.name": os.environ.get("OTEL_SERVICE_NAME", f"{library}-app")}))
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    trace.set_tracer_provider(provider)
    if library == "openai":
        run_openai(provider_url, calls, provider, everything)
    else:
        RUNNERS[library](provider_url, calls, provider)
    provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1, "--everything" in sys.argv)
