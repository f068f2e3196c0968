//! The component on a real Switchboard host on loopback, driven by a real WebSocket client.

use switchboard_harness::{ComponentSpec, TestClient, TestHost};

#[tokio::test]
async fn echoes_and_ends_the_call_cleanly() -> anyhow::Result<()> {
    let host = TestHost::builder().route("/media", ComponentSpec::new("{{name}}", {{crate}}_tests::COMPONENT)).start().await?;
    let mut caller = TestClient::connect(&host.url("/media")).await?;
    caller.send_text("hello").await?;
    assert_eq!(caller.next_text().await?, "hello");
    caller.send_text("bye").await?;
    assert_eq!(caller.expect_close().await?.code, 1000);
    let started = host.marker("{{name}}.started", |_| true).await?;
    assert_eq!(started.shown("path").as_deref(), Some("/media"));
    Ok(())
}
