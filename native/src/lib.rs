//! The native hot path of the GenAI Cost Collector (`collector._native`): OTLP trace requests checked,
//! counted, searched and rewritten on their wire bytes, so spans no processor reads never become Python
//! objects. `collector/native.py` is the Python side; the pure-Python path is the reference.

pub mod attributes;
pub mod attribution;
pub mod budget;
pub mod counts;
pub mod genai;
pub mod ledger;
pub mod redact;
pub mod rules;
pub mod schema;
pub mod traces;
pub mod wire;

#[cfg(test)]
mod testing;

#[cfg(feature = "python")]
mod python;
#[cfg(feature = "python")]
mod stage;
