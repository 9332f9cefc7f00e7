//! Content removal on the wire: the `genai_redact` processor's `remove` mode for trace requests. Span
//! attributes whose key is content go, span events that are content go whole, and the content attributes
//! of the events that stay go; every other byte is kept as it was.

use crate::traces::{each_span, last, splice, Payload, KEY, SPAN_ATTRIBUTES};
use crate::wire::{put_varint, Field, Reader, Result, Unsure, LEN};

const SPAN_EVENTS: u32 = 11;
const EVENT_NAME: u32 = 2;
const EVENT_ATTRIBUTES: u32 = 3;

/// What counts as content: attribute keys and event names.
pub struct Content<K: Fn(&[u8]) -> bool, E: Fn(&[u8]) -> bool> {
    pub key: K,
    pub event: E,
}

/// The request without its content, or `None` when it has none (its bytes stand as they are). An
/// attribute with two keys is `Unsure` (a decoder keeps the last; the caller decodes the request).
pub fn redact<K: Fn(&[u8]) -> bool, E: Fn(&[u8]) -> bool>(
    buf: &[u8],
    content: &Content<K, E>,
) -> Result<Option<Vec<u8>>> {
    let mut payloads: Vec<(usize, Vec<u8>)> = Vec::new();
    each_span(buf, |_, _, span| {
        if let Some(payload) = redact_span(buf, span, content)? {
            payloads.push((span.start, payload));
        }
        Ok(())
    })?;
    if payloads.is_empty() {
        return Ok(None);
    }
    let replacements: Vec<(usize, Payload)> = payloads
        .iter()
        .map(|(at, payload)| (*at, Payload::from(payload.as_slice())))
        .collect();
    Ok(Some(splice(buf, &replacements)?.to_vec()))
}

/// The span's payload without content, or `None` when it has none.
fn redact_span<K: Fn(&[u8]) -> bool, E: Fn(&[u8]) -> bool>(
    buf: &[u8],
    span: Field,
    content: &Content<K, E>,
) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(span.end - span.start);
    let mut changed = false;
    let mut reader = Reader::new(buf, span.start, span.end);
    while !reader.done() {
        let field = reader.field()?;
        match (field.number, field.wire_type) {
            (SPAN_ATTRIBUTES, LEN) if (content.key)(key_of(buf, field)?) => {
                changed = true;
                continue;
            }
            (SPAN_EVENTS, LEN) => {
                let name = last(buf, field.start, field.end, EVENT_NAME)?.map_or(&b""[..], |(s, e)| &buf[s..e]);
                if (content.event)(name) {
                    changed = true;
                    continue;
                }
                if let Some(event) = without_content_attributes(buf, field, &content.key)? {
                    changed = true;
                    put_varint(&mut out, u64::from(SPAN_EVENTS << 3) | u64::from(LEN));
                    put_varint(&mut out, event.len() as u64);
                    out.extend_from_slice(&event);
                    continue;
                }
            }
            _ => {}
        }
        out.extend_from_slice(&buf[field.begin..field.end]);
    }
    Ok(changed.then_some(out))
}

/// An event's payload without its content attributes, or `None` when it has none.
fn without_content_attributes(buf: &[u8], event: Field, is_content: impl Fn(&[u8]) -> bool) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(event.end - event.start);
    let mut changed = false;
    let mut reader = Reader::new(buf, event.start, event.end);
    while !reader.done() {
        let field = reader.field()?;
        if field.number == EVENT_ATTRIBUTES && field.wire_type == LEN && is_content(key_of(buf, field)?) {
            changed = true;
            continue;
        }
        out.extend_from_slice(&buf[field.begin..field.end]);
    }
    Ok(changed.then_some(out))
}

/// The key of a KeyValue field ("" when it has none); `Unsure` when it has two.
fn key_of(buf: &[u8], attribute: Field) -> Result<&[u8]> {
    let mut key = None;
    let mut reader = Reader::new(buf, attribute.start, attribute.end);
    while !reader.done() {
        let field = reader.field()?;
        if field.number == KEY && field.wire_type == LEN && key.replace(&buf[field.start..field.end]).is_some() {
            return Err(Unsure);
        }
    }
    Ok(key.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{message, text};

    fn attribute(number: u32, key: &str) -> Vec<u8> {
        message(number, &[text(KEY, key), message(2, &[text(1, "v")])])
    }

    fn request(span: &[Vec<u8>]) -> Vec<u8> {
        message(1, &[message(2, &[message(2, span)])])
    }

    fn content() -> Content<impl Fn(&[u8]) -> bool, impl Fn(&[u8]) -> bool> {
        Content {
            key: |key: &[u8]| key.starts_with(b"gen_ai.prompt"),
            event: |name: &[u8]| name == b"gen_ai.choice",
        }
    }

    #[test]
    fn removes_content_attributes_and_events() {
        let kept_event = message(
            SPAN_EVENTS,
            &[text(EVENT_NAME, "log"), attribute(EVENT_ATTRIBUTES, "x")],
        );
        let buf = request(&[
            text(5, "chat"),
            attribute(SPAN_ATTRIBUTES, "gen_ai.prompt.0.content"),
            attribute(SPAN_ATTRIBUTES, "gen_ai.system"),
            message(SPAN_EVENTS, &[text(EVENT_NAME, "gen_ai.choice")]),
            message(
                SPAN_EVENTS,
                &[
                    text(EVENT_NAME, "log"),
                    attribute(EVENT_ATTRIBUTES, "gen_ai.prompt"),
                    attribute(EVENT_ATTRIBUTES, "x"),
                ],
            ),
        ]);
        let redacted = redact(&buf, &content()).unwrap().unwrap();
        let expected = request(&[text(5, "chat"), attribute(SPAN_ATTRIBUTES, "gen_ai.system"), kept_event]);
        assert_eq!(redacted, expected);
    }

    #[test]
    fn a_request_without_content_is_left_alone() {
        let buf = request(&[text(5, "GET"), attribute(SPAN_ATTRIBUTES, "http.method")]);
        assert_eq!(redact(&buf, &content()), Ok(None));
    }

    #[test]
    fn an_attribute_with_two_keys_is_unsure() {
        let twice = message(SPAN_ATTRIBUTES, &[text(KEY, "a"), text(KEY, "gen_ai.prompt")]);
        assert_eq!(redact(&request(&[twice]), &content()), Err(Unsure));
    }

    #[test]
    fn never_panics_on_truncations() {
        let buf = request(&[attribute(SPAN_ATTRIBUTES, "gen_ai.prompt"), message(SPAN_EVENTS, &[])]);
        for end in 0..buf.len() {
            let _ = redact(&buf[..end], &content());
        }
    }
}
