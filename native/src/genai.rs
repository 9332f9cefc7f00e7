//! The fused GenAI stage: `genai_normalize` then `genai_cost` over the GenAI spans of a trace request, on its
//! wire bytes, for every dialect but LiteLLM (whose rule parses Python literals): the tables, and the
//! dialect rules of `rules.rs`.
//!
//! Python stays the source of every table and decision that is not per call: it computes the plan of each
//! span shape (scope and attribute keys), normalises each distinct provider, operation, tier and host text,
//! resolves each (provider, model, tier, day) to a compiled price vector, and says which usage keys a price
//! reads from a given usage shape. The stage asks for what it has not seen ([`Miss`]) and caches the answers.
//! Per call it does what `processors/span_reader.py`, `genai_normalize.py` and `genai_cost.py` do, in the
//! same order: read and convert the fields, resolve the provider, mark wrappers and duplicates, make the
//! input cache-inclusive, write the canonical attributes, price the usage in integer pico-units and write
//! the cost attributes. The Python processors are the reference: `tests/test_native.py` holds the two to
//! the same output.
//!
//! A run is in three phases, and a fourth when the stage attributes. [`Stage::read`] is pure: it reads every
//! call it can (with its attribution values and what its ledger row needs beyond the call), names the spans
//! only Python reads (their calls are read and written by the processors' own code), or says what it is
//! missing, or declines the whole request, before any state changes. [`dedupe`] then updates the
//! duplicate memory over the stage's calls and Python's, in the request's order, and [`Stage::write`]
//! prices and encodes the stage's calls. Attribution values are then capped, again in the request's order
//! over both kinds of call, and written ([`Stage::write_attribution`]). `ledger.rs` makes the rows.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::attributes::{encode, exceeds, python_repr, reported_pico, to_double, Scalar};
use crate::attribution::{label, Dimension, Resources};
use crate::rules::Rule;
use crate::traces::{Range, Selected, SpanParts, Value};

/// A text calls share (a normalised provider, a model, a tier, a dialect): cloned without copying.
pub type Text = Arc<str>;

/// The tier of a call that names none.
pub fn standard_tier() -> Text {
    static STANDARD: std::sync::LazyLock<Text> = std::sync::LazyLock::new(|| Text::from("standard"));
    STANDARD.clone()
}

/// The canonical fields a plan reads, in `FIELDS` order (the names `processors/genai_call.py` uses).
pub const FIELDS: [&str; 15] = [
    "provider",
    "operation",
    "request_model",
    "response_model",
    "response_id",
    "input",
    "output",
    "cache_read",
    "cache_write",
    "reasoning",
    "input_audio",
    "output_audio",
    "total",
    "tier",
    "reported_cost",
];
pub(crate) const PROVIDER: usize = 0;
pub(crate) const OPERATION: usize = 1;
pub(crate) const REQUEST_MODEL: usize = 2;
pub(crate) const RESPONSE_MODEL: usize = 3;
pub(crate) const RESPONSE_ID: usize = 4;
const FIRST_TOKEN_FIELD: usize = 5; // input … total
const TOTAL: usize = 12;
const TIER: usize = 13;
const REPORTED_COST: usize = 14;
pub(crate) const MAX_TOKENS: i64 = 1_000_000_000_000;

/// The genai-prices usage keys a call reports, in `usage_of`'s order; a price's other units count zero.
pub const USAGE_KEYS: [&str; 7] = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_reasoning_tokens",
    "input_audio_tokens",
    "output_audio_tokens",
];

/// Text normalisations Python does once per distinct value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    Provider,
    Operation,
    Tier,
    Host,
    ModelProvider,
}

/// What Python decided of one span shape.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub dialect: Text,
    /// (field index into `FIELDS`, attribute position), in the reader's order.
    pub fields: Vec<(usize, usize)>,
    /// Position of `telemetry.sdk.name` when it may say the span is OpenLIT's (then Python reads it).
    pub openlit_sdk: Option<usize>,
    /// Position of the best server address key.
    pub server: Option<usize>,
    /// The span aggregates its children's usage (a wrapper, whatever its operation).
    pub aggregated: bool,
    /// Position of `traceloop.span.kind`.
    pub traceloop_kind: Option<usize>,
    /// Whether the dialect's input tokens exclude cached ones, by provider.
    pub excludes_cache: ExcludesCache,
    /// The dialect's own rule, and the positions of the attributes it reads (`RULE_KEYS` order).
    pub rule: Rule,
    pub rule_positions: Vec<Option<usize>>,
    /// Positions of the span attributes attribution reads (`Source::Span` indexes them).
    pub attribution_positions: Vec<Option<usize>>,
    /// Position of the budget reservation attribute the ledger records.
    pub reservation: Option<usize>,
    /// Position of each canonical attribute (`Names::canonical` order) on the span.
    pub canonical: Vec<Option<usize>>,
    /// Positions dropped with `keep_original: false`.
    pub dropped: Vec<usize>,
}

/// Whether a dialect's input tokens exclude the cached ones (`input_excludes_cache`): for most providers,
/// and for those named apart.
#[derive(Debug, Clone, Default)]
pub struct ExcludesCache {
    pub otherwise: bool,
    pub providers: Vec<(String, bool)>,
}

impl ExcludesCache {
    fn of(&self, provider: Option<&str>) -> bool {
        provider
            .and_then(|provider| self.providers.iter().find(|(name, _)| name == provider))
            .map_or(self.otherwise, |(_, excludes)| *excludes)
    }
}

/// The shape of a plan's answer: read natively, not a GenAI span, or only Python reads it.
#[derive(Debug, Clone)]
pub enum Shape {
    Native(usize),
    NotGenAI,
    Python,
}

/// Integer pico-units per unit, flat or tiered by the call's input tokens: (threshold, rate) most
/// specific first.
#[derive(Debug, Clone)]
pub enum Rate {
    Flat(i128),
    Tiered(i128, Vec<(i64, i128)>),
}

/// One compiled price (`CompiledPrice` with its `PriceMatch`), with exact integer rates.
#[derive(Debug, Clone)]
pub struct Price {
    pub model_id: String,
    pub provider_id: String,
    pub tier: String,
    /// (usage key index or `None` for a unit a call never reports, rate, breakdown index), summation order;
    /// `requests` counts one.
    pub units: Vec<(Unit, Rate, usize)>,
    /// (unit, its usage key, its priced descendants), most specific first.
    pub leaf_order: Vec<(Unit, String, Vec<Unit>)>,
    pub has_tiers: bool,
    /// The price has a cache-read unit (cached tokens would be cheaper).
    pub has_cache_read: bool,
}

/// A priced unit: a usage key a call reports, `requests`, or another key (always zero here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Usage(usize),
    Requests,
    Other(usize),
}

/// The price that applies to a call: a compiled price, no price (the reason), or Python must price it.
#[derive(Debug, Clone)]
pub enum Priced {
    Price(usize),
    NoPrice(Arc<str>),
    Python,
}

/// Python's answer for one model's (provider, tier, day of the span's start).
#[derive(Debug)]
struct PriceAnswer {
    provider: Option<String>,
    tier: String,
    day: u64,
    priced: Priced,
}

/// What the stage must ask Python before it can read a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Miss {
    Shape {
        scope: String,
        keys: Vec<String>,
    },
    Text {
        kind: TextKind,
        text: String,
    },
    Price {
        provider: Option<String>,
        model: String,
        tier: String,
        start: u64,
    },
    /// Which usage keys a price reads from a usage with these keys present and these positive (bit masks
    /// over `USAGE_KEYS`): `Ok(mask)` or the ambiguity genai-prices reports.
    UsagePlan {
        price: usize,
        present: u8,
        positive: u8,
    },
}

/// Attribute names, all from the Python side.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub dialect: String,
    pub original_prefix: String,
    /// (key, field index) of the identity attributes then the usage attributes, as normalize writes them.
    pub canonical: Vec<(String, usize)>,
    pub cost_status: String,
    pub cost_currency: String,
    pub cost_tier: String,
    pub cost_source: String,
    pub cost_model: String,
    pub cost_provider: String,
    pub cost_snapshot: String,
    pub cost_amount: String,
    pub cost_compat: String,
    /// input, output, cache_read, cache_write, other
    pub cost_breakdown: Vec<String>,
    pub cost_reported: String,
    pub cost_mismatch: String,
    pub cost_reason: String,
}

/// The tables of the dialects and the processors' settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub names: Names,
    pub wrapper_operations: FxHashSet<String>,
    pub frameworks: FxHashSet<String>,
    /// Providers the server address may re-derive (`None` included).
    pub host_derived: FxHashSet<Option<Text>>,
    pub traceloop_wrappers: FxHashSet<String>,
    pub optional_counts: Vec<usize>,
    pub keep_original: bool,
    pub prefer_reported: bool,
    pub tolerance: f64,
    pub openlit_compat: bool,
    pub currency: String,
    pub snapshot: String,
    /// The dimensions of `genai_attribution`, when the stage applies it too.
    pub attribution: Option<Vec<Dimension>>,
}

/// A call's cost, as `genai_cost.CostResult` holds it (the exchange rate is always none here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cost {
    pub status: &'static str,
    pub amount: Option<i128>,
    /// total, input, output, cache_read, cache_write, other
    pub breakdown: Option<[i128; 6]>,
    pub source: &'static str,
    pub price: Option<usize>,
    pub reported: Option<f64>,
    pub mismatch: Option<bool>,
    pub reason: String,
    /// The call was priced against the catalog (its snapshot is recorded).
    pub priced_at_snapshot: bool,
}

/// A canonical attribute's value as the call has it, before it is written.
#[derive(Clone, Copy)]
enum Wanted<'t> {
    Text(&'t str),
    Count(i64),
}

impl Wanted<'_> {
    fn scalar(&self) -> Scalar<'_> {
        match *self {
            Wanted::Text(text) => Scalar::Str(text),
            Wanted::Count(number) => Scalar::Int(number),
        }
    }
}

/// A new value of a canonical attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Canonical {
    Str(String),
    Int(i64),
}

/// One GenAI call read from a span, and, after [`Stage::write`], what changed on it.
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub span: Range,
    pub parts: SpanParts,
    pub plan: usize,
    pub text: [Option<Text>; 5], // provider, operation, request_model, response_model, response_id
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub counts: [i64; 5], // cache_read, cache_write, reasoning, input_audio, output_audio
    pub total: Option<i64>,
    pub tier: Text,
    pub reported: Option<f64>,
    pub billable: bool,
    pub skip_reason: &'static str,
    pub usage_error: String,
    pub priced: Option<Priced>,
    pub cost: Option<Cost>,
    /// (position, new value) of canonical attributes updated in place.
    pub updated: Vec<(usize, Canonical)>,
    pub dropped: Vec<usize>,
    /// Encoded attributes appended to the span.
    pub appended: Vec<u8>,
    /// Each dimension's value (read, then capped once duplicates are known), when the stage attributes.
    pub attribution: Option<Vec<Option<String>>>,
    /// The ledger's `service` (the resource's `service.name`) and `reservation` of a billable call.
    pub service: Option<String>,
    pub reservation: Option<String>,
}

impl Call {
    pub fn provider(&self) -> Option<&str> {
        self.text[PROVIDER].as_deref()
    }

    /// The model to price: the response model when it is not empty, else the request model.
    pub fn model(&self) -> Option<&str> {
        self.text[RESPONSE_MODEL]
            .as_deref()
            .filter(|model| !model.is_empty())
            .or(self.text[REQUEST_MODEL].as_deref())
    }

    fn has_usage(&self) -> bool {
        self.input.is_some() || self.output.is_some()
    }

    /// genai-prices usage counts by `USAGE_KEYS` index, with the present and positive masks.
    fn usage(&self) -> ([i64; 7], u8, u8) {
        let counts = [
            self.input.unwrap_or(0),
            self.output.unwrap_or(0),
            self.counts[0],
            self.counts[1],
            self.counts[2],
            self.counts[3],
            self.counts[4],
        ];
        let mut present = u8::from(self.input.is_some()) | u8::from(self.output.is_some()) << 1;
        for (index, count) in counts.iter().enumerate().skip(2) {
            if *count != 0 {
                present |= 1 << index;
            }
        }
        let positive = (0..7)
            .filter(|index| counts[*index] > 0)
            .fold(0u8, |mask, index| mask | 1 << index);
        (counts, present, positive)
    }
}

/// Keys seen in the last `window` seconds (at most `max_entries`), each with the first value given:
/// `genai_normalize.RecentKeys`, with keys and values as bytes.
#[derive(Debug, Clone)]
pub struct RecentKeys {
    window: f64,
    max_entries: usize,
    /// key → first value; each key is stored once, shared with its place in `expiry`
    first: FxHashMap<Arc<[u8]>, Box<[u8]>>,
    expiry: VecDeque<(f64, Arc<[u8]>)>,
}

impl RecentKeys {
    pub fn new(window: f64, max_entries: usize) -> Self {
        RecentKeys {
            window,
            max_entries,
            first: FxHashMap::default(),
            expiry: VecDeque::new(),
        }
    }

    /// The value first remembered for `key` (this one, if it is new).
    pub fn remember(&mut self, key: &[u8], value: &[u8], now: f64) -> &[u8] {
        while let Some((expires, _)) = self.expiry.front() {
            if !(*expires < now || self.expiry.len() > self.max_entries) {
                break;
            }
            let (_, old) = self.expiry.pop_front().expect("a front entry");
            self.first.remove(&*old);
        }
        if !self.first.contains_key(key) {
            let key: Arc<[u8]> = Arc::from(key);
            self.first.insert(key.clone(), Box::from(value));
            self.expiry.push_back((now + self.window, key));
        }
        &self.first[key]
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.first.contains_key(key)
    }
}

/// The key of a tuple of byte strings (`processors/genai_normalize.py` `dedupe_key`): each part
/// length-prefixed, `None` as a lone zero byte apart from any string.
pub fn dedupe_key(parts: &[Option<&[u8]>]) -> Vec<u8> {
    let size = parts.iter().map(|part| part.map_or(1, |bytes| 5 + bytes.len())).sum();
    let mut key = Vec::with_capacity(size);
    for part in parts {
        match part {
            None => key.push(0),
            Some(bytes) => {
                key.push(1);
                key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                key.extend_from_slice(bytes);
            }
        }
    }
    key
}

/// What [`dedupe`] reads of a call, and what it changes: the stage's own calls and those Python read, in
/// the request's order.
#[derive(Debug, Clone)]
pub struct DedupeEntry<'a> {
    pub start: usize,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub provider: Option<&'a str>,
    pub response_id: Option<&'a str>,
    pub billable: bool,
    pub duplicate: bool,
    pub reported: Option<f64>,
}

/// Phase two (`GenAINormalize._mark_duplicates`): the second report of one provider call is a duplicate, and a
/// duplicate's reported cost goes to the one call it wraps when that call reports none.
pub fn dedupe(entries: &mut [DedupeEntry], parents: &mut RecentKeys, responses: &mut RecentKeys, now: f64) {
    for entry in entries.iter().filter(|entry| entry.billable) {
        if !entry.parent_span_id.is_empty() {
            parents.remember(
                &dedupe_key(&[Some(entry.trace_id), Some(entry.parent_span_id)]),
                &[1],
                now,
            );
        }
    }
    let mut reporting: FxHashMap<Vec<u8>, f64> = FxHashMap::default();
    for entry in entries.iter_mut().filter(|entry| entry.billable) {
        let identity = dedupe_key(&[Some(entry.trace_id), Some(entry.span_id)]);
        let duplicate = parents.contains(&identity)
            || entry.response_id.is_some_and(|response| {
                !response.is_empty() && {
                    let key = dedupe_key(&[entry.provider.map(str::as_bytes), Some(response.as_bytes())]);
                    responses.remember(&key, &identity, now) != identity
                }
            });
        if duplicate {
            entry.billable = false;
            entry.duplicate = true;
            if let Some(reported) = entry.reported {
                reporting.insert(identity, reported);
            }
        }
    }
    if reporting.is_empty() {
        return;
    }
    let mut children: FxHashMap<Vec<u8>, Vec<usize>> = FxHashMap::default();
    for (index, entry) in entries.iter().enumerate() {
        let parent = dedupe_key(&[Some(entry.trace_id), Some(entry.parent_span_id)]);
        if entry.billable && reporting.contains_key(&parent) {
            children.entry(parent).or_default().push(index);
        }
    }
    for (parent, kids) in children {
        if let [only] = kids[..] {
            if entries[only].reported.is_none() {
                entries[only].reported = reporting.get(&parent).copied();
            }
        }
    }
}

/// Shapes and texts seen, as Python answered them; past this size each memory starts afresh.
const CACHE_LIMIT: usize = 20_000;

#[derive(Debug, Default)]
pub struct Stage {
    pub settings: Settings,
    shapes: FxHashMap<Vec<u8>, Shape>,
    plans: Vec<Plan>,
    texts: [FxHashMap<String, Option<Text>>; 5],
    /// model → its answers: looked up by reference, with no key built
    prices: FxHashMap<String, Vec<PriceAnswer>>,
    /// answers in `prices`
    price_answers: usize,
    price_list: Vec<Price>,
    usage_plans: FxHashMap<(usize, u8, u8), Result<u8, String>>,
    /// Times the plans or prices were forgotten: a call's plan and price ids are good while it is the same.
    generation: u64,
}

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// What a call's appended attributes take, about (the bench's: median 820 bytes, 95% under 1,030): one
/// allocation instead of a growth at each.
const APPENDED_CAPACITY: usize = 1024;

fn text_of(buf: &[u8], value: Value) -> Option<&str> {
    match value {
        Value::Str((start, end)) => std::str::from_utf8(&buf[start..end]).ok(),
        _ => None,
    }
}

/// The value of the span's attribute at `position` (None: no such attribute).
pub(crate) fn value_at(parts: &SpanParts, position: usize) -> Option<Value> {
    parts.values.get(position).copied()
}

/// Why a request, or a span, is left to the Python path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline;

type Read<T> = Result<T, Decline>;

/// The calls the stage read, and the payload starts of the GenAI spans it leaves to Python.
pub type Calls = (Vec<Call>, Vec<usize>);

impl Stage {
    pub fn new(settings: Settings) -> Self {
        Stage {
            settings,
            ..Stage::default()
        }
    }

    /// Forget every answered price (new price data).
    pub fn reset_prices(&mut self, snapshot: String) {
        self.settings.snapshot = snapshot;
        self.prices.clear();
        self.price_answers = 0;
        self.price_list.clear();
        self.usage_plans.clear();
        self.generation += 1;
    }

    pub fn learn_shape(&mut self, scope: &str, keys: &[String], plan: Option<Option<Plan>>) {
        if self.shapes.len() >= CACHE_LIMIT {
            self.shapes.clear();
            self.plans.clear();
            self.generation += 1;
        }
        let shape = match plan {
            None => Shape::Python,
            Some(None) => Shape::NotGenAI,
            Some(Some(plan)) => {
                self.plans.push(plan);
                Shape::Native(self.plans.len() - 1)
            }
        };
        self.shapes
            .insert(shape_key(scope.as_bytes(), keys.iter().map(String::as_bytes)), shape);
    }

    pub fn learn_text(&mut self, kind: TextKind, text: String, normal: Option<String>) {
        let texts = &mut self.texts[kind as usize];
        if texts.len() >= CACHE_LIMIT {
            texts.clear();
        }
        texts.insert(text, normal.map(Text::from));
    }

    /// `price`: the compiled price (its id is the number of prices learned before it), or `Err(Some(reason))`
    /// when the model has none, `Err(None)` when Python must price it. The caller resets the prices when
    /// [`Stage::price_count`] grows too large.
    pub fn learn_price(
        &mut self,
        provider: Option<String>,
        model: String,
        tier: String,
        start: u64,
        price: Result<Price, Option<String>>,
    ) {
        let priced = match price {
            Ok(price) => {
                self.price_list.push(price);
                Priced::Price(self.price_list.len() - 1)
            }
            Err(Some(reason)) => Priced::NoPrice(reason.into()),
            Err(None) => Priced::Python,
        };
        let day = start / NS_PER_DAY;
        let answers = self.prices.entry(model).or_default();
        match answers
            .iter_mut()
            .find(|answer| answer.provider == provider && answer.tier == tier && answer.day == day)
        {
            Some(answer) => answer.priced = priced,
            None => {
                answers.push(PriceAnswer {
                    provider,
                    tier,
                    day,
                    priced,
                });
                self.price_answers += 1;
            }
        }
    }

    /// What the calls read now hold ids into; see [`Stage::read`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn price_count(&self) -> usize {
        self.price_answers
    }

    fn priced(&self, provider: Option<&str>, model: &str, tier: &str, start: u64) -> Option<&Priced> {
        let day = start / NS_PER_DAY;
        let answers = self.prices.get(model)?;
        answers
            .iter()
            .find(|answer| answer.provider.as_deref() == provider && answer.tier == tier && answer.day == day)
            .map(|answer| &answer.priced)
    }

    pub fn learn_usage_plan(&mut self, price: usize, present: u8, positive: u8, plan: Result<u8, String>) {
        self.usage_plans.insert((price, present, positive), plan);
    }

    pub fn plan(&self, id: usize) -> &Plan {
        &self.plans[id]
    }

    /// Phase one: every GenAI call of the selected spans the stage reads itself, and the payload starts of
    /// those left to Python; or what Python must answer first; or a decline of the whole request.
    /// `headers`: the request headers attribution reads, in the order its `Source::Header`s name them.
    /// The calls hold ids of the stage's plans and prices: [`Stage::write`] them while the stage's
    /// [`Stage::generation`] is the one they were read in.
    pub fn read(
        &self,
        buf: &[u8],
        selected: Vec<(Selected, SpanParts)>,
        headers: &[Option<String>],
    ) -> Read<Result<Calls, Vec<Miss>>> {
        let mut calls = Vec::with_capacity(selected.len());
        let mut resources = Resources::default();
        let mut python = Vec::new();
        let mut misses = Vec::new();
        let mut key = Vec::new();
        for (item, parts) in selected {
            key.clear();
            let scope = item.scope_name.map_or(&b""[..], |(start, end)| &buf[start..end]);
            let keys = parts.attributes.iter().map(|((start, end), _)| &buf[*start..*end]);
            push_shape_key(&mut key, scope, keys);
            let plan = match self.shapes.get(&key) {
                Some(Shape::Native(plan)) => *plan,
                Some(Shape::NotGenAI) => continue,
                Some(Shape::Python) => {
                    python.push(item.span.0);
                    continue;
                }
                None => {
                    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                    let keys = parts
                        .attributes
                        .iter()
                        .map(|((start, end), _)| text(&buf[*start..*end]))
                        .collect();
                    misses.push(Miss::Shape {
                        scope: text(scope),
                        keys,
                    });
                    continue;
                }
            };
            let call = Call {
                span: item.span,
                parts,
                plan,
                ..Call::default()
            };
            let read = self.read_call(buf, call, &mut misses).and_then(|call| match call {
                Some(mut call) if call.billable => {
                    self.read_ledger_fields(buf, &mut call, item.resource, &mut resources)?;
                    if self.settings.attribution.is_some() {
                        call.attribution = Some(self.attribute(buf, &call, item.resource, &mut resources, headers)?);
                    }
                    Ok(Some(call))
                }
                call => Ok(call),
            });
            match read {
                Ok(Some(call)) => calls.push(call),
                Ok(None) => {}
                Err(Decline) => python.push(item.span.0),
            }
        }
        if !misses.is_empty() {
            misses.sort_by_key(|miss| matches!(miss, Miss::Price { .. } | Miss::UsagePlan { .. }));
            misses.dedup();
            return Ok(Err(misses));
        }
        Ok(Ok((calls, python)))
    }

    /// What a billable call's ledger row reads beyond the call: the service and the reservation.
    fn read_ledger_fields(
        &self,
        buf: &[u8],
        call: &mut Call,
        resource: Option<Range>,
        resources: &mut Resources,
    ) -> Read<()> {
        call.service = label(buf, resources.value(buf, resource, b"service.name", false)?)?;
        if let Some(position) = self.plans[call.plan].reservation {
            call.reservation = label(buf, value_at(&call.parts, position).ok_or(Decline)?)?;
        }
        Ok(())
    }

    pub fn price(&self, id: usize) -> &Price {
        &self.price_list[id]
    }

    pub(crate) fn text(&self, kind: TextKind, text: &str, misses: &mut Vec<Miss>) -> Option<Option<Text>> {
        let found = self.texts[kind as usize].get(text).cloned();
        if found.is_none() {
            misses.push(Miss::Text {
                kind,
                text: text.to_owned(),
            });
        }
        found
    }

    /// The call of one span (`SpanReader.read_wire` and `_finish`), None when something is missing.
    fn read_call(&self, buf: &[u8], mut call: Call, misses: &mut Vec<Miss>) -> Read<Option<Call>> {
        let plan = &self.plans[call.plan];
        let before = misses.len();
        call.tier = standard_tier();
        call.billable = true;
        for &(field, position) in &plan.fields {
            let value = value_at(&call.parts, position).ok_or(Decline)?;
            if let Err(error) = self.set_field(buf, &mut call, field, value, misses)? {
                call.usage_error = format!("{}: {error}", FIELDS[field]);
            }
        }
        for position in plan.canonical.iter().flatten() {
            if matches!(value_at(&call.parts, *position), Some(Value::Compound(_)) | None) {
                return Err(Decline); // its kept original is encoded by upb
            }
        }
        if let Some(position) = plan.openlit_sdk {
            if value_at(&call.parts, position).and_then(|value| text_of(buf, value)) == Some("openlit") {
                return Err(Decline); // an OpenLIT span from another scope
            }
        }
        self.apply_rule(buf, &mut call, misses)?;
        // _resolve_provider
        if self.settings.host_derived.contains(&call.text[PROVIDER]) {
            if let Some(server) = plan.server.and_then(|at| value_at(&call.parts, at)) {
                if let Some(host) = text_of(buf, server) {
                    if let Some(provider) = self.text(TextKind::Host, host, misses) {
                        call.text[PROVIDER] = provider.or(call.text[PROVIDER].take());
                    }
                }
            }
        }
        if call.text[PROVIDER].is_none() {
            if let Some(model) = call.model().filter(|model| !model.is_empty()) {
                if let Some(provider) = self.text(TextKind::ModelProvider, model, misses) {
                    call.text[PROVIDER] = provider;
                }
            }
        }
        if misses.len() > before {
            return Ok(None);
        }
        // _is_wrapper
        let operation = call.text[OPERATION].as_deref();
        let traceloop_wrapper = plan
            .traceloop_kind
            .and_then(|at| value_at(&call.parts, at))
            .and_then(|value| text_of(buf, value))
            .is_some_and(|kind| self.settings.traceloop_wrappers.contains(kind));
        if operation.is_some_and(|op| self.settings.wrapper_operations.contains(op))
            || plan.aggregated
            || (plan.rule != Rule::GoogleAdk
                && call
                    .provider()
                    .is_some_and(|provider| self.settings.frameworks.contains(provider)))
            || traceloop_wrapper
        {
            call.billable = false;
            call.skip_reason = "wrapper";
        } else if operation.is_none() {
            call.text[OPERATION] = Some(Text::from("chat"));
        }
        if call.usage_error.is_empty() {
            let cached = call.counts[0] + call.counts[1];
            if let Some(input) = call.input {
                if cached != 0 && (plan.excludes_cache.of(call.provider()) || cached > input) {
                    call.input = Some(input + cached);
                }
            }
            if let Some(output) = call.output {
                if call.counts[2] > output {
                    call.output = Some(output + call.counts[2]);
                }
            }
        }
        if let Some(reported) = call.reported {
            reported_pico(reported).ok_or(Decline)?;
        }
        if call.usage_error.is_empty() && call.has_usage() {
            let model = call.model().unwrap_or("");
            let priced = self
                .priced(call.provider(), model, &call.tier, call.parts.start_time)
                .cloned();
            match &priced {
                None => {
                    misses.push(Miss::Price {
                        provider: call.provider().map(str::to_owned),
                        model: model.to_owned(),
                        tier: call.tier.to_string(),
                        start: call.parts.start_time,
                    });
                    return Ok(None);
                }
                Some(Priced::Python) => return Err(Decline),
                Some(Priced::Price(price)) => {
                    let (_, present, positive) = call.usage();
                    if !self.usage_plans.contains_key(&(*price, present, positive)) {
                        misses.push(Miss::UsagePlan {
                            price: *price,
                            present,
                            positive,
                        });
                    }
                }
                Some(Priced::NoPrice(_)) => {}
            }
            call.priced = priced;
        }
        Ok(Some(call).filter(|_| misses.len() == before))
    }

    /// `_set_field`: Ok(Err(message)) when the value cannot be the field (the field keeps its default).
    fn set_field(
        &self,
        buf: &[u8],
        call: &mut Call,
        field: usize,
        value: Value,
        misses: &mut Vec<Miss>,
    ) -> Read<Result<(), String>> {
        match field {
            PROVIDER => {
                call.text[PROVIDER] = match text_of(buf, value) {
                    Some(text) => self.text(TextKind::Provider, text, misses).flatten(),
                    None if matches!(value, Value::Str(_)) => return Err(Decline),
                    None => None,
                };
            }
            OPERATION => {
                call.text[OPERATION] = match as_text(buf, value)? {
                    Some(text) => self.text(TextKind::Operation, &text, misses).flatten(),
                    None => None,
                };
            }
            REQUEST_MODEL | RESPONSE_MODEL | RESPONSE_ID => call.text[field] = as_text(buf, value)?,
            TIER => {
                call.tier = match value {
                    Value::Str((start, end)) if start < end => {
                        let text = text_of(buf, value).ok_or(Decline)?;
                        self.text(TextKind::Tier, text, misses).flatten().unwrap_or_default()
                    }
                    _ => standard_tier(),
                };
            }
            REPORTED_COST => {
                call.reported = match value {
                    Value::Int(number) => reported_cost(number as f64),
                    Value::Double(number) => reported_cost(number),
                    Value::Str(_) | Value::Bytes(_) => return Err(Decline),
                    Value::Unset | Value::Bool(_) | Value::Compound(_) => None,
                };
            }
            _ => {
                let count = match token_count(value)? {
                    Ok(count) => count,
                    Err(error) => return Ok(Err(error)),
                };
                match field {
                    5 => call.input = Some(count),
                    6 => call.output = Some(count),
                    TOTAL => call.total = Some(count),
                    _ => call.counts[field - FIRST_TOKEN_FIELD - 2] = count,
                }
            }
        }
        Ok(Ok(()))
    }

    /// Entries for [`dedupe`] of this stage's calls.
    pub fn dedupe_entries<'a>(buf: &'a [u8], calls: &'a [Call]) -> Vec<DedupeEntry<'a>> {
        let id = |range: Range| &buf[range.0..range.1];
        calls
            .iter()
            .map(|call| DedupeEntry {
                start: call.span.0,
                trace_id: id(call.parts.trace_id),
                span_id: id(call.parts.span_id),
                parent_span_id: id(call.parts.parent_span_id),
                provider: call.provider(),
                response_id: call.text[RESPONSE_ID].as_deref(),
                billable: call.billable,
                duplicate: false,
                reported: call.reported,
            })
            .collect()
    }

    /// Phase three: the canonical attributes (`GenAINormalize._write`), then the cost (`GenAICost`).
    pub fn write(&self, buf: &[u8], calls: &mut [Call], unpriced: &mut Vec<(Option<String>, String, String)>) {
        for call in calls.iter_mut() {
            call.appended.reserve(APPENDED_CAPACITY);
            self.write_canonical(buf, call);
            if call.billable {
                let cost = self.price_call(call);
                if cost.status == "unpriced" || (cost.source == "provider" && cost.price.is_none()) {
                    let model = call.model().unwrap_or("").to_owned();
                    unpriced.push((call.provider().map(str::to_owned), model, cost.reason.clone()));
                }
                self.write_cost(call, &cost);
                call.cost = Some(cost);
            } else if call.skip_reason == "duplicate" {
                encode(
                    &mut call.appended,
                    &self.settings.names.cost_status,
                    Scalar::Str("duplicate"),
                );
            }
        }
    }

    fn write_canonical(&self, buf: &[u8], call: &mut Call) {
        let settings = &self.settings;
        let names = &settings.names;
        let plan = &self.plans[call.plan];
        encode(&mut call.appended, &names.dialect, Scalar::Str(&plan.dialect));
        let with_usage = call.billable || call.skip_reason == "duplicate";
        for (slot, (key, field)) in names.canonical.iter().enumerate() {
            let value = match *field {
                f if f < FIRST_TOKEN_FIELD => match &call.text[f] {
                    Some(text) => Wanted::Text(text),
                    None => continue,
                },
                _ if !with_usage => continue,
                f => {
                    let count = match f {
                        5 => call.input,
                        6 => call.output,
                        _ => Some(call.counts[f - FIRST_TOKEN_FIELD - 2]),
                    };
                    match count {
                        None => continue,
                        Some(0) if settings.optional_counts.contains(&f) && plan.canonical[slot].is_none() => continue,
                        Some(count) => Wanted::Count(count),
                    }
                }
            };
            let Some(position) = plan.canonical[slot] else {
                encode(&mut call.appended, key, value.scalar());
                continue;
            };
            let current = value_at(&call.parts, position).unwrap_or(Value::Unset);
            let same = match (value, current) {
                (Wanted::Text(text), Value::Str(_)) => text_of(buf, current) == Some(text),
                (Wanted::Count(number), Value::Int(current)) => number == current,
                _ => false,
            };
            if same {
                continue;
            }
            if settings.keep_original {
                let original = format!("{}{key}", names.original_prefix);
                let scalar = match current {
                    Value::Str(_) => text_of(buf, current).map(Scalar::Str),
                    Value::Bool(flag) => Some(Scalar::Bool(flag)),
                    Value::Int(number) => Some(Scalar::Int(number)),
                    Value::Double(number) => Some(Scalar::Double(number)),
                    Value::Bytes((start, end)) => Some(Scalar::Bytes(&buf[start..end])),
                    Value::Unset | Value::Compound(_) => None, // compound ones were declined when read
                };
                if let Some(scalar) = scalar {
                    encode(&mut call.appended, &original, scalar);
                }
            }
            let value = match value {
                Wanted::Text(text) => Canonical::Str(text.to_owned()),
                Wanted::Count(number) => Canonical::Int(number),
            };
            call.updated.push((position, value));
        }
        if !settings.keep_original {
            call.dropped.clone_from(&plan.dropped);
        }
    }

    /// `GenAICost.price` with `price_usage` and `missing_tokens`.
    fn price_call(&self, call: &Call) -> Cost {
        let settings = &self.settings;
        let unpriced = |status, reason| Cost {
            status,
            source: "local",
            reason,
            ..Cost::default()
        };
        if !call.usage_error.is_empty() {
            return unpriced("invalid_usage", call.usage_error.clone());
        }
        if !call.has_usage() {
            return unpriced("no_usage", "the span has no token counts".to_owned());
        }
        let mut cost = Cost {
            reported: call.reported,
            priced_at_snapshot: true,
            ..unpriced("unpriced", String::new())
        };
        let mut usd = None;
        match call.priced.as_ref().expect("priced when read") {
            Priced::Price(id) => {
                cost.price = Some(*id);
                match self.price_usage(*id, call) {
                    Ok(breakdown) => usd = Some(breakdown),
                    Err(reason) => {
                        cost.status = "invalid_usage";
                        cost.reason = reason;
                        return cost;
                    }
                }
            }
            Priced::NoPrice(reason) => cost.reason = reason.to_string(),
            Priced::Python => unreachable!("declined when read"),
        }
        if let Some(breakdown) = usd {
            cost.status = "priced";
            cost.breakdown = Some(breakdown);
            cost.amount = Some(breakdown[0]);
        }
        if let Some(reported) = call.reported {
            let reported_pico = reported_pico(reported).expect("checked when read");
            if let Some(breakdown) = usd {
                let (ours, theirs) = (breakdown[0], reported_pico);
                let larger = ours.abs().max(theirs.abs()) as f64;
                cost.mismatch = Some(exceeds((ours - theirs).abs(), settings.tolerance * larger));
            }
            if usd.is_none() || settings.prefer_reported {
                cost.status = "priced";
                cost.source = "provider";
                cost.amount = Some(reported_pico);
            }
        }
        let unpriced = cost.source == "provider" && cost.price.is_none();
        if cost.status == "priced" && !unpriced {
            if let Some(missing) = self.missing_tokens(call, &cost) {
                cost.status = "incomplete_usage";
                cost.reason = missing;
            }
        }
        cost
    }

    fn missing_tokens(&self, call: &Call, cost: &Cost) -> Option<String> {
        let itemised = call.input.unwrap_or(0) + call.output.unwrap_or(0);
        if let Some(total) = call.total.filter(|total| *total > itemised) {
            return Some(format!(
                "total_tokens {total} exceeds input + output ({itemised}): some tokens are not itemised"
            ));
        }
        let (Some(true), Some(breakdown), Some(price)) = (cost.mismatch, cost.breakdown, cost.price) else {
            return None;
        };
        if call.counts[0] != 0 || call.counts[1] != 0 || !self.price_list[price].has_cache_read {
            return None;
        }
        let reported = reported_pico(cost.reported?)?;
        (breakdown[0] > reported).then(|| {
            "the reported cost is below the price of the tokens seen, and the span names no cached tokens: they \
             are probably missing"
                .to_owned()
        })
    }

    /// `CompiledPrice.price`: total and parts in pico-units, or the PricingError's message.
    fn price_usage(&self, id: usize, call: &Call) -> Result<[i128; 6], String> {
        let price = &self.price_list[id];
        let (counts, present, positive) = call.usage();
        let reported = self.usage_plans[&(id, present, positive)].clone()?;
        let mut leaves: Vec<(Unit, i128)> = Vec::with_capacity(price.leaf_order.len());
        let leaf_of = |leaves: &[(Unit, i128)], unit: Unit| {
            leaves
                .iter()
                .find(|(seen, _)| *seen == unit)
                .map_or(0, |(_, count)| *count)
        };
        for (unit, key, descendants) in &price.leaf_order {
            let sent = match unit {
                Unit::Usage(index) if reported & (1 << index) != 0 => i128::from(counts[*index]),
                _ => 0,
            };
            let leaf = sent - descendants.iter().map(|d| leaf_of(&leaves, *d)).sum::<i128>();
            if leaf < 0 {
                let given = match unit {
                    Unit::Usage(index) if present & (1 << index) != 0 => counts[*index],
                    _ => 0,
                };
                return Err(format!(
                    "invalid usage: more specific token counts exceed {key} ({given})"
                ));
            }
            leaves.push((*unit, leaf));
        }
        let total_input = if price.has_tiers { call.input.unwrap_or(0) } else { 0 };
        let mut parts = [0i128; 5];
        for (unit, rate, index) in &price.units {
            let count = if *unit == Unit::Requests {
                1
            } else {
                leaf_of(&leaves, *unit)
            };
            if count == 0 {
                continue;
            }
            let rate = match rate {
                Rate::Flat(rate) => *rate,
                Rate::Tiered(base, tiers) => tiers
                    .iter()
                    .find(|(start, _)| total_input > *start)
                    .map_or(*base, |(_, rate)| *rate),
            };
            parts[*index] += rate * count;
        }
        let total = parts.iter().sum();
        Ok([total, parts[0], parts[1], parts[2], parts[3], parts[4]])
    }

    /// `GenAIAttribution.apply`: `gen_ai.attribution.<dimension>` of each dimension with a value.
    pub fn write_attribution(&self, call: &mut Call) {
        let (Some(dimensions), Some(values)) = (&self.settings.attribution, &call.attribution) else {
            return;
        };
        for (dimension, value) in dimensions.iter().zip(values) {
            if let Some(value) = value {
                encode(&mut call.appended, &dimension.attribute, Scalar::Str(value));
            }
        }
    }

    /// `GenAICost._write`: the block shared by every call of a price and status, then the numbers.
    fn write_cost(&self, call: &mut Call, cost: &Cost) {
        let settings = &self.settings;
        let names = &settings.names;
        let out = &mut call.appended;
        let price = cost.price.map(|id| &self.price_list[id]);
        encode(out, &names.cost_status, Scalar::Str(cost.status));
        encode(out, &names.cost_currency, Scalar::Str(&settings.currency));
        encode(
            out,
            &names.cost_tier,
            Scalar::Str(price.map_or(&call.tier, |price| &price.tier)),
        );
        if cost.amount.is_some() {
            encode(out, &names.cost_source, Scalar::Str(cost.source));
        }
        if let Some(price) = price {
            encode(out, &names.cost_model, Scalar::Str(&price.model_id));
            encode(out, &names.cost_provider, Scalar::Str(&price.provider_id));
        }
        if cost.status != "no_usage" {
            encode(out, &names.cost_snapshot, Scalar::Str(&settings.snapshot));
        }
        if let Some(amount) = cost.amount {
            encode(out, &names.cost_amount, Scalar::Double(to_double(amount)));
            if settings.openlit_compat {
                encode(out, &names.cost_compat, Scalar::Double(to_double(amount)));
            }
        }
        if let Some(breakdown) = cost.breakdown {
            for (key, part) in names.cost_breakdown.iter().zip(&breakdown[1..]) {
                if *part != 0 {
                    encode(out, key, Scalar::Double(to_double(*part)));
                }
            }
        }
        if let Some(reported) = cost.reported {
            encode(out, &names.cost_reported, Scalar::Double(reported));
        }
        if let Some(mismatch) = cost.mismatch {
            encode(out, &names.cost_mismatch, Scalar::Bool(mismatch));
        }
        if cost.status == "incomplete_usage" {
            encode(out, &names.cost_reason, Scalar::Str(&cost.reason));
        }
    }
}

/// A cost per call above this is a broken emitter's, not a report (`MAX_REPORTED_COST`).
const MAX_REPORTED_COST: f64 = 1_000_000.0;

/// `reported_cost` of a finite or infinite number: the cost, or None when no call costs it.
pub(crate) fn reported_cost(number: f64) -> Option<f64> {
    Some(number).filter(|number| number.abs() <= MAX_REPORTED_COST)
}

/// `as_text`: text as it is, a number as Python writes it, nothing for other kinds.
fn as_text(buf: &[u8], value: Value) -> Read<Option<Text>> {
    Ok(match value {
        Value::Str(_) => Some(Text::from(text_of(buf, value).ok_or(Decline)?)),
        Value::Int(number) => Some(number.to_string().into()),
        Value::Double(number) => Some(python_repr(number).into()),
        Value::Unset | Value::Bool(_) | Value::Bytes(_) | Value::Compound(_) => None,
    })
}

/// `token_count`: Ok(Err(message)) for a count that cannot be right; texts and other kinds whose Python
/// message is not reproduced here are declined.
fn token_count(value: Value) -> Read<Result<i64, String>> {
    let number = match value {
        Value::Int(number) => number,
        Value::Double(number) if number.is_finite() && number.abs() < 1e18 => number.trunc() as i64,
        Value::Bool(flag) => {
            let text = if flag { "True" } else { "False" };
            return Ok(Err(format!("token count {text} is not a whole number")));
        }
        Value::Unset => return Ok(Err("token count None is not a whole number".to_owned())),
        _ => return Err(Decline),
    };
    if !(0..=MAX_TOKENS).contains(&number) {
        return Ok(Err(format!("token count {number} is negative or absurd")));
    }
    Ok(Ok(number))
}

fn push_shape_key<'a>(key: &mut Vec<u8>, scope: &[u8], keys: impl Iterator<Item = &'a [u8]>) {
    key.extend_from_slice(scope);
    for item in keys {
        key.push(0xff); // never in UTF-8 text
        key.extend_from_slice(item);
    }
}

fn shape_key<'a>(scope: &[u8], keys: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut key = Vec::new();
    push_shape_key(&mut key, scope, keys);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keys_remember_the_first_value_until_it_expires() {
        let mut keys = RecentKeys::new(10.0, 2);
        assert_eq!(keys.remember(b"a", b"1", 0.0), b"1");
        assert_eq!(keys.remember(b"a", b"2", 5.0), b"1");
        assert_eq!(keys.remember(b"b", b"3", 20.0), b"3"); // "a" expired
        assert!(!keys.contains(b"a"));
        keys.remember(b"c", b"4", 20.0);
        keys.remember(b"d", b"5", 20.0);
        keys.remember(b"e", b"6", 20.0); // over max_entries: the oldest goes
        assert!(!keys.contains(b"b") && keys.contains(b"e"));
    }

    #[test]
    fn dedupe_keys_tell_none_from_text() {
        assert_ne!(dedupe_key(&[None, Some(b"x")]), dedupe_key(&[Some(b""), Some(b"x")]));
        assert_ne!(
            dedupe_key(&[Some(b"ab"), Some(b"c")]),
            dedupe_key(&[Some(b"a"), Some(b"bc")])
        );
    }

    #[test]
    fn token_counts_are_checked() {
        assert_eq!(token_count(Value::Int(5)), Ok(Ok(5)));
        assert_eq!(token_count(Value::Double(7.9)), Ok(Ok(7)));
        assert_eq!(
            token_count(Value::Int(-1)),
            Ok(Err("token count -1 is negative or absurd".to_owned()))
        );
        assert_eq!(token_count(Value::Double(f64::NAN)), Err(Decline));
    }
}
