//! Shard routing: which Raft group owns a key.
//!
//! Ranges are `[start, end)` with `end == None` meaning unbounded; together
//! they must cover the key space without overlap (checked at construction).
//!
//! A [`Router`] is one immutable table. The node's current table is a
//! [`RouteTable`] (a router plus the catalog version it was built from)
//! that `Kv` swaps atomically whenever the route catalog changes (see
//! `catalog.rs`); `--shardRanges` only provides the initial table, at
//! version 0.
//!
//! The route catalog's own keys ([`CATALOG_PREFIX`]) always belong to the
//! default group, whatever the ranges say: the catalog must be readable
//! before anything else is known about routing, and a split of the range
//! that happens to cover the internal region must not move it.

use elastickv_types::keys::CATALOG_PREFIX;
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
    /// The catalog's region, pinned to the default group.
    catalog: Range,
}

/// The region holding the route catalog: every key starting with
/// [`CATALOG_PREFIX`], always in the default group.
pub fn catalog_range() -> Range {
    Range {
        start: CATALOG_PREFIX.to_vec(),
        end: Some(prefix_end(CATALOG_PREFIX)),
        group: DEFAULT_GROUP,
    }
}

/// The smallest key greater than every key starting with `prefix`.
/// `prefix` must contain a byte below 0xFF (the catalog prefix does).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // Only an all-0xFF prefix gets here; nothing sorts after all of its
    // extensions, so the best finite bound is the prefix itself extended.
    let mut all = prefix.to_vec();
    all.push(0xFF);
    all
}

impl Default for Router {
    fn default() -> Self {
        Router {
            ranges: vec![Range {
                start: Vec::new(),
                end: None,
                group: DEFAULT_GROUP,
            }],
            catalog: catalog_range(),
        }
    }
}

/// The node's routing table: a router and the catalog version it reflects
/// (0: the static `--shardRanges` table, before the catalog was read).
/// Dereferences to its [`Router`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    pub version: u64,
    pub router: Router,
}

impl std::ops::Deref for RouteTable {
    type Target = Router;

    fn deref(&self) -> &Router {
        &self.router
    }
}

/// Where a key was routed, and by which table version: the version travels
/// with a request so that a group can one day reject it as stale (see the
/// `catalog` module's "Stale routes" section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    pub group: GroupId,
    pub version: u64,
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
        Ok(Router {
            ranges,
            catalog: catalog_range(),
        })
    }

    /// The range holding `key` (for a catalog key: the catalog's region).
    pub fn route(&self, key: &[u8]) -> &Range {
        if key.starts_with(CATALOG_PREFIX) {
            return &self.catalog;
        }
        // The table covers the key space, so the partition point is >= 1.
        let idx = self.ranges.partition_point(|r| r.start.as_slice() <= key);
        &self.ranges[idx.saturating_sub(1)]
    }

    /// The pieces of `[start, end)` per range, in key order; the part inside
    /// the catalog's region is a piece of its own, in the default group.
    pub fn split(&self, start: &[u8], end: Option<&[u8]>) -> Vec<Range> {
        let mut out = Vec::new();
        for piece in self.split_ranges(start, end) {
            carve(piece, &self.catalog, &mut out);
        }
        out
    }

    /// [`Router::split`] over the configured ranges only.
    fn split_ranges(&self, start: &[u8], end: Option<&[u8]>) -> Vec<Range> {
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

    /// The configured ranges, in key order (without the catalog's pinned
    /// region).
    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }
}

/// Intersection of `[start, end)` with `[lo, hi)` (`None`: unbounded).
fn intersect(
    start: &[u8],
    end: Option<&[u8]>,
    lo: &[u8],
    hi: Option<&[u8]>,
) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let s = start.max(lo);
    let e = match (end, hi) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    };
    if e.is_some_and(|e| e <= s) {
        return None;
    }
    Some((s.to_vec(), e.map(<[u8]>::to_vec)))
}

/// Push `piece` to `out`, cut so that its part inside `pinned` goes to
/// `pinned`'s group.
fn carve(piece: Range, pinned: &Range, out: &mut Vec<Range>) {
    let pinned_end = pinned.end.as_deref();
    let Some((ps, pe)) = intersect(
        &piece.start,
        piece.end.as_deref(),
        &pinned.start,
        pinned_end,
    ) else {
        out.push(piece);
        return;
    };
    if let Some((s, e)) = intersect(&piece.start, piece.end.as_deref(), &[], Some(&pinned.start)) {
        out.push(Range {
            start: s,
            end: e,
            group: piece.group,
        });
    }
    out.push(Range {
        start: ps,
        end: pe,
        group: pinned.group,
    });
    if let Some(pinned_end) = pinned_end {
        if let Some((s, e)) = intersect(&piece.start, piece.end.as_deref(), pinned_end, None) {
            out.push(Range {
                start: s,
                end: e,
                group: piece.group,
            });
        }
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
    fn catalog_keys_stay_in_the_default_group() {
        let t = table();
        let mut key = CATALOG_PREFIX.to_vec();
        key.extend_from_slice(b"version");
        assert_eq!(t.route(&key).group, DEFAULT_GROUP);
        assert_eq!(t.route(b"\xff\x00catalo").group, GroupId(3));
        assert_eq!(t.route(b"\xff\x00catalog0").group, GroupId(3));
        // A scan over the catalog prefix is one piece in group 1.
        let end = prefix_end(CATALOG_PREFIX);
        let parts = t.split(CATALOG_PREFIX, Some(&end));
        assert_eq!(parts, vec![catalog_range()]);
        // A scan across it is cut in three.
        let parts = t.split(b"x", None);
        let groups: Vec<_> = parts.iter().map(|r| r.group.0).collect();
        assert_eq!(groups, vec![3, 1, 3]);
        assert_eq!(parts[0].end.as_deref(), Some(CATALOG_PREFIX));
        assert_eq!(parts[2].start, end);
        assert_eq!(parts[2].end, None);
        // Scans that do not reach it are untouched.
        assert_eq!(t.split(b"a", Some(b"\xff")).len(), 3);
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(CATALOG_PREFIX), b"\xff\x00catalog0".to_vec());
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
