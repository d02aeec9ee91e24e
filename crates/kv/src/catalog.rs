//! The route catalog: the durable, versioned list of ranges and the groups
//! that own them, kept in the default group (group 1) under reserved keys.
//!
//! # Layout
//!
//! Every key starts with [`CATALOG_PREFIX`] (`"\xFF\x00catalog/"`); the router
//! pins that region to group 1 whatever the ranges say (see `router.rs`).
//!
//! ```text
//! CATALOG_PREFIX ++ "version"              -> [1] ++ be64(catalog version)
//! CATALOG_PREFIX ++ "next_route_id"        -> [1] ++ be64(next unused route id)
//! CATALOG_PREFIX ++ "route/" ++ be64(id)   -> [1] ++ bincode(RouteRecordV1)
//! ```
//!
//! Every value starts with a format byte (1 today); a reader refuses a byte
//! it does not know rather than guess. `RouteRecordV1` is bincode 1 with
//! fixed-width integers and no trailing bytes: route id, start, end
//! (`None`: unbounded), group, state (the `RouteState` proto number) and
//! parent route id. The version starts at 1 and grows by exactly one per
//! change; route ids are never reused (`next_route_id` is above every id
//! ever handed out, including those of routes since split away).
//!
//! # Writing
//!
//! Every change is one transaction (`Kv::begin` … `Txn::commit`) that reads
//! the version key and writes it back bumped, so two concurrent changes
//! conflict on it and at most one commits; the loser re-reads and reports
//! the version it lost to. All catalog keys live in group 1, so such a
//! transaction commits in one Raft entry: every replica applies a catalog
//! change at once, at one commit timestamp.
//!
//! # Reading
//!
//! - Clients (`ListRoutes`, `SplitRange`) read in a transaction: a
//!   linearizable snapshot.
//! - Every node's watcher (`watcher.rs`) reads its **local replica** of
//!   group 1 at the version key's commit timestamp — a consistent snapshot
//!   because a change is applied atomically — and installs the result in
//!   `Kv`'s routing table when the version grew. A replica that lags
//!   routes with an older table for as long as it lags; see below.
//!
//! # Stale routes
//!
//! A request routed with an old table must never be served by a group that
//! no longer owns its key. Today a split keeps both children in the
//! parent's group, so the data never moves and every stale answer still
//! names the right group: nothing can be served by the wrong group yet.
//! The design for when ranges move between groups (not implemented — the
//! seams are marked):
//!
//! 1. **Versioned routing.** [`Kv::route`] answers a [`Routed`] carrying the
//!    table version it used (done); the request sent to the group carries
//!    it (seam: `Op::Write` and the read request in `elastickv-raft` have no
//!    field for it yet).
//! 2. **Ownership in the group's own log.** A group cannot consult group 1
//!    on every request, and must decide deterministically on every replica.
//!    So moving a range commits, besides the catalog change in group 1, an
//!    ownership entry (`SetOwnership { catalog_version, ranges }`) into the
//!    source and target groups' logs: the source's entry first fences the
//!    range (catalog state WRITE_FENCED / MIGRATING_SOURCE), the target's
//!    takes it over once the data is copied.
//! 3. **Rejection at apply.** The state machine refuses a write whose key
//!    lies outside the ranges owned as of the previous applied entry, with
//!    `OpResult::Rejected` carrying the group's ownership version; a read
//!    is checked against ownership at the applied index it waited for.
//!    The error surfaces as a retryable "stale route" (`KvError::Unavailable`
//!    today; a dedicated variant when the check lands) and nothing is
//!    written, so the request id may be resent elsewhere.
//! 4. **Refresh and retry.** `Kv::write` / reads, on a stale-route
//!    rejection naming version `v`, wait for the watcher to install a table
//!    of version `>= v` (it is already committed in group 1; if the local
//!    replica lags, read the catalog linearizably with [`Kv::read_catalog`]
//!    and install it), re-route and resend with the same request id, until
//!    the request deadline.

use crate::router::{prefix_end, Range, RouteTable, Router};
use crate::{Kv, KvError, Txn};
use bincode::Options;
use elastickv_storage::GroupStore;
use elastickv_types::keys::CATALOG_PREFIX;
use elastickv_types::limits::MAX_KEY_BYTES;
use elastickv_types::{GroupId, DEFAULT_GROUP};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Format byte of every catalog value written by this version.
const FORMAT_V1: u8 = 1;
/// Routes read per scan page.
const SCAN_PAGE: usize = 1024;
/// Largest encoded route record accepted (two keys of the maximum size and
/// a few integers fit easily).
const MAX_RECORD_BYTES: u64 = 4 * MAX_KEY_BYTES as u64;
/// Attempts of a catalog change that lost a write-write conflict.
const CONFLICT_ATTEMPTS: usize = 3;

/// Control-plane state of a route; numbers are those of the proto's
/// `RouteState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteState {
    Active = 1,
    WriteFenced = 2,
    MigratingSource = 3,
    MigratingTarget = 4,
}

impl RouteState {
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            1 => Some(RouteState::Active),
            2 => Some(RouteState::WriteFenced),
            3 => Some(RouteState::MigratingSource),
            4 => Some(RouteState::MigratingTarget),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        self as u8
    }
}

/// One route of the catalog: `[start, end)` (`end` `None`: unbounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDescriptor {
    pub route_id: u64,
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
    pub group: GroupId,
    pub state: RouteState,
    /// The route this one was split from (0: none).
    pub parent_route_id: u64,
}

/// The whole catalog at one version. Routes are in key order and tile the
/// key space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub version: u64,
    pub next_route_id: u64,
    pub routes: Vec<RouteDescriptor>,
}

/// A catalog that cannot be decoded or breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("route catalog record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("route catalog is inconsistent: {0}")]
    Invalid(String),
    #[error("reading the route catalog: {0}")]
    Storage(String),
}

impl From<CatalogError> for KvError {
    fn from(e: CatalogError) -> Self {
        KvError::Internal(e.to_string())
    }
}

/// Why a split was refused or failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SplitError {
    #[error("catalog version is {current}, not the expected {expected}")]
    VersionMismatch { expected: u64, current: u64 },
    #[error("route {0} does not exist")]
    UnknownRoute(u64),
    #[error("route {route_id} is {state:?}; only an active route can be split")]
    RouteNotActive { route_id: u64, state: RouteState },
    #[error("invalid split key: {0}")]
    InvalidSplitKey(String),
    #[error("the route catalog has not been initialised yet")]
    NotInitialized,
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// A committed split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitOutcome {
    pub version: u64,
    pub left: RouteDescriptor,
    pub right: RouteDescriptor,
}

/// Result of initialising the catalog at cluster formation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// This call wrote version 1.
    Created,
    /// A catalog existed already (at this version); nothing was written.
    Existing(u64),
}

// ---------------------------------------------------------------- keys

fn key(suffix: &[u8]) -> Vec<u8> {
    let mut k = CATALOG_PREFIX.to_vec();
    k.extend_from_slice(suffix);
    k
}

/// Key of the catalog version.
pub fn version_key() -> Vec<u8> {
    key(b"version")
}

/// Key of the next unused route id.
pub fn next_route_id_key() -> Vec<u8> {
    key(b"next_route_id")
}

/// Prefix of every route descriptor's key.
pub fn route_prefix() -> Vec<u8> {
    key(b"route/")
}

/// Key of route `id`'s descriptor.
pub fn route_key(id: u64) -> Vec<u8> {
    let mut k = route_prefix();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn printable(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

// ---------------------------------------------------------------- codec

#[derive(Serialize, Deserialize)]
struct RouteRecordV1 {
    route_id: u64,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    group: u64,
    state: u8,
    parent_route_id: u64,
}

fn bincode_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .reject_trailing_bytes()
        .with_limit(MAX_RECORD_BYTES)
}

/// `[1] ++ be64(n)`: the version and next-route-id records.
pub fn encode_u64(n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(FORMAT_V1);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

pub fn decode_u64(key: &[u8], raw: &[u8]) -> Result<u64, CatalogError> {
    let corrupt = |reason: String| CatalogError::Corrupt {
        key: printable(key),
        reason,
    };
    match raw.split_first() {
        Some((&FORMAT_V1, rest)) => {
            let bytes: [u8; 8] = rest
                .try_into()
                .map_err(|_| corrupt(format!("{} bytes, expected 9", raw.len())))?;
            Ok(u64::from_be_bytes(bytes))
        }
        Some((other, _)) => Err(corrupt(format!("unknown format {other}"))),
        None => Err(corrupt("empty record".into())),
    }
}

/// `[1] ++ bincode(RouteRecordV1)`.
pub fn encode_route(route: &RouteDescriptor) -> Result<Vec<u8>, CatalogError> {
    let record = RouteRecordV1 {
        route_id: route.route_id,
        start: route.start.clone(),
        end: route.end.clone(),
        group: route.group.0,
        state: route.state.number(),
        parent_route_id: route.parent_route_id,
    };
    let mut out = vec![FORMAT_V1];
    bincode_options()
        .serialize_into(&mut out, &record)
        .map_err(|e| CatalogError::Invalid(format!("route {}: {e}", route.route_id)))?;
    Ok(out)
}

pub fn decode_route(key: &[u8], raw: &[u8]) -> Result<RouteDescriptor, CatalogError> {
    let corrupt = |reason: String| CatalogError::Corrupt {
        key: printable(key),
        reason,
    };
    let record: RouteRecordV1 = match raw.split_first() {
        Some((&FORMAT_V1, rest)) => bincode_options()
            .deserialize(rest)
            .map_err(|e| corrupt(e.to_string()))?,
        Some((other, _)) => return Err(corrupt(format!("unknown format {other}"))),
        None => return Err(corrupt("empty record".into())),
    };
    let state = RouteState::from_number(record.state)
        .ok_or_else(|| corrupt(format!("unknown route state {}", record.state)))?;
    let id_in_key = key
        .strip_prefix(route_prefix().as_slice())
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes);
    if id_in_key != Some(record.route_id) {
        return Err(corrupt(format!(
            "holds route {} under another route's key",
            record.route_id
        )));
    }
    Ok(RouteDescriptor {
        route_id: record.route_id,
        start: record.start,
        end: record.end,
        group: GroupId(record.group),
        state,
        parent_route_id: record.parent_route_id,
    })
}

// ---------------------------------------------------------------- catalog

impl Catalog {
    /// The catalog a new cluster starts with: `router`'s ranges as routes
    /// 1.. in key order, at version 1.
    pub fn initial(router: &Router) -> Catalog {
        let routes: Vec<RouteDescriptor> = router
            .ranges()
            .iter()
            .zip(1u64..)
            .map(|(r, id)| RouteDescriptor {
                route_id: id,
                start: r.start.clone(),
                end: r.end.clone(),
                group: r.group,
                state: RouteState::Active,
                parent_route_id: 0,
            })
            .collect();
        Catalog {
            version: 1,
            next_route_id: routes.len() as u64 + 1,
            routes,
        }
    }

    /// Assemble a catalog from its records (route rows in any order) and
    /// check its invariants.
    pub fn from_records(
        version_raw: &[u8],
        next_raw: Option<&[u8]>,
        route_rows: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Catalog, CatalogError> {
        let version = decode_u64(&version_key(), version_raw)?;
        let next_route_id = match next_raw {
            Some(raw) => decode_u64(&next_route_id_key(), raw)?,
            None => return Err(CatalogError::Invalid("next_route_id is missing".into())),
        };
        let mut routes = route_rows
            .iter()
            .map(|(k, v)| decode_route(k, v))
            .collect::<Result<Vec<_>, _>>()?;
        routes.sort_by(|a, b| a.start.cmp(&b.start));
        let catalog = Catalog {
            version,
            next_route_id,
            routes,
        };
        catalog.validate()?;
        Ok(catalog)
    }

    /// Check the invariants: version >= 1, unique non-zero route ids below
    /// `next_route_id`, non-zero groups, and ranges tiling the key space.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.version == 0 {
            return Err(CatalogError::Invalid("version 0".into()));
        }
        let mut ids = BTreeSet::new();
        for r in &self.routes {
            if r.route_id == 0 || !ids.insert(r.route_id) {
                return Err(CatalogError::Invalid(format!(
                    "route id {} is zero or repeated",
                    r.route_id
                )));
            }
            if r.route_id >= self.next_route_id {
                return Err(CatalogError::Invalid(format!(
                    "route id {} is not below next_route_id {}",
                    r.route_id, self.next_route_id
                )));
            }
            if r.group.0 == 0 {
                return Err(CatalogError::Invalid(format!(
                    "route {} has group 0",
                    r.route_id
                )));
            }
        }
        self.router().map(|_| ())
    }

    /// The routing table these routes describe.
    pub fn router(&self) -> Result<Router, CatalogError> {
        Router::new(
            self.routes
                .iter()
                .map(|r| Range {
                    start: r.start.clone(),
                    end: r.end.clone(),
                    group: r.group,
                })
                .collect(),
        )
        .map_err(|e| CatalogError::Invalid(e.to_string()))
    }

    /// The routing table, tagged with this catalog's version.
    pub fn route_table(&self) -> Result<RouteTable, CatalogError> {
        Ok(RouteTable {
            version: self.version,
            router: self.router()?,
        })
    }

    pub fn route(&self, route_id: u64) -> Option<&RouteDescriptor> {
        self.routes.iter().find(|r| r.route_id == route_id)
    }
}

/// What a split will write: the catalog after it, and the two children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPlan {
    pub parent_route_id: u64,
    pub left: RouteDescriptor,
    pub right: RouteDescriptor,
    pub after: Catalog,
}

/// Validate a split of route `route_id` at `split_key` against `catalog`
/// and plan it. Checks, in order: the version (`VersionMismatch`), the
/// route (`UnknownRoute`, `RouteNotActive`), the key (`InvalidSplitKey`:
/// it must lie strictly inside the route).
pub fn plan_split(
    catalog: &Catalog,
    expected_version: u64,
    route_id: u64,
    split_key: &[u8],
) -> Result<SplitPlan, SplitError> {
    if catalog.version != expected_version {
        return Err(SplitError::VersionMismatch {
            expected: expected_version,
            current: catalog.version,
        });
    }
    let parent = catalog
        .route(route_id)
        .ok_or(SplitError::UnknownRoute(route_id))?;
    if parent.state != RouteState::Active {
        return Err(SplitError::RouteNotActive {
            route_id,
            state: parent.state,
        });
    }
    if split_key.len() > MAX_KEY_BYTES {
        return Err(SplitError::InvalidSplitKey(format!(
            "{} bytes, larger than the {MAX_KEY_BYTES}-byte key limit",
            split_key.len()
        )));
    }
    let inside = split_key > parent.start.as_slice()
        && parent.end.as_deref().is_none_or(|end| split_key < end);
    if !inside {
        let end = parent.end.as_deref().map_or_else(
            || "unbounded".to_string(),
            |e| format!("{:?}", printable(e)),
        );
        return Err(SplitError::InvalidSplitKey(format!(
            "{:?} is not strictly inside route {route_id} [{:?}, {end})",
            printable(split_key),
            printable(&parent.start)
        )));
    }
    let (version, left_id, right_id, next_route_id) = catalog
        .version
        .checked_add(1)
        .zip(catalog.next_route_id.checked_add(2))
        .map(|(v, next)| (v, catalog.next_route_id, catalog.next_route_id + 1, next))
        .ok_or_else(|| {
            SplitError::Kv(KvError::Internal(
                "catalog version or route id space exhausted".into(),
            ))
        })?;
    let left = RouteDescriptor {
        route_id: left_id,
        start: parent.start.clone(),
        end: Some(split_key.to_vec()),
        group: parent.group,
        state: RouteState::Active,
        parent_route_id: route_id,
    };
    let right = RouteDescriptor {
        route_id: right_id,
        start: split_key.to_vec(),
        end: parent.end.clone(),
        group: parent.group,
        state: RouteState::Active,
        parent_route_id: route_id,
    };
    let mut routes: Vec<RouteDescriptor> = catalog
        .routes
        .iter()
        .filter(|r| r.route_id != route_id)
        .cloned()
        .collect();
    routes.push(left.clone());
    routes.push(right.clone());
    routes.sort_by(|a, b| a.start.cmp(&b.start));
    let after = Catalog {
        version,
        next_route_id,
        routes,
    };
    after.validate().map_err(KvError::from)?;
    Ok(SplitPlan {
        parent_route_id: route_id,
        left,
        right,
        after,
    })
}

// ---------------------------------------------------------------- storage

/// What a node's local replica of group 1 holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCatalog {
    /// No catalog yet (the cluster is new, or this replica lags behind its
    /// creation).
    Absent,
    /// The version is not newer than the one the caller already has.
    Unchanged(u64),
    /// A catalog transaction holds locks right now; read again later.
    Pending,
    Loaded(Catalog),
}

fn storage(e: elastickv_storage::StorageError) -> CatalogError {
    CatalogError::Storage(e.to_string())
}

/// Read the catalog from a local replica of group 1 (no Raft round trip):
/// the version key's newest version, then everything else at that
/// version's commit timestamp. Skips the full read when the version is not
/// above `known_version`.
pub fn read_local(store: &GroupStore, known_version: u64) -> Result<LocalCatalog, CatalogError> {
    let region_end = prefix_end(CATALOG_PREFIX);
    let locked = |store: &GroupStore| -> Result<bool, CatalogError> {
        Ok(!store
            .scan_locks(CATALOG_PREFIX, Some(&region_end), 1)
            .map_err(storage)?
            .is_empty())
    };
    // Catalog transactions commit in one entry and never leave locks; the
    // check guards against a future two-phase catalog write being read half
    // applied.
    if locked(store)? {
        return Ok(LocalCatalog::Pending);
    }
    let Some(version) = store.latest_version(&version_key()).map_err(storage)? else {
        return Ok(LocalCatalog::Absent);
    };
    let Some(version_raw) = version.value else {
        return Ok(LocalCatalog::Absent);
    };
    let number = decode_u64(&version_key(), &version_raw)?;
    if number <= known_version {
        return Ok(LocalCatalog::Unchanged(number));
    }
    let at = version.commit_ts;
    let next_raw = store.get_at(&next_route_id_key(), at).map_err(storage)?;
    let prefix = route_prefix();
    let end = prefix_end(&prefix);
    let mut rows = Vec::new();
    let mut from = prefix.clone();
    loop {
        let page = store
            .scan_at(&from, Some(&end), at, SCAN_PAGE, false)
            .map_err(storage)?;
        let full = page.len() == SCAN_PAGE;
        if let Some((last, _)) = page.last() {
            from = last.clone();
            from.push(0);
        }
        rows.extend(page);
        if !full {
            break;
        }
    }
    if locked(store)? {
        return Ok(LocalCatalog::Pending);
    }
    Catalog::from_records(&version_raw, next_raw.as_deref(), &rows).map(LocalCatalog::Loaded)
}

/// Read the catalog inside `txn` (its snapshot; the reads also join the
/// transaction's conflict checks).
async fn read_in_txn(txn: &mut Txn) -> Result<Option<Catalog>, KvError> {
    let Some(version_raw) = txn.get(&version_key()).await? else {
        return Ok(None);
    };
    let next_raw = txn.get(&next_route_id_key()).await?;
    let prefix = route_prefix();
    let end = prefix_end(&prefix);
    let mut rows = Vec::new();
    let mut from = prefix.clone();
    loop {
        let page = txn.scan(&from, Some(&end), SCAN_PAGE, false).await?;
        let full = page.len() == SCAN_PAGE;
        if let Some((last, _)) = page.last() {
            from = last.clone();
            from.push(0);
        }
        rows.extend(page);
        if !full {
            break;
        }
    }
    Ok(Some(Catalog::from_records(
        &version_raw,
        next_raw.as_deref(),
        &rows,
    )?))
}

/// Buffer every record of `catalog` into `txn`.
fn write_all(txn: &mut Txn, catalog: &Catalog) -> Result<(), CatalogError> {
    for r in &catalog.routes {
        txn.put(route_key(r.route_id), encode_route(r)?);
    }
    txn.put(next_route_id_key(), encode_u64(catalog.next_route_id));
    txn.put(version_key(), encode_u64(catalog.version));
    Ok(())
}

impl Kv {
    /// The catalog, read linearizably (`None`: not initialised yet).
    pub async fn read_catalog(&self) -> Result<Option<Catalog>, KvError> {
        let mut txn = self.begin().await?;
        read_in_txn(&mut txn).await
        // Dropping the read-only transaction rolls it back: nothing to undo.
    }

    /// Write version 1 of the catalog from `initial` unless a catalog
    /// exists; idempotent, and never overwrites an existing catalog.
    pub async fn init_catalog(&self, initial: &Router) -> Result<InitOutcome, KvError> {
        let catalog = Catalog::initial(initial);
        catalog.validate()?;
        let mut last_conflict = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let mut txn = self.begin().await?;
            if let Some(existing) = read_in_txn(&mut txn).await? {
                self.install_catalog(&existing);
                return Ok(InitOutcome::Existing(existing.version));
            }
            write_all(&mut txn, &catalog)?;
            match txn.commit().await {
                Ok(_) => {
                    self.install_catalog(&catalog);
                    return Ok(InitOutcome::Created);
                }
                // Someone else initialised it meanwhile: read theirs.
                Err(KvError::Conflict(m)) => last_conflict = Some(m),
                Err(e) => return Err(e),
            }
        }
        Err(KvError::Conflict(last_conflict.unwrap_or_default()))
    }

    /// Replace route `route_id` by two active children split at
    /// `split_key`, in the parent's group, if the catalog is at
    /// `expected_version`. Atomic: the check and the write are one
    /// transaction.
    pub async fn split_range(
        &self,
        expected_version: u64,
        route_id: u64,
        split_key: Vec<u8>,
    ) -> Result<SplitOutcome, SplitError> {
        let mut last_conflict = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let mut txn = self.begin().await?;
            let catalog = read_in_txn(&mut txn)
                .await?
                .ok_or(SplitError::NotInitialized)?;
            // A retry after a conflict re-reads and so reports the version
            // the concurrent change produced.
            let plan = plan_split(&catalog, expected_version, route_id, &split_key)?;
            txn.delete(route_key(plan.parent_route_id));
            txn.put(
                route_key(plan.left.route_id),
                encode_route(&plan.left).map_err(KvError::from)?,
            );
            txn.put(
                route_key(plan.right.route_id),
                encode_route(&plan.right).map_err(KvError::from)?,
            );
            txn.put(next_route_id_key(), encode_u64(plan.after.next_route_id));
            txn.put(version_key(), encode_u64(plan.after.version));
            match txn.commit().await {
                Ok(_) => {
                    self.install_catalog(&plan.after);
                    tracing::info!(
                        version = plan.after.version,
                        parent = route_id,
                        left = plan.left.route_id,
                        right = plan.right.route_id,
                        "route split committed"
                    );
                    return Ok(SplitOutcome {
                        version: plan.after.version,
                        left: plan.left,
                        right: plan.right,
                    });
                }
                Err(KvError::Conflict(m)) => last_conflict = Some(m),
                Err(e) => return Err(e.into()),
            }
        }
        Err(KvError::Conflict(last_conflict.unwrap_or_default()).into())
    }

    /// A timestamp from the transaction timestamp oracle (the default
    /// group's leader): above every timestamp issued before, so a client
    /// transaction started at it sees everything committed before the call
    /// (the `GetTimestamp` RPC).
    pub async fn oracle_timestamp(&self) -> Result<elastickv_types::Timestamp, KvError> {
        self.tso().await
    }

    /// Install `catalog` as the routing table if it is newer than the
    /// current one. Returns whether it was installed.
    pub fn install_catalog(&self, catalog: &Catalog) -> bool {
        match catalog.route_table() {
            Ok(table) => {
                let installed = self.install_routes(table);
                if installed {
                    tracing::info!(
                        version = catalog.version,
                        routes = catalog.routes.len(),
                        "route catalog installed"
                    );
                }
                installed
            }
            Err(e) => {
                tracing::warn!(error = %e, version = catalog.version, "route catalog not installed");
                false
            }
        }
    }

    /// Read the catalog from this node's replica of group 1 and install it
    /// if newer. Returns the version now in use.
    pub fn refresh_routes_from_local(&self) -> Result<u64, CatalogError> {
        let Some(group) = self.raft().group(DEFAULT_GROUP) else {
            return Ok(self.catalog_version());
        };
        if let LocalCatalog::Loaded(catalog) = read_local(&group.store, self.catalog_version())? {
            self.install_catalog(&catalog);
        }
        Ok(self.catalog_version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_routes() -> Catalog {
        let router = Router::new(vec![
            Range {
                start: vec![],
                end: Some(b"m".to_vec()),
                group: GroupId(1),
            },
            Range {
                start: b"m".to_vec(),
                end: None,
                group: GroupId(2),
            },
        ])
        .expect("valid");
        Catalog::initial(&router)
    }

    fn rows(c: &Catalog) -> Vec<(Vec<u8>, Vec<u8>)> {
        c.routes
            .iter()
            .map(|r| (route_key(r.route_id), encode_route(r).expect("encode")))
            .collect()
    }

    #[test]
    fn initial_catalog_numbers_routes_in_key_order() {
        let c = two_routes();
        assert_eq!((c.version, c.next_route_id), (1, 3));
        assert_eq!(c.routes[0].route_id, 1);
        assert_eq!(c.routes[0].end.as_deref(), Some(&b"m"[..]));
        assert_eq!((c.routes[1].route_id, c.routes[1].group), (2, GroupId(2)));
        assert!(c.routes.iter().all(|r| r.state == RouteState::Active));
        assert_eq!(Catalog::initial(&Router::default()).routes.len(), 1);
    }

    #[test]
    fn records_round_trip() {
        let c = two_routes();
        let back = Catalog::from_records(
            &encode_u64(c.version),
            Some(&encode_u64(c.next_route_id)),
            &rows(&c).into_iter().rev().collect::<Vec<_>>(),
        )
        .expect("decodes");
        assert_eq!(back, c);
        let mut r = c.routes[1].clone();
        r.state = RouteState::MigratingTarget;
        r.parent_route_id = 9;
        let raw = encode_route(&r).expect("encode");
        assert_eq!(raw[0], FORMAT_V1);
        assert_eq!(decode_route(&route_key(2), &raw).expect("decode"), r);
    }

    #[test]
    fn keys_sort_inside_the_catalog_region() {
        let end = prefix_end(CATALOG_PREFIX);
        for k in [
            version_key(),
            next_route_id_key(),
            route_key(0),
            route_key(u64::MAX),
        ] {
            assert!(k.starts_with(CATALOG_PREFIX) && k < end);
        }
        // Big-endian ids keep routes in id order.
        assert!(route_key(255) < route_key(256));
    }

    #[test]
    fn corrupt_records_are_refused() {
        let r = two_routes().routes[0].clone();
        let good = encode_route(&r).expect("encode");
        // Unknown format byte.
        let mut bad = good.clone();
        bad[0] = 2;
        assert!(decode_route(&route_key(1), &bad).is_err());
        // Truncated, trailing garbage, empty.
        assert!(decode_route(&route_key(1), &good[..good.len() - 1]).is_err());
        let mut long = good.clone();
        long.push(0);
        assert!(decode_route(&route_key(1), &long).is_err());
        assert!(decode_route(&route_key(1), &[]).is_err());
        // Stored under another id.
        assert!(decode_route(&route_key(2), &good).is_err());
        // Unknown state.
        let mut raw = vec![FORMAT_V1];
        bincode_options()
            .serialize_into(
                &mut raw,
                &RouteRecordV1 {
                    route_id: 1,
                    start: vec![],
                    end: None,
                    group: 1,
                    state: 9,
                    parent_route_id: 0,
                },
            )
            .expect("encode");
        assert!(decode_route(&route_key(1), &raw).is_err());
        // A huge length prefix is refused, not allocated.
        let mut huge = vec![FORMAT_V1];
        huge.extend_from_slice(&1u64.to_be_bytes());
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_route(&route_key(1), &huge).is_err());
        assert_eq!(decode_u64(&version_key(), &encode_u64(7)), Ok(7));
        assert!(decode_u64(&version_key(), &[1, 2, 3]).is_err());
        assert!(decode_u64(&version_key(), &[3; 9]).is_err());
    }

    #[test]
    fn inconsistent_catalogs_are_refused() {
        let c = two_routes();
        let v = encode_u64(1);
        // Missing next id.
        assert!(Catalog::from_records(&v, None, &rows(&c)).is_err());
        // Next id not above every id.
        assert!(Catalog::from_records(&v, Some(&encode_u64(2)), &rows(&c)).is_err());
        // A gap in the key space.
        assert!(Catalog::from_records(&v, Some(&encode_u64(3)), &rows(&c)[..1]).is_err());
        // Version 0.
        assert!(Catalog::from_records(&encode_u64(0), Some(&encode_u64(3)), &rows(&c)).is_err());
    }

    #[test]
    fn split_matches_the_original_readme_example() {
        let plan = plan_split(&two_routes(), 1, 1, b"g").expect("valid split");
        assert_eq!(plan.after.version, 2);
        assert_eq!(plan.after.next_route_id, 5);
        let expect = |id, start: &[u8], end: Option<&[u8]>| RouteDescriptor {
            route_id: id,
            start: start.to_vec(),
            end: end.map(<[u8]>::to_vec),
            group: GroupId(1),
            state: RouteState::Active,
            parent_route_id: 1,
        };
        assert_eq!(plan.left, expect(3, b"", Some(b"g")));
        assert_eq!(plan.right, expect(4, b"g", Some(b"m")));
        let ids: Vec<u64> = plan.after.routes.iter().map(|r| r.route_id).collect();
        assert_eq!(ids, vec![3, 4, 2]);
        // Splitting the unbounded route keeps the right child unbounded.
        let plan = plan_split(&two_routes(), 1, 2, b"x").expect("valid split");
        assert_eq!(plan.right.end, None);
        assert_eq!(plan.right.group, GroupId(2));
    }

    /// The example in our README, against the demo's `:g=1,g:n=2,n:=3`.
    #[test]
    fn split_matches_our_readme_example() {
        let range = |s: &[u8], e: Option<&[u8]>, g| Range {
            start: s.to_vec(),
            end: e.map(<[u8]>::to_vec),
            group: GroupId(g),
        };
        let demo = Router::new(vec![
            range(b"", Some(b"g"), 1),
            range(b"g", Some(b"n"), 2),
            range(b"n", None, 3),
        ])
        .expect("valid");
        let plan = plan_split(&Catalog::initial(&demo), 1, 2, b"k").expect("split");
        assert_eq!(plan.after.version, 2);
        let l = &plan.left;
        let r = &plan.right;
        assert_eq!(
            (
                l.route_id,
                l.start.as_slice(),
                l.end.as_deref(),
                l.group.0,
                l.parent_route_id
            ),
            (4, &b"g"[..], Some(&b"k"[..]), 2, 2)
        );
        assert_eq!(
            (
                r.route_id,
                r.start.as_slice(),
                r.end.as_deref(),
                r.group.0,
                r.parent_route_id
            ),
            (5, &b"k"[..], Some(&b"n"[..]), 2, 2)
        );
    }

    #[test]
    fn split_validation() {
        let c = two_routes();
        assert!(matches!(
            plan_split(&c, 2, 1, b"g"),
            Err(SplitError::VersionMismatch {
                expected: 2,
                current: 1
            })
        ));
        assert!(matches!(
            plan_split(&c, 1, 7, b"g"),
            Err(SplitError::UnknownRoute(7))
        ));
        assert!(matches!(
            plan_split(&c, 1, 0, b"g"),
            Err(SplitError::UnknownRoute(0))
        ));
        // At the start, at the end, outside, empty.
        for (route, key) in [
            (1, &b""[..]),
            (1, b"m"),
            (1, b"z"),
            (2, b"m"),
            (2, b"a"),
            (2, b""),
        ] {
            assert!(
                matches!(
                    plan_split(&c, 1, route, key),
                    Err(SplitError::InvalidSplitKey(_))
                ),
                "route {route} key {key:?}"
            );
        }
        let long = vec![b'n'; MAX_KEY_BYTES + 1];
        assert!(matches!(
            plan_split(&c, 1, 2, &long),
            Err(SplitError::InvalidSplitKey(_))
        ));
        let mut fenced = c.clone();
        fenced.routes[0].state = RouteState::WriteFenced;
        assert!(matches!(
            plan_split(&fenced, 1, 1, b"g"),
            Err(SplitError::RouteNotActive { route_id: 1, .. })
        ));
        // A version mismatch is reported before anything else.
        assert!(matches!(
            plan_split(&c, 5, 9, b""),
            Err(SplitError::VersionMismatch { .. })
        ));
    }

    /// Write `c`'s records into `store` at `ts`, as one applied entry would.
    fn store_catalog(store: &GroupStore, c: &Catalog, ts: u64, deleted: &[u64]) {
        let mut b = store.batch();
        for (k, v) in rows(c) {
            b.put(&k, ts, &v);
        }
        for id in deleted {
            b.delete(&route_key(*id), ts);
        }
        b.put(&next_route_id_key(), ts, &encode_u64(c.next_route_id));
        b.put(&version_key(), ts, &encode_u64(c.version));
        b.commit().expect("commit");
    }

    #[test]
    fn local_replica_reads_follow_versions() {
        let dir = tempfile::tempdir().expect("tmp");
        let engine =
            elastickv_storage::Engine::open(dir.path(), Default::default()).expect("engine");
        let store = engine.group(DEFAULT_GROUP).expect("group");
        assert_eq!(read_local(&store, 0), Ok(LocalCatalog::Absent));
        let v1 = two_routes();
        store_catalog(&store, &v1, 10, &[]);
        assert_eq!(read_local(&store, 0), Ok(LocalCatalog::Loaded(v1.clone())));
        assert_eq!(read_local(&store, 1), Ok(LocalCatalog::Unchanged(1)));
        // The split replaces route 1 by 3 and 4 at a later timestamp; the
        // reader sees exactly the new catalog, not the deleted parent.
        let v2 = plan_split(&v1, 1, 1, b"g").expect("split").after;
        store_catalog(&store, &v2, 20, &[1]);
        assert_eq!(read_local(&store, 1), Ok(LocalCatalog::Loaded(v2.clone())));
        let table = v2.route_table().expect("table");
        assert_eq!(table.version, 2);
        assert_eq!(table.route(b"h").end.as_deref(), Some(&b"m"[..]));
        // A lock on a catalog key means a change is half applied: wait.
        let mut b = store.batch();
        b.put_lock(&version_key(), b"lock");
        b.commit().expect("commit");
        assert_eq!(read_local(&store, 0), Ok(LocalCatalog::Pending));
    }

    #[test]
    fn successive_splits_never_reuse_ids() {
        let c = two_routes();
        let a = plan_split(&c, 1, 1, b"g").expect("split").after;
        let b = plan_split(&a, 2, 3, b"c").expect("split").after;
        let ids: Vec<u64> = b.routes.iter().map(|r| r.route_id).collect();
        assert_eq!(ids, vec![5, 6, 4, 2]);
        assert_eq!((b.version, b.next_route_id), (3, 7));
        b.validate().expect("valid");
    }
}
