//! Validation of a request against the message schema the Python side hands over once (built from the
//! installed `opentelemetry-proto` descriptors, so both decoders read the same definitions).
//!
//! `validate` accepts a subset of what upb accepts: it says `Unsure` for anything it does not vouch
//! for (a known field with another wire type, groups, nesting deeper than `MAX_DEPTH`, invalid UTF-8 in a
//! string field), and the caller lets upb decide.

use crate::wire::{Field, Reader, Result, Unsure, FIXED32, FIXED64, LEN, VARINT};

/// What a caller counts while `validate` walks a request: it is told of each message it enters and
/// leaves and of each known field (its wire type checked), and says where a field's message sits.
pub trait Tally {
    /// Where a message sits in the request, as far as the tally cares.
    type Place: Copy;
    fn root(&self) -> Self::Place;
    fn begin(&mut self, place: Self::Place);
    /// A known field of the message at `place`: the place of the message it holds (when it holds one),
    /// or `Unsure` to refuse the request.
    fn field(&mut self, place: Self::Place, field: &Field) -> Result<Self::Place>;
    fn end(&mut self, place: Self::Place);
}

/// Nothing counted.
impl Tally for () {
    type Place = ();
    fn root(&self) {}
    fn begin(&mut self, _: ()) {}
    fn field(&mut self, _: (), _: &Field) -> Result<()> {
        Ok(())
    }
    fn end(&mut self, _: ()) {}
}

/// How a known field is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Varint,
    Fixed64,
    Fixed32,
    Bytes,
    /// UTF-8 checked, as proto3 strings are.
    String,
    /// A message: its index in the schema.
    Message(usize),
    /// A repeated scalar: packed (one length-delimited run) or not (one field of the element's wire type each).
    Repeated(u8),
    /// A field this reader leaves to upb (groups, say).
    Unsure,
}

impl Kind {
    /// The kind of a field from its code on the Python side (`collector/native.py`).
    pub fn from_code(code: u8, message: usize) -> Option<Kind> {
        Some(match code {
            0 => Kind::Varint,
            1 => Kind::Fixed64,
            2 => Kind::Bytes,
            3 => Kind::String,
            4 => Kind::Message(message),
            5 => Kind::Fixed32,
            6 => Kind::Unsure,
            7 => Kind::Repeated(VARINT),
            8 => Kind::Repeated(FIXED64),
            9 => Kind::Repeated(FIXED32),
            _ => return None,
        })
    }

    fn wire_type(self) -> Option<u8> {
        match self {
            Kind::Varint => Some(VARINT),
            Kind::Fixed64 => Some(FIXED64),
            Kind::Fixed32 => Some(FIXED32),
            Kind::Bytes | Kind::String | Kind::Message(_) => Some(LEN),
            Kind::Repeated(element) => Some(element),
            Kind::Unsure => None,
        }
    }
}

/// Well under upb's recursion limit of 100, so depth is never where the two disagree.
pub const MAX_DEPTH: usize = 64;

/// The highest field number a schema may name (OTLP's messages stop at 16): the tables are indexed by it.
pub const MAX_FIELD_NUMBER: u32 = 4096;

/// Message index → field number → kind; message 0 is the request.
pub struct Schema {
    messages: Vec<Vec<Option<Kind>>>,
}

impl Schema {
    /// From (message, field number, kind) triples; `None` when a message index is out of range or a field
    /// number above `MAX_FIELD_NUMBER`.
    pub fn new(fields: &[(usize, u32, Kind)], message_count: usize) -> Option<Schema> {
        let mut messages = vec![Vec::new(); message_count];
        for &(message, number, kind) in fields {
            if number > MAX_FIELD_NUMBER {
                return None;
            }
            if let Kind::Message(target) = kind {
                if target >= message_count {
                    return None;
                }
            }
            let table = messages.get_mut(message)?;
            let slot = number as usize;
            if table.len() <= slot {
                table.resize(slot + 1, None);
            }
            table[slot] = Some(kind);
        }
        Some(Schema { messages })
    }

    fn kind(&self, message: usize, number: u32) -> Option<Kind> {
        self.messages[message].get(number as usize).copied().flatten()
    }

    /// Check `buf` as a whole request (message 0), with `tally` counting on the way.
    pub fn validate<T: Tally>(&self, buf: &[u8], tally: &mut T) -> Result<()> {
        if self.messages.is_empty() {
            return Err(Unsure);
        }
        let root = tally.root();
        self.validate_message(buf, (0, buf.len()), 0, 0, root, tally)
    }

    fn validate_message<T: Tally>(
        &self,
        buf: &[u8],
        (start, end): (usize, usize),
        message: usize,
        depth: usize,
        place: T::Place,
        tally: &mut T,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Unsure);
        }
        tally.begin(place);
        let mut reader = Reader::new(buf, start, end);
        while !reader.done() {
            let field = reader.field()?;
            let Some(kind) = self.kind(message, field.number) else {
                continue; // unknown fields are kept by upb as they are
            };
            if let (Kind::Repeated(element), LEN) = (kind, field.wire_type) {
                packed(buf, field.start, field.end, element)?;
                continue;
            }
            if kind.wire_type() != Some(field.wire_type) {
                return Err(Unsure);
            }
            let inner = tally.field(place, &field)?;
            match kind {
                Kind::String => {
                    let text = &buf[field.start..field.end];
                    if !text.is_ascii() {
                        std::str::from_utf8(text).map_err(|_| Unsure)?;
                    }
                }
                Kind::Message(target) => {
                    self.validate_message(buf, (field.start, field.end), target, depth + 1, inner, tally)?
                }
                _ => {}
            }
        }
        tally.end(place);
        Ok(())
    }
}

/// A packed run of scalars: whole varints, or a length that is a multiple of the element's size.
fn packed(buf: &[u8], start: usize, end: usize, element: u8) -> Result<()> {
    let size = match element {
        FIXED64 => 8,
        FIXED32 => 4,
        _ => {
            let mut reader = Reader::new(buf, start, end);
            while !reader.done() {
                reader.varint()?;
            }
            return Ok(());
        }
    };
    if (end - start).is_multiple_of(size) {
        Ok(())
    } else {
        Err(Unsure)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Outer (0): 1 string, 2 message Inner, 3 varint, 4 a field left to upb, 5 repeated fixed64, 6 repeated
    /// varint; Inner (1): 1 bytes, 2 message Inner (recursive).
    pub fn toy_schema() -> Schema {
        Schema::new(
            &[
                (0, 1, Kind::String),
                (0, 2, Kind::Message(1)),
                (0, 3, Kind::Varint),
                (0, 4, Kind::Unsure),
                (0, 5, Kind::Repeated(FIXED64)),
                (0, 6, Kind::Repeated(VARINT)),
                (1, 1, Kind::Bytes),
                (1, 2, Kind::Message(1)),
            ],
            2,
        )
        .unwrap()
    }

    #[test]
    fn accepts_known_and_unknown_fields() {
        let schema = toy_schema();
        let buf = [0x0a, 0x01, b'a', 0x12, 0x03, 0x0a, 0x01, 0xff, 0x18, 0x01, 0x78, 0x07];
        assert_eq!(schema.validate(&buf, &mut ()), Ok(()));
    }

    #[test]
    fn unsure_of_bad_utf8_wrong_wire_types_and_unsure_fields() {
        let schema = toy_schema();
        for buf in [
            &[0x0a, 0x01, 0xff][..],
            &[0x08, 0x01],
            &[0x22, 0x00],
            &[0x1d, 0, 0, 0, 0],
        ] {
            assert_eq!(schema.validate(buf, &mut ()), Err(Unsure), "{buf:?}");
        }
    }

    #[test]
    fn repeated_scalars_packed_or_not() {
        let schema = toy_schema();
        let mut fixed = vec![0x2a, 16];
        fixed.extend_from_slice(&[0; 16]);
        for buf in [
            &fixed[..],
            &[0x29, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x32, 0x03, 0x01, 0x96, 0x01],
            &[0x30, 0x05],
        ] {
            assert_eq!(schema.validate(buf, &mut ()), Ok(()), "{buf:?}");
        }
        for buf in [&[0x2a, 0x03, 0, 0, 0][..], &[0x32, 0x01, 0x96], &[0x2d, 0, 0, 0, 0]] {
            assert_eq!(schema.validate(buf, &mut ()), Err(Unsure), "{buf:?}");
        }
    }

    #[test]
    fn deep_nesting_is_unsure() {
        let schema = toy_schema();
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..=MAX_DEPTH {
            let mut outer = vec![0x12];
            crate::wire::put_varint(&mut outer, inner.len() as u64);
            outer.extend_from_slice(&inner);
            inner = outer;
        }
        assert_eq!(schema.validate(&inner, &mut ()), Err(Unsure));
    }

    #[test]
    fn schemas_with_dangling_messages_are_refused() {
        assert!(Schema::new(&[(0, 1, Kind::Message(5))], 1).is_none());
        assert!(Schema::new(&[(3, 1, Kind::Varint)], 1).is_none());
        assert!(Schema::new(&[(0, u32::MAX, Kind::Varint)], 1).is_none());
    }
}
