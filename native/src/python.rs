//! The Python module: thin wrappers that release the GIL while the wire code runs.

use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyString, PyTuple, PyType};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::counts;
use crate::offload::{Finish, Job};
use crate::redact::{self, Content};
use crate::schema::{Kind, Schema};
use crate::traces::{self, Range, Value};

/// The export request of one signal: its schema, built once from the installed protobuf descriptors.
#[pyclass(name = "RequestSchema", module = "collector._native", frozen)]
struct PySchema {
    schema: Arc<Schema>,
    /// None for traces, whose spans are sized too.
    signal: Option<counts::Signal>,
}

#[pymethods]
impl PySchema {
    /// `signal`: traces, metrics or logs; `fields`: (message index, field number, kind code, target message
    /// index) for every known field; message 0 is the signal's `Export*ServiceRequest`.
    #[new]
    fn new(signal: &str, fields: Vec<(usize, u32, u8, usize)>, message_count: usize) -> PyResult<Self> {
        let signal = match signal {
            "traces" => None,
            "metrics" => Some(counts::Signal::Metrics),
            "logs" => Some(counts::Signal::Logs),
            _ => return Err(PyValueError::new_err(format!("unknown signal {signal:?}"))),
        };
        let mut kinds = Vec::with_capacity(fields.len());
        for (message, number, code, target) in fields {
            let kind = Kind::from_code(code, target)
                .ok_or_else(|| PyValueError::new_err(format!("unknown field kind code {code}")))?;
            kinds.push((message, number, kind));
        }
        Schema::new(&kinds, message_count)
            .map(|schema| PySchema {
                schema: Arc::new(schema),
                signal,
            })
            .ok_or_else(|| {
                PyValueError::new_err("a field names a message the schema does not have, or a number over 4096")
            })
    }

    /// A job (`collector/offload.py`) whose result is `(items, resources, most attributes on a span,
    /// largest span attribute value in bytes)` of a request it vouches for (the last two are 0 but for
    /// traces), or None: the request is malformed or unusual, and the caller decodes it with upb.
    fn scan_job(&self, wire: Bound<'_, PyBytes>) -> Job {
        let (schema, signal) = (self.schema.clone(), self.signal);
        let wire = PyBackedBytes::from(wire);
        Job::new(move || {
            let scanned = scan(&schema, signal, &wire);
            Box::new(move |py: Python<'_>| {
                drop(wire); // the request's reference let go with the GIL held
                Ok(scanned.into_pyobject(py)?.into_any().unbind())
            }) as Finish
        })
    }
}

/// What `scan` counts: (items, resources, most attributes on a span, largest span attribute value).
type Scanned = (u64, u64, u64, u64);

fn scan(schema: &Schema, signal: Option<counts::Signal>, wire: &[u8]) -> Option<Scanned> {
    if let Some(signal) = signal {
        schema.validate(wire, &mut ()).ok()?;
        let (items, resources) = counts::count(wire, signal).ok()?;
        return Some((items, resources, 0, 0));
    }
    let mut tally = traces::TraceTally::default();
    schema.validate(wire, &mut tally).ok()?;
    let stats = tally.stats;
    Some((
        stats.spans,
        stats.resources,
        stats.max_attributes,
        stats.max_value_bytes,
    ))
}

/// The GenAI span reader of one pipeline: the attribute keys that make a span worth reading, and the
/// `str` of each attribute key seen, made once.
#[pyclass(name = "SpanSelector", module = "collector._native")]
struct PySpanSelector {
    evidence: FxHashSet<Vec<u8>>,
    names: FxHashMap<Vec<u8>, Py<PyString>>,
}

/// Distinct attribute keys remembered; past this the memory starts afresh (as the reader's shape cache).
const NAME_CACHE_LIMIT: usize = 20_000;

#[pymethods]
impl PySpanSelector {
    #[new]
    fn new(evidence: Vec<String>) -> Self {
        PySpanSelector {
            evidence: evidence.into_iter().map(String::into_bytes).collect(),
            names: FxHashMap::default(),
        }
    }

    /// `(resource payload range or None, scope name, span)` of each span of a scanned request with an
    /// evidence key (of those whose payload starts at one of `only`, if given); None when a selected span
    /// encodes an attribute in a way a decoder would merge (the caller then decodes the request).
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (wire, only=None))]
    fn read(
        &mut self,
        py: Python<'_>,
        wire: Bound<'_, PyBytes>,
        only: Option<FxHashSet<usize>>,
    ) -> PyResult<Option<Vec<(Option<Range>, Py<PyString>, WireSpan)>>> {
        let buf = wire.as_bytes();
        let evidence = &self.evidence;
        let Ok(selected) = py.detach(|| traces::select(buf, |key| evidence.contains(key))) else {
            return Err(PyValueError::new_err("the request is malformed: scan it first"));
        };
        if self.names.len() > NAME_CACHE_LIMIT {
            self.names.clear();
        }
        let wire_ref: Py<PyBytes> = wire.clone().unbind();
        let mut out = Vec::with_capacity(selected.len());
        for item in selected {
            if only.as_ref().is_some_and(|only| !only.contains(&item.span.0)) {
                continue;
            }
            let Ok(parts) = traces::read_span(buf, item.span) else {
                return Ok(None);
            };
            let keys = parts
                .attributes
                .iter()
                .map(|((start, end), _)| self.name(py, &buf[*start..*end]))
                .collect::<PyResult<Vec<_>>>()?;
            let scope = self.name(py, item.scope_name.map_or(&b""[..], |(start, end)| &buf[start..end]))?;
            let span = WireSpan {
                wire: wire_ref.clone_ref(py),
                payload_start: item.span.0,
                payload_end: item.span.1,
                keys: PyTuple::new(py, keys)?.unbind(),
                parts,
            };
            out.push((item.resource, scope, span));
        }
        Ok(Some(out))
    }
}

impl PySpanSelector {
    fn name(&mut self, py: Python<'_>, bytes: &[u8]) -> PyResult<Py<PyString>> {
        if let Some(name) = self.names.get(bytes) {
            return Ok(name.clone_ref(py));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| PyValueError::new_err("an attribute key is not UTF-8"))?;
        let name = PyString::new(py, text).unbind();
        self.names.insert(bytes.to_vec(), name.clone_ref(py));
        Ok(name)
    }
}

/// A span read from an undecoded request: what the GenAI processors read of a span, under the names
/// upb's `Span` gives them, and attribute values decoded on demand.
#[pyclass(module = "collector._native", frozen)]
struct WireSpan {
    wire: Py<PyBytes>,
    /// Where the span's payload is in the request.
    #[pyo3(get)]
    payload_start: usize,
    #[pyo3(get)]
    payload_end: usize,
    /// The attribute keys, in order.
    #[pyo3(get)]
    keys: Py<PyTuple>,
    parts: traces::SpanParts,
}

impl WireSpan {
    fn bytes<'py>(&self, py: Python<'py>, (start, end): Range) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.wire.bind(py).as_bytes()[start..end])
    }
}

#[pymethods]
impl WireSpan {
    #[getter]
    fn trace_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py, self.parts.trace_id)
    }

    #[getter]
    fn span_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py, self.parts.span_id)
    }

    #[getter]
    fn parent_span_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py, self.parts.parent_span_id)
    }

    #[getter]
    fn name<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        let (start, end) = self.parts.name;
        let buf: &[u8] = self.wire.bind(py).as_bytes();
        let text =
            std::str::from_utf8(&buf[start..end]).map_err(|_| PyValueError::new_err("the span name is not UTF-8"))?;
        Ok(PyString::new(py, text))
    }

    #[getter]
    fn start_time_unix_nano(&self) -> u64 {
        self.parts.start_time
    }

    #[getter]
    fn end_time_unix_nano(&self) -> u64 {
        self.parts.end_time
    }

    /// The value of the attribute at `position`, as `collector.attributes.value_of` gives it for upb's span.
    fn value<'py>(&self, py: Python<'py>, position: usize) -> PyResult<Bound<'py, PyAny>> {
        let (_, payload) = self
            .parts
            .attributes
            .get(position)
            .ok_or_else(|| PyIndexError::new_err("no attribute at this position"))?;
        let buf = self.wire.bind(py).as_bytes();
        let value = traces::value_of(buf, *payload).map_err(|_| PyValueError::new_err("malformed attribute value"))?;
        Ok(match value {
            Value::Unset => py.None().into_bound(py),
            Value::Str((start, end)) => PyString::new(
                py,
                std::str::from_utf8(&buf[start..end]).map_err(|_| PyValueError::new_err("a value is not UTF-8"))?,
            )
            .into_any(),
            Value::Bool(flag) => PyBool::new(py, flag).to_owned().into_any(),
            Value::Int(number) => number.into_pyobject(py)?.into_any(),
            Value::Double(number) => PyFloat::new(py, number).into_any(),
            Value::Bytes(range) => self.bytes(py, range).into_any(),
            Value::Compound((start, end)) => compound(py, &buf[start..end])?,
        })
    }

    /// The values of the attributes at `positions`, in one call.
    fn values<'py>(&self, py: Python<'py>, positions: Vec<usize>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        positions.into_iter().map(|position| self.value(py, position)).collect()
    }
}

/// An array or key-value list as upb gives it: the `ArrayValue` or `KeyValueList` message of the decoded
/// `AnyValue`.
fn compound<'py>(py: Python<'py>, any_value: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    static ANY_VALUE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let decoded = ANY_VALUE
        .import(py, "opentelemetry.proto.common.v1.common_pb2", "AnyValue")?
        .call_method1("FromString", (PyBytes::new(py, any_value),))?;
    let kind = decoded.call_method1("WhichOneof", ("value",))?;
    decoded.getattr(kind.cast_into::<PyString>()?)
}

/// `wire` with span payloads rewritten: each edit is (span payload start, end, attribute edits as
/// (ordinal, encoded field or None to drop), encoded attribute fields to append), sorted by start.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn edit_spans<'py>(
    py: Python<'py>,
    wire: &[u8],
    edits: Vec<(usize, usize, Vec<(usize, Option<Vec<u8>>)>, Vec<u8>)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let spliced = py
        .detach(|| {
            let mut replacements = Vec::with_capacity(edits.len());
            for (start, end, attributes, append) in &edits {
                replacements.push((*start, traces::edit_span(wire, (*start, *end), attributes, append)?));
            }
            traces::splice(wire, &replacements)
        })
        .map_err(|_| PyValueError::new_err("edits must be sorted, and name spans and attributes of this request"))?;
    spliced_bytes(py, &spliced)
}

/// A spliced request as `bytes`, written once, into the object, without the GIL.
pub(crate) fn spliced_bytes<'py>(py: Python<'py>, spliced: &traces::Spliced) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, spliced.len(), |out| {
        py.detach(|| spliced.write(out));
        Ok(())
    })
}

/// The `genai_redact` processor's `remove` mode for trace requests: keys that are content (exact, or by
/// prefix, unless allowed) and event names that are content.
#[pyclass(name = "Redactor", module = "collector._native", frozen)]
struct PyRedactor {
    exact: FxHashSet<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
    allow: FxHashSet<Vec<u8>>,
    events: FxHashSet<Vec<u8>>,
}

#[pymethods]
impl PyRedactor {
    #[new]
    fn new(exact: Vec<String>, prefixes: Vec<String>, allow: Vec<String>, events: Vec<String>) -> Self {
        let bytes = |items: Vec<String>| items.into_iter().map(String::into_bytes);
        PyRedactor {
            exact: bytes(exact).collect(),
            prefixes: bytes(prefixes).collect(),
            allow: bytes(allow).collect(),
            events: bytes(events).collect(),
        }
    }

    /// The request without its content (the same object when it has none), or None when the request has an
    /// attribute the native core leaves to upb.
    fn redact<'py>(&self, py: Python<'py>, wire: Bound<'py, PyBytes>) -> Option<Bound<'py, PyBytes>> {
        let content = Content {
            key: |key: &[u8]| {
                !self.allow.contains(key)
                    && (self.exact.contains(key) || self.prefixes.iter().any(|prefix| key.starts_with(prefix)))
            },
            event: |name: &[u8]| self.events.contains(name),
        };
        let buf = wire.as_bytes();
        match py.detach(|| redact::redact(buf, &content)) {
            Ok(Some(redacted)) => Some(PyBytes::new(py, &redacted)),
            Ok(None) => Some(wire),
            Err(_) => None,
        }
    }
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PySchema>()?;
    module.add_class::<PySpanSelector>()?;
    module.add_class::<WireSpan>()?;
    module.add_class::<PyRedactor>()?;
    module.add_class::<crate::stage::PyRecentKeys>()?;
    module.add_class::<crate::stage::PyCardinalityLimit>()?;
    module.add_class::<crate::stage::ArrowRows>()?;
    module.add_class::<crate::stage::PyGenAIStage>()?;
    module.add_class::<crate::stage::StageResult>()?;
    module.add_class::<crate::stage::Questions>()?;
    module.add_class::<crate::offload::Job>()?;
    module.add_class::<crate::offload::PyWorker>()?;
    module.add_function(wrap_pyfunction!(edit_spans, module)?)?;
    module.add("RULE_KEYS", crate::rules::RULE_KEYS)?;
    module.add("NATIVE_RULES", crate::rules::NATIVE_RULES.map(|(dialect, _)| dialect))?;
    Ok(())
}
