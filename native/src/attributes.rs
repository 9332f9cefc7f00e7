//! Span attributes as `collector/attributes.py` encodes them, and money as `pricing_catalog/compiled.py`
//! turns it into attribute values: the same bytes and the same doubles.

use crate::wire::{put_len_header, put_varint, varint_len};

const SPAN_ATTRIBUTES: u32 = 9;
const KEY: u32 = 1; // KeyValue.key, then .value
const VALUE: u32 = 2;
const STRING_VALUE: u32 = 1; // AnyValue.string_value, .bytes_value
const BYTES_VALUE: u32 = 7;
const PICO: i128 = 1_000_000_000_000;

/// A plain attribute value (compound values are never written by the GenAI stage).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
}

fn any_value_len(value: Scalar) -> usize {
    match value {
        Scalar::Str(text) => 1 + varint_len(text.len() as u64) + text.len(),
        Scalar::Bytes(bytes) => 1 + varint_len(bytes.len() as u64) + bytes.len(),
        Scalar::Bool(_) => 2,
        Scalar::Int(number) => 1 + varint_len(number as u64),
        Scalar::Double(_) => 9,
    }
}

/// Appends one span attribute field (tag included) to `out`.
pub fn encode(out: &mut Vec<u8>, key: &str, value: Scalar) {
    let value_len = any_value_len(value);
    let body = 1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(value_len as u64) + value_len;
    put_len_header(out, SPAN_ATTRIBUTES, body);
    put_len_header(out, KEY, key.len());
    out.extend_from_slice(key.as_bytes());
    put_len_header(out, VALUE, value_len);
    match value {
        Scalar::Str(text) => {
            put_len_header(out, STRING_VALUE, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Scalar::Bytes(bytes) => {
            put_len_header(out, BYTES_VALUE, bytes.len());
            out.extend_from_slice(bytes);
        }
        Scalar::Bool(flag) => out.extend_from_slice(&[0x10, flag as u8]),
        Scalar::Int(number) => {
            out.push(0x18);
            put_varint(out, number as u64);
        }
        Scalar::Double(number) => {
            out.push(0x21);
            out.extend_from_slice(&number.to_le_bytes());
        }
    }
}

/// `to_double`: pico-units as currency units, a double rounded to 10 decimal places (Python's
/// `round(pico / 10**12, 10)`: the correctly rounded quotient, then rounded half-even on its exact value).
pub fn to_double(pico: i128) -> f64 {
    // Below 10^15 pico-units a double's error is under a pico-unit: unless the value lies halfway between two
    // 10-place decimals, rounding the quotient to 10 places is rounding the integer to hundreds.
    let magnitude = pico.unsigned_abs();
    if magnitude < 1_000_000_000_000_000 && magnitude % 100 != 50 {
        let rounded = ((magnitude + 50) / 100) as f64 / 1e10;
        return if pico < 0 { -rounded } else { rounded };
    }
    to_double_by_text(pico)
}

/// `to_double` through the decimal text: the quotient correctly rounded, then rounded to 10 places.
fn to_double_by_text(pico: i128) -> f64 {
    let magnitude = pico.unsigned_abs();
    let sign = if pico < 0 { "-" } else { "" };
    let quotient: f64 = format!("{sign}{}.{:012}", magnitude / PICO as u128, magnitude % PICO as u128)
        .parse()
        .expect("a decimal number");
    format!("{quotient:.10}").parse().expect("a decimal number")
}

/// The shortest decimal digits that read back as `value` (finite), as Python's `repr` finds them: (negative,
/// digits, exponent of the first digit).
fn shortest_digits(value: f64) -> (bool, String, i32) {
    let text = format!("{value:e}");
    let (mantissa, exponent) = text.split_once('e').expect("an exponent");
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (
        mantissa.starts_with('-'),
        digits,
        exponent.parse().expect("an integer exponent"),
    )
}

/// Python's `repr` (and `str`) of a double: the shortest digits, in positional notation when the decimal
/// point falls within 16 digits of them and not more than 4 places before them, else in exponent notation.
pub fn python_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let (negative, digits, exponent) = shortest_digits(value);
    let sign = if negative { "-" } else { "" };
    let point = exponent + 1; // digits before the decimal point
    if point <= -4 || point > 16 {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exponent_sign}{:02}", exponent.abs());
    }
    if point <= 0 {
        return format!("{sign}0.{}{digits}", "0".repeat((-point) as usize));
    }
    let point = point as usize;
    if point >= digits.len() {
        return format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()));
    }
    format!("{sign}{}.{}", &digits[..point], &digits[point..])
}

/// `to_pico(Decimal(repr(value)))`: a reported cost (the shortest decimal that is the double) in integer
/// pico-units, rounded half-even; None when it is not finite or too large to be a cost.
pub fn reported_pico(value: f64) -> Option<i128> {
    if !value.is_finite() {
        return None;
    }
    let (negative, digits, exponent) = shortest_digits(value);
    let coefficient: i128 = digits.parse().ok()?;
    // value = coefficient × 10^(exponent − (digits − 1)); in pico-units, × 10^12
    let shift = exponent - (digits.len() as i32 - 1) + 12;
    let magnitude = if shift >= 0 {
        if shift > 20 {
            return None;
        }
        coefficient.checked_mul(10i128.pow(shift as u32))?
    } else if shift < -30 {
        0
    } else {
        let divisor = 10i128.pow((-shift) as u32);
        let (whole, rest) = (coefficient / divisor, coefficient % divisor);
        let twice = rest * 2;
        whole + i128::from(twice > divisor || (twice == divisor && whole % 2 == 1))
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// Python's `integer > double`, exactly.
pub fn exceeds(integer: i128, double: f64) -> bool {
    if double.is_nan() {
        return false;
    }
    let floor = double.floor();
    if floor >= 1.0e38 {
        return false;
    }
    if floor <= -1.0e38 {
        return true;
    }
    integer > floor as i128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_round_as_python_does() {
        assert_eq!(to_double(488_281_250), 0.000_488_281_2); // a tie at the 11th decimal: half-even
        assert_eq!(to_double(1_464_843_750), 0.001_464_843_8);
        assert_eq!(to_double(2_500_000), 0.000_002_5);
        assert_eq!(to_double(-1), -0.0);
        assert_eq!(to_double(123_456_789_012_345_678_901), 123_456_789.012_345_67);
        assert_eq!(to_double(-149), -0.000_000_000_1);
        assert_eq!(to_double(11_700_000_000), 0.0117);
        // as Python gives it
    }

    #[test]
    fn the_fast_rounding_agrees_with_the_decimal_text() {
        let mut next = crate::testing::random(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let state = next();
            let pico = i128::from(state % 1_000_000_000_000_000) * if state & 1 == 0 { 1 } else { -1 };
            for value in [pico, pico / 1_000_000, pico - pico % 100 + 49, pico - pico % 100 + 51] {
                assert_eq!(
                    to_double(value).to_bits(),
                    to_double_by_text(value).to_bits(),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn reported_costs_become_pico_units_of_their_shortest_decimal() {
        assert_eq!(reported_pico(0.1), Some(100_000_000_000));
        assert_eq!(reported_pico(1.5e-13), Some(0)); // 0.15 pico: half-even down
        assert_eq!(reported_pico(2.5e-12), Some(2));
        assert_eq!(reported_pico(3.5e-12), Some(4));
        assert_eq!(reported_pico(-0.25), Some(-250_000_000_000));
        assert_eq!(reported_pico(f64::NAN), None);
        assert_eq!(reported_pico(1e300), None);
    }

    #[test]
    fn doubles_read_as_python_writes_them() {
        for (value, text) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (-2.5e300, "-2.5e+300"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(python_repr(value), text);
        }
    }

    #[test]
    fn integers_compare_with_doubles_exactly() {
        assert!(exceeds(3, 2.5));
        assert!(!exceeds(2, 2.0));
        assert!(exceeds(9_007_199_254_740_993, 9_007_199_254_740_992.0));
        assert!(!exceeds(5, f64::NAN));
        assert!(!exceeds(i128::MAX, f64::INFINITY));
    }

    #[test]
    fn attributes_encode_as_the_python_side_does() {
        let mut out = Vec::new();
        encode(&mut out, "k", Scalar::Int(-1));
        assert_eq!(out[..8], [0x4a, 16, 0x0a, 1, b'k', 0x12, 11, 0x18]);
        out.clear();
        encode(&mut out, "k", Scalar::Str("v"));
        assert_eq!(out, [0x4a, 8, 0x0a, 1, b'k', 0x12, 3, 0x0a, 1, b'v']);
    }
}
