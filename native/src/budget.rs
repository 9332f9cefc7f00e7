//! Budget state on the stage's priced calls (`processors/genai_budget.py`: `process` and `_encode`): each call
//! a budget matches carries the state of its tightest budget after it, the spend being what the ledger
//! committed plus the request's calls up to and including this one. Which budgets a call matches is
//! Python's answer (globs, asked once per distinct key); the arithmetic per call is here.

use rustc_hash::FxHashMap;

use crate::attributes::{encode, to_double, Scalar};
use crate::genai::Call;

/// A budget as one request reads it.
pub struct BudgetState {
    /// What the ledger committed in its current period, pico-units.
    pub spent: i128,
    /// Positive, pico-units.
    pub limit: i128,
    /// The thresholds below 1: passing one is a warning.
    pub warnings: Vec<f64>,
    /// Its encoded `gen_ai.budget.id`, `.period` and `.limit`.
    pub prefix: Vec<u8>,
}

/// What the budgets of one key are: their indices among the states, and their encoded `gen_ai.budget.ids`.
pub struct Matched {
    pub budgets: Vec<usize>,
    pub ids: Vec<u8>,
}

/// The key of a priced call: provider, model, service and its attribution values by dimension.
pub type SpendKey<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a [Option<String>]);

/// Whether a call adds to budgets: billable, with an amount.
pub fn priced(call: &Call) -> bool {
    call.billable && call.cost.as_ref().is_some_and(|cost| cost.amount.is_some())
}

/// The distinct keys of the priced calls in first-seen order, and each call's key (None for calls not priced).
pub fn spend_keys(calls: &[Call]) -> (Vec<SpendKey<'_>>, Vec<Option<usize>>) {
    let mut index: FxHashMap<SpendKey<'_>, usize> = FxHashMap::default();
    let mut keys = Vec::new();
    let of_calls = calls
        .iter()
        .map(|call| {
            priced(call).then(|| {
                let key = (
                    call.provider(),
                    call.model(),
                    call.service.as_deref(),
                    call.attribution.as_deref().unwrap_or_default(),
                );
                *index.entry(key).or_insert_with(|| {
                    keys.push(key);
                    keys.len() - 1
                })
            })
        })
        .collect();
    (keys, of_calls)
}

/// Appends the budget attributes to each priced call whose key matches a budget, in the calls' order. None
/// (nothing appended) when a quotient is beyond [`ratio`].
pub fn spend(calls: &mut [Call], keys: &[Option<usize>], matched: &[Matched], budgets: &[BudgetState]) -> Option<()> {
    let mut added = vec![0i128; budgets.len()];
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(calls.len());
    for (call, key) in calls.iter().zip(keys) {
        let matching = key
            .map(|key| &matched[key])
            .filter(|matching| !matching.budgets.is_empty());
        let Some(matching) = matching else {
            encoded.push(Vec::new());
            continue;
        };
        let amount = call.cost.as_ref().and_then(|cost| cost.amount)?;
        let mut tightest: Option<(usize, f64)> = None;
        for &budget in &matching.budgets {
            added[budget] += amount;
            let utilization = ratio(budgets[budget].spent + added[budget], budgets[budget].limit)?;
            if tightest.is_none_or(|(_, most)| utilization > most) {
                tightest = Some((budget, utilization));
            }
        }
        let (index, utilization) = tightest.expect("a key that matches budgets");
        encoded.push(state(
            &budgets[index],
            budgets[index].spent + added[index],
            utilization,
            &matching.ids,
        ));
    }
    for (call, bytes) in calls.iter_mut().zip(encoded) {
        call.appended.extend_from_slice(&bytes);
    }
    Some(())
}

/// The encoded state of a budget with this spend (`_encode`): its prefix, every matching id, then spent,
/// remaining, utilization (rounded to 6 places) and status.
fn state(budget: &BudgetState, spent: i128, utilization: f64, ids: &[u8]) -> Vec<u8> {
    let status = if spent >= budget.limit {
        "exceeded"
    } else if budget.warnings.iter().any(|&threshold| utilization >= threshold) {
        "warning"
    } else {
        "ok"
    };
    let mut out = Vec::with_capacity(budget.prefix.len() + ids.len() + 160);
    out.extend_from_slice(&budget.prefix);
    out.extend_from_slice(ids);
    encode(&mut out, "gen_ai.budget.spent", Scalar::Double(to_double(spent)));
    encode(
        &mut out,
        "gen_ai.budget.remaining",
        Scalar::Double(to_double(budget.limit - spent)),
    );
    encode(
        &mut out,
        "gen_ai.budget.utilization",
        Scalar::Double(round6(utilization)),
    );
    encode(&mut out, "gen_ai.budget.status", Scalar::Str(status));
    out
}

/// Python's `round(value, 6)`: the decimal correctly rounded, ties to even, read back.
fn round6(value: f64) -> f64 {
    if !value.is_finite() {
        return value;
    }
    format!("{value:.6}").parse().expect("a decimal number")
}

/// Python's `numerator / denominator` of integers (`denominator` > 0): the quotient correctly rounded to a
/// double. None when the denominator has more than 72 bits (the shifted numerator would not fit).
pub fn ratio(numerator: i128, denominator: i128) -> Option<f64> {
    const EXACT: u128 = 1 << 53;
    let (magnitude, divisor) = (numerator.unsigned_abs(), denominator.unsigned_abs());
    if denominator <= 0 || divisor.ilog2() > 71 {
        return None;
    }
    let quotient = if magnitude <= EXACT && divisor <= EXACT {
        magnitude as f64 / divisor as f64 // both exact: IEEE division rounds correctly
    } else if magnitude == 0 {
        0.0
    } else {
        rounded_quotient(magnitude, divisor)
    };
    Some(if numerator < 0 { -quotient } else { quotient })
}

/// `magnitude / divisor` rounded to the nearest double, ties to even: 55 or 56 bits of the quotient, whether
/// anything is left over, then the last bits rounded away.
fn rounded_quotient(magnitude: u128, divisor: u128) -> f64 {
    let shift = 55 - (magnitude.ilog2() as i32 - divisor.ilog2() as i32);
    let (quotient, remainder) = if shift >= 0 {
        let scaled = magnitude << shift; // magnitude < 2^(55 + bits of divisor - shift + 1) ≤ 2^128
        (scaled / divisor, scaled % divisor)
    } else {
        let scaled = divisor << -shift;
        (magnitude / scaled, magnitude % scaled)
    };
    let extra = quotient.ilog2() - 52; // bits below the 53 a double keeps: 2 or 3
    let mut mantissa = quotient >> extra;
    let dropped = quotient & ((1 << extra) - 1);
    let half = 1 << (extra - 1);
    if dropped > half || (dropped == half && (remainder != 0 || mantissa & 1 == 1)) {
        mantissa += 1;
    }
    mantissa as f64 * 2f64.powi(extra as i32 - shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quotient by exact comparison: the double nearest to n/d, ties to even, from its neighbours.
    fn reference(numerator: u128, denominator: u128) -> f64 {
        let guess = numerator as f64 / denominator as f64;
        let mut best = guess;
        for candidate in [
            guess.next_down().next_down(),
            guess.next_down(),
            guess,
            guess.next_up(),
            guess.next_up().next_up(),
        ] {
            if distance(candidate, numerator, denominator) < distance(best, numerator, denominator) {
                best = candidate;
            }
        }
        best
    }

    /// |candidate - n/d| scaled by d and 2^k so it is an integer (candidate = m * 2^e).
    fn distance(candidate: f64, numerator: u128, denominator: u128) -> (u128, bool) {
        let bits = candidate.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32 - 1075;
        let mantissa = u128::from((bits & ((1 << 52) - 1)) | (1 << 52));
        // compare m * 2^e * d with n, both scaled by 2^-min(e, 0)
        let (left, right) = if exponent >= 0 {
            ((mantissa * denominator) << exponent, numerator)
        } else {
            (mantissa * denominator, numerator << -exponent)
        };
        (left.abs_diff(right), mantissa & 1 == 1)
    }

    #[test]
    fn ratio_is_correctly_rounded() {
        let mut next = crate::testing::random(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let denominator = u128::from(next() >> (next() % 40)) + 1;
            let numerator = u128::from(next() >> (next() % 50)) * u128::from((next() % 3) + 1) + 1;
            let got = ratio(numerator as i128, denominator as i128).unwrap();
            assert_eq!(got, reference(numerator, denominator), "{numerator} / {denominator}");
        }
    }

    #[test]
    fn ratio_ties_go_to_even() {
        // (2^54 + 2) / 2 = 2^53 + 1 sits halfway between two doubles: it rounds to the even 2^53
        assert_eq!(ratio((1 << 54) + 2, 2), Some(9007199254740992.0));
        assert_eq!(ratio((1 << 54) + 6, 2), Some(9007199254740996.0));
        assert_eq!(ratio(-(1 << 60), 1 << 58), Some(-4.0));
        assert_eq!(ratio(1, 0), None);
        assert_eq!(ratio(1, 1 << 80), None);
    }

    fn status_of(encoded: &[u8]) -> &str {
        let text = std::str::from_utf8(&encoded[encoded.len() - 8..]).unwrap_or_default();
        ["exceeded", "warning", "ok"]
            .into_iter()
            .find(|status| text.ends_with(status))
            .unwrap_or_default()
    }

    #[test]
    fn a_budget_is_exceeded_at_its_limit_and_warns_at_a_threshold() {
        let budget = BudgetState {
            spent: 0,
            limit: 1000,
            warnings: vec![0.5],
            prefix: Vec::new(),
        };
        assert_eq!(status_of(&state(&budget, 1000, 1.0, &[])), "exceeded");
        assert_eq!(status_of(&state(&budget, 999, 0.999, &[])), "warning");
        assert_eq!(status_of(&state(&budget, 500, 0.5, &[])), "warning");
        assert_eq!(status_of(&state(&budget, 499, 0.499, &[])), "ok");
    }

    #[test]
    fn round6_is_half_even_on_the_exact_value() {
        assert_eq!(round6(0.0078125), 0.007812);
        assert_eq!(round6(0.0234375), 0.023438);
        assert_eq!(round6(1.0), 1.0);
    }
}
