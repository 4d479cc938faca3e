//! Config validation: defaults, and errors that name file, key and accepted values.

use super::*;

fn parse(t: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/gatehouse/node.toml"), t)
}

#[test]
fn demo_config_is_valid_with_reference_defaults() {
    let c = parse(&demo_config("data", "0.0.0.0:443")).unwrap();
    let p = c.policy_of("default").unwrap();
    assert_eq!(p.disconnected_timeout, Some(Duration::from_secs(1800)));
    assert_eq!(p.max_connect_time, None);
    assert_eq!(c.data_dir, PathBuf::from("/etc/gatehouse/data"));
}

#[test]
fn errors_name_file_key_and_accepted_values() {
    let bad = demo_config("d", "0.0.0.0:443")
        .replace("idle_timeout = \"30m\"", "idle_timeout = \"30 minutes\"");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.starts_with("/etc/gatehouse/node.toml: group_policy[0].idle_timeout:"), "{e}");
    assert!(e.contains("accepted"), "{e}");
    let bad = demo_config("d", "0.0.0.0:443").replace("mode = \"routed\"", "mode = \"bridge\"");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.contains("node.mode") && e.contains("\"routed\""), "{e}");
    let bad = demo_config("d", "0.0.0.0:443")
        .replace("address_pool = \"default\"", "address_pool = \"nope\"");
    assert!(parse(&bad).unwrap_err().to_string().contains("group_policy[0].address_pool"));
    let bad = demo_config("d", "nonsense");
    assert!(parse(&bad).unwrap_err().to_string().contains("node.listen"));
    let bad = demo_config("d", "0.0.0.0:443") + "\n[bogus]\n";
    assert!(parse(&bad).unwrap_err().to_string().contains("bogus"));
}

/// A cluster with one slot; `extra_cluster` and `slots` tune the Raft and slot timing.
fn cluster_config(extra_cluster: &str, slots: &str) -> String {
    demo_config("d", "0.0.0.0:443")
        + &format!(
            "\n[cluster]\nname = \"c\"\nlisten = \"10.0.0.1:7443\"\nca_cert = \"ca.pem\"\n\
             cert = \"c.pem\"\nkey = \"c.key\"\npeers = [{{ id = 2, addr = \"10.0.0.2:7443\" }}]\n\
             {extra_cluster}\n[slots]\n{slots}\n[[slot]]\nid = 1\npublic_address = \"10.1.0.101/24\"\n\
             pool = \"10.99.1.0/24\"\nowner = 1\nstandby = 2\n"
        )
}

#[test]
fn slot_lease_must_outlast_a_raft_election() {
    // The defaults fit: worst election start 2 x 170 + 60 = 400 ms, + 2 x 50 < 600 ms.
    let c = parse(&cluster_config("", "")).unwrap();
    let cl = c.cluster.as_ref().unwrap();
    assert_eq!(cl.worst_election_start(), Duration::from_millis(400));
    let sl = c.slots.as_ref().unwrap();
    assert_eq!(
        (sl.renew_interval, sl.lease),
        (Duration::from_millis(50), Duration::from_millis(600))
    );
    // A lease that a leader's death would outlive is refused, naming the key and the bound.
    let e = parse(&cluster_config("", "lease = \"450ms\"")).unwrap_err().to_string();
    assert!(e.contains("slots.lease") && e.contains("longer than 500 ms"), "{e}");
    // Slower elections need a longer lease.
    let slow = "election_timeout_min = \"250ms\"\nelection_timeout_max = \"450ms\"";
    let e = parse(&cluster_config(slow, "")).unwrap_err().to_string();
    assert!(e.contains("slots.lease") && e.contains("960 ms"), "{e}");
    assert!(parse(&cluster_config(slow, "lease = \"1100ms\"")).is_ok());
    // Election timeouts shorter than three heartbeats are refused.
    let e = parse(&cluster_config("election_timeout_min = \"100ms\"", "")).unwrap_err();
    assert!(e.to_string().contains("cluster.election_timeout_min"), "{e}");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s").unwrap(), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("500ms").unwrap(), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("none").unwrap(), None);
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("3x").is_err());
}
