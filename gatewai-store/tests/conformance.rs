//! One conformance suite, run against every backend: memory, SQLite on a temp file and
//! PostgreSQL on the server `GATEWAI_TEST_POSTGRES_URL` names (skipped with a note when it is
//! unset, failed when it is unset under `CI=true`).

mod common;

use chrono::{Duration as ChronoDuration, SubsecRound, Utc};
use common::{Probes, Target, chain, eventually, number_of, registry, workflow};
use gatewai_core::{
    CacheKey, Engine, EventKind, ExecutionStatus, Generation, Item, NodeExecution, NodeResult,
    ResultSource, RunEvent, RunOptions, RunRecord, RunStatus, TriggerType,
};
use gatewai_store::prelude::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A module `$module` (compiled when `$cfg` holds) of one test per function, each run against
/// the target `$target` gives (`None`: skipped).
macro_rules! per_backend {
    ($module:ident, $cfg:meta, $target:expr, $($test:ident),* $(,)?) => {
        #[cfg($cfg)]
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(target) = $target {
                        super::$test(&target).await;
                    }
                }
            )*
        }
    };
}

/// Generates one test per (backend, conformance function).
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        per_backend!(memory, feature = "memory", Some(super::Target::memory()), $($test),*);
        per_backend!(sqlite, feature = "sqlite", Some(super::Target::sqlite()), $($test),*);
        per_backend!(postgres, all(), super::Target::postgres().await, $($test),*);
    };
}

conformance!(
    users_and_workflows_crud,
    workflows_are_scoped_by_owner,
    deletes_cascade,
    run_history_is_paged_newest_first,
    node_executions_round_trip,
    recorder_persists_an_engine_run,
    concurrent_runs_record_everything,
    crashed_run_is_found_and_resumed_without_re_executing,
    a_node_edited_before_the_resume_executes_again,
    a_scoped_run_resumes_in_its_scope,
    crashed_run_can_be_marked_interrupted,
    a_resumed_run_keeps_its_reusable_results_until_it_records_them,
    store_cache_survives_reopening,
    asset_records_round_trip,
    assets_are_scoped_by_their_owners,
    concurrent_grants_of_one_asset_all_hold,
    grants_racing_deletes_name_what_is_missing,
    the_owner_an_asset_was_stored_for_becomes_its_first_owner_on_migration,
    malformed_json_is_an_error,
    json_with_nul_characters_round_trips,
    text_with_nul_characters_is_stored_and_ids_with_them_are_refused,
    run_history_lists_each_run_with_its_own_executions,
    a_resumed_node_keeps_the_error_it_continued_with,
    pruning_deletes_ended_runs_by_age_then_by_count,
    pruning_many_runs_spans_several_statements,
    pruning_deletes_old_and_surplus_cache_entries,
);

fn doc(label: &str) -> gatewai_core::Workflow {
    let mut wf = chain(&registry(&Probes::default()), 2);
    wf.extra.insert("description".into(), json!(label));
    wf
}

async fn with_users(store: &Store) {
    store
        .upsert_user(&NewUser::new("alice", "alice@example.com"))
        .await
        .unwrap();
    store
        .upsert_user(&NewUser::new("bob", "bob@example.com"))
        .await
        .unwrap();
}

fn run_record(id: &str, workflow_id: Option<&str>, minutes_ago: i64) -> RunRecord {
    let at = (Utc::now() - ChronoDuration::minutes(minutes_ago)).trunc_subsecs(6);
    RunRecord {
        id: id.to_owned(),
        workflow_id: workflow_id.map(str::to_owned),
        trigger_type: TriggerType::Api,
        status: RunStatus::Running,
        error: None,
        created_at: at,
        started_at: Some(at),
        finished_at: None,
        cache_scope: None,
    }
}

fn execution(run_id: &str, node_id: &str, value: f64) -> NodeExecution {
    let now = Utc::now().trunc_subsecs(6);
    NodeExecution {
        run_id: run_id.into(),
        node_id: node_id.into(),
        node_type: "Sum".into(),
        label: format!("Sum {node_id}").into(),
        status: ExecutionStatus::Completed,
        input: Some(json!({"in": [value - 1.0]}).into()),
        output: Some(Arc::new(NodeResult::single(Generation {
            items: vec![Item::number(value).on(format!("{node_id}:out"))],
        }))),
        error: None,
        cached: false,
        started_at: Some(now),
        finished_at: Some(now),
        duration_ms: Some(3),
        attempts: 1,
        cache_key: Some(gatewai_core::CacheKey([value as u8; 32])),
    }
}

async fn users_and_workflows_crud(target: &Target) {
    let store = target.open().await;
    let alice = store
        .upsert_user(&NewUser::new("alice", "a@example.com"))
        .await
        .unwrap();
    assert_eq!(alice.email, "a@example.com");
    let mut renamed = NewUser::new("alice", "alice@example.com");
    renamed.first_name = Some("Alice".into());
    let alice2 = store.upsert_user(&renamed).await.unwrap();
    assert_eq!(alice2.email, "alice@example.com");
    assert_eq!(alice2.first_name.as_deref(), Some("Alice"));
    assert_eq!(alice2.created_at, alice.created_at);
    assert_eq!(store.get_user("alice").await.unwrap().unwrap(), alice2);
    assert!(store.get_user("nobody").await.unwrap().is_none());

    let created = store
        .create_workflow("alice", NewWorkflow::new("First", doc("one")))
        .await
        .unwrap();
    assert_eq!(created.owner_id, "alice");
    assert_eq!(created.document.id.as_deref(), Some(created.id.as_str()));
    let fetched = store
        .get_workflow("alice", &created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched, created, "a workflow reads back as it was stored");
    assert_eq!(fetched.document.extra["description"], json!("one"));
    assert_eq!(fetched.document.nodes.len(), 2);

    // Update name and document.
    let updated = store
        .update_workflow(
            "alice",
            &created.id,
            WorkflowUpdate {
                name: Some("Renamed".into()),
                document: Some(doc("two")),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.document.name.as_deref(), Some("Renamed"));
    assert_eq!(updated.document.extra["description"], json!("two"));
    assert!(updated.updated_at >= created.updated_at);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(
        store
            .get_workflow("alice", &created.id)
            .await
            .unwrap()
            .unwrap(),
        updated
    );
    // A name-only update keeps the document.
    let renamed = store
        .update_workflow(
            "alice",
            &created.id,
            WorkflowUpdate {
                name: Some("Again".into()),
                document: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.document.extra["description"], json!("two"));

    // Chosen ids, conflicts, missing owners.
    let chosen = store
        .create_workflow(
            "alice",
            NewWorkflow::new("Chosen", doc("c")).with_id("wf-chosen"),
        )
        .await
        .unwrap();
    assert_eq!(chosen.id, "wf-chosen");
    let dup = store
        .create_workflow(
            "alice",
            NewWorkflow::new("Dup", doc("d")).with_id("wf-chosen"),
        )
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict, "{dup}");
    let orphan = store
        .create_workflow("nobody", NewWorkflow::new("X", doc("x")))
        .await
        .unwrap_err();
    assert_eq!(orphan.kind(), ErrorKind::NotFound, "{orphan}");
    let empty = store
        .create_workflow("alice", NewWorkflow::new("X", doc("x")).with_id(""))
        .await
        .unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::InvalidInput, "{empty}");

    // Listing: most recently updated first, paged.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .update_workflow(
            "alice",
            &created.id,
            WorkflowUpdate {
                name: Some("Newest".into()),
                document: None,
            },
        )
        .await
        .unwrap();
    let all = store
        .list_workflows("alice", Page::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
        ["Newest", "Chosen"]
    );
    let first = store.list_workflows("alice", Page::first(1)).await.unwrap();
    let second = store
        .list_workflows("alice", Page::first(1).next())
        .await
        .unwrap();
    assert_eq!(first[0].name, "Newest");
    assert_eq!(second[0].name, "Chosen");
    assert!(
        store
            .list_workflows("alice", Page::new(10, 2))
            .await
            .unwrap()
            .is_empty()
    );

    // Delete.
    store.delete_workflow("alice", &created.id).await.unwrap();
    assert!(
        store
            .get_workflow("alice", &created.id)
            .await
            .unwrap()
            .is_none()
    );
    let again = store
        .delete_workflow("alice", &created.id)
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NotFound);
    let gone = store
        .update_workflow("alice", &created.id, WorkflowUpdate::default())
        .await
        .unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound);
    store.close().await;
}

async fn workflows_are_scoped_by_owner(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Alice's", doc("private")))
        .await
        .unwrap();
    store
        .save_run(&run_record("run-a", Some(&wf.id), 1))
        .await
        .unwrap();

    // Bob sees nothing of Alice's, exactly as if it did not exist.
    assert!(store.get_workflow("bob", &wf.id).await.unwrap().is_none());
    assert!(
        store
            .list_workflows("bob", Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    let update = store
        .update_workflow(
            "bob",
            &wf.id,
            WorkflowUpdate {
                name: Some("stolen".into()),
                document: Some(doc("overwritten")),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(update.kind(), ErrorKind::NotFound);
    assert!(
        matches!(&update, Error::NotFound { entity: "workflow", id } if *id == wf.id),
        "{update}"
    );
    let delete = store.delete_workflow("bob", &wf.id).await.unwrap_err();
    assert_eq!(delete.kind(), ErrorKind::NotFound);
    let history = store
        .run_history("bob", &wf.id, Page::default())
        .await
        .unwrap_err();
    assert_eq!(history.kind(), ErrorKind::NotFound);
    assert!(store.get_run_entry("bob", "run-a").await.unwrap().is_none());

    // Alice's workflow is untouched.
    let still = store.get_workflow("alice", &wf.id).await.unwrap().unwrap();
    assert_eq!(still, wf);
    assert_eq!(
        store
            .list_workflows("alice", Page::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let entry = store
        .get_run_entry("alice", "run-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.run.id, "run-a");
    store.close().await;
}

async fn deletes_cascade(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let wf1 = store
        .create_workflow("alice", NewWorkflow::new("One", doc("1")))
        .await
        .unwrap();
    let wf2 = store
        .create_workflow("alice", NewWorkflow::new("Two", doc("2")))
        .await
        .unwrap();
    let bobs = store
        .create_workflow("bob", NewWorkflow::new("Bob's", doc("b")))
        .await
        .unwrap();
    for (run, wf) in [("r1", &wf1), ("r2", &wf1), ("r3", &wf2), ("rb", &bobs)] {
        store
            .save_run(&run_record(run, Some(&wf.id), 1))
            .await
            .unwrap();
        store
            .save_node_execution(&execution(run, "n0", 1.0))
            .await
            .unwrap();
    }
    // A run of a document that is not stored is kept without a workflow.
    store
        .save_run(&run_record("adhoc", Some("not-stored"), 1))
        .await
        .unwrap();
    assert_eq!(
        store.get_run("adhoc").await.unwrap().unwrap().workflow_id,
        None
    );

    // Deleting a workflow takes its runs and their executions.
    store.delete_workflow("alice", &wf1.id).await.unwrap();
    for run in ["r1", "r2"] {
        assert!(store.get_run(run).await.unwrap().is_none(), "{run}");
        assert!(
            store.node_executions(run).await.unwrap().is_empty(),
            "{run}"
        );
    }
    assert!(store.get_run("r3").await.unwrap().is_some());

    // Deleting a user takes their workflows, runs and executions.
    store.delete_user("alice").await.unwrap();
    assert!(store.get_user("alice").await.unwrap().is_none());
    assert!(
        store
            .get_workflow("alice", &wf2.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.get_run("r3").await.unwrap().is_none());
    assert!(store.node_executions("r3").await.unwrap().is_empty());
    // Bob's things and the ad-hoc run stay.
    assert!(store.get_workflow("bob", &bobs.id).await.unwrap().is_some());
    assert_eq!(store.node_executions("rb").await.unwrap().len(), 1);
    assert!(store.get_run("adhoc").await.unwrap().is_some());
    let missing = store.delete_user("alice").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    store.close().await;
}

async fn run_history_is_paged_newest_first(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let wf = store
        .create_workflow("alice", NewWorkflow::new("History", doc("h")))
        .await
        .unwrap();
    let other = store
        .create_workflow("alice", NewWorkflow::new("Other", doc("o")))
        .await
        .unwrap();
    // Seven runs, run-0 the oldest; each with executions of its own.
    for i in 0..7 {
        let id = format!("run-{i}");
        store
            .save_run(&run_record(&id, Some(&wf.id), 100 - i))
            .await
            .unwrap();
        for n in 0..=(i % 3) {
            store
                .save_node_execution(&execution(&id, &format!("n{n}"), n as f64))
                .await
                .unwrap();
        }
    }
    store
        .save_run(&run_record("other-run", Some(&other.id), 0))
        .await
        .unwrap();

    let page1 = store
        .run_history("alice", &wf.id, Page::first(3))
        .await
        .unwrap();
    let page2 = store
        .run_history("alice", &wf.id, Page::first(3).next())
        .await
        .unwrap();
    let page3 = store
        .run_history("alice", &wf.id, Page::first(3).next().next())
        .await
        .unwrap();
    let ids = |page: &[RunHistoryEntry]| page.iter().map(|e| e.run.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&page1), ["run-6", "run-5", "run-4"]);
    assert_eq!(ids(&page2), ["run-3", "run-2", "run-1"]);
    assert_eq!(ids(&page3), ["run-0"]);
    for entry in page1.iter().chain(&page2).chain(&page3) {
        let i: usize = entry.run.id[4..].parse().unwrap();
        let nodes: Vec<&str> = entry.executions.iter().map(|e| &*e.node_id).collect();
        let expected: Vec<String> = (0..=(i % 3)).map(|n| format!("n{n}")).collect();
        assert_eq!(nodes, expected, "executions of {} in order", entry.run.id);
        assert!(entry.executions.iter().all(|e| *e.run_id == *entry.run.id));
    }
    assert_eq!(
        page1[0].run,
        run_record("run-6", Some(&wf.id), 94).clone_with(&page1[0].run)
    );
    let beyond = store
        .run_history("alice", &wf.id, Page::new(3, 50))
        .await
        .unwrap();
    assert!(beyond.is_empty());
    store.close().await;
}

/// Compares everything but the timestamp a helper made at a slightly different moment.
trait SameRun {
    fn clone_with(self, stored: &RunRecord) -> RunRecord;
}

impl SameRun for RunRecord {
    fn clone_with(mut self, stored: &RunRecord) -> RunRecord {
        self.created_at = stored.created_at;
        self.started_at = stored.started_at;
        self
    }
}

async fn node_executions_round_trip(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Exec", doc("e")))
        .await
        .unwrap();
    let mut run = run_record("run-x", Some(&wf.id), 0);
    store.save_run(&run).await.unwrap();
    assert_eq!(store.get_run("run-x").await.unwrap().unwrap(), run);

    let mut failed = execution("run-x", "b", 2.0);
    failed.status = ExecutionStatus::Failed;
    failed.output = None;
    failed.error = Some("input `in`: boom".into());
    failed.attempts = 3;
    failed.cached = true;
    let ok = execution("run-x", "a", 1.0);
    store.save_node_execution(&ok).await.unwrap();
    store.save_node_execution(&failed).await.unwrap();
    assert_eq!(
        store.node_executions("run-x").await.unwrap(),
        vec![ok.clone(), failed.clone()]
    );
    // Saving again replaces the row and keeps its place.
    let mut retried = ok.clone();
    retried.attempts = 2;
    store.save_node_execution(&retried).await.unwrap();
    assert_eq!(
        store.node_executions("run-x").await.unwrap(),
        vec![retried, failed]
    );
    let orphan = store
        .save_node_execution(&execution("no-such-run", "a", 1.0))
        .await
        .unwrap_err();
    assert_eq!(orphan.kind(), ErrorKind::NotFound, "{orphan}");

    run.status = RunStatus::Failed;
    run.error = Some("node b failed".into());
    run.finished_at = Some(Utc::now().trunc_subsecs(6));
    store.update_run(&run).await.unwrap();
    assert_eq!(store.get_run("run-x").await.unwrap().unwrap(), run);
    let missing = store
        .update_run(&run_record("nope", None, 0))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    // Numbers read back exactly as they were written (a resumed run hashes the values it
    // reads back into its nodes' keys: one bit off, and a paid node runs again). serde_json's
    // default float parsing misses about one value in seven of these by one unit.
    let floats: Vec<f64> = (1..400)
        .map(|i| f64::from(i) * 0.1 / 3.0)
        .chain([0.9333333333333335, 1e-300, 5e-324, f64::MAX, -0.1])
        .collect();
    let mut precise = execution("run-x", "c", 3.0);
    precise.output = Some(Arc::new(NodeResult::single(Generation {
        items: floats
            .iter()
            .map(|f| Item::number(*f).on("c:out"))
            .collect(),
    })));
    store.save_node_execution(&precise).await.unwrap();
    let read = store.node_executions("run-x").await.unwrap();
    let back = read.iter().find(|e| &*e.node_id == "c").unwrap();
    let values: Vec<f64> = back.output.as_ref().unwrap().outputs[0]
        .items
        .iter()
        .map(|item| item.to_item().as_f64().unwrap())
        .collect();
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&values), bits(&floats));
    store.close().await;
}

async fn recorder_persists_an_engine_run(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let probes = Probes::default();
    let reg = registry(&probes);
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Chain", chain(&reg, 6)))
        .await
        .unwrap();
    let recorder = store.recorder();
    let engine = Engine::builder()
        .no_cache()
        .registry(reg)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let outcome = engine
        .run(wf.document.clone(), for_workflow(&wf))
        .await
        .unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(recorder.failures(), 0, "{:?}", recorder.last_error());

    // The run returned after observers handled RunFinished: everything is stored.
    let history = store
        .run_history("alice", &wf.id, Page::default())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let entry = &history[0];
    assert_eq!(entry.run.id, outcome.run.id);
    assert_eq!(entry.run.status, RunStatus::Completed);
    assert_eq!(entry.run.trigger_type, TriggerType::Manual);
    assert!(entry.run.finished_at.is_some());
    let nodes: Vec<&str> = entry.executions.iter().map(|e| &*e.node_id).collect();
    assert_eq!(nodes, ["n0", "n1", "n2", "n3", "n4", "n5"], "queue order");
    for (stored, reported) in entry.executions.iter().zip(&outcome.executions) {
        assert_eq!(stored.status, ExecutionStatus::Completed);
        assert_eq!(&*stored.node_type, "Sum");
        assert_eq!(stored.output, reported.output, "{}", stored.node_id);
        assert_eq!(stored.attempts, reported.attempts);
        assert_eq!(stored.duration_ms, reported.duration_ms);
        assert!(stored.started_at.is_some() && stored.finished_at.is_some());
    }
    assert_eq!(
        number_of(entry.executions[5].output.as_ref().unwrap()),
        Some(6.0)
    );
    assert!(store.find_interrupted_runs().await.unwrap().is_empty());

    // Bob runs a copy of Alice's canvas (it carries her workflow's id): his run is an ad-hoc
    // run, never filed under her workflow, so she neither sees it nor deletes it.
    let mut copy = wf.document.clone();
    assert_eq!(copy.id.as_deref(), Some(wf.id.as_str()));
    copy.nodes[0].config = json!({"add": 1000});
    let bobs = engine.run(copy, RunOptions::default()).await.unwrap();
    assert_eq!(bobs.run.workflow_id, None);
    let stored = store.get_run(&bobs.run.id).await.unwrap().unwrap();
    assert_eq!(stored.workflow_id, None);
    let history = store
        .run_history("alice", &wf.id, Page::default())
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|e| &e.run.id).collect::<Vec<_>>(),
        [&outcome.run.id]
    );
    store.close().await;
}

/// Options for a run of a stored workflow: the host names it (a document's own `id` is never
/// trusted for this).
/// Runs the stored workflow once (no result cache) with the store's recorder.
async fn recorded_run(
    store: &Store,
    reg: gatewai_core::NodeRegistry,
    wf: &StoredWorkflow,
) -> (gatewai_core::RunOutcome, Arc<RunRecorder>) {
    let recorder = store.recorder();
    let engine = Engine::builder()
        .no_cache()
        .registry(reg)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let outcome = engine
        .run(wf.document.clone(), for_workflow(wf))
        .await
        .unwrap();
    (outcome, recorder)
}

fn for_workflow(wf: &StoredWorkflow) -> RunOptions {
    RunOptions {
        workflow_id: Some(wf.id.clone()),
        ..RunOptions::default()
    }
}

async fn concurrent_runs_record_everything(target: &Target) {
    const RUNS: usize = 24;
    const NODES: usize = 25;
    let store = target.open().await;
    with_users(&store).await;
    let probes = Probes::default();
    let reg = registry(&probes);
    // A wide workflow: one source feeding NODES - 1 parallel nodes.
    let ids: Vec<String> = (0..NODES).map(|i| format!("n{i}")).collect();
    let nodes: Vec<(&str, &str, serde_json::Value)> = ids
        .iter()
        .map(|id| (id.as_str(), "Sum", json!({"add": 1})))
        .collect();
    let edges: Vec<(&str, &str)> = ids[1..].iter().map(|t| ("n0", t.as_str())).collect();
    let document = workflow(&reg, &nodes, &edges);
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Wide", document))
        .await
        .unwrap();
    let recorder = store.recorder();
    let engine = Engine::builder()
        .no_cache()
        .registry(reg)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..RUNS {
        let engine = engine.clone();
        let (document, options) = (wf.document.clone(), for_workflow(&wf));
        runs.spawn(async move { engine.run(document, options).await });
    }
    let mut ids = Vec::new();
    while let Some(outcome) = runs.join_next().await {
        let outcome = outcome.unwrap().unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed);
        ids.push(outcome.run.id);
    }
    assert_eq!(
        recorder.failures(),
        0,
        "no batch lost: {:?}",
        recorder.last_error()
    );
    assert_eq!(probes.counts.total(), RUNS * NODES);
    let history = store
        .run_history("alice", &wf.id, Page::first(100))
        .await
        .unwrap();
    assert_eq!(history.len(), RUNS);
    for entry in &history {
        assert!(ids.contains(&entry.run.id));
        assert_eq!(entry.run.status, RunStatus::Completed, "{}", entry.run.id);
        assert_eq!(entry.executions.len(), NODES, "{}", entry.run.id);
        assert!(
            entry
                .executions
                .iter()
                .all(|e| e.status == ExecutionStatus::Completed && e.output.is_some())
        );
    }
    store.close().await;
}

/// Starts a run of `a → b → gate → c` on a runtime of its own (a process), waits until the
/// store shows `a` and `b` completed and `gate` executing, then kills that runtime mid-run
/// (a crash: no RunFinished, no cleanup). Returns the workflow id and the run id.
async fn crash_mid_run(target: &Target, probes: &Probes) -> (String, String) {
    crash_mid_scoped_run(target, probes, None).await
}

/// [`crash_mid_run`], the run in cache scope `scope`.
async fn crash_mid_scoped_run(
    target: &Target,
    probes: &Probes,
    scope: Option<&str>,
) -> (String, String) {
    let store = target.open().await;
    with_users(&store).await;
    let reg = registry(probes);
    let document = workflow(
        &reg,
        &[
            ("a", "Sum", json!({"add": 1})),
            ("b", "Sum", json!({"add": 10})),
            ("gate", "Gate", json!({})),
            ("c", "Sum", json!({"add": 100})),
        ],
        &[("a", "b"), ("b", "gate"), ("gate", "c")],
    );
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Crashy", document))
        .await
        .unwrap();
    let run_id = format!("run-{}", uuid::Uuid::new_v4());

    let process = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    {
        // The crashing process has its own connections (the memory backend: the same store).
        let (url, shared) = (
            target.url.clone(),
            (target.name == "memory").then(|| store.clone()),
        );
        let (document, run_id, reg) = (wf.document.clone(), run_id.clone(), registry(probes));
        let (workflow_id, cache_scope) = (wf.id.clone(), scope.map(str::to_owned));
        process.spawn(async move {
            let store = match shared {
                Some(store) => store,
                None => Store::open(&url).await.unwrap(),
            };
            let engine = Engine::builder()
                .no_cache()
                .registry(reg)
                .observer(store.recorder())
                .build()
                .unwrap();
            let options = RunOptions {
                run_id: Some(run_id),
                workflow_id: Some(workflow_id),
                cache_scope,
                ..RunOptions::default()
            };
            let _ = engine.run(document, options).await;
        });
    }
    eventually("a, b completed, the gate executing, c queued", || async {
        let executions = store.node_executions(&run_id).await.unwrap();
        let status = |id: &str| {
            executions
                .iter()
                .find(|e| *e.node_id == *id)
                .map(|e| e.status)
        };
        status("a") == Some(ExecutionStatus::Completed)
            && status("b") == Some(ExecutionStatus::Completed)
            && status("gate") == Some(ExecutionStatus::Executing)
            && status("c") == Some(ExecutionStatus::Queued)
    })
    .await;
    // The crash. Waited for: the crashed process's tasks must be gone before the test opens
    // the gate, or its own gate node could finish and its run go on recording.
    tokio::task::spawn_blocking(move || {
        process.shutdown_timeout(std::time::Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert_eq!(probes.gate_runs.load(Ordering::SeqCst), 1);
    assert_eq!(probes.counts.of("c"), 0);
    store.close().await;
    (wf.id, run_id)
}

/// Resumes the run [`crash_mid_run`] left behind, as the next process does: its gate open,
/// recorded into `store`.
async fn resume_with_the_gate_open(
    store: &Store,
    probes: &Probes,
    plan: ResumePlan,
) -> (gatewai_core::RunOutcome, Arc<RunRecorder>) {
    probes.gate_open.store(true, Ordering::SeqCst);
    let recorder = store.recorder();
    let engine = Engine::builder()
        .no_cache()
        .registry(registry(probes))
        .observer(recorder.clone())
        .build()
        .unwrap();
    let document = plan.workflow.expect("the run's workflow").document;
    let outcome = engine.run(document, plan.options).await.unwrap();
    (outcome, recorder)
}

async fn crashed_run_is_found_and_resumed_without_re_executing(target: &Target) {
    let probes = Probes::default();
    let (workflow_id, run_id) = crash_mid_run(target, &probes).await;

    // A new process starts.
    let store = target.open().await;
    let interrupted = store.find_interrupted_runs().await.unwrap();
    assert_eq!(
        interrupted
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        [run_id.as_str()]
    );
    let before = interrupted[0].clone();
    assert_eq!(before.status, RunStatus::Running);

    let plan = store.resume_plan(&run_id).await.unwrap();
    assert_eq!(plan.options.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(plan.options.trigger, TriggerType::Resume);
    let mut resumed: Vec<&str> = plan.options.resumed.keys().map(String::as_str).collect();
    resumed.sort();
    assert_eq!(resumed, ["a", "b"], "only completed nodes are reused");
    let (outcome, recorder) = resume_with_the_gate_open(&store, &probes, plan).await;
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(outcome.run.id, run_id);
    // Completed nodes were not executed again; the rest ran once more.
    assert_eq!(probes.counts.of("a"), 1);
    assert_eq!(probes.counts.of("b"), 1);
    assert_eq!(probes.gate_runs.load(Ordering::SeqCst), 2);
    assert_eq!(probes.counts.of("c"), 1);
    assert_eq!(number_of(&outcome.results["c"]), Some(111.0));
    assert_eq!(recorder.failures(), 0, "{:?}", recorder.last_error());

    // The store holds one run, finished, with its original creation time.
    assert!(store.find_interrupted_runs().await.unwrap().is_empty());
    let history = store
        .run_history("alice", &workflow_id, Page::default())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    let entry = &history[0];
    assert_eq!(entry.run.status, RunStatus::Completed);
    assert_eq!(entry.run.trigger_type, TriggerType::Resume);
    assert_eq!(entry.run.created_at, before.created_at);
    assert!(
        entry
            .executions
            .iter()
            .all(|e| e.status == ExecutionStatus::Completed),
        "{:?}",
        entry.executions
    );
    assert_eq!(entry.executions.len(), 4);
    store.close().await;
}

/// The canvas edited between the crash and the resume: the edited node's recorded result is
/// stale (its key changed), so it executes again, and so does what it feeds; the node whose
/// key is unchanged is still reused (no paid call twice).
async fn a_node_edited_before_the_resume_executes_again(target: &Target) {
    let probes = Probes::default();
    let (workflow_id, run_id) = crash_mid_run(target, &probes).await;
    let store = target.open().await;
    // Every stored execution carries the key it ran with.
    let recorded = store.node_executions(&run_id).await.unwrap();
    for e in recorded
        .iter()
        .filter(|e| e.status == ExecutionStatus::Completed)
    {
        assert!(e.cache_key.is_some(), "{}: {e:?}", e.node_id);
    }
    let mut wf = store
        .get_workflow("alice", &workflow_id)
        .await
        .unwrap()
        .unwrap();
    let b = wf.document.nodes.iter_mut().find(|n| n.id == "b").unwrap();
    b.config = json!({"add": 20});
    store
        .update_workflow(
            "alice",
            &workflow_id,
            WorkflowUpdate {
                document: Some(wf.document),
                ..WorkflowUpdate::default()
            },
        )
        .await
        .unwrap();

    let plan = store.resume_plan(&run_id).await.unwrap();
    for id in ["a", "b"] {
        let resumed = &plan.options.resumed[id];
        let stored = recorded.iter().find(|e| &*e.node_id == id).unwrap();
        assert_eq!(resumed.cache_key, stored.cache_key, "{id}");
    }
    let (outcome, recorder) = resume_with_the_gate_open(&store, &probes, plan).await;
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.run.error
    );
    assert_eq!(probes.counts.of("a"), 1, "a unchanged: reused");
    assert_eq!(probes.counts.of("b"), 2, "b edited: executed again");
    assert_eq!(probes.counts.of("c"), 1);
    assert_eq!(number_of(&outcome.results["b"]), Some(21.0));
    assert_eq!(number_of(&outcome.results["c"]), Some(121.0), "not 111");
    assert_eq!(recorder.failures(), 0, "{:?}", recorder.last_error());
    // The stored record of `b` is its new execution, with its new key.
    let stored = store.node_executions(&run_id).await.unwrap();
    let key = |rows: &[NodeExecution], id: &str| {
        rows.iter()
            .find(|e| &*e.node_id == id)
            .and_then(|e| e.cache_key)
    };
    assert_eq!(key(&stored, "a"), key(&recorded, "a"));
    assert_ne!(key(&stored, "b"), key(&recorded, "b"));
    let b = stored.iter().find(|e| &*e.node_id == "b").unwrap();
    assert!(!b.cached, "{b:?}");
    store.close().await;
}

/// A run in a cache scope (a user's) resumes in that scope: the store keeps the scope with the
/// run and hands it back, so the keys of the completed nodes match and they are reused.
async fn a_scoped_run_resumes_in_its_scope(target: &Target) {
    let probes = Probes::default();
    let (_, run_id) = crash_mid_scoped_run(target, &probes, Some("alice")).await;
    let store = target.open().await;
    let run = store.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(run.cache_scope.as_deref(), Some("alice"));
    let plan = store.resume_plan(&run_id).await.unwrap();
    assert_eq!(plan.options.cache_scope.as_deref(), Some("alice"));
    let (outcome, recorder) = resume_with_the_gate_open(&store, &probes, plan).await;
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.run.error
    );
    assert_eq!(outcome.run.cache_scope.as_deref(), Some("alice"));
    assert_eq!(probes.counts.of("a"), 1, "a reused in its scope");
    assert_eq!(probes.counts.of("b"), 1, "b reused in its scope");
    assert_eq!(probes.counts.of("c"), 1);
    assert_eq!(number_of(&outcome.results["c"]), Some(111.0));
    assert_eq!(recorder.failures(), 0, "{:?}", recorder.last_error());
    let stored = store.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Completed);
    assert_eq!(stored.cache_scope.as_deref(), Some("alice"), "still kept");
    store.close().await;
}

/// Generates one test per (SQL backend, function): what needs a database another process
/// can lock.
macro_rules! sql_conformance {
    ($($test:ident),* $(,)?) => {
        per_backend!(sqlite_only, feature = "sqlite", Some(super::Target::sqlite()), $($test),*);
        per_backend!(postgres_only, feature = "postgres", super::Target::postgres().await, $($test),*);
    };
}

sql_conformance!(
    the_recorder_holds_what_the_store_cannot_take_and_stores_it_with_the_next_batch,
    a_run_that_ends_while_the_store_is_locked_is_reported_and_flushed_later,
    a_batch_the_store_rejects_loses_only_the_events_at_fault,
);

/// A run of `a → g1 → g2 → c` (two gates of their own) recorded by a recorder retrying as
/// `retry`, into a store that waits 100 ms for locks, started and waited on until `g1`
/// executes. Returns what the tests need: the store, the recorder, the run, the gates' flags.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn run_to_the_first_gate(
    target: &Target,
    retry: gatewai_core::RetryPolicy,
) -> (
    Store,
    Arc<RunRecorder>,
    gatewai_core::RunHandle,
    [Arc<std::sync::atomic::AtomicBool>; 2],
) {
    let setup = target.open().await;
    with_users(&setup).await;
    let probes = Probes::default();
    let mut reg = registry(&probes);
    let flags: [Arc<std::sync::atomic::AtomicBool>; 2] = [Arc::default(), Arc::default()];
    for (name, flag) in ["G1", "G2"].into_iter().zip(&flags) {
        reg.register(common::Gate::new(name, flag.clone(), Arc::default()))
            .unwrap();
    }
    let document = workflow(
        &reg,
        &[
            ("a", "Sum", json!({"add": 1})),
            ("g1", "G1", json!({})),
            ("g2", "G2", json!({})),
            ("c", "Sum", json!({"add": 100})),
        ],
        &[("a", "g1"), ("g1", "g2"), ("g2", "c")],
    );
    let wf = setup
        .create_workflow("alice", NewWorkflow::new("Locked", document))
        .await
        .unwrap();
    setup.close().await;
    let store = target.open_impatient().await;
    let recorder = Arc::new(RunRecorder::new(store.clone()).with_retry(retry));
    let engine = Engine::builder()
        .no_cache()
        .registry(reg)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let handle = engine
        .start(wf.document.clone(), for_workflow(&wf))
        .unwrap();
    let run_id = handle.run_id().to_owned();
    eventually("g1 executing", || async {
        status_of(&store, &run_id, "g1").await == Some(ExecutionStatus::Executing)
    })
    .await;
    (store, recorder, handle, flags)
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn status_of(store: &Store, run_id: &str, node: &str) -> Option<ExecutionStatus> {
    store
        .node_executions(run_id)
        .await
        .unwrap()
        .iter()
        .find(|e| *e.node_id == *node)
        .map(|e| e.status)
}

/// The store is locked by another process while a run goes on: the batch it cannot take is
/// held, the run goes on, and the run's next batch (once the lock is gone) stores both.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn the_recorder_holds_what_the_store_cannot_take_and_stores_it_with_the_next_batch(
    target: &Target,
) {
    let retry = gatewai_core::RetryPolicy {
        max_attempts: 2,
        initial_backoff: std::time::Duration::from_millis(10),
        ..gatewai_core::RetryPolicy::default()
    };
    let (store, recorder, handle, [g1, g2]) = run_to_the_first_gate(target, retry).await;
    let run_id = handle.run_id().to_owned();

    let lock = target.lock_writes().await;
    g1.store(true, Ordering::SeqCst);
    eventually("the batch completing g1 held", || async {
        !recorder.held_runs().is_empty()
    })
    .await;
    assert_eq!(recorder.held_runs()[0].0, run_id);
    assert_eq!(recorder.failures(), 1);
    // Nothing of the held batch is stored; the run went on.
    assert_eq!(
        status_of(&store, &run_id, "g1").await,
        Some(ExecutionStatus::Executing)
    );

    lock.release().await;
    g2.store(true, Ordering::SeqCst);
    let outcome = handle.wait().await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert!(
        outcome.observer_errors.is_empty(),
        "{:?}",
        outcome.observer_errors
    );
    assert!(recorder.held_runs().is_empty());

    // The store has the whole run, as if nothing had happened.
    let stored = store.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Completed);
    let executions = store.node_executions(&run_id).await.unwrap();
    assert_eq!(executions.len(), 4);
    for (stored, own) in executions.iter().zip(&outcome.executions) {
        assert_eq!(stored.node_id, own.node_id);
        assert_eq!(
            stored.status,
            ExecutionStatus::Completed,
            "{}",
            stored.node_id
        );
        assert_eq!(stored.output, own.output, "{}", stored.node_id);
    }
    store.close().await;
}

/// A run that ends while another process locks the store: its outcome says the run is not
/// stored whole, and `flush` stores it once the lock is gone.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn a_run_that_ends_while_the_store_is_locked_is_reported_and_flushed_later(target: &Target) {
    let (store, recorder, handle, [g1, g2]) =
        run_to_the_first_gate(target, gatewai_core::RetryPolicy::none()).await;
    let run_id = handle.run_id().to_owned();
    let lock = target.lock_writes().await;
    g1.store(true, Ordering::SeqCst);
    g2.store(true, Ordering::SeqCst);
    let outcome = handle.wait().await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(
        outcome.observer_errors.len(),
        1,
        "{:?}",
        outcome.observer_errors
    );
    let error = &outcome.observer_errors[0];
    assert_eq!(error.kind(), gatewai_core::ErrorKind::Unavailable);
    assert!(error.to_string().contains(&run_id), "{error}");
    assert_eq!(recorder.held_runs().len(), 1);
    // The store still has the run as it was when the lock was taken.
    assert_eq!(
        store.get_run(&run_id).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    // Flushing while the lock is held fails and keeps the events.
    let err = recorder.flush().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(recorder.held_runs().len(), 1);

    lock.release().await;
    recorder.flush().await.unwrap();
    assert!(recorder.held_runs().is_empty());
    assert_eq!(
        store.get_run(&run_id).await.unwrap().unwrap().status,
        RunStatus::Completed
    );
    let executions = store.node_executions(&run_id).await.unwrap();
    assert_eq!(executions.len(), 4);
    assert!(
        executions
            .iter()
            .all(|e| e.status == ExecutionStatus::Completed),
        "{executions:?}"
    );
    assert!(store.find_interrupted_runs().await.unwrap().is_empty());
    store.close().await;
}

/// The database rejects every row of one node (a constraint): the recorder stores the rest
/// of each batch event by event, and the run's outcome names what was lost.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
async fn a_batch_the_store_rejects_loses_only_the_events_at_fault(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let reject = match target.name {
        "sqlite" => {
            "CREATE TRIGGER reject_poison BEFORE INSERT ON node_executions \
             WHEN NEW.node_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poison rejected'); END"
        }
        _ => {
            "CREATE FUNCTION reject_poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.node_id = 'poison' THEN RAISE EXCEPTION 'poison rejected' USING ERRCODE = 'check_violation'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER reject_poison BEFORE INSERT OR UPDATE ON node_executions \
             FOR EACH ROW EXECUTE FUNCTION reject_poison()"
        }
    };
    target.execute_raw(reject).await;
    let probes = Probes::default();
    let reg = registry(&probes);
    let document = workflow(
        &reg,
        &[
            ("a", "Sum", json!({"add": 1})),
            ("poison", "Sum", json!({"add": 2})),
            ("b", "Sum", json!({"add": 10})),
        ],
        &[("a", "b")],
    );
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Poisoned", document))
        .await
        .unwrap();
    let (outcome, recorder) = recorded_run(&store, reg, &wf).await;
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert!(!outcome.observer_errors.is_empty());
    for error in &outcome.observer_errors {
        assert_eq!(
            error.kind(),
            gatewai_core::ErrorKind::InvalidInput,
            "{error}"
        );
        let message = error.to_string();
        assert!(message.contains("node `poison`"), "{message}");
        assert!(
            !message.contains("node `a`") && !message.contains("node `b`"),
            "{message}"
        );
    }
    assert!(
        recorder.held_runs().is_empty(),
        "a rejected batch is not held"
    );
    // Everything else is stored.
    let run = store.get_run(&outcome.run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    let executions = store.node_executions(&outcome.run.id).await.unwrap();
    for id in ["a", "b"] {
        let e = executions.iter().find(|e| *e.node_id == *id).unwrap();
        assert_eq!(e.status, ExecutionStatus::Completed, "{id}");
        assert!(e.output.is_some(), "{id}");
    }
    store.close().await;
}

/// A resumed run's start is stored before the results it reuses are recorded again: a second
/// crash in between must not lose them (they would be paid for again).
async fn a_resumed_run_keeps_its_reusable_results_until_it_records_them(target: &Target) {
    let probes = Probes::default();
    let (_, run_id) = crash_mid_run(target, &probes).await;
    let store = target.open().await;
    let plan = store.resume_plan(&run_id).await.unwrap();
    let before = store.node_executions(&run_id).await.unwrap();

    // The resumed attempt's first batches (its start, then its queued nodes: a big run's
    // queue events span batches), then the crash.
    let mut run = plan.run.clone();
    run.trigger_type = TriggerType::Resume;
    run.started_at = Some(Utc::now());
    let run_id_arc: Arc<str> = Arc::from(run_id.as_str());
    let event = |seq: u64, kind: EventKind| RunEvent {
        run_id: run_id_arc.clone(),
        seq,
        at: Utc::now(),
        kind,
    };
    let mut batch = vec![event(
        0,
        EventKind::RunStarted {
            run: Arc::new(run),
            node_count: 4,
        },
    )];
    let mut batches = Vec::new();
    for (seq, node) in (1..).zip(["a", "gate", "b", "c"]) {
        if node == "b" {
            batches.push(std::mem::take(&mut batch));
        }
        batch.push(event(
            seq,
            EventKind::NodeQueued {
                node_id: Arc::from(node),
                node_type: Arc::from(if node == "gate" { "Gate" } else { "Sum" }),
                label: Arc::from(node),
            },
        ));
    }
    batches.push(batch);
    for batch in &batches {
        store.record_events(batch).await.unwrap();
    }

    let after = store.node_executions(&run_id).await.unwrap();
    let find = |rows: &[NodeExecution], id: &str| {
        rows.iter()
            .find(|e| *e.node_id == *id)
            .cloned()
            .unwrap_or_else(|| panic!("no execution of {id}: {rows:?}"))
    };
    for id in ["a", "b"] {
        let (was, is) = (find(&before, id), find(&after, id));
        assert_eq!(is.status, ExecutionStatus::Completed, "{id}");
        assert_eq!(is.output, was.output, "{id}");
    }
    // The earlier attempt's unfinished nodes are queued again, not left executing.
    assert_eq!(find(&after, "gate").status, ExecutionStatus::Queued);
    assert_eq!(find(&after, "c").status, ExecutionStatus::Queued);

    // The next process still resumes with both results.
    let again = store.resume_plan(&run_id).await.unwrap();
    let mut resumed: Vec<&str> = again.options.resumed.keys().map(String::as_str).collect();
    resumed.sort();
    assert_eq!(resumed, ["a", "b"]);
    assert_eq!(again.options.resumed, plan.options.resumed);
    store.close().await;
}

async fn crashed_run_can_be_marked_interrupted(target: &Target) {
    let probes = Probes::default();
    let (workflow_id, run_id) = crash_mid_run(target, &probes).await;
    let store = target.open().await;
    assert_eq!(store.find_interrupted_runs().await.unwrap().len(), 1);
    store.mark_interrupted(&run_id).await.unwrap();
    assert!(store.find_interrupted_runs().await.unwrap().is_empty());

    let entry = store
        .get_run_entry("alice", &run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.run.status, RunStatus::Failed);
    assert_eq!(entry.run.error.as_deref(), Some("interrupted"));
    assert!(entry.run.finished_at.is_some());
    let status = |id: &str| {
        entry
            .executions
            .iter()
            .find(|e| *e.node_id == *id)
            .map(|e| (e.status, e.error.clone()))
            .unwrap()
    };
    assert_eq!(status("a"), (ExecutionStatus::Completed, None));
    assert_eq!(status("b"), (ExecutionStatus::Completed, None));
    assert_eq!(
        status("gate"),
        (ExecutionStatus::Failed, Some("interrupted".into()))
    );
    assert_eq!(
        status("c"),
        (ExecutionStatus::Failed, Some("interrupted".into()))
    );
    // A finished run is not resumable, and cannot be marked interrupted again: its record
    // and its executions stay as they are (another process may have finished it).
    let err = store.resume_plan(&run_id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let before = store.get_run(&run_id).await.unwrap().unwrap();
    let err = store.mark_interrupted(&run_id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(store.get_run(&run_id).await.unwrap().unwrap(), before);
    let err = store.mark_interrupted("no-such-run").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let history = store
        .run_history("alice", &workflow_id, Page::default())
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    store.close().await;
}

async fn store_cache_survives_reopening(target: &Target) {
    let probes = Probes::default();
    let reg = registry(&probes);
    let document = chain(&reg, 3);
    {
        let store = target.open().await;
        let engine = Engine::builder()
            .registry(registry(&probes))
            .cache(store.result_cache())
            .build()
            .unwrap();
        let outcome = engine
            .run(document.clone(), RunOptions::default())
            .await
            .unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed);
        assert_eq!(probes.counts.total(), 3);
        store.close().await;
    }
    // A restarted process: a new store handle and engine on the same database.
    let store = target.open().await;
    let engine = Engine::builder()
        .registry(registry(&probes))
        .cache(store.result_cache())
        .build()
        .unwrap();
    let outcome = engine.run(document, RunOptions::default()).await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(
        probes.counts.total(),
        3,
        "every node was served from the cache"
    );
    assert!(outcome.executions.iter().all(|e| e.cached));
    assert_eq!(number_of(&outcome.results["n2"]), Some(3.0));

    // The cache rows directly.
    let key = CacheKey([7; 32]);
    assert!(store.cache_get(&key).await.unwrap().is_none());
    let generations = vec![Generation {
        items: vec![Item::text("hello").on("h")],
    }];
    store.cache_put(&key, &generations).await.unwrap();
    store.cache_put(&key, &generations).await.unwrap();
    assert_eq!(store.cache_get(&key).await.unwrap(), Some(generations));
    store.close().await;
}

async fn asset_records_round_trip(target: &Target) {
    let store = target.open().await;
    let mut asset = gatewai_core::FileAsset {
        id: "asset-1".into(),
        name: "fox.png".into(),
        bucket: "local".into(),
        key: "assets/as/asset-1".into(),
        mime_type: "image/png".into(),
        size: 1234,
        width: Some(640),
        height: Some(480),
        fps: None,
        duration: None,
        metadata: Some(json!({"nodeId": "n1"})),
        ..Default::default()
    };
    asset.extra.insert("createdBy".into(), json!("test"));
    with_users(&store).await;
    store.put_asset_record(&asset, Some("alice")).await.unwrap();
    assert_eq!(
        store.get_asset_record("asset-1").await.unwrap(),
        Some(asset.clone())
    );
    let mut video = asset.clone();
    video.mime_type = "video/mp4".into();
    video.fps = Some(23.976);
    video.duration = Some(4.5);
    store.put_asset_record(&video, None).await.unwrap();
    assert_eq!(
        store.get_asset_record("asset-1").await.unwrap(),
        Some(video)
    );
    assert!(store.delete_asset_record("asset-1").await.unwrap());
    assert!(!store.delete_asset_record("asset-1").await.unwrap());
    assert!(store.get_asset_record("asset-1").await.unwrap().is_none());
    store.close().await;
}

/// An asset record named `id`.
fn asset_named(id: &str) -> gatewai_core::FileAsset {
    gatewai_core::FileAsset {
        id: id.into(),
        name: format!("{id}.png"),
        bucket: "local".into(),
        key: format!("assets/{id}"),
        mime_type: "image/png".into(),
        size: 10,
        ..Default::default()
    }
}

/// Whether `user` may read the asset `id` (`get_owned_asset` finds it).
async fn owns(store: &Store, user: &str, id: &str) -> bool {
    store.get_owned_asset(user, id).await.unwrap().is_some()
}

/// The ids of some assets.
fn ids(assets: Vec<gatewai_core::FileAsset>) -> Vec<String> {
    assets.into_iter().map(|a| a.id).collect()
}

async fn assets_are_scoped_by_their_owners(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    // Stored for a user who does not exist: refused, and nothing is stored.
    let err = store
        .put_asset_record(&asset_named("a1"), Some("carol"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { entity: "user", id } if id == "carol"),
        "{err}"
    );
    assert!(store.get_asset_record("a1").await.unwrap().is_none());

    // Stored for alice: hers, and no one else's.
    store
        .put_asset_record(&asset_named("a1"), Some("alice"))
        .await
        .unwrap();
    let a1 = store.get_owned_asset("alice", "a1").await.unwrap();
    assert_eq!(a1.map(|a| a.id).as_deref(), Some("a1"));
    assert!(!owns(&store, "bob", "a1").await);
    assert!(!owns(&store, "alice", "a2").await);
    assert_eq!(
        ids(store.list_assets("alice", Page::default()).await.unwrap()),
        ["a1"]
    );
    assert!(
        store
            .list_assets("bob", Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.asset_owners("a1").await.unwrap(), ["alice"]);

    // Granted to bob too: once.
    assert!(store.grant_asset("a1", "bob").await.unwrap());
    assert!(!store.grant_asset("a1", "bob").await.unwrap());
    assert!(!store.grant_asset("a1", "alice").await.unwrap());
    assert_eq!(store.asset_owners("a1").await.unwrap(), ["alice", "bob"]);
    assert!(owns(&store, "bob", "a1").await);
    // A grant of a missing asset, or to a missing user, names what is missing.
    let err = store.grant_asset("a9", "bob").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { entity: "asset", id } if id == "a9"),
        "{err}"
    );
    let err = store.grant_asset("a1", "carol").await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { entity: "user", id } if id == "carol"),
        "{err}"
    );
    let err = store.grant_asset("a\0b", "bob").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // Ids no backend stores find nothing, on every backend.
    assert!(!owns(&store, "alice", "a\0b").await);
    assert!(!owns(&store, "al\0ice", "a1").await);
    assert!(
        store
            .list_assets("al\0ice", Page::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.asset_owners("a\0b").await.unwrap().is_empty());
    assert!(!store.revoke_asset("a1", "b\0ob").await.unwrap());
    assert!(store.get_asset_record("a\0b").await.unwrap().is_none());
    assert!(!store.delete_asset_record("a\0b").await.unwrap());

    // Storing the description again keeps its owners.
    let mut renamed = asset_named("a1");
    renamed.name = "renamed.png".into();
    store.put_asset_record(&renamed, None).await.unwrap();
    assert_eq!(store.asset_owners("a1").await.unwrap(), ["alice", "bob"]);
    let a1 = store.get_owned_asset("bob", "a1").await.unwrap().unwrap();
    assert_eq!(a1.name, "renamed.png");

    // Revoked: bob's no more; alice's still.
    assert!(store.revoke_asset("a1", "bob").await.unwrap());
    assert!(!store.revoke_asset("a1", "bob").await.unwrap());
    assert!(!owns(&store, "bob", "a1").await);
    assert!(owns(&store, "alice", "a1").await);

    // Alice's assets, the most recently granted first, in pages.
    // (stored out of their ids' order, so that the newest grant first is not the greatest id)
    for id in ["a3", "a2", "a4"] {
        store
            .put_asset_record(&asset_named(id), Some("alice"))
            .await
            .unwrap();
    }
    assert!(store.grant_asset("a1", "bob").await.unwrap());
    let all = ids(store.list_assets("alice", Page::default()).await.unwrap());
    assert_eq!(all, ["a4", "a2", "a3", "a1"]);
    // Granted anew, an asset comes first again.
    assert!(store.revoke_asset("a3", "alice").await.unwrap());
    assert!(store.grant_asset("a3", "alice").await.unwrap());
    let all = ids(store.list_assets("alice", Page::default()).await.unwrap());
    assert_eq!(all, ["a3", "a4", "a2", "a1"]);
    let second = ids(store.list_assets("alice", Page::new(2, 2)).await.unwrap());
    assert_eq!(second, ["a2", "a1"]);
    assert_eq!(
        ids(store.list_assets("bob", Page::default()).await.unwrap()),
        ["a1"]
    );

    // A deleted user's grants go with them; the assets stay, for their other owners.
    store.delete_user("bob").await.unwrap();
    assert_eq!(store.asset_owners("a1").await.unwrap(), ["alice"]);
    assert!(store.get_asset_record("a1").await.unwrap().is_some());
    // A deleted asset's grants go with it.
    assert!(store.delete_asset_record("a2").await.unwrap());
    assert!(store.asset_owners("a2").await.unwrap().is_empty());
    assert!(!owns(&store, "alice", "a2").await);
    let all = ids(store.list_assets("alice", Page::default()).await.unwrap());
    assert_eq!(all, ["a3", "a4", "a1"]);
    // Stored again, it has no owner until one is granted.
    store
        .put_asset_record(&asset_named("a2"), None)
        .await
        .unwrap();
    assert!(store.asset_owners("a2").await.unwrap().is_empty());
    store.close().await;
}

/// Many users granted one asset at once: every grant holds (a list of owners rewritten by
/// each would keep only the last writer's).
async fn concurrent_grants_of_one_asset_all_hold(target: &Target) {
    let store = target.open().await;
    let users: Vec<String> = (0..24).map(|i| format!("user-{i:02}")).collect();
    for user in &users {
        store
            .upsert_user(&NewUser::new(user.clone(), format!("{user}@example.com")))
            .await
            .unwrap();
    }
    store
        .put_asset_record(&asset_named("shared"), Some("user-00"))
        .await
        .unwrap();
    let grants: Vec<_> = users
        .iter()
        .skip(1)
        .map(|user| {
            let (store, user) = (store.clone(), user.clone());
            tokio::spawn(async move { store.grant_asset("shared", &user).await })
        })
        .collect();
    for granted in grants {
        assert!(granted.await.unwrap().unwrap());
    }
    let mut owners = store.asset_owners("shared").await.unwrap();
    owners.sort();
    assert_eq!(owners, users);
    for user in &users {
        assert!(owns(&store, user, "shared").await);
    }
    store.close().await;
}

/// PostgreSQL (whose writers do not wait for one another as SQLite's do): a grant racing a
/// delete of its asset or of its user (committed while the grant waits on the row) names what
/// is missing, not a foreign-key error; a put for a user deleted meanwhile stores nothing.
async fn grants_racing_deletes_name_what_is_missing(target: &Target) {
    #[cfg(feature = "postgres")]
    if target.name == "postgres" {
        use common::begin_elsewhere;
        let pause = || tokio::time::sleep(std::time::Duration::from_millis(300));
        let store = target.open().await;
        with_users(&store).await;
        for id in ["a1", "a2"] {
            store
                .put_asset_record(&asset_named(id), Some("alice"))
                .await
                .unwrap();
        }

        // A grant of `asset` to `user` while `delete` runs in another transaction, committed
        // as the grant waits for the row it deletes: the grant's error.
        let grant_meanwhile = |delete: &'static str, asset: &'static str, user: &'static str| {
            let store = store.clone();
            async move {
                let delete = begin_elsewhere(&target.url, delete).await;
                let grant = tokio::spawn(async move { store.grant_asset(asset, user).await });
                pause().await;
                delete.commit().await;
                grant.await.unwrap().unwrap_err()
            }
        };

        // The asset deleted while its grant waits.
        let err = grant_meanwhile("DELETE FROM file_assets WHERE id = 'a1'", "a1", "bob").await;
        assert!(
            matches!(&err, Error::NotFound { entity: "asset", id } if id == "a1"),
            "{err}"
        );

        // A put for bob waits on the asset's row while bob is deleted: nothing is stored.
        let holder = begin_elsewhere(
            &target.url,
            "SELECT id FROM file_assets WHERE id = 'a2' FOR UPDATE",
        )
        .await;
        let mut renamed = asset_named("a2");
        renamed.name = "renamed.png".into();
        let put = tokio::spawn({
            let store = store.clone();
            async move { store.put_asset_record(&renamed, Some("bob")).await }
        });
        pause().await;
        begin_elsewhere(&target.url, "DELETE FROM users WHERE id = 'bob'")
            .await
            .commit()
            .await;
        holder.commit().await;
        let err = put.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { entity: "user", id } if id == "bob"),
            "{err}"
        );
        let a2 = store.get_asset_record("a2").await.unwrap().unwrap();
        assert_eq!(a2.name, "a2.png", "the put was rolled back");
        assert_eq!(store.asset_owners("a2").await.unwrap(), ["alice"]);

        // The user deleted while a grant to them waits.
        store
            .upsert_user(&NewUser::new("carol", "carol@example.com"))
            .await
            .unwrap();
        let err = grant_meanwhile("DELETE FROM users WHERE id = 'carol'", "a2", "carol").await;
        assert!(
            matches!(&err, Error::NotFound { entity: "user", id } if id == "carol"),
            "{err}"
        );
        store.close().await;
    }
    let _ = target;
}

/// A database from before `asset_owners` existed: the user each asset was stored for (the
/// `owner_id` column) becomes its owner when the store opens it, and so do the users an
/// earlier example server listed in `metadata.owners` (a list that then leaves the metadata);
/// an owner that is no user is dropped.
async fn the_owner_an_asset_was_stored_for_becomes_its_first_owner_on_migration(target: &Target) {
    if target.name == "memory" {
        // Nothing to migrate.
        return;
    }
    let store = target.open().await;
    with_users(&store).await;
    store.close().await;
    // Back to the schema before the migration, with assets stored then.
    target
        .execute_raw(
            "DROP TABLE asset_owners; \
             DELETE FROM _sqlx_migrations WHERE version = 20261128000001; \
             INSERT INTO file_assets (id, name, bucket, key, mime_type, size, metadata, owner_id, created_at) \
             VALUES ('old-1', 'a.png', 'local', 'k1', 'image/png', 1, \
                     '{\"ownerId\": \"alice\", \"owners\": [\"alice\", \"bob\", \"nobody\", 7], \"note\": \"kept\"}', \
                     'alice', '2026-01-01T00:00:00Z'), \
                    ('old-2', 'b.png', 'local', 'k2', 'image/png', 1, '{\"owners\": \"bob\"}', 'nobody', \
                     '2026-01-01T00:00:00Z'), \
                    ('old-3', 'c.png', 'local', 'k3', 'image/png', 1, '[\"owners\"]', NULL, \
                     '2026-01-01T00:00:00Z'), \
                    ('old-4', 'd.png', 'local', 'k4', 'image/png', 1, NULL, 'bob', '2026-01-01T00:00:00Z'), \
                    ('old-5', 'e.png', 'local', 'k5', 'image/png', 1, \
                     '{\"owners\": [\"bob\"], \"prompt\": \"a\\u0000b\"}', NULL, '2026-01-01T00:00:00Z')",
        )
        .await;
    let store = target.open().await;
    assert_eq!(store.asset_owners("old-1").await.unwrap(), ["alice", "bob"]);
    assert!(owns(&store, "bob", "old-1").await);
    let old = store.get_asset_record("old-1").await.unwrap().unwrap();
    assert_eq!(
        old.metadata,
        Some(json!({"ownerId": "alice", "note": "kept"}))
    );
    // Owners that are not a list of users grant nothing; the rest of the metadata stays.
    assert!(store.asset_owners("old-2").await.unwrap().is_empty());
    let old = store.get_asset_record("old-2").await.unwrap().unwrap();
    assert_eq!(old.metadata, Some(json!({"owners": "bob"})));
    assert!(store.asset_owners("old-3").await.unwrap().is_empty());
    assert_eq!(store.asset_owners("old-4").await.unwrap(), ["bob"]);
    // Metadata with a NUL escape: its owners are granted; PostgreSQL keeps the list (the
    // JSONB it would be removed through cannot hold the NUL).
    assert_eq!(store.asset_owners("old-5").await.unwrap(), ["bob"]);
    let old = store.get_asset_record("old-5").await.unwrap().unwrap();
    let kept = match target.name {
        "postgres" => json!({"owners": ["bob"], "prompt": "a\u{0}b"}),
        _ => json!({"prompt": "a\u{0}b"}),
    };
    assert_eq!(old.metadata, Some(kept));
    store.close().await;
}

async fn malformed_json_is_an_error(target: &Target) {
    if target.name == "memory" {
        // Nothing is serialized in memory.
        return;
    }
    let store = target.open().await;
    with_users(&store).await;
    let wf = store
        .create_workflow(
            "alice",
            NewWorkflow::new("Good", doc("g")).with_id("wf-bad"),
        )
        .await
        .unwrap();
    store
        .save_run(&run_record("run-bad", Some(&wf.id), 0))
        .await
        .unwrap();
    store
        .save_node_execution(&execution("run-bad", "n0", 1.0))
        .await
        .unwrap();
    store
        .cache_put(&CacheKey([1; 32]), &[Generation::default()])
        .await
        .unwrap();
    // Valid JSON of the wrong shape (PostgreSQL's JSON refuses broken syntax) …
    target
        .execute_raw(
            "UPDATE workflows SET document = '{\"nodes\": \"oops\"}' WHERE id = 'wf-bad';\
             UPDATE node_executions SET output_data = '[1, 2]' WHERE run_id = 'run-bad';\
             UPDATE cache_entries SET outputs = '{\"x\": 1}'",
        )
        .await;
    let err = store.get_workflow("alice", "wf-bad").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        matches!(&err, Error::Corrupt { table: "workflows", row, column: "document", .. } if row == "wf-bad"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("workflows") && msg.contains("wf-bad") && msg.contains("document"),
        "{msg}"
    );
    let err = store
        .list_workflows("alice", Page::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    let err = store.node_executions("run-bad").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { table: "node_executions", row, column: "output_data", .. } if row == "run-bad/n0"),
        "{err}"
    );
    // A cache key that is not one.
    target
        .execute_raw(
            "UPDATE node_executions SET output_data = NULL, cache_key = 'c0ffee' \
             WHERE run_id = 'run-bad'",
        )
        .await;
    let err = store.node_executions("run-bad").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { table: "node_executions", row, column: "cache_key", .. } if row == "run-bad/n0"),
        "{err}"
    );
    assert!(err.to_string().contains("64 hex digits"), "{err}");
    let err = store.cache_get(&CacheKey([1; 32])).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Corrupt {
                table: "cache_entries",
                ..
            }
        ),
        "{err}"
    );
    // … and, where the column is text, broken syntax and unknown status names.
    if target.name == "sqlite" {
        target
            .execute_raw(
                "UPDATE workflows SET document = '{\"nodes\": [' WHERE id = 'wf-bad';\
                 UPDATE workflow_runs SET status = 'EXPLODED' WHERE id = 'run-bad'",
            )
            .await;
        let err = store.get_workflow("alice", "wf-bad").await.unwrap_err();
        assert!(err.to_string().contains("malformed JSON"), "{err}");
        let err = store.get_run("run-bad").await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Corrupt {
                    table: "workflow_runs",
                    column: "status",
                    ..
                }
            ),
            "{err}"
        );
    }
    // The rest of the store still works.
    store
        .create_workflow(
            "alice",
            NewWorkflow::new("Fine", doc("f")).with_id("wf-fine"),
        )
        .await
        .unwrap();
    assert!(
        store
            .get_workflow("alice", "wf-fine")
            .await
            .unwrap()
            .is_some()
    );
    store.close().await;
}

/// A string with a NUL character is written in JSON as the escape `\u0000`, and PostgreSQL's
/// `text` cannot hold a NUL character. Free text the engine hands over (a node's
/// label from an untrusted canvas, a provider's error) is stored on every backend with each
/// NUL turned into U+FFFD, so the run is recorded whole; an id or a name a caller gives with
/// a NUL is refused with an error naming the field, the same on every backend.
async fn text_with_nul_characters_is_stored_and_ids_with_them_are_refused(target: &Target) {
    const NUL: &str = "before\u{0}after";
    const STORED: &str = "before\u{FFFD}after";
    let store = target.open().await;
    with_users(&store).await;
    let mut reg = registry(&Probes::default());
    reg.register(common::Fails(common::number_template("Fails")))
        .unwrap();
    let mut document = workflow(
        &reg,
        &[
            ("a", "Sum", json!({"add": 1})),
            ("f", "Fails", json!({"message": NUL})),
        ],
        &[("a", "f")],
    );
    document.nodes[0].name = NUL.to_owned();
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Nul text", document.clone()))
        .await
        .unwrap();
    let recorder = store.recorder();
    let engine = Engine::builder()
        .registry(reg)
        .observer(recorder.clone())
        .build()
        .unwrap();
    let options = RunOptions {
        workflow_id: Some(wf.id.clone()),
        ..RunOptions::default()
    };
    let outcome = engine.run(document, options).await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Failed);
    assert!(
        outcome.observer_errors.is_empty(),
        "{:?}",
        outcome.observer_errors
    );
    assert_eq!(recorder.failures(), 0, "{:?}", recorder.last_error());
    let run = store.get_run(&outcome.run.id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.as_deref().unwrap().contains(STORED), "{run:?}");
    let executions = store.node_executions(&outcome.run.id).await.unwrap();
    let of = |id: &str| executions.iter().find(|e| &*e.node_id == id).unwrap();
    assert_eq!(of("a").status, ExecutionStatus::Completed);
    assert_eq!(&*of("a").label, STORED);
    assert_eq!(of("f").status, ExecutionStatus::Failed);
    assert!(
        of("f").error.as_deref().unwrap().contains(STORED),
        "{:?}",
        of("f")
    );

    // The same through the direct calls.
    let mut run = run_record("run-nul-text", Some(&wf.id), 0);
    run.error = Some(NUL.to_owned());
    store.save_run(&run).await.unwrap();
    let mut execution = execution("run-nul-text", "n0", 1.0);
    execution.label = NUL.into();
    execution.error = Some(NUL.to_owned());
    store.save_node_execution(&execution).await.unwrap();
    let read = store.get_run("run-nul-text").await.unwrap().unwrap();
    assert_eq!(read.error.as_deref(), Some(STORED));
    let read = &store.node_executions("run-nul-text").await.unwrap()[0];
    assert_eq!(
        (&*read.label, read.error.as_deref()),
        (STORED, Some(STORED))
    );

    // Ids and names with a NUL are refused, naming the field.
    let refused = |err: Error, field: &str| {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    };
    refused(
        store
            .create_workflow("alice", NewWorkflow::new(NUL, doc("x")))
            .await
            .unwrap_err(),
        "workflow name",
    );
    let update = WorkflowUpdate {
        name: Some(NUL.to_owned()),
        ..WorkflowUpdate::default()
    };
    refused(
        store
            .update_workflow("alice", &wf.id, update)
            .await
            .unwrap_err(),
        "workflow name",
    );
    refused(
        store
            .upsert_user(&NewUser::new("carol", NUL))
            .await
            .unwrap_err(),
        "email",
    );
    refused(
        store
            .save_run(&run_record(NUL, Some(&wf.id), 0))
            .await
            .unwrap_err(),
        "run id",
    );
    refused(
        store
            .save_node_execution(&self::execution("run-nul-text", NUL, 1.0))
            .await
            .unwrap_err(),
        "node id",
    );
    store.close().await;
}

/// PostgreSQL's `JSONB` refuses: every JSON column that carries user data (a workflow
/// document, a node's input and output snapshots, a cached result, an asset's metadata) must
/// store it and read it back unchanged, the run recorder's batches included.
async fn json_with_nul_characters_round_trips(target: &Target) {
    const NUL: &str = "before\u{0}after";
    let store = target.open().await;
    with_users(&store).await;

    // A workflow document: created, read, listed, updated.
    let mut document = doc(NUL);
    document.nodes[0].config = json!({"add": 1, "prompt": NUL, NUL: [NUL]});
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Nul", document.clone()))
        .await
        .unwrap();
    assert_eq!(wf.document.extra["description"], json!(NUL));
    let read = store.get_workflow("alice", &wf.id).await.unwrap().unwrap();
    assert_eq!(read, wf, "a document with NUL reads back as stored");
    assert_eq!(read.document.nodes[0].config["prompt"], json!(NUL));
    assert_eq!(
        store
            .list_workflows("alice", Page::default())
            .await
            .unwrap(),
        std::slice::from_ref(&wf)
    );
    document
        .extra
        .insert("second".into(), json!([NUL, {"k": NUL}]));
    let updated = store
        .update_workflow(
            "alice",
            &wf.id,
            WorkflowUpdate {
                name: None,
                document: Some(document),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.document.extra["second"], json!([NUL, {"k": NUL}]));
    assert_eq!(
        store.get_workflow("alice", &wf.id).await.unwrap().unwrap(),
        updated
    );

    // A run recorded by batches, as the recorder writes it: a node's input and output
    // snapshots carry the string.
    let run_id: Arc<str> = Arc::from(format!("run-{}", uuid::Uuid::new_v4()));
    let t0 = Utc::now().trunc_subsecs(6);
    let mut run = run_record(&run_id, Some(&wf.id), 0);
    run.created_at = t0;
    run.started_at = Some(t0);
    let output = Arc::new(NodeResult::single(Generation {
        items: vec![Item::text(NUL).on("n0:out")],
    }));
    let record = Arc::new(NodeExecution {
        input: Some(json!({"in": [NUL], NUL: {"nested": NUL}}).into()),
        output: Some(output.clone()),
        started_at: Some(t0),
        finished_at: Some(t0),
        ..execution(&run_id, "n0", 1.0)
    });
    let mut seq = 0;
    let mut event = |kind: EventKind| {
        seq += 1;
        RunEvent {
            run_id: run_id.clone(),
            seq: seq - 1,
            at: t0,
            kind,
        }
    };
    let started = vec![
        event(EventKind::RunStarted {
            run: Arc::new(run.clone()),
            node_count: 1,
        }),
        event(EventKind::NodeQueued {
            node_id: Arc::from("n0"),
            node_type: Arc::from("Sum"),
            label: Arc::from("Sum n0"),
        }),
    ];
    let mut finished = run.clone();
    finished.status = RunStatus::Completed;
    finished.finished_at = Some(t0);
    let completed = vec![
        event(EventKind::NodeCompleted {
            node_id: Arc::from("n0"),
            source: ResultSource::Executed,
            result: output.clone(),
            record: record.clone(),
        }),
        event(EventKind::RunFinished {
            run: Arc::new(finished.clone()),
        }),
    ];
    store.record_events(&started).await.unwrap();
    store.record_events(&completed).await.unwrap();
    assert_eq!(
        store.node_executions(&run_id).await.unwrap(),
        [(*record).clone()]
    );
    let entry = store
        .get_run_entry("alice", &run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.run, finished);
    assert_eq!(entry.executions, [(*record).clone()]);
    let history = store
        .run_history("alice", &wf.id, Page::default())
        .await
        .unwrap();
    assert_eq!(history, [entry]);

    // A node execution saved alone.
    let mut alone = execution(&run_id, "n1", 2.0);
    alone.input = Some(json!({"text": NUL}).into());
    store.save_node_execution(&alone).await.unwrap();
    assert_eq!(
        store.node_executions(&run_id).await.unwrap(),
        [(*record).clone(), alone]
    );

    // A result-cache entry.
    let key = CacheKey([9; 32]);
    let generations = vec![Generation {
        items: vec![Item::text(NUL).on(NUL)],
    }];
    store.cache_put(&key, &generations).await.unwrap();
    assert_eq!(store.cache_get(&key).await.unwrap(), Some(generations));

    // An asset's metadata and extra fields.
    let mut asset = gatewai_core::FileAsset {
        id: "asset-nul".into(),
        name: "nul.txt".into(),
        bucket: "local".into(),
        key: "assets/nul".into(),
        mime_type: "text/plain".into(),
        size: 1,
        metadata: Some(json!({"prompt": NUL})),
        ..Default::default()
    };
    asset.extra.insert("note".into(), json!(NUL));
    store.put_asset_record(&asset, Some("alice")).await.unwrap();
    assert_eq!(
        store.get_asset_record("asset-nul").await.unwrap(),
        Some(asset)
    );
    store.close().await;
}

/// A page of the run history lists each run with its own executions, even when a run of the
/// workflow starts while the page is read (the runs are read first, then their executions:
/// a newer run shifts the page, and the executions must still be those of the runs listed).
///
/// On PostgreSQL the interleaving is forced: a transaction holds `node_executions` locked, so
/// that the read of the executions waits after the runs were read, then starts a run and
/// commits. The memory backend reads under one lock and SQLite's readers never wait in WAL
/// mode, so neither can be paused between the two reads from outside: there the test reads
/// without a run in between (the SQLite query is exercised with one in `sql`'s unit tests).
async fn run_history_lists_each_run_with_its_own_executions(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Busy", doc("b")))
        .await
        .unwrap();
    for i in 0..4 {
        let id = format!("run-{i}");
        store
            .save_run(&run_record(&id, Some(&wf.id), 10 - i))
            .await
            .unwrap();
        store
            .save_node_execution(&execution(&id, "n0", i as f64))
            .await
            .unwrap();
    }
    let entries = match target.name {
        #[cfg(feature = "postgres")]
        "postgres" => run_history_while_a_run_starts(target, &store, &wf.id).await,
        _ => store
            .run_history("alice", &wf.id, Page::first(2))
            .await
            .unwrap(),
    };
    let listed: Vec<&str> = entries.iter().map(|e| e.run.id.as_str()).collect();
    assert_eq!(listed, ["run-3", "run-2"]);
    for entry in &entries {
        let executions: Vec<(&str, &str, ExecutionStatus)> = entry
            .executions
            .iter()
            .map(|e| (&*e.run_id, &*e.node_id, e.status))
            .collect();
        assert_eq!(
            executions,
            [(entry.run.id.as_str(), "n0", ExecutionStatus::Completed)],
            "the executions of {}",
            entry.run.id
        );
    }
    store.close().await;
}

/// Reads the first page of two runs of `workflow_id` while a run starts: the read of the
/// executions waits for a lock the test holds on `node_executions` until a newer run and its
/// execution are committed.
#[cfg(feature = "postgres")]
async fn run_history_while_a_run_starts(
    target: &Target,
    store: &Store,
    workflow_id: &str,
) -> Vec<RunHistoryEntry> {
    use sqlx::Connection;
    let mut locker = sqlx::PgConnection::connect(&target.url).await.unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE node_executions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let reader = {
        let (store, workflow_id) = (store.clone(), workflow_id.to_owned());
        tokio::spawn(async move {
            store
                .run_history("alice", &workflow_id, Page::first(2))
                .await
        })
    };
    // The store has read the runs and waits to read their executions.
    let mut watcher = sqlx::PgConnection::connect(&target.url).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted \
             AND relation = 'node_executions'::regclass \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !reader.is_finished(),
            "run_history never read node_executions"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for run_history to read node_executions"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A run starts meanwhile: the newest of the workflow.
    sqlx::query(
        "INSERT INTO workflow_runs (id, workflow_id, trigger_type, status, created_at, started_at) \
         VALUES ('run-new', $1, 'API', 'RUNNING', now(), now())",
    )
    .bind(workflow_id)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO node_executions (run_id, node_id, seq, node_type, node_label, status) \
         VALUES ('run-new', 'n0', 0, 'Sum', 'Sum n0', 'QUEUED')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let entries = reader.await.unwrap().unwrap();
    // The next read sees the new run first.
    let now = store
        .run_history("alice", workflow_id, Page::first(2))
        .await
        .unwrap();
    let listed: Vec<&str> = now.iter().map(|e| e.run.id.as_str()).collect();
    assert_eq!(listed, ["run-new", "run-3"]);
    assert_eq!(now[0].executions.len(), 1);
    entries
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_in_memory_and_bad_urls() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(store.kind(), BackendKind::Sqlite);
    store
        .upsert_user(&NewUser::new("u", "u@example.com"))
        .await
        .unwrap();
    let wf = store
        .create_workflow("u", NewWorkflow::new("w", doc("m")))
        .await
        .unwrap();
    // Reads go through the same connection: the data is there.
    assert!(store.get_workflow("u", &wf.id).await.unwrap().is_some());
    store.close().await;

    let err = Store::open("mysql://localhost/db").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = Store::open("sqlite:///nonexistent-dir/x/y.db")
        .await
        .unwrap_err();
    assert_ne!(err.kind(), ErrorKind::Internal, "{err}");
    assert_eq!(
        Store::open("memory://").await.unwrap().kind(),
        BackendKind::Memory
    );
}

/// A node that continued on error completed with the error as its record's: resuming its run
/// hands the error back with the result (an Export that continued on error stays out of the
/// resumed run's exports, as in a run never interrupted), and a failed node is not reused.
async fn a_resumed_node_keeps_the_error_it_continued_with(target: &Target) {
    let store = target.open().await;
    store.save_run(&run_record("r", None, 1)).await.unwrap();
    let ok = execution("r", "ok", 1.0);
    let continued = NodeExecution {
        error: Some("the destination refused the file".to_owned()),
        ..execution("r", "continued", 2.0)
    };
    let failed = NodeExecution {
        status: ExecutionStatus::Failed,
        output: None,
        error: Some("boom".to_owned()),
        ..execution("r", "failed", 3.0)
    };
    for e in [&ok, &continued, &failed] {
        store.save_node_execution(e).await.unwrap();
    }
    let plan = store.resume_plan("r").await.unwrap();
    let resumed = &plan.options.resumed;
    assert_eq!(resumed.len(), 2, "{:?}", resumed.keys());
    assert_eq!(resumed["ok"].error, None);
    assert_eq!(resumed["ok"].cache_key, ok.cache_key);
    assert_eq!(
        resumed["continued"].error.as_deref(),
        Some("the destination refused the file")
    );
    assert_eq!(
        Some(&resumed["continued"].result),
        continued.output.as_deref()
    );
    store.close().await;
}

/// A run created `created_minutes_ago` minutes ago that ended `ended_minutes_ago` minutes ago
/// (`None`: no end time recorded).
fn ended_run(
    id: &str,
    workflow_id: Option<&str>,
    created_minutes_ago: i64,
    status: RunStatus,
    ended_minutes_ago: Option<i64>,
) -> RunRecord {
    RunRecord {
        status,
        finished_at: ended_minutes_ago
            .map(|m| (Utc::now() - ChronoDuration::minutes(m)).trunc_subsecs(6)),
        ..run_record(id, workflow_id, created_minutes_ago)
    }
}

async fn run_ids(store: &Store, workflow_id: &str) -> Vec<String> {
    store
        .run_history("alice", workflow_id, Page::first(100))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.run.id)
        .collect()
}

async fn pruning_deletes_ended_runs_by_age_then_by_count(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let a = store
        .create_workflow("alice", NewWorkflow::new("A", doc("a")))
        .await
        .unwrap();
    let b = store
        .create_workflow("alice", NewWorkflow::new("B", doc("b")))
        .await
        .unwrap();
    let statuses = [
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Completed,
    ];
    let mut runs = Vec::new();
    // A: a0 … a4, created 100, 90, … 60 minutes ago, each ended a minute later; and the
    // oldest of all still running (a crashed process's: it may be resumed).
    for i in 0..5i64 {
        let created = 100 - 10 * i;
        runs.push(ended_run(
            &format!("a{i}"),
            Some(&a.id),
            created,
            statuses[i as usize % 3],
            Some(created - 1),
        ));
    }
    runs.push(run_record("a-running", Some(&a.id), 200));
    // Created before the age cut below but ended after it (it stays), and ended after a4 though
    // created before it (a4, not it, is the newest its count keeps).
    runs.push(ended_run(
        "a-long",
        Some(&a.id),
        70,
        RunStatus::Completed,
        Some(50),
    ));
    // B: one with no end time (its creation counts), two recent.
    runs.push(ended_run(
        "b-old",
        Some(&b.id),
        120,
        RunStatus::Completed,
        None,
    ));
    runs.push(ended_run(
        "b0",
        Some(&b.id),
        50,
        RunStatus::Completed,
        Some(49),
    ));
    runs.push(ended_run(
        "b1",
        Some(&b.id),
        40,
        RunStatus::Completed,
        Some(39),
    ));
    // And B's newest run is still running: it is not the one its count keeps.
    runs.push(run_record("b-running", Some(&b.id), 10));
    // Runs filed under no workflow: ranked as one more workflow.
    for i in 0..3i64 {
        runs.push(ended_run(
            &format!("x{i}"),
            None,
            30 - i,
            RunStatus::Completed,
            Some(20),
        ));
    }
    for run in &runs {
        store.save_run(run).await.unwrap();
        store
            .save_node_execution(&execution(&run.id, "n0", 1.0))
            .await
            .unwrap();
    }

    // Nothing to do: nothing goes.
    assert_eq!(
        store.prune(&Retention::default()).await.unwrap(),
        Pruned::default()
    );
    assert_eq!(run_ids(&store, &a.id).await.len(), 7);

    // By age: what ended more than 65 minutes ago (a3 ended 69 minutes ago, a4 59, a-long 50;
    // b-old has no end, and was created 120 minutes ago). The running run is older, and stays.
    let by_age = Retention {
        runs_ended_before: Some(Utc::now() - ChronoDuration::minutes(65)),
        ..Retention::default()
    };
    let pruned = store.prune(&by_age).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            runs: 5,
            cache_entries: 0
        }
    );
    assert_eq!(run_ids(&store, &a.id).await, ["a4", "a-long", "a-running"]);
    assert_eq!(run_ids(&store, &b.id).await, ["b-running", "b1", "b0"]);
    for gone in ["a0", "a1", "a2", "a3", "b-old"] {
        assert_eq!(store.get_run(gone).await.unwrap(), None, "{gone}");
        // Its node executions went with it.
        assert!(
            store.node_executions(gone).await.unwrap().is_empty(),
            "{gone}"
        );
    }
    assert_eq!(store.node_executions("a4").await.unwrap().len(), 1);
    assert!(store.get_run("x0").await.unwrap().is_some());
    // The same rule again: nothing left to delete.
    assert_eq!(store.prune(&by_age).await.unwrap().runs, 0);

    // By count: the newest ended run of each workflow, and of the runs of none. The running
    // run neither counts nor goes.
    let by_count = Retention {
        runs_per_workflow: Some(1),
        ..Retention::default()
    };
    assert_eq!(store.prune(&by_count).await.unwrap().runs, 4);
    assert_eq!(run_ids(&store, &a.id).await, ["a4", "a-running"]);
    assert_eq!(run_ids(&store, &b.id).await, ["b-running", "b1"]);
    assert!(store.get_run("x2").await.unwrap().is_some());
    for gone in ["a-long", "b0", "x0", "x1"] {
        assert_eq!(store.get_run(gone).await.unwrap(), None, "{gone}");
    }
    assert_eq!(store.find_interrupted_runs().await.unwrap().len(), 2);

    // Keeping none deletes every ended run; a count beyond what a database counts keeps all.
    let beyond = Retention {
        runs_per_workflow: Some(u64::MAX),
        ..Retention::default()
    };
    assert_eq!(store.prune(&beyond).await.unwrap().runs, 0);
    let none = Retention {
        runs_per_workflow: Some(0),
        ..Retention::default()
    };
    assert_eq!(store.prune(&none).await.unwrap().runs, 3);
    assert_eq!(run_ids(&store, &a.id).await, ["a-running"]);
    assert_eq!(run_ids(&store, &b.id).await, ["b-running"]);

    // The latest cut there is (a time SQLite would write with a sign, past year 9999) deletes
    // every ended run, as on every backend.
    store
        .save_run(&ended_run(
            "b2",
            Some(&b.id),
            5,
            RunStatus::Completed,
            Some(4),
        ))
        .await
        .unwrap();
    let all = Retention {
        runs_ended_before: Some(chrono::DateTime::<Utc>::MAX_UTC),
        ..Retention::default()
    };
    assert_eq!(store.prune(&all).await.unwrap().runs, 1);
    assert_eq!(run_ids(&store, &b.id).await, ["b-running"]);
    store.close().await;
}

async fn pruning_many_runs_spans_several_statements(target: &Target) {
    let store = target.open().await;
    with_users(&store).await;
    let wf = store
        .create_workflow("alice", NewWorkflow::new("Busy", doc("busy")))
        .await
        .unwrap();
    // More runs than one statement deletes (100), each with two node executions.
    let count = 234i64;
    for i in 0..count {
        let id = format!("busy-{i:03}");
        store
            .save_run(&ended_run(
                &id,
                Some(&wf.id),
                count - i,
                RunStatus::Completed,
                Some(0),
            ))
            .await
            .unwrap();
        for node in ["n0", "n1"] {
            store
                .save_node_execution(&execution(&id, node, 2.0))
                .await
                .unwrap();
        }
    }
    let keep = Retention {
        runs_per_workflow: Some(4),
        ..Retention::default()
    };
    assert_eq!(store.prune(&keep).await.unwrap().runs, count as u64 - 4);
    assert_eq!(
        run_ids(&store, &wf.id).await,
        ["busy-233", "busy-232", "busy-231", "busy-230"]
    );
    assert!(store.node_executions("busy-000").await.unwrap().is_empty());
    assert_eq!(store.node_executions("busy-233").await.unwrap().len(), 2);
    store.close().await;
}

async fn pruning_deletes_old_and_surplus_cache_entries(target: &Target) {
    let store = target.open().await;
    let key = |i: u8| CacheKey([i; 32]);
    let generations = |i: u8| {
        vec![Generation {
            items: vec![Item::number(f64::from(i)).on("out")],
        }]
    };
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(15));
    // Keys 1 and 2 are written before the cut, 3 and 4 after it, each a moment apart.
    let mut cut = None;
    for i in 1..=4u8 {
        if i == 3 {
            pause().await;
            cut = Some(Utc::now());
        }
        pause().await;
        store.cache_put(&key(i), &generations(i)).await.unwrap();
    }
    let present = async |i: u8| store.cache_get(&key(i)).await.unwrap().is_some();

    let by_age = Retention {
        cache_written_before: cut,
        ..Retention::default()
    };
    assert_eq!(
        store.prune(&by_age).await.unwrap(),
        Pruned {
            runs: 0,
            cache_entries: 2
        }
    );
    assert!(!present(1).await && !present(2).await);
    assert!(present(3).await && present(4).await);
    // Rewriting an entry renews it: 1 comes back, newer than the cut.
    pause().await;
    store.cache_put(&key(1), &generations(1)).await.unwrap();
    assert_eq!(store.prune(&by_age).await.unwrap().cache_entries, 0);
    assert_eq!(
        store.cache_get(&key(1)).await.unwrap(),
        Some(generations(1))
    );

    // By count: the most recently written (1, then 4) stay.
    let by_count = Retention {
        cache_entries: Some(2),
        ..Retention::default()
    };
    assert_eq!(store.prune(&by_count).await.unwrap().cache_entries, 1);
    assert!(present(1).await && present(4).await && !present(3).await);
    // The latest cut there is deletes every entry, as on every backend.
    let all = Retention {
        cache_written_before: Some(chrono::DateTime::<Utc>::MAX_UTC),
        ..Retention::default()
    };
    assert_eq!(store.prune(&all).await.unwrap().cache_entries, 2);
    assert!(!present(1).await && !present(4).await);
    store.cache_put(&key(5), &generations(5)).await.unwrap();
    let none = Retention {
        cache_entries: Some(0),
        ..Retention::default()
    };
    assert_eq!(store.prune(&none).await.unwrap().cache_entries, 1);
    assert!(!present(5).await);
    store.close().await;
}
