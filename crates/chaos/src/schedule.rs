//! The nemesis schedule: a seeded, pure plan of which fault happens when,
//! against which target, and for how long. Generating it needs no cluster,
//! so the same seed always replays the same schedule (kinds, targets and
//! timings); only what "the leader of group g" resolves to is decided when
//! the fault fires.
//!
//! By default faults are applied one at a time (fault, hold, heal, quiet
//! gap). With `overlap` the plan is made of episodes of one to three faults
//! of different kinds whose hold times overlap (a second fault starts while
//! the first is held, and may end before or after it); every fault is
//! still healed individually, and episodes are separated by a quiet gap.
//!
//! Either way every moment stays within what a majority-quorum system must
//! survive: at most a minority of the nodes is dead, paused, removed from
//! the membership or cut off (an overlapping episode is only formed when
//! the union of the nodes its faults impair fits in that minority).

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Families of faults, as named on the command line (`--nemesis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NemesisKind {
    /// Network partitions made by the link proxies.
    Partition,
    /// `kill -9` a node, restart it when healed.
    Kill,
    /// SIGSTOP a node, SIGCONT when healed.
    Pause,
    /// Skew or jump a node's HLC.
    Clock,
    /// Ask a group's leader to hand leadership to another node.
    Leader,
    /// Remove a node from every group's membership; when healed, add it
    /// back (learner, then voter) with the data it kept.
    Membership,
}

impl NemesisKind {
    pub const ALL: [NemesisKind; 6] = [
        NemesisKind::Partition,
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Clock,
        NemesisKind::Leader,
        NemesisKind::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NemesisKind::Partition => "partition",
            NemesisKind::Kill => "kill",
            NemesisKind::Pause => "pause",
            NemesisKind::Clock => "clock",
            NemesisKind::Leader => "leader",
            NemesisKind::Membership => "membership",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown nemesis {0:?} (expected partition, kill, pause, clock, leader, membership, all or none)")]
pub struct UnknownNemesis(pub String);

impl FromStr for NemesisKind {
    type Err = UnknownNemesis;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NemesisKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| UnknownNemesis(s.to_string()))
    }
}

impl fmt::Display for NemesisKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse `partition,kill,...`, `all` or `none` (empty: none).
pub fn parse_kinds(s: &str) -> Result<Vec<NemesisKind>, UnknownNemesis> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part {
            "all" => out.extend(NemesisKind::ALL),
            "none" => {}
            other => out.push(other.parse()?),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One concrete fault. Node and group numbers are 0-based node indices and
/// 1-based Raft group ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    /// Two components; every link across them is cut.
    PartitionHalves {
        components: Vec<Vec<usize>>,
    },
    /// The leader of `group` (resolved when applied) alone on one side.
    IsolateLeader {
        group: u64,
    },
    /// Every node talks only to its ring neighbours (each sees a majority
    /// only through overlapping views: needs 5 nodes to differ from a full
    /// mesh).
    MajoritiesRing,
    /// Two halves joined by one bridge node that talks to both.
    Bridge {
        bridge: usize,
    },
    Kill {
        node: usize,
    },
    Pause {
        node: usize,
    },
    /// Set a node's HLC offset (a skew, or a jump when large).
    Clock {
        node: usize,
        offset_ms: i64,
    },
    /// Transfer `group`'s leadership to `to` (ignored if it already leads).
    TransferLeader {
        group: u64,
        to: usize,
    },
    /// Remove `node` (voter) from every group; healing adds it back as a
    /// learner and promotes it. The process keeps running with its data
    /// while removed; with `wipe` it is replaced at heal time by an empty
    /// node with the same id and address, which must catch up from
    /// scratch (log or snapshot).
    RemoveNode {
        node: usize,
        #[serde(default)]
        wipe: bool,
    },
}

impl Fault {
    pub fn kind(&self) -> NemesisKind {
        match self {
            Fault::PartitionHalves { .. }
            | Fault::IsolateLeader { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge { .. } => NemesisKind::Partition,
            Fault::Kill { .. } => NemesisKind::Kill,
            Fault::Pause { .. } => NemesisKind::Pause,
            Fault::Clock { .. } => NemesisKind::Clock,
            Fault::TransferLeader { .. } => NemesisKind::Leader,
            Fault::RemoveNode { .. } => NemesisKind::Membership,
        }
    }

    /// Which nodes the fault takes out of the quorum while it is held.
    pub fn impact(&self) -> Impact {
        match self {
            Fault::PartitionHalves { components } => {
                // The smaller side is cut off from the majority.
                let minority = components
                    .iter()
                    .min_by_key(|c| c.len())
                    .cloned()
                    .unwrap_or_default();
                Impact::Nodes(minority)
            }
            Fault::IsolateLeader { .. } => Impact::OneUnknown,
            Fault::MajoritiesRing | Fault::Bridge { .. } => Impact::Wide,
            Fault::Kill { node } | Fault::Pause { node } | Fault::RemoveNode { node, .. } => {
                Impact::Nodes(vec![*node])
            }
            Fault::Clock { .. } | Fault::TransferLeader { .. } => Impact::None,
        }
    }

    /// The same fault aimed at `node` where that makes sense (used to make
    /// overlapping faults hit the same node, which is what fits in a
    /// 3-node cluster's budget of one impaired node).
    fn retarget(&mut self, target: usize) {
        match self {
            Fault::Kill { node }
            | Fault::Pause { node }
            | Fault::Clock { node, .. }
            | Fault::RemoveNode { node, .. } => *node = target,
            Fault::PartitionHalves { components } => {
                let all: Vec<usize> = components.iter().flatten().copied().collect();
                let small = components.iter().map(Vec::len).min().unwrap_or(0).max(1);
                let mut minority = vec![target];
                minority.extend(
                    components
                        .iter()
                        .min_by_key(|c| c.len())
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|x| *x != target)
                        .take(small - 1),
                );
                minority.sort_unstable();
                let mut majority: Vec<usize> =
                    all.into_iter().filter(|x| !minority.contains(x)).collect();
                majority.sort_unstable();
                *components = vec![minority, majority];
            }
            _ => {}
        }
    }
}

/// How a fault affects the quorum while held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impact {
    /// Nobody loses its vote (clock skew, leader transfer).
    None,
    /// These nodes are dead, paused, removed or cut off.
    Nodes(Vec<usize>),
    /// One node decided at run time (the leader of a group).
    OneUnknown,
    /// Connectivity changes everywhere (ring, bridge): never combined with
    /// another fault that impairs nodes.
    Wide,
}

/// Can these faults be held at the same time and still leave a connected,
/// running majority of voters? `budget` is the number of nodes that may be
/// impaired at once, `(nodes - 1) / 2`.
pub fn fits_together(faults: &[Fault], budget: usize) -> bool {
    let mut nodes: Vec<usize> = Vec::new();
    let mut unknown = 0usize;
    let mut impairing = 0usize;
    let mut wide = false;
    let mut partitions = 0usize;
    for f in faults {
        if f.kind() == NemesisKind::Partition {
            partitions += 1;
        }
        match f.impact() {
            Impact::None => continue,
            Impact::Nodes(ns) => nodes.extend(ns),
            Impact::OneUnknown => unknown += 1,
            Impact::Wide => wide = true,
        }
        impairing += 1;
    }
    nodes.sort_unstable();
    nodes.dedup();
    // One partition at a time: healing one must not heal another.
    partitions <= 1 && !(wide && impairing > 1) && nodes.len() + unknown <= budget
}

/// A fault applied at `at_ms` (since the start of the workload) and healed
/// `hold_ms` later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at_ms: u64,
    pub hold_ms: u64,
    pub fault: Fault,
}

/// Inputs of the generator.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Raft group ids (1-based).
    pub groups: u64,
    pub kinds: Vec<NemesisKind>,
    /// Faults start no later than this (the runner heals everything after).
    pub duration_ms: u64,
    /// Quiet time before the first fault and between faults.
    pub gap_ms: (u64, u64),
    /// How long a fault is held.
    pub hold_ms: (u64, u64),
    /// Episodes of overlapping faults instead of one fault at a time.
    pub overlap: bool,
}

impl ScheduleConfig {
    pub fn new(
        seed: u64,
        nodes: usize,
        groups: u64,
        kinds: Vec<NemesisKind>,
        duration_ms: u64,
    ) -> Self {
        ScheduleConfig {
            seed,
            nodes,
            groups,
            kinds,
            duration_ms,
            gap_ms: (1_000, 3_000),
            hold_ms: (2_000, 6_000),
            overlap: false,
        }
    }
}

/// Generate the schedule. Deterministic in `cfg`.
pub fn generate(cfg: &ScheduleConfig) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut steps = Vec::new();
    if cfg.kinds.is_empty() || cfg.nodes < 2 || cfg.groups == 0 {
        return steps;
    }
    if cfg.overlap {
        return generate_overlapping(cfg, &mut rng);
    }
    let mut t = range(&mut rng, cfg.gap_ms);
    // Bounded: each iteration advances t by at least gap_ms.0 + hold_ms.0,
    // and the cap guards against a zero config.
    while t < cfg.duration_ms && steps.len() < 10_000 {
        let hold = range(&mut rng, cfg.hold_ms).min(cfg.duration_ms.saturating_sub(t).max(500));
        let kind = cfg.kinds[rng.gen_range(0..cfg.kinds.len())];
        let fault = fault_of(kind, cfg, &mut rng);
        steps.push(Step {
            at_ms: t,
            hold_ms: hold,
            fault,
        });
        t += hold + range(&mut rng, cfg.gap_ms).max(1);
    }
    steps
}

fn range(rng: &mut StdRng, (lo, hi): (u64, u64)) -> u64 {
    rng.gen_range(lo..=hi.max(lo))
}

/// Episodes of up to three overlapping faults of distinct kinds (three
/// only with 5+ nodes), each fault with its own start and hold; the next
/// episode starts after every fault of this one was healed and a gap.
fn generate_overlapping(cfg: &ScheduleConfig, rng: &mut StdRng) -> Vec<Step> {
    let budget = (cfg.nodes - 1) / 2;
    let mut steps = Vec::new();
    let mut t = range(rng, cfg.gap_ms);
    // Bounded like the sequential loop: every episode advances t.
    while t < cfg.duration_ms && steps.len() < 10_000 {
        let want = if cfg.kinds.len() < 2 || rng.gen_bool(0.25) {
            1
        } else if cfg.nodes >= 5 && rng.gen_bool(0.3) {
            3
        } else {
            2
        };
        let mut episode: Vec<Fault> = Vec::new();
        // Bounded retries: a candidate that does not fit is dropped.
        for _ in 0..12 {
            if episode.len() >= want {
                break;
            }
            let kind = cfg.kinds[rng.gen_range(0..cfg.kinds.len())];
            if episode.iter().any(|f| f.kind() == kind) {
                continue;
            }
            let mut fault = fault_of(kind, cfg, rng);
            // Half the time aim at a node the episode already impairs, so
            // that same-node combinations (partition a paused node, kill a
            // removed one) show up even with a budget of one node.
            let impaired = episode.iter().find_map(|f| match f.impact() {
                Impact::Nodes(ns) => ns.first().copied(),
                _ => None,
            });
            if let Some(n) = impaired {
                if rng.gen_bool(0.5) {
                    fault.retarget(n);
                }
            }
            // Later faults start while earlier ones are held: a clock skew
            // cannot reach a node that is dead or stopped, leadership
            // cannot move to one (or to a removed node), and a dead
            // process cannot be paused, so the runner would skip them. Do
            // not plan what cannot happen.
            let down = |n: usize, with_removed: bool| {
                episode.iter().any(|f| match f {
                    Fault::Kill { node } | Fault::Pause { node } => *node == n,
                    Fault::RemoveNode { node, .. } => with_removed && *node == n,
                    _ => false,
                })
            };
            let killed = |n: usize| {
                episode
                    .iter()
                    .any(|f| matches!(f, Fault::Kill { node } if *node == n))
            };
            match fault {
                Fault::Clock { node, .. } if down(node, false) => continue,
                Fault::TransferLeader { to, .. } if down(to, true) => continue,
                Fault::Pause { node } if killed(node) => continue,
                _ => {}
            }
            let mut candidate = episode.clone();
            candidate.push(fault.clone());
            if fits_together(&candidate, budget) {
                episode = candidate;
            }
        }
        let first_hold = range(rng, cfg.hold_ms);
        // Later faults start while the first is held (and may outlast it),
        // in the order they were chosen: the checks above compared each
        // with the ones chosen before it, which must also be applied
        // before it.
        let mut offsets: Vec<u64> = (1..episode.len())
            .map(|_| rng.gen_range(0..=first_hold * 3 / 4))
            .collect();
        offsets.sort_unstable();
        let mut end = t;
        for (j, fault) in episode.into_iter().enumerate() {
            let (at, hold) = if j == 0 {
                (t, first_hold)
            } else {
                (t + offsets[j - 1], range(rng, cfg.hold_ms))
            };
            if at >= cfg.duration_ms {
                continue;
            }
            let hold = hold.min(cfg.duration_ms.saturating_sub(at).max(500));
            end = end.max(at + hold);
            steps.push(Step {
                at_ms: at,
                hold_ms: hold,
                fault,
            });
        }
        t = end + range(rng, cfg.gap_ms).max(1);
    }
    // Stable: faults starting together keep their episode order.
    steps.sort_by_key(|s| s.at_ms);
    steps
}

fn fault_of(kind: NemesisKind, cfg: &ScheduleConfig, rng: &mut StdRng) -> Fault {
    let n = cfg.nodes;
    let node = rng.gen_range(0..n);
    let group = rng.gen_range(1..=cfg.groups);
    match kind {
        NemesisKind::Partition => match rng.gen_range(0..4) {
            0 => {
                // Random halves: shuffle, the first floor(n/2) are the minority.
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, rng.gen_range(0..=i));
                }
                let (a, b) = order.split_at(n / 2);
                let (mut a, mut b) = (a.to_vec(), b.to_vec());
                a.sort_unstable();
                b.sort_unstable();
                Fault::PartitionHalves {
                    components: vec![a, b],
                }
            }
            1 => Fault::IsolateLeader { group },
            2 if n >= 5 => Fault::MajoritiesRing,
            2 => Fault::IsolateLeader { group },
            _ => Fault::Bridge { bridge: node },
        },
        NemesisKind::Kill => Fault::Kill { node },
        NemesisKind::Pause => Fault::Pause { node },
        NemesisKind::Clock => {
            // Mostly modest skews, sometimes a big jump either way.
            let offset_ms = if rng.gen_bool(0.3) {
                let jump = rng.gen_range(10_000..=60_000);
                if rng.gen_bool(0.5) {
                    jump
                } else {
                    -jump
                }
            } else {
                rng.gen_range(-2_000..=2_000)
            };
            Fault::Clock { node, offset_ms }
        }
        NemesisKind::Leader => Fault::TransferLeader { group, to: node },
        NemesisKind::Membership => Fault::RemoveNode {
            node,
            wipe: rng.gen_bool(0.5),
        },
    }
}

/// Directed links to cut for a fault that is a fixed partition
/// (`IsolateLeader` needs the leader first: see [`isolate`]).
pub fn cut_links(fault: &Fault, nodes: usize) -> Option<Vec<(usize, usize)>> {
    let all = || (0..nodes).flat_map(|a| (0..nodes).filter(move |b| *b != a).map(move |b| (a, b)));
    match fault {
        Fault::PartitionHalves { components } => {
            let comp = |x: usize| components.iter().position(|c| c.contains(&x));
            Some(
                all()
                    .filter(|(a, b)| comp(*a) != comp(*b) || comp(*a).is_none())
                    .collect(),
            )
        }
        Fault::MajoritiesRing => {
            // Keep only ring neighbours (distance 1 either way).
            Some(
                all()
                    .filter(|(a, b)| {
                        let d = (a + nodes - b) % nodes;
                        d != 1 && d != nodes - 1
                    })
                    .collect(),
            )
        }
        Fault::Bridge { bridge } => {
            // The others split in two halves; the bridge sees both.
            let others: Vec<usize> = (0..nodes).filter(|x| x != bridge).collect();
            let (left, _) = others.split_at(others.len() / 2);
            let side = |x: usize| left.contains(&x);
            Some(
                all()
                    .filter(|(a, b)| a != bridge && b != bridge && side(*a) != side(*b))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// Links to cut to isolate `node` from everyone else.
pub fn isolate(node: usize, nodes: usize) -> Vec<(usize, usize)> {
    (0..nodes)
        .filter(|x| *x != node)
        .flat_map(|x| [(x, node), (node, x)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> ScheduleConfig {
        ScheduleConfig::new(seed, 5, 3, NemesisKind::ALL.to_vec(), 120_000)
    }

    #[test]
    fn same_seed_same_schedule() {
        let a = generate(&cfg(42));
        let b = generate(&cfg(42));
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }

    #[test]
    fn different_seeds_differ() {
        assert_ne!(generate(&cfg(1)), generate(&cfg(2)));
    }

    #[test]
    fn steps_are_sequential_and_within_duration() {
        for seed in 0..20 {
            let steps = generate(&cfg(seed));
            let mut end = 0;
            for s in &steps {
                assert!(s.at_ms >= end, "faults overlap: {steps:?}");
                assert!(s.at_ms < 120_000);
                assert!(s.hold_ms > 0);
                end = s.at_ms + s.hold_ms;
            }
        }
    }

    #[test]
    fn only_requested_kinds_and_valid_targets() {
        let mut c = cfg(7);
        c.nodes = 3;
        c.kinds = vec![NemesisKind::Kill, NemesisKind::Clock];
        for s in generate(&c) {
            match s.fault {
                Fault::Kill { node } | Fault::Clock { node, .. } => assert!(node < 3),
                other => panic!("unexpected fault {other:?}"),
            }
        }
        c.kinds = vec![];
        assert!(generate(&c).is_empty());
    }

    #[test]
    fn parse_kinds_accepts_lists_all_and_none() {
        assert_eq!(
            parse_kinds("kill, partition,kill").expect("parse"),
            vec![NemesisKind::Partition, NemesisKind::Kill]
        );
        assert_eq!(parse_kinds("all").expect("parse").len(), 6);
        assert_eq!(
            parse_kinds("membership").expect("parse"),
            vec![NemesisKind::Membership]
        );
        assert!(parse_kinds("none").expect("parse").is_empty());
        assert!(parse_kinds("flood").is_err());
    }

    #[test]
    fn partitions_leave_a_majority_connected() {
        let n = 5;
        for f in [
            Fault::PartitionHalves {
                components: vec![vec![0, 3], vec![1, 2, 4]],
            },
            Fault::Bridge { bridge: 2 },
            Fault::MajoritiesRing,
        ] {
            let cut = cut_links(&f, n).expect("fixed partition");
            // Some node must reach a majority (itself included) directly.
            let best = (0..n)
                .map(|a| {
                    1 + (0..n)
                        .filter(|b| *b != a && !cut.contains(&(a, *b)))
                        .count()
                })
                .max()
                .unwrap_or(0);
            assert!(best > n / 2, "{f:?} cut {cut:?}");
        }
        let iso = isolate(1, 3);
        assert_eq!(iso.len(), 4);
        assert!(iso.iter().all(|(a, b)| *a == 1 || *b == 1));
    }

    fn overlap_cfg(seed: u64, nodes: usize) -> ScheduleConfig {
        let mut c = ScheduleConfig::new(seed, nodes, 3, NemesisKind::ALL.to_vec(), 120_000);
        c.overlap = true;
        c
    }

    /// Faults held at `t` (half-open `[at, at + hold)`).
    fn held_at(steps: &[Step], t: u64) -> Vec<Fault> {
        steps
            .iter()
            .filter(|s| s.at_ms <= t && t < s.at_ms + s.hold_ms)
            .map(|s| s.fault.clone())
            .collect()
    }

    #[test]
    fn overlapping_schedule_is_seeded_and_really_overlaps() {
        for nodes in [3, 5] {
            let a = generate(&overlap_cfg(9, nodes));
            assert_eq!(a, generate(&overlap_cfg(9, nodes)));
            assert_ne!(a, generate(&overlap_cfg(10, nodes)));
            let overlapping = a
                .windows(2)
                .filter(|w| w[1].at_ms < w[0].at_ms + w[0].hold_ms)
                .count();
            assert!(overlapping >= 3, "{nodes} nodes: {a:?}");
            assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        }
    }

    #[test]
    fn overlapping_faults_never_impair_a_majority() {
        for seed in 0..30 {
            for nodes in [3, 5] {
                let steps = generate(&overlap_cfg(seed, nodes));
                let budget = (nodes - 1) / 2;
                // Check at every fault start (the held set only grows there).
                for s in &steps {
                    let held = held_at(&steps, s.at_ms);
                    assert!(
                        fits_together(&held, budget),
                        "seed {seed}, {nodes} nodes, at {} ms: {held:?}",
                        s.at_ms
                    );
                    // The fault starting now must not aim at a node an
                    // earlier, still held fault killed or paused (earlier in
                    // the plan's order, which is the order of application).
                    let pos = steps.iter().position(|x| x == s).unwrap_or(0);
                    let earlier = held_at(&steps[..pos], s.at_ms);
                    let hit = |n: usize, also_paused: bool| {
                        earlier.iter().any(|g| match g {
                            Fault::Kill { node } => *node == n,
                            Fault::Pause { node } => also_paused && *node == n,
                            _ => false,
                        })
                    };
                    match &s.fault {
                        Fault::Pause { node } => assert!(!hit(*node, false), "{held:?}"),
                        Fault::Clock { node, .. } => assert!(!hit(*node, true), "{held:?}"),
                        Fault::TransferLeader { to, .. } => assert!(!hit(*to, true), "{held:?}"),
                        _ => {}
                    }
                    let mut kinds: Vec<NemesisKind> = held.iter().map(Fault::kind).collect();
                    kinds.sort();
                    let n = kinds.len();
                    kinds.dedup();
                    assert_eq!(kinds.len(), n, "two faults of one kind held together");
                }
            }
        }
    }

    #[test]
    fn budget_rules() {
        let kill = |node| Fault::Kill { node };
        let pause = |node| Fault::Pause { node };
        // 3 nodes: one impaired node at most, same-node combinations fit.
        assert!(fits_together(&[kill(1), pause(1)], 1));
        assert!(!fits_together(&[kill(1), pause(2)], 1));
        assert!(fits_together(
            &[
                Fault::RemoveNode {
                    node: 0,
                    wipe: false
                },
                Fault::Clock {
                    node: 1,
                    offset_ms: 500
                }
            ],
            1
        ));
        assert!(!fits_together(
            &[
                Fault::RemoveNode {
                    node: 0,
                    wipe: false
                },
                Fault::IsolateLeader { group: 1 }
            ],
            1
        ));
        // 5 nodes: two, but a ring never combines with another impairment.
        assert!(fits_together(&[kill(1), pause(2)], 2));
        assert!(!fits_together(&[Fault::MajoritiesRing, pause(2)], 2));
        assert!(fits_together(
            &[
                Fault::MajoritiesRing,
                Fault::TransferLeader { group: 1, to: 2 }
            ],
            2
        ));
        let halves = Fault::PartitionHalves {
            components: vec![vec![0, 3], vec![1, 2, 4]],
        };
        assert!(fits_together(&[halves.clone(), kill(3)], 2));
        assert!(!fits_together(&[halves, kill(1)], 2));
    }

    #[test]
    fn retargeted_partition_isolates_the_target() {
        let mut f = Fault::PartitionHalves {
            components: vec![vec![0, 3], vec![1, 2, 4]],
        };
        f.retarget(2);
        let Fault::PartitionHalves { components } = &f else {
            panic!("kind changed: {f:?}");
        };
        assert_eq!(components.len(), 2);
        assert!(components[0].contains(&2) && components[0].len() == 2);
        let mut all: Vec<usize> = components.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn membership_nemesis_is_scheduled() {
        let mut c = cfg(3);
        c.kinds = vec![NemesisKind::Membership];
        let steps = generate(&c);
        assert!(!steps.is_empty());
        assert!(steps
            .iter()
            .all(|s| matches!(s.fault, Fault::RemoveNode { node, .. } if node < 5)));
        // Both variants: re-add with the old data, and replace by an
        // empty node.
        for wiped in [false, true] {
            assert!(
                steps
                    .iter()
                    .any(|s| matches!(s.fault, Fault::RemoveNode { wipe, .. } if wipe == wiped)),
                "no wipe = {wiped} in {steps:?}"
            );
        }
    }
}
