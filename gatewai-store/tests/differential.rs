//! Generated sequences of operations on users, workflows, asset records, runs and node
//! executions, with untrusted texts, numbers at the edges of their columns and odd times,
//! applied to every backend in turn: each operation must have the same outcome on
//! SQLite (a real file) and PostgreSQL (when `GATEWAI_TEST_POSTGRES_URL` names a server) as on
//! the memory backend — the same records, the same listings in the same
//! order, the same kind of error. The conformance suite checks chosen cases; this one looks
//! for the cases nobody thought of (a NUL in a name, an asset width past a column, a time
//! before the epoch stored to the microsecond, an owner scope crossed by an id taken twice).
//!
//! A second property records generated runs (nodes that complete, fail, are retried, are
//! skipped, come from the cache; errors with untrusted text) through `record_events`: the run
//! and its executions must be stored alike by every backend, however the events were cut into
//! batches.
//!
//! The cases are the same on every run (a fixed seed). `GATEWAI_FUZZ_CASES=500` runs more,
//! `GATEWAI_FUZZ_SEED=random` draws a fresh seed; a failure prints the smallest sequence
//! proptest found that still fails.

mod common;

use common::Target;
use gatewai_core::{
    CacheKey, ExecutionStatus, NodeExecution, RunRecord, RunStatus, TriggerType, Workflow,
};
use gatewai_store::prelude::*;
use gatewai_testkit::fuzz_runner as runner;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Strings a client may send as a name, an email or a document's text.
const TEXTS: &[&str] = &[
    "",
    "plain",
    "quote ' \" ` ;--",
    "100% _under_ \\ backslash",
    "名前 ☃ 😀",
    "\u{202e}right to left",
    "nul \0 inside",
    "line\nbreak\ttab\r",
    "   ",
];

/// A text: one of [`TEXTS`], or a long run of one character.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TEXTS).prop_map(str::to_owned),
        1 => (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

/// One operation, naming users and workflows by their place in a small pool (so that the
/// sequences meet: an id taken twice, another owner's workflow, a deleted user).
#[derive(Debug, Clone)]
enum Op {
    UpsertUser {
        user: usize,
        email: String,
        first_name: Option<String>,
    },
    DeleteUser {
        user: usize,
    },
    GetUser {
        user: usize,
    },
    Create {
        owner: usize,
        workflow: usize,
        name: String,
        document: String,
    },
    Get {
        owner: usize,
        workflow: usize,
    },
    List {
        owner: usize,
        limit: u32,
        offset: u64,
    },
    Update {
        owner: usize,
        workflow: usize,
        name: Option<String>,
        document: Option<String>,
    },
    Delete {
        owner: usize,
        workflow: usize,
    },
    PutAsset {
        asset: usize,
        owner: Option<usize>,
        text: String,
        size: u64,
        width: Option<u32>,
        number: f64,
    },
    /// `put_asset_record` of a plain asset (one every backend takes), for an owner.
    PutPlainAsset {
        asset: usize,
        owner: usize,
    },
    GetAsset {
        asset: usize,
    },
    DeleteAsset {
        asset: usize,
    },
    /// `grant_asset` (`revoke` false) or `revoke_asset`.
    Grant {
        revoke: bool,
        asset: usize,
        user: usize,
    },
    GetOwnedAsset {
        owner: usize,
        asset: usize,
    },
    ListAssets {
        owner: usize,
        limit: u32,
        offset: u64,
    },
    AssetOwners {
        asset: usize,
    },
    /// `save_run` (`update` false) or `update_run`.
    SaveRun {
        update: bool,
        run: usize,
        workflow: Option<usize>,
        status: usize,
        error: Option<String>,
        at: usize,
    },
    GetRun {
        run: usize,
    },
    SaveExecution {
        run: usize,
        node: usize,
        status: usize,
        text: String,
        at: usize,
        duration_ms: u64,
        attempts: u32,
    },
    Executions {
        run: usize,
    },
    History {
        owner: usize,
        workflow: usize,
        limit: u32,
        offset: u64,
    },
    /// `cache_put` then `cache_get` (`put` false: `cache_get` alone).
    Cache {
        put: bool,
        key: usize,
        text: String,
    },
    /// `Store::resume_plan`.
    ResumePlan {
        run: usize,
    },
}

/// Run ids, and node ids within a run.
const RUNS: &[&str] = &["r0", "r1 ☃"];
const NODES: &[&str] = &["n0", "n1 ' %"];
const RUN_STATUSES: &[RunStatus] = &[
    RunStatus::Pending,
    RunStatus::Running,
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
];
const EXECUTION_STATUSES: &[ExecutionStatus] = &[
    ExecutionStatus::Queued,
    ExecutionStatus::Executing,
    ExecutionStatus::Completed,
    ExecutionStatus::Failed,
    ExecutionStatus::Skipped,
    ExecutionStatus::Cancelled,
];
/// Times a record may carry: nanoseconds (stored to the microsecond), either side of the
/// epoch, and far from it.
const TIMES: &[&str] = &[
    "2026-11-25T10:20:30.123456789Z",
    "1969-12-31T23:59:59.9999995Z",
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000001Z",
    "9999-12-31T23:59:59.999999999Z",
];
const DURATIONS: &[u64] = &[0, 1, i64::MAX as u64, u64::MAX];
const ATTEMPTS: &[u32] = &[0, 1, i32::MAX as u32, u32::MAX];

fn time(at: usize) -> chrono::DateTime<chrono::Utc> {
    TIMES[at].parse().expect("a time")
}

/// How many result-cache keys the operations use (each case its own).
const CACHE_KEYS: usize = 2;

/// Asset ids.
const ASSETS: &[&str] = &["a0", "a1 ☃", "a2"];

/// Sizes and numbers at the edges of what a column holds.
const SIZES: &[u64] = &[0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX];
const WIDTHS: &[Option<u32>] = &[
    None,
    Some(0),
    Some(640),
    Some(i32::MAX as u32),
    Some(u32::MAX),
];
const NUMBERS: &[f64] = &[
    0.0,
    -0.0,
    23.976,
    1e308,
    f64::MIN_POSITIVE,
    f64::NAN,
    f64::INFINITY,
    -1.0,
];

/// Users (the last one's id is awkward text itself).
const USERS: &[&str] = &["alice", "bob", "carol ☃ ' %"];
/// Workflow ids.
const WORKFLOWS: &[&str] = &["w0", "w1", "w2", "w 3 ☃"];

fn op() -> impl Strategy<Value = Op> {
    let user = 0..USERS.len();
    let workflow = 0..WORKFLOWS.len();
    prop_oneof![
        6 => (user.clone(), text(), prop::option::of(text()))
            .prop_map(|(user, email, first_name)| Op::UpsertUser { user, email, first_name }),
        1 => user.clone().prop_map(|user| Op::DeleteUser { user }),
        1 => user.clone().prop_map(|user| Op::GetUser { user }),
        4 => (user.clone(), workflow.clone(), text(), text()).prop_map(
            |(owner, workflow, name, document)| Op::Create { owner, workflow, name, document }
        ),
        2 => (user.clone(), workflow.clone()).prop_map(|(owner, workflow)| Op::Get { owner, workflow }),
        2 => (user.clone(), 0u32..5, 0u64..4)
            .prop_map(|(owner, limit, offset)| Op::List { owner, limit, offset }),
        3 => (user.clone(), workflow.clone(), prop::option::of(text()), prop::option::of(text()))
            .prop_map(|(owner, workflow, name, document)| Op::Update { owner, workflow, name, document }),
        1 => (user.clone(), workflow).prop_map(|(owner, workflow)| Op::Delete { owner, workflow }),
        4 => (
            0..ASSETS.len(),
            prop::option::of(user),
            text(),
            prop::sample::select(SIZES),
            prop::sample::select(WIDTHS),
            prop::sample::select(NUMBERS),
        )
            .prop_map(|(asset, owner, text, size, width, number)| Op::PutAsset { asset, owner, text, size, width, number }),
        3 => (0..ASSETS.len(), 0..USERS.len()).prop_map(|(asset, owner)| Op::PutPlainAsset { asset, owner }),
        1 => (0..ASSETS.len()).prop_map(|asset| Op::GetAsset { asset }),
        1 => (0..ASSETS.len()).prop_map(|asset| Op::DeleteAsset { asset }),
        3 => (any::<bool>(), 0..ASSETS.len(), 0..USERS.len())
            .prop_map(|(revoke, asset, user)| Op::Grant { revoke, asset, user }),
        2 => (0..USERS.len(), 0..ASSETS.len()).prop_map(|(owner, asset)| Op::GetOwnedAsset { owner, asset }),
        3 => (0..USERS.len(), 0u32..5, 0u64..2)
            .prop_map(|(owner, limit, offset)| Op::ListAssets { owner, limit, offset }),
        1 => (0..ASSETS.len()).prop_map(|asset| Op::AssetOwners { asset }),
        3 => (
            any::<bool>(),
            0..RUNS.len(),
            prop::option::of(0..WORKFLOWS.len()),
            0..RUN_STATUSES.len(),
            prop::option::of(text()),
            0..TIMES.len(),
        )
            .prop_map(|(update, run, workflow, status, error, at)| Op::SaveRun { update, run, workflow, status, error, at }),
        1 => (0..RUNS.len()).prop_map(|run| Op::GetRun { run }),
        5 => (
            0..RUNS.len(),
            0..NODES.len(),
            // Completed (index 2) the more often: a resume plan reuses those.
            prop_oneof![1 => Just(2usize), 2 => 0..EXECUTION_STATUSES.len()],
            text(),
            0..TIMES.len(),
            prop::sample::select(DURATIONS),
            prop::sample::select(ATTEMPTS),
        )
            .prop_map(|(run, node, status, text, at, duration_ms, attempts)| Op::SaveExecution {
                run, node, status, text, at, duration_ms, attempts,
            }),
        1 => (0..RUNS.len()).prop_map(|run| Op::Executions { run }),
        2 => (0..USERS.len(), 0..WORKFLOWS.len(), 0u32..4, 0u64..3)
            .prop_map(|(owner, workflow, limit, offset)| Op::History { owner, workflow, limit, offset }),
        2 => (any::<bool>(), 0..CACHE_KEYS, text()).prop_map(|(put, key, text)| Op::Cache { put, key, text }),
        3 => (0..RUNS.len()).prop_map(|run| Op::ResumePlan { run }),
    ]
}

/// An operation's outcome, without what differs by nature between backends (timestamps).
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Missing,
    User {
        id: String,
        email: String,
        first_name: Option<String>,
    },
    Workflow {
        id: String,
        owner: String,
        name: String,
        document: Value,
    },
    Listed(Vec<(String, String)>),
    /// An asset record, as JSON.
    Asset(Value),
    /// Run records, node executions or run history entries, as JSON.
    Records(Value),
    Deleted(bool),
    /// Whether a grant was new.
    Granted(bool),
    /// A resume plan: the run, its workflow, its target and the results it reuses.
    Plan(Value),
    Failed(ErrorKind),
}

/// A canvas document holding `text` where a client's text goes: its name, a node's label and
/// config, and a field of its own.
fn document(text: &str) -> Workflow {
    serde_json::from_value(json!({
        "name": text,
        "nodes": [{
            "id": "n1",
            "type": "Text",
            "position": { "x": 0, "y": 0 },
            "data": { "label": text, "config": { "content": text, "nested": [text, 1.5, null] } }
        }],
        "edges": [],
        "description": text
    }))
    .expect("a document")
}

/// Records as their JSON.
fn records(records: impl serde::Serialize) -> Outcome {
    Outcome::Records(serde_json::to_value(records).expect("records serialize"))
}

fn asset_outcome(asset: gatewai_core::FileAsset) -> Outcome {
    Outcome::Asset(serde_json::to_value(&asset).expect("an asset serializes"))
}

fn workflow_outcome(w: StoredWorkflow) -> Outcome {
    Outcome::Workflow {
        id: w.id,
        owner: w.owner_id,
        name: w.name,
        document: serde_json::to_value(&w.document).expect("a document serializes"),
    }
}

/// Applies `op` to `store`, for the users and workflows of `case` (ids of their own, so that
/// the cases share a database).
async fn apply(store: &Store, case: &str, op: &Op) -> Outcome {
    let user = |i: usize| format!("{case}{}", USERS[i]);
    let workflow = |i: usize| format!("{case}{}", WORKFLOWS[i]);
    let asset = |i: usize| format!("{case}{}", ASSETS[i]);
    let outcome = match op {
        Op::UpsertUser {
            user: u,
            email,
            first_name,
        } => {
            let mut new = NewUser::new(user(*u), email.clone());
            new.first_name = first_name.clone();
            store.upsert_user(&new).await.map(|u| Outcome::User {
                id: u.id,
                email: u.email,
                first_name: u.first_name,
            })
        }
        Op::DeleteUser { user: u } => store.delete_user(&user(*u)).await.map(|()| Outcome::Done),
        Op::GetUser { user: u } => store.get_user(&user(*u)).await.map(|u| match u {
            Some(u) => Outcome::User {
                id: u.id,
                email: u.email,
                first_name: u.first_name,
            },
            None => Outcome::Missing,
        }),
        Op::Create {
            owner,
            workflow: w,
            name,
            document: text,
        } => {
            let new = NewWorkflow {
                id: Some(workflow(*w)),
                name: name.clone(),
                document: document(text),
            };
            store
                .create_workflow(&user(*owner), new)
                .await
                .map(workflow_outcome)
        }
        Op::Get { owner, workflow: w } => store
            .get_workflow(&user(*owner), &workflow(*w))
            .await
            .map(|w| w.map_or(Outcome::Missing, workflow_outcome)),
        Op::List {
            owner,
            limit,
            offset,
        } => store
            .list_workflows(&user(*owner), Page::new(*limit, *offset))
            .await
            .map(|ws| Outcome::Listed(ws.into_iter().map(|w| (w.id, w.name)).collect())),
        Op::Update {
            owner,
            workflow: w,
            name,
            document: text,
        } => {
            let update = WorkflowUpdate {
                name: name.clone(),
                document: text.as_deref().map(document),
            };
            store
                .update_workflow(&user(*owner), &workflow(*w), update)
                .await
                .map(workflow_outcome)
        }
        Op::Delete { owner, workflow: w } => store
            .delete_workflow(&user(*owner), &workflow(*w))
            .await
            .map(|()| Outcome::Done),
        Op::PutAsset {
            asset: a,
            owner,
            text,
            size,
            width,
            number,
        } => {
            let record = gatewai_core::FileAsset {
                id: asset(*a),
                name: text.clone(),
                bucket: "media".into(),
                key: format!("{case}{a}.bin"),
                mime_type: text.clone(),
                size: *size,
                width: *width,
                height: width.map(|w| w / 2),
                fps: Some(*number),
                duration: Some(number.abs()),
                signed_url: Some(text.clone()),
                metadata: Some(json!({ "note": text, "n": [1, 2.5] })),
                ..Default::default()
            };
            let owner = owner.map(user);
            match store.put_asset_record(&record, owner.as_deref()).await {
                Ok(()) => store
                    .get_asset_record(&record.id)
                    .await
                    .map(|got| got.map_or(Outcome::Missing, asset_outcome)),
                Err(e) => Err(e),
            }
        }
        Op::PutPlainAsset { asset: a, owner } => {
            let record = gatewai_core::FileAsset {
                id: asset(*a),
                name: format!("plain {a}"),
                bucket: "media".into(),
                key: format!("{case}{a}.png"),
                mime_type: "image/png".into(),
                size: 10,
                ..Default::default()
            };
            store
                .put_asset_record(&record, Some(&user(*owner)))
                .await
                .map(|()| Outcome::Done)
        }
        Op::GetAsset { asset: a } => store
            .get_asset_record(&asset(*a))
            .await
            .map(|got| got.map_or(Outcome::Missing, asset_outcome)),
        Op::DeleteAsset { asset: a } => store
            .delete_asset_record(&asset(*a))
            .await
            .map(Outcome::Deleted),
        Op::Grant {
            revoke: false,
            asset: a,
            user: u,
        } => store
            .grant_asset(&asset(*a), &user(*u))
            .await
            .map(Outcome::Granted),
        Op::Grant {
            revoke: true,
            asset: a,
            user: u,
        } => store
            .revoke_asset(&asset(*a), &user(*u))
            .await
            .map(Outcome::Deleted),
        Op::GetOwnedAsset { owner, asset: a } => store
            .get_owned_asset(&user(*owner), &asset(*a))
            .await
            .map(|got| got.map_or(Outcome::Missing, asset_outcome)),
        Op::ListAssets {
            owner,
            limit,
            offset,
        } => store
            .list_assets(&user(*owner), Page::new(*limit, *offset))
            .await
            .map(|assets| Outcome::Listed(assets.into_iter().map(|a| (a.id, a.name)).collect())),
        Op::AssetOwners { asset: a } => store.asset_owners(&asset(*a)).await.map(|owners| {
            Outcome::Listed(owners.into_iter().map(|o| (o, String::new())).collect())
        }),
        Op::SaveRun {
            update,
            run,
            workflow: w,
            status,
            error,
            at,
        } => {
            let record = RunRecord {
                id: format!("{case}{}", RUNS[*run]),
                workflow_id: w.map(workflow),
                trigger_type: TriggerType::Manual,
                status: RUN_STATUSES[*status],
                error: error.clone(),
                created_at: time(*at),
                started_at: Some(time(*at)),
                finished_at: Some(time((*at + 1) % TIMES.len())),
                cache_scope: error.clone(),
            };
            let saved = match update {
                true => store.update_run(&record).await,
                false => store.save_run(&record).await,
            };
            match saved {
                Ok(()) => store.get_run(&record.id).await.map(records),
                Err(e) => Err(e),
            }
        }
        Op::GetRun { run } => store
            .get_run(&format!("{case}{}", RUNS[*run]))
            .await
            .map(records),
        Op::SaveExecution {
            run,
            node,
            status,
            text,
            at,
            duration_ms,
            attempts,
        } => {
            let run_id = format!("{case}{}", RUNS[*run]);
            let execution = NodeExecution {
                run_id: run_id.as_str().into(),
                node_id: NODES[*node].into(),
                node_type: "Text".into(),
                label: text.as_str().into(),
                status: EXECUTION_STATUSES[*status],
                input: Some(json!({ "in": [text, 2.5] }).into()),
                output: Some(std::sync::Arc::new(gatewai_core::NodeResult::single(
                    gatewai_core::Generation {
                        items: vec![gatewai_core::Item::text(text.as_str()).on("n:out")],
                    },
                ))),
                error: Some(text.clone()),
                cached: text.len() % 2 == 0,
                // (a resumed node's key comes with its result)
                cache_key: (text.len() % 3 == 0).then_some(CacheKey([text.len() as u8; 32])),
                started_at: Some(time(*at)),
                finished_at: None,
                duration_ms: Some(*duration_ms),
                attempts: *attempts,
            };
            match store.save_node_execution(&execution).await {
                Ok(()) => store.node_executions(&run_id).await.map(records),
                Err(e) => Err(e),
            }
        }
        Op::Executions { run } => store
            .node_executions(&format!("{case}{}", RUNS[*run]))
            .await
            .map(records),
        Op::Cache { put, key, text } => {
            // Each case's keys of its own: the cases share a database.
            let number = case.trim_start_matches('c').trim_end_matches('-');
            let mut bytes = [*key as u8; 32];
            bytes[..8].copy_from_slice(&number.parse::<u64>().unwrap_or(0).to_le_bytes());
            let key = CacheKey(bytes);
            let stored = match put {
                true => {
                    let generations = [gatewai_core::Generation {
                        items: vec![gatewai_core::Item::text(text.as_str()).on(text.as_str())],
                    }];
                    store.cache_put(&key, &generations).await
                }
                false => Ok(()),
            };
            match stored {
                Ok(()) => store.cache_get(&key).await.map(records),
                Err(e) => Err(e),
            }
        }
        Op::ResumePlan { run } => store
            .resume_plan(&format!("{case}{}", RUNS[*run]))
            .await
            .map(|plan| {
                let resumed: std::collections::BTreeMap<String, Value> = plan
                    .options
                    .resumed
                    .iter()
                    .map(|(node, r)| {
                        let key = r.cache_key.map(|k| k.to_hex());
                        let summary = json!({ "result": r.result, "key": key, "error": r.error });
                        (node.clone(), summary)
                    })
                    .collect();
                Outcome::Plan(json!({
                    "run": plan.run,
                    "workflow": plan.workflow.map(|w| (w.id, w.name, w.document)),
                    "target": format!("{:?}", plan.options.target),
                    "workflowId": plan.options.workflow_id,
                    "scope": plan.options.cache_scope,
                    "resumed": resumed,
                }))
            }),
        Op::History {
            owner,
            workflow: w,
            limit,
            offset,
        } => store
            .run_history(&user(*owner), &workflow(*w), Page::new(*limit, *offset))
            .await
            .map(|entries| {
                let entries: Vec<Value> = entries
                    .into_iter()
                    .map(|e| json!({ "run": e.run, "executions": e.executions }))
                    .collect();
                Outcome::Records(Value::Array(entries))
            }),
    };
    outcome.unwrap_or_else(|e| Outcome::Failed(e.kind()))
}

#[test]
fn every_backend_answers_generated_operations_as_the_memory_backend_does() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // One database per backend for every case: each case's ids carry its number.
    let (sqlite, postgres) = (Target::sqlite(), rt.block_on(Target::postgres()));
    let stores: Vec<(&str, Store)> = rt.block_on(async {
        let mut stores = vec![("sqlite", sqlite.open().await)];
        if let Some(pg) = &postgres {
            stores.push(("postgres", pg.open().await));
        }
        stores
    });
    let cases = AtomicUsize::new(0);
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let result = runner(128).run(&prop::collection::vec(op(), 1..80), |ops| {
        let case = format!("c{}-", cases.fetch_add(1, Ordering::Relaxed));
        rt.block_on(async {
            // A memory store of the case's own: the reference.
            let reference = Store::memory();
            for (at, op) in ops.iter().enumerate() {
                let expected = apply(&reference, &case, op).await;
                seen.lock().unwrap().insert(kind_of(&expected));
                for (name, store) in &stores {
                    let got = apply(store, &case, op).await;
                    prop_assert_eq!(
                        &got,
                        &expected,
                        "{} differs from memory at operation {} ({:?})",
                        name,
                        at,
                        op
                    );
                }
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The sequences reached every kind of outcome (else they compared little).
    let seen = seen.into_inner().unwrap();
    let wanted = [
        "done",
        "missing",
        "user",
        "workflow",
        "listed",
        "listed nothing",
        "failed NotFound",
        "failed Conflict",
        "asset",
        "deleted true",
        "deleted false",
        "granted true",
        "granted false",
        "plan",
        "plan reusing results",
        "failed InvalidInput",
        "records",
        "no record",
        "no records",
    ];
    for kind in wanted {
        assert!(seen.contains(kind), "no `{kind}` outcome in {seen:?}");
    }
}

/// What kind of outcome this is.
fn kind_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Done => "done".into(),
        Outcome::Missing => "missing".into(),
        Outcome::User { .. } => "user".into(),
        Outcome::Workflow { .. } => "workflow".into(),
        Outcome::Listed(list) if list.is_empty() => "listed nothing".into(),
        Outcome::Listed(_) => "listed".into(),
        Outcome::Asset(_) => "asset".into(),
        Outcome::Records(Value::Null) => "no record".into(),
        Outcome::Records(Value::Array(list)) if list.is_empty() => "no records".into(),
        Outcome::Records(_) => "records".into(),
        Outcome::Deleted(deleted) => format!("deleted {deleted}"),
        Outcome::Granted(granted) => format!("granted {granted}"),
        Outcome::Plan(plan) if plan["resumed"].as_object().is_some_and(|r| !r.is_empty()) => {
            "plan reusing results".into()
        }
        Outcome::Plan(_) => "plan".into(),
        Outcome::Failed(kind) => format!("failed {kind:?}"),
    }
}

/// Keeps every batch of events a run's observers get, and asks for cache keys (as the store's
/// recorder does).
#[derive(Default)]
struct Capture(std::sync::Mutex<Vec<Vec<gatewai_core::RunEvent>>>);

#[async_trait::async_trait]
impl gatewai_core::Observer for Capture {
    fn needs_cache_keys(&self) -> bool {
        true
    }

    async fn on_events(&self, events: &[gatewai_core::RunEvent]) -> gatewai_core::Result<()> {
        self.0.lock().unwrap().push(events.to_vec());
        Ok(())
    }
}

/// A generated run: its nodes (each `Sum`, or `Fail` (a [`common::Fails`]) with a message and whether it is
/// retryable), each fed by up to two earlier nodes; and where its events are cut into
/// batches, for each backend.
#[derive(Debug, Clone)]
struct GeneratedRun {
    nodes: Vec<GeneratedNode>,
    cuts: Vec<Vec<prop::sample::Index>>,
}

/// A node: `Fail` (its message, whether retryable) or `Sum` (`None`), and its parents' picks.
type GeneratedNode = (Option<(String, bool)>, Vec<prop::sample::Index>);

fn generated_run() -> impl Strategy<Value = GeneratedRun> {
    let node = (
        prop::option::weighted(0.3, (text(), any::<bool>())),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    );
    (
        prop::collection::vec(node, 1..12),
        prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 0..6), 3),
    )
        .prop_map(|(nodes, cuts)| GeneratedRun { nodes, cuts })
}

/// The run's document: node `n{i}` fed by the earlier nodes its indices pick.
fn run_document(run: &GeneratedRun, registry: &gatewai_core::NodeRegistry) -> Workflow {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (i, (fail, parents)) in run.nodes.iter().enumerate() {
        let id = format!("n{i}");
        let node = match fail {
            Some((message, retry)) => (
                id.clone(),
                "Fail",
                json!({ "message": message, "retry": retry }),
            ),
            None => (id.clone(), "Sum", json!({ "add": 1 })),
        };
        nodes.push(node);
        if i > 0 {
            let mut picked: Vec<usize> = parents.iter().map(|p| p.index(i)).collect();
            picked.sort_unstable();
            picked.dedup();
            edges.extend(picked.into_iter().map(|p| (format!("n{p}"), id.clone())));
        }
    }
    let nodes: Vec<(&str, &str, Value)> = nodes
        .iter()
        .map(|(id, ty, config)| (id.as_str(), *ty, config.clone()))
        .collect();
    let edges: Vec<(&str, &str)> = edges
        .iter()
        .map(|(s, t)| (s.as_str(), t.as_str()))
        .collect();
    common::workflow(registry, &nodes, &edges)
}

/// `events` cut into batches before the positions `cuts` pick (in order, none empty).
fn batches(
    events: &[gatewai_core::RunEvent],
    cuts: &[prop::sample::Index],
) -> Vec<Vec<gatewai_core::RunEvent>> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(events.len())).collect();
    at.push(0);
    at.push(events.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| events[w[0]..w[1]].to_vec()).collect()
}

#[test]
fn a_recorded_run_is_stored_alike_by_every_backend_however_its_events_are_batched() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (sqlite, postgres) = (Target::sqlite(), rt.block_on(Target::postgres()));
    let stores: Vec<(&str, Store)> = rt.block_on(async {
        let mut stores = vec![("memory", Store::memory()), ("sqlite", sqlite.open().await)];
        if let Some(pg) = &postgres {
            stores.push(("postgres", pg.open().await));
        }
        stores
    });
    let mut registry = common::registry(&common::Probes::default());
    registry
        .register(common::Fails(common::number_template("Fail")))
        .expect("registered");
    let capture = std::sync::Arc::new(Capture::default());
    let engine = gatewai_core::Engine::builder()
        .registry(registry)
        .observer(capture.clone())
        .retry_policy(gatewai_core::RetryPolicy {
            max_attempts: 2,
            initial_backoff: std::time::Duration::ZERO,
            multiplier: 1.0,
            max_backoff: std::time::Duration::ZERO,
            jitter: 0.0,
        })
        .build()
        .expect("an engine");
    let result = runner(48).run(&generated_run(), |run| {
        rt.block_on(async {
            let document = run_document(&run, engine.registry());
            let outcome = engine
                .run(document, gatewai_core::RunOptions::default())
                .await
                .expect("a run");
            let events: Vec<_> = std::mem::take(&mut *capture.0.lock().unwrap())
                .into_iter()
                .flatten()
                .collect();
            let run_id = outcome.run.id.clone();
            // The memory backend records the events in one batch; each database, cut its own
            // way into several.
            let mut stored: Vec<(&str, Value)> = Vec::new();
            for (k, (name, store)) in stores.iter().enumerate() {
                let cut = if k == 0 {
                    &[][..]
                } else {
                    &run.cuts[k % run.cuts.len()][..]
                };
                for batch in batches(&events, cut) {
                    store.record_events(&batch).await.expect("recorded");
                }
                let record = store.get_run(&run_id).await.expect("read");
                let executions = store.node_executions(&run_id).await.expect("read");
                stored.push((name, json!({ "run": record, "executions": executions })));
            }
            let (_, expected) = &stored[0];
            prop_assert_eq!(
                expected["executions"].as_array().map(Vec::len),
                Some(run.nodes.len())
            );
            for (name, got) in &stored[1..] {
                prop_assert_eq!(got, expected, "{} differs from memory", name);
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
