"""What one request may carry: spans per request, attributes per span, bytes per attribute value.

Too many spans refuses the request (400: split it). A span over the attribute limits is dropped and
the rest accepted, with the count and the reason in the response's ``partial_success``, as OTLP
prescribes. Nesting depth is bounded by the decoders: protobuf's recursion limit (100) and JSON's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from collector.batch import TelemetryBatch
from collector.schema import AtLeast, Size
from collector.signals import Signal


class TooManyItems(ValueError):
    """The request is over max_spans_per_request."""


@dataclass(frozen=True)
class Limits:
    max_spans_per_request: Annotated[int, AtLeast(1)] = 100_000
    max_attributes_per_span: Annotated[int, AtLeast(1)] = 1_000
    max_attribute_value_bytes: Size = 1024**2

    def apply(self, batch: TelemetryBatch) -> tuple[int, str]:
        """Drop the spans over the limits; returns (spans dropped, why). Raises TooManyItems."""
        if batch.item_count > self.max_spans_per_request:
            raise TooManyItems(f"{batch.item_count} {batch.signal.spec.item_name} in one request; "
                               f"max_spans_per_request is {self.max_spans_per_request}: send smaller batches")
        if batch.signal is not Signal.TRACES:
            return 0, ""
        dropped, reason = 0, ""
        max_attributes, max_bytes = self.max_attributes_per_span, self.max_attribute_value_bytes
        sized = None if batch.decoded else batch.wire_stats  # sized on the wire by the native core
        if sized is not None and sized.most_attributes <= max_attributes and sized.largest_value <= max_bytes:
            return 0, ""
        for resource_spans in batch.message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                bad = [i for i, span in enumerate(scope_spans.spans)
                       if len(span.attributes) > max_attributes
                       or (span.ByteSize() > max_bytes and any(kv.value.ByteSize() > max_bytes
                                                                for kv in span.attributes))]
                if bad:
                    reason = (f"spans with more than {max_attributes} attributes or an attribute value over "
                              f"{max_bytes} bytes were dropped")
                    for index in reversed(bad):
                        del scope_spans.spans[index]
                    dropped += len(bad)
        if dropped:
            batch.invalidate()
        return dropped, reason
