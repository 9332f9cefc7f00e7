//! The OTLP trace request's own structure: `ExportTraceServiceRequest.resource_spans` (1) →
//! `ResourceSpans.resource` (1) and `.scope_spans` (2) → `ScopeSpans.scope` (1, its `name` 1) and `.spans` (2)
//! → `Span.attributes` (9) → `KeyValue.key` (1) and `.value` (2). These field numbers are the OTLP wire
//! contract; everything else about the messages comes from the schema (`schema.rs`).

use crate::schema::Tally;
use crate::wire::{varint_len, Field, LenHeader, Reader, Result, Unsure, FIXED64, LEN, VARINT};

const RESOURCE_SPANS: u32 = 1;
const RESOURCE: u32 = 1;
const RESOURCE_ATTRIBUTES: u32 = 1;
const SCOPE_SPANS: u32 = 2;
const SCOPE: u32 = 1;
const SCOPE_NAME: u32 = 1;
const SPANS: u32 = 2;
pub(crate) const SPAN_ATTRIBUTES: u32 = 9;
const TRACE_ID: u32 = 1;
const SPAN_ID: u32 = 2;
const PARENT_SPAN_ID: u32 = 4;
const NAME: u32 = 5;
const START_TIME: u32 = 7;
const END_TIME: u32 = 8;
pub(crate) const KEY: u32 = 1;
const VALUE: u32 = 2;
const STRING_VALUE: u32 = 1;
const BOOL_VALUE: u32 = 2;
const INT_VALUE: u32 = 3;
const DOUBLE_VALUE: u32 = 4;
const ARRAY_VALUE: u32 = 5;
const KVLIST_VALUE: u32 = 6;
const BYTES_VALUE: u32 = 7;

pub type Range = (usize, usize);

/// What the receiver's limits need to know of a request without decoding it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub spans: u64,
    pub resources: u64,
    /// The most attributes on one span.
    pub max_attributes: u64,
    /// The largest attribute value on the wire: at least the value's size once decoded.
    pub max_value_bytes: u64,
}

/// A span that has at least one attribute key the caller looks for, with where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The resource message's payload; `None` when the ResourceSpans has none.
    pub resource: Option<Range>,
    /// The instrumentation scope's name; `None` when it has none.
    pub scope_name: Option<Range>,
    /// The span message's payload.
    pub span: Range,
}

/// What the GenAI processors read of a span: ids and times, and where each attribute's key and value are.
/// Absent fields are empty ranges and zeros, as a decoder's defaults.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SpanParts {
    pub trace_id: Range,
    pub span_id: Range,
    pub parent_span_id: Range,
    pub name: Range,
    pub start_time: u64,
    pub end_time: u64,
    /// (key, AnyValue payload or `None` when the attribute has no value), in order.
    pub attributes: Vec<(Range, Option<Range>)>,
    /// Each attribute's value, as [`value_of`] reads its payload.
    pub values: Vec<Value>,
}

/// A decoded attribute value; compound values (arrays, key-value lists) are left as their `AnyValue` payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Unset,
    Str(Range),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Range),
    Compound(Range),
}

/// The parts of the span whose payload is `span`. Attributes whose encoding a decoder would merge (a key or
/// value given twice, fields besides key and value, a value with several fields) are `Unsure`, so that the
/// caller's plain reading of them never differs from upb's.
pub fn read_span(buf: &[u8], span: Range) -> Result<SpanParts> {
    let mut parts = SpanParts {
        attributes: Vec::with_capacity(SPAN_ATTRIBUTES_CAPACITY),
        values: Vec::with_capacity(SPAN_ATTRIBUTES_CAPACITY),
        ..SpanParts::default()
    };
    let mut reader = Reader::new(buf, span.0, span.1);
    while !reader.done() {
        let field = reader.field()?;
        let range = (field.start, field.end);
        match (field.number, field.wire_type) {
            (TRACE_ID, LEN) => parts.trace_id = range,
            (SPAN_ID, LEN) => parts.span_id = range,
            (PARENT_SPAN_ID, LEN) => parts.parent_span_id = range,
            (NAME, LEN) => parts.name = range,
            (START_TIME, FIXED64) => parts.start_time = fixed64(buf, field.start),
            (END_TIME, FIXED64) => parts.end_time = fixed64(buf, field.start),
            (SPAN_ATTRIBUTES, LEN) => {
                let (key, payload, value) = key_value(buf, field)?;
                parts.attributes.push((key, payload));
                parts.values.push(value);
            }
            _ => {}
        }
    }
    Ok(parts)
}

/// The attributes of the `Resource` whose payload is `resource`: (key, AnyValue payload), in order.
pub fn read_attributes(buf: &[u8], resource: Range) -> Result<Vec<(Range, Option<Range>)>> {
    let mut attributes = Vec::new();
    let mut reader = Reader::new(buf, resource.0, resource.1);
    while !reader.done() {
        let field = reader.field()?;
        if (field.number, field.wire_type) == (RESOURCE_ATTRIBUTES, LEN) {
            let (key, payload, _) = key_value(buf, field)?;
            attributes.push((key, payload));
        }
    }
    Ok(attributes)
}

fn fixed64(buf: &[u8], start: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&buf[start..start + 8]);
    u64::from_le_bytes(bytes)
}

fn key_value(buf: &[u8], attribute: Field) -> Result<(Range, Option<Range>, Value)> {
    let (mut key, mut value) = (None, None);
    let mut reader = Reader::new(buf, attribute.start, attribute.end);
    while !reader.done() {
        let field = reader.field()?;
        let slot = match (field.number, field.wire_type) {
            (KEY, LEN) => &mut key,
            (VALUE, LEN) => &mut value,
            _ => return Err(Unsure),
        };
        if slot.replace((field.start, field.end)).is_some() {
            return Err(Unsure);
        }
    }
    let read = value_of(buf, value)?; // a field of its own kind
    if let Some((start, end)) = value {
        let mut any = Reader::new(buf, start, end);
        if !any.done() {
            any.field()?;
            if !any.done() {
                return Err(Unsure);
            }
        }
    }
    Ok((key.unwrap_or((attribute.start, attribute.start)), value, read))
}

/// Room for the attributes of a GenAI span (the dialect samples have 6 to 25), reserved once.
const SPAN_ATTRIBUTES_CAPACITY: usize = 24;

/// The value of an attribute that `read_span` accepted.
pub fn value_of(buf: &[u8], payload: Option<Range>) -> Result<Value> {
    let Some((start, end)) = payload else {
        return Ok(Value::Unset);
    };
    let mut reader = Reader::new(buf, start, end);
    if reader.done() {
        return Ok(Value::Unset);
    }
    let field = reader.field()?;
    let range = (field.start, field.end);
    Ok(match (field.number, field.wire_type) {
        (STRING_VALUE, LEN) => Value::Str(range),
        (BOOL_VALUE, VARINT) => Value::Bool(field.value != 0),
        (INT_VALUE, VARINT) => Value::Int(field.value as i64),
        (DOUBLE_VALUE, FIXED64) => Value::Double(f64::from_bits(fixed64(buf, field.start))),
        (BYTES_VALUE, LEN) => Value::Bytes(range),
        (ARRAY_VALUE | KVLIST_VALUE, LEN) => Value::Compound((start, end)),
        _ => return Err(Unsure),
    })
}

/// A span's new payload, as the pieces it is made of (runs of the request's bytes and new fields), so it is
/// written once, into the spliced request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload<'a> {
    pieces: Vec<&'a [u8]>,
    len: usize,
}

impl<'a> Payload<'a> {
    fn push(&mut self, piece: &'a [u8]) {
        if !piece.is_empty() {
            self.pieces.push(piece);
            self.len += piece.len();
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    fn from(bytes: &'a [u8]) -> Payload<'a> {
        let mut payload = Payload::default();
        payload.push(bytes);
        payload
    }
}

/// The new payload of the span at `span`: the attributes at the given ordinals replaced by whole encoded
/// fields (`None` drops the attribute), then `append` (encoded attribute fields) added at the end.
/// `edits` are sorted by ordinal and each must name an attribute of the span.
pub fn edit_span<'a, B: AsRef<[u8]>>(
    buf: &'a [u8],
    span: Range,
    edits: &'a [(usize, Option<B>)],
    append: &'a [u8],
) -> Result<Payload<'a>> {
    if edits.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(Unsure);
    }
    let mut out = Payload::default();
    let (mut ordinal, mut next) = (0, edits.iter().peekable());
    let mut unchanged = span.0; // fields from here on are kept as they are, in one piece
    let mut reader = Reader::new(buf, span.0, span.1);
    while !reader.done() {
        let field = reader.field()?;
        if field.number == SPAN_ATTRIBUTES && field.wire_type == LEN {
            let edit = next.next_if(|(at, _)| *at == ordinal);
            ordinal += 1;
            if let Some((_, replacement)) = edit {
                out.push(&buf[unchanged..field.begin]);
                out.push(replacement.as_ref().map_or(&[][..], AsRef::as_ref));
                unchanged = field.end;
            }
        }
    }
    if next.next().is_some() {
        return Err(Unsure);
    }
    out.push(buf.get(unchanged..span.1).ok_or(Unsure)?);
    out.push(append);
    Ok(out)
}

/// Calls `visit(resource, scope name, span field)` for every span of the request. A ResourceSpans
/// with two `resource` fields, or a ScopeSpans with two `scope` fields, is `Unsure` (upb merges them).
pub(crate) fn each_span(
    buf: &[u8],
    mut visit: impl FnMut(Option<Range>, Option<Range>, Field) -> Result<()>,
) -> Result<()> {
    let mut request = Reader::new(buf, 0, buf.len());
    while !request.done() {
        let resource_spans = request.field()?;
        if resource_spans.number != RESOURCE_SPANS || resource_spans.wire_type != LEN {
            continue;
        }
        let resource = single(buf, resource_spans, RESOURCE)?;
        let mut fields = Reader::new(buf, resource_spans.start, resource_spans.end);
        while !fields.done() {
            let scope_spans = fields.field()?;
            if scope_spans.number != SCOPE_SPANS || scope_spans.wire_type != LEN {
                continue;
            }
            let scope_name = match single(buf, scope_spans, SCOPE)? {
                Some((start, end)) => last(buf, start, end, SCOPE_NAME)?,
                None => None,
            };
            let mut spans = Reader::new(buf, scope_spans.start, scope_spans.end);
            while !spans.done() {
                let span = spans.field()?;
                if span.number == SPANS && span.wire_type == LEN {
                    visit(resource, scope_name, span)?;
                }
            }
        }
    }
    Ok(())
}

/// The payload of the only length-delimited field `number` of a message, `Unsure` when there are two.
fn single(buf: &[u8], message: Field, number: u32) -> Result<Option<Range>> {
    let mut found = None;
    let mut reader = Reader::new(buf, message.start, message.end);
    while !reader.done() {
        let field = reader.field()?;
        if field.number == number && field.wire_type == LEN {
            if found.is_some() {
                return Err(Unsure);
            }
            found = Some((field.start, field.end));
        }
    }
    Ok(found)
}

/// The payload of the last length-delimited field `number` (the one a decoder keeps).
pub(crate) fn last(buf: &[u8], start: usize, end: usize, number: u32) -> Result<Option<Range>> {
    let mut found = None;
    let mut reader = Reader::new(buf, start, end);
    while !reader.done() {
        let field = reader.field()?;
        if field.number == number && field.wire_type == LEN {
            found = Some((field.start, field.end));
        }
    }
    Ok(found)
}

/// Span count and attribute sizes of a trace request, counted while `Schema::validate` walks it.
/// A ResourceSpans with two `resource` fields, or a ScopeSpans with two `scope` fields, is `Unsure`
/// (upb merges them; the stage reads one).
#[derive(Debug, Default)]
pub struct TraceTally {
    pub stats: Stats,
    /// Of the message being walked at each place: its attributes (span), its value bytes (a span
    /// attribute; a value given twice is merged, so it is bounded by both), its `resource` and `scope`
    /// fields (resource spans, scope spans).
    attributes: u64,
    value_bytes: u64,
    resources_given: u32,
    scopes_given: u32,
}

/// A field a decoder would merge were it given twice (the stage reads one): `Unsure` the second time.
fn given_once(given: &mut u32) -> Result<Place> {
    *given += 1;
    if *given > 1 {
        return Err(Unsure);
    }
    Ok(Place::Elsewhere)
}

/// Where a message sits in a trace request, as far as [`TraceTally`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Request,
    ResourceSpans,
    ScopeSpans,
    Span,
    SpanAttribute,
    Elsewhere,
}

impl Tally for TraceTally {
    type Place = Place;

    fn root(&self) -> Place {
        Place::Request
    }

    fn begin(&mut self, place: Place) {
        match place {
            Place::ResourceSpans => self.resources_given = 0,
            Place::ScopeSpans => self.scopes_given = 0,
            Place::Span => self.attributes = 0,
            Place::SpanAttribute => self.value_bytes = 0,
            Place::Request | Place::Elsewhere => {}
        }
    }

    fn field(&mut self, place: Place, field: &Field) -> Result<Place> {
        Ok(match (place, field.number) {
            (Place::Request, RESOURCE_SPANS) => {
                self.stats.resources += 1;
                Place::ResourceSpans
            }
            (Place::ResourceSpans, RESOURCE) => given_once(&mut self.resources_given)?,
            (Place::ResourceSpans, SCOPE_SPANS) => Place::ScopeSpans,
            (Place::ScopeSpans, SCOPE) => given_once(&mut self.scopes_given)?,
            (Place::ScopeSpans, SPANS) => Place::Span,
            (Place::Span, SPAN_ATTRIBUTES) => {
                self.attributes += 1;
                Place::SpanAttribute
            }
            (Place::SpanAttribute, VALUE) => {
                self.value_bytes += (field.end - field.start) as u64;
                Place::Elsewhere
            }
            _ => Place::Elsewhere,
        })
    }

    fn end(&mut self, place: Place) {
        match place {
            Place::Span => {
                self.stats.spans += 1;
                self.stats.max_attributes = self.stats.max_attributes.max(self.attributes);
            }
            Place::SpanAttribute => self.stats.max_value_bytes = self.stats.max_value_bytes.max(self.value_bytes),
            _ => {}
        }
    }
}

/// The spans with an attribute key for which `wanted` is true (any occurrence of a key counts: the
/// caller reads the selected spans again, exactly).
pub fn select(buf: &[u8], wanted: impl Fn(&[u8]) -> bool) -> Result<Vec<Selected>> {
    let mut selected = Vec::new();
    each_span(buf, |resource, scope_name, span| {
        if has_wanted_key(buf, span, &wanted)? {
            selected.push(Selected {
                resource,
                scope_name,
                span: (span.start, span.end),
            });
        }
        Ok(())
    })?;
    Ok(selected)
}

/// [`select`] with each selected span's parts read ([`read_span`]) in the same pass; `Unsure` where a
/// selected span's parts are. Only the selected spans are read whole: the others' keys are looked at.
pub fn select_parts(buf: &[u8], wanted: impl Fn(&[u8]) -> bool) -> Result<Vec<(Selected, SpanParts)>> {
    let mut selected = Vec::new();
    each_span(buf, |resource, scope_name, span| {
        if has_wanted_key(buf, span, &wanted)? {
            let parts = read_span(buf, (span.start, span.end))?;
            let span = (span.start, span.end);
            selected.push((
                Selected {
                    resource,
                    scope_name,
                    span,
                },
                parts,
            ));
        }
        Ok(())
    })?;
    Ok(selected)
}

/// Whether the span has an attribute key for which `wanted` is true.
fn has_wanted_key(buf: &[u8], span: Field, wanted: &impl Fn(&[u8]) -> bool) -> Result<bool> {
    let mut reader = Reader::new(buf, span.start, span.end);
    while !reader.done() {
        let field = reader.field()?;
        if field.number != SPAN_ATTRIBUTES || field.wire_type != LEN {
            continue;
        }
        let mut kv = Reader::new(buf, field.start, field.end);
        while !kv.done() {
            let part = kv.field()?;
            if part.number == KEY && part.wire_type == LEN && wanted(&buf[part.start..part.end]) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A request with some span payloads replaced, as the pieces it is made of: `len` is known before anything
/// is copied, so the caller writes it once, into memory of that size.
#[derive(Debug, Default)]
pub struct Spliced<'a> {
    pieces: Vec<Piece<'a>>,
    len: usize,
}

#[derive(Debug)]
enum Piece<'a> {
    Bytes(&'a [u8]),
    Header(LenHeader),
}

impl<'a> Spliced<'a> {
    fn bytes(&mut self, bytes: &'a [u8]) {
        if !bytes.is_empty() {
            self.pieces.push(Piece::Bytes(bytes));
            self.len += bytes.len();
        }
    }

    fn header(&mut self, number: u32, payload_len: usize) {
        let header = LenHeader::new(number, payload_len);
        self.len += header.bytes().len();
        self.pieces.push(Piece::Header(header));
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The request, into `out` (exactly `len` bytes).
    pub fn write(&self, out: &mut [u8]) {
        let mut at = 0;
        for piece in &self.pieces {
            let bytes = match piece {
                Piece::Bytes(bytes) => bytes,
                Piece::Header(header) => header.bytes(),
            };
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0; self.len];
        self.write(&mut out);
        out
    }
}

/// The request with the payloads of some spans replaced, the length prefixes of their ScopeSpans and
/// ResourceSpans fixed; everything else is kept as it was, in runs. `replacements` are (span payload
/// start, new payload), sorted by start; each must name a span of the request.
pub fn splice<'a>(buf: &'a [u8], replacements: &[(usize, Payload<'a>)]) -> Result<Spliced<'a>> {
    if replacements.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(Unsure);
    }
    let mut out = Spliced::default();
    let mut used = 0;
    let mut copied = 0;
    let mut request = Reader::new(buf, 0, buf.len());
    while !request.done() {
        let resource_spans = request.field()?;
        let mine = within(replacements, resource_spans);
        if resource_spans.number != RESOURCE_SPANS || resource_spans.wire_type != LEN || mine.is_empty() {
            continue;
        }
        let mut scopes = Vec::new();
        let mut length = resource_spans.end - resource_spans.start;
        let mut reader = Reader::new(buf, resource_spans.start, resource_spans.end);
        while !reader.done() {
            let scope_spans = reader.field()?;
            let inner = within(mine, scope_spans);
            if scope_spans.number == SCOPE_SPANS && scope_spans.wire_type == LEN && !inner.is_empty() {
                let edits = span_edits(buf, scope_spans, inner)?;
                let scope_length = edits.iter().fold(scope_spans.end - scope_spans.start, |length, edit| {
                    length - (edit.1 - edit.0) + field_length(edit.2.len())
                });
                length = length - (scope_spans.end - scope_spans.begin) + field_length(scope_length);
                used += edits.len();
                scopes.push((scope_spans, scope_length, edits));
            }
        }
        out.bytes(&buf[copied..resource_spans.begin]);
        out.header(RESOURCE_SPANS, length);
        copied = resource_spans.start;
        for (scope_spans, scope_length, edits) in scopes {
            out.bytes(&buf[copied..scope_spans.begin]);
            out.header(SCOPE_SPANS, scope_length);
            copied = scope_spans.start;
            for (begin, end, payload) in edits {
                out.bytes(&buf[copied..begin]);
                out.header(SPANS, payload.len());
                for piece in &payload.pieces {
                    out.bytes(piece);
                }
                copied = end;
            }
        }
    }
    out.bytes(&buf[copied..]);
    if used != replacements.len() {
        return Err(Unsure);
    }
    Ok(out)
}

/// The encoded size of a length-delimited field with a one-byte tag (the request's, scope's and span's).
fn field_length(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// (field begin, field end, new payload) of each span of a ScopeSpans that `replacements` (those whose start
/// lies in it, in order) replace; `Unsure` when one names no span.
fn span_edits<'r, 'a>(
    buf: &[u8],
    scope_spans: Field,
    replacements: &'r [(usize, Payload<'a>)],
) -> Result<Vec<(usize, usize, &'r Payload<'a>)>> {
    let mut edits = Vec::with_capacity(replacements.len());
    let mut pending = replacements.iter().peekable();
    let mut reader = Reader::new(buf, scope_spans.start, scope_spans.end);
    while !reader.done() && pending.peek().is_some() {
        let span = reader.field()?;
        if span.number == SPANS && span.wire_type == LEN {
            if let Some((_, payload)) = pending.next_if(|r| r.0 == span.start) {
                edits.push((span.begin, span.end, payload));
            }
        }
    }
    if pending.next().is_some() {
        return Err(Unsure);
    }
    Ok(edits)
}

/// The replacements whose start lies in `field`'s payload.
fn within<'r, 'a>(replacements: &'r [(usize, Payload<'a>)], field: Field) -> &'r [(usize, Payload<'a>)] {
    let first = replacements.partition_point(|r| r.0 < field.start);
    let last = replacements.partition_point(|r| r.0 < field.end);
    &replacements[first..last]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use crate::testing::{message, text};

    /// The counts [`TraceTally`] takes, in a pass of their own: the reference it is held to.
    fn stats(buf: &[u8]) -> Result<Stats> {
        let mut stats = Stats::default();
        let mut request = Reader::new(buf, 0, buf.len());
        while !request.done() {
            let field = request.field()?;
            stats.resources += u64::from(field.number == RESOURCE_SPANS && field.wire_type == LEN);
        }
        each_span(buf, |_, _, span| {
            stats.spans += 1;
            let mut attributes = 0;
            let mut reader = Reader::new(buf, span.start, span.end);
            while !reader.done() {
                let field = reader.field()?;
                if field.number != SPAN_ATTRIBUTES || field.wire_type != LEN {
                    continue;
                }
                attributes += 1;
                let mut value_bytes = 0; // a value given twice is merged: bound it by both
                let mut kv = Reader::new(buf, field.start, field.end);
                while !kv.done() {
                    let part = kv.field()?;
                    if part.number == VALUE && part.wire_type == LEN {
                        value_bytes += (part.end - part.start) as u64;
                    }
                }
                stats.max_value_bytes = stats.max_value_bytes.max(value_bytes);
            }
            stats.max_attributes = stats.max_attributes.max(attributes);
            Ok(())
        })?;
        Ok(stats)
    }

    /// `splice` with whole new payloads, as bytes.
    fn spliced(buf: &[u8], replacements: &[(usize, &[u8])]) -> Result<Vec<u8>> {
        let replacements: Vec<(usize, Payload)> = replacements
            .iter()
            .map(|(at, new)| (*at, Payload::from(*new)))
            .collect();
        splice(buf, &replacements).map(|spliced| spliced.to_vec())
    }

    fn edited(buf: &[u8], span: Range, edits: &[(usize, Option<&[u8]>)], append: &[u8]) -> Result<Vec<u8>> {
        edit_span(buf, span, edits, append).map(|payload| payload.pieces.concat())
    }

    fn attribute(key: &str, value: &str) -> Vec<u8> {
        message(SPAN_ATTRIBUTES, &[text(KEY, key), message(VALUE, &[text(1, value)])])
    }

    fn span(name: &str, attributes: &[(&str, &str)]) -> Vec<u8> {
        let mut parts = vec![text(5, name)];
        parts.extend(attributes.iter().map(|(k, v)| attribute(k, v)));
        message(SPANS, &parts)
    }

    fn request() -> Vec<u8> {
        let resource = message(RESOURCE, &[message(1, &[text(KEY, "service.name")])]);
        let scope = message(SCOPE, &[text(SCOPE_NAME, "openai")]);
        let scope_spans = message(
            SCOPE_SPANS,
            &[
                scope,
                span("chat", &[("gen_ai.system", "openai")]),
                span("GET", &[("http.method", "GET")]),
            ],
        );
        message(RESOURCE_SPANS, &[resource, scope_spans])
    }

    #[test]
    fn counts_spans_and_attribute_sizes() {
        assert_eq!(
            tallied(&request()).unwrap(),
            Stats {
                spans: 2,
                resources: 1,
                max_attributes: 1,
                max_value_bytes: 8
            }
        );
    }

    #[test]
    fn selects_spans_by_key_with_their_resource_and_scope() {
        let buf = request();
        let selected = select(&buf, |key| key == b"gen_ai.system").unwrap();
        assert_eq!(selected.len(), 1);
        let (start, end) = selected[0].scope_name.unwrap();
        assert_eq!(&buf[start..end], b"openai");
        assert!(selected[0].resource.is_some());
        let (start, end) = selected[0].span;
        assert_eq!(&buf[start..end], &span("chat", &[("gen_ai.system", "openai")])[2..]);
    }

    #[test]
    fn splice_replaces_a_span_and_fixes_lengths() {
        let buf = request();
        let chosen = select(&buf, |key| key == b"gen_ai.system").unwrap()[0].span;
        let longer = span(
            "chat",
            &[("gen_ai.system", "openai"), ("gen_ai.usage.cost.amount", "0.5")],
        );
        let spliced = spliced(&buf, &[(chosen.0, &longer[2..])]).unwrap();
        let resource = message(RESOURCE, &[message(1, &[text(KEY, "service.name")])]);
        let scope = message(SCOPE, &[text(SCOPE_NAME, "openai")]);
        let expected = message(
            RESOURCE_SPANS,
            &[
                resource,
                message(SCOPE_SPANS, &[scope, longer, span("GET", &[("http.method", "GET")])]),
            ],
        );
        assert_eq!(spliced, expected);
        assert_eq!(tallied(&spliced).unwrap().spans, 2);
    }

    #[test]
    fn splice_refuses_replacements_that_name_no_span() {
        let buf = request();
        assert_eq!(spliced(&buf, &[(1, b"x")]), Err(Unsure));
        assert_eq!(spliced(&buf, &[(9, b"x"), (3, b"y")]), Err(Unsure));
        assert_eq!(spliced(&buf, &[]).unwrap(), buf);
    }

    #[test]
    fn reads_a_span_and_its_attribute_values() {
        let mut payload = [text(TRACE_ID, "t"), text(NAME, "chat")].concat();
        payload.extend_from_slice(&[0x39, 1, 0, 0, 0, 0, 0, 0, 0]); // start_time_unix_nano = 1
        payload.extend(attribute("k", "v"));
        payload.extend(message(
            SPAN_ATTRIBUTES,
            &[text(KEY, "n"), message(VALUE, &[vec![0x18, 0x7b]])],
        ));
        payload.extend(message(SPAN_ATTRIBUTES, &[text(KEY, "unset")]));
        let parts = read_span(&payload, (0, payload.len())).unwrap();
        assert_eq!(&payload[parts.name.0..parts.name.1], b"chat");
        assert_eq!((parts.start_time, parts.attributes.len()), (1, 3));
        let (key, v) = parts.attributes[0];
        assert_eq!(&payload[key.0..key.1], b"k");
        let Value::Str((start, end)) = value_of(&payload, v).unwrap() else {
            panic!()
        };
        assert_eq!(&payload[start..end], b"v");
        assert_eq!(value_of(&payload, parts.attributes[1].1).unwrap(), Value::Int(123));
        assert_eq!(value_of(&payload, parts.attributes[2].1).unwrap(), Value::Unset);
    }

    #[test]
    fn attributes_a_decoder_would_merge_are_unsure() {
        let twice = message(SPAN_ATTRIBUTES, &[text(KEY, "a"), text(KEY, "b")]);
        let two_values = message(VALUE, &[text(1, "x"), vec![0x18, 0x01]]);
        let both = message(SPAN_ATTRIBUTES, &[text(KEY, "a"), two_values]);
        let unknown = message(SPAN_ATTRIBUTES, &[text(KEY, "a"), message(VALUE, &[vec![0x48, 0x01]])]);
        for payload in [twice, both, unknown] {
            assert_eq!(read_span(&payload, (0, payload.len())), Err(Unsure));
        }
    }

    #[test]
    fn edits_replace_drop_and_append_attributes() {
        let payload = [
            text(NAME, "chat"),
            attribute("a", "1"),
            attribute("b", "2"),
            attribute("c", "3"),
        ]
        .concat();
        let new_a = attribute("a", "one");
        let edits: [(usize, Option<&[u8]>); 2] = [(0, Some(&new_a)), (2, None)];
        let appended = attribute("d", "4");
        let new_payload = edited(&payload, (0, payload.len()), &edits, &appended).unwrap();
        let expected = [text(NAME, "chat"), new_a.clone(), attribute("b", "2"), appended.clone()].concat();
        assert_eq!(new_payload, expected);
        assert_eq!(edited(&payload, (0, payload.len()), &[(3, None)], b""), Err(Unsure));
    }

    #[test]
    fn a_second_resource_or_scope_is_unsure() {
        let resource_twice = message(RESOURCE_SPANS, &[message(RESOURCE, &[]), message(RESOURCE, &[])]);
        let scope_twice = message(
            RESOURCE_SPANS,
            &[message(SCOPE_SPANS, &[message(SCOPE, &[]), message(SCOPE, &[])])],
        );
        for twice in [resource_twice, scope_twice] {
            assert_eq!(trace_schema().validate(&twice, &mut ()), Ok(()));
            assert_eq!(tallied(&twice), Err(Unsure));
        }
    }

    /// What the scan counts: the request validated with a [`TraceTally`].
    fn tallied(buf: &[u8]) -> Result<Stats> {
        let mut tally = TraceTally::default();
        trace_schema().validate(buf, &mut tally)?;
        Ok(tally.stats)
    }

    /// Every wire function on every input, in one place.
    fn exercise(buf: &[u8]) {
        let _ = tallied(buf);
        if let Ok(selected) = select(buf, |_| true) {
            for item in &selected {
                if let Ok(parts) = read_span(buf, item.span) {
                    for (_, v) in &parts.attributes {
                        let _ = value_of(buf, *v);
                    }
                    let edits: [(usize, Option<&[u8]>); 1] = [(0, None)];
                    let _ = edited(buf, item.span, &edits[..parts.attributes.len().min(1)], b"\x4a\x00");
                }
            }
            let replacements: Vec<(usize, &[u8])> = selected.iter().map(|item| (item.span.0, &b"x"[..])).collect();
            let _ = spliced(buf, &replacements);
        }
    }

    #[test]
    fn never_panics_on_mutated_requests() {
        let base = request();
        let mut next = crate::testing::random(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            exercise(&mutated(&base, &mut next));
        }
    }

    /// `base` with one to four bits flipped, bytes inserted or truncations.
    fn mutated(base: &[u8], next: &mut impl FnMut() -> u64) -> Vec<u8> {
        let mut buf = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % buf.len().max(1);
            match next() % 3 {
                0 if !buf.is_empty() => buf[at] ^= 1 << (next() % 8),
                1 => buf.insert(at.min(buf.len()), next() as u8),
                _ => buf.truncate(at),
            }
        }
        buf
    }

    /// OTLP's trace request, the fields these tests write: request (0), ResourceSpans (1), Resource (2),
    /// ScopeSpans (3), Scope (4), KeyValue (5), Span (6), AnyValue (7), KeyValueList (8).
    fn trace_schema() -> Schema {
        use crate::schema::Kind::{Bytes, Fixed64, Message, String, Varint};
        let fields = [
            (0, RESOURCE_SPANS, Message(1)),
            (1, RESOURCE, Message(2)),
            (1, SCOPE_SPANS, Message(3)),
            (2, RESOURCE_ATTRIBUTES, Message(5)),
            (3, SCOPE, Message(4)),
            (3, SPANS, Message(6)),
            (4, SCOPE_NAME, String),
            (5, KEY, String),
            (5, VALUE, Message(7)),
            (6, TRACE_ID, Bytes),
            (6, SPAN_ID, Bytes),
            (6, NAME, String),
            (6, START_TIME, Fixed64),
            (6, SPAN_ATTRIBUTES, Message(5)),
            (7, STRING_VALUE, String),
            (7, INT_VALUE, Varint),
            (7, KVLIST_VALUE, Message(8)),
            (8, 1, Message(5)),
        ];
        Schema::new(&fields, 9).unwrap()
    }

    #[test]
    fn the_tally_counts_what_a_pass_of_its_own_counts() {
        let nested = message(VALUE, &[message(KVLIST_VALUE, &[message(1, &[text(KEY, "inner")])])]);
        let attribute_with_a_map = message(SPAN_ATTRIBUTES, &[text(KEY, "map"), nested]);
        let half = message(VALUE, &[text(STRING_VALUE, &"y".repeat(200))]);
        let given_twice = message(SPAN_ATTRIBUTES, &[text(KEY, "twice"), half.clone(), half]); // 406 bytes in all
        let long_span = message(
            SPANS,
            &[
                text(NAME, "long"),
                attribute("a", &"x".repeat(300)),
                attribute_with_a_map,
                given_twice,
            ],
        );
        let base = [
            request(),
            message(RESOURCE_SPANS, &[message(SCOPE_SPANS, &[long_span])]),
        ]
        .concat();
        let schema = trace_schema();
        let mut next = crate::testing::random(0x9e37_79b9_7f4a_7c15);
        let mut counted = 0;
        for case in 0..20_000 {
            let buf = if case == 0 {
                base.clone()
            } else {
                mutated(&base, &mut next)
            };
            if schema.validate(&buf, &mut ()).is_err() {
                continue;
            }
            let mut tally = TraceTally::default();
            match (schema.validate(&buf, &mut tally), stats(&buf)) {
                (Ok(()), Ok(expected)) => {
                    assert_eq!(tally.stats, expected, "{buf:?}");
                    counted += 1;
                }
                (Err(Unsure), Err(Unsure)) => {}
                (tallied, expected) => panic!("{tallied:?} against {expected:?} for {buf:?}"),
            }
        }
        assert!(counted > 1_000, "{counted}");
        let stats = tallied(&base).unwrap();
        assert_eq!((stats.spans, stats.max_attributes, stats.max_value_bytes), (3, 3, 406));
    }

    #[test]
    fn never_panics_on_truncations() {
        let buf = request();
        for end in 0..buf.len() {
            let _ = tallied(&buf[..end]);
            let _ = select(&buf[..end], |_| true);
            let _ = select_parts(&buf[..end], |_| true);
            let _ = spliced(&buf[..end], &[(5, b"z")]);
            let _ = edited(&buf[..end], (end, 0), &[], b"");
            if let Ok(parts) = read_span(&buf[..end], (0, end)) {
                for (_, v) in parts.attributes {
                    let _ = value_of(&buf[..end], v);
                }
            }
            let _ = edited(&buf[..end], (0, end), &[(0, None)], b"");
        }
    }
}
