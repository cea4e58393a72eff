//! How long a host keeps run history and result-cache entries: settings read from the
//! environment, turned into a [`Retention`] and applied by a background task now and then.
//!
//! - `GATEWAI_KEEP_RUNS_DAYS`: runs that ended more than this many days ago are deleted (with
//!   their node executions);
//! - `GATEWAI_KEEP_RUNS`: of each workflow's ended runs, only this many newest are kept;
//! - `GATEWAI_KEEP_CACHE_DAYS`: result-cache entries written longer ago than this are deleted;
//! - `GATEWAI_KEEP_CACHE_ENTRIES`: only this many most recently written cache entries are kept.
//!
//! Unset, a rule does not apply; with none set nothing is ever pruned. Runs still running are
//! never deleted (they may be resumed).

use crate::error::{Error, Result};
use chrono::{DateTime, Duration as Days, Utc};
use gatewai_store::{Retention, Store};
use std::time::Duration;

/// How often the server prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Retention settings, relative to the time a prune runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionSettings {
    /// Ended runs older than this many days go.
    pub runs_days: Option<u32>,
    /// Ended runs kept per workflow.
    pub runs_per_workflow: Option<u64>,
    /// Cache entries older than this many days go.
    pub cache_days: Option<u32>,
    /// Cache entries kept.
    pub cache_entries: Option<u64>,
}

impl RetentionSettings {
    /// The settings from the process environment (see the module docs).
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from `var` (a variable's value by name, `None` when unset). A value that is
    /// not a whole number is an error naming its variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        fn number<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
        ) -> Result<Option<T>> {
            match var(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::Config(format!("{name} must be a whole number, not `{v}`"))
                }),
            }
        }
        Ok(RetentionSettings {
            runs_days: number(&var, "GATEWAI_KEEP_RUNS_DAYS")?,
            runs_per_workflow: number(&var, "GATEWAI_KEEP_RUNS")?,
            cache_days: number(&var, "GATEWAI_KEEP_CACHE_DAYS")?,
            cache_entries: number(&var, "GATEWAI_KEEP_CACHE_ENTRIES")?,
        })
    }

    /// Whether any rule is set.
    pub fn is_set(&self) -> bool {
        *self != RetentionSettings::default()
    }

    /// The store's retention for a prune at `now`.
    pub fn retention_at(&self, now: DateTime<Utc>) -> Retention {
        // A number of days beyond what a time can go back keeps everything.
        let before = |days: Option<u32>| {
            days.and_then(|d| now.checked_sub_signed(Days::try_days(i64::from(d))?))
        };
        Retention {
            runs_ended_before: before(self.runs_days),
            runs_per_workflow: self.runs_per_workflow,
            cache_written_before: before(self.cache_days),
            cache_entries: self.cache_entries,
        }
    }

    /// Prunes `store` now, then every `every`, until the task is dropped or aborted; a prune
    /// that fails is logged and tried again next time. `None` when no rule is set.
    pub fn spawn(self, store: Store, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        if !self.is_set() {
            return None;
        }
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = store.prune(&self.retention_at(Utc::now())).await {
                    tracing::warn!(%error, "pruning the store failed; trying again later");
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewai_core::{RunRecord, RunStatus, TriggerType};

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn settings_read_each_variable_and_name_a_bad_one() {
        assert!(!RetentionSettings::from_vars(vars(&[])).unwrap().is_set());
        let settings = RetentionSettings::from_vars(vars(&[
            ("GATEWAI_KEEP_RUNS_DAYS", " 14 "),
            ("GATEWAI_KEEP_RUNS", "100"),
            ("GATEWAI_KEEP_CACHE_DAYS", ""),
            ("GATEWAI_KEEP_CACHE_ENTRIES", "5000"),
        ]))
        .unwrap();
        assert_eq!(
            settings,
            RetentionSettings {
                runs_days: Some(14),
                runs_per_workflow: Some(100),
                cache_days: None,
                cache_entries: Some(5000),
            }
        );
        let now = Utc::now();
        let retention = settings.retention_at(now);
        assert_eq!(retention.runs_ended_before, Some(now - Days::days(14)));
        assert_eq!(retention.cache_written_before, None);
        assert_eq!(retention.cache_entries, Some(5000));
        // Further back than a time goes: no cut, nothing deleted by age (and no panic).
        let forever = RetentionSettings {
            runs_days: Some(u32::MAX),
            ..RetentionSettings::default()
        };
        assert_eq!(forever.retention_at(now).runs_ended_before, None);
        for (name, value) in [
            ("GATEWAI_KEEP_RUNS", "-1"),
            ("GATEWAI_KEEP_CACHE_DAYS", "two"),
        ] {
            let error = RetentionSettings::from_vars(vars(&[(name, value)])).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[tokio::test]
    async fn the_task_prunes_at_once_and_none_runs_without_rules() {
        let store = Store::memory();
        let old = Utc::now() - Days::days(30);
        for (id, status) in [
            ("old", RunStatus::Completed),
            ("running", RunStatus::Running),
        ] {
            store
                .save_run(&RunRecord {
                    id: id.into(),
                    workflow_id: None,
                    trigger_type: TriggerType::Api,
                    status,
                    error: None,
                    created_at: old,
                    started_at: Some(old),
                    finished_at: status.is_terminal().then_some(old),
                    cache_scope: None,
                })
                .await
                .unwrap();
        }
        assert!(
            RetentionSettings::default()
                .spawn(store.clone(), PRUNE_EVERY)
                .is_none()
        );
        let settings = RetentionSettings {
            runs_days: Some(7),
            ..RetentionSettings::default()
        };
        let task = settings.spawn(store.clone(), PRUNE_EVERY).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.get_run("old").await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "never pruned");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(store.get_run("running").await.unwrap().is_some());
        task.abort();
    }
}
