//! Any component's failures on its own legs: a relay to a made-up billing API (not the
//! voice pipeline) names its legs `customer` and `billing` and reports its faults; the host
//! adds what it sees itself on those legs, and the call store classifies every case
//! without knowing a word of the component's protocol.

use std::time::Duration;

use switchboard_harness::sim::tls::TestCa;
use switchboard_harness::{ComponentSpec, FakeServer, RunningServer, TestClient, TestHost, guests};

use crate::init_tracing;

/// A host serving the billing guest on `/billing`, aimed at `api` (allowed by `rule`).
async fn billing_host(api: &RunningServer, rule: &str) -> anyhow::Result<TestHost> {
    init_tracing();
    let spec = ComponentSpec::new("billing", guests::BILLING).allow(rule).setting("billing_url", &api.url("/v1/charges"));
    TestHost::builder().route("/billing", spec).start().await
}

/// The stored summary of the host's only call, once it has closed.
async fn stored_call(host: &TestHost) -> anyhow::Result<serde_json::Value> {
    host.marker("call.closed", |_| true).await?;
    assert!(host.host().calls().flush(Duration::from_secs(10)), "the call store flushed");
    let calls: serde_json::Value = host.operator(None)?.get_json("/api/calls").await?;
    Ok(calls[0].clone())
}

fn verdict(call: &serde_json::Value) -> (&str, &str, &str) {
    (
        call["outcome"].as_str().unwrap_or_default(),
        call["failing_leg"].as_str().unwrap_or_default(),
        call["cause"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn an_api_that_refuses_the_connection_fails_the_call_on_the_billing_leg() -> anyhow::Result<()> {
    let api = FakeServer::reject(401, &[], "no key").start().await?;
    let host = billing_host(&api, &api.origin()).await?;
    let mut customer = TestClient::connect(&host.url("/billing")).await?;
    assert_eq!(customer.expect_close().await?.code, 1011);
    let call = stored_call(&host).await?;
    assert_eq!(verdict(&call), ("failed", "billing", "the billing API refused the connection: HTTP 401"), "{call:#}");
    let metrics = host.operator(None)?.get_text("/metrics").await?;
    assert!(metrics.contains("switchboard_guest_faults_total{leg=\"billing\",impact=\"failed\"} 1"), "{metrics}");
    assert!(
        metrics.contains("switchboard_outbound_connects_total{leg=\"billing\",result=\"failed\",cause=\"handshake-rejected\"} 1"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_charge_fails_on_billing_with_the_api_s_words_after_a_recovered_customer_fault() -> anyhow::Result<()> {
    let api = FakeServer::answer(r#"{"error":"card declined"}"#).start().await?;
    let host = billing_host(&api, &api.origin()).await?;
    let mut customer = TestClient::connect(&host.url("/billing")).await?;
    customer.send_text("hello?").await?;
    assert_eq!(customer.next_text().await?, "error: say `charge <amount>`");
    customer.send_text("charge 12").await?;
    assert_eq!(customer.expect_close().await?.code, 1011);
    let call = stored_call(&host).await?;
    assert_eq!(
        verdict(&call),
        ("failed", "billing", "the billing API refused the charge: card declined"),
        "the failure outranks the earlier recovered fault: {call:#}"
    );
    let shown: serde_json::Value =
        host.operator(None)?.get_json(&format!("/api/calls/{}", call["call_id"].as_str().unwrap_or_default())).await?;
    let lanes: Vec<(&str, &str)> = shown["timeline"]
        .as_array()
        .map(|t| t.iter().map(|m| (m["name"].as_str().unwrap_or_default(), m["leg"].as_str().unwrap_or_default())).collect())
        .unwrap_or_default();
    for expected in [
        ("leg.inbound", "customer"),
        ("leg.fault", "customer"),
        ("billing.charge", "billing"),
        ("outbound.open", "billing"),
        ("leg.fault", "billing"),
    ] {
        assert!(lanes.contains(&expected), "{expected:?} missing from {lanes:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_bad_request_the_guest_recovers_from_degrades_the_customer_leg() -> anyhow::Result<()> {
    let api = FakeServer::echo().start().await?;
    let host = billing_host(&api, &api.origin()).await?;
    let mut customer = TestClient::connect(&host.url("/billing")).await?;
    customer.send_text("refund everything").await?;
    customer.next_text().await?;
    customer.send_text("charge 3").await?;
    assert_eq!(customer.next_text().await?, r#"{"charge":"3"}"#);
    customer.send_text("done").await?;
    assert_eq!(customer.expect_close().await?.code, 1000);
    let call = stored_call(&host).await?;
    let (outcome, leg, cause) = verdict(&call);
    assert_eq!((outcome, leg), ("degraded", "customer"), "{call:#}");
    assert!(cause.contains("refund everything"), "{cause}");
    Ok(())
}

#[tokio::test]
async fn what_the_host_sees_is_reported_on_the_guest_s_legs() -> anyhow::Result<()> {
    // The billing API vanishes mid-call: the guest reports nothing, the host saw it.
    let api = FakeServer::echo().start().await?;
    let host = billing_host(&api, &api.origin()).await?;
    let mut customer = TestClient::connect(&host.url("/billing")).await?;
    customer.send_text("charge 1").await?;
    customer.next_text().await?;
    api.vanish();
    host.marker("outbound.closed", |_| true).await?;
    // The next charge finds the API gone.
    customer.send_text("charge 2").await?;
    customer.expect_close().await?;
    let call = stored_call(&host).await?;
    let (outcome, leg, cause) = verdict(&call);
    assert_eq!((outcome, leg), ("degraded", "billing"), "{call:#}");
    assert!(cause.contains("the billing leg closed 1006"), "{cause}");

    // The customer's socket vanishes before the customer was done: the customer leg failed.
    let api = FakeServer::echo().start().await?;
    let host = billing_host(&api, &api.origin()).await?;
    let customer = TestClient::connect(&host.url("/billing")).await?;
    host.marker("billing.open", |_| true).await?;
    drop(customer);
    let call = stored_call(&host).await?;
    let (outcome, leg, cause) = verdict(&call);
    assert_eq!((outcome, leg), ("failed", "customer"), "{call:#}");
    assert!(cause.contains("without a close frame"), "{cause}");
    Ok(())
}

#[tokio::test]
async fn a_billing_api_the_egress_policy_refuses_is_blamed_on_the_policy() -> anyhow::Result<()> {
    let ca = TestCa::new()?;
    // A wildcard rule lets the URL through, but the name resolves only to loopback.
    let api = FakeServer::echo().tls(&ca).start().await?;
    let host = billing_host(&api, "wss://*:*").await?;
    let mut customer = TestClient::connect(&host.url("/billing")).await?;
    assert_eq!(customer.expect_close().await?.code, 1011);
    let call = stored_call(&host).await?;
    let (outcome, leg, cause) = verdict(&call);
    assert_eq!((outcome, leg), ("failed", "policy"), "{call:#}");
    assert!(cause.contains("for the billing leg (special-address)"), "{cause}");
    assert_eq!(api.connections(), 0);
    Ok(())
}
