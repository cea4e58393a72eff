//! The command-line runner: `gatewai run | validate | runs | graph`. Every subcommand is a
//! function writing its report to a `Write`, so tests call them directly.

mod progress;

pub use progress::{ProgressView, Settled};

use crate::error::{Error, Result};
use crate::host;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;
use gatewai_core::model::Data;
use gatewai_core::{
    AssetStore, DataType, Item, NodeResult, RunOptions, RunOutcome, RunStatus, RunTarget, Workflow,
};
use gatewai_store::prelude::*;
use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Runs Gatewai workflows from the command line.
#[derive(Debug, Parser)]
#[command(name = "gatewai", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate and run a workflow, writing its outputs to a directory.
    Run(RunArgs),
    /// Check a workflow and print every problem.
    Validate(FileArgs),
    /// Show the run history kept in the database.
    Runs(RunsArgs),
    /// Print a workflow as a Mermaid flowchart.
    Graph(GraphArgs),
}

/// Arguments of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The workflow file (a Gatewai canvas document or a React Flow document).
    pub workflow: PathBuf,
    /// The SQLite database keeping workflows, runs and the result cache.
    #[arg(long, default_value = "gatewai.db")]
    pub db: PathBuf,
    /// Where asset blobs are kept (default: `<db name>-assets/` next to the database).
    #[arg(long)]
    pub assets: Option<PathBuf>,
    /// Where output files are written (in a directory named after the workflow's id).
    #[arg(long, default_value = "gatewai-out")]
    pub out: PathBuf,
    /// A value for a source node: `NODE_ID=text` or `NODE_ID=@file.png`.
    #[arg(long = "input", value_name = "NODE_ID=VALUE")]
    pub inputs: Vec<String>,
    /// Run only these nodes (and what they need upstream).
    #[arg(long, value_name = "NODE_ID", num_args = 1..)]
    pub only: Vec<String>,
    /// Execute every node even when the cache has its result.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not draw progress bars (they are drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// Arguments naming one workflow file.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// The workflow file.
    pub workflow: PathBuf,
}

/// Arguments of `runs`.
#[derive(Debug, Clone, Args)]
pub struct RunsArgs {
    /// A workflow file or stored workflow id (default: every workflow).
    pub workflow: Option<String>,
    /// The SQLite database.
    #[arg(long, default_value = "gatewai.db")]
    pub db: PathBuf,
    /// How many runs per workflow.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
}

/// Arguments of `graph`.
#[derive(Debug, Clone, Args)]
pub struct GraphArgs {
    /// The workflow file.
    pub workflow: PathBuf,
    /// Wrap the chart in a Markdown ```mermaid block.
    #[arg(long)]
    pub markdown: bool,
}

/// What a `run` did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run's id.
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// The stored workflow id it ran under.
    pub workflow_id: String,
    /// Nodes that executed.
    pub executed: Vec<String>,
    /// Nodes served from the cache.
    pub cached: Vec<String>,
    /// Nodes that failed.
    pub failed: Vec<String>,
    /// Nodes skipped or cancelled.
    pub skipped: Vec<String>,
    /// Output files written, by node id.
    pub written: Vec<(String, PathBuf)>,
}

/// Runs a parsed command line, writing the report to `out`. `Ok(false)` when the command
/// completed but found a failure (a failed run).
pub async fn execute(cli: &Cli, out: &mut dyn Write) -> Result<bool> {
    match &cli.command {
        Command::Run(args) => Ok(run(args, out).await?.status == RunStatus::Completed),
        Command::Validate(args) => validate(args, out).map(|()| true),
        Command::Runs(args) => runs(args, out).await.map(|()| true),
        Command::Graph(args) => graph(args, out).map(|()| true),
    }
}

/// `validate`: reads and checks a workflow; every problem is in the error.
pub fn validate(args: &FileArgs, out: &mut dyn Write) -> Result<()> {
    let registry = host::registry()?;
    let workflow = host::read_workflow_file(&args.workflow, &registry)?;
    gatewai_core::validate(&workflow, &registry)?;
    let _ = writeln!(
        out,
        "{}: valid ({} nodes, {} edges)",
        args.workflow.display(),
        workflow.nodes.len(),
        workflow.edges.len()
    );
    Ok(())
}

/// `graph`: the workflow as Mermaid text.
pub fn graph(args: &GraphArgs, out: &mut dyn Write) -> Result<()> {
    let registry = host::registry()?;
    let workflow = host::read_workflow_file(&args.workflow, &registry)?;
    let chart = gatewai_core::mermaid::to_mermaid(&workflow);
    let _ = if args.markdown {
        writeln!(out, "```mermaid\n{}```", chart)
    } else {
        write!(out, "{chart}")
    };
    Ok(())
}

/// The stored id and name of a workflow file: the document's own, or the file's name.
fn workflow_identity(path: &Path, workflow: &Workflow) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workflow".to_owned());
    let id = workflow.id.clone().unwrap_or_else(|| stem.clone());
    let name = workflow.name.clone().unwrap_or(stem);
    (id, name)
}

/// `run`: validates, runs with live progress, prints each node's result, writes outputs.
pub async fn run(args: &RunArgs, out: &mut dyn Write) -> Result<RunReport> {
    let registry = host::registry()?;
    let workflow = host::read_workflow_file(&args.workflow, &registry)?;
    gatewai_core::validate(&workflow, &registry)?;

    let base_dir = args
        .workflow
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut sources = host::file_node_paths(&workflow, &base_dir)?;
    for arg in &args.inputs {
        let (node_id, value) = host::parse_input_arg(arg, &workflow)?;
        sources.insert(node_id, value);
    }
    let target = if args.only.is_empty() {
        RunTarget::All
    } else {
        if let Some(missing) = args.only.iter().find(|id| workflow.node(id).is_none()) {
            return Err(Error::bad_request(format!(
                "--only: the workflow has no node `{missing}`"
            )));
        }
        RunTarget::Nodes(args.only.clone())
    };
    host::check_requirements(&workflow, &host::nodes_in_run(&workflow, &target))?;

    let store = Store::open(&host::sqlite_url(&args.db)).await?;
    let assets_dir = args
        .assets
        .clone()
        .unwrap_or_else(|| host::assets_dir_for(&args.db));
    let assets = host::fs_assets(&assets_dir, &store).await?;
    let inputs = host::resolve_inputs(sources, &assets, &assets_dir).await?;
    let (engine, recorder) = host::engine(registry.clone(), &store, assets.clone(), Vec::new())?;

    let (workflow_id, name) = workflow_identity(&args.workflow, &workflow);
    store
        .upsert_user(&NewUser::new(host::LOCAL_USER, "local@localhost"))
        .await?;
    save_workflow(&store, &workflow_id, &name, &workflow).await?;

    let force: HashSet<String> = if args.no_cache {
        workflow.nodes.iter().map(|n| n.id.clone()).collect()
    } else {
        HashSet::new()
    };
    let options = RunOptions {
        target,
        workflow_id: Some(workflow_id.clone()),
        inputs,
        force,
        stream_events: true,
        ..RunOptions::default()
    };
    let mut handle = engine.start(workflow.clone(), options)?;
    let run_id = handle.run_id().to_owned();
    let _ = writeln!(
        out,
        "run {run_id}: {} ({} nodes)",
        args.workflow.display(),
        workflow.nodes.len()
    );

    let id_width = workflow
        .nodes
        .iter()
        .map(|n| n.id.len())
        .max()
        .unwrap_or(4)
        .min(24);
    let draw = !args.no_progress && std::io::stderr().is_terminal();
    let mut view = ProgressView::new(draw, id_width);
    let cancel = handle.cancellation();
    if let Some(mut events) = handle.events() {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let mut interrupted = false;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => view.on_event(&event, out),
                    None => break,
                },
                _ = &mut ctrl_c, if !interrupted => {
                    interrupted = true;
                    let _ = writeln!(out, "interrupted: cancelling the run…");
                    cancel.cancel();
                }
            }
        }
    }
    view.finish();
    let outcome = handle.wait().await?;
    if !host::settle_recording(&recorder, &outcome).await {
        let _ = writeln!(
            out,
            "warning: the run is not stored whole in {}: {}",
            args.db.display(),
            outcome
                .observer_errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    // Write the results back into the stored canvas, as the app does after a run.
    if let Some(mut stored) = store.get_workflow(host::LOCAL_USER, &workflow_id).await? {
        host::merge_results(&mut stored.document, &outcome.workflow);
        let update = WorkflowUpdate {
            name: None,
            document: Some(stored.document),
        };
        store
            .update_workflow(host::LOCAL_USER, &workflow_id, update)
            .await?;
    }

    print_results(&outcome, &view, out);
    let out_dir = args.out.join(host::file_stem_for(&workflow_id));
    let written = write_outputs(&outcome, &workflow, assets.as_ref(), &out_dir).await?;
    if !written.is_empty() {
        let _ = writeln!(out, "\nwrote:");
        for (node_id, path) in &written {
            let _ = writeln!(out, "  {node_id:<id_width$} → {}", path.display());
        }
    }

    let mut report = RunReport {
        run_id,
        status: outcome.run.status,
        workflow_id,
        executed: Vec::new(),
        cached: Vec::new(),
        failed: Vec::new(),
        skipped: Vec::new(),
        written,
    };
    for (node_id, settled) in view.settled() {
        let list = match settled {
            Settled::Executed => &mut report.executed,
            Settled::Cached => &mut report.cached,
            Settled::Failed => &mut report.failed,
            Settled::Skipped | Settled::Cancelled => &mut report.skipped,
        };
        list.push(node_id.clone());
    }
    let seconds = match (outcome.run.started_at, outcome.run.finished_at) {
        (Some(start), Some(end)) => (end - start).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    let _ = writeln!(
        out,
        "\n{} in {seconds:.2} s: {} executed, {} cached, {} failed, {} skipped",
        outcome.run.status.as_str(),
        report.executed.len(),
        report.cached.len(),
        report.failed.len(),
        report.skipped.len()
    );
    if !report.cached.is_empty() {
        let _ = writeln!(
            out,
            "{} of {} nodes served from the cache: their config and inputs did not change (--no-cache runs them again)",
            report.cached.len(),
            report.executed.len() + report.cached.len()
        );
    }
    if let Some(error) = &outcome.run.error {
        let _ = writeln!(out, "error: {error}");
    }
    Ok(report)
}

/// Creates the workflow under the local user, or replaces its document.
async fn save_workflow(store: &Store, id: &str, name: &str, workflow: &Workflow) -> Result<()> {
    match store.get_workflow(host::LOCAL_USER, id).await? {
        Some(_) => {
            let update = WorkflowUpdate {
                name: Some(name.to_owned()),
                document: Some(workflow.clone()),
            };
            store.update_workflow(host::LOCAL_USER, id, update).await?;
        }
        None => {
            let new = NewWorkflow::new(name, workflow.clone()).with_id(id);
            store.create_workflow(host::LOCAL_USER, new).await?;
        }
    }
    Ok(())
}

/// Prints every completed node's selected result.
fn print_results(outcome: &RunOutcome, view: &ProgressView, out: &mut dyn Write) {
    let _ = writeln!(out, "\nresults:");
    for execution in &outcome.executions {
        let Some(result) = outcome.results.get(&execution.node_id) else {
            continue;
        };
        let head = format!("  {} ({})", execution.node_id, execution.node_type);
        let items = selected_items(result);
        if items.is_empty() {
            let _ = writeln!(out, "{head}: no output");
        }
        for item in items {
            let streamed = view.streamed_text(&execution.node_id).is_some();
            let _ = writeln!(out, "{head}: {}", describe(&item, streamed));
        }
    }
}

/// The items of a result's selected generation.
fn selected_items(result: &NodeResult) -> Vec<Item> {
    result
        .selected()
        .map(|g| g.items.iter().map(|i| i.to_item()).collect())
        .unwrap_or_default()
}

/// One line describing a value; a long text is shortened unless it was streamed (an LLM's
/// answer is printed whole).
fn describe(item: &Item, whole_text: bool) -> String {
    match &item.data {
        Data::Text(text) => {
            if whole_text || text.chars().count() <= 200 {
                format!("“{text}”")
            } else {
                let short: String = text.chars().take(200).collect();
                format!("“{short}…” ({} chars)", text.chars().count())
            }
        }
        Data::File(file) => match &file.entity {
            Some(asset) => {
                let dims = match (asset.width, asset.height) {
                    (Some(w), Some(h)) => format!(" {w}×{h}"),
                    _ => String::new(),
                };
                let duration = asset
                    .duration
                    .map(|d| format!(" {d:.2} s"))
                    .unwrap_or_default();
                format!(
                    "{}{dims}{duration} {} ({:.1} KB, asset {})",
                    item.data_type,
                    asset.mime_type,
                    asset.size as f64 / 1024.0,
                    asset.id
                )
            }
            None => format!("{} (no asset)", item.data_type),
        },
        other => format!(
            "{} {}",
            item.data_type,
            serde_json::to_string(other).unwrap_or_default()
        ),
    }
}

/// Writes the run's outputs into `dir`: the values of Export nodes and the images of Preview
/// nodes, one file per value (`<node id>.<ext>`, `<node id>-<n>.<ext>` when a node has several).
pub async fn write_outputs(
    outcome: &RunOutcome,
    workflow: &Workflow,
    assets: &dyn AssetStore,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let mut values: Vec<(String, Vec<Item>)> = outcome
        .exports
        .iter()
        .map(|(id, items)| (id.clone(), items.clone()))
        .collect();
    for node in workflow.nodes.iter().filter(|n| n.node_type == "Preview") {
        if let Some(result) = outcome.results.get(node.id.as_str()) {
            values.push((node.id.clone(), selected_items(result)));
        }
    }
    let mut written = Vec::new();
    if values.iter().all(|(_, items)| items.is_empty()) {
        return Ok(written);
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| Error::io(dir, e))?;
    for (node_id, items) in values {
        let stem = host::file_stem_for(&node_id);
        let many = items.len() > 1;
        for (n, item) in items.iter().enumerate() {
            let stem = if many {
                format!("{stem}-{}", n + 1)
            } else {
                stem.clone()
            };
            // A file asset is copied chunk by chunk, never held whole.
            let (content, ext) = match (&item.data, item.data_type) {
                (Data::Text(text), _) => (one_chunk(text.clone()), "txt"),
                (Data::File(file), t) if t.is_media() || t == DataType::File => {
                    let Some(asset) = &file.entity else { continue };
                    let stream = assets.read_stream(asset).await?;
                    (stream, host::extension_for_mime(&asset.mime_type))
                }
                (other, _) => (
                    one_chunk(serde_json::to_string(other).unwrap_or_default()),
                    "json",
                ),
            };
            let path = dir.join(format!("{stem}.{ext}"));
            write_stream(&path, content).await?;
            written.push((node_id.clone(), path));
        }
    }
    Ok(written)
}

/// Text as a stream of one chunk.
fn one_chunk(text: String) -> gatewai_core::AssetStream {
    futures::stream::iter([Ok(bytes::Bytes::from(text))]).boxed()
}

/// Writes a stream of chunks into a new file at `path`.
async fn write_stream(path: &Path, mut content: gatewai_core::AssetStream) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| Error::io(path, e))?;
    while let Some(chunk) = content.next().await {
        file.write_all(&chunk?)
            .await
            .map_err(|e| Error::io(path, e))?;
    }
    file.flush().await.map_err(|e| Error::io(path, e))
}

/// `runs`: the run history kept in the database, newest first.
pub async fn runs(args: &RunsArgs, out: &mut dyn Write) -> Result<()> {
    if !args.db.exists() {
        let _ = writeln!(out, "no runs yet ({} does not exist)", args.db.display());
        return Ok(());
    }
    let store = Store::open(&host::sqlite_url(&args.db)).await?;
    let page = Page::first(args.limit.max(1));
    let workflow_ids: Vec<String> = match &args.workflow {
        Some(arg) if Path::new(arg).is_file() => {
            let registry = host::registry()?;
            let path = Path::new(arg);
            let workflow = host::read_workflow_file(path, &registry)?;
            vec![workflow_identity(path, &workflow).0]
        }
        Some(id) => vec![id.clone()],
        None => store
            .list_workflows(host::LOCAL_USER, Page::first(Page::MAX_LIMIT))
            .await?
            .into_iter()
            .map(|w| w.id)
            .collect(),
    };
    let mut entries = Vec::new();
    for id in &workflow_ids {
        for entry in store.run_history(host::LOCAL_USER, id, page).await? {
            entries.push((id.clone(), entry));
        }
    }
    entries.sort_by_key(|(_, entry)| std::cmp::Reverse(entry.run.created_at));
    if entries.is_empty() {
        let _ = writeln!(out, "no runs yet");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<36}  {:<20}  {:<9}  {:<19}  {:>8}  nodes",
        "run", "workflow", "status", "started (UTC)", "time"
    );
    for (workflow_id, entry) in entries {
        let run = &entry.run;
        let started = run
            .started_at
            .unwrap_or(run.created_at)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        let time = match (run.started_at, run.finished_at) {
            (Some(s), Some(f)) => format!("{:.2} s", (f - s).num_milliseconds() as f64 / 1000.0),
            _ => "-".to_owned(),
        };
        let cached = entry.executions.iter().filter(|e| e.cached).count();
        let failed = entry
            .executions
            .iter()
            .filter(|e| e.status == gatewai_core::ExecutionStatus::Failed)
            .count();
        let _ = writeln!(
            out,
            "{:<36}  {:<20}  {:<9}  {started:<19}  {time:>8}  {} ({cached} cached, {failed} failed)",
            run.id,
            workflow_id,
            run.status.as_str(),
            entry.executions.len()
        );
    }
    Ok(())
}
