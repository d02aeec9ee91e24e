//! Replays HyperLogLog golden vectors recorded from a real redis-server
//! 7.0.15 (see `tests/data/gen_hll_vectors.py` for how) through `hll.rs`
//! and checks every reply and every stored byte.

use std::collections::HashMap;

use elastickv_api_redis::hll;

fn expand(arg: &str) -> Vec<Vec<u8>> {
    if let Some(spec) = arg.strip_prefix("gen:") {
        let parts: Vec<&str> = spec.split(':').collect();
        let start: usize = parts[1].parse().expect("start");
        let count: usize = parts[2].parse().expect("count");
        return (start..start + count)
            .map(|i| format!("{}{}", parts[0], i).into_bytes())
            .collect();
    }
    if let Some(h) = arg.strip_prefix("hex:") {
        return vec![unhex(h)];
    }
    vec![arg.as_bytes().to_vec()]
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn hll_golden_vectors_match_redis() {
    let data = include_str!("data/hll_vectors.txt");
    let mut store: HashMap<String, Vec<u8>> = HashMap::new();
    let mut sparse_max = hll::DEFAULT_SPARSE_MAX_BYTES;
    let mut checked = 0;
    for line in data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (cmd, want) = line.split_once(" -> ").expect("arrow");
        let words: Vec<&str> = cmd.split(' ').collect();
        let got: String = match words[0] {
            "FLUSHALL" => {
                store.clear();
                "+OK".into()
            }
            "CONFIG" => {
                sparse_max = words[3].parse().expect("number");
                "+OK".into()
            }
            "PFADD" => {
                let elems: Vec<Vec<u8>> = words[2..].iter().flat_map(|w| expand(w)).collect();
                let changed = match store.get_mut(words[1]) {
                    Some(v) => hll::pfadd(v, &elems, sparse_max).expect("valid"),
                    None => {
                        store.insert(words[1].to_string(), hll::pfadd_new(&elems, sparse_max));
                        true
                    }
                };
                (changed as i64).to_string()
            }
            "GET" => {
                let v = store.get(words[1]).expect("key exists");
                format!(
                    "hex:{}",
                    v.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            }
            "PFCOUNT" if words.len() == 2 => match store.get_mut(words[1]) {
                Some(v) => hll::pfcount_cached(v).expect("valid").0.to_string(),
                None => "0".into(),
            },
            "PFCOUNT" => {
                let vals: Vec<&[u8]> = words[1..]
                    .iter()
                    .filter_map(|k| store.get(*k).map(|v| v.as_slice()))
                    .collect();
                hll::pfcount(&vals).expect("valid").to_string()
            }
            "PFMERGE" => {
                let dest = store.get(words[1]).cloned();
                let srcs: Vec<Vec<u8>> = words[2..]
                    .iter()
                    .filter_map(|k| store.get(*k).cloned())
                    .collect();
                let src_refs: Vec<&[u8]> = srcs.iter().map(|v| v.as_slice()).collect();
                let merged = hll::pfmerge(dest.as_deref(), &src_refs, sparse_max).expect("valid");
                store.insert(words[1].to_string(), merged);
                "+OK".into()
            }
            other => panic!("unknown command {other}"),
        };
        assert_eq!(got, want, "command: {cmd}");
        checked += 1;
    }
    assert!(checked > 80, "only {checked} vectors");
}
