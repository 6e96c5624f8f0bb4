//! The "Your documents" tab: files opened or text pasted become a collection in the worker
//! (passages under a token budget, each with its language), shown with their counts before
//! anything is embedded; the stored collections with their size, date and model, to embed
//! (resume), export, import and delete; the running embedding's progress and pace; and the search
//! of the chosen collection ([`super::docs_search`]).
//!
//! Files are read here (`File.arrayBuffer()`) and handed to the worker whole: reading, splitting,
//! language detection and embedding all happen in the worker, and nothing leaves the machine.

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileList, HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use super::docs_search::DocsSearch;
use super::format::mb;
use crate::docs::protocol::{CollectionInfo, DocFile, DocsOp, EmbedProgress, FileReport};
use crate::docs::state::{DocsAction, DocsState, Sent};

/// The file types the tab opens.
const ACCEPT: &str = ".txt,.text,.md,.markdown,.jsonl,.ndjson,.csv,.tsv";

/// Properties of [`DocsPanel`].
#[derive(Properties, PartialEq)]
pub(crate) struct DocsPanelProps {
    /// The tab is not shown.
    pub hidden: bool,
    /// The loaded model's name, once ready.
    pub model: Option<String>,
    /// The tab's state.
    pub docs: DocsState,
    /// A change of the tab's state.
    pub on_action: Callback<DocsAction>,
    /// An operation for the worker (the page gives it an id and sends it).
    pub on_op: Callback<DocsOp>,
}

/// The "Your documents" tab.
#[component]
pub(crate) fn DocsPanel(props: &DocsPanelProps) -> Html {
    let d = &props.docs;
    html! {
        <section id="docs-panel" class="panel" role="tabpanel" aria-labelledby="docs-tab" hidden={props.hidden}>
            <h2>{ "Your documents" }</h2>
            <p>
                { "Open text, Markdown, JSON-lines or CSV files in any mix of languages, or paste text. \
                   They are split into passages, each passage's language is detected, and the loaded model \
                   embeds them in this page's worker: nothing leaves your machine. Collections are kept in \
                   the browser across visits; export one to search it with " }
                <code>{ "mlr search --collection" }</code>
                { "." }
            </p>
            if let Some(e) = &d.error {
                <p id="docs-error" class="error-message" role="alert">{ e.clone() }</p>
            }
            <AddForm ready={props.model.is_some()} docs={d.clone()} on_action={props.on_action.clone()} on_op={props.on_op.clone()} />
            <Collections model={props.model.clone()} docs={d.clone()} on_action={props.on_action.clone()} on_op={props.on_op.clone()} />
            <DocsSearch model={props.model.clone()} docs={d.clone()} on_action={props.on_action.clone()} on_op={props.on_op.clone()} />
        </section>
    }
}

/// Properties of the tab's parts.
#[derive(Properties, PartialEq)]
struct PartProps {
    /// Whether a model is loaded.
    #[prop_or_default]
    pub ready: bool,
    /// The loaded model's name.
    #[prop_or_default]
    pub model: Option<String>,
    /// The tab's state.
    pub docs: DocsState,
    /// A change of the tab's state.
    pub on_action: Callback<DocsAction>,
    /// An operation for the worker.
    pub on_op: Callback<DocsOp>,
}

/// Reads every file of a file list (a file input's, or a drop's).
async fn read_files(list: Option<FileList>) -> Result<Vec<DocFile>, String> {
    let mut out = Vec::new();
    let Some(list) = list else { return Ok(out) };
    for i in 0..list.length() {
        let Some(file) = list.get(i) else { continue };
        let buffer = JsFuture::from(file.array_buffer())
            .await
            .map_err(|e| format!("{}: the browser could not read the file ({e:?})", file.name()))?;
        out.push(DocFile { name: file.name(), bytes: Uint8Array::new(&buffer).to_vec() });
    }
    Ok(out)
}

/// What the form sends with the files.
#[derive(Clone)]
struct Settings {
    name: String,
    column: String,
    paste: String,
    budget: usize,
}

/// Reads `list` and the pasted text into a new collection (or says why not).
async fn create(list: Option<FileList>, s: Settings, on_op: Callback<DocsOp>, on_action: Callback<DocsAction>) {
    let mut docs = match read_files(list).await {
        Ok(docs) => docs,
        Err(e) => return on_action.emit(DocsAction::ReadFailed(e)),
    };
    if !s.paste.trim().is_empty() {
        docs.push(DocFile { name: "pasted.txt".into(), bytes: s.paste.into_bytes() });
    }
    if docs.is_empty() {
        return on_action.emit(DocsAction::ReadFailed("Open files or paste text first.".into()));
    }
    let column = Some(s.column.trim().to_string()).filter(|c| !c.is_empty());
    on_op.emit(DocsOp::Create { name: s.name, budget: s.budget, column, files: docs });
}

/// The files a drop carries (`DragEvent.dataTransfer.files`, read by name).
fn dropped_files(e: &DragEvent) -> Option<FileList> {
    let transfer = js_sys::Reflect::get(e, &"dataTransfer".into()).ok()?;
    js_sys::Reflect::get(&transfer, &"files".into()).ok()?.dyn_into().ok()
}

/// Files (opened or dropped) and pasted text into a new collection.
#[component]
fn AddForm(props: &PartProps) -> Html {
    let d = &props.docs;
    let files = use_node_ref();
    let busy = d.waits(Sent::Create);
    let budget = d.budget();
    let blocker = if !props.ready {
        Some("Waiting for the model.".to_string())
    } else if budget.is_none() {
        Some(format!("The token budget is a whole number from {} to 512.", mlr_docs::split::MIN_BUDGET))
    } else {
        None
    };
    let settings = (blocker.is_none() && !busy).then(|| Settings {
        name: d.name.clone(),
        column: d.column.clone(),
        paste: d.paste.clone(),
        budget: budget.unwrap_or_default(),
    });
    let onclick = {
        let (files, on_op, on_action, settings) =
            (files.clone(), props.on_op.clone(), props.on_action.clone(), settings.clone());
        Callback::from(move |_: MouseEvent| {
            let (Some(s), Some(input)) = (settings.clone(), files.cast::<HtmlInputElement>()) else { return };
            let (on_op, on_action) = (on_op.clone(), on_action.clone());
            wasm_bindgen_futures::spawn_local(async move {
                create(input.files(), s, on_op, on_action).await;
                // The files are handed over: the input is cleared for the next ones.
                input.set_value("");
            });
        })
    };
    let ondrop = {
        let (on_op, on_action) = (props.on_op.clone(), props.on_action.clone());
        let blocker = blocker.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let Some(s) = settings.clone() else {
                let why = blocker.clone().unwrap_or_else(|| "Wait: the last files are still being read.".into());
                return on_action.emit(DocsAction::ReadFailed(why));
            };
            let list = dropped_files(&e);
            wasm_bindgen_futures::spawn_local(create(list, s, on_op.clone(), on_action.clone()));
        })
    };
    // A drop is allowed only where dragover is cancelled.
    let ondragover = Callback::from(|e: DragEvent| e.prevent_default());
    let text = |action: fn(String) -> DocsAction| {
        props.on_action.reform(move |e: InputEvent| action(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let on_paste = props
        .on_action
        .reform(|e: InputEvent| DocsAction::SetPaste(e.target_unchecked_into::<HtmlTextAreaElement>().value()));
    html! {
        <div id="docs-drop" class="docs-add" {ondrop} {ondragover}>
            <h3>{ "Add documents" }</h3>
            <p class="muted">{ "Open files, drop them here, or paste text." }</p>
            <div class="row">
                <div class="field">
                    <label for="docs-files">{ "Files (.txt, .md, .jsonl, .csv, .tsv)" }</label>
                    <input id="docs-files" type="file" multiple=true accept={ACCEPT} ref={files} />
                </div>
                <div class="field">
                    <label for="docs-name">{ "Collection name" }</label>
                    <input id="docs-name" type="text" placeholder="the first file's name" value={d.name.clone()} oninput={text(DocsAction::SetName)} />
                </div>
                <div class="field">
                    <label for="docs-budget">{ "Tokens per passage" }</label>
                    <input id="docs-budget" type="number" min="8" max="512" step="1" value={d.budget.clone()} oninput={text(DocsAction::SetBudget)} />
                </div>
                <div class="field">
                    <label for="docs-column">{ "CSV text column" }</label>
                    <input id="docs-column" type="text" placeholder="text" value={d.column.clone()} oninput={text(DocsAction::SetColumn)} />
                </div>
            </div>
            <div class="field">
                <label for="docs-paste">{ "Or paste text (paragraphs separated by blank lines)" }</label>
                <textarea id="docs-paste" rows="3" value={d.paste.clone()} oninput={on_paste} />
            </div>
            <button id="docs-add" type="button" class="primary" disabled={blocker.is_some() || busy} onclick={onclick}>
                { if busy { "Reading…" } else { "Read into a collection" } }
            </button>
            if let Some(reason) = blocker {
                <span class="muted">{ format!(" {reason}") }</span>
            }
            if !d.reports.is_empty() {
                <ul id="docs-reports" class="docs-reports">
                    for r in d.reports.iter() {
                        { report(r) }
                    }
                </ul>
            }
        </div>
    }
}

/// How one file was read.
fn report(r: &FileReport) -> Html {
    let text = match &r.error {
        Some(e) => format!("{}: not read: {e}", r.name),
        None if r.skipped > 0 => format!(
            "{}: {} passages; {} lines skipped ({})",
            r.name,
            r.passages,
            r.skipped,
            r.skips.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        ),
        None => format!("{}: {} passages", r.name, r.passages),
    };
    html! {
        <li class={classes!(r.error.is_some().then_some("error-message"))} data-file={r.name.clone()} data-passages={r.passages.to_string()}>
            { text }
        </li>
    }
}

/// The stored collections, the running embedding and import.
#[component]
fn Collections(props: &PartProps) -> Html {
    let d = &props.docs;
    let import = {
        let (on_op, on_action) = (props.on_op.clone(), props.on_action.clone());
        Callback::from(move |e: Event| {
            let input = e.target_unchecked_into::<HtmlInputElement>();
            let (on_op, on_action) = (on_op.clone(), on_action.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match read_files(input.files()).await {
                    Ok(files) => {
                        for f in files {
                            on_op.emit(DocsOp::Import { name: f.name, bytes: f.bytes });
                        }
                    }
                    Err(e) => on_action.emit(DocsAction::ReadFailed(e)),
                }
                input.set_value("");
            });
        })
    };
    let list = d.collections.clone().unwrap_or_default();
    html! {
        <div class="docs-collections">
            <h3>{ "Collections in this browser" }</h3>
            if d.collections.is_none() {
                <p class="muted">{ "Reading the browser's storage…" }</p>
            } else if list.is_empty() {
                <p id="docs-none" class="muted">{ "None yet." }</p>
            } else {
                <table id="docs-list" class="numbers">
                    <thead><tr>
                        <th>{ "" }</th><th>{ "Name" }</th><th>{ "Model" }</th><th class="num">{ "Passages" }</th>
                        <th>{ "Languages" }</th><th class="num">{ "Embedded" }</th><th class="num">{ "MB" }</th>
                        <th>{ "Made" }</th><th>{ "" }</th>
                    </tr></thead>
                    <tbody>
                        for c in list.iter() {
                            { row(c, d, props) }
                        }
                    </tbody>
                </table>
            }
            if let Some((used, quota)) = d.storage {
                <p class="muted">{ format!("The page's storage: {} MB used of {} MB.", mb(used as u64), mb(quota as u64)) }</p>
            }
            if let Some((_, p)) = &d.embedding {
                { progress(p, &props.on_op) }
            }
            if let Some(end) = &d.last_embed {
                <p id="docs-embedded" class="summary" data-done={end.progress.done.to_string()}
                    data-passages-per-s={rate(end.progress.this_job, end.progress.ms).to_string()}
                    data-tokens-per-s={rate(end.progress.tokens, end.progress.ms).to_string()}>
                    { format!(
                        "{}: {} of {} passages embedded ({} this time, {:.1} passages/s, {:.0} tokens/s){}",
                        end.progress.file,
                        end.progress.done,
                        end.progress.total,
                        end.progress.this_job,
                        rate(end.progress.this_job, end.progress.ms),
                        rate(end.progress.tokens, end.progress.ms),
                        end.stopped.as_ref().map(|w| format!("; stopped: {w}")).unwrap_or_default()
                    ) }
                </p>
            }
            if let Some(file) = &d.exported {
                <p class="muted">{ format!("Exported {file} to your downloads.") }</p>
            }
            <div class="field">
                <label for="docs-import">{ "Import a collection file (.mlrc)" }</label>
                <input id="docs-import" type="file" accept=".mlrc" onchange={import} />
            </div>
        </div>
    }
}

/// Per second, from a count over milliseconds.
fn rate(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// One stored collection.
fn row(c: &CollectionInfo, d: &DocsState, props: &PartProps) -> Html {
    let file = c.file.clone();
    let chosen = d.selected.as_ref() == Some(&c.file);
    let running = d.embedding.as_ref().is_some_and(|(_, p)| p.file == c.file) || d.waits(Sent::Embed);
    let op = |make: fn(String) -> DocsOp| {
        let file = file.clone();
        props.on_op.reform(move |_: MouseEvent| make(file.clone()))
    };
    let select = {
        let file = file.clone();
        props.on_action.reform(move |_: MouseEvent| DocsAction::Select(file.clone()))
    };
    let langs: Vec<String> = c.langs.iter().map(|(l, n)| format!("{l} {n}")).collect();
    let model_note = if c.usable || props.model.is_none() {
        String::new()
    } else {
        " (not the loaded model's: load it to search)".to_string()
    };
    html! {
        <tr class={classes!("collection", chosen.then_some("chosen"))} data-file={c.file.clone()}
            data-passages={c.passages.to_string()} data-embedded={c.embedded.to_string()} data-bytes={c.bytes.to_string()}>
            <td><input type="radio" name="docs-chosen" aria-label={format!("search {}", c.name)} checked={chosen} onclick={select} disabled={c.damaged.is_some()} /></td>
            <td title={c.sources.join(", ")}>
                { c.name.clone() }
                if let Some(why) = &c.damaged {
                    <span class="error-message">{ format!(" (unreadable: {why})") }</span>
                }
            </td>
            <td>{ format!("{}{model_note}", c.model) }</td>
            <td class="num">{ c.passages }</td>
            <td>{ langs.join(", ") }</td>
            <td class="num">{ if c.embedded == c.passages { "all".to_string() } else { c.embedded.to_string() } }</td>
            <td class="num">{ format!("{:.2}", c.bytes as f64 / 1e6) }</td>
            <td>{ c.created.get(..16).unwrap_or(&c.created).replace('T', " ") }</td>
            <td class="actions">
                if c.embedded < c.passages && c.damaged.is_none() {
                    <button type="button" class="docs-embed" disabled={!c.usable || running} onclick={op(|file| DocsOp::Embed { file })}>
                        { if c.embedded == 0 { "Embed" } else { "Resume" } }
                    </button>
                }
                if c.damaged.is_none() {
                    <button type="button" class="docs-export" onclick={op(|file| DocsOp::Export { file })}>{ "Export" }</button>
                }
                <button type="button" class="docs-delete" onclick={op(|file| DocsOp::Delete { file })}>{ "Delete" }</button>
            </td>
        </tr>
    }
}

/// The running embedding: a bar, passages, tokens/s, the time left, and Cancel.
fn progress(p: &EmbedProgress, on_op: &Callback<DocsOp>) -> Html {
    let eta = if p.eta_s < 0.0 {
        "estimating the time left".to_string()
    } else if p.eta_s < 90.0 {
        format!("{:.0} s left", p.eta_s)
    } else {
        format!("{:.0} min left", p.eta_s / 60.0)
    };
    html! {
        <p class="job" id="docs-job" data-done={p.done.to_string()} data-total={p.total.to_string()}>
            <progress id="docs-progress" max={p.total.max(1).to_string()} value={p.done.to_string()} aria-label="embedding the collection" />
            { format!(
                " {} of {} passages · {:.1} passages/s · {:.0} tokens/s · {eta} ",
                p.done,
                p.total,
                rate(p.this_job, p.ms),
                rate(p.tokens, p.ms)
            ) }
            <button id="docs-cancel" type="button" onclick={on_op.reform(|_: MouseEvent| DocsOp::Cancel)}>{ "Cancel" }</button>
        </p>
    }
}

/// Hands `bytes` to the browser as a download called `name` (an object URL on a link clicked
/// once, then revoked).
pub(crate) fn save_file(name: &str, bytes: &[u8]) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else { return };
    let parts = js_sys::Array::of1(&Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let Ok(blob) = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    if let Ok(link) = document.create_element("a") {
        let _ = link.set_attribute("href", &url);
        let _ = link.set_attribute("download", name);
        if let Some(link) = link.dyn_ref::<web_sys::HtmlElement>() {
            link.click();
        }
    }
    // Revoked once the download has started.
    let revoke = wasm_bindgen::closure::Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 10_000);
    }
}
