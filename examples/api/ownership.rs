//! Who may use an asset: its owners, as the store records them
//! ([`AssetRecordStore::grant_asset`]). An upload belongs to its uploader; an asset a run
//! produced belongs to the owner of the run, granted by the [`AssetGrants`] observer as each
//! node completes (before the run's event reaches any SSE client, so a client can fetch what
//! an event announced).

use crate::api::RunHub;
use crate::error::{Error, Result};
use crate::host;
use async_trait::async_trait;
use gatewai_core::error::{shown_list, shown_up_to};
use gatewai_core::{EventKind, FileAsset, Observer, RunEvent, Workflow};
use gatewai_store::prelude::*;
use serde_json::Value;
use std::sync::Arc;

/// The most characters of a request's id an answer quotes.
const QUOTED_ID: usize = 80;

/// The assets a document's nodes name, as (node id, asset id): a File node's `asset` config
/// and the files in every node's stored result.
pub fn referenced_assets(document: &Workflow) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for node in &document.nodes {
        if let Some(id) = node
            .config
            .get("asset")
            .and_then(|asset| asset.get("id"))
            .and_then(Value::as_str)
        {
            found.push((node.id.clone(), id.to_owned()));
        }
        if let Some(result) = &node.result {
            for asset in host::result_assets(result) {
                found.push((node.id.clone(), asset.id.clone()));
            }
        }
    }
    found
}

/// Checks that `user` owns every asset `document` names before a run of it starts. A document
/// is untrusted (a canvas copied from another user names that user's assets): its nodes read
/// what they name, and what a run produces becomes the run owner's, so a run naming another
/// user's asset would hand it over. Missing and foreign assets get the same answer.
pub async fn check_assets(store: &Store, document: &Workflow, user: &str) -> Result<()> {
    let mut foreign = Vec::new();
    for (node, asset) in referenced_assets(document) {
        let owned = store.get_owned_asset(user, &asset).await?.is_some();
        if !owned {
            // The ids are the request's own: quoted briefly, control characters escaped.
            foreign.push(format!(
                "node `{}` names asset `{}`",
                shown_up_to(&node, QUOTED_ID),
                shown_up_to(&asset, QUOTED_ID)
            ));
        }
    }
    match foreign.is_empty() {
        true => Ok(()),
        false => Err(Error::bad_request(format!(
            "the workflow names assets that are not yours (or do not exist); upload them or clear those nodes: {}",
            shown_list(&foreign, ", ")
        ))),
    }
}

/// Makes `user` an owner of the asset with `asset`'s id (described from `asset` when the
/// store has no description of it yet).
pub async fn grant(store: &Store, asset: &FileAsset, user: &str) -> Result<()> {
    match store.grant_asset(&asset.id, user).await {
        Ok(_) => Ok(()),
        Err(gatewai_store::Error::NotFound {
            entity: "asset", ..
        }) => Ok(store.put_asset_record(asset, Some(user)).await?),
        Err(e) => Err(e.into()),
    }
}

/// An engine observer that gives the owner of a server-started run every asset its nodes
/// produce. Register it before the [`RunHub`].
pub struct AssetGrants {
    store: Store,
    hub: Arc<RunHub>,
}

impl AssetGrants {
    /// Grants for the runs registered in `hub`.
    pub fn new(store: Store, hub: Arc<RunHub>) -> Self {
        AssetGrants { store, hub }
    }
}

#[async_trait]
impl Observer for AssetGrants {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        let mut failed = Vec::new();
        for event in events {
            let EventKind::NodeCompleted { result, .. } = &event.kind else {
                continue;
            };
            let Some(owner) = self.hub.owner(&event.run_id) else {
                continue;
            };
            for asset in host::result_assets(result) {
                if let Err(e) = grant(&self.store, asset, &owner).await {
                    tracing::warn!(asset_id = %asset.id, error = %e, "cannot record the asset's owner");
                    failed.push(format!("{}: {e}", asset.id));
                }
            }
        }
        match failed.is_empty() {
            true => Ok(()),
            // The owner cannot fetch these assets: the run's outcome says so.
            false => Err(gatewai_core::Error::observer(
                gatewai_core::ErrorKind::Unavailable,
                format!(
                    "cannot record the owner of {} asset(s) of run `{}`: {}",
                    failed.len(),
                    events[0].run_id,
                    failed.join("; ")
                ),
            )),
        }
    }
}
