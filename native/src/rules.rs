//! The dialect rules of `processors/dialect_rules.py` the GenAI stage applies itself: what OpenInference,
//! the Vercel AI SDK, Langfuse, Google ADK and OpenLIT need beyond the tables (operations from their own
//! span kinds, response ids and tiers from JSON they embed, Langfuse's usage details, OpenLIT's zero cost).
//! LiteLLM's rule parses Python literals and stays in Python.
//!
//! The Python rules are the reference. Where a value could make Python's reading differ from this one
//! (JSON only Python parses, a non-ASCII span kind, a number whose Python text is not reproduced here), the
//! span is declined and Python reads it.

use serde_json::{Map, Value as Json};

use crate::attributes::python_repr;
use crate::genai::{
    reported_cost, standard_tier, Call, Decline, Miss, Stage, Text, TextKind, OPERATION, PROVIDER, REQUEST_MODEL,
    RESPONSE_ID, RESPONSE_MODEL,
};
use crate::traces::Value;

/// The attributes the rules read beyond the table's fields; a plan gives their positions in this order.
pub const RULE_KEYS: [&str; 7] = [
    "openinference.span.kind",
    "output.value",
    "llm.invocation_parameters",
    "ai.operationId",
    "ai.response.providerMetadata",
    "langfuse.observation.usage_details",
    "langfuse.observation.cost_details",
];
const SPAN_KIND: usize = 0;
const OUTPUT_VALUE: usize = 1;
const INVOCATION_PARAMETERS: usize = 2;
const OPERATION_ID: usize = 3;
const PROVIDER_METADATA: usize = 4;
const USAGE_DETAILS: usize = 5;
const COST_DETAILS: usize = 6;

/// The dialects whose rule the stage applies, by their `gen_ai.normalize.dialect` names.
pub const NATIVE_RULES: [(&str, Rule); 5] = [
    ("openinference", Rule::OpenInference),
    ("vercel_ai", Rule::Vercel),
    ("langfuse", Rule::Langfuse),
    ("google_adk", Rule::GoogleAdk),
    ("openlit", Rule::OpenLit),
];

/// A dialect's own rule, applied after the table-driven fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Rule {
    #[default]
    None,
    OpenInference,
    Vercel,
    Langfuse,
    GoogleAdk,
    OpenLit,
}

impl Rule {
    pub fn of(dialect: &str) -> Rule {
        NATIVE_RULES
            .iter()
            .find(|(name, _)| *name == dialect)
            .map_or(Rule::None, |(_, rule)| *rule)
    }
}

/// The characters of `output.value` searched for a response id (`MAX_OUTPUT_SCAN`).
const MAX_OUTPUT_SCAN: usize = 1 << 20;
const RESPONSE_ID_PREFIXES: [&[u8]; 3] = [b"chatcmpl", b"resp", b"msg"];
const MAX_ID_LENGTH: usize = 200;

type Read<T> = Result<T, Decline>;

impl Stage {
    /// The rule of the call's dialect (`DIALECT_RULES[dialect](call, span)`).
    pub(crate) fn apply_rule(&self, buf: &[u8], call: &mut Call, misses: &mut Vec<Miss>) -> Read<()> {
        let plan = self.plan(call.plan);
        let value = |key: usize| -> Read<Value> {
            match plan.rule_positions.get(key).copied().flatten() {
                None => Ok(Value::Unset),
                Some(position) => crate::genai::value_at(&call.parts, position).ok_or(Decline),
            }
        };
        match plan.rule {
            Rule::None => {}
            Rule::OpenInference => {
                let kind = text_or_empty(buf, value(SPAN_KIND)?)?;
                if !kind.is_ascii() {
                    return Err(Decline); // Python's upper() and lower() are Unicode's
                }
                let kind = kind.to_ascii_uppercase();
                let operation = match kind.as_str() {
                    "LLM" => Some("chat".to_owned()),
                    "EMBEDDING" => Some("embeddings".to_owned()),
                    "" => None,
                    other => Some(other.to_ascii_lowercase()),
                };
                let has_response_id = call.text[RESPONSE_ID].as_deref().is_some_and(|id| !id.is_empty());
                if kind == "LLM" && !has_response_id {
                    if let Some(output) = text(buf, value(OUTPUT_VALUE)?)? {
                        call.text[RESPONSE_ID] = response_id_in(output)?.map(Text::from);
                    }
                }
                call.text[OPERATION] = operation.map(Text::from);
                let parameters = json_object(buf, value(INVOCATION_PARAMETERS)?)?;
                let request_model = call.text[REQUEST_MODEL].as_deref().is_some_and(|m| !m.is_empty());
                let response_model = call.text[RESPONSE_MODEL].as_deref().is_some_and(|m| !m.is_empty());
                if !request_model && response_model {
                    call.text[REQUEST_MODEL] = json_text(parameters.get("model"))?.map(Text::from);
                }
                if let Some(tier) = parameters.get("service_tier").filter(|tier| truthy(tier)) {
                    call.tier = self.tier_of(tier, misses);
                }
            }
            Rule::Vercel => {
                let operation_id = match text_or_empty(buf, value(OPERATION_ID)?)? {
                    "" => std::str::from_utf8(&buf[call.parts.name.0..call.parts.name.1]).map_err(|_| Decline)?,
                    text => text,
                };
                let operation = if operation_id.ends_with(".doGenerate") || operation_id.ends_with(".doStream") {
                    "chat"
                } else if operation_id.ends_with(".doEmbed") {
                    "embeddings"
                } else {
                    "chain" // ai.generateText & co. aggregate their steps
                };
                call.text[OPERATION] = Some(Text::from(operation));
                let metadata = json_object(buf, value(PROVIDER_METADATA)?)?;
                let openai = member(metadata.get("openai"), "serviceTier")?;
                let tier = match openai.filter(|tier| truthy(tier)) {
                    Some(tier) => Some(tier),
                    None => member(member(metadata.get("anthropic"), "usage")?, "service_tier")?,
                };
                if let Some(tier) = tier.filter(|tier| truthy(tier)) {
                    call.tier = self.tier_of(tier, misses);
                }
            }
            Rule::Langfuse => {
                let usage = json_object(buf, value(USAGE_DETAILS)?)?;
                if !usage.is_empty() {
                    let mut numbers = Vec::with_capacity(usage.len());
                    for (key, count) in &usage {
                        match json_token_count(count)? {
                            Ok(count) => numbers.push((key.as_str(), count)),
                            Err(error) => {
                                call.usage_error = format!("usage_details: {error}");
                                return Ok(());
                            }
                        }
                    }
                    let sum = |wanted: &dyn Fn(&str) -> bool| -> Read<i64> {
                        numbers
                            .iter()
                            .filter(|(key, _)| wanted(key))
                            .try_fold(0i64, |sum, (_, count)| sum.checked_add(*count).ok_or(Decline))
                    };
                    call.counts[0] = sum(&|key| {
                        matches!(
                            key,
                            "input_cached_tokens" | "input_cache_read" | "cache_read_input_tokens"
                        )
                    })?;
                    call.counts[1] = sum(&|key| {
                        matches!(
                            key,
                            "input_cache_creation" | "input_cache_write" | "cache_creation_input_tokens"
                        )
                    })?;
                    call.counts[2] = sum(&|key| matches!(key, "output_reasoning_tokens" | "output_reasoning"))?;
                    call.input = Some(sum(&|key| key.starts_with("input"))?);
                    call.output = Some(sum(&|key| key.starts_with("output"))?);
                }
                let costs = json_object(buf, value(COST_DETAILS)?)?;
                match costs.get("total") {
                    None | Some(Json::Null) => {}
                    Some(total) => call.reported = json_reported_cost(total)?,
                }
                if call.text[PROVIDER].is_none() {
                    call.text[PROVIDER] = self.model_provider(call, misses);
                }
            }
            Rule::GoogleAdk => {
                if let Some(provider) = self.model_provider(call, misses) {
                    call.text[PROVIDER] = Some(provider);
                }
                if &buf[call.parts.name.0..call.parts.name.1] == b"call_llm" {
                    call.text[OPERATION] = Some(Text::from("chat"));
                }
            }
            Rule::OpenLit => {
                // OpenLIT writes a zero cost when it has no price for the model: that is no report
                let has_tokens = call.input.unwrap_or(0) != 0 || call.output.unwrap_or(0) != 0;
                if call.reported == Some(0.0) && has_tokens {
                    call.reported = None;
                }
            }
        }
        Ok(())
    }

    /// `normalize_tier` of a JSON value: text normalised (as Python answers it), anything else standard.
    fn tier_of(&self, tier: &Json, misses: &mut Vec<Miss>) -> Text {
        match tier {
            Json::String(text) => self.text(TextKind::Tier, text, misses).flatten().unwrap_or_default(),
            _ => standard_tier(),
        }
    }

    /// `provider_from_model(call.model)`: None when the call names no model (or Python has not answered).
    fn model_provider(&self, call: &Call, misses: &mut Vec<Miss>) -> Option<Text> {
        let model = call.model().filter(|model| !model.is_empty())?;
        self.text(TextKind::ModelProvider, model, misses).flatten()
    }
}

/// The value when it is text (`isinstance(value, str)`), None for other kinds.
fn text(buf: &[u8], value: Value) -> Read<Option<&str>> {
    match value {
        Value::Str((start, end)) => std::str::from_utf8(&buf[start..end]).map(Some).map_err(|_| Decline),
        _ => Ok(None),
    }
}

/// `str(value or "")` for the values whose Python text is plain: text, or empty for a missing or falsy one.
fn text_or_empty(buf: &[u8], value: Value) -> Read<&str> {
    match value {
        Value::Str(_) => Ok(text(buf, value)?.unwrap_or_default()),
        Value::Unset | Value::Bool(false) | Value::Int(0) => Ok(""),
        Value::Double(0.0) => Ok(""), // -0.0 too
        _ => Err(Decline),
    }
}

/// `json_attr`: the JSON object a text attribute holds, empty when it holds no object; JSON only Python
/// parses (NaN, lone surrogates, deep nesting) or that neither parses is declined.
fn json_object(buf: &[u8], value: Value) -> Read<Map<String, Json>> {
    let Some(text) = text(buf, value)? else {
        return Ok(Map::new());
    };
    match serde_json::from_str(text) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(_) => Ok(Map::new()),
        Err(_) => Err(Decline),
    }
}

/// Python's truthiness of a JSON value.
fn truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(flag) => *flag,
        Json::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Json::String(text) => !text.is_empty(),
        Json::Array(items) => !items.is_empty(),
        Json::Object(members) => !members.is_empty(),
    }
}

/// `(value or {}).get(key)`: a member of an object, None when the value is missing or falsy; another truthy
/// value (where Python would fail) is declined.
fn member<'a>(value: Option<&'a Json>, key: &str) -> Read<Option<&'a Json>> {
    match value {
        None => Ok(None),
        Some(Json::Object(members)) => Ok(members.get(key)),
        Some(other) if !truthy(other) => Ok(None),
        Some(_) => Err(Decline),
    }
}

/// `token_count` of a JSON value: Ok(Err(message)) as Python words it, or declined where its text differs.
fn json_token_count(value: &Json) -> Read<Result<i64, String>> {
    let number = match value {
        Json::Number(number) => {
            if let Some(number) = number.as_i64() {
                number
            } else if let Some(number) = number.as_u64() {
                return Ok(Err(format!("token count {number} is negative or absurd")));
            } else {
                let float = number.as_f64().ok_or(Decline)?;
                if !(float.is_finite() && float.abs() < 1e18) {
                    return Err(Decline); // Python words it with the float's repr
                }
                float.trunc() as i64
            }
        }
        Json::Bool(flag) => {
            let text = if *flag { "True" } else { "False" };
            return Ok(Err(format!("token count {text} is not a whole number")));
        }
        Json::Null => return Ok(Err("token count None is not a whole number".to_owned())),
        Json::String(_) | Json::Array(_) | Json::Object(_) => return Err(Decline),
    };
    if !(0..=crate::genai::MAX_TOKENS).contains(&number) {
        return Ok(Err(format!("token count {number} is negative or absurd")));
    }
    Ok(Ok(number))
}

/// `as_text` of a JSON value: text as it is, a number as Python writes it, nothing for other kinds.
fn json_text(value: Option<&Json>) -> Read<Option<String>> {
    Ok(match value {
        Some(Json::String(text)) => Some(text.clone()),
        Some(Json::Number(number)) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(integer), _, _) => Some(integer.to_string()),
            (_, Some(integer), _) => Some(integer.to_string()),
            (_, _, Some(0.0)) => return Err(Decline), // serde reads "-0" as -0.0, Python as the integer 0
            (_, _, float) => float.map(python_repr),
        },
        None | Some(Json::Null | Json::Bool(_) | Json::Array(_) | Json::Object(_)) => None,
    })
}

/// `reported_cost` of a JSON value other than null.
fn json_reported_cost(value: &Json) -> Read<Option<f64>> {
    match value {
        // serde_json reads "-0" as -0.0 where Python reads the integer 0: the sign is declined
        Json::Number(number) if number.as_f64() == Some(0.0) && number.as_i64().is_none() => Err(Decline),
        Json::Number(number) => Ok(number.as_f64().and_then(reported_cost)),
        Json::String(_) => Err(Decline), // float() of text has rules of its own
        Json::Null | Json::Bool(_) | Json::Array(_) | Json::Object(_) => Ok(None),
    }
}

/// The provider's response id quoted in OpenInference's `output.value`: the first
/// `"id":\s?"((?:chatcmpl|resp|msg)[-_][A-Za-z0-9_-]{1,200})"` within its first 2^20 characters.
fn response_id_in(output: &str) -> Read<Option<&str>> {
    let scanned = match output.len() > MAX_OUTPUT_SCAN {
        true => output
            .char_indices()
            .nth(MAX_OUTPUT_SCAN)
            .map_or(output, |(end, _)| &output[..end]),
        false => output,
    };
    let bytes = scanned.as_bytes();
    for at in memchr::memmem::find_iter(bytes, b"\"id\":") {
        let mut next = at + 5;
        match bytes.get(next) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c..=0x1f) => next += 1,
            Some(byte) if !byte.is_ascii() => return Err(Decline), // Python's \s is Unicode's
            _ => {}
        }
        if bytes.get(next) != Some(&b'"') {
            continue;
        }
        let id_start = next + 1;
        let Some(prefix) = RESPONSE_ID_PREFIXES
            .iter()
            .find(|prefix| bytes[id_start..].starts_with(prefix))
        else {
            continue;
        };
        let separator = id_start + prefix.len();
        if !matches!(bytes.get(separator), Some(b'-' | b'_')) {
            continue;
        }
        let body = &bytes[separator + 1..];
        let length = body
            .iter()
            .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_' || **byte == b'-')
            .count();
        if (1..=MAX_ID_LENGTH).contains(&length) && body.get(length) == Some(&b'"') {
            return Ok(Some(&scanned[id_start..separator + 1 + length]));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_ids_are_found_as_the_pattern_finds_them() {
        assert_eq!(
            response_id_in(r#"{"id": "chatcmpl-abc", "x": 1}"#),
            Ok(Some("chatcmpl-abc"))
        );
        assert_eq!(response_id_in(r#"{"id":"msg_01"}"#), Ok(Some("msg_01")));
        assert_eq!(response_id_in(r#"{"id":  "resp_1"}"#), Ok(None)); // one space at most
        assert_eq!(
            response_id_in(r#"{"id": "run-1", "y": {"id": "resp-2"}}"#),
            Ok(Some("resp-2"))
        );
        assert_eq!(response_id_in(r#"{"id": "msg_"}"#), Ok(None));
        let long = format!(r#"{{"id": "msg_{}"}}"#, "a".repeat(201));
        assert_eq!(response_id_in(&long), Ok(None));
        assert_eq!(response_id_in("{\"id\":\u{a0}\"msg_1\"}"), Err(Decline));
    }

    #[test]
    fn json_numbers_read_as_python_reads_them() {
        let parse = |text: &str| serde_json::from_str::<Json>(text).unwrap();
        assert_eq!(json_token_count(&parse("12")), Ok(Ok(12)));
        assert_eq!(json_token_count(&parse("12.9")), Ok(Ok(12)));
        assert_eq!(
            json_token_count(&parse("-3")),
            Ok(Err("token count -3 is negative or absurd".to_owned()))
        );
        assert_eq!(
            json_token_count(&parse("18446744073709551615")),
            Ok(Err("token count 18446744073709551615 is negative or absurd".to_owned()))
        );
        assert_eq!(json_token_count(&parse("\"12\"")), Err(Decline));
        assert_eq!(json_reported_cost(&parse("0.1")), Ok(Some(0.1)));
        assert_eq!(json_reported_cost(&parse("true")), Ok(None));
        assert!(!truthy(&parse("0.0")) && truthy(&parse("[0]")));
    }
}
