//! The HTTP server over real HTTP on 127.0.0.1 (random port), with a temporary SQLite file and
//! asset directory: CRUD, runs followed live over SSE, run history, ownership, bad bodies,
//! invalid graphs, uploads and downloads, the direct LLM call (against a local mock of Gemini)
//! and graceful shutdown.

use async_trait::async_trait;
use futures::StreamExt;
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError, NodeRegistry,
    NodeTemplate, Outputs, RunStatus,
};
use gatewai_examples::api::{self, AppState, ServerConfig, SharedSecretAuth};
use gatewai_examples::host;
use gatewai_nodes::ai::{AiSettings, ApiKey};
use gatewai_store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

const SECRET: &str = "test-secret-0123456789";

struct TestServer {
    base: String,
    http: reqwest::Client,
    auth: SharedSecretAuth,
    store: Store,
    db_url: String,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<gatewai_examples::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(registry: NodeRegistry, config: ServerConfig) -> Self {
        Self::start_on(registry, config, None).await
    }

    /// A server on the store `database_url` names (a fresh SQLite file when `None`).
    async fn start_on(
        registry: NodeRegistry,
        config: ServerConfig,
        database_url: Option<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = database_url.unwrap_or_else(|| host::sqlite_url(&dir.path().join("server.db")));
        let store = Store::open(&url).await.unwrap();
        let db_url = url.clone();
        let assets = host::fs_assets(&dir.path().join("assets"), &store)
            .await
            .unwrap();
        let auth = SharedSecretAuth::new(SECRET).unwrap();
        let state = AppState::new(
            store.clone(),
            assets,
            registry,
            Arc::new(auth.clone()),
            config,
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let join = tokio::spawn(api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            http: reqwest::Client::new(),
            auth,
            store,
            db_url,
            stop: Some(stop),
            join: Some(join),
            _dir: dir,
        }
    }

    async fn default() -> Self {
        Self::start(registry(AiSettings::default()), ServerConfig::default()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn as_user(&self, req: reqwest::RequestBuilder, user: &str) -> reqwest::RequestBuilder {
        req.bearer_auth(self.auth.token_for(user))
    }

    /// A download of an asset as `user`, to send (after adding headers, if need be).
    fn download(&self, asset_id: &str, user: &str) -> reqwest::RequestBuilder {
        self.as_user(
            self.http.get(self.url(&format!("/api/assets/{asset_id}"))),
            user,
        )
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.as_user(self.http.request(method, self.url(path)), user);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn get(&self, path: &str, user: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, user, None).await
    }

    async fn post(&self, path: &str, user: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, user, Some(body))
            .await
    }

    async fn upload(&self, user: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
        let resp = self
            .as_user(self.http.post(self.url("/api/assets")), user)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The events of a run over SSE until the stream ends.
    async fn events(&self, run_id: &str, user: &str) -> Vec<(String, Value)> {
        let resp = self.open_events(run_id, user).await;
        read_sse(resp).await
    }

    async fn open_events(&self, run_id: &str, user: &str) -> reqwest::Response {
        let resp = self
            .as_user(
                self.http
                    .get(self.url(&format!("/api/runs/{run_id}/events"))),
                user,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        resp
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            tokio::time::timeout(Duration::from_secs(30), join)
                .await
                .expect("server stops in time")
                .unwrap()
                .unwrap();
        }
    }
}

fn registry(ai: AiSettings) -> NodeRegistry {
    host::registry_with_ai(ai).unwrap()
}

/// Parsed SSE events `(event name, data)` of a stream read to its end.
async fn read_sse(resp: reqwest::Response) -> Vec<(String, Value)> {
    let mut sse = SseReader::new(resp);
    let mut events = Vec::new();
    while let Some(event) = sse.next().await {
        events.push(event);
    }
    events
}

/// The event of one SSE block `(event name, data as JSON)`; `None` for a block of comments
/// only (a keep-alive) or of nothing. Panics, naming the block, on data without an event name
/// (the server names every event) and on data that is not JSON.
fn sse_event(block: &str) -> Option<(String, Value)> {
    let mut name = None;
    let mut data: Option<String> = None;
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.get_or_insert_default()
                .push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    let data = data?;
    let name = name.unwrap_or_else(|| panic!("an SSE event without a name: {block:?}"));
    let data = serde_json::from_str(&data)
        .unwrap_or_else(|e| panic!("{e}: an SSE event whose data is not JSON: {block:?}"));
    Some((name, data))
}

struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        SseReader {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            while let Some(pos) = self.buf.find("\n\n") {
                let block: String = self.buf[..pos].to_owned();
                self.buf.drain(..pos + 2);
                if let Some(event) = sse_event(&block) {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.stream.next())
                .await
                .expect("an event within 30 s")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    }
}

fn shipped(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workflows")
        .join(name)
}

/// The shipped image pipeline with its File node pointing at an uploaded asset.
fn pipeline_document(asset_id: &str) -> Value {
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(shipped("image-pipeline.json")).unwrap())
            .unwrap();
    doc["nodes"][0]["config"] = json!({ "asset": { "id": asset_id } });
    doc
}

/// Uploads the photo as `user` and stores the example pipeline over it as their workflow
/// `name`: (the photo's asset id, the workflow's id).
async fn pipeline_workflow(server: &TestServer, user: &str, name: &str) -> (String, String) {
    let photo = upload_photo(server, user).await;
    let (status, created) = server
        .post(
            "/api/workflows",
            user,
            json!({ "name": name, "document": pipeline_document(&photo) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    (photo, created["id"].as_str().unwrap().to_owned())
}

async fn upload_photo(server: &TestServer, user: &str) -> String {
    let bytes = std::fs::read(shipped("assets/photo.jpg")).unwrap();
    let (status, asset) = server.upload(user, "photo.jpg", bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");
    assert_eq!(asset["mimeType"], "image/jpeg");
    assert_eq!(asset["width"], 800);
    assert_eq!(asset["height"], 600);
    asset["id"].as_str().unwrap().to_owned()
}

/// The one file under `dir` holding exactly `bytes`.
fn file_holding(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path).unwrap() == bytes {
                found.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_declares_its_length_serves_byte_ranges_and_breaks_when_its_size_changed() {
    let server = TestServer::default().await;
    let photo = upload_photo(&server, "alice").await;
    let bytes = std::fs::read(shipped("assets/photo.jpg")).unwrap();
    let download = || server.download(&photo, "alice").send();
    let resp = download().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    let tag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(tag, format!("\"{photo}-{}\"", bytes.len()));
    assert_eq!(resp.headers()["cache-control"], "private, no-cache");
    assert_eq!(resp.bytes().await.unwrap(), bytes);
    // What the client holds is not sent again; a resumed download gets the rest only while
    // the asset is the one it began.
    let resp = server
        .download(&photo, "alice")
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()["etag"], tag.as_str());
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = server
        .download(&photo, "alice")
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    for (condition, status) in [
        (tag.as_str(), StatusCode::PARTIAL_CONTENT),
        ("\"other\"", StatusCode::OK),
    ] {
        let resp = server
            .download(&photo, "alice")
            .header("range", "bytes=100-")
            .header("if-range", condition)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{condition}");
        let want = if status == StatusCode::OK {
            &bytes[..]
        } else {
            &bytes[100..]
        };
        assert_eq!(resp.bytes().await.unwrap(), want);
    }

    // One byte range (a video player seeking): 206 with the range; none past the end: 416;
    // several ranges: the whole file.
    let n = bytes.len();
    let ranged = |range: String| {
        server
            .download(&photo, "alice")
            .header("range", range)
            .send()
    };
    for (asked, from, to) in [
        ("bytes=10-19".to_owned(), 10, 20),
        ("bytes=-5".to_owned(), n - 5, n),
        (format!("bytes={}-", n - 100), n - 100, n),
        (format!("bytes=70000-{}", n * 2), 70_000, n),
    ] {
        let resp = ranged(asked.clone()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{asked}");
        let headers = resp.headers().clone();
        assert_eq!(
            headers["content-range"],
            format!("bytes {from}-{}/{n}", to - 1).as_str()
        );
        assert_eq!(headers["content-length"], (to - from).to_string().as_str());
        assert_eq!(resp.bytes().await.unwrap(), bytes[from..to], "{asked}");
    }
    let resp = ranged(format!("bytes={n}-")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes */{n}").as_str()
    );
    let resp = ranged("bytes=0-1,5-6".to_owned()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap(), bytes);
    // Someone else's asset stays not found, ranges or not.
    let resp = server
        .download(&photo, "bob")
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // A HEAD describes the whole file, a Range or not.
    let resp = server
        .as_user(
            server
                .http
                .head(server.url(&format!("/api/assets/{photo}"))),
            "alice",
        )
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-length"], n.to_string().as_str());

    // The stored file of a larger asset (several chunks) grows, then shrinks, behind the
    // store's back: the length declared from its record no longer holds, and the client sees
    // a broken download rather than a whole one (its first chunk was sent with the headers).
    let mut noise = image::RgbImage::new(256, 256);
    for (i, p) in noise.pixels_mut().enumerate() {
        let v = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes();
        *p = image::Rgb([v[0], v[1], v[2]]);
    }
    let mut png = Vec::new();
    noise
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert!(png.len() > 3 * 64 * 1024, "{} bytes", png.len());
    let (status, asset) = server.upload("alice", "noise.png", png.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{asset}");
    let noise_id = asset["id"].as_str().unwrap().to_owned();
    let file = file_holding(server._dir.path(), &png);
    let mut longer = png.clone();
    longer.extend_from_slice(b"appended");
    for changed in [longer, png[..png.len() - 100].to_vec()] {
        std::fs::write(&file, &changed).unwrap();
        let sent = server.download(&noise_id, "alice").send().await;
        // (The error may come before hyper has written the headers: the connection is then
        // closed without an answer, also a broken download.)
        if let Ok(resp) = sent {
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(
                resp.headers()["content-length"],
                png.len().to_string().as_str()
            );
            assert!(
                resp.bytes().await.is_err(),
                "{} bytes on file",
                changed.len()
            );
        }
    }
    // Put back, it downloads whole again.
    std::fs::write(&file, &png).unwrap();
    let resp = server.download(&noise_id, "alice").send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), png);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_crud_cycle() {
    let mut server = TestServer::default().await;
    let (status, list) = server.get("/api/workflows", "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));

    let doc = pipeline_document("missing-for-now");
    let (status, created) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Card", "document": doc }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Card");
    assert_eq!(created["ownerId"], "alice");
    assert_eq!(created["document"]["nodes"].as_array().unwrap().len(), 7);

    let (status, list) = server.get("/api/workflows", "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());

    let (status, got) = server.get(&format!("/api/workflows/{id}"), "alice").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["document"]["edges"], created["document"]["edges"]);

    // Update: a new name and a React Flow document (imported on the way in).
    let react_flow: Value =
        serde_json::from_str(&std::fs::read_to_string(shipped("video-frame.json")).unwrap())
            .unwrap();
    let (status, updated) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/workflows/{id}"),
            "alice",
            Some(json!({ "name": "Thumbnail", "data": react_flow })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Thumbnail");
    let types: Vec<&str> = updated["document"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["File", "ExtractFrame", "Crop", "Resize", "Export"]);
    let (_, got) = server.get(&format!("/api/workflows/{id}"), "alice").await;
    assert_eq!(got["name"], "Thumbnail");

    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/workflows/{id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server.get(&format!("/api/workflows/{id}"), "alice").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
    assert!(body.get("details").is_some());
    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/workflows/{id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// The node id of an event (`nodeId`; core's events currently serialise it as `node_id`).
fn node_id(event: &Value) -> &str {
    event
        .get("nodeId")
        .or_else(|| event.get("node_id"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no node id in {event}"))
}

/// Node ids of the events of a kind.
fn nodes_of(events: &[(String, Value)], kind: &str) -> Vec<String> {
    events
        .iter()
        .filter(|(name, _)| name == kind)
        .map(|(_, e)| node_id(e).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_followed_over_sse_then_history_downloads_and_cache() {
    let mut server = TestServer::default().await;
    let (asset_id, id) = pipeline_workflow(&server, "alice", "Card").await;

    let (status, started) = server
        .post(&format!("/api/workflows/{id}/run"), "alice", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = started["runId"].as_str().unwrap().to_owned();

    let events = server.events(&run_id, "alice").await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"runStarted"), "{names:?}");
    assert_eq!(names.last(), Some(&"runFinished"), "{names:?}");
    let seqs: Vec<u64> = events
        .iter()
        .map(|(_, e)| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (0..events.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let mut completed = nodes_of(&events, "nodeCompleted");
    completed.sort();
    assert_eq!(
        completed,
        [
            "blur", "caption", "compose", "crop", "export", "photo", "resize"
        ]
    );
    let (_, finished) = events.last().unwrap();
    assert_eq!(finished["run"]["status"], "COMPLETED");
    assert_eq!(finished["runId"], run_id.as_str());

    // The exported card, downloadable by its owner only.
    let export = events
        .iter()
        .find(|(n, e)| n == "nodeCompleted" && node_id(e) == "export")
        .map(|(_, e)| e.clone())
        .unwrap();
    let card = &export["result"]["outputs"][0]["items"][0]["data"]["entity"];
    let card_id = card["id"].as_str().unwrap();
    let resp = server.download(card_id, "alice").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(
        resp.headers()["content-length"],
        card["size"].to_string().as_str()
    );
    let png = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (320, 360));
    let (status, _) = server.get(&format!("/api/assets/{card_id}"), "bob").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get(&format!("/api/assets/{asset_id}"), "bob").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Alice's assets: the photo she uploaded, then what her run produced (the newest first);
    // none of them Bob's.
    let (status, mine) = server.get("/api/assets", "alice").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let listed: Vec<&str> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&card_id), "{listed:?}");
    assert_eq!(listed.last(), Some(&asset_id.as_str()), "{listed:?}");
    let (status, first) = server.get("/api/assets?limit=1", "alice").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["id"], listed[0]);
    let (status, bobs) = server.get("/api/assets", "bob").await;
    assert_eq!(status, StatusCode::OK, "{bobs}");
    assert_eq!(bobs, json!([]));

    // A late subscriber gets the whole stream replayed.
    let replay = server.events(&run_id, "alice").await;
    assert_eq!(replay.len(), events.len());

    // History: the run with its node executions.
    let (status, history) = server
        .get(&format!("/api/workflows/{id}/runs"), "alice")
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let runs = history.as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["run"]["id"], run_id.as_str());
    assert_eq!(runs[0]["run"]["status"], "COMPLETED");
    let executions = runs[0]["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 7);
    assert!(executions.iter().all(|e| e["status"] == "COMPLETED"));

    // Again, for the selected node only: served from the cache.
    let (status, started) = server
        .post(
            &format!("/api/workflows/{id}/run"),
            "alice",
            json!({ "nodeIds": ["resize"] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = started["runId"].as_str().unwrap().to_owned();
    let events = server.events(&second, "alice").await;
    let mut completed = nodes_of(&events, "nodeCompleted");
    completed.sort();
    assert_eq!(completed, ["crop", "photo", "resize"]);
    let cached: Vec<&str> = events
        .iter()
        .filter(|(n, e)| n == "nodeCompleted" && e["source"] == "cached")
        .map(|(_, e)| node_id(e))
        .collect();
    assert_eq!(
        cached,
        ["crop", "resize"],
        "File is volatile, the rest is cached"
    );

    // Bob, the same photo, the same canvas: his run shares no cached result with Alice's
    // (the same bytes make the same keys, but each user's runs have a cache of their own).
    let (_, bobs) = pipeline_workflow(&server, "bob", "Card").await;
    let (status, started) = server
        .post(
            &format!("/api/workflows/{bobs}/run"),
            "bob",
            json!({ "nodeIds": ["resize"] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let events = server
        .events(started["runId"].as_str().unwrap(), "bob")
        .await;
    let sources: Vec<(&str, &str)> = events
        .iter()
        .filter(|(n, _)| n == "nodeCompleted")
        .map(|(_, e)| (node_id(e), e["source"].as_str().unwrap()))
        .collect();
    assert!(
        sources.iter().all(|(_, source)| *source == "executed"),
        "{sources:?}"
    );
    assert_eq!(sources.len(), 3, "{sources:?}");
    let (_, history) = server
        .get(&format!("/api/workflows/{id}/runs"), "alice")
        .await;
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[0]["run"]["id"], second.as_str(), "newest first");

    // Results of non-transient nodes are written back into the stored canvas when a run
    // ends (the Export's is the card; transient image tools keep theirs in the run only).
    let mut written = None;
    for _ in 0..50 {
        let (_, got) = server.get(&format!("/api/workflows/{id}"), "alice").await;
        let nodes = got["document"]["nodes"].as_array().unwrap().clone();
        let result_of = |id: &str| {
            nodes
                .iter()
                .find(|n| n["id"] == id)
                .unwrap()
                .get("result")
                .cloned()
        };
        assert!(result_of("crop").is_none(), "Crop is transient");
        if let Some(result) = result_of("export") {
            written = Some(result);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = written.expect("run results written back");
    assert_eq!(
        written["outputs"][0]["items"][0]["data"]["entity"]["id"],
        card_id
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_between_two_users_and_authentication() {
    let mut server = TestServer::default().await;
    let (_, created) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Mine", "document": pipeline_document("x") }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, list) = server.get("/api/workflows", "bob").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([]));
    for (method, path, body) in [
        (reqwest::Method::GET, format!("/api/workflows/{id}"), None),
        (
            reqwest::Method::PUT,
            format!("/api/workflows/{id}"),
            Some(json!({ "name": "Stolen" })),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/workflows/{id}"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/api/workflows/{id}/run"),
            Some(json!({})),
        ),
        (
            reqwest::Method::GET,
            format!("/api/workflows/{id}/runs"),
            None,
        ),
    ] {
        let (status, body) = server.call(method.clone(), &path, "bob", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert!(body["error"].is_string());
    }
    let (_, got) = server.get(&format!("/api/workflows/{id}"), "alice").await;
    assert_eq!(got["name"], "Mine", "bob changed nothing");

    // An answer quotes a request's ids briefly, control characters escaped: a long id in the
    // URL, unknown node ids and an unknown field in a body, and a document naming many long
    // asset ids.
    let long_id = format!("{}%0Aforged", "w".repeat(5_000));
    for (method, path) in [
        (reqwest::Method::GET, format!("/api/workflows/{long_id}")),
        (reqwest::Method::DELETE, format!("/api/workflows/{long_id}")),
        (
            reqwest::Method::GET,
            format!("/api/workflows/{long_id}/runs"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/no-such-route/{long_id}"),
        ),
    ] {
        let (status, body) = server.call(method.clone(), &path, "alice", None).await;
        assert!(status.is_client_error(), "{method}: {status}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.len() < 400,
            "{method} {status}: {} characters",
            error.len()
        );
        assert!(!error.contains('\n'), "{error}");
    }
    let long_ids: Vec<String> = (0..100)
        .map(|i| format!("{i}{}\nforged", "n".repeat(2_000)))
        .collect();
    let long_key = format!("{}\nforged", "k".repeat(100_000));
    for (path, body) in [
        (
            format!("/api/workflows/{id}/run"),
            json!({ "nodeIds": long_ids }),
        ),
        (
            format!("/api/workflows/{id}/run"),
            json!({ long_key.clone(): 1 }),
        ),
        (
            "/api/workflows".to_owned(),
            json!({ "name": "x", long_key: 1 }),
        ),
    ] {
        let (status, body) = server.post(&path, "alice", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.len() < 20 * 200 + 400,
            "{path}: {} characters",
            error.len()
        );
        assert!(!error.contains('\n'), "{path}: {error}");
    }
    let mut many = pipeline_document("x");
    let file_node = many["nodes"][0].clone();
    many["nodes"] = Value::Array(
        (0..100)
            .map(|i| {
                let mut node = file_node.clone();
                node["id"] = json!(format!("file{i}"));
                node["config"] =
                    json!({ "asset": { "id": format!("{i}{}\nforged", "a".repeat(2_000)) } });
                node
            })
            .collect(),
    );
    many["edges"] = json!([]);
    many["handles"] = Value::Array(
        many["handles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["nodeId"] == file_node["id"])
            .flat_map(|h| {
                (0..100).map(move |i| {
                    let mut h = h.clone();
                    h["id"] = json!(format!("{}-{i}", h["id"].as_str().unwrap()));
                    h["nodeId"] = json!(format!("file{i}"));
                    h
                })
            })
            .collect(),
    );
    let (status, created) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Many", "document": many }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let many_id = created["id"].as_str().unwrap();
    let (status, body) = server
        .post(&format!("/api/workflows/{many_id}/run"), "alice", json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("node `file0` names asset `0aaa"), "{error}");
    assert!(error.contains("(80 more)"), "{error}");
    assert!(error.len() < 20 * 200 + 400, "{} characters", error.len());
    assert!(!error.contains('\n'), "the ids' newlines are escaped");

    // A run names only its owner's assets: a missing one is refused before the run starts.
    let (status, body) = server
        .post(&format!("/api/workflows/{id}/run"), "alice", json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("node `photo` names asset `x`"), "{error}");

    // So is another user's: bob's copy of alice's canvas cannot read (and so take) her photo.
    let photo = upload_photo(&server, "alice").await;
    let (_, copy) = server
        .post(
            "/api/workflows",
            "bob",
            json!({ "name": "Copy", "document": pipeline_document(&photo) }),
        )
        .await;
    let copy_id = copy["id"].as_str().unwrap();
    let (status, body) = server
        .post(&format!("/api/workflows/{copy_id}/run"), "bob", json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&photo), "{body}");
    let (status, _) = server.get(&format!("/api/assets/{photo}"), "bob").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "still not bob's");

    // Alice's run of her own photo is invisible to bob.
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/workflows/{id}"),
            "alice",
            Some(json!({ "document": pipeline_document(&photo) })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, started) = server
        .post(&format!("/api/workflows/{id}/run"), "alice", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let run_id = started["runId"].as_str().unwrap();
    let (status, _) = server
        .get(&format!("/api/runs/{run_id}/events"), "bob")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let events = server.events(run_id, "alice").await;
    let (_, last) = events.last().unwrap();
    assert_eq!(last["run"]["status"], "COMPLETED", "{events:?}");

    // No token, a bad token, a malformed header: 401 with a JSON error.
    let resp = server
        .http
        .get(server.url("/api/workflows"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );
    for header in [
        "Bearer wrong-secret-0123456789:alice",
        "Basic YWxpY2U6",
        "Bearer nonsense",
    ] {
        let resp = server
            .http
            .get(server.url("/api/workflows"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_oversized_bodies_and_unknown_routes() {
    let config = ServerConfig {
        json_limit: 64 * 1024,
        upload_limit: 256 * 1024,
        ..ServerConfig::default()
    };
    let mut server = TestServer::start(registry(AiSettings::default()), config).await;
    let send_raw = |body: Vec<u8>| {
        server
            .as_user(server.http.post(server.url("/api/workflows")), "alice")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let resp = send_raw(b"{\"name\": \"x\", ".to_vec()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );

    let (status, body) = server
        .post("/api/workflows", "alice", json!({ "name": 5 }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("expected shape"),
        "{body}"
    );
    let (status, body) = server
        .post("/api/workflows", "alice", json!({ "document": {} }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("name"), "{body}");
    let (status, _) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "x", "surprise": true }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "x", "document": [1, 2] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Over the JSON limit: 413, as JSON, with or without a Content-Length.
    let big =
        json!({ "name": "big", "document": { "nodes": [], "padding": "x".repeat(100 * 1024) } });
    let resp = send_raw(serde_json::to_vec(&big).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["details"]["limit"], 64 * 1024);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b' '; 4096])).collect();
    let resp = server
        .as_user(server.http.post(server.url("/api/workflows")), "alice")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Uploads have their own, larger limit.
    let (status, body) = server
        .upload("alice", "big.bin", vec![7u8; 300 * 1024])
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = server.upload("alice", "empty.png", Vec::new()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = server
        .upload(
            "alice",
            "photo.jpg",
            std::fs::read(shipped("assets/photo.jpg")).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "a 80 KB photo fits: {body}");

    let (status, body) = server.get("/api/nothing-here", "alice").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    // A route asked with a method it lacks: a JSON 405 naming both, and the methods it has.
    let resp = server
        .as_user(server.http.patch(server.url("/api/workflows")), "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = resp.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("PATCH") && error.contains("/api/workflows"),
        "{body}"
    );
    let (status, body) = server.get("/api/workflows?limit=zero", "alice").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    server.stop().await;
}

/// A client still sending a body the server refuses reads the refusal: the server answers,
/// then reads and discards the rest of the body instead of closing on it (which would reset
/// the connection, and the client would see a send error instead of the 413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_large_bodies_reach_the_client() {
    let config = ServerConfig {
        json_limit: 64 * 1024,
        upload_limit: 256 * 1024,
        ..ServerConfig::default()
    };
    let mut server = TestServer::start(registry(AiSettings::default()), config).await;
    let big = 6 * 1024 * 1024;
    for round in 0..5 {
        // An upload megabytes over its limit (with a Content-Length).
        let (status, body) = server.upload("alice", "big.bin", vec![7u8; big]).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "round {round}: {body}"
        );
        assert_eq!(
            body["details"]["limit"],
            256 * 1024,
            "round {round}: {body}"
        );
        // The same streamed (no Content-Length): refused when the limit is reached.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..big / (64 * 1024))
            .map(|_| Ok(vec![7u8; 64 * 1024]))
            .collect();
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(futures::stream::iter(
                chunks,
            )))
            .file_name("big.bin"),
        );
        let resp = server
            .as_user(server.http.post(server.url("/api/assets")), "alice")
            .multipart(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "round {round}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["details"]["limit"],
            256 * 1024,
            "round {round}: {body}"
        );

        // A JSON body megabytes over its limit, with and without a Content-Length.
        let json_body = || {
            let mut body = b"{\"name\": \"big\", \"padding\": \"".to_vec();
            body.resize(big, b'x');
            body.extend_from_slice(b"\"}");
            body
        };
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = json_body()
            .chunks(64 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        for json in [reqwest::Body::from(json_body()), streamed] {
            let resp = server
                .as_user(server.http.post(server.url("/api/workflows")), "alice")
                .header("content-type", "application/json")
                .body(json)
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(
                resp.status(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "round {round}"
            );
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["details"]["limit"], 64 * 1024, "round {round}: {body}");
        }

        // Refused before its body is read at all: an upload without a valid token.
        let resp = server
            .http
            .post(server.url("/api/assets"))
            .bearer_auth("not-a-token")
            .body(vec![7u8; big])
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "round {round}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string(), "round {round}: {body}");

        // The server is still fine (and so is the client's connection pool).
        let (status, _) = server.get("/api/workflows", "alice").await;
        assert_eq!(status, StatusCode::OK, "round {round}");
    }
    server.stop().await;
}

/// A client still sending a body the server refused keeps its connection open while the
/// server reads and discards the rest (up to 5 s, see `linger`). A server shutting down stops
/// that at once: its graceful shutdown, which waits for open connections, must not wait for a
/// client that never stops sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_client_still_sending_a_refused_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = TestServer::default().await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let chunk = {
        let mut c = b"400\r\n".to_vec();
        c.extend_from_slice(&[7u8; 0x400]);
        c.extend_from_slice(b"\r\n");
        c
    };
    let mut head = b"POST /api/assets HTTP/1.1\r\nHost: gatewai\r\n\
        Authorization: Bearer not-a-token\r\nContent-Type: application/octet-stream\r\n\
        Transfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    head.extend_from_slice(&chunk);
    write.write_all(&head).await.unwrap();
    // The refusal arrives while the body is still coming.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = read.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response");
        response.extend_from_slice(&buf[..n]);
    }
    let status_line = String::from_utf8_lossy(&response);
    assert!(status_line.starts_with("HTTP/1.1 401"), "{status_line}");
    // A client that never stops sending.
    let sender = tokio::spawn(async move {
        while write.write_all(&chunk).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    server.stop().await;
    let took = started.elapsed();
    sender.abort();
    // Well under the 5 s the server would otherwise linger.
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_graphs_are_422_with_every_problem() {
    let mut server = TestServer::default().await;
    let mut doc = pipeline_document("x");
    doc["nodes"][3]["type"] = "Sharpen".into();
    doc["edges"][1]["targetHandleId"] = "resize:nowhere".into();
    doc["edges"][0]["source"] = "caption".into();
    doc["edges"][0]["sourceHandleId"] = "caption:text".into();
    doc["edges"].as_array_mut().unwrap().push(json!({
        "id": "loop", "source": "resize", "target": "crop",
        "sourceHandleId": "resize:result", "targetHandleId": "crop:image"
    }));
    let (status, body) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Broken", "document": doc }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let details: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(details.len() >= 4, "{details:#?}");
    assert_eq!(
        body["error"],
        format!("invalid workflow: {} problems", details.len())
    );
    let mentions = |needle: &str| details.iter().any(|d| d.contains(needle));
    assert!(mentions("Sharpen"), "{details:#?}");
    assert!(mentions("nowhere"), "{details:#?}");
    assert!(mentions("caption"), "{details:#?}");
    assert!(mentions("takes one edge"), "{details:#?}");

    // A valid canvas being edited may leave a required input open; a run may not.
    let (status, created) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Fine", "document": pipeline_document("x") }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    let mut open = pipeline_document("x");
    open["edges"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["id"] != "e-compose-export");
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/workflows/{id}"),
            "alice",
            Some(json!({ "document": open })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(&format!("/api/workflows/{id}/run"), "alice", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["details"][0].as_str().unwrap().contains("export"),
        "{body}"
    );
    let (status, body) = server
        .post(
            &format!("/api/workflows/{id}/run"),
            "alice",
            json!({ "nodeIds": ["ghost"] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("ghost"));
    // An invalid PUT leaves the stored document alone.
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            &format!("/api/workflows/{id}"),
            "alice",
            Some(json!({ "document": doc })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, got) = server.get(&format!("/api/workflows/{id}"), "alice").await;
    assert_eq!(got["document"]["edges"].as_array().unwrap().len(), 5);
    server.stop().await;
}

/// A node that waits until the test lets it go (or the run is cancelled).
struct Gate {
    template: NodeTemplate,
    permits: Arc<Semaphore>,
}

impl Gate {
    fn new(permits: Arc<Semaphore>) -> Self {
        Gate {
            template: NodeTemplate::new("Gate", "Gate", "Test").handle(HandleTemplate::output(
                "result",
                "Result",
                &[DataType::Text],
            )),
            permits,
        }
    }
}

#[async_trait]
impl Node for Gate {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        tokio::select! {
            permit = self.permits.acquire() => {
                permit.map_err(|_| NodeError::internal("gate closed"))?.forget();
                Ok(Outputs::one("result", Item::text("through")))
            }
            () = ctx.cancelled() => Err(NodeError::cancelled()),
        }
    }
}

fn gated_server_registry(permits: Arc<Semaphore>) -> NodeRegistry {
    let mut registry = registry(AiSettings::default());
    registry.register(Gate::new(permits)).unwrap();
    registry
}

fn gate_document() -> Value {
    json!({
        "nodes": [
            { "id": "gate", "type": "Gate", "config": {} },
            { "id": "export", "type": "Export", "config": {} }
        ],
        "handles": [
            { "id": "gate:result", "type": "Output", "dataTypes": ["Text"], "label": "Result", "templateHandleId": "result", "nodeId": "gate" },
            { "id": "export:input", "type": "Input", "dataTypes": ["Text", "Image", "Video", "Audio"], "label": "Input", "required": true, "templateHandleId": "input", "nodeId": "export" }
        ],
        "edges": [
            { "id": "e1", "source": "gate", "target": "export", "sourceHandleId": "gate:result", "targetHandleId": "export:input" }
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_is_live_and_late_subscribers_catch_up() {
    let permits = Arc::new(Semaphore::new(0));
    let mut server = TestServer::start(
        gated_server_registry(permits.clone()),
        ServerConfig::default(),
    )
    .await;
    let (_, created) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Gated", "document": gate_document() }),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let (_, started) = server
        .post(&format!("/api/workflows/{id}/run"), "alice", json!({}))
        .await;
    let run_id = started["runId"].as_str().unwrap().to_owned();

    // The first subscriber sees the gate start while the run is held there.
    let mut early = SseReader::new(server.open_events(&run_id, "alice").await);
    let mut early_events = Vec::new();
    loop {
        let event = early
            .next()
            .await
            .expect("stream open while the gate is closed");
        let started_gate = event.0 == "nodeStarted" && node_id(&event.1) == "gate";
        early_events.push(event);
        if started_gate {
            break;
        }
    }
    assert!(early_events.iter().all(|(n, _)| n != "runFinished"));
    // A second subscriber joins mid-run, then the gate opens.
    let late = server.open_events(&run_id, "alice").await;
    permits.add_permits(1);
    while let Some(event) = early.next().await {
        early_events.push(event);
    }
    let late_events = read_sse(late).await;
    assert_eq!(early_events.last().unwrap().0, "runFinished");
    assert_eq!(early_events.last().unwrap().1["run"]["status"], "COMPLETED");
    let seqs = |events: &[(String, Value)]| -> Vec<u64> {
        events
            .iter()
            .map(|(_, e)| e["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&early_events), seqs(&late_events));
    assert_eq!(
        seqs(&early_events),
        (0..early_events.len() as u64).collect::<Vec<_>>()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_cancels_running_runs_and_records_them() {
    let permits = Arc::new(Semaphore::new(0));
    let mut server =
        TestServer::start(gated_server_registry(permits), ServerConfig::default()).await;
    let (_, created) = server
        .post(
            "/api/workflows",
            "alice",
            json!({ "name": "Held", "document": gate_document() }),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, started) = server
        .post(&format!("/api/workflows/{id}/run"), "alice", json!({}))
        .await;
    let run_id = started["runId"].as_str().unwrap().to_owned();
    let mut events = SseReader::new(server.open_events(&run_id, "alice").await);
    while let Some((name, event)) = events.next().await {
        if name == "nodeStarted" && node_id(&event) == "gate" {
            break;
        }
    }
    // Shut down while the gate holds the run: the open stream ends with the cancelled run.
    let store = server.store.clone();
    server.stop().await;
    let mut rest = Vec::new();
    while let Some(event) = events.next().await {
        rest.push(event);
    }
    let (name, last) = rest.last().expect("the stream ends with the run");
    assert_eq!(name, "runFinished");
    assert_eq!(last["run"]["status"], "CANCELLED");
    let run = store.get_run(&run_id).await.unwrap().expect("run recorded");
    assert_eq!(run.status, RunStatus::Cancelled);
    let executions = store.node_executions(&run_id).await.unwrap();
    assert!(
        executions.iter().all(|e| e.status.is_terminal()),
        "{executions:?}"
    );

    // A restarted server no longer has the run's events: it answers with the stored record.
    let mut restarted = TestServer::start_on(
        registry(AiSettings::default()),
        ServerConfig::default(),
        Some(server.db_url.clone()),
    )
    .await;
    let events = restarted.events(&run_id, "alice").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "runRecord");
    assert_eq!(events[0].1["run"]["status"], "CANCELLED");
    let (status, _) = restarted
        .get(&format!("/api/runs/{run_id}/events"), "bob")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_the_configured_origin_only() {
    let config = ServerConfig {
        cors_origins: vec!["http://canvas.example".into()],
        ..ServerConfig::default()
    };
    let mut server = TestServer::start(registry(AiSettings::default()), config).await;
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.url("/api/workflows"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let resp = preflight("http://canvas.example").await.unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://canvas.example"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    let resp = preflight("http://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_llm_call_through_a_local_gemini() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let gemini = MockServer::start().await;
    let chunk = |text: &str| json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": text }] }, "index": 0 }] });
    let body = format!(
        "data: {}\r\n\r\ndata: {}\r\n\r\n",
        chunk("Hello, "),
        json!({ "candidates": [{ "content": { "role": "model", "parts": [{ "text": "Ada." }] }, "finishReason": "STOP", "index": 0 }] })
    );
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-test:streamGenerateContent"))
        .and(header("x-goog-api-key", "test-key"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .expect(1)
        .mount(&gemini)
        .await;
    let ai = AiSettings {
        gemini_base_url: gemini.uri(),
        gemini_key: Some(ApiKey::new("test-key")),
        ..AiSettings::default()
    };
    let mut server = TestServer::start(registry(ai), ServerConfig::default()).await;
    let (status, body) = server
        .post(
            "/api/llm/execute",
            "alice",
            json!({ "prompt": "Greet Ada", "systemPrompt": "Be brief", "model": "gemini-test" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["text"], "Hello, Ada.");
    let requests = gemini.received_requests().await.unwrap();
    let sent: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert!(sent.to_string().contains("Greet Ada"), "{sent}");
    assert!(sent.to_string().contains("Be brief"), "{sent}");

    let (status, body) = server
        .post("/api/llm/execute", "alice", json!({ "prompt": "  " }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server.post("/api/llm/execute", "alice", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;

    // Without a key: a clear error, not a crash.
    let mut keyless = TestServer::default().await;
    let (status, body) = keyless
        .post("/api/llm/execute", "alice", json!({ "prompt": "Hi" }))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("GEMINI_API_KEY"),
        "{body}"
    );
    keyless.stop().await;
}

/// The PostgreSQL server of the tests (`GATEWAI_TEST_POSTGRES_URL`, set by `.ci/run`); `None`
/// with a note when unset, a failure when unset under CI.
fn postgres_url() -> Option<String> {
    match std::env::var("GATEWAI_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("CI=true but GATEWAI_TEST_POSTGRES_URL is not set")
        }
        _ => {
            eprintln!(
                "note: PostgreSQL server test skipped (GATEWAI_TEST_POSTGRES_URL is not set)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_api_on_postgresql() {
    let Some(url) = postgres_url() else { return };
    let mut server = TestServer::start_on(
        registry(AiSettings::default()),
        ServerConfig::default(),
        Some(url),
    )
    .await;
    // Users unique to this test: the database may be shared with other tests.
    let alice = format!("alice-{}", uuid::Uuid::new_v4().simple());
    let bob = format!("bob-{}", uuid::Uuid::new_v4().simple());
    let (_, id) = pipeline_workflow(&server, &alice, "Card on PostgreSQL").await;
    let (status, started) = server
        .post(&format!("/api/workflows/{id}/run"), &alice, json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let run_id = started["runId"].as_str().unwrap().to_owned();
    let events = server.events(&run_id, &alice).await;
    assert_eq!(events.last().unwrap().1["run"]["status"], "COMPLETED");
    let (_, history) = server
        .get(&format!("/api/workflows/{id}/runs"), &alice)
        .await;
    assert_eq!(history[0]["run"]["id"], run_id.as_str());
    assert_eq!(history[0]["executions"].as_array().unwrap().len(), 7);
    let (status, _) = server.get(&format!("/api/workflows/{id}/runs"), &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = server.get("/api/workflows", &bob).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/workflows/{id}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.stop().await;
}

/// One generated request: who sends it, how, where, and what body.
#[derive(Debug, Clone)]
struct GeneratedRequest {
    user: Option<&'static str>,
    method: &'static str,
    path: String,
    body: GeneratedBody,
}

#[derive(Debug, Clone)]
enum GeneratedBody {
    None,
    Json(Value),
    Raw(Vec<u8>, &'static str),
    /// A multipart form of one file field.
    Form {
        field: &'static str,
        name: String,
        bytes: Vec<u8>,
    },
}

/// Texts a client may send (none of them a URL: a generated document must not make a node
/// fetch from the network).
const WILD_TEXTS: &[&str] = &[
    "",
    "x",
    "Sum",
    "Text",
    "File",
    "LLM",
    "n1",
    "n1:out",
    "../../etc/passwd",
    "名前 ☃",
    "nul \0",
    "%00%2F",
    "-1",
    "1e999",
    "  ",
];

/// A JSON scalar a client may send.
fn wild_scalar() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![0.5, -1e300, 1e300, f64::MIN_POSITIVE]).prop_map(|n| json!(n)),
        prop::sample::select(WILD_TEXTS).prop_map(|s| json!(s)),
        (1usize..70_000).prop_map(|n| json!("x".repeat(n))),
    ]
}

/// Any JSON value a client may send.
fn wild_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    const KEYS: &[&str] = &[
        "name",
        "document",
        "nodes",
        "edges",
        "handles",
        "nodeIds",
        "id",
        "type",
        "config",
        "data",
        "source",
        "target",
        "sourceHandleId",
        "targetHandleId",
        "nodeId",
        "handleType",
        "dataTypes",
        "prompt",
        "model",
        "systemPrompt",
        "temperature",
        "label",
        "result",
        "outputs",
        "items",
        "selectedOutputIndex",
        "position",
    ];
    wild_scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// `document` with the value at one place (picked among all its values, in pre-order, by
/// `at`) replaced by `value`, or removed when `value` is null.
fn changed_at(mut document: Value, at: proptest::sample::Index, value: Value) -> Value {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map.values().map(count).sum(),
            _ => 0,
        }
    }
    fn change(v: &mut Value, mut at: usize, value: Value) {
        let children: Vec<&mut Value> = match v {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(map) => map.values_mut().collect(),
            _ => Vec::new(),
        };
        for child in children {
            let n = count(child);
            if at == 0 {
                *child = value;
                return;
            }
            if at < n {
                return change(child, at - 1, value);
            }
            at -= n;
        }
    }
    let places = count(&document) - 1;
    if places > 0 {
        change(&mut document, at.index(places), value);
    }
    document
}

/// An upload (`POST /api/assets`) of a generated form: the file field or another, a wild file
/// name, and bytes that are random, a cut of a real photo, or the photo with bytes changed.
fn generated_upload(
    photo: std::sync::Arc<Vec<u8>>,
) -> impl proptest::strategy::Strategy<Value = GeneratedRequest> {
    use proptest::prelude::*;
    let cut = photo.clone();
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (0..=photo.len()).prop_map(move |n| cut[..n].to_vec()),
        prop::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8).prop_map(
            move |changes| {
                let mut bytes = photo.to_vec();
                for (at, byte) in changes {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                bytes
            }
        ),
    ];
    (
        prop::sample::select(vec![Some("alice"), Some("bob"), None]),
        prop::sample::select(vec!["file", "file", "other"]),
        prop::sample::select(WILD_TEXTS),
        bytes,
    )
        .prop_map(|(user, field, name, bytes)| GeneratedRequest {
            user,
            method: "POST",
            path: "/api/assets".to_owned(),
            body: GeneratedBody::Form {
                field,
                name: name.to_owned(),
                bytes,
            },
        })
}

fn generated_request(
    own_workflow: String,
    run_id: String,
    document: Value,
) -> impl proptest::strategy::Strategy<Value = GeneratedRequest> {
    use proptest::prelude::*;
    let events = format!("/api/runs/{run_id}/events");
    let ids = prop_oneof![
        Just(own_workflow),
        Just(run_id),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        Just("%2E%2E%2F%2E%2E".to_owned()),
        Just("%E2%98%83%00".to_owned()),
        (1usize..5000).prop_map(|n| "y".repeat(n)),
    ];
    let paths = (
        prop_oneof![3 => Just(0usize), 3 => Just(1usize), 3 => 2usize..10],
        ids,
    )
        .prop_map(|(template, id)| match template {
            0 => "/api/workflows".to_owned(),
            1 => format!("/api/workflows/{id}"),
            2 => format!("/api/workflows/{id}/run"),
            3 => format!("/api/workflows/{id}/runs?limit=-1&offset=x"),
            4 => format!("/api/workflows/{id}/runs?limit=3"),
            5 => format!("/api/runs/{id}/events"),
            6 => "/api/llm/execute".to_owned(),
            7 => format!("/api/assets/{id}"),
            8 => "/api/assets?limit=2&offset=1".to_owned(),
            _ => format!("/api/{id}"),
        });
    // And the events of the run that was started, often enough that its stream is read.
    let paths = prop_oneof![9 => paths, 1 => Just(events)];
    let body = prop_oneof![
        1 => Just(GeneratedBody::None),
        3 => wild_json().prop_map(GeneratedBody::Json),
        2 => (prop::sample::select(WILD_TEXTS), wild_json()).prop_map(|(name, document)| {
            GeneratedBody::Json(json!({ "name": name, "document": document }))
        }),
        // A real document changed at one place: past the JSON shape, into validation.
        6 => (
            any::<proptest::sample::Index>(),
            prop_oneof![4 => wild_scalar(), 1 => wild_json()],
        )
            .prop_map(move |(at, value)| {
            let document = changed_at(document.clone(), at, value);
            GeneratedBody::Json(json!({ "name": "Changed", "document": document }))
        }),
        1 => (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::sample::select(vec!["application/json", "text/plain", "multipart/form-data"]),
        )
            .prop_map(|(bytes, kind)| GeneratedBody::Raw(bytes, kind)),
    ];
    // Mostly a method a route has, else any.
    let routed = paths.prop_flat_map(|path| {
        let methods: &[&'static str] =
            if path == "/api/workflows" || path.starts_with("/api/assets?") {
                &["GET", "POST"]
            } else if path.ends_with("/run") || path == "/api/llm/execute" {
                &["POST"]
            } else if path.starts_with("/api/workflows/") && !path.contains("/runs") {
                &["GET", "PUT", "DELETE"]
            } else {
                &["GET"]
            };
        let method = prop_oneof![
            4 => prop::sample::select(methods.to_vec()),
            1 => prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]),
        ];
        (method, Just(path))
    });
    (
        prop::sample::select(vec![Some("alice"), Some("alice"), Some("bob"), None]),
        routed,
        body,
    )
        .prop_map(|(user, (method, path), body)| GeneratedRequest {
            user,
            method,
            path,
            body,
        })
}

/// Generated requests (users, methods, routes, ids, JSON bodies and raw bytes, untrusted all)
/// and generated uploads (multipart forms of cut, changed or random bytes under wild names)
/// never get a server error, always get a JSON error body that quotes no long value whole, and
/// leave the server serving; a stored upload is its uploader's only; a run's event stream, read
/// to its end, holds named JSON events from `runStarted` to `runFinished`. The cases are the
/// same on every run; `GATEWAI_FUZZ_CASES` and `GATEWAI_FUZZ_SEED=random` explore further, as
/// in the other generated tests (see `gatewai-testkit`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_client_errors_never_server_errors() {
    use proptest::strategy::{Strategy, ValueTree};
    // A provider the direct LLM call can reach only to be refused (never the network).
    let ai = AiSettings {
        gemini_base_url: "http://127.0.0.1:9".into(),
        gemini_key: Some(ApiKey::new("test-key")),
        openai_base_url: "http://127.0.0.1:9".into(),
        openai_key: Some(ApiKey::new("test-key")),
        ..AiSettings::default()
    };
    let server = TestServer::start(registry(ai), ServerConfig::default()).await;
    let (photo, own) = pipeline_workflow(&server, "alice", "Pipeline").await;
    let (status, run) = server
        .post(&format!("/api/workflows/{own}/run"), "alice", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let run_id = run["runId"].as_str().unwrap().to_owned();

    let mut runner = gatewai_testkit::fuzz_runner(128);
    let cases = runner.config().cases;
    let photo_bytes = std::sync::Arc::new(std::fs::read(shipped("assets/photo.jpg")).unwrap());
    let requests = generated_request(own, run_id.clone(), pipeline_document(&photo));
    let generated_uploads = generated_upload(photo_bytes);
    let mut uploads = std::collections::BTreeSet::new();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut statuses = std::collections::BTreeSet::new();
    let mut streams = 0;
    // The run's own events first, so that a stream is read whatever the seed draws; then the
    // generated requests, then half as many generated uploads.
    let own_events = GeneratedRequest {
        user: Some("alice"),
        method: "GET",
        path: format!("/api/runs/{run_id}/events"),
        body: GeneratedBody::None,
    };
    for at in 0..=cases + cases / 2 {
        let request = match at {
            0 => own_events.clone(),
            at if at <= cases => requests.new_tree(&mut runner).unwrap().current(),
            _ => generated_uploads.new_tree(&mut runner).unwrap().current(),
        };
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap();
        let mut builder = client.request(method, server.url(&request.path));
        if let Some(user) = request.user {
            builder = server.as_user(builder, user);
        }
        builder = match &request.body {
            GeneratedBody::None => builder,
            GeneratedBody::Json(value) => builder.json(value),
            GeneratedBody::Raw(bytes, kind) => {
                builder.header("content-type", *kind).body(bytes.clone())
            }
            GeneratedBody::Form { field, name, bytes } => {
                let part = reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.clone());
                builder.multipart(reqwest::multipart::Form::new().part(*field, part))
            }
        };
        let shown = || {
            let mut text = format!("{request:?}");
            text.truncate(2000);
            text
        };
        let resp = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e} for {}", shown()));
        let status = resp.status();
        statuses.insert(status.as_u16());
        let uploaded = matches!(request.body, GeneratedBody::Form { .. });
        if uploaded {
            uploads.insert(status.as_u16());
        }
        let is_event_stream = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{e} reading the answer to {}", shown()));
        // A provider that cannot be reached is the direct LLM call's only server-side error.
        let upstream = request.path == "/api/llm/execute" && matches!(status.as_u16(), 502..=504);
        assert!(
            !status.is_server_error() || upstream,
            "{status} {} for {}",
            String::from_utf8_lossy(&body),
            shown()
        );
        if status.is_client_error() || status.is_server_error() {
            let error: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!("{e}: a {status} answer that is not JSON for {}", shown())
            });
            assert!(error["error"].is_string(), "{error} for {}", shown());
            assert!(
                body.len() < 16 * 1024
                    && !String::from_utf8_lossy(&body).contains(&"x".repeat(401)),
                "a {status} answer of {} bytes quoting a long value for {}",
                body.len(),
                shown()
            );
        } else if is_event_stream {
            // A run's events, read to the stream's end: every one named, its data JSON, from
            // the run's start to its end.
            let text = std::str::from_utf8(&body)
                .unwrap_or_else(|e| panic!("{e}: an event stream not UTF-8 for {}", shown()));
            let events: Vec<(String, Value)> = text.split("\n\n").filter_map(sse_event).collect();
            let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(
                names.first(),
                Some(&"runStarted"),
                "{names:?} for {}",
                shown()
            );
            assert_eq!(
                names.last(),
                Some(&"runFinished"),
                "{names:?} for {}",
                shown()
            );
            streams += 1;
        } else if !body.is_empty() && !request.path.starts_with("/api/assets/") {
            let answer = serde_json::from_slice::<Value>(&body).unwrap_or_else(|e| {
                panic!("{e}: a {status} answer that is not JSON for {}", shown())
            });
            // A stored upload is its uploader's, and only theirs.
            if let (true, StatusCode::CREATED, Some(user)) = (uploaded, status, request.user) {
                let id = answer["id"].as_str().unwrap();
                let path = format!("/api/assets/{id}");
                let (status, _) = server.get(&path, user).await;
                assert_eq!(status, StatusCode::OK, "{user} fetching {}", shown());
                let other = if user == "alice" { "bob" } else { "alice" };
                let (status, _) = server.get(&path, other).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{other} fetching {}",
                    shown()
                );
            }
        }
    }
    // The requests reached the routes' handlers, not only the router and the extractors.
    for status in [200, 201, 400, 401, 404, 405, 422] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    // The run's own event stream, at least, was read whole.
    assert!(streams > 0, "no event stream among the answers");
    // Uploads were stored and refused, and every stored one is its uploader's.
    for status in [201, 400, 401] {
        assert!(
            uploads.contains(&status),
            "no upload answered {status}: {uploads:?}"
        );
    }
    // Still serving.
    let (status, _) = server.get("/api/workflows", "alice").await;
    assert_eq!(status, StatusCode::OK);
}
