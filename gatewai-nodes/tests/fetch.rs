//! The guarded fetch and the File node's URL import against real local HTTP servers.
#![cfg(all(feature = "fetch", feature = "image"))]

mod common;

use common::*;
use gatewai_core::{DataType, ErrorKind, Inputs, Node, RunInput};
use gatewai_nodes::Error;
use gatewai_nodes::fetch::{FetchPolicy, fetch};
use gatewai_nodes::media::File;
use image::ImageFormat;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A mock server listening on `ip` (any of 127.0.0.0/8 works on Linux).
async fn server_on(ip: &str) -> MockServer {
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    MockServer::builder().listener(listener).start().await
}

async fn serve(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(response)
        .mount(server)
        .await;
}

fn png_body() -> Vec<u8> {
    encode(&pattern(7, 3), ImageFormat::Png)
}

#[tokio::test]
async fn file_imports_an_image_url_when_private_addresses_are_allowed() {
    let server = MockServer::start().await;
    // The server says text/plain; the bytes say PNG, and the bytes win.
    serve(
        &server,
        "/pics/fox.png",
        ResponseTemplate::new(200)
            .set_body_bytes(png_body())
            .insert_header("content-type", "text/plain"),
    )
    .await;
    let h = Harness::new();
    let node = File::with_fetch_policy(FetchPolicy::allow_private());
    let ctx = h.ctx(
        "File",
        json!({ "url": format!("{}/pics/fox.png", server.uri()) }),
    );
    let out = node.execute(&ctx, &Inputs::default()).await.unwrap();
    let (asset, image) = h.output_image(&out, "file").await;
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(asset.name, "fox.png");
    assert_eq!(image, pattern(7, 3));
    // As a run input too.
    let ctx = h
        .ctx("File", json!({}))
        .with_run_input(RunInput::Url(format!("{}/pics/fox.png", server.uri())));
    let out = node.execute(&ctx, &Inputs::default()).await.unwrap();
    assert_eq!(out.get("file").unwrap().data_type, DataType::Image);
}

#[tokio::test]
async fn the_default_policy_refuses_loopback() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/a.png",
        ResponseTemplate::new(200).set_body_bytes(png_body()),
    )
    .await;
    let url = format!("{}/a.png", server.uri());
    let err = fetch(&url, &FetchPolicy::default()).await.unwrap_err();
    match &err {
        Error::BlockedAddress { ip, .. } => assert!(ip.is_loopback()),
        other => panic!("expected BlockedAddress, got {other}"),
    }
    // Through the node: an input error naming the field, and the server was never asked.
    let h = Harness::new();
    let ctx = h.ctx("File", json!({ "url": url }));
    let err = File::new()
        .execute(&ctx, &Inputs::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("`url`"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_refused() {
    // The target, on 127.0.0.1, which the policy does not allow.
    let target = server_on("127.0.0.1").await;
    serve(
        &target,
        "/secret.png",
        ResponseTemplate::new(200).set_body_bytes(png_body()),
    )
    .await;
    // The first hop, on 127.0.0.2, which the policy allows explicitly.
    let first = server_on("127.0.0.2").await;
    serve(
        &first,
        "/start.png",
        ResponseTemplate::new(302)
            .insert_header("location", format!("{}/secret.png", target.uri()).as_str()),
    )
    .await;
    let policy = FetchPolicy {
        allowed_addresses: vec!["127.0.0.2".parse::<IpAddr>().unwrap()],
        ..FetchPolicy::default()
    };
    let url = format!("{}/start.png", first.uri());
    let err = fetch(&url, &policy).await.unwrap_err();
    match &err {
        Error::BlockedAddress { ip, url } => {
            assert_eq!(ip.to_string(), "127.0.0.1");
            assert!(url.contains("/secret.png"), "{url}");
        }
        other => panic!("expected BlockedAddress, got {other}"),
    }
    assert_eq!(first.received_requests().await.unwrap().len(), 1);
    assert!(target.received_requests().await.unwrap().is_empty());
    // With private addresses allowed, the same redirect is followed.
    let fetched = fetch(&url, &FetchPolicy::allow_private()).await.unwrap();
    assert_eq!(fetched.bytes, png_body());
    assert!(fetched.url.as_str().ends_with("/secret.png"));
}

#[tokio::test]
async fn size_time_redirect_and_status_limits() {
    let server = MockServer::start().await;
    serve(
        &server,
        "/big",
        ResponseTemplate::new(200).set_body_bytes(vec![0u8; 10_000]),
    )
    .await;
    serve(
        &server,
        "/slow",
        ResponseTemplate::new(200)
            .set_body_bytes(png_body())
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    serve(
        &server,
        "/loop",
        ResponseTemplate::new(301).insert_header("location", "/loop"),
    )
    .await;
    serve(&server, "/gone", ResponseTemplate::new(404)).await;
    serve(&server, "/busy", ResponseTemplate::new(503)).await;
    serve(
        &server,
        "/text",
        ResponseTemplate::new(200).set_body_string("<html>not an image</html>"),
    )
    .await;
    let base = server.uri();
    let policy = FetchPolicy {
        max_bytes: 1_000,
        timeout: Duration::from_millis(500),
        ..FetchPolicy::allow_private()
    };
    let err = fetch(&format!("{base}/big"), &policy).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let err = fetch(&format!("{base}/slow"), &policy).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let err = fetch(&format!("{base}/loop"), &policy).await.unwrap_err();
    assert!(matches!(err, Error::TooManyRedirects { .. }), "{err}");
    let err = fetch(&format!("{base}/gone"), &policy).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = fetch(&format!("{base}/busy"), &policy).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // Through the File node, a page that is not media is an input error.
    let h = Harness::new();
    let ctx = h.ctx("File", json!({ "url": format!("{base}/text") }));
    let err = File::with_fetch_policy(policy)
        .execute(&ctx, &Inputs::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message().contains("not an image, video or audio"),
        "{err}"
    );
}
