"""OpenTelemetry spans following the GenAI semantic conventions (`gen_ai.*`); off by default, free when off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from opentelemetry.trace import SpanKind, Status, StatusCode

from sluice.config import TracingConfig
from sluice.records import RequestRecord

_OPERATION = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
_PROVIDER = {"openai": "openai", "anthropic": "anthropic"}  # others are self-hosted runtimes


class Tracing:
    """Creates one CLIENT span per request. `enabled` is False for exporter `none` and nothing is built."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None) -> None:
        self.enabled = config.exporter != "none"
        self.memory_exporter: InMemorySpanExporter | None = None
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if not self.enabled:
            return
        provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}),
                                  sampler=ParentBasedTraceIdRatio(config.sample_ratio))
        if exporter is None:
            exporter = _build_exporter(config)
        if isinstance(exporter, InMemorySpanExporter):
            self.memory_exporter = exporter
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("sluice.gateway")

    def start(self, endpoint: str, model: str, start_ns: int, headers: Mapping[str, str]) -> Any:
        """Start the request span (parent taken from incoming W3C `traceparent`); None when disabled."""
        if self._tracer is None:
            return None
        parent = propagate.extract(headers)
        operation = _OPERATION.get(endpoint, endpoint)
        return self._tracer.start_span(f"{operation} {model}", context=parent, kind=SpanKind.CLIENT,
                                       start_time=start_ns,
                                       attributes={"gen_ai.operation.name": operation,
                                                   "gen_ai.request.model": model})

    def inject(self, span: Any) -> dict[str, str]:
        """W3C trace headers to send upstream, so vLLM/TGI spans join the same trace."""
        if span is None:
            return {}
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def finish(self, span: Any, record: RequestRecord, request_params: Mapping[str, Any],
               end_ns: int) -> None:
        if span is None:
            return
        attributes: dict[str, Any] = {
            "gen_ai.provider.name": _PROVIDER.get(record.backend_type or "", record.backend_type or "sluice"),
            "gen_ai.response.model": record.upstream_model or "",
            "sluice.request_id": record.request_id,
            "sluice.target": record.target or "",
            "sluice.stream": record.stream,
            "sluice.gateway_overhead_s": record.overhead_s,
            "http.response.status_code": record.status_code,
        }
        for key, attribute in _REQUEST_ATTRIBUTES:
            value = request_params.get(key)
            if value is not None:
                attributes[attribute] = value if not isinstance(value, str) or key != "stop" else [value]
        if record.client_request_id is not None:
            attributes["sluice.client_request_id"] = record.client_request_id
        if record.prompt_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = record.prompt_tokens
        if record.completion_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = record.completion_tokens
        if record.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
        if record.ttft_s is not None:
            attributes["sluice.ttft_s"] = record.ttft_s
        if record.tpot_s is not None:
            attributes["sluice.tpot_s"] = record.tpot_s
        span.set_attributes(attributes)
        if record.error_class is not None:
            span.set_attribute("error.type", record.error_type or record.error_class)
            span.set_status(Status(StatusCode.ERROR, record.error_message or record.error_class))
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


_REQUEST_ATTRIBUTES = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
    ("stop", "gen_ai.request.stop_sequences"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
)


def _build_exporter(config: TracingConfig) -> SpanExporter:
    if config.exporter == "console":
        return ConsoleSpanExporter()
    if config.exporter == "memory":
        return InMemorySpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise RuntimeError("telemetry.tracing.exporter 'otlp' needs: pip install 'sluicegate[otlp]'") from exc
    return OTLPSpanExporter(endpoint=config.endpoint) if config.endpoint else OTLPSpanExporter()
