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
pub mod worker;

#[cfg(test)]
mod testing;

#[cfg(feature = "python")]
mod offload;
#[cfg(feature = "python")]
mod python;
#[cfg(feature = "python")]
mod stage;

/// A call's texts are many small allocations freed together when its request is done. In the collector
/// process, beside Python's and gRPC's heaps, glibc's malloc spent a quarter of the `genai` bench's CPU on
/// them (chunk coalescing, unlinking); mimalloc's per-thread pages do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
