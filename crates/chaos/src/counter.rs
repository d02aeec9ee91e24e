//! Counter checker: `add` ops increment a counter by a delta, `read` ops
//! return its value. A read can only see adds that could have happened
//! before it finished, and must see every add acknowledged before it began:
//!
//! * lower bound = adds acknowledged (`ok`) before the read was invoked;
//! * upper bound = that plus every `ok` or `info` add invoked before the
//!   read completed (`info` adds may or may not have been applied).
//!
//! Negative deltas are allowed: an uncertain negative add widens the lower
//! bound instead. The last read, if no add was still running when it was
//! invoked, is thereby checked against [acknowledged, acknowledged +
//! indeterminate] over the whole history.

use crate::check::{Anomaly, AnomalyKind, CheckError, CheckResult};
use crate::history::{compact, History, Op, OpFn, Outcome};

pub fn check_counter(history: &History) -> Result<CheckResult, CheckError> {
    let ops = history.ops()?;
    check_counter_ops(&ops)
}

/// Prefix sums over adds sorted by a position, for O(log n) range queries.
struct Sums {
    pos: Vec<u64>,
    total: Vec<i64>,
    pos_part: Vec<i64>,
    neg_part: Vec<i64>,
}

impl Sums {
    fn new(mut adds: Vec<(u64, i64)>) -> Self {
        adds.sort_unstable();
        let mut s = Sums {
            pos: Vec::with_capacity(adds.len()),
            total: vec![0],
            pos_part: vec![0],
            neg_part: vec![0],
        };
        for (p, d) in adds {
            s.pos.push(p);
            let i = s.total.len() - 1;
            s.total.push(s.total[i] + d);
            s.pos_part.push(s.pos_part[i] + d.max(0));
            s.neg_part.push(s.neg_part[i] + d.min(0));
        }
        s
    }

    /// (sum, sum of positive parts, sum of negative parts) over adds whose
    /// position is strictly below `before`.
    fn below(&self, before: u64) -> (i64, i64, i64) {
        let n = self.pos.partition_point(|&p| p < before);
        (self.total[n], self.pos_part[n], self.neg_part[n])
    }
}

/// Check already-paired ops (see [`History::ops`]).
pub fn check_counter_ops(ops: &[Op]) -> Result<CheckResult, CheckError> {
    let delta = |op: &Op| {
        op.invoke_value.as_i64().ok_or_else(|| {
            CheckError::bad_op(
                op.invoke_index,
                format!(
                    "add delta must be an integer, got {}",
                    compact(&op.invoke_value)
                ),
            )
        })
    };
    let mut acked = Vec::new(); // (completion, delta)
    let mut maybe = Vec::new(); // (invocation, delta) of ok + info adds
    let mut reads = Vec::new();
    for op in ops {
        match (&op.f, op.outcome) {
            (OpFn::Add, Outcome::Fail) => {}
            (OpFn::Add, outcome) => {
                let d = delta(op)?;
                if outcome == Outcome::Ok {
                    acked.push((op.ret_pos(), d));
                }
                maybe.push((op.invoke_index, d));
            }
            (OpFn::Read, Outcome::Ok) => {
                let v = op.value.as_i64().ok_or_else(|| {
                    CheckError::bad_op(
                        op.invoke_index,
                        format!(
                            "counter read must return an integer, got {}",
                            compact(&op.value)
                        ),
                    )
                })?;
                reads.push((op, v));
            }
            (OpFn::Read, _) => {}
            (f, _) => {
                return Err(CheckError::bad_op(
                    op.invoke_index,
                    format!("counter workload has no function {f}"),
                ))
            }
        }
    }
    let last_ack = acked.iter().map(|(c, _)| *c).max().unwrap_or(0);
    let acked_total: i64 = acked.iter().map(|(_, d)| d).sum();
    let acked = Sums::new(acked);
    let maybe = Sums::new(maybe);
    let final_read = reads.iter().map(|(op, _)| op.ret_pos()).max();

    let mut anomalies = Vec::new();
    let mut notes = Vec::new();
    for (op, v) in &reads {
        let (d, d_pos, d_neg) = acked.below(op.invoke_index);
        let (_, a_pos, a_neg) = maybe.below(op.ret_pos());
        let lower = d + (a_neg - d_neg);
        let upper = d + (a_pos - d_pos);
        let is_final = Some(op.ret_pos()) == final_read && op.invoke_index > last_ack;
        if is_final {
            notes.push(format!(
                "final read {} = {v}; acknowledged adds total {acked_total}, allowed range [{lower}, {upper}]",
                op.describe_short()
            ));
        }
        if *v < lower || *v > upper {
            anomalies.push(Anomaly::new(
                AnomalyKind::CounterOutOfBounds,
                format!(
                    "{}read {} returned {v}, outside [{lower}, {upper}]: adds acknowledged before it began sum to {d}, and adds that may have landed before it ended span [{lower}, {upper}]",
                    if is_final { "final " } else { "" },
                    op.describe_short()
                ),
                vec![op.invoke_index],
            ));
        }
    }
    Ok(CheckResult::from_anomalies(
        "counter",
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

    fn check(h: &HistoryBuilder) -> CheckResult {
        check_counter(&h.build()).unwrap()
    }

    #[test]
    fn reads_within_bounds_pass() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "add", None, json!(1))
            .ok(0, Value::Null)
            .invoke(0, "add", None, json!(2))
            // concurrent with the add of 2: may see 1 or 3
            .invoke(1, "read", None, Value::Null)
            .ok(1, json!(1))
            .invoke(2, "read", None, Value::Null)
            .ok(2, json!(3))
            .ok(0, Value::Null)
            .invoke(1, "read", None, Value::Null)
            .ok(1, json!(3));
        let r = check(&b);
        assert_eq!(r.valid, Validity::Valid, "{r}");
        assert_eq!(r.ops_checked, 3);
    }

    #[test]
    fn read_below_acknowledged_is_flagged() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "add", None, json!(5))
            .ok(0, Value::Null)
            .invoke(1, "read", None, Value::Null)
            .ok(1, json!(4));
        let r = check(&b);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has(AnomalyKind::CounterOutOfBounds));
        assert!(r.anomalies[0].text.contains("outside [5, 5]"), "{r}");
    }

    #[test]
    fn read_above_possible_is_flagged() {
        let mut b = HistoryBuilder::new();
        b.invoke(1, "read", None, Value::Null)
            .ok(1, json!(1))
            // invoked only after the read completed
            .invoke(0, "add", None, json!(1))
            .ok(0, Value::Null);
        assert_eq!(check(&b).valid, Validity::Invalid);
    }

    #[test]
    fn info_adds_may_land_late_or_never() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "add", None, json!(10))
            .info(0)
            .invoke(1, "add", None, json!(1))
            .ok(1, Value::Null)
            .invoke(2, "read", None, Value::Null)
            .ok(2, json!(1))
            .invoke(2, "read", None, Value::Null)
            .ok(2, json!(11));
        let r = check(&b);
        assert_eq!(r.valid, Validity::Valid, "{r}");
        assert_eq!(r.notes.len(), 1, "final read noted: {r}");
        // A failed add can never be seen.
        let mut b = HistoryBuilder::new();
        b.invoke(0, "add", None, json!(10))
            .fail(0, Value::Null)
            .invoke(2, "read", None, Value::Null)
            .ok(2, json!(10));
        assert_eq!(check(&b).valid, Validity::Invalid);
    }

    #[test]
    fn final_read_out_of_range() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "add", None, json!(3))
            .ok(0, Value::Null)
            .invoke(1, "add", None, json!(4))
            .info(1)
            .invoke(2, "read", None, Value::Null)
            .ok(2, json!(8));
        let r = check(&b);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.anomalies[0].text.starts_with("final read"), "{r}");
    }

    #[test]
    fn negative_deltas_widen_the_lower_bound() {
        let mut b = HistoryBuilder::new();
        b.invoke(0, "add", None, json!(5))
            .ok(0, Value::Null)
            .invoke(1, "add", None, json!(-2))
            .invoke(2, "read", None, Value::Null)
            .ok(2, json!(3))
            .ok(1, Value::Null);
        assert_eq!(check(&b).valid, Validity::Valid);
    }
}
