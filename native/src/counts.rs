//! Items and resources of OTLP metrics and logs requests (data points, log records), counted as the
//! collector counts them once decoded: `Export*ServiceRequest.resource_*` (1) → `.scope_*` (2) → the
//! scope's items (2); a metric's data points are those of its one data field (gauge 5, sum 7, histogram 9,
//! exponential histogram 10, summary 11; `data_points` 1 in each).

use crate::wire::{Field, Reader, Result, Unsure, LEN};

const RESOURCES: u32 = 1;
const SCOPES: u32 = 2;
const ITEMS: u32 = 2;
const METRIC_DATA: [u32; 5] = [5, 7, 9, 10, 11];
const DATA_POINTS: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Metrics,
    Logs,
}

/// (items, resources) of a request of `signal`. A metric with two kinds of data is `Unsure` (a decoder
/// keeps the last).
pub fn count(buf: &[u8], signal: Signal) -> Result<(u64, u64)> {
    let (mut items, mut resources) = (0, 0);
    each(buf, 0, buf.len(), RESOURCES, |resource| {
        resources += 1;
        each(buf, resource.start, resource.end, SCOPES, |scope| {
            each(buf, scope.start, scope.end, ITEMS, |item| {
                items += match signal {
                    Signal::Logs => 1,
                    Signal::Metrics => data_points(buf, item)?,
                };
                Ok(())
            })
        })
    })?;
    Ok((items, resources))
}

fn data_points(buf: &[u8], metric: Field) -> Result<u64> {
    let (mut kind, mut points) = (None, 0);
    let mut reader = Reader::new(buf, metric.start, metric.end);
    while !reader.done() {
        let field = reader.field()?;
        if field.wire_type != LEN || !METRIC_DATA.contains(&field.number) {
            continue;
        }
        if kind.replace(field.number).is_some_and(|seen| seen != field.number) {
            return Err(Unsure);
        }
        each(buf, field.start, field.end, DATA_POINTS, |_| {
            points += 1;
            Ok(())
        })?;
    }
    Ok(points)
}

/// Calls `visit` with each length-delimited field `number` of the message in `buf[start..end]`.
fn each(buf: &[u8], start: usize, end: usize, number: u32, mut visit: impl FnMut(Field) -> Result<()>) -> Result<()> {
    let mut reader = Reader::new(buf, start, end);
    while !reader.done() {
        let field = reader.field()?;
        if field.number == number && field.wire_type == LEN {
            visit(field)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::message;

    fn request(items: &[Vec<u8>]) -> Vec<u8> {
        message(RESOURCES, &[message(SCOPES, items)])
    }

    #[test]
    fn counts_log_records_and_resources() {
        let buf = [
            request(&[message(ITEMS, &[]), message(ITEMS, &[])]),
            request(&[message(ITEMS, &[])]),
        ]
        .concat();
        assert_eq!(count(&buf, Signal::Logs), Ok((3, 2)));
    }

    #[test]
    fn counts_the_data_points_of_each_metric() {
        let gauge = message(5, &[message(DATA_POINTS, &[]), message(DATA_POINTS, &[])]);
        let summary = message(11, &[message(DATA_POINTS, &[])]);
        let buf = request(&[
            message(ITEMS, std::slice::from_ref(&gauge)),
            message(ITEMS, std::slice::from_ref(&summary)),
        ]);
        assert_eq!(count(&buf, Signal::Metrics), Ok((3, 1)));
        let both = request(&[message(ITEMS, &[gauge, summary])]);
        assert_eq!(count(&both, Signal::Metrics), Err(Unsure));
    }

    #[test]
    fn never_panics_on_truncations() {
        let buf = request(&[message(ITEMS, &[message(7, &[message(DATA_POINTS, &[])])])]);
        for end in 0..buf.len() {
            let _ = count(&buf[..end], Signal::Metrics);
            let _ = count(&buf[..end], Signal::Logs);
        }
    }
}
