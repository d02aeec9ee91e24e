//! Static shard routing: which Raft group owns a key.
//!
//! Ranges are `[start, end)` with `end == None` meaning unbounded; together
//! they must cover the key space without overlap (checked at construction).

use elastickv_types::{GroupId, DEFAULT_GROUP};

/// One routed range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
    pub group: GroupId,
}

impl Range {
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|e| key < e)
    }
}

/// Errors in a range table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("shard ranges must start at the empty key")]
    NotFromStart,
    #[error("shard ranges have a gap or overlap at {0:?}")]
    Discontinuous(String),
    #[error("shard ranges must end unbounded")]
    NotToEnd,
    #[error("empty range {0:?}")]
    Empty(String),
}

/// A key-ordered table of ranges covering the key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Router {
    ranges: Vec<Range>,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            ranges: vec![Range {
                start: Vec::new(),
                end: None,
                group: DEFAULT_GROUP,
            }],
        }
    }
}

impl Router {
    /// Validate and build a table. Ranges may be given in any order.
    pub fn new(mut ranges: Vec<Range>) -> Result<Self, RouteError> {
        ranges.sort_by(|a, b| a.start.cmp(&b.start));
        let first = ranges.first().ok_or(RouteError::NotFromStart)?;
        if !first.start.is_empty() {
            return Err(RouteError::NotFromStart);
        }
        for pair in ranges.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.end.as_deref() != Some(b.start.as_slice()) {
                return Err(RouteError::Discontinuous(
                    String::from_utf8_lossy(&b.start).into_owned(),
                ));
            }
        }
        for r in &ranges {
            if let Some(end) = &r.end {
                if end <= &r.start {
                    return Err(RouteError::Empty(
                        String::from_utf8_lossy(&r.start).into_owned(),
                    ));
                }
            }
        }
        if ranges.last().is_some_and(|r| r.end.is_some()) {
            return Err(RouteError::NotToEnd);
        }
        Ok(Router { ranges })
    }

    /// The range holding `key`.
    pub fn route(&self, key: &[u8]) -> &Range {
        // The table covers the key space, so the partition point is >= 1.
        let idx = self.ranges.partition_point(|r| r.start.as_slice() <= key);
        &self.ranges[idx.saturating_sub(1)]
    }

    /// The pieces of `[start, end)` per range, in key order.
    pub fn split(&self, start: &[u8], end: Option<&[u8]>) -> Vec<Range> {
        let mut out = Vec::new();
        for r in &self.ranges {
            let lo = if r.start.as_slice() > start {
                r.start.as_slice()
            } else {
                start
            };
            let hi = match (r.end.as_deref(), end) {
                (Some(a), Some(b)) => Some(if a < b { a } else { b }),
                (Some(a), None) => Some(a),
                (None, b) => b,
            };
            if hi.is_some_and(|h| h <= lo) {
                continue;
            }
            out.push(Range {
                start: lo.to_vec(),
                end: hi.map(|h| h.to_vec()),
                group: r.group,
            });
        }
        out
    }

    /// Every group mentioned.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut g: Vec<_> = self.ranges.iter().map(|r| r.group).collect();
        g.sort();
        g.dedup();
        g
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Router {
        Router::new(vec![
            Range {
                start: b"m".to_vec(),
                end: None,
                group: GroupId(3),
            },
            Range {
                start: vec![],
                end: Some(b"g".to_vec()),
                group: GroupId(1),
            },
            Range {
                start: b"g".to_vec(),
                end: Some(b"m".to_vec()),
                group: GroupId(2),
            },
        ])
        .expect("valid")
    }

    #[test]
    fn routes_by_range() {
        let t = table();
        assert_eq!(t.route(b"").group, GroupId(1));
        assert_eq!(t.route(b"f\xff").group, GroupId(1));
        assert_eq!(t.route(b"g").group, GroupId(2));
        assert_eq!(t.route(b"lzz").group, GroupId(2));
        assert_eq!(t.route(b"m").group, GroupId(3));
        assert_eq!(t.route(b"\xff\xff").group, GroupId(3));
    }

    #[test]
    fn splits_scan_ranges() {
        let t = table();
        let parts = t.split(b"c", Some(b"n"));
        let groups: Vec<_> = parts.iter().map(|r| r.group.0).collect();
        assert_eq!(groups, vec![1, 2, 3]);
        assert_eq!(parts[0].start, b"c");
        assert_eq!(parts[2].end.as_deref(), Some(&b"n"[..]));
        assert_eq!(t.split(b"h", Some(b"i")).len(), 1);
        assert!(t.split(b"h", Some(b"h")).is_empty());
    }

    #[test]
    fn rejects_bad_tables() {
        assert_eq!(
            Router::new(vec![Range {
                start: b"a".to_vec(),
                end: None,
                group: GroupId(1)
            }]),
            Err(RouteError::NotFromStart)
        );
        assert!(matches!(
            Router::new(vec![
                Range {
                    start: vec![],
                    end: Some(b"b".to_vec()),
                    group: GroupId(1)
                },
                Range {
                    start: b"c".to_vec(),
                    end: None,
                    group: GroupId(1)
                },
            ]),
            Err(RouteError::Discontinuous(_))
        ));
        assert_eq!(
            Router::new(vec![Range {
                start: vec![],
                end: Some(b"z".to_vec()),
                group: GroupId(1)
            }]),
            Err(RouteError::NotToEnd)
        );
    }
}
