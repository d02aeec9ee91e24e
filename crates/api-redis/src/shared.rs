//! Node-wide state of the Redis front end: the CONFIG parameter table,
//! the SCAN cursor table, counters and identity reported by INFO.
//!
//! Both tables are per node and in memory: CONFIG SET changes only this
//! node's answers (the parameters do not change storage behaviour, except
//! `hll-sparse-max-bytes`) — except `notify-keyspace-events`, which every
//! node adopts from a store record (see [`crate::notify`]) — and a SCAN
//! cursor is valid on the node that
//! issued it until 65 536 newer cursors (or 64 MiB of them) push it out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::glob;
use crate::server::ServerStats;

/// One CONFIG parameter.
#[derive(Clone, Debug)]
struct Param {
    value: String,
    kind: ParamKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamKind {
    /// Any string.
    Text,
    /// A signed integer (memory units accepted for `Bytes`).
    Int,
    /// A byte size with optional k/kb/m/mb/g/gb unit.
    Bytes,
    /// yes / no.
    Bool,
    /// Cannot be changed at runtime.
    Immutable,
}

/// Parameter names that are aliases of another (`*-ziplist-*` of
/// `*-listpack-*`, as in Redis 7.0).
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("slave-read-only", "replica-read-only"),
    ("lua-time-limit", "busy-reply-threshold"),
];

/// The CONFIG GET/SET table.
#[derive(Debug)]
pub struct ConfigTable {
    params: BTreeMap<&'static str, Param>,
}

impl ConfigTable {
    /// Redis 7.0's defaults for the parameters clients and test suites
    /// read or set; `port` is the Redis port this node listens on.
    pub fn new(port: u16, maxclients: usize) -> ConfigTable {
        use ParamKind::*;
        let port = port.to_string();
        let maxclients = maxclients.to_string();
        let defaults: &[(&'static str, &str, ParamKind)] = &[
            ("activedefrag", "no", Bool),
            ("appendfilename", "appendonly.aof", Immutable),
            ("appendfsync", "everysec", Text),
            ("appendonly", "no", Bool),
            ("bind", "* -::*", Immutable),
            ("busy-reply-threshold", "5000", Int),
            ("client-query-buffer-limit", "1073741824", Bytes),
            ("cluster-enabled", "no", Immutable),
            ("daemonize", "no", Immutable),
            ("databases", "1", Immutable),
            ("dbfilename", "dump.rdb", Text),
            ("dir", "/", Text),
            ("dynamic-hz", "yes", Bool),
            ("hash-max-listpack-entries", "128", Int),
            ("hash-max-listpack-value", "64", Int),
            ("hll-sparse-max-bytes", "3000", Bytes),
            ("hz", "10", Int),
            ("io-threads", "1", Immutable),
            ("latency-monitor-threshold", "0", Int),
            ("latency-tracking", "yes", Bool),
            ("lazyfree-lazy-eviction", "no", Bool),
            ("lazyfree-lazy-expire", "no", Bool),
            ("lazyfree-lazy-server-del", "no", Bool),
            ("lazyfree-lazy-user-del", "no", Bool),
            ("lazyfree-lazy-user-flush", "no", Bool),
            ("list-compress-depth", "0", Int),
            ("list-max-listpack-size", "-2", Int),
            ("logfile", "", Immutable),
            ("loglevel", "notice", Text),
            ("maxclients", &maxclients, Int),
            ("maxmemory", "0", Bytes),
            ("maxmemory-policy", "noeviction", Text),
            ("maxmemory-samples", "5", Int),
            ("min-replicas-max-lag", "10", Int),
            ("min-replicas-to-write", "0", Int),
            ("notify-keyspace-events", "", Text),
            ("port", &port, Immutable),
            ("protected-mode", "no", Bool),
            ("proto-max-bulk-len", "536870912", Bytes),
            ("replica-read-only", "yes", Bool),
            ("requirepass", "", Text),
            ("save", "", Text),
            // Elastickv's own: scripts running longer are aborted.
            ("script-time-limit", "5000", Int),
            ("set-max-intset-entries", "512", Int),
            ("slowlog-log-slower-than", "10000", Int),
            ("slowlog-max-len", "128", Int),
            ("stream-node-max-bytes", "4096", Bytes),
            ("stream-node-max-entries", "100", Int),
            ("tcp-keepalive", "300", Int),
            ("timeout", "0", Int),
            ("zset-max-listpack-entries", "128", Int),
            ("zset-max-listpack-value", "64", Int),
        ];
        let params = defaults
            .iter()
            .map(|(name, value, kind)| {
                (
                    *name,
                    Param {
                        value: (*value).to_string(),
                        kind: *kind,
                    },
                )
            })
            .collect();
        ConfigTable { params }
    }

    fn canonical(name: &str) -> &str {
        ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map(|(_, real)| *real)
            .unwrap_or(name)
    }

    /// CONFIG GET: every (name, value) whose name (or alias) matches one
    /// of the glob patterns, each once.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for pat in patterns {
            for (name, p) in &self.params {
                if glob::string_match(pat, name.as_bytes(), true) {
                    // requirepass is write-only here: never echo secrets.
                    let v = if *name == "requirepass" {
                        String::new()
                    } else {
                        p.value.clone()
                    };
                    out.insert((*name).to_string(), v);
                }
            }
            for (alias, real) in ALIASES {
                if glob::string_match(pat, alias.as_bytes(), true) {
                    if let Some(p) = self.params.get(real) {
                        out.insert((*alias).to_string(), p.value.clone());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// A parameter's current value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.params
            .get(Self::canonical(name))
            .map(|p| p.value.as_str())
    }

    /// CONFIG SET of several pairs, all or nothing. `Err` is the full
    /// error text (without the `ERR ` code).
    pub fn set(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        let mut staged: Vec<(&'static str, String)> = Vec::new();
        for (name, value) in pairs {
            let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
            let canon = Self::canonical(&lname);
            let Some((key, p)) = self.params.get_key_value(canon) else {
                return Err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{}'",
                    String::from_utf8_lossy(name)
                ));
            };
            if staged.iter().any(|(k, _)| k == key) {
                return Err(format!(
                    "CONFIG SET failed (possibly related to argument '{lname}') - duplicate parameter"
                ));
            }
            let v = String::from_utf8_lossy(value).into_owned();
            let fail = |why: &str| {
                format!("CONFIG SET failed (possibly related to argument '{lname}') - {why}")
            };
            let normalised = match p.kind {
                _ if *key == "notify-keyspace-events" => {
                    match crate::notify::parse_flags(v.as_bytes()) {
                        Some(flags) => crate::notify::flags_to_string(flags),
                        None => return Err(fail(crate::notify::BAD_CLASS)),
                    }
                }
                ParamKind::Immutable => return Err(fail("can't set immutable config")),
                ParamKind::Text => v,
                ParamKind::Int => match v.parse::<i64>() {
                    Ok(n) => n.to_string(),
                    Err(_) => return Err(fail("argument couldn't be parsed into an integer")),
                },
                ParamKind::Bytes => match parse_memory(&v) {
                    Some(n) => n.to_string(),
                    None => return Err(fail("argument must be a memory value")),
                },
                ParamKind::Bool => match v.to_ascii_lowercase().as_str() {
                    "yes" | "no" => v.to_ascii_lowercase(),
                    _ => return Err(fail("argument must be 'yes' or 'no'")),
                },
            };
            staged.push((key, normalised));
        }
        for (k, v) in staged {
            if let Some(p) = self.params.get_mut(k) {
                p.value = v;
            }
        }
        Ok(())
    }
}

/// `memtoll`: a number with an optional b/k/kb/m/mb/g/gb unit.
fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: i64 = num.parse().ok()?;
    let mul: i64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// Most cursors remembered per node.
const MAX_CURSORS: usize = 65_536;
/// Most bytes of cursor positions remembered per node.
const MAX_CURSOR_BYTES: usize = 64 * 1024 * 1024;

/// SCAN/HSCAN/SSCAN/ZSCAN cursors: Redis cursors are integers, our
/// positions are byte strings, so a cursor is a random id mapped to the
/// position to resume from.
#[derive(Debug, Default)]
pub struct Cursors {
    map: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    bytes: usize,
}

impl Cursors {
    /// Remembers `position`; returns its cursor id (never 0).
    pub fn insert(&mut self, position: Vec<u8>) -> u64 {
        let mut id = 0;
        while id == 0 || self.map.contains_key(&id) {
            // Below 2^63 so clients parsing signed integers cope.
            id = rand::random::<u64>() >> 1;
        }
        self.bytes += position.len();
        self.map.insert(id, position);
        self.order.push_back(id);
        while self.order.len() > MAX_CURSORS || self.bytes > MAX_CURSOR_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.map.remove(&old) {
                self.bytes -= p.len();
            }
        }
        id
    }

    /// The position of cursor `id`, if still known. Cursors stay valid
    /// after use, so a client may repeat a SCAN call.
    pub fn get(&self, id: u64) -> Option<Vec<u8>> {
        self.map.get(&id).cloned()
    }
}

/// State shared by every connection of one node.
#[derive(Debug)]
pub struct Shared {
    /// CONFIG table.
    pub config: Mutex<ConfigTable>,
    /// SCAN cursors.
    pub cursors: Mutex<Cursors>,
    /// Largest KV value (strings and elements must fit).
    pub max_value_bytes: usize,
    /// Largest reply one command may build.
    pub max_reply_bytes: usize,
    /// Connection counters (shared with the server).
    pub stats: Arc<ServerStats>,
    /// Start time (INFO uptime).
    pub started: Instant,
    /// INFO run_id.
    pub run_id: String,
    /// The Redis port (INFO tcp_port).
    pub port: u16,
    /// Version reported by INFO.
    pub version: String,
    /// Reads that found their key (INFO keyspace_hits).
    pub keyspace_hits: AtomicU64,
    /// Reads that did not (INFO keyspace_misses).
    pub keyspace_misses: AtomicU64,
    /// Keys removed because they had expired (INFO expired_keys).
    pub expired_keys: AtomicU64,
    /// This node's pub/sub subscriptions (shared with the node's gRPC
    /// service that delivers other nodes' PUBLISHes).
    pub hub: Arc<crate::pubsub::Hub>,
    /// Fan-out of PUBLISH and PUBSUB to the other nodes (`None`: this
    /// node only).
    pub broadcaster: Option<Arc<dyn crate::pubsub::Broadcaster>>,
    /// Clients blocked in BLPOP & co. on this node.
    pub waiters: crate::blocking::Waiters,
    /// This node's Lua script cache and running scripts.
    pub scripts: crate::script::Scripts,
    /// `notify-keyspace-events` as flags (see [`crate::notify`]), read by
    /// every write; kept equal to the CONFIG table's value.
    pub notify_flags: AtomicU32,
}

impl Shared {
    /// The CONFIG table (poisoning is harmless: the table has no
    /// invariants a panic could break).
    pub fn config(&self) -> MutexGuard<'_, ConfigTable> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cursor table.
    pub fn cursors(&self) -> MutexGuard<'_, Cursors> {
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The keyspace-notification flags in force.
    pub fn notify_flags(&self) -> u32 {
        self.notify_flags.load(Ordering::Relaxed)
    }

    /// CONFIG SET on this node (all pairs or none); keeps the notification
    /// flags in step with the table. Returns the new value of
    /// `notify-keyspace-events` if the call set it.
    pub fn set_config(&self, pairs: &[(&[u8], &[u8])]) -> Result<Option<String>, String> {
        let mut table = self.config();
        table.set(pairs)?;
        let touched = pairs
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"notify-keyspace-events"));
        if !touched {
            return Ok(None);
        }
        let value = table
            .value("notify-keyspace-events")
            .unwrap_or_default()
            .to_string();
        let flags = crate::notify::parse_flags(value.as_bytes()).unwrap_or(0);
        self.notify_flags.store(flags, Ordering::Relaxed);
        Ok(Some(value))
    }

    /// Takes the cluster's `notify-keyspace-events` (see
    /// [`crate::notify::run_refresher`]).
    pub fn adopt_notify_flags(&self, flags: u32) {
        let value = crate::notify::flags_to_string(flags);
        let mut table = self.config();
        if table
            .set(&[(b"notify-keyspace-events", value.as_bytes())])
            .is_ok()
        {
            self.notify_flags.store(flags, Ordering::Relaxed);
        }
    }

    /// `hll-sparse-max-bytes`.
    pub fn hll_sparse_max_bytes(&self) -> usize {
        self.config()
            .value("hll-sparse-max-bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::hll::DEFAULT_SPARSE_MAX_BYTES)
    }

    /// A config integer (encoding thresholds for OBJECT ENCODING).
    pub fn config_int(&self, name: &str, default: i64) -> i64 {
        self.config()
            .value(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_get_set() {
        let mut c = ConfigTable::new(6379, 10000);
        let got = c.get(&[b"maxmemory"]);
        assert_eq!(got, vec![("maxmemory".to_string(), "0".to_string())]);
        assert!(c
            .get(&[b"*max-*-entries*"])
            .iter()
            .any(|(k, _)| k == "hash-max-ziplist-entries"));
        c.set(&[(b"maxmemory", b"1mb")]).expect("set");
        assert_eq!(c.value("maxmemory"), Some("1048576"));
        c.set(&[(b"hash-max-ziplist-entries", b"5")]).expect("set");
        assert_eq!(c.value("hash-max-listpack-entries"), Some("5"));
        assert!(c.set(&[(b"nope", b"1")]).is_err());
        assert!(c.set(&[(b"port", b"1")]).is_err());
        // All or nothing.
        assert!(c.set(&[(b"hz", b"20"), (b"maxmemory", b"zz")]).is_err());
        assert_eq!(c.value("hz"), Some("10"));
        assert!(c.get(&[b"nonexistent"]).is_empty());
    }

    #[test]
    fn cursors_are_bounded() {
        let mut c = Cursors::default();
        let first = c.insert(b"a".to_vec());
        assert_eq!(c.get(first), Some(b"a".to_vec()));
        for _ in 0..MAX_CURSORS {
            c.insert(b"b".to_vec());
        }
        assert_eq!(c.get(first), None);
        assert!(c.map.len() <= MAX_CURSORS);
    }
}
