//! The ledger rows of the stage's calls (`collector/storage/rows.py` `CallColumns.add`), as one Arrow struct
//! array of the `llm_calls` columns, handed to Python through the Arrow C data interface: one row per
//! billable call, none for wrappers and duplicates.

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, StructArray};
use arrow_schema::Field;

use crate::attributes::reported_pico;
use crate::genai::{Call, Stage, Text};
use crate::traces::Range;

/// What a request's rows name besides its calls, taken from the stage when it priced them: the rows are
/// made later, on the ledger's writer thread, while the stage reads the next request.
pub struct Labels {
    pub currency: String,
    pub snapshot: String,
    /// Each call's dialect.
    pub dialects: Vec<Text>,
    /// (price id, its provider and model ids) of the prices the calls used.
    pub prices: Vec<(usize, String, String)>,
}

impl Labels {
    pub fn of(stage: &Stage, calls: &[Call]) -> Labels {
        let mut prices: Vec<(usize, String, String)> = Vec::new();
        for id in calls.iter().filter_map(|call| call.cost.as_ref()?.price) {
            if !prices.iter().any(|(known, _, _)| *known == id) {
                let price = stage.price(id);
                prices.push((id, price.provider_id.clone(), price.model_id.clone()));
            }
        }
        Labels {
            currency: stage.settings.currency.clone(),
            snapshot: stage.settings.snapshot.clone(),
            dialects: calls.iter().map(|call| stage.plan(call.plan).dialect.clone()).collect(),
            prices,
        }
    }

    /// The provider and model ids of a price the calls used (`of` took each).
    fn price(&self, id: usize) -> Option<(&str, &str)> {
        let (_, provider, model) = self.prices.iter().find(|(known, _, _)| *known == id)?;
        Some((provider, model))
    }
}

/// The text columns after start and duration, then the counts and costs, as `CallColumns.names` orders them.
const TEXT_COLUMNS: usize = 15;
const INTEGER_COLUMNS: usize = 12; // five token counts, the cost, its five parts, the reported cost

/// The bytes of `range` as lowercase hex, in `text` (cleared first).
fn hex<'t>(text: &'t mut String, buf: &[u8], range: Range) -> &'t str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.clear();
    for &byte in &buf[range.0..range.1] {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// A text column for `rows` values of about `width` bytes.
fn text_builder(rows: usize, width: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * width)
}

/// The number of columns of the rows with this many dimension columns.
pub fn column_count(dimensions: usize) -> usize {
    2 + TEXT_COLUMNS + INTEGER_COLUMNS + dimensions + 2
}

/// The columns of the billable calls' rows, named `names` (`CallColumns.names`, [`column_count`] of them), with
/// a dimension column for each of `dimensions` (the index of the stage's attribution dimension it is, if any);
/// None when a count or an amount does not fit the ledger's 64-bit columns (Python then makes the rows).
pub fn ledger_rows(
    labels: &Labels,
    buf: &[u8],
    calls: &[Call],
    names: &[String],
    dimensions: &[Option<usize>],
) -> Option<StructArray> {
    let rows: Vec<(&Call, &Text)> = calls
        .iter()
        .zip(&labels.dialects)
        .filter(|(call, _)| call.billable && call.cost.is_some())
        .collect();
    let mut start = Int64Builder::with_capacity(rows.len());
    let mut duration = Float64Builder::with_capacity(rows.len());
    let mut texts: Vec<StringBuilder> = (0..TEXT_COLUMNS).map(|_| text_builder(rows.len(), 24)).collect();
    let mut integers: Vec<Int64Builder> = (0..INTEGER_COLUMNS)
        .map(|_| Int64Builder::with_capacity(rows.len()))
        .collect();
    let mut tail: Vec<StringBuilder> = (0..dimensions.len() + 2)
        .map(|_| text_builder(rows.len(), 16))
        .collect();
    let (mut trace_id, mut span_id) = (String::new(), String::new());
    for (call, dialect) in rows {
        let cost = call.cost.as_ref().expect("billable calls are priced");
        let parts = &call.parts;
        start.append_value(i64::try_from(parts.start_time / 1000).ok()?);
        let elapsed = i128::from(parts.end_time) - i128::from(parts.start_time);
        duration.append_value(elapsed as f64 / 1e6);
        let price = match cost.price {
            Some(id) => Some(labels.price(id)?),
            None => None,
        };
        let row_texts: [Option<&str>; TEXT_COLUMNS] = [
            Some(hex(&mut trace_id, buf, parts.trace_id)),
            Some(hex(&mut span_id, buf, parts.span_id)),
            call.service.as_deref(),
            call.provider(),
            call.model(),
            call.text[2].as_deref(),
            call.text[1].as_deref(),
            Some(&call.tier),
            Some(dialect),
            Some(&labels.currency),
            Some(cost.status),
            cost.amount.map(|_| cost.source),
            price.map(|(provider, _)| provider),
            price.map(|(_, model)| model),
            Some(if cost.priced_at_snapshot { &labels.snapshot } else { "" }),
        ];
        for (builder, value) in texts.iter_mut().zip(row_texts) {
            builder.append_option(value);
        }
        let part = |index: usize| cost.breakdown.map(|parts| parts[index]);
        let row_integers: [Option<i128>; INTEGER_COLUMNS] = [
            call.input.map(i128::from),
            call.output.map(i128::from),
            Some(i128::from(call.counts[0])),
            Some(i128::from(call.counts[1])),
            Some(i128::from(call.counts[2])),
            cost.amount,
            part(1),
            part(2),
            part(3),
            part(4),
            part(5),
            cost.reported.and_then(reported_pico),
        ];
        for (builder, value) in integers.iter_mut().zip(row_integers) {
            builder.append_option(value.map(i64::try_from).transpose().ok()?);
        }
        let values = call.attribution.as_deref().unwrap_or_default();
        for (builder, dimension) in tail.iter_mut().zip(dimensions) {
            builder.append_option(dimension.and_then(|index| values.get(index)?.as_deref()));
        }
        let last = tail.len();
        tail[last - 2].append_option(call.text[4].as_deref());
        tail[last - 1].append_option(call.reservation.as_deref());
    }
    let mut columns: Vec<ArrayRef> = vec![Arc::new(start.finish()), Arc::new(duration.finish())];
    columns.extend(texts.iter_mut().map(|builder| Arc::new(builder.finish()) as ArrayRef));
    columns.extend(
        integers
            .iter_mut()
            .map(|builder| Arc::new(builder.finish()) as ArrayRef),
    );
    columns.extend(tail.iter_mut().map(|builder| Arc::new(builder.finish()) as ArrayRef));
    let fields: Vec<(Arc<Field>, ArrayRef)> = names
        .iter()
        .zip(columns)
        .map(|(name, column)| (Arc::new(Field::new(name, column.data_type().clone(), true)), column))
        .collect();
    Some(StructArray::from(fields))
}
