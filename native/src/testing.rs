//! Protobuf builders and a random number source for the unit tests.

use crate::wire::put_varint;

/// A length-delimited field `number` holding the concatenated `parts`.
pub fn message(number: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    let payload: Vec<u8> = parts.concat();
    let mut out = Vec::new();
    put_varint(&mut out, u64::from(number << 3 | 2));
    put_varint(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    out
}

/// A string field.
pub fn text(number: u32, value: &str) -> Vec<u8> {
    message(number, &[value.as_bytes().to_vec()])
}

/// Xorshift64: reproducible pseudo-random numbers from a seed (not zero).
pub fn random(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
