//! `genai_attribution` in the GenAI stage: each dimension takes the first of its sources (a request header,
//! a resource attribute, a span attribute) that has a value, else its default, and values past a
//! dimension's cardinality limit become `__other__`. `processors/genai_attribution.py` is the reference.
//!
//! The values are read with the call ([`Stage::attribute`], pure) and capped once duplicates are known, in
//! the request's order ([`CardinalityLimit`]).

use rustc_hash::{FxHashMap, FxHashSet};

use crate::attributes::python_repr;
use crate::genai::{value_at, Call, Decline, Stage};
use crate::traces::{self, Range, Value};

/// Where a dimension's value may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The request header at this index of the headers the stage is given with each request.
    Header(usize),
    Resource(Vec<u8>),
    /// The span attribute at this index of a plan's `attribution_positions`.
    Span(usize),
}

/// One dimension: the attribute it is written to, its sources in order, and its default.
#[derive(Debug, Clone)]
pub struct Dimension {
    pub attribute: String,
    pub sources: Vec<Source>,
    pub default: Option<String>,
}

pub const OVERFLOW: &str = "__other__";

/// `collector.cardinality.CardinalityLimit`: the first `limit` distinct values pass, later new ones are
/// [`OVERFLOW`].
#[derive(Debug, Clone, Default)]
pub struct CardinalityLimit {
    limit: usize,
    seen: FxHashSet<String>,
}

impl CardinalityLimit {
    pub fn new(limit: usize) -> Self {
        CardinalityLimit {
            limit,
            seen: FxHashSet::default(),
        }
    }

    pub fn cap(&mut self, value: String) -> String {
        if self.seen.contains(&value) {
            return value;
        }
        if self.seen.len() >= self.limit {
            return OVERFLOW.to_owned();
        }
        self.seen.insert(value.clone());
        value
    }
}

/// The attributes of the resources of one request, each read once: (key, value) in order.
#[derive(Debug, Default)]
pub struct Resources {
    read: FxHashMap<Option<Range>, Vec<(Range, Option<Range>)>>,
}

impl Resources {
    /// The value of the resource's last attribute with `key` (as a dict built from them in order holds it),
    /// or its first when not `last`.
    pub fn value(&mut self, buf: &[u8], resource: Option<Range>, key: &[u8], last: bool) -> Result<Value, Decline> {
        let attributes = match self.read.entry(resource) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let read = match resource {
                    None => Vec::new(),
                    Some(range) => traces::read_attributes(buf, range).map_err(|_| Decline)?,
                };
                entry.insert(read)
            }
        };
        let named = |&&((start, end), _): &&(Range, Option<Range>)| &buf[start..end] == key;
        let found = if last {
            attributes.iter().rev().find(named)
        } else {
            attributes.iter().find(named)
        };
        match found {
            None => Ok(Value::Unset),
            Some((_, payload)) => traces::value_of(buf, *payload).map_err(|_| Decline),
        }
    }
}

/// `rows.as_label`: text as it is, None for a missing value, `str(value)` of a number or a boolean; bytes,
/// arrays and maps are declined.
pub fn label(buf: &[u8], value: Value) -> Result<Option<String>, Decline> {
    match value {
        Value::Str((start, end)) => Ok(Some(
            std::str::from_utf8(&buf[start..end]).map_err(|_| Decline)?.to_owned(),
        )),
        other => value_text(buf, other),
    }
}

/// `str(value)` of an attribute value, None for a missing or empty one (`value in (None, "")`); kinds whose
/// Python text is not reproduced here (bytes, arrays, maps) are declined.
pub fn value_text(buf: &[u8], value: Value) -> Result<Option<String>, Decline> {
    Ok(match value {
        Value::Unset => None,
        Value::Str((start, end)) if start == end => None,
        Value::Str((start, end)) => Some(std::str::from_utf8(&buf[start..end]).map_err(|_| Decline)?.to_owned()),
        Value::Bool(flag) => Some(if flag { "True" } else { "False" }.to_owned()),
        Value::Int(number) => Some(number.to_string()),
        Value::Double(number) => Some(python_repr(number)),
        Value::Bytes(_) | Value::Compound(_) => return Err(Decline),
    })
}

impl Stage {
    /// The uncapped value of each dimension for a call (`GenAIAttribution.raw_values`).
    pub(crate) fn attribute(
        &self,
        buf: &[u8],
        call: &Call,
        resource: Option<Range>,
        resources: &mut Resources,
        headers: &[Option<String>],
    ) -> Result<Vec<Option<String>>, Decline> {
        let plan = self.plan(call.plan);
        let dimensions = self.settings.attribution.as_deref().unwrap_or_default();
        let mut values = Vec::with_capacity(dimensions.len());
        for dimension in dimensions {
            let mut found = None;
            for source in &dimension.sources {
                found = match source {
                    Source::Header(index) => headers.get(*index).cloned().flatten().filter(|value| !value.is_empty()),
                    Source::Resource(key) => value_text(buf, resources.value(buf, resource, key, true)?)?,
                    Source::Span(index) => match plan.attribution_positions.get(*index).copied().flatten() {
                        None => None,
                        Some(position) => value_text(buf, value_at(&call.parts, position).ok_or(Decline)?)?,
                    },
                };
                if found.is_some() {
                    break;
                }
            }
            values.push(found.or_else(|| dimension.default.clone()));
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_limit_are_other() {
        let mut limit = CardinalityLimit::new(2);
        assert_eq!(limit.cap("a".into()), "a");
        assert_eq!(limit.cap("b".into()), "b");
        assert_eq!(limit.cap("c".into()), OVERFLOW);
        assert_eq!(limit.cap("a".into()), "a");
    }

    #[test]
    fn values_read_as_python_writes_them() {
        assert_eq!(value_text(b"", Value::Int(-7)), Ok(Some("-7".to_owned())));
        assert_eq!(value_text(b"", Value::Bool(true)), Ok(Some("True".to_owned())));
        assert_eq!(value_text(b"", Value::Double(1e16)), Ok(Some("1e+16".to_owned())));
        assert_eq!(value_text(b"x", Value::Str((0, 0))), Ok(None));
        assert_eq!(value_text(b"x", Value::Bytes((0, 1))), Err(Decline));
    }
}
