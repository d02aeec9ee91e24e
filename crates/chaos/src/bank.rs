//! Bank checker: money moves between accounts by transfers, so every
//! snapshot read must see the same total, no account missing, and (unless
//! allowed) no negative balance. A wrong total means a transfer was seen
//! half-applied or lost (read skew, lost update, torn snapshot).
//!
//! Reads are `f = "read"` ops whose `ok` value is a map `{account: balance}`;
//! transfers are not checked directly (their effect shows up in reads).

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{Anomaly, AnomalyKind, CheckError, CheckResult};
use crate::history::{compact, History, Op, OpFn, Outcome};

/// What a correct snapshot looks like. `None` fields are inferred from the
/// history (and the inference is reported in the result's notes).
#[derive(Debug, Clone, Default)]
pub struct BankConfig {
    /// The constant total; inferred as the most common sum among reads.
    pub total: Option<i64>,
    /// Every account; inferred as the union of accounts seen in reads.
    pub accounts: Option<BTreeSet<String>>,
    pub allow_negative: bool,
}

pub fn check_bank(history: &History, cfg: &BankConfig) -> Result<CheckResult, CheckError> {
    let ops = history.ops()?;
    check_bank_ops(&ops, cfg)
}

/// Check already-paired ops (see [`History::ops`]).
pub fn check_bank_ops(ops: &[Op], cfg: &BankConfig) -> Result<CheckResult, CheckError> {
    let mut reads: Vec<(&Op, BTreeMap<String, Option<i64>>)> = Vec::new();
    for op in ops {
        if op.f != OpFn::Read || op.outcome != Outcome::Ok {
            continue;
        }
        let map = op.value.as_object().ok_or_else(|| {
            CheckError::bad_op(
                op.invoke_index,
                format!(
                    "bank read must return an object, got {}",
                    compact(&op.value)
                ),
            )
        })?;
        let mut balances = BTreeMap::new();
        for (acct, bal) in map {
            // null = the account does not exist in this snapshot.
            let b = match bal {
                serde_json::Value::Null => None,
                v => Some(v.as_i64().ok_or_else(|| {
                    CheckError::bad_op(
                        op.invoke_index,
                        format!("balance of {acct} is not an integer: {}", compact(v)),
                    )
                })?),
            };
            balances.insert(acct.clone(), b);
        }
        reads.push((op, balances));
    }

    let mut notes = Vec::new();
    let accounts = match &cfg.accounts {
        Some(a) => a.clone(),
        None => {
            let a: BTreeSet<String> = reads.iter().flat_map(|(_, m)| m.keys().cloned()).collect();
            notes.push(format!(
                "accounts inferred from reads: {}",
                a.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            a
        }
    };
    let sum = |m: &BTreeMap<String, Option<i64>>| -> i64 { m.values().flatten().sum() };
    let total = match cfg.total {
        Some(t) => t,
        None => {
            let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
            for (_, m) in &reads {
                *counts.entry(sum(m)).or_default() += 1;
            }
            let t = counts
                .iter()
                .max_by_key(|(_, c)| **c)
                .map(|(t, _)| *t)
                .unwrap_or(0);
            notes.push(format!(
                "total inferred as the most common sum of a read: {t} (pass the real total to be sure)"
            ));
            t
        }
    };

    let mut anomalies = Vec::new();
    for (op, m) in &reads {
        let shown = compact(&op.value);
        let missing: Vec<&str> = accounts
            .iter()
            .filter(|a| !matches!(m.get(*a), Some(Some(_))))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            anomalies.push(Anomaly::new(
                AnomalyKind::MissingAccount,
                format!(
                    "read {} is missing account(s) {}: {shown}",
                    op.describe_short(),
                    missing.join(", ")
                ),
                vec![op.invoke_index],
            ));
        }
        let extra: Vec<&str> = m
            .keys()
            .filter(|a| !accounts.contains(*a))
            .map(String::as_str)
            .collect();
        if !extra.is_empty() {
            anomalies.push(Anomaly::new(
                AnomalyKind::UnexpectedAccount,
                format!(
                    "read {} has unknown account(s) {}: {shown}",
                    op.describe_short(),
                    extra.join(", ")
                ),
                vec![op.invoke_index],
            ));
        }
        let s = sum(m);
        if s != total {
            anomalies.push(Anomaly::new(
                AnomalyKind::WrongTotal,
                format!(
                    "read {} sums to {s}, expected {total} (off by {}): {shown}",
                    op.describe_short(),
                    s - total
                ),
                vec![op.invoke_index],
            ));
        }
        if !cfg.allow_negative {
            let neg: Vec<String> = m
                .iter()
                .filter_map(|(a, b)| b.filter(|b| *b < 0).map(|b| format!("{a}={b}")))
                .collect();
            if !neg.is_empty() {
                anomalies.push(Anomaly::new(
                    AnomalyKind::NegativeBalance,
                    format!(
                        "read {} has negative balance(s) {}: {shown}",
                        op.describe_short(),
                        neg.join(", ")
                    ),
                    vec![op.invoke_index],
                ));
            }
        }
    }
    Ok(CheckResult::from_anomalies(
        "bank",
        reads.len(),
        anomalies,
        notes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Validity;
    use crate::history::HistoryBuilder;
    use serde_json::{json, Value};

    fn history(reads: &[Value]) -> History {
        let mut b = HistoryBuilder::new();
        b.invoke(
            0,
            "transfer",
            None,
            json!({"from": "a", "to": "b", "amount": 5}),
        )
        .ok(0, Value::Null);
        for (i, r) in reads.iter().enumerate() {
            let p = 1 + i as u64;
            b.invoke(p, "read", None, Value::Null).ok(p, r.clone());
        }
        b.build()
    }

    fn cfg() -> BankConfig {
        BankConfig {
            total: Some(100),
            accounts: Some(["a", "b"].iter().map(|s| s.to_string()).collect()),
            allow_negative: false,
        }
    }

    #[test]
    fn consistent_reads_pass() {
        let h = history(&[json!({"a": 50, "b": 50}), json!({"a": 45, "b": 55})]);
        let r = check_bank(&h, &cfg()).unwrap();
        assert_eq!(r.valid, Validity::Valid, "{r}");
        assert_eq!(r.ops_checked, 2);
    }

    #[test]
    fn wrong_total_is_flagged() {
        let h = history(&[json!({"a": 50, "b": 50}), json!({"a": 45, "b": 50})]);
        let r = check_bank(&h, &cfg()).unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(r.anomalies.len(), 1);
        assert_eq!(r.anomalies[0].kind, AnomalyKind::WrongTotal);
        assert!(
            r.anomalies[0].text.contains("sums to 95, expected 100"),
            "{r}"
        );
    }

    #[test]
    fn negative_and_missing_accounts() {
        let h = history(&[json!({"a": -10, "b": 110}), json!({"a": 100})]);
        let r = check_bank(&h, &cfg()).unwrap();
        assert!(r.has(AnomalyKind::NegativeBalance), "{r}");
        assert!(r.has(AnomalyKind::MissingAccount), "{r}");
        let ok = check_bank(
            &h,
            &BankConfig {
                allow_negative: true,
                ..cfg()
            },
        )
        .unwrap();
        assert!(!ok.has(AnomalyKind::NegativeBalance));
    }

    #[test]
    fn total_and_accounts_can_be_inferred() {
        let h = history(&[
            json!({"a": 50, "b": 50}),
            json!({"a": 40, "b": 60}),
            json!({"a": 40, "b": 50}),
        ]);
        let r = check_bank(&h, &BankConfig::default()).unwrap();
        assert_eq!(r.anomalies.len(), 1, "{r}");
        assert_eq!(r.anomalies[0].ops, vec![6]);
        assert_eq!(r.notes.len(), 2);
    }

    #[test]
    fn non_object_read_is_an_error() {
        let h = history(&[json!([1, 2])]);
        assert!(matches!(
            check_bank(&h, &cfg()),
            Err(CheckError::BadOp { .. })
        ));
    }
}
