"""Collector configs built from parts, for the demo and the tests, instead of YAML written by hand::

    config = (ConfigBuilder().otlp(grpc=4317, http=4318).health_check(13133)
              .processor("genai_cost").exporter("duckdb", path="data/costs.duckdb")
              .pipeline("traces", processors=["genai_cost"], exporters=["duckdb"]))
    Path("collector.yaml").write_text(config.yaml())

Settings are the components' own keys (README, Configuration reference); ``${env:VAR}`` stays a
reference for the collector to expand.
"""

from __future__ import annotations

from typing import Any, Self

import yaml


class ConfigBuilder:
    def __init__(self) -> None:
        self.sections: dict[str, dict[str, Any]] = {"receivers": {}, "processors": {}, "exporters": {},
                                                     "extensions": {}}
        self.service: dict[str, Any] = {"pipelines": {}}

    def otlp(self, grpc: int | None = None, http: int | None = None, host: str = "127.0.0.1",
             grpc_settings: dict[str, Any] | None = None, http_settings: dict[str, Any] | None = None,
             **settings: Any) -> Self:
        """The ``otlp`` receiver on the given ports (``auth``, ``limits`` and the like as keyword settings)."""
        protocols = {}
        if grpc is not None:
            protocols["grpc"] = {"endpoint": f"{host}:{grpc}", **(grpc_settings or {})}
        if http is not None:
            protocols["http"] = {"endpoint": f"{host}:{http}", **(http_settings or {})}
        self.sections["receivers"]["otlp"] = {"protocols": protocols, **settings}
        return self

    def processor(self, component_id: str, **settings: Any) -> Self:
        self.sections["processors"][component_id] = settings
        return self

    def exporter(self, component_id: str, **settings: Any) -> Self:
        self.sections["exporters"][component_id] = settings
        return self

    def extension(self, component_id: str, **settings: Any) -> Self:
        """An extension, also listed in ``service.extensions``."""
        self.sections["extensions"][component_id] = settings
        self.service.setdefault("extensions", []).append(component_id)
        return self

    def health_check(self, port: int) -> Self:
        return self.extension("health_check", endpoint=f"127.0.0.1:{port}")

    def cost_api(self, port: int, **settings: Any) -> Self:
        return self.extension("cost_api", endpoint=f"127.0.0.1:{port}", **settings)

    def pipeline(self, pipeline_id: str, processors: list[str] | None = None, exporters: list[str] | None = None,
                 receivers: list[str] | None = None) -> Self:
        """A pipeline; processors and exporters not defined yet are added with their defaults."""
        for component_id in processors or ():
            self.sections["processors"].setdefault(component_id, {})
        for component_id in exporters or ():
            self.sections["exporters"].setdefault(component_id, {})
        self.service["pipelines"][pipeline_id] = {"receivers": receivers or ["otlp"],
                                                  "processors": processors or [], "exporters": exporters or []}
        return self

    def log_level(self, level: str) -> Self:
        self.service["telemetry"] = {"logs": {"level": level}}
        return self

    def yaml(self) -> str:
        document = {kind: components for kind, components in self.sections.items() if components}
        return yaml.safe_dump({**document, "service": self.service}, sort_keys=False, width=120)
