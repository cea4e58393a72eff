//! The in-memory backend (`memory://`): the same semantics as the databases — ownership
//! scoping, cascading deletes, newest-first history — without persistence.

use crate::backend::{
    AssetRecordStore, Backend, BackendKind, CacheStore, RunStore, UserStore, WorkflowStore,
};
use crate::error::{Error, Result};
use crate::model::{
    NewUser, NewWorkflow, Page, Retention, RunHistoryEntry, StoredWorkflow, User, WorkflowUpdate,
};
use crate::write_plan::{
    ProgressUpdate, Write, keeps_completed_executions, normalize_execution, normalize_run, now,
    plan_writes,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use gatewai_core::{
    CacheKey, ExecutionStatus, FileAsset, Generation, NodeExecution, RunEvent, RunRecord, RunStatus,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A backend in memory. Every method takes one lock, so each call (a batch of run events
/// included) is atomic.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<String, User>,
    workflows: HashMap<String, StoredWorkflow>,
    runs: HashMap<String, RunRecord>,
    /// Per run: (seq, execution), in seq order.
    executions: HashMap<String, Vec<(i64, NodeExecution)>>,
    /// Per key: the generations and when they were written.
    cache: HashMap<CacheKey, (Vec<Generation>, DateTime<Utc>)>,
    assets: HashMap<String, FileAsset>,
    /// Per asset: its owners and when each was granted it.
    owners: HashMap<String, Vec<(String, DateTime<Utc>)>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic mid-call; every call leaves the state consistent
        // before anything that could panic, so the data is still valid.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Grants `asset_id` to `user_id` (both exist); whether it was new.
    fn grant(&mut self, asset_id: &str, user_id: &str, at: DateTime<Utc>) -> bool {
        let owners = self.owners.entry(asset_id.to_owned()).or_default();
        if owners.iter().any(|(u, _)| u == user_id) {
            return false;
        }
        owners.push((user_id.to_owned(), at));
        true
    }

    fn owns(&self, user_id: &str, asset_id: &str) -> bool {
        self.owners
            .get(asset_id)
            .is_some_and(|owners| owners.iter().any(|(u, _)| u == user_id))
    }

    fn owned_workflow(&self, owner_id: &str, id: &str) -> Option<&StoredWorkflow> {
        self.workflows.get(id).filter(|w| w.owner_id == owner_id)
    }

    fn delete_workflow_rows(&mut self, id: &str) {
        self.workflows.remove(id);
        let runs: Vec<String> = self
            .runs
            .values()
            .filter(|r| r.workflow_id.as_deref() == Some(id))
            .map(|r| r.id.clone())
            .collect();
        for run in runs {
            self.runs.remove(&run);
            self.executions.remove(&run);
        }
    }

    fn save_run(&mut self, run: &RunRecord) {
        let mut run = normalize_run(run);
        if let Some(wf) = &run.workflow_id
            && !self.workflows.contains_key(wf)
        {
            run.workflow_id = None;
        }
        if let Some(old) = self.runs.get(&run.id) {
            run.created_at = old.created_at;
        }
        self.runs.insert(run.id.clone(), run);
    }

    fn update_run(&mut self, run: &RunRecord) -> Result<()> {
        let run = normalize_run(run);
        let stored = self
            .runs
            .get_mut(&run.id)
            .ok_or_else(|| Error::not_found("run", &run.id))?;
        stored.status = run.status;
        stored.error = run.error;
        stored.started_at = run.started_at;
        stored.finished_at = run.finished_at;
        Ok(())
    }

    fn put_execution(&mut self, seq: i64, record: NodeExecution) -> Result<()> {
        if !self.runs.contains_key(&*record.run_id) {
            return Err(Error::not_found("run", &*record.run_id));
        }
        let rows = self
            .executions
            .entry(record.run_id.to_string())
            .or_default();
        match rows.iter_mut().find(|(_, e)| e.node_id == record.node_id) {
            // A resumed run's node queued again keeps its earlier result until the run
            // records it anew (see `BatchWrite::StartRun`).
            Some((_, e))
                if e.status == ExecutionStatus::Completed
                    && record.status == ExecutionStatus::Queued => {}
            Some(row) => row.1 = record,
            None => {
                rows.push((seq, record));
                rows.sort_by_key(|(seq, _)| *seq);
            }
        }
        Ok(())
    }

    fn executions_of(&self, run_id: &str) -> Vec<NodeExecution> {
        self.executions
            .get(run_id)
            .map(|rows| rows.iter().map(|(_, e)| e.clone()).collect())
            .unwrap_or_default()
    }

    fn apply(&mut self, write: Write) -> Result<()> {
        match write {
            Write::StartRun(run) => {
                if keeps_completed_executions(&run) {
                    if let Some(rows) = self.executions.get_mut(&run.id) {
                        rows.retain(|(_, e)| e.status == ExecutionStatus::Completed);
                    }
                } else {
                    self.executions.remove(&run.id);
                }
                self.save_run(&run);
            }
            Write::SaveRun(run) => self.save_run(&run),
            Write::Execution { seq, record } => self.put_execution(seq, record)?,
            Write::ExecutionProgress(ProgressUpdate {
                seq,
                run_id,
                node_id,
                status,
                started_at,
                attempts,
                error,
            }) => {
                let existing = self
                    .executions
                    .get_mut(&run_id)
                    .and_then(|rows| rows.iter_mut().find(|(_, e)| *e.node_id == *node_id));
                match existing {
                    Some((_, e)) => {
                        e.status = status;
                        e.started_at = Some(started_at);
                        e.attempts = attempts;
                        e.error = error;
                    }
                    None => self.put_execution(
                        seq,
                        NodeExecution {
                            status,
                            error,
                            started_at: Some(started_at),
                            attempts,
                            ..NodeExecution::queued(
                                run_id.into(),
                                node_id.into(),
                                Arc::from(""),
                                Arc::from(""),
                            )
                        },
                    )?,
                }
            }
        }
        Ok(())
    }
}

fn page_of<T>(rows: Vec<T>, page: Page) -> Vec<T> {
    let offset = usize::try_from(page.offset).unwrap_or(usize::MAX);
    rows.into_iter()
        .skip(offset)
        .take(page.effective_limit() as usize)
        .collect()
}

fn with_ids(mut wf: StoredWorkflow) -> StoredWorkflow {
    wf.document.id = Some(wf.id.clone());
    wf.document.name = Some(wf.name.clone());
    wf
}

#[async_trait]
impl UserStore for MemoryBackend {
    async fn upsert_user(&self, user: &NewUser) -> Result<User> {
        crate::argument::user(user)?;
        let mut state = self.lock();
        let now = now();
        let stored = state.users.entry(user.id.clone()).or_insert_with(|| User {
            id: user.id.clone(),
            email: String::new(),
            first_name: None,
            last_name: None,
            created_at: now,
            updated_at: now,
        });
        stored.email = user.email.clone();
        stored.first_name = user.first_name.clone();
        stored.last_name = user.last_name.clone();
        stored.updated_at = now;
        Ok(stored.clone())
    }

    async fn get_user(&self, id: &str) -> Result<Option<User>> {
        Ok(self.lock().users.get(id).cloned())
    }

    async fn delete_user(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        if state.users.remove(id).is_none() {
            return Err(Error::not_found("user", id));
        }
        let owned: Vec<String> = state
            .workflows
            .values()
            .filter(|w| w.owner_id == id)
            .map(|w| w.id.clone())
            .collect();
        for wf in owned {
            state.delete_workflow_rows(&wf);
        }
        for owners in state.owners.values_mut() {
            owners.retain(|(u, _)| u != id);
        }
        Ok(())
    }
}

#[async_trait]
impl WorkflowStore for MemoryBackend {
    async fn create_workflow(
        &self,
        owner_id: &str,
        workflow: NewWorkflow,
    ) -> Result<StoredWorkflow> {
        let id = crate::argument::new_workflow(&workflow)?;
        let mut state = self.lock();
        if !state.users.contains_key(owner_id) {
            return Err(Error::not_found("user", owner_id));
        }
        if state.workflows.contains_key(&id) {
            return Err(Error::Conflict {
                entity: "workflow",
                id,
            });
        }
        let now = now();
        let stored = with_ids(StoredWorkflow {
            id: id.clone(),
            owner_id: owner_id.to_owned(),
            name: workflow.name,
            document: workflow.document,
            created_at: now,
            updated_at: now,
        });
        state.workflows.insert(id, stored.clone());
        Ok(stored)
    }

    async fn get_workflow(&self, owner_id: &str, id: &str) -> Result<Option<StoredWorkflow>> {
        Ok(self.lock().owned_workflow(owner_id, id).cloned())
    }

    async fn list_workflows(&self, owner_id: &str, page: Page) -> Result<Vec<StoredWorkflow>> {
        let state = self.lock();
        let mut rows: Vec<StoredWorkflow> = state
            .workflows
            .values()
            .filter(|w| w.owner_id == owner_id)
            .cloned()
            .collect();
        rows.sort_by(|a, b| (b.updated_at, &b.id).cmp(&(a.updated_at, &a.id)));
        Ok(page_of(rows, page))
    }

    async fn update_workflow(
        &self,
        owner_id: &str,
        id: &str,
        update: WorkflowUpdate,
    ) -> Result<StoredWorkflow> {
        crate::argument::workflow_update(&update)?;
        let mut state = self.lock();
        let stored = state
            .workflows
            .get_mut(id)
            .filter(|w| w.owner_id == owner_id)
            .ok_or_else(|| Error::not_found("workflow", id))?;
        if let Some(name) = update.name {
            stored.name = name;
        }
        if let Some(document) = update.document {
            stored.document = document;
        }
        stored.updated_at = now().max(stored.updated_at);
        *stored = with_ids(stored.clone());
        Ok(stored.clone())
    }

    async fn delete_workflow(&self, owner_id: &str, id: &str) -> Result<()> {
        let mut state = self.lock();
        if state.owned_workflow(owner_id, id).is_none() {
            return Err(Error::not_found("workflow", id));
        }
        state.delete_workflow_rows(id);
        Ok(())
    }
}

#[async_trait]
impl RunStore for MemoryBackend {
    async fn save_run(&self, run: &RunRecord) -> Result<()> {
        crate::argument::run(run)?;
        self.lock().save_run(run);
        Ok(())
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        self.lock().update_run(run)
    }

    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self.lock().runs.get(run_id).cloned())
    }

    async fn save_node_execution(&self, execution: &NodeExecution) -> Result<()> {
        crate::argument::execution(execution)?;
        let mut state = self.lock();
        let seq = state
            .executions
            .get(&*execution.run_id)
            .map_or(0, |rows| rows.len() as i64);
        state.put_execution(seq, normalize_execution(execution))
    }

    async fn node_executions(&self, run_id: &str) -> Result<Vec<NodeExecution>> {
        Ok(self.lock().executions_of(run_id))
    }

    async fn get_run_entry(&self, owner_id: &str, run_id: &str) -> Result<Option<RunHistoryEntry>> {
        let state = self.lock();
        let Some(run) = state.runs.get(run_id) else {
            return Ok(None);
        };
        let owned = run
            .workflow_id
            .as_deref()
            .is_some_and(|wf| state.owned_workflow(owner_id, wf).is_some());
        Ok(owned.then(|| RunHistoryEntry {
            run: run.clone(),
            executions: state.executions_of(run_id),
        }))
    }

    async fn run_history(
        &self,
        owner_id: &str,
        workflow_id: &str,
        page: Page,
    ) -> Result<Vec<RunHistoryEntry>> {
        let state = self.lock();
        if state.owned_workflow(owner_id, workflow_id).is_none() {
            return Err(Error::not_found("workflow", workflow_id));
        }
        let mut runs: Vec<&RunRecord> = state
            .runs
            .values()
            .filter(|r| r.workflow_id.as_deref() == Some(workflow_id))
            .collect();
        runs.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(page_of(runs, page)
            .into_iter()
            .map(|run| RunHistoryEntry {
                run: run.clone(),
                executions: state.executions_of(&run.id),
            })
            .collect())
    }

    async fn record_events(&self, events: &[RunEvent]) -> Result<()> {
        let writes = plan_writes(events);
        let mut state = self.lock();
        // All or nothing: apply to a copy of what the batch touches, then swap it in.
        let run_ids: Vec<String> = events.iter().map(|e| e.run_id.to_string()).collect();
        let saved_runs: Vec<(String, Option<RunRecord>, Option<Vec<(i64, NodeExecution)>>)> =
            run_ids
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        state.runs.get(id).cloned(),
                        state.executions.get(id).cloned(),
                    )
                })
                .collect();
        for write in writes {
            if let Err(e) = state.apply(write) {
                for (id, run, executions) in saved_runs {
                    match run {
                        Some(run) => state.runs.insert(id.clone(), run),
                        None => state.runs.remove(&id),
                    };
                    match executions {
                        Some(rows) => state.executions.insert(id, rows),
                        None => state.executions.remove(&id),
                    };
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn find_interrupted_runs(&self) -> Result<Vec<RunRecord>> {
        let state = self.lock();
        let mut runs: Vec<RunRecord> = state
            .runs
            .values()
            .filter(|r| matches!(r.status, RunStatus::Running | RunStatus::Pending))
            .cloned()
            .collect();
        runs.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(runs)
    }

    async fn mark_interrupted(&self, run_id: &str) -> Result<()> {
        let mut state = self.lock();
        let now = now();
        let run = state
            .runs
            .get_mut(run_id)
            .ok_or_else(|| Error::not_found("run", run_id))?;
        if run.status.is_terminal() {
            return Err(Error::run_already_ended(run_id, Some(run.status)));
        }
        run.status = RunStatus::Failed;
        run.error = Some(crate::INTERRUPTED.to_owned());
        run.finished_at = Some(now);
        if let Some(rows) = state.executions.get_mut(run_id) {
            for (_, e) in rows.iter_mut().filter(|(_, e)| !e.status.is_terminal()) {
                e.status = ExecutionStatus::Failed;
                e.error = Some(crate::INTERRUPTED.to_owned());
                e.finished_at = Some(now);
            }
        }
        Ok(())
    }

    async fn run_workflow(&self, run_id: &str) -> Result<Option<StoredWorkflow>> {
        let state = self.lock();
        Ok(state
            .runs
            .get(run_id)
            .and_then(|r| r.workflow_id.as_deref())
            .and_then(|wf| state.workflows.get(wf))
            .cloned())
    }

    async fn prune_runs(&self, retention: &Retention) -> Result<u64> {
        let retention = retention.normalized();
        let mut state = self.lock();
        // Each workflow's ended runs, newest first, as the run history lists them.
        let mut ended: Vec<&RunRecord> = state
            .runs
            .values()
            .filter(|r| r.status.is_terminal())
            .collect();
        ended.sort_unstable_by(|a, b| {
            a.workflow_id
                .cmp(&b.workflow_id)
                .then(b.created_at.cmp(&a.created_at))
                .then(b.id.cmp(&a.id))
        });
        let mut victims = Vec::new();
        let mut rank = 0u64;
        let mut group: Option<Option<&str>> = None;
        for run in ended {
            let workflow = run.workflow_id.as_deref();
            if group != Some(workflow) {
                group = Some(workflow);
                rank = 0;
            }
            rank += 1;
            let ended_at = run.finished_at.unwrap_or(run.created_at);
            if retention.runs_ended_before.is_some_and(|t| ended_at < t)
                || retention.runs_per_workflow.is_some_and(|k| rank > k)
            {
                victims.push(run.id.clone());
            }
        }
        for id in &victims {
            state.runs.remove(id);
            state.executions.remove(id);
        }
        Ok(victims.len() as u64)
    }
}

#[async_trait]
impl CacheStore for MemoryBackend {
    async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<Generation>>> {
        Ok(self
            .lock()
            .cache
            .get(key)
            .map(|(outputs, _)| outputs.clone()))
    }

    async fn cache_put(&self, key: &CacheKey, outputs: &[Generation]) -> Result<()> {
        self.lock().cache.insert(*key, (outputs.to_vec(), now()));
        Ok(())
    }

    async fn prune_cache(&self, retention: &Retention) -> Result<u64> {
        let retention = retention.normalized();
        let mut state = self.lock();
        // Newest first, as the databases rank them.
        let mut entries: Vec<(DateTime<Utc>, CacheKey)> = state
            .cache
            .iter()
            .map(|(key, (_, at))| (*at, *key))
            .collect();
        entries.sort_unstable_by(|a, b| b.cmp(a));
        let victims: Vec<CacheKey> = entries
            .into_iter()
            .enumerate()
            .filter(|(rank, (at, _))| {
                retention.cache_written_before.is_some_and(|t| *at < t)
                    || retention.cache_entries.is_some_and(|k| *rank as u64 >= k)
            })
            .map(|(_, (_, key))| key)
            .collect();
        for key in &victims {
            state.cache.remove(key);
        }
        Ok(victims.len() as u64)
    }
}

#[async_trait]
impl AssetRecordStore for MemoryBackend {
    async fn put_asset_record(&self, asset: &FileAsset, owner_id: Option<&str>) -> Result<()> {
        crate::argument::asset(asset, owner_id)?;
        let mut state = self.lock();
        if let Some(owner) = owner_id
            && !state.users.contains_key(owner)
        {
            return Err(Error::not_found("user", owner));
        }
        // As the databases store it: a signed URL is not kept.
        let asset = FileAsset {
            signed_url: None,
            signed_url_exp: None,
            ..asset.clone()
        };
        if let Some(owner) = owner_id {
            state.grant(&asset.id, owner, now());
        }
        state.assets.insert(asset.id.clone(), asset);
        Ok(())
    }

    async fn get_asset_record(&self, id: &str) -> Result<Option<FileAsset>> {
        Ok(self.lock().assets.get(id).cloned())
    }

    async fn get_owned_asset(&self, owner_id: &str, id: &str) -> Result<Option<FileAsset>> {
        let state = self.lock();
        Ok(state
            .assets
            .get(id)
            .filter(|_| state.owns(owner_id, id))
            .cloned())
    }

    async fn list_assets(&self, owner_id: &str, page: Page) -> Result<Vec<FileAsset>> {
        let state = self.lock();
        let mut granted: Vec<(DateTime<Utc>, &String)> = state
            .owners
            .iter()
            .filter_map(|(asset, owners)| {
                let (_, at) = owners.iter().find(|(u, _)| u == owner_id)?;
                Some((*at, asset))
            })
            .collect();
        granted.sort_by(|a, b| b.cmp(a));
        let rows = granted
            .into_iter()
            .filter_map(|(_, asset)| state.assets.get(asset).cloned())
            .collect();
        Ok(page_of(rows, page))
    }

    async fn grant_asset(&self, asset_id: &str, user_id: &str) -> Result<bool> {
        crate::argument::grant(asset_id, user_id)?;
        let mut state = self.lock();
        if !state.assets.contains_key(asset_id) {
            return Err(Error::not_found("asset", asset_id));
        }
        if state.owns(user_id, asset_id) {
            return Ok(false);
        }
        if !state.users.contains_key(user_id) {
            return Err(Error::not_found("user", user_id));
        }
        Ok(state.grant(asset_id, user_id, now()))
    }

    async fn revoke_asset(&self, asset_id: &str, user_id: &str) -> Result<bool> {
        let mut state = self.lock();
        let Some(owners) = state.owners.get_mut(asset_id) else {
            return Ok(false);
        };
        let before = owners.len();
        owners.retain(|(u, _)| u != user_id);
        Ok(owners.len() < before)
    }

    async fn asset_owners(&self, asset_id: &str) -> Result<Vec<String>> {
        let state = self.lock();
        let mut owners: Vec<(DateTime<Utc>, String)> = state
            .owners
            .get(asset_id)
            .map(|owners| owners.iter().map(|(u, at)| (*at, u.clone())).collect())
            .unwrap_or_default();
        owners.sort();
        Ok(owners.into_iter().map(|(_, u)| u).collect())
    }

    async fn delete_asset_record(&self, id: &str) -> Result<bool> {
        let mut state = self.lock();
        state.owners.remove(id);
        Ok(state.assets.remove(id).is_some())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    async fn close(&self) {}
}
