//! The fused GenAI stage as a Python class (`processors/genai_native.py` drives it): it asks its resolver
//! what it has not seen, with the GIL, and runs the phases of `genai.rs` without it.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use arrow_array::ffi::to_ffi;
use arrow_array::{Array, StructArray};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyCapsule, PyDict, PyString, PyTuple};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::attributes::{encode, reported_pico, Scalar};
use crate::attribution::{CardinalityLimit, Dimension, Source};
use crate::budget::{self, spend_keys, BudgetState, Matched};
use crate::genai::{
    self, Call, Canonical, DedupeEntry, ExcludesCache, Miss, Names, Plan, Price, Rate, Settings, Stage, Text, TextKind,
    Unit, FIELDS,
};
use crate::ledger::{column_count, ledger_rows, Labels};
use crate::offload::{Finish, Job};
use crate::python::spliced_bytes;
use crate::rules::Rule;
use crate::traces::{self, Range};
use crate::worker::Home;

type SharedKeys = Arc<Mutex<genai::RecentKeys>>;
type SharedLimit = Arc<Mutex<CardinalityLimit>>;
/// A budget as `genai_budget` hands it over: spent and limit (Python integers), warning thresholds, prefix.
type BudgetArgument<'py> = (Bound<'py, PyAny>, Bound<'py, PyAny>, Vec<f64>, Vec<u8>);

/// `collector.cardinality.CardinalityLimit`, shared by `genai_attribution`'s Python code and the native stage.
#[pyclass(name = "CardinalityLimit", module = "collector._native", frozen)]
pub struct PyCardinalityLimit {
    limit: SharedLimit,
}

#[pymethods]
impl PyCardinalityLimit {
    #[new]
    fn new(limit: usize) -> Self {
        PyCardinalityLimit {
            limit: Arc::new(Mutex::new(CardinalityLimit::new(limit))),
        }
    }

    /// The value, or `__other__` when it is new and the limit is reached.
    fn __call__(&self, value: String) -> String {
        self.limit.lock().expect("not poisoned").cap(value)
    }
}

/// `genai_normalize`'s memory of recent keys, shared by its Python code and the native stage.
#[pyclass(name = "RecentKeys", module = "collector._native", frozen)]
pub struct PyRecentKeys {
    keys: SharedKeys,
}

#[pymethods]
impl PyRecentKeys {
    #[new]
    fn new(window: f64, max_entries: usize) -> Self {
        PyRecentKeys {
            keys: Arc::new(Mutex::new(genai::RecentKeys::new(window, max_entries))),
        }
    }

    /// The value first remembered for `key` (this one, if it is new).
    fn remember<'py>(&self, py: Python<'py>, key: &[u8], value: &[u8], now: f64) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.keys.lock().expect("not poisoned").remember(key, value, now))
    }

    fn __contains__(&self, key: &[u8]) -> bool {
        self.keys.lock().expect("not poisoned").contains(key)
    }
}

/// Compiled prices kept before the memory starts afresh (as the catalog's own caches).
const PRICE_LIMIT: usize = 65_536;

/// The stage's tables, read by the jobs of every request, and learned into between them.
type SharedStage = Arc<RwLock<Stage>>;

#[pyclass(name = "GenAIStage", module = "collector._native")]
pub struct PyGenAIStage {
    stage: SharedStage,
    resolver: Py<PyAny>,
    evidence: Arc<FxHashSet<Vec<u8>>>,
    /// `(parents, responses)` when duplicates are looked for.
    dedupe: Option<(SharedKeys, SharedKeys)>,
    matches: Matches,
    /// Each attribution dimension's cardinality limit, when the stage attributes.
    limits: Vec<SharedLimit>,
}

/// `settings["attribution"]`: None, or (dimensions as (attribute, sources as ("header", index) /
/// ("resource", key) / ("span", index), default), their cardinality limits).
#[allow(clippy::type_complexity)]
fn attribution_of(settings: Option<Bound<'_, PyAny>>) -> PyResult<(Option<Vec<Dimension>>, Vec<SharedLimit>)> {
    let Some(settings) = settings.filter(|settings| !settings.is_none()) else {
        return Ok((None, Vec::new()));
    };
    let (dimensions, limits): (
        Vec<(String, Vec<(String, Bound<'_, PyAny>)>, Option<String>)>,
        Vec<PyRef<'_, PyCardinalityLimit>>,
    ) = settings.extract()?;
    let mut parsed = Vec::with_capacity(dimensions.len());
    for (attribute, sources, default) in dimensions {
        let sources = sources
            .into_iter()
            .map(|(kind, key)| {
                Ok(match kind.as_str() {
                    "header" => Source::Header(key.extract()?),
                    "resource" => Source::Resource(key.extract::<String>()?.into_bytes()),
                    "span" => Source::Span(key.extract()?),
                    _ => return Err(PyValueError::new_err(format!("unknown attribution source {kind}"))),
                })
            })
            .collect::<PyResult<_>>()?;
        parsed.push(Dimension {
            attribute,
            sources,
            default,
        });
    }
    Ok((Some(parsed), limits.iter().map(|limit| limit.limit.clone()).collect()))
}

fn names(names: &Bound<'_, PyDict>) -> PyResult<Names> {
    let text = |key: &str| -> PyResult<String> {
        names
            .get_item(key)?
            .ok_or_else(|| PyValueError::new_err(format!("names lacks {key}")))?
            .extract()
    };
    Ok(Names {
        dialect: text("dialect")?,
        original_prefix: text("original_prefix")?,
        canonical: names
            .get_item("canonical")?
            .ok_or_else(|| PyValueError::new_err("names lacks canonical"))?
            .extract::<Vec<(String, String)>>()?
            .into_iter()
            .map(|(key, name)| Ok((key, field_index(&name)?)))
            .collect::<PyResult<_>>()?,
        cost_status: text("status")?,
        cost_currency: text("currency")?,
        cost_tier: text("tier")?,
        cost_source: text("source")?,
        cost_model: text("pricing.model")?,
        cost_provider: text("pricing.provider")?,
        cost_snapshot: text("pricing.snapshot")?,
        cost_amount: text("amount")?,
        cost_compat: text("compat")?,
        cost_breakdown: ["input", "output", "cache_read", "cache_write", "other"]
            .into_iter()
            .map(text)
            .collect::<PyResult<_>>()?,
        cost_reported: text("reported")?,
        cost_mismatch: text("mismatch")?,
        cost_reason: text("reason")?,
    })
}

fn field_index(name: &str) -> PyResult<usize> {
    FIELDS
        .iter()
        .position(|field| *field == name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown field {name}")))
}

fn text_kind(kind: TextKind) -> &'static str {
    match kind {
        TextKind::Provider => "provider",
        TextKind::Operation => "operation",
        TextKind::Tier => "tier",
        TextKind::Host => "host",
        TextKind::ModelProvider => "model_provider",
    }
}

fn unit_of(key: &str, others: &mut Vec<String>) -> Unit {
    if key == "requests" {
        return Unit::Requests;
    }
    if let Some(index) = genai::USAGE_KEYS.iter().position(|usage| *usage == key) {
        return Unit::Usage(index);
    }
    let index = others.iter().position(|other| other == key).unwrap_or_else(|| {
        others.push(key.to_owned());
        others.len() - 1
    });
    Unit::Other(index)
}

#[pymethods]
impl PyGenAIStage {
    /// `settings`: the processors' settings and the dialect tables (see `processors/genai_native.py`);
    /// `resolver`: answers `shape`, `text`, `price` and `usage_plan`; `dedupe`: normalize's (parents,
    /// responses) memories, or None.
    #[new]
    fn new(
        settings: &Bound<'_, PyDict>,
        resolver: Py<PyAny>,
        evidence: Vec<String>,
        dedupe: Option<(PyRef<'_, PyRecentKeys>, PyRef<'_, PyRecentKeys>)>,
    ) -> PyResult<Self> {
        let get = |key: &str| {
            settings
                .get_item(key)?
                .ok_or_else(|| PyValueError::new_err(format!("settings lacks {key}")))
        };
        let names_dict = get("names")?;
        let (attribution, limits) = attribution_of(settings.get_item("attribution")?)?;
        let settings = Settings {
            attribution,
            names: names(names_dict.cast::<PyDict>()?)?,
            wrapper_operations: get("wrapper_operations")?.extract()?,
            frameworks: get("frameworks")?.extract()?,
            host_derived: get("host_derived")?
                .extract::<FxHashSet<Option<String>>>()?
                .into_iter()
                .map(|provider| provider.map(Text::from))
                .collect(),
            traceloop_wrappers: get("traceloop_wrappers")?.extract()?,
            optional_counts: get("optional_counts")?
                .extract::<Vec<String>>()?
                .iter()
                .map(|name| field_index(name))
                .collect::<PyResult<_>>()?,
            keep_original: get("keep_original")?.extract()?,
            prefer_reported: get("prefer_reported")?.extract()?,
            tolerance: get("tolerance")?.extract()?,
            openlit_compat: get("openlit_compat")?.extract()?,
            currency: get("currency")?.extract()?,
            snapshot: get("snapshot")?.extract()?,
        };
        Ok(PyGenAIStage {
            stage: Arc::new(RwLock::new(Stage::new(settings))),
            resolver,
            evidence: Arc::new(evidence.into_iter().map(String::into_bytes).collect()),
            dedupe: dedupe.map(|(parents, responses)| (parents.keys.clone(), responses.keys.clone())),
            matches: Matches::default(),
            limits,
        })
    }

    /// New price data: forget every price learned.
    fn reset_prices(&mut self, py: Python<'_>, snapshot: String) {
        self.learn_with(py, |stage| stage.reset_prices(snapshot));
        self.matches = Matches::default();
    }

    /// Phase one on a scanned trace request, as a job. Its result: a `StageResult` with the calls the stage
    /// read and the spans it leaves to Python (`python_spans`); `Questions` the stage must `learn` the
    /// answers of before it reads the request again; or None when the whole request is left to the Python
    /// processors. Nothing has changed yet. `headers`: the request's values of the headers attribution
    /// reads.
    fn read(&self, wire: Bound<'_, PyBytes>, headers: Vec<Option<String>>) -> Job {
        let (stage, evidence) = (self.stage.clone(), self.evidence.clone());
        let wire = PyBackedBytes::from(wire);
        Job::new(move || {
            let (read, generation) = {
                let stage = stage.read().expect("not poisoned");
                let read = traces::select_parts(&wire, |key| evidence.contains(key))
                    .map_err(|_| genai::Decline)
                    .and_then(|selected| stage.read(&wire, selected, &headers));
                (read, stage.generation())
            };
            let home = Home::here();
            Box::new(move |py: Python<'_>| {
                Ok(match read {
                    Err(genai::Decline) => py.None(),
                    Ok(Ok((calls, python_spans))) => Py::new(
                        py,
                        StageResult {
                            wire,
                            home,
                            generation,
                            calls,
                            python_spans,
                            matches: Vec::new(),
                            labels: None,
                            unpriced: Vec::new(),
                        },
                    )?
                    .into_any(),
                    Ok(Err(misses)) => Py::new(py, Questions { misses, generation })?.into_any(),
                })
            }) as Finish
        })
    }

    /// Ask the resolver what a read asked, and learn the answers (nothing when the stage has forgotten
    /// what the read knew since: the next read asks again).
    fn learn(&mut self, py: Python<'_>, mut questions: PyRefMut<'_, Questions>) -> PyResult<()> {
        if questions.generation != self.tables().generation() {
            return Ok(());
        }
        for miss in std::mem::take(&mut questions.misses) {
            self.resolve(py, miss)?;
        }
        Ok(())
    }

    /// Phases two and three, as a job: duplicates marked over the stage's calls and `others` (the calls
    /// Python read, as (span payload start, trace id, span id, parent span id, provider, response id,
    /// billable, reported cost)), then the stage's calls normalised and priced. The job's result: (billable,
    /// duplicate, reported cost) of each of `others`, or None (nothing changed) when the stage forgot what
    /// it knew when it read the request (new price data). None instead of a job when one of their reported
    /// costs is no amount the stage can hand down.
    fn finish(
        &self,
        py: Python<'_>,
        result: Bound<'_, StageResult>,
        others: Vec<Other>,
        now: f64,
    ) -> PyResult<Option<Job>> {
        if others
            .iter()
            .any(|other| other.7.is_some_and(|reported| reported_pico(reported).is_none()))
        {
            return Ok(None);
        }
        let (stage, dedupe, matches) = (self.stage.clone(), self.dedupe.clone(), self.matches.clone());
        let (wire, generation, mut calls) = {
            let mut taken = result.borrow_mut();
            (
                taken.wire.clone_ref(py),
                taken.generation,
                std::mem::take(&mut taken.calls),
            )
        };
        let result = result.unbind();
        Ok(Some(Job::new(move || {
            let stage = stage.read().expect("not poisoned");
            let finished = (stage.generation() == generation).then(|| {
                let updates = mark_duplicates(&wire, &mut calls, &others, dedupe.as_ref(), now);
                let mut unpriced = Vec::new();
                stage.write(&wire, &mut calls, &mut unpriced);
                (updates, Labels::of(&stage, &calls), unpriced)
            });
            drop(stage);
            Box::new(move |py: Python<'_>| {
                drop(wire); // the request's reference let go with the GIL held
                let mut result = result.bind(py).borrow_mut();
                let Some((updates, labels, unpriced)) = finished else {
                    result.calls = calls;
                    return Ok(py.None());
                };
                let matches = matches.lock().expect("not poisoned");
                result.matches = calls
                    .iter()
                    .map(|call| {
                        call.cost
                            .as_ref()
                            .and_then(|cost| cost.price)
                            .map(|id| matches[id].clone_ref(py))
                    })
                    .collect();
                result.calls = calls;
                result.labels = Some(labels);
                result.unpriced = unpriced;
                Ok(updates.into_pyobject(py)?.into_any().unbind())
            }) as Finish
        })))
    }

    /// Phase four, when the stage attributes, as a job: the billable calls' values capped in the request's
    /// order (the stage's, read with them, and `others`, the calls Python read, as (span payload start,
    /// values or None for a call that is not billable)), and the stage's calls' attributes written. The
    /// job's result: the capped values of `others`.
    fn attribute(&self, result: Bound<'_, StageResult>, mut others: Vec<(usize, Option<Values>)>) -> Job {
        let (stage, limits) = (self.stage.clone(), self.limits.clone());
        let mut calls = std::mem::take(&mut result.borrow_mut().calls);
        let result = result.unbind();
        Job::new(move || {
            cap_attribution(&mut calls, &mut others, &limits);
            let stage = stage.read().expect("not poisoned");
            for call in calls.iter_mut() {
                stage.write_attribution(call);
            }
            drop(stage);
            Box::new(move |py: Python<'_>| {
                result.bind(py).borrow_mut().calls = calls;
                let capped: Vec<Option<Values>> = others.into_iter().map(|(_, values)| values).collect();
                Ok(capped.into_pyobject(py)?.into_any().unbind())
            }) as Finish
        })
    }
}

/// A call Python read, as `finish` takes it: (span payload start, trace id, span id, parent span id,
/// provider, response id, billable, reported cost).
type Other = (
    usize,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    Option<String>,
    Option<String>,
    bool,
    Option<f64>,
);

/// The `PriceMatch` of each price the stage learned, by its id; new price data starts a new list, and the
/// requests priced from the old one keep it.
type Matches = Arc<Mutex<Vec<Py<PyAny>>>>;

/// Duplicates marked over the stage's calls and the calls Python read, in the request's order, when the
/// stage looks for them; returns (billable, duplicate, reported cost) of each of `others`.
fn mark_duplicates(
    wire: &[u8],
    calls: &mut [Call],
    others: &[Other],
    dedupe: Option<&(SharedKeys, SharedKeys)>,
    now: f64,
) -> Vec<(bool, bool, Option<f64>)> {
    let Some((parents, responses)) = dedupe else {
        return others.iter().map(|other| (other.6, false, other.7)).collect();
    };
    let mut entries = Stage::dedupe_entries(wire, calls);
    entries.extend(others.iter().map(|other| DedupeEntry {
        start: other.0,
        trace_id: &other.1,
        span_id: &other.2,
        parent_span_id: &other.3,
        provider: other.4.as_deref(),
        response_id: other.5.as_deref(),
        billable: other.6,
        duplicate: false,
        reported: other.7,
    }));
    entries.sort_by_key(|entry| entry.start);
    let mut parents = parents.lock().expect("not poisoned");
    let mut responses = responses.lock().expect("not poisoned");
    genai::dedupe(&mut entries, &mut parents, &mut responses, now);
    let outcome: FxHashMap<usize, (bool, bool, Option<f64>)> = entries
        .iter()
        .map(|entry| (entry.start, (entry.billable, entry.duplicate, entry.reported)))
        .collect();
    drop(entries);
    for call in calls.iter_mut() {
        let (billable, duplicate, reported) = outcome[&call.span.0];
        call.billable = billable;
        call.reported = reported;
        if duplicate {
            call.skip_reason = "duplicate";
        }
    }
    others.iter().map(|other| outcome[&other.0]).collect()
}

/// Attribution values by dimension (None: the dimension has none).
type Values = Vec<Option<String>>;

/// The billable calls' attribution values capped per dimension in the request's order: the stage's calls'
/// (a call that is not billable has none) and `others` (payload start, values).
fn cap_attribution(calls: &mut [Call], others: &mut [(usize, Option<Values>)], limits: &[SharedLimit]) {
    let mut order: Vec<(usize, Result<usize, usize>)> =
        calls.iter().enumerate().map(|(i, call)| (call.span.0, Ok(i))).collect();
    order.extend(others.iter().enumerate().map(|(j, other)| (other.0, Err(j))));
    order.sort_by_key(|(start, _)| *start);
    let mut limits: Vec<_> = limits.iter().map(|limit| limit.lock().expect("not poisoned")).collect();
    for (_, which) in order {
        let values = match which {
            Ok(i) if !calls[i].billable => {
                calls[i].attribution = None;
                continue;
            }
            Ok(i) => &mut calls[i].attribution,
            Err(j) => &mut others[j].1,
        };
        for (value, limit) in values.iter_mut().flatten().zip(limits.iter_mut()) {
            *value = value.take().map(|text| limit.cap(text));
        }
    }
}

impl PyGenAIStage {
    /// The stage's tables, to read.
    fn tables(&self) -> RwLockReadGuard<'_, Stage> {
        self.stage.read().expect("not poisoned")
    }

    /// Change the stage's tables once no job reads them, the GIL released meanwhile (a job never takes it).
    fn learn_with(&self, py: Python<'_>, learn: impl FnOnce(&mut Stage) + Send) {
        let stage = &self.stage;
        py.detach(|| learn(&mut stage.write().expect("not poisoned")));
    }

    fn resolve(&mut self, py: Python<'_>, miss: Miss) -> PyResult<()> {
        let resolver = self.resolver.clone_ref(py).into_bound(py);
        match miss {
            Miss::Shape { scope, keys } => {
                let answer = resolver.call_method1("shape", (&scope, PyTuple::new(py, &keys)?))?;
                let plan = if answer.is_none() {
                    None
                } else if answer.is_instance_of::<pyo3::types::PyBool>() {
                    Some(None)
                } else {
                    Some(Some(plan_of(&answer)?))
                };
                self.learn_with(py, |stage| stage.learn_shape(&scope, &keys, plan));
            }
            Miss::Text { kind, text } => {
                let normal: Option<String> = resolver.call_method1("text", (text_kind(kind), &text))?.extract()?;
                self.learn_with(py, |stage| stage.learn_text(kind, text, normal));
            }
            Miss::Price {
                provider,
                model,
                tier,
                start,
            } => {
                if self.tables().price_count() >= PRICE_LIMIT {
                    let snapshot = self.tables().settings.snapshot.clone();
                    self.reset_prices(py, snapshot);
                }
                let answer = resolver.call_method1("price", (&provider, &model, &tier, start))?;
                let price = match answer.get_item(0)?.extract::<String>()?.as_str() {
                    "price" => {
                        let matched = answer.get_item(1)?.unbind();
                        self.matches.lock().expect("not poisoned").push(matched);
                        Ok(price_of(&answer)?)
                    }
                    "none" => Err(Some(answer.get_item(1)?.extract()?)),
                    _ => Err(None),
                };
                self.learn_with(py, |stage| stage.learn_price(provider, model, tier, start, price));
            }
            Miss::UsagePlan {
                price,
                present,
                positive,
            } => {
                let keys = |mask: u8| -> Vec<&str> {
                    (0..genai::USAGE_KEYS.len())
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| genai::USAGE_KEYS[i])
                        .collect()
                };
                let matched = self.matches.lock().expect("not poisoned")[price].clone_ref(py);
                let answer = resolver.call_method1("usage_plan", (matched, keys(present), keys(positive)))?;
                let plan = match answer.extract::<Vec<String>>() {
                    Ok(reported) if !answer.is_instance_of::<PyString>() => Ok(reported
                        .iter()
                        .filter_map(|key| genai::USAGE_KEYS.iter().position(|usage| usage == key))
                        .fold(0u8, |mask, index| mask | 1 << index)),
                    _ => Err(answer.extract::<String>()?),
                };
                self.learn_with(py, |stage| stage.learn_usage_plan(price, present, positive, plan));
            }
        }
        Ok(())
    }
}

/// A plan tuple: (dialect, fields, openlit_sdk, server, aggregated, traceloop_kind, excludes_cache,
/// canonical, dropped, rule_positions, attribution_positions, reservation), fields as (field name, position),
/// excludes_cache as (for most providers, [(provider, for it)]), rule_positions in `RULE_KEYS` order.
fn plan_of(answer: &Bound<'_, PyAny>) -> PyResult<Plan> {
    let fields: Vec<(String, usize)> = answer.get_item(1)?.extract()?;
    let fields = fields
        .into_iter()
        .map(|(name, position)| Ok((field_index(&name)?, position)))
        .collect::<PyResult<_>>()?;
    let dialect: String = answer.get_item(0)?.extract()?;
    let (otherwise, providers) = answer.get_item(6)?.extract()?;
    Ok(Plan {
        rule: Rule::of(&dialect),
        dialect: dialect.into(),
        fields,
        openlit_sdk: answer.get_item(2)?.extract()?,
        server: answer.get_item(3)?.extract()?,
        aggregated: answer.get_item(4)?.extract()?,
        traceloop_kind: answer.get_item(5)?.extract()?,
        excludes_cache: ExcludesCache { otherwise, providers },
        canonical: answer.get_item(7)?.extract()?,
        dropped: answer.get_item(8)?.extract()?,
        rule_positions: answer.get_item(9)?.extract()?,
        attribution_positions: answer.get_item(10)?.extract()?,
        reservation: answer.get_item(11)?.extract()?,
    })
}

/// A price tuple: ("price", match, model id, provider id, tier, units as (key, rate, breakdown index) with a
/// rate an int or (base, ((threshold, rate), ...)), leaf order as (key, descendant keys), has tiers, has a
/// cache-read unit).
fn price_of(answer: &Bound<'_, PyAny>) -> PyResult<Price> {
    let mut others = Vec::new();
    let raw_units: Vec<(String, Bound<'_, PyAny>, usize)> = answer.get_item(5)?.extract()?;
    let mut units = Vec::with_capacity(raw_units.len());
    for (key, rate, index) in raw_units {
        let rate = match rate.extract::<i128>() {
            Ok(flat) => Rate::Flat(flat),
            Err(_) => {
                let (base, tiers): (i128, Vec<(i64, i128)>) = rate.extract()?;
                Rate::Tiered(base, tiers)
            }
        };
        units.push((unit_of(&key, &mut others), rate, index));
    }
    let leaf_order: Vec<(String, Vec<String>)> = answer.get_item(6)?.extract()?;
    let leaf_order = leaf_order
        .into_iter()
        .map(|(key, descendants)| {
            let unit = unit_of(&key, &mut others);
            let descendants = descendants.iter().map(|d| unit_of(d, &mut others)).collect();
            (unit, key, descendants)
        })
        .collect();
    Ok(Price {
        model_id: answer.get_item(2)?.extract()?,
        provider_id: answer.get_item(3)?.extract()?,
        tier: answer.get_item(4)?.extract()?,
        units,
        leaf_order,
        has_tiers: answer.get_item(7)?.extract()?,
        has_cache_read: answer.get_item(8)?.extract()?,
    })
}

/// What a read asked that the stage has not seen (`GenAIStage.learn` answers it).
#[pyclass(module = "collector._native")]
pub struct Questions {
    misses: Vec<Miss>,
    generation: u64,
}

/// What the stage did to one request: the calls it read, priced and changed, not yet spliced.
#[pyclass(module = "collector._native")]
pub struct StageResult {
    wire: PyBackedBytes,
    /// The thread that read the calls, which frees them.
    home: Home,
    /// The stage's generation when it read the request (`Stage::generation`).
    generation: u64,
    calls: Vec<Call>,
    /// Payload starts of the GenAI spans left to Python.
    #[pyo3(get)]
    python_spans: Vec<usize>,
    matches: Vec<Option<Py<PyAny>>>,
    /// What the ledger rows name besides the calls, once they are priced.
    labels: Option<Labels>,
    /// (provider, model, reason) of each call with no price.
    #[pyo3(get)]
    unpriced: Vec<(Option<String>, String, String)>,
}

#[pymethods]
impl StageResult {
    /// The request with every call's changes spliced in, and `others` (edits of the spans Python read, as
    /// `edit_spans` takes them).
    #[allow(clippy::type_complexity)]
    fn splice<'py>(
        &self,
        py: Python<'py>,
        others: Vec<(usize, usize, Vec<(usize, Option<Vec<u8>>)>, Vec<u8>)>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let buf: &[u8] = &self.wire;
        let encoded: Vec<Vec<(usize, Option<Vec<u8>>)>> =
            py.detach(|| self.calls.iter().map(|call| edits_of(buf, call)).collect());
        let spliced = py
            .detach(|| {
                let mut replacements = Vec::with_capacity(self.calls.len() + others.len());
                for (start, end, attributes, append) in &others {
                    replacements.push((*start, traces::edit_span(buf, (*start, *end), attributes, append)?));
                }
                for (call, edits) in self.calls.iter().zip(&encoded) {
                    replacements.push((call.span.0, traces::edit_span(buf, call.span, edits, &call.appended)?));
                }
                replacements.sort_by_key(|(at, _)| *at);
                traces::splice(buf, &replacements)
            })
            .map_err(|_| PyValueError::new_err("the stage's edits do not fit the request"))?;
        spliced_bytes(py, &spliced)
    }

    /// The ledger rows of the billable calls (`CallColumns.add`), columns named `names`, the dimension
    /// columns from the stage's attribution dimensions at `dimensions`; None when a number does not fit.
    fn ledger(
        &self,
        py: Python<'_>,
        names: Vec<String>,
        dimensions: Vec<Option<usize>>,
    ) -> PyResult<Option<ArrowRows>> {
        if names.len() != column_count(dimensions.len()) {
            return Err(PyValueError::new_err(format!(
                "{} column names for {} columns",
                names.len(),
                column_count(dimensions.len())
            )));
        }
        let buf: &[u8] = &self.wire;
        let labels = self.labels()?;
        Ok(py
            .detach(|| ledger_rows(labels, buf, &self.calls, &names, &dimensions))
            .map(|array| ArrowRows { array }))
    }

    /// Budget state on the priced billable calls, as `genai_budget` appends it (`native/src/budget.rs`):
    /// `budgets` (spent and limit in pico-units, the thresholds below 1, the encoded id, period and limit) in
    /// its statuses' order; `matching(key)` answers, for each distinct (provider, model, service, *(dimension,
    /// value)) key, the indices of the budgets it matches and their encoded ids. False (nothing appended)
    /// when an amount is beyond the native arithmetic.
    fn spend(
        &mut self,
        budgets: Vec<BudgetArgument<'_>>,
        dimensions: Vec<String>,
        matching: Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let mut states = Vec::with_capacity(budgets.len());
        for (spent, limit, warnings, prefix) in budgets {
            let (Ok(spent), Ok(limit)) = (spent.extract::<i128>(), limit.extract::<i128>()) else {
                return Ok(false);
            };
            states.push(BudgetState {
                spent,
                limit,
                warnings,
                prefix,
            });
        }
        let py = matching.py();
        let (keys, of_calls) = spend_keys(&self.calls);
        let mut matched = Vec::with_capacity(keys.len());
        for (provider, model, service, values) in keys {
            let mut items = vec![
                provider.into_pyobject(py)?.into_any(),
                model.into_pyobject(py)?.into_any(),
                service.into_pyobject(py)?.into_any(),
            ];
            for (dimension, value) in dimensions.iter().zip(values) {
                if let Some(value) = value {
                    items.push((dimension, value).into_pyobject(py)?.into_any());
                }
            }
            let (budgets, ids): (Vec<usize>, Vec<u8>) = matching.call1((PyTuple::new(py, items)?,))?.extract()?;
            if budgets.iter().any(|&index| index >= states.len()) {
                return Err(PyValueError::new_err("a matching budget index out of range"));
            }
            matched.push(Matched { budgets, ids });
        }
        Ok(budget::spend(&mut self.calls, &of_calls, &matched, &states).is_some())
    }

    /// Queue encoded attributes for the stage's call of the span at this payload start; False when the
    /// stage has no call there.
    fn append(&mut self, start: usize, encoded: &[u8]) -> bool {
        match self.calls.binary_search_by_key(&start, |call| call.span.0) {
            Ok(index) => {
                self.calls[index].appended.extend_from_slice(encoded);
                true
            }
            Err(_) => false,
        }
    }

    /// The number of calls the stage read.
    #[getter]
    fn count(&self) -> usize {
        self.calls.len()
    }

    /// The span payload start of each ledger row, in order.
    fn ledger_starts(&self) -> Vec<usize> {
        self.calls
            .iter()
            .filter(|call| call.billable && call.cost.is_some())
            .map(|call| call.span.0)
            .collect()
    }

    /// Each call as a tuple `processors/genai_native.py` makes a `WireCall` of: (span payload start,
    /// dialect, provider, operation, request model, response model, response id, input, output, [cache
    /// read, cache write, reasoning, input audio, output audio], total, tier, reported cost, billable, skip
    /// reason, usage error, cost or None, updated {position: value}, dropped positions, appended bytes,
    /// attribution values by dimension or None);
    /// the cost as (status, amount, breakdown or None, source, PriceMatch or None, reported, mismatch,
    /// reason, priced at the catalog's snapshot).
    fn calls<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let mut out = Vec::with_capacity(self.calls.len());
        let labels = self.labels()?;
        for ((call, matched), dialect) in self.calls.iter().zip(&self.matches).zip(&labels.dialects) {
            let cost = match &call.cost {
                None => py.None().into_bound(py),
                Some(cost) => (
                    cost.status,
                    cost.amount,
                    cost.breakdown.map(|parts| parts.to_vec()),
                    cost.source,
                    matched.as_ref().map(|m| m.clone_ref(py)),
                    cost.reported,
                    cost.mismatch,
                    &cost.reason,
                    cost.priced_at_snapshot,
                )
                    .into_pyobject(py)?
                    .into_any(),
            };
            let updated = PyDict::new(py);
            for (position, value) in &call.updated {
                match value {
                    Canonical::Str(text) => updated.set_item(position, text)?,
                    Canonical::Int(number) => updated.set_item(position, number)?,
                }
            }
            let text = &call.text;
            let fields = (
                call.span.0,
                &**dialect,
                text[0].as_deref(),
                text[1].as_deref(),
                text[2].as_deref(),
                text[3].as_deref(),
                text[4].as_deref(),
                call.input,
                call.output,
                call.counts.to_vec(),
                call.total,
                &*call.tier,
            )
                .into_pyobject(py)?;
            let outcome = (
                call.reported,
                call.billable,
                call.skip_reason,
                &call.usage_error,
                cost,
                updated,
                call.dropped.clone(),
                PyBytes::new(py, &call.appended),
                &call.attribution,
            )
                .into_pyobject(py)?;
            let items: Vec<Bound<'py, PyAny>> = fields.iter().chain(outcome.iter()).collect();
            out.push(PyTuple::new(py, items)?);
        }
        Ok(out)
    }
}

impl Drop for StageResult {
    fn drop(&mut self) {
        self.home.free((std::mem::take(&mut self.calls), self.labels.take()));
    }
}

impl StageResult {
    fn labels(&self) -> PyResult<&Labels> {
        self.labels
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("the stage has not finished this request"))
    }
}

/// Arrow data handed to Python through the Arrow PyCapsule interface (`pyarrow.record_batch(rows)`).
#[pyclass(name = "ArrowRows", module = "collector._native", frozen)]
pub struct ArrowRows {
    array: StructArray,
}

#[pymethods]
impl ArrowRows {
    /// The Arrow C data interface's (schema, array) capsules; the data moves to whoever imports them.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema; // the rows have the ledger's own types
        let (array, schema) =
            to_ffi(&self.array.to_data()).map_err(|error| PyValueError::new_err(error.to_string()))?;
        Ok((
            PyCapsule::new_with_value(py, schema, c"arrow_schema")?,
            PyCapsule::new_with_value(py, array, c"arrow_array")?,
        ))
    }

    fn __len__(&self) -> usize {
        self.array.len()
    }
}

/// A call's attribute edits by position, sorted: dropped ones (None), then updated values encoded under
/// the key at their position (`WireCall.edits`).
fn edits_of(buf: &[u8], call: &Call) -> Vec<(usize, Option<Vec<u8>>)> {
    let mut edits: Vec<(usize, Option<Vec<u8>>)> = call.dropped.iter().map(|at| (*at, None)).collect();
    for (position, value) in &call.updated {
        if call.dropped.contains(position) {
            continue;
        }
        let (start, end): Range = call.parts.attributes[*position].0;
        let key = std::str::from_utf8(&buf[start..end]).unwrap_or_default();
        let mut encoded = Vec::new();
        let scalar = match value {
            Canonical::Str(text) => Scalar::Str(text),
            Canonical::Int(number) => Scalar::Int(*number),
        };
        encode(&mut encoded, key, scalar);
        edits.push((*position, Some(encoded)));
    }
    edits.sort_by_key(|(at, _)| *at);
    edits
}
