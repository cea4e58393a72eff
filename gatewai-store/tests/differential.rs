//! Generated sequences of user and workflow operations, with untrusted names, emails and
//! documents, applied to every backend in turn: each operation must have the same outcome on
//! SQLite (a real file) and PostgreSQL (when `GATEWAI_TEST_POSTGRES_URL` names a server) as on
//! the memory backend — the same workflows, names and documents, the same listings in the same
//! order, the same kind of error. The conformance suite checks chosen cases; this one looks
//! for the cases nobody thought of (a NUL in a name, an owner scope crossed by an id taken
//! twice, ties in the listing order).
//!
//! The cases are the same on every run (a fixed seed). `GATEWAI_FUZZ_CASES=500` runs more,
//! `GATEWAI_FUZZ_SEED=random` draws a fresh seed; a failure prints the smallest sequence
//! proptest found that still fails.

mod common;

use common::Target;
use gatewai_core::Workflow;
use gatewai_store::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
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
    GetAsset {
        asset: usize,
    },
    DeleteAsset {
        asset: usize,
    },
}

/// Asset ids.
const ASSETS: &[&str] = &["a0", "a1 ☃"];

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
        3 => (user.clone(), text(), prop::option::of(text()))
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
        2 => (
            0..ASSETS.len(),
            prop::option::of(user),
            text(),
            prop::sample::select(SIZES),
            prop::sample::select(WIDTHS),
            prop::sample::select(NUMBERS),
        )
            .prop_map(|(asset, owner, text, size, width, number)| Op::PutAsset { asset, owner, text, size, width, number }),
        1 => (0..ASSETS.len()).prop_map(|asset| Op::GetAsset { asset }),
        1 => (0..ASSETS.len()).prop_map(|asset| Op::DeleteAsset { asset }),
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
    Deleted(bool),
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
                id: format!("{case}{}", ASSETS[*a]),
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
        Op::GetAsset { asset: a } => store
            .get_asset_record(&format!("{case}{}", ASSETS[*a]))
            .await
            .map(|got| got.map_or(Outcome::Missing, asset_outcome)),
        Op::DeleteAsset { asset: a } => store
            .delete_asset_record(&format!("{case}{}", ASSETS[*a]))
            .await
            .map(Outcome::Deleted),
    };
    outcome.unwrap_or_else(|e| Outcome::Failed(e.kind()))
}

/// A runner with `cases` cases (or `GATEWAI_FUZZ_CASES`), seeded as the module docs say.
fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("GATEWAI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var("GATEWAI_FUZZ_SEED").as_deref() == Ok("random") {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
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
    let result = runner(48).run(&prop::collection::vec(op(), 1..40), |ops| {
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
        Outcome::Deleted(deleted) => format!("deleted {deleted}"),
        Outcome::Failed(kind) => format!("failed {kind:?}"),
    }
}
