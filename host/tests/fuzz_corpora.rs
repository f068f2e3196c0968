//! The fuzz corpora of the host's parsers (`fuzz/corpus/config_file`, `allowlist_rule`),
//! replayed through the parsers on every test run, decoded exactly as the fuzz targets
//! decode them. The fuzzers themselves need a sanitizer build of wasmtime that is too slow
//! for every run (`scripts/fuzz.sh`); this keeps what they found from coming back.

use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn the_config_corpus_gives_configs_or_typed_errors() {
    let inputs = corpus("config_file");
    assert!(inputs.len() > 1_000, "the corpus is there: {}", inputs.len());
    let mut replayed = 0;
    for input in &inputs {
        let Ok(text) = <&str>::arbitrary_take_rest(Unstructured::new(input)) else {
            continue;
        };
        // Valid or not, the answer is a value: a panic fails the test.
        let _ = switchboard::Config::parse(text, "fuzz.toml", std::path::Path::new("/nonexistent"), &|_| Some("value".to_owned()));
        replayed += 1;
    }
    assert!(replayed > 1_000, "the inputs decode as the fuzz target decodes them: {replayed}");
}

#[test]
fn the_allowlist_corpus_gives_policies_or_typed_errors() {
    let inputs = corpus("allowlist_rule");
    assert!(inputs.len() > 1_000, "the corpus is there: {}", inputs.len());
    let mut allowed = 0;
    for input in &inputs {
        let Ok((rule, url)) = <(&str, &str)>::arbitrary_take_rest(Unstructured::new(input)) else {
            continue;
        };
        let policy = switchboard::policy::egress::EgressPolicy::parse(&[rule]);
        if let (Ok(policy), Ok((_, target))) = (policy, switchboard::policy::egress::parse_target(url)) {
            allowed += usize::from(policy.allows(&target));
            if let Ok(address) = target.host.parse::<std::net::IpAddr>() {
                let _ = policy.allows_address(&target, address);
            }
        }
    }
    assert!(allowed > 0, "some rules let their own URL through");
}
