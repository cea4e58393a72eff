//! What the command-line runner and the server share: the node registry with every built-in
//! node, the engine composed with a store, reading workflow files and source-node values, the
//! checks for programs and API keys a workflow needs, and writing output assets to files.

use crate::error::{Error, Result};
use gatewai_core::model::Data;
use gatewai_core::{
    AssetStore, Engine, FileAsset, NodeRegistry, NodeResult, Observer, RunInput, RunOutcome,
    RunTarget, Workflow,
};
use gatewai_store::{RunRecorder, Store};
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The user the command-line runner stores its workflows and runs under.
pub const LOCAL_USER: &str = "local";

/// Node types that start ffmpeg / ffprobe processes.
const FFMPEG_NODE_TYPES: [&str; 2] = ["ExtractFrame", "MediaCut"];

/// Node types that call an AI provider.
const AI_NODE_TYPES: [&str; 4] = ["LLM", "ImageGen", "TextToSpeech", "SpeechToText"];

/// A registry with every built-in node type, AI providers configured from the environment
/// (`GEMINI_API_KEY`, `OPENAI_API_KEY`, `GEMINI_BASE_URL`, `OPENAI_BASE_URL`).
pub fn registry() -> Result<NodeRegistry> {
    registry_with_ai(gatewai_nodes::ai::AiSettings::from_env())
}

/// A registry with every built-in node type, AI providers configured with `settings`.
pub fn registry_with_ai(settings: gatewai_nodes::ai::AiSettings) -> Result<NodeRegistry> {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::output::register(&mut registry)?;
    gatewai_nodes::text::register(&mut registry)?;
    gatewai_nodes::media::register(&mut registry)?;
    gatewai_nodes::video::register(&mut registry)?;
    gatewai_nodes::ai::register_with(&mut registry, settings)?;
    Ok(registry)
}

/// An engine running `registry`'s nodes, with `assets` as its asset store, the store's result
/// cache (hits survive restarts), the store's run recorder as the first observer (so a run is
/// persisted before any later observer sees its events) and then `observers`. The recorder
/// comes back too: [`RunRecorder::flush`] stores what it held while the store was away.
pub fn engine(
    registry: NodeRegistry,
    store: &Store,
    assets: Arc<dyn AssetStore>,
    observers: Vec<Arc<dyn Observer>>,
) -> Result<(Engine, Arc<RunRecorder>)> {
    let recorder = store.recorder();
    let mut builder = Engine::builder()
        .registry(registry)
        .assets(assets)
        .cache(store.result_cache())
        .observer(recorder.clone());
    for observer in observers {
        builder = builder.observer(observer);
    }
    Ok((builder.build()?, recorder))
}

/// After a run: when observers could not handle all of its events (the store was away when
/// it ended), logs why and stores what the recorder held; whether the run is stored whole.
pub async fn settle_recording(recorder: &RunRecorder, outcome: &RunOutcome) -> bool {
    if outcome.observer_errors.is_empty() {
        return true;
    }
    for error in &outcome.observer_errors {
        tracing::warn!(run_id = %outcome.run.id, %error, "the run is not stored whole");
    }
    match recorder.flush().await {
        Ok(()) => !recorder
            .held_runs()
            .iter()
            .any(|(run_id, _)| *run_id == outcome.run.id),
        Err(error) => {
            tracing::error!(run_id = %outcome.run.id, %error, "the run's held events still cannot be stored");
            false
        }
    }
}

/// The store URL of a SQLite file (created when missing).
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The directory asset blobs are kept in next to a database file: `gatewai.db` →
/// `gatewai-assets/`.
pub fn assets_dir_for(db: &Path) -> PathBuf {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gatewai".to_owned());
    db.with_file_name(format!("{stem}-assets"))
}

/// A local-directory asset store rooted at `dir` (created when missing), describing its
/// assets in `store`.
pub async fn fs_assets(dir: &Path, store: &Store) -> Result<Arc<dyn AssetStore>> {
    Ok(Arc::new(
        gatewai_store::FsAssetStore::open(dir, store.clone()).await?,
    ))
}

/// Reads a workflow file: a Gatewai canvas document or a React Flow document.
pub fn read_workflow_file(path: &Path, registry: &NodeRegistry) -> Result<Workflow> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    gatewai_core::import::parse_document(&text, registry).map_err(|e| match e {
        gatewai_core::Error::Import { message } => {
            Error::bad_request(format!("{}: {message}", path.display()))
        }
        other => other.into(),
    })
}

/// Where a File node's value comes from before it is imported: a local file or text.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceValue {
    /// A local file's path.
    File(PathBuf),
    /// Text.
    Text(String),
}

/// The File nodes that name a local file in their config: `"path"`, relative to the workflow
/// file's directory `base_dir`.
///
/// This is how the shipped workflows reach their sample media without a server: the File node
/// itself never reads local paths (a workflow from an untrusted source must not read the
/// host's files); only this command-line host does, for workflows the user runs on purpose.
pub fn file_node_paths(
    workflow: &Workflow,
    base_dir: &Path,
) -> Result<HashMap<String, SourceValue>> {
    let mut values = HashMap::new();
    for node in workflow.nodes.iter().filter(|n| n.node_type == "File") {
        let Some(path) = node.config.get("path") else {
            continue;
        };
        let Some(path) = path.as_str() else {
            return Err(Error::bad_request(format!(
                "node `{}`: config field `path` must be a string",
                node.id
            )));
        };
        values.insert(node.id.clone(), SourceValue::File(base_dir.join(path)));
    }
    Ok(values)
}

/// Parses a `NODE_ID=text` or `NODE_ID=@file` argument for a node of the workflow (`@file`
/// relative to the working directory).
pub fn parse_input_arg(arg: &str, workflow: &Workflow) -> Result<(String, SourceValue)> {
    let Some((node_id, value)) = arg.split_once('=') else {
        return Err(Error::bad_request(format!(
            "--input `{arg}`: expected NODE_ID=text or NODE_ID=@file"
        )));
    };
    if workflow.node(node_id).is_none() {
        return Err(Error::bad_request(format!(
            "--input `{arg}`: the workflow has no node `{node_id}`"
        )));
    }
    let value = match value.strip_prefix('@') {
        Some(path) => SourceValue::File(PathBuf::from(path)),
        None => SourceValue::Text(value.to_owned()),
    };
    Ok((node_id.to_owned(), value))
}

/// The name of the index of imported local files in an asset directory.
const LOCAL_FILES_INDEX: &str = "local-files.json";

/// Turns source values into run inputs. A local file is imported into the asset store once
/// per content (an index in `assets_dir` maps the content hash to the asset), so the File node
/// outputs the same asset on every run and everything downstream is served from the cache
/// while the file does not change.
pub async fn resolve_inputs(
    values: HashMap<String, SourceValue>,
    assets: &Arc<dyn AssetStore>,
    assets_dir: &Path,
) -> Result<HashMap<String, RunInput>> {
    let index_path = assets_dir.join(LOCAL_FILES_INDEX);
    let mut index: HashMap<String, String> = match tokio::fs::read(&index_path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => HashMap::new(),
    };
    let mut changed = false;
    let mut inputs = HashMap::with_capacity(values.len());
    for (node_id, value) in values {
        let path = match value {
            SourceValue::Text(text) => {
                inputs.insert(node_id, RunInput::Text(text));
                continue;
            }
            SourceValue::File(path) => path,
        };
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let known = match index.get(&hash) {
            Some(id) => assets.get(id).await?,
            None => None,
        };
        let asset = match known {
            Some(asset) => asset,
            None => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "file".to_owned());
                let ctx = gatewai_core::NodeContext::detached(
                    &node_id,
                    "File",
                    serde_json::Value::Null,
                    assets.clone(),
                );
                let asset = gatewai_nodes::media_util::store_bytes(&ctx, &name, bytes.into())
                    .await
                    .map_err(|e| Error::bad_request(format!("{}: {e}", path.display())))?;
                index.insert(hash, asset.id.clone());
                changed = true;
                asset
            }
        };
        inputs.insert(node_id, RunInput::Asset(asset));
    }
    if changed {
        let json = serde_json::to_vec_pretty(&index).unwrap_or_default();
        tokio::fs::write(&index_path, json)
            .await
            .map_err(|e| Error::io(&index_path, e))?;
    }
    Ok(inputs)
}

/// The nodes a run of `target` settles: every node, or the targets and everything upstream.
pub fn nodes_in_run(workflow: &Workflow, target: &RunTarget) -> HashSet<String> {
    let targets = match target {
        RunTarget::All => return workflow.nodes.iter().map(|n| n.id.clone()).collect(),
        RunTarget::Nodes(ids) => ids,
    };
    let mut sources: HashMap<&str, Vec<&str>> = HashMap::new();
    for edge in &workflow.edges {
        sources
            .entry(edge.target.as_str())
            .or_default()
            .push(edge.source.as_str());
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<&str> = targets.iter().map(String::as_str).collect();
    while let Some(id) = queue.pop_front() {
        if seen.insert(id.to_owned()) {
            queue.extend(sources.get(id).into_iter().flatten().copied());
        }
    }
    seen
}

/// Checks that what the nodes in `node_ids` need is there before anything runs: ffmpeg and
/// ffprobe for video nodes, an API key for AI nodes. The error is one line saying what to do.
pub fn check_requirements(workflow: &Workflow, node_ids: &HashSet<String>) -> Result<()> {
    let nodes = || workflow.nodes.iter().filter(|n| node_ids.contains(&n.id));
    if nodes().any(|n| FFMPEG_NODE_TYPES.contains(&n.node_type.as_str())) {
        for program in ["ffmpeg", "ffprobe"] {
            check_program(program, "ffmpeg")?;
        }
    }
    for node in nodes().filter(|n| AI_NODE_TYPES.contains(&n.node_type.as_str())) {
        let model = node
            .config
            .get("model")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        let provider = node.config.get("provider").and_then(|p| p.as_str());
        let (name, variable) = match gatewai_nodes::ai::ProviderKind::resolve(provider, model) {
            Ok(gatewai_nodes::ai::ProviderKind::OpenAi) => ("OpenAI", "OPENAI_API_KEY"),
            // A bad provider name is the node's config error, reported when it runs.
            _ => ("Gemini", "GEMINI_API_KEY"),
        };
        let set = std::env::var(variable).is_ok_and(|v| !v.trim().is_empty());
        let custom_openai =
            variable == "OPENAI_API_KEY" && std::env::var("OPENAI_BASE_URL").is_ok();
        if !set && !custom_openai {
            return Err(Error::MissingApiKey {
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
                provider: name,
                variable,
            });
        }
    }
    Ok(())
}

/// An error naming the package when `program` cannot be started.
fn check_program(program: &'static str, package: &'static str) -> Result<()> {
    let status = std::process::Command::new(program)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::MissingProgram { program, package }),
    }
}

/// Copies the results of `finished`'s nodes into the nodes of `into` with the same ids (a run's
/// results written back into the stored canvas, which may have been edited meanwhile).
pub fn merge_results(into: &mut Workflow, finished: &Workflow) {
    let results: HashMap<&str, &Arc<NodeResult>> = finished
        .nodes
        .iter()
        .filter_map(|n| n.result.as_ref().map(|r| (n.id.as_str(), r)))
        .collect();
    for node in &mut into.nodes {
        if let Some(result) = results.get(node.id.as_str()) {
            node.result = Some(Arc::clone(result));
        }
    }
}

/// Every file asset in every generation of a result.
pub fn result_assets(result: &NodeResult) -> impl Iterator<Item = &FileAsset> {
    result
        .outputs
        .iter()
        .flat_map(|g| g.items.iter())
        .filter_map(|item| match &item.data {
            Data::File(file) => file.entity.as_ref(),
            _ => None,
        })
}

/// The file extension for a mime type (`bin` when unknown).
pub fn extension_for_mime(mime: &str) -> &'static str {
    match mime {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "text/plain" => "txt",
        _ => "bin",
    }
}

/// A node id made safe as a file name (letters, digits, `-`, `_`, `.`; others become `_`).
pub fn file_stem_for(node_id: &str) -> String {
    let stem: String = node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match stem.trim_matches('.') {
        "" => "node".to_owned(),
        s => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewai_core::{Edge, WorkflowNode};

    fn chain() -> Workflow {
        let edge = |id: &str, s: &str, t: &str| Edge {
            id: id.into(),
            source: s.into(),
            target: t.into(),
            source_handle_id: format!("{s}:out"),
            target_handle_id: format!("{t}:in"),
            extra: Default::default(),
        };
        Workflow {
            nodes: ["a", "b", "c", "d"]
                .iter()
                .map(|id| WorkflowNode::new(*id, "Text"))
                .collect(),
            edges: vec![edge("e1", "a", "b"), edge("e2", "b", "c")],
            ..Workflow::default()
        }
    }

    #[test]
    fn partial_run_takes_upstream_nodes() {
        let wf = chain();
        let ids = nodes_in_run(&wf, &RunTarget::Nodes(vec!["b".into()]));
        let mut ids: Vec<_> = ids.into_iter().collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(nodes_in_run(&wf, &RunTarget::All).len(), 4);
    }

    #[test]
    fn input_args() {
        let wf = chain();
        let (id, input) = parse_input_arg("a=hello=world", &wf).unwrap();
        assert_eq!(id, "a");
        assert_eq!(input, SourceValue::Text("hello=world".into()));
        let (_, input) = parse_input_arg("b=@pic.png", &wf).unwrap();
        assert_eq!(input, SourceValue::File("pic.png".into()));
        assert!(parse_input_arg("zz=x", &wf).is_err());
        assert!(parse_input_arg("novalue", &wf).is_err());
    }

    #[test]
    fn file_names() {
        assert_eq!(file_stem_for("export-1"), "export-1");
        assert_eq!(file_stem_for("../etc/passwd"), "_etc_passwd");
        assert_eq!(file_stem_for(".."), "node");
        assert_eq!(
            assets_dir_for(Path::new("/tmp/x/gatewai.db")),
            Path::new("/tmp/x/gatewai-assets")
        );
    }
}
