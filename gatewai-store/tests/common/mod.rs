//! What the behaviour tests share: the backends under test (memory, SQLite on a temp file,
//! PostgreSQL on the server `GATEWAI_TEST_POSTGRES_URL` names), test node types and workflow
//! builders.
#![allow(dead_code)]

use async_trait::async_trait;
use gatewai_core::model::Node as WfNode;
use gatewai_core::{
    DataType, Edge, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError, NodeRegistry,
    NodeTemplate, Outputs, TemplateSource, Workflow,
};
use gatewai_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The environment variable naming the PostgreSQL server of the tests.
pub const POSTGRES_URL_VAR: &str = "GATEWAI_TEST_POSTGRES_URL";

/// A backend under test, which can be opened again (as a restarted process would).
pub struct Target {
    /// `memory`, `sqlite` or `postgres`.
    pub name: &'static str,
    /// The store URL (`memory://` for the memory backend).
    pub url: String,
    memory: Option<Store>,
    _dir: Option<tempfile::TempDir>,
    /// A PostgreSQL test database: (server URL, database name), dropped with the target.
    database: Option<(String, String)>,
}

impl Drop for Target {
    /// Drops a PostgreSQL test database, so that a long-lived server does not fill up with
    /// them. Runs on a thread of its own (with its own runtime), as a drop cannot await.
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
        if let Some((server, name)) = self.database.take() {
            let dropped = std::thread::spawn(move || {
                use sqlx::Connection;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&server)
                        .await
                        .map_err(|e| e.to_string())?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                })
            })
            .join();
            if let Ok(Err(e)) | Err(e) = dropped.map_err(|_| "panicked".to_owned()) {
                eprintln!("note: could not drop a test database: {e}");
            }
        }
    }
}

impl Target {
    #[cfg(feature = "memory")]
    pub fn memory() -> Target {
        Target {
            name: "memory",
            url: "memory://".into(),
            memory: Some(Store::memory()),
            _dir: None,
            database: None,
        }
    }

    pub fn sqlite() -> Target {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("store.db").display()
        );
        Target {
            name: "sqlite",
            url,
            memory: None,
            _dir: Some(dir),
            database: None,
        }
    }

    /// A fresh database on the test server, or `None` (with a note) when no server is
    /// configured. Under CI (`CI=true`) a missing server fails the test.
    #[cfg(feature = "postgres")]
    pub async fn postgres() -> Option<Target> {
        let admin_url = postgres_url()?;
        let name = format!("gatewai_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = url::Url::parse(&admin_url).expect("GATEWAI_TEST_POSTGRES_URL is a URL");
        {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(admin.as_str())
                .await
                .expect("connect to the test PostgreSQL server");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create a test database");
        }
        let server = admin.to_string();
        admin.set_path(&name);
        Some(Target {
            name: "postgres",
            url: admin.to_string(),
            memory: None,
            _dir: None,
            database: Some((server, name)),
        })
    }

    /// Without the `postgres` feature there is no PostgreSQL backend to test: a skip locally,
    /// a failure under CI.
    #[cfg(not(feature = "postgres"))]
    pub async fn postgres() -> Option<Target> {
        if is_ci() {
            panic!("CI=true: the PostgreSQL conformance tests need `--features postgres`");
        }
        eprintln!("note: PostgreSQL tests skipped (build with `--features postgres`)");
        None
    }

    /// Opens the store (again). The memory backend hands back the same store.
    pub async fn open(&self) -> Store {
        match &self.memory {
            Some(store) => store.clone(),
            None => Store::open(&self.url)
                .await
                .unwrap_or_else(|e| panic!("open {}: {e}", self.name)),
        }
    }

    /// Opens the store with a short wait for locks (100 ms), so that a write blocked by
    /// [`Target::lock_writes`] fails as unavailable soon (SQL backends only).
    pub async fn open_impatient(&self) -> Store {
        let url = match self.name {
            "sqlite" => format!("{}&busy_timeout=100", self.url),
            "postgres" => format!("{}?options=-c%20lock_timeout%3D100", self.url),
            other => panic!("no lock wait on the {other} backend"),
        };
        Store::open(&url)
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", self.name))
    }

    /// Blocks writes to runs and node executions from another connection (another process
    /// holding a lock) until the lock is released; reads go on (SQL backends only).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub async fn lock_writes(&self) -> WriteLock {
        use sqlx::Connection;
        match self.name {
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                // In WAL mode an exclusive transaction blocks writers, not readers.
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteLock::Sqlite(conn)
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql("BEGIN; LOCK TABLE workflow_runs, node_executions IN EXCLUSIVE MODE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteLock::Postgres(conn)
            }
            other => panic!("no write lock on the {other} backend"),
        }
    }

    /// Runs a raw SQL statement on the database (SQL backends only).
    pub async fn execute_raw(&self, sql: &str) {
        #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
        let _ = sql;
        match self.name {
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                use sqlx::Connection;
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            #[cfg(feature = "postgres")]
            "postgres" => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            other => panic!("no raw SQL on the {other} backend"),
        }
    }
}

/// A transaction of a PostgreSQL connection of its own, left open after its first statements
/// (another client holding locks): see [`begin_elsewhere`].
#[cfg(feature = "postgres")]
pub struct Elsewhere(sqlx::PgConnection);

/// Opens a transaction on a connection of its own to the database `url` names, and runs `sql`
/// in it.
#[cfg(feature = "postgres")]
pub async fn begin_elsewhere(url: &str, sql: &str) -> Elsewhere {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("BEGIN; {sql}")))
        .execute(&mut conn)
        .await
        .unwrap();
    Elsewhere(conn)
}

#[cfg(feature = "postgres")]
impl Elsewhere {
    /// Commits the transaction.
    pub async fn commit(mut self) {
        use sqlx::Connection;
        sqlx::raw_sql("COMMIT").execute(&mut self.0).await.unwrap();
        self.0.close().await.unwrap();
    }
}

/// A lock blocking writes, held by a connection of its own (see [`Target::lock_writes`]).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub enum WriteLock {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgConnection),
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl WriteLock {
    /// Ends the lock's transaction.
    pub async fn release(self) {
        use sqlx::Connection;
        match self {
            #[cfg(feature = "sqlite")]
            WriteLock::Sqlite(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            #[cfg(feature = "postgres")]
            WriteLock::Postgres(mut conn) => {
                sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The test server's URL; `None` with a note when unset, a panic when unset under CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if is_ci() => panic!(
            "CI=true but {POSTGRES_URL_VAR} is not set: the PostgreSQL conformance tests must run"
        ),
        _ => {
            eprintln!("note: PostgreSQL tests skipped ({POSTGRES_URL_VAR} is not set)");
            None
        }
    }
}

// ---------- test node types ----------

/// A template with a multiple Number input `in` and a Number output `out`.
pub fn number_template(node_type: &str) -> NodeTemplate {
    NodeTemplate::new(node_type, node_type, "Test")
        .handle(HandleTemplate::input("in", "In", &[DataType::Number]).multiple())
        .handle(HandleTemplate::output("out", "Out", &[DataType::Number]))
}

/// Sums its inputs plus `config.add`; counts executions per node id.
pub struct Sum {
    template: NodeTemplate,
    pub counts: Arc<Counts>,
}

/// Executions per node id.
#[derive(Default)]
pub struct Counts(std::sync::Mutex<std::collections::HashMap<String, usize>>);

impl Counts {
    pub fn of(&self, node_id: &str) -> usize {
        self.0.lock().unwrap().get(node_id).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    fn bump(&self, node_id: &str) {
        *self
            .0
            .lock()
            .unwrap()
            .entry(node_id.to_owned())
            .or_default() += 1;
    }
}

#[async_trait]
impl Node for Sum {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.counts.bump(ctx.node_id());
        let add = ctx
            .raw_config()
            .get("add")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        let sum: f64 = inputs
            .all("in")
            .iter()
            .filter_map(Item::as_f64)
            .sum::<f64>()
            + add;
        Ok(Outputs::one("out", Item::number(sum)))
    }
}

/// Fails every attempt with its config's `message` (a provider's error text, NULs and all):
/// as unavailable (retryable) when its config's `retry` is true, else as an internal error.
pub struct Fails(pub NodeTemplate);

#[async_trait]
impl Node for Fails {
    fn template(&self) -> &NodeTemplate {
        &self.0
    }

    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config = ctx.raw_config();
        let message = config["message"].as_str().unwrap_or("failed").to_owned();
        Err(match config["retry"].as_bool() {
            Some(true) => NodeError::unavailable(message),
            _ => NodeError::internal(message),
        })
    }
}

/// Passes its input sum on once `open` is set; until then it never finishes (a node stuck in
/// a long provider call when the process dies).
pub struct Gate {
    template: NodeTemplate,
    pub open: Arc<AtomicBool>,
    pub runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Node for Gate {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sum: f64 = inputs.all("in").iter().filter_map(Item::as_f64).sum();
        Ok(Outputs::one("out", Item::number(sum)))
    }
}

impl Gate {
    /// A gate of type `node_type` that opens with `open`.
    pub fn new(node_type: &str, open: Arc<AtomicBool>, runs: Arc<AtomicUsize>) -> Gate {
        Gate {
            template: number_template(node_type),
            open,
            runs,
        }
    }
}

/// The counters of the test nodes of a registry.
#[derive(Clone, Default)]
pub struct Probes {
    pub counts: Arc<Counts>,
    pub gate_open: Arc<AtomicBool>,
    pub gate_runs: Arc<AtomicUsize>,
}

/// A registry of `Sum` and `Gate` reporting to `probes`.
pub fn registry(probes: &Probes) -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(Sum {
        template: number_template("Sum"),
        counts: probes.counts.clone(),
    })
    .unwrap();
    r.register(Gate::new(
        "Gate",
        probes.gate_open.clone(),
        probes.gate_runs.clone(),
    ))
    .unwrap();
    r
}

/// Builds a workflow; nodes are (id, type, config); edges are (source, target), from `out` to
/// `in`. Every node gets handles `{id}:{template handle}`.
pub fn workflow(
    reg: &NodeRegistry,
    nodes: &[(&str, &str, serde_json::Value)],
    edges: &[(&str, &str)],
) -> Workflow {
    let mut wf = Workflow::default();
    for (id, ty, config) in nodes {
        let mut node = WfNode::new(*id, *ty);
        node.config = config.clone();
        wf.nodes.push(node);
        let template = reg.template(ty).unwrap();
        for ht in &template.template_handles {
            wf.handles
                .push(ht.instantiate(id, format!("{id}:{}", ht.id)));
        }
    }
    for (i, (s, t)) in edges.iter().enumerate() {
        wf.edges.push(Edge {
            id: format!("e{i}"),
            source: (*s).to_owned(),
            target: (*t).to_owned(),
            source_handle_id: format!("{s}:out"),
            target_handle_id: format!("{t}:in"),
            extra: Default::default(),
        });
    }
    wf
}

/// A chain of `n` Sum nodes `n0 → n1 → …`, each adding 1.
pub fn chain(reg: &NodeRegistry, n: usize) -> Workflow {
    let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let nodes: Vec<(&str, &str, serde_json::Value)> = ids
        .iter()
        .map(|id| (id.as_str(), "Sum", serde_json::json!({"add": 1})))
        .collect();
    let edges: Vec<(&str, &str)> = ids
        .windows(2)
        .map(|w| (w[0].as_str(), w[1].as_str()))
        .collect();
    workflow(reg, &nodes, &edges)
}

/// The number a result's selected generation holds.
pub fn number_of(result: &gatewai_core::NodeResult) -> Option<f64> {
    result.selected()?.items.first()?.to_item().as_f64()
}

/// Polls `check` every 20 ms until it holds, for at most 20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
