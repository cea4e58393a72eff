//! The guarded fetch and the File node's URL import against real local HTTP servers.
#![cfg(all(feature = "fetch", feature = "image"))]

mod common;

use common::*;
use gatewai_core::{DataType, ErrorKind, Inputs, Node, RunInput};
use gatewai_nodes::Error;
use gatewai_nodes::error::shown;
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

/// A local server with a page for each way a fetch can fail: `/big` (10 000 bytes), `/slow`
/// (3 s), `/loop` (redirects to itself), `/gone` (404), `/busy` (503), `/text` (not media),
/// `/bad-hop` (redirects to a URL that does not parse).
async fn troubled_server() -> MockServer {
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
    serve(
        &server,
        "/bad-hop",
        ResponseTemplate::new(302)
            .insert_header("location", "http://user:secret@[::1?token=s3cr3t"),
    )
    .await;
    server
}

#[tokio::test]
async fn size_time_redirect_and_status_limits() {
    let server = troubled_server().await;
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

/// Every kind of fetch error, for a URL carrying credentials, a token in its query and a
/// fragment: the error shows the URL's host and path, never the credentials or the query.
#[tokio::test]
async fn fetch_errors_show_urls_without_credentials_or_query() {
    let server = troubled_server().await;
    let port = server.address().port();
    let secret_url = |port: u16, at: &str| {
        format!("http://user:secret@127.0.0.1:{port}{at}?token=s3cr3t&sig=s3cr3t#s3cr3t")
    };
    // A port nobody listens on, for a connection failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = FetchPolicy {
        max_bytes: 1_000,
        timeout: Duration::from_millis(500),
        max_redirects: 2,
        ..FetchPolicy::allow_private()
    };
    let assert_redacted = |what: &str, message: &str| {
        for leak in ["secret", "s3cr3t", "user:", "token="] {
            assert!(!message.contains(leak), "{what}: `{leak}` in {message}");
        }
    };
    let cases = [
        ("status", secret_url(port, "/gone"), &policy),
        ("too large", secret_url(port, "/big"), &policy),
        ("timeout", secret_url(port, "/slow"), &policy),
        ("redirects", secret_url(port, "/loop"), &policy),
        ("bad redirect", secret_url(port, "/bad-hop"), &policy),
        ("network", secret_url(closed, "/a.png"), &policy),
        (
            "blocked",
            secret_url(port, "/gone"),
            &FetchPolicy::default(),
        ),
        (
            "bad url",
            "http://user:secret@127.0.0.1:99999/?token=s3cr3t".to_owned(),
            &policy,
        ),
    ];
    for (what, url, policy) in cases {
        let err = fetch(&url, policy).await.unwrap_err();
        let message = err.to_string();
        assert_redacted(what, &message);
        assert!(message.contains("***@"), "{what}: {message}");
        // Through the File node, from its config and as a run input.
        let node = File::with_fetch_policy(policy.clone());
        let h = Harness::new();
        for (ctx, field) in [
            (h.ctx("File", json!({ "url": url })), "`url`"),
            (
                h.ctx("File", json!({}))
                    .with_run_input(RunInput::Url(url.clone())),
                "`run input`",
            ),
        ] {
            let err = node.execute(&ctx, &Inputs::default()).await.unwrap_err();
            assert!(err.message().contains(field), "{what}: {err}");
            assert_redacted(what, err.message());
        }
    }
    // A huge URL or config value is quoted only in part: the message stays short.
    let huge_url = format!("ftp://host/{}", "a".repeat(1_000_000));
    let huge_array = serde_json::Value::Array(vec![json!(1234567); 100_000]);
    let h = Harness::new();
    for (config, quoted) in [
        (json!({ "url": huge_url }), true),
        (json!({ "url": huge_array }), true),
        (json!({ "base64": huge_array }), true),
        (json!({ "file": huge_array }), false),
        (json!({ "image": huge_array }), false),
    ] {
        let node = File::new();
        let err = node
            .execute(&h.ctx("File", config.clone()), &Inputs::default())
            .await
            .unwrap_err();
        let what = shown(&config);
        assert!(err.message().len() < 500, "{what}: {err}");
        assert_eq!(err.message().contains('…'), quoted, "{what}: {err}");
        for (field, problem) in node.check_config(&config) {
            assert!(problem.len() < 500, "{what}: {field}: {problem}");
        }
    }
    // The File node's config check shows a URL it refuses redacted too.
    let problems =
        File::new().check_config(&json!({ "url": "ftp://user:secret@host/a?token=s3cr3t" }));
    assert_eq!(problems.len(), 1);
    assert_redacted("config check", &problems[0].1);
}
