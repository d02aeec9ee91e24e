//! Checks Redis number parsing/formatting against replies recorded from a
//! real redis-server 7.0.15 (see `tests/data/gen_float_vectors.py`).

use elastickv_api_redis::float;

fn err_reply(e: impl ToString) -> String {
    format!("-{}", e.to_string())
}

#[test]
fn float_vectors_match_redis() {
    let data = include_str!("data/float_vectors.txt");
    let mut checked = 0;
    for line in data
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        match f[0] {
            "incr" => {
                let start = (f[1] != "-").then(|| f[1].as_bytes());
                let got = match float::incr_by_float(start, f[2].as_bytes()) {
                    Ok(s) => s,
                    Err(e) => err_reply(e),
                };
                assert_eq!(got, f[3], "INCRBYFLOAT from {:?} by {:?}", f[1], f[2]);
            }
            "score" => {
                let got = match float::parse_double(f[1].as_bytes()) {
                    // Small sorted sets (listpack encoding) store "-0" as the
                    // integer 0, so Redis answers "0" there; that is a
                    // storage-encoding effect, not formatting.
                    Some(v) => float::format_double_g17(if v == 0.0 { 0.0 } else { v }),
                    None => "-ERR value is not a valid float".to_string(),
                };
                assert_eq!(got, f[2], "ZADD/ZSCORE of {:?}", f[1]);
            }
            "zincr" => {
                let start = float::parse_double(f[1].as_bytes()).expect("valid start");
                let got = match float::parse_double(f[2].as_bytes()) {
                    None => "-ERR value is not a valid float".to_string(),
                    Some(incr) => match float::add_scores(start, incr) {
                        Ok(v) => float::format_double_g17(v),
                        Err(e) => err_reply(e),
                    },
                };
                assert_eq!(got, f[3], "ZINCRBY {:?} by {:?}", f[1], f[2]);
            }
            other => panic!("unknown vector kind {other}"),
        }
        checked += 1;
    }
    assert!(checked > 200, "only {checked} vectors");
}
