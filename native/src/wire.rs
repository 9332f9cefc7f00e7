//! Protobuf wire format: a bounds-checked reader that never panics.
//!
//! Every read returns `Err(Unsure)` on anything it cannot vouch for; the caller then leaves the
//! request to the reference decoder (upb), which gives the user its own error.

/// The input is malformed, or valid in a way this reader does not handle (groups, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsure;

pub type Result<T> = std::result::Result<T, Unsure>;

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

/// A field as read: its number, wire type and, for length-delimited fields, the payload's range.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Offset of the field's tag.
    pub begin: usize,
    pub number: u32,
    pub wire_type: u8,
    /// Offset of the payload (after tag and length) in the reader's buffer.
    pub start: usize,
    /// Offset just past the field.
    pub end: usize,
    /// The varint's value (VARINT fields only).
    pub value: u64,
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf[start..end]`; offsets it reports are into `buf`.
    pub fn new(buf: &'a [u8], start: usize, end: usize) -> Self {
        Reader {
            buf,
            pos: start,
            end: end.min(buf.len()),
        }
    }

    #[inline]
    pub fn done(&self) -> bool {
        self.pos >= self.end
    }

    /// A varint of at most ten bytes whose tenth byte carries only the 64th bit, as upb accepts.
    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64> {
        match self.buf.get(self.pos) {
            Some(&first) if first < 0x80 && self.pos < self.end => {
                self.pos += 1;
                Ok(u64::from(first))
            }
            _ => self.long_varint(),
        }
    }

    #[cold]
    fn long_varint(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).filter(|_| self.pos < self.end).ok_or(Unsure)?;
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(Unsure);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Unsure)
    }

    #[inline]
    fn skip(&mut self, len: usize) -> Result<()> {
        let end = self.pos.checked_add(len).ok_or(Unsure)?;
        if end > self.end {
            return Err(Unsure);
        }
        self.pos = end;
        Ok(())
    }

    /// The next field, or `Unsure` for groups, field number 0 and truncated input.
    #[inline]
    pub fn field(&mut self) -> Result<Field> {
        // Most fields of a span have a one-byte tag (numbers 1 to 15) and a one-byte length or value.
        let begin = self.pos;
        if let (Some(&tag), Some(&second)) = (self.buf.get(begin), self.buf.get(begin + 1)) {
            let (number, wire_type) = (u32::from(tag >> 3), tag & 7);
            if tag < 0x80 && number != 0 && second < 0x80 && begin + 2 <= self.end {
                let after = begin + 2;
                let field = |start, end, value| Field {
                    begin,
                    number,
                    wire_type,
                    start,
                    end,
                    value,
                };
                if wire_type == LEN && after + usize::from(second) <= self.end {
                    self.pos = after + usize::from(second);
                    return Ok(field(after, self.pos, 0));
                }
                if wire_type == VARINT {
                    self.pos = after;
                    return Ok(field(begin + 1, after, u64::from(second)));
                }
            }
        }
        self.long_field()
    }

    /// `field` for the tags, lengths and values of more than one byte.
    fn long_field(&mut self) -> Result<Field> {
        let begin = self.pos;
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| Unsure)?;
        let wire_type = (tag & 7) as u8;
        if number == 0 || number > 0x1fff_ffff {
            return Err(Unsure);
        }
        let mut field = Field {
            begin,
            number,
            wire_type,
            start: self.pos,
            end: self.pos,
            value: 0,
        };
        match wire_type {
            VARINT => field.value = self.varint()?,
            FIXED64 => self.skip(8)?,
            FIXED32 => self.skip(4)?,
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| Unsure)?;
                if len > i32::MAX as usize {
                    return Err(Unsure);
                }
                field.start = self.pos;
                self.skip(len)?;
            }
            _ => return Err(Unsure),
        }
        field.end = self.pos;
        Ok(field)
    }
}

/// The bytes of `value`'s varint encoding.
pub fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value > 0x7f {
        value >>= 7;
        len += 1;
    }
    len
}

/// The tag and length of a length-delimited field `number`, appended to `out`.
pub fn put_len_header(out: &mut Vec<u8>, number: u32, payload_len: usize) {
    put_varint(out, u64::from(number << 3) | u64::from(LEN));
    put_varint(out, payload_len as u64);
}

/// Protobuf varint encoding of `value`, appended to `out`.
pub fn put_varint(out: &mut Vec<u8>, value: u64) {
    each_varint_byte(value, |byte| out.push(byte));
}

/// `value` as a varint at the start of `out`; returns its length.
fn varint_into(out: &mut [u8], value: u64) -> usize {
    let mut len = 0;
    each_varint_byte(value, |byte| {
        out[len] = byte;
        len += 1;
    });
    len
}

/// The one varint encoder: `emit` gets each byte in order.
#[inline(always)]
fn each_varint_byte(mut value: u64, mut emit: impl FnMut(u8)) {
    while value >= 0x80 {
        emit((value as u8) | 0x80);
        value >>= 7;
    }
    emit(value as u8);
}

/// The encoded tag and length of a length-delimited field, held by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LenHeader {
    encoded: [u8; 15],
    len: u8,
}

impl LenHeader {
    pub fn new(number: u32, payload_len: usize) -> LenHeader {
        let mut encoded = [0; 15];
        let tag = varint_into(&mut encoded, u64::from(number << 3) | u64::from(LEN));
        let len = tag + varint_into(&mut encoded[tag..], payload_len as u64);
        LenHeader {
            encoded,
            len: len as u8,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.encoded[..usize::from(self.len)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint_of(bytes: &[u8]) -> Result<u64> {
        Reader::new(bytes, 0, bytes.len()).varint()
    }

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(varint_of(&out), Ok(value));
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_unsure() {
        assert_eq!(varint_of(&[0x80]), Err(Unsure));
        assert_eq!(varint_of(&[0xff; 11]), Err(Unsure));
        let mut tenth_too_big = vec![0xff; 9];
        tenth_too_big.push(0x02);
        assert_eq!(varint_of(&tenth_too_big), Err(Unsure));
    }

    #[test]
    fn fields_report_payload_ranges() {
        let buf = [0x0a, 0x02, b'h', b'i', 0x10, 0x05];
        let mut reader = Reader::new(&buf, 0, buf.len());
        let first = reader.field().unwrap();
        assert_eq!((first.number, first.wire_type, first.start, first.end), (1, LEN, 2, 4));
        let second = reader.field().unwrap();
        assert_eq!((second.number, second.value), (2, 5));
        assert!(reader.done());
    }

    #[test]
    fn the_one_byte_fast_path_reads_what_the_general_one_does() {
        let mut next = crate::testing::random(0x2545_f491);
        let mut byte = || {
            let state = next();
            let common = [
                0x00, 0x01, 0x03, 0x05, 0x08, 0x09, 0x0a, 0x0d, 0x10, 0x12, 0x7f, 0x80, 0x81, 0x83,
            ];
            match state % 3 {
                0 => (state >> 8) as u8,
                _ => common[(state >> 8) as usize % common.len()],
            }
        };
        for _ in 0..300_000 {
            let buf: Vec<u8> = (0..12).map(|_| byte()).collect();
            let end = (buf[11] % 13) as usize;
            let (mut fast, mut general) = (Reader::new(&buf, 0, end), Reader::new(&buf, 0, end));
            let read = |field: Result<Field>| field.map(|f| (f.begin, f.number, f.wire_type, f.start, f.end, f.value));
            assert_eq!(read(fast.field()), read(general.long_field()), "{buf:?} to {end}");
            assert_eq!(fast.pos, general.pos);
        }
    }

    #[test]
    fn groups_zero_fields_and_overruns_are_unsure() {
        for buf in [&[0x0b][..], &[0x00, 0x00], &[0x0a, 0x05, b'x'], &[0x09, 0, 0]] {
            assert_eq!(Reader::new(buf, 0, buf.len()).field().err(), Some(Unsure));
        }
    }
}
